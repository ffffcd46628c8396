"""The OFD soaks: a networked register sends every document to an emulated OFD over a link that
fails on purpose, and no document is lost or stored twice.

Both run the OFD (``kkt ofd serve``) and the register (``kkt emulator serve --ofd``) as processes
of their own, on 127.0.0.1 with free ports, and sell through the driver:

* `ofd_faults` (``kkt bench --soak ofd-faults``): while receipts are sold, the OFD's control
  (``kkt ofd ctl``) cycles through the faults of its link -- the receipt dropped after the document
  was stored, an answer delayed past the register's timeout, a corrupted session, the connection
  reset mid-send, a rejection with an error code -- and back to none, so the register keeps
  retrying its queue;
* `ofd_crash` (``kkt bench --soak ofd-crash``): the register is killed with SIGKILL while it
  exchanges with a slow OFD (each answer delayed), restarted on the same state, again and again.

At the end, the faults cleared and the register up, the queue drains; then, the processes
stopped, the invariant is read from both stores: every document the FN formed is held by the OFD
exactly once, and the FN has its receipt (41h) with nothing left unsent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kkt.emulator.atol import AtolRegister
from kkt.emulator.personality import Personality
from kkt.emulator.shtrih import ShtrihRegister
from kkt.protocols.shtrih.link import HostSettings

import kkt

from ... import emulator_cli, ofd_cli
from .. import Bench, Figure, case
from ..served import EmulatorServer
from .common import fail_if, first_few, receipt_for, tally_logs

# -- sizes and timings (module constants: tests shrink them) -------------------------------------

FAULTS_DOCUMENTS_QUICK = 100
FAULTS_DOCUMENTS_FULL = 1000
FAULTS_EVERY = 12  # receipts sold under one fault before the next
# The OFD's faults, in turn: each phase's `kkt ofd ctl` commands, then FAULTS_EVERY receipts.  The
# counted faults (drop-ack, corrupt, reject) end by themselves; "down" while sessions are held by a
# delay drops them mid-send (the OFD resets its open connections), which is the reset fault.
FAULT_PHASES: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("drop-ack", "3"),),  # stored, then the connection closed without the receipt
    (("delay", "1.5"),),  # past the register's --ofd-timeout below
    (("delay", "0"), ("corrupt", "3")),  # receipts with a broken container CRC
    (("reject", "14", "3"),),  # 1022 = 14: not stored, the FN keeps the document
    (("delay", "0.3"), ("down",)),  # sessions cut mid-send, then refused connections
    (("up",), ("delay", "0")),
    (),  # a healthy link
)
CRASH_KILLS_QUICK = 4
CRASH_KILLS_FULL = 20
CRASH_RECEIPTS_QUICK = (2, 12)  # receipts sold before each kill (uniform)
CRASH_RECEIPTS_FULL = (40, 60)  # ... about 1,000 documents in 20 kills
CRASH_SLOW_OFD = "0.15"  # seconds the OFD holds each answer: the exchange is under way longer
CRASH_KILL_AFTER = (0.0, 0.2)  # seconds after the last sale (uniform)
REGISTER_OPTIONS = ("--ofd-retry", "0.2", "--ofd-timeout", "0.8")
DRAIN_SECONDS = 120.0  # the queue must be empty within this once the OFD is healthy
START_SECONDS = 60.0
# The emulator is a separate process that fsyncs: looser link timing than the in-process soaks.
OFD_HOST = HostSettings(ack=0.5, byte=0.3, quiet=0.1, probe=0.3, answer=10.0)


class OfdServer:
    """``kkt ofd serve`` as a child process on a free port (the same port after a restart)."""

    def __init__(self, state: Path, log: Path) -> None:
        self.state = state
        self.log = log
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "kkt", "ofd", "serve", "--state", str(self.state)]
        command += ["--tcp", f"127.0.0.1:{self.port}"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
            )
        self.port = _listening_port(self.process, self.log)

    def ctl(self, *words: str) -> dict[str, Any]:
        """What ``kkt ofd ctl --state DIR WORDS`` does (its request, on the control socket, without
        a process's start-up); the answer; raises `AssertionError` when refused."""
        return control(self.state, ofd_cli.control_request(list(words)))

    def docs(self) -> list[dict[str, Any]]:
        """``kkt ofd docs --state DIR --json``: one object per document the OFD holds."""
        answer = kkt_json("ofd", "docs", "--state", str(self.state), "--json")
        return answer if isinstance(answer, list) else list(answer.get("documents", ()))

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _listening_port(process: subprocess.Popen[bytes], log: Path) -> int:
    """The port of the first ``listening tcp HOST:PORT`` line the child prints."""
    assert process.stdout is not None
    descriptor = process.stdout.fileno()
    deadline = time.monotonic() + START_SECONDS
    seen = b""
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([descriptor], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(descriptor, 4096)
        if not chunk:
            break
        seen += chunk
        *lines, seen = seen.split(b"\n")
        for line in lines:
            words = line.split()
            if len(words) >= 3 and words[:2] == [b"listening", b"tcp"]:
                return int(words[2].rsplit(b":", 1)[1])
    process.kill()
    process.wait()
    raise AssertionError(f"`kkt ofd serve` did not listen; see {log}")


def kkt_json(*words: str, check: bool = True) -> Any:
    """``kkt WORDS`` (with ``--json``) in a child process: its JSON answer; raises
    `AssertionError` when it fails (``check=False``: the answer anyway)."""
    done = subprocess.run(
        [sys.executable, "-m", "kkt", *words],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0 and (check or not done.stdout.strip()):
        raise AssertionError(f"kkt {' '.join(words)}: {done.stdout.strip()} {done.stderr.strip()}")
    return json.loads(done.stdout)


def connect(url: str, protocol: str) -> kkt.Register:
    """The driver on a register of the soaks' (Shtrih: looser timing; ATOL: its defaults)."""
    return kkt.connect(url, protocol=protocol, settings=OFD_HOST if protocol == "shtrih" else None)


def open_register(state: Path, protocol: str) -> Personality:
    personality = AtolRegister if protocol == "atol" else ShtrihRegister
    return personality.open(state)


def delivery_problems(
    register_state: Path, protocol: str, held: Sequence[dict[str, Any]]
) -> tuple[int, list[str]]:
    """The invariant, read from both stores with both processes down: every FD the FN formed is
    held by the OFD exactly once, has its receipt in the FN, and nothing waits.  The number of
    documents and the problems found."""
    problems: list[str] = []
    device = open_register(register_state, protocol)
    try:
        fn = device.fn
        serial, last = fn.serial, fn.status().last_number
        counted = Counter(int(doc["fd"]) for doc in held if str(doc["fn"]) == serial)
        doubles = sorted(number for number, times in counted.items() if times > 1)
        if doubles:
            problems.append(f"the OFD holds documents {doubles[:10]} more than once")
        missing = sorted(set(range(1, last + 1)) - set(counted))
        if missing:
            problems.append(f"the OFD lacks documents {missing[:10]} ({len(missing)} in all)")
        foreign = sorted(set(counted) - set(range(1, last + 1)))
        if foreign:
            problems.append(f"the OFD holds documents the FN never formed: {foreign[:10]}")
        status = fn.exchange_status()
        if status.queued:
            problems.append(
                f"{status.queued} documents still wait in the FN, from {status.first_unsent}"
            )
        unreceipted = []
        for number in range(1, last + 1):
            try:
                fn.ofd_receipt(number)
            except Exception:
                unreceipted.append(number)
        if unreceipted:
            problems.append(f"the FN has no receipt for {unreceipted[:10]} ({len(unreceipted)})")
        verification = device.verify()
        if not verification.ok:
            problems.append(f"the FN does not verify: {first_few(list(verification.problems), 3)}")
    finally:
        device.close()
    return last, problems


def _sell(register: kkt.Register, index: int) -> None:
    register.sell(receipt_for(10_000 + index))


def control(state: Path, request: dict[str, Any], *, check: bool = True) -> dict[str, Any]:
    """One request on the control socket of the emulator (or OFD) serving ``state``, as its
    ``ctl`` sends it; the answer (``check``: raises `AssertionError` when refused)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(60)
        # A server just started prints "listening" before its control socket listens (a killed
        # one's socket file may still be there): wait for it.
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                connection.connect(str(state / "control.sock"))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        connection.sendall(json.dumps(request).encode() + b"\n")
        with connection.makefile("rb") as lines:
            answer: dict[str, Any] = json.loads(lines.readline())
    if check and not answer.get("ok"):
        raise AssertionError(f"{request}: refused: {answer.get('error')}")
    return answer


def emulator_ctl(state: Path, *words: str, check: bool = True) -> dict[str, Any]:
    """What ``kkt emulator ctl --state DIR WORDS`` does, on the control socket directly."""
    request = emulator_cli.control_request(argparse.Namespace(words=list(words)))
    return control(state, request, check=check)


def wait_drained(state: Path, deadline: float) -> int:
    """Poll the emulator's status until the FN's unsent count is 0; the last count seen."""
    unsent = -1
    while time.monotonic() < deadline:
        answer = emulator_ctl(state, "status")
        unsent = int(answer["status"]["unsent"])
        if unsent == 0:
            return 0
        time.sleep(0.2)
    return unsent


def _counted_faults_used(ofd: OfdServer) -> list[str]:
    """Wait until the register's sessions have taken every counted fault (dropped receipts,
    corrupt answers, rejections) before the next phase, so each one bites; a problem if not."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        faults = ofd.ctl("status")["faults"]
        if not (faults["drop_ack"] or faults["corrupt"] or faults["reject_left"]):
            return []
        time.sleep(0.05)
    return [f"the register never took the OFD's faults {faults} (does it still send?)"]


@case("ofd-faults", soak=True)
def ofd_faults(bench: Bench) -> Iterator[Figure]:
    """Every fault of the OFD link, in turn, under a selling driver."""
    documents = bench.size(FAULTS_DOCUMENTS_QUICK, FAULTS_DOCUMENTS_FULL)
    yield from _faults(bench, "shtrih", documents)


def _faults(bench: Bench, protocol: str, documents: int) -> Iterator[Figure]:
    ofd = OfdServer(bench.work / "ofd-faults-ofd", bench.work / "ofd-faults-ofd.log")
    emulator: EmulatorServer | None = None
    register: kkt.Register | None = None
    state = bench.work / "ofd-faults-register"
    problems: list[str] = []
    faults_applied: Counter[str] = Counter()
    started = time.monotonic()
    try:
        with tally_logs():
            ofd.start()
            emulator = EmulatorServer(
                state,
                bench.work / "ofd-faults-emulator.log",
                protocol=protocol,
                options=("--ofd", ofd.address, *REGISTER_OPTIONS),
            )
            emulator.start()
            register = connect(emulator.url, protocol)
            if not register.status().shift_open:
                register.open_shift()
            index = 0
            while register.fn_info().last_document < documents - 1:  # the shift close: 1 more
                if index % FAULTS_EVERY == 0:
                    problems += _counted_faults_used(ofd)
                    for words in FAULT_PHASES[index // FAULTS_EVERY % len(FAULT_PHASES)]:
                        ofd.ctl(*words)
                        faults_applied[words[0]] += 1
                _sell(register, index)
                index += 1
                if index % 100 == 0:
                    bench.log(f"soak ofd-faults: {index} receipts")
            problems += _counted_faults_used(ofd)
            ofd.ctl("clear")
            ofd.ctl("up")
            register.close_shift()
            register.close()
            register = None
            left = wait_drained(state, time.monotonic() + DRAIN_SECONDS)
            if left:
                problems.append(
                    f"{left} documents still unsent {DRAIN_SECONDS:g} s after the faults"
                )
            emulator.stop()
            held = ofd.docs()
            stats = ofd.ctl("status")["stats"]
    finally:
        if register is not None:
            register.close()
        if emulator is not None:
            emulator.kill()
        ofd.stop()
    elapsed = time.monotonic() - started
    formed, broken = delivery_problems(state, protocol, held)
    problems += broken
    # Each fault must have bitten, or the soak proved nothing about it.
    for name, what in (
        ("acks_dropped", "no receipt was dropped"),
        ("refused", "no document was rejected"),
        ("duplicates", "no document came twice (after a lost or late receipt)"),
    ):
        if not stats.get(name):
            problems.append(f"{what}: the OFD's {name} is 0")
    note = ", ".join(f"{name} {count}" for name, count in faults_applied.most_common())
    yield Figure(
        "soak.ofd_faults.documents", formed, "count", f"in {elapsed:.0f} s; faults: {note}"
    )
    yield Figure("soak.ofd_faults.at_ofd", len(held), "count", "documents the OFD holds")
    yield Figure(
        "soak.ofd_faults.sessions",
        stats.get("sessions", 0),
        "count",
        f"at the OFD: {stats.get('duplicates', 0)} repeated, {stats.get('refused', 0)} rejected, "
        f"{stats.get('acks_dropped', 0)} receipts dropped, {stats.get('dropped', 0)} cut",
    )
    yield Figure("soak.ofd_faults.problems", len(broken), "count", "must be 0")
    fail_if("ofd-faults", problems)


def _after_kill(state: Path) -> tuple[int, list[str]]:
    """The FN's unsent count right after a kill, and whether its archive verifies."""
    device = open_register(state, "shtrih")
    try:
        verification = device.verify()
        problems = [] if verification.ok else [first_few(list(verification.problems), 3)]
        return device.fn.exchange_status().queued, problems
    finally:
        device.close()


@case("ofd-crash", soak=True)
def ofd_crash(bench: Bench) -> Iterator[Figure]:
    """kill -9 of the register mid-exchange with the OFD, again and again."""
    kills = bench.size(CRASH_KILLS_QUICK, CRASH_KILLS_FULL)
    receipts = CRASH_RECEIPTS_QUICK if bench.quick else CRASH_RECEIPTS_FULL
    ofd = OfdServer(bench.work / "ofd-crash-ofd", bench.work / "ofd-crash-ofd.log")
    state = bench.work / "ofd-crash-register"
    emulator = EmulatorServer(
        state,
        bench.work / "ofd-crash-emulator.log",
        options=("--ofd", "127.0.0.1:1", *REGISTER_OPTIONS),  # the OFD's port, once known
    )
    rng = random.Random(2026)
    problems: list[str] = []
    killed = sold = 0
    unsent_at_kill: list[int] = []
    started = time.monotonic()
    register: kkt.Register | None = None
    try:
        with tally_logs():
            ofd.start()
            ofd.ctl("delay", CRASH_SLOW_OFD)
            emulator.options = ("--ofd", ofd.address, *REGISTER_OPTIONS)
            for _ in range(kills):
                emulator.start()
                register = connect(emulator.url, "shtrih")
                if not register.status().shift_open:
                    register.open_shift()
                for _ in range(rng.randint(*receipts)):
                    _sell(register, sold)
                    sold += 1
                register.close()
                register = None
                time.sleep(rng.uniform(*CRASH_KILL_AFTER))
                emulator.kill()
                killed += 1
                unsent, broken = _after_kill(state)  # nothing moves the queue after the kill
                unsent_at_kill.append(unsent)
                problems += [f"after kill {killed}: {problem}" for problem in broken]
            ofd.ctl("clear")
            emulator.start()
            left = wait_drained(state, time.monotonic() + DRAIN_SECONDS)
            if left:
                problems.append(
                    f"{left} documents still unsent {DRAIN_SECONDS:g} s after the kills"
                )
            emulator.stop()
            held = ofd.docs()
    finally:
        if register is not None:
            register.close()
        emulator.kill()
        ofd.stop()
    elapsed = time.monotonic() - started
    formed, broken = delivery_problems(state, "shtrih", held)
    problems += broken
    mid = sum(1 for unsent in unsent_at_kill if unsent)
    yield Figure("soak.ofd_crash.kills", killed, "count", f"in {elapsed:.0f} s")
    yield Figure("soak.ofd_crash.mid_exchange", mid, "count", "kills with documents still unsent")
    yield Figure("soak.ofd_crash.documents", formed, "count", f"{sold} receipts sold")
    yield Figure("soak.ofd_crash.problems", len(broken), "count", "must be 0")
    if mid == 0:
        problems.append("no kill landed while documents were unsent: the soak proved nothing")
    fail_if("ofd-crash", problems)
