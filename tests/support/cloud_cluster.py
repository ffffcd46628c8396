"""The scale-out harness: registers served apart, PostgreSQL, several ``kkt cloud serve`` processes,
a shop posting to all of them, and the judges.

* `Relay` -- a TCP relay in front of each register.  At every connection it finds, through
  /proc, which instance process holds the other end, and it records every chunk an instance
  sends: `RelayLog.runs` is each register's history as "who talked to it, from when to when".
  That is the outside view of "a register is driven by one instance at a time": two instances
  driving one register show as many changes of who talks, more than its lease ever passed.
* `Shop` -- posts ``sell`` receipts (each total unique: the total names the receipt in the FN)
  to the instances in turn; a post that gets no answer, or 503/429, is sent again to the next
  instance (the same body: its ``external_id`` makes it the same document).
* `cloud_status`, `leases` -- ``kkt cloud status --json``: instances, lease holders and epochs
  (`kkt.tools.bench.cloud_scale.wait_balanced` polls the holders with one query).
* `unleased_changes` -- the judge of "one at a time": each change of the instance talking to a
  register must be a pass of its lease (the lease's epoch counts them); `returns` -- an instance
  talking to a register again after another did (no lease passes back after a death).
* `judge_fns` -- exactly-once against the FNs: every accepted receipt is one FN document, its
  report's data that document's, and no document nobody posted.

Nothing here imports ``kkt.cloud``'s service: the instances are tested from outside.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kkt.tools.bench.cloud import (
    CallbackCounter,
    CloudClient,
    HttpFailure,
    Reply,
    accepted_uuid,
    sell_body,
)
from kkt.tools.bench.cloud_server import FnReceipt

UNKNOWN = "?"  # a connection no instance process held
CHUNK = 65536


# -- who talks to a register -------------------------------------------------------------------


def _socket_inode(local_port: int, remote_port: int) -> str | None:
    """The inode of the IPv4 TCP socket 127.0.0.1:local_port -> 127.0.0.1:remote_port."""
    local, remote = f"0100007F:{local_port:04X}", f"0100007F:{remote_port:04X}"
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[1] == local and fields[2] == remote:
                return fields[9]
    return None


def _holder(inode: str, pids: dict[int, str]) -> str:
    """The label of the process in ``pids`` (pid -> label) with the socket ``inode`` open."""
    target = f"socket:[{inode}]"
    for pid, label in pids.items():
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if fd.readlink().name == target:
                        return label
    return UNKNOWN


@dataclass(frozen=True, slots=True)
class Run:
    """One instance's unbroken stretch of talking to a register (first and last chunk sent)."""

    instance: str
    first: float  # time.monotonic()
    last: float
    chunks: int


@dataclass
class RelayLog:
    """What the relays saw: per register, (monotonic time, instance) of every chunk sent."""

    sent: dict[str, list[tuple[float, str]]] = field(default_factory=lambda: defaultdict(list))
    connections: list[tuple[str, str]] = field(default_factory=list)  # (register, instance)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def chunk(self, register: str, instance: str) -> None:
        with self._lock:
            self.sent[register].append((time.monotonic(), instance))

    def connected(self, register: str, instance: str) -> None:
        with self._lock:
            self.connections.append((register, instance))

    def runs(self, register: str) -> list[Run]:
        with self._lock:
            events = list(self.sent.get(register, ()))
        runs: list[Run] = []
        for when, instance in events:
            if runs and runs[-1].instance == instance:
                last = runs[-1]
                runs[-1] = Run(instance, last.first, when, last.chunks + 1)
            else:
                runs.append(Run(instance, when, when, 1))
        return runs

    def between(self, start: float, end: float) -> list[tuple[str, float, str]]:
        """(register, time, instance) of every chunk sent in [start, end]."""
        with self._lock:
            return [
                (register, when, instance)
                for register, events in self.sent.items()
                for when, instance in events
                if start <= when <= end
            ]


class Relay:
    """127.0.0.1:0 -> ``target``; records for ``log`` which instance sends what.  ``pids``
    gives the instances' PIDs (pid -> label) at each connection."""

    def __init__(
        self, name: str, target: str, log: RelayLog, pids: Callable[[], dict[int, str]]
    ) -> None:
        host, port = target.removeprefix("socket://").rsplit(":", 1)
        self.name, self.target, self.log, self.pids = name, (host, int(port)), log, pids
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._spawn(self._accept, f"relay-{name}")

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, (_, peer_port) = self._server.accept()
            except OSError:
                return  # closed
            inode = _socket_inode(peer_port, self.port)
            instance = _holder(inode, self.pids()) if inode else UNKNOWN
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            self.log.connected(self.name, instance)
            self._spawn(self._pump, f"relay-{self.name}-up", client, upstream, instance)
            self._spawn(self._pump, f"relay-{self.name}-down", upstream, client, None)

    def _pump(self, source: socket.socket, sink: socket.socket, instance: str | None) -> None:
        try:
            while data := source.recv(CHUNK):
                if instance is not None:
                    self.log.chunk(self.name, instance)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):  # one side gone: the other is told by the close
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets, self._sockets = self._sockets, []
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        for end in sockets:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(10)
        for end in sockets:
            end.close()


@contextlib.contextmanager
def relays(
    names: Sequence[str], log: RelayLog, pids: Callable[[], dict[int, str]]
) -> Iterator[Callable[[list[str]], list[str]]]:
    """A route from the registers' URLs (``names`` in order) to a relay's in front of each,
    all closed after."""
    opened: list[Relay] = []

    def route(urls: list[str]) -> list[str]:
        opened.extend(Relay(name, url, log, pids) for name, url in zip(names, urls, strict=True))
        return [relay.url for relay in opened]

    try:
        yield route
    finally:
        for relay in opened:
            relay.close()


def holder_changes(runs: Sequence[Run]) -> list[tuple[str, str, float]]:
    """(from, to, when) of each change of the instance talking to a register."""
    return [(a.instance, b.instance, b.first) for a, b in itertools.pairwise(runs)]


def unleased_changes(runs: Sequence[Run], epoch: int) -> int:
    """How many more times the talking instance changed than the lease passed to another
    instance (``epoch``: the lease's, 1 at the first take, +1 at each pass): above 0, a register
    was driven by an instance that had not been given its lease -- two at once."""
    return max(0, len(holder_changes(runs)) - (epoch - 1))


def returns(runs: Sequence[Run]) -> list[str]:
    """Instances that talked to the register again after another one had: a register used by
    two at once (or handed back, which a takeover after a death never does)."""
    seen: list[str] = []
    back: list[str] = []
    for run in runs:
        if run.instance in seen:
            back.append(run.instance)
        seen.append(run.instance)
    return back


# -- the database's view -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeaseRow:
    register: str
    instance: str  # "host:pid:hex"
    epoch: int

    @property
    def pid(self) -> int:
        return int(self.instance.split(":")[1])


def cloud_status(dsn: str) -> dict[str, Any]:
    """``kkt cloud status --db DSN --json``, as an operator runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "kkt", "cloud", "status", "--db", dsn, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"kkt cloud status: {done.returncode} {done.stderr.strip()}"
    status: dict[str, Any] = json.loads(done.stdout)
    return status


def leases(status: dict[str, Any]) -> dict[str, LeaseRow]:
    """register -> its lease as `cloud_status` shows it (registers never leased left out)."""
    return {
        register["name"]: LeaseRow(
            register["name"], register["lease"]["instance"], int(register["lease"]["epoch"])
        )
        for register in status["registers"]
        if register.get("lease")
    }


@dataclass(frozen=True, slots=True)
class LeaseEvent:
    at: float  # time.monotonic() of the poll that saw it
    register: str
    pid: int
    epoch: int
    live: bool  # unexpired by the database's clock


class LeaseWatch:
    """Polls the lease rows (every `period` s) and keeps each change: the lease history a
    failure message shows beside the relays' runs.  Polls that fail (the database down) are
    skipped."""

    def __init__(self, dsn: str, period: float = 0.25) -> None:
        self.dsn, self.period = dsn, period
        self.events: list[LeaseEvent] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-watch", daemon=True)

    def __enter__(self) -> LeaseWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        import psycopg

        last: dict[str, tuple[int, int, bool]] = {}
        while not self._stop.wait(self.period):
            try:
                with psycopg.connect(self.dsn, connect_timeout=2) as connection:
                    rows = connection.execute(
                        "SELECT register, instance, epoch, expires_at > now() FROM cloud_leases"
                    ).fetchall()
            except psycopg.Error:
                continue
            now = time.monotonic()
            for register, instance, epoch, live in rows:
                state = (int(str(instance).split(":")[1]), int(epoch), bool(live))
                if last.get(register) != state:
                    last[register] = state
                    self.events.append(LeaseEvent(now, str(register), *state))

    def history(self, register: str, since: float) -> list[tuple[float, int, int, bool]]:
        """(seconds after ``since``, pid, epoch, live) of each change seen of ``register``."""
        return [
            (round(e.at - since, 2), e.pid, e.epoch, e.live)
            for e in self.events
            if e.register == register
        ]


def claimed_callbacks(dsn: str, uuids: Collection[str]) -> set[str]:
    """Those of ``uuids`` whose callback waits in the outbox, claimed by a sender and not due
    again yet (a sender that died with it: another sends it once the claim runs out)."""
    import psycopg

    with psycopg.connect(dsn, connect_timeout=10) as connection:
        rows = connection.execute(
            "SELECT uuid FROM cloud_outbox WHERE uuid = ANY(%s) AND state = 'pending' "
            "AND next_at > now()",
            (list(uuids),),
        ).fetchall()
    return {str(uuid) for (uuid,) in rows}


def callback_secret(dsn: str) -> bytes | None:
    """The HMAC key the instances sign callbacks with, kept in the database (None: not made)."""
    import psycopg

    with psycopg.connect(dsn, connect_timeout=10) as connection:
        row = connection.execute(
            "SELECT value FROM cloud_settings WHERE name = 'callback_secret'"
        ).fetchone()
    return None if row is None else bytes(row[0])


# -- the shop ----------------------------------------------------------------------------------


FIRST_TOTAL = 10_000  # receipt i costs FIRST_TOTAL + i kopecks


@dataclass
class Shop:
    """Posts receipts to ``clients`` in turn; keeps what was accepted."""

    clients: Sequence[CloudClient]
    callback_url: str | None = None
    tag: str = field(default_factory=lambda: f"{time.time_ns():x}")
    uuids: dict[int, str] = field(default_factory=dict)  # receipt index -> uuid
    refused: dict[int, Reply] = field(default_factory=dict)
    unavailable: Counter[int] = field(default_factory=Counter)  # HTTP status (0: none) of misses
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def body(self, index: int) -> dict[str, Any]:
        return sell_body(f"so-{self.tag}-{index}", FIRST_TOTAL + index, self.callback_url)

    def post(self, index: int, *, give_up: float = 120.0) -> None:
        """Post receipt ``index`` until an instance answers it (not 503/429, not silence)."""
        body = self.body(index)
        deadline = time.monotonic() + give_up
        turn = index
        while True:
            client = self.clients[turn % len(self.clients)]
            turn += 1
            try:
                reply = client.post("sell", body)
            except HttpFailure:
                reply = None
            if reply is not None and reply.status not in (429, 503):
                uuid = accepted_uuid(reply)
                with self._lock:
                    if uuid is None:
                        self.refused[index] = reply
                    else:
                        self.uuids[index] = uuid
                return
            with self._lock:
                self.unavailable[reply.status if reply else 0] += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"receipt {index}: no instance took it in {give_up:g} s")
            time.sleep(0.05 if reply is None else min(reply.retry_after or 0.2, 1.0))

    def post_all(self, indexes: Sequence[int], threads: int = 6) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads, thread_name_prefix="shop") as pool:
            list(pool.map(self.post, indexes))

    def report(self, uuid: str) -> dict[str, Any] | None:
        """The report from whichever instance answers (None: none does now)."""
        for client in self.clients:
            with contextlib.suppress(HttpFailure):
                reply = client.report(uuid)
                if reply.status == 200:
                    return reply.body
        return None

    def done_count(self, indexes: Sequence[int]) -> int:
        with self._lock:
            uuids = [self.uuids[i] for i in indexes if i in self.uuids]
        return sum((self.report(uuid) or {}).get("status") == "done" for uuid in uuids)

    def settle(self, *, stall: float) -> dict[int, dict[str, Any]]:
        """Every accepted receipt's report once none reads ``wait``; gives up when ``stall``
        seconds pass without one more settling (not a speed limit: nothing moves then)."""
        reports: dict[int, dict[str, Any]] = {}
        pending = sorted(self.uuids)
        last_progress = time.monotonic()
        while pending:
            still: list[int] = []
            for index in pending:
                report = self.report(self.uuids[index])
                if report is not None and report.get("status") in ("done", "fail"):
                    reports[index] = report
                    last_progress = time.monotonic()
                else:
                    still.append(index)
            pending = still
            if pending:
                assert time.monotonic() - last_progress < stall, (
                    f"{len(pending)} receipts still waiting, none settled for {stall:g} s"
                )
                time.sleep(0.2)
        return reports


def wait_until(what: Callable[[], bool], *, patience: float, why: str) -> None:
    """Poll ``what`` until true; after ``patience`` seconds a failure saying ``why`` (nothing
    moved: not a speed limit)."""
    deadline = time.monotonic() + patience
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.1)


# -- the judges --------------------------------------------------------------------------------


def judge_fns(
    shop: Shop, reports: dict[int, dict[str, Any]], receipts: Sequence[FnReceipt]
) -> list[str]:
    """What breaks exactly-once between the accepted receipts, their reports and the FNs."""
    problems: list[str] = []
    by_total: dict[int, list[FnReceipt]] = defaultdict(list)
    for receipt in receipts:
        by_total[receipt.total].append(receipt)
    uuids = list(shop.uuids.values())
    if len(set(uuids)) != len(uuids):
        problems.append("two receipts share a uuid")
    for index, uuid in sorted(shop.uuids.items()):
        report = reports.get(index, {})
        found = by_total.pop(FIRST_TOTAL + index, [])
        if report.get("status") != "done":
            problems.append(f"receipt {index} ({uuid}): {report.get('status')} {report}")
        if len(found) != 1:
            problems.append(f"receipt {index} ({uuid}): {len(found)} FN documents")
            continue
        payload = report.get("payload") or {}
        document = found[0]
        ours = (
            payload.get("fn_number"),
            payload.get("fiscal_document_number"),
            payload.get("fiscal_document_attribute"),
        )
        if ours != (document.fn_number, document.number, document.fiscal_sign):
            problems.append(
                f"receipt {index}: report names {ours}, the FN holds it as "
                f"{(document.fn_number, document.number, document.fiscal_sign)}"
            )
    for total, found in sorted(by_total.items()):
        problems.append(f"{len(found)} FN documents of {total} kopecks nobody had accepted")
    return problems


def judge_callbacks(
    shop: Shop, counter: CallbackCounter, *, waiting: Collection[str] = ()
) -> list[str]:
    """Every accepted receipt called back at least once (but those ``waiting`` in the outbox),
    every signature well formed."""
    problems: list[str] = []
    missing = counter.missing(set(shop.uuids.values())) - set(waiting)
    if missing:
        problems.append(f"{len(missing)} receipts never called back, e.g. {sorted(missing)[:3]}")
    if counter.bad_signatures:
        problems.append(f"{counter.bad_signatures} callbacks with a bad signature")
    return problems
