"""Soaks: long runs that hunt for a broken invariant rather than measure speed.

Run by name, ``kkt bench --soak NAME [--quick]``:

* ``lossy`` -- the driver sells through an emulated register over a line that drops and damages
  bytes and a register that now and then forgets an answer after doing the work.  Every receipt
  reported done is in the FN exactly once, none reported failed is in it, an unknown outcome is
  there at most once, and the FN verifies.
* ``crash`` -- the emulator runs as its own process (``kkt emulator serve``) and is killed with
  SIGKILL at random instants while the driver sells with a journal and one idempotency key per
  receipt; it is restarted at once on the same state and port, and the driver retries each receipt
  with its key until it is done.  The FN verifies after every kill; at the end every key has
  exactly one document, with the number and sign its result gave.
* ``concurrency`` -- eight clients, each on its own TCP connection to one emulated register.  A
  register has ONE open receipt and ONE document-read cursor, whoever is connected, so the clients
  serialise their sales with one lock (reads run unlocked, interleaved with the others' receipts).
  The same clients without the lock are measured too and reported as ``nolock`` figures:
  what happens to an application that skips the lock (not an invariant of the driver).
* ``fuzz`` -- for a fixed time, garbage and mutated frames are thrown at the emulator over TCP
  (it must keep answering and its FN must verify), and a fake register answers the driver with
  garbage and mutated frames (every call must end within its bound with a `kkt.KktError`).

Each soak is bounded in count and time, prints its figures first and then raises
`AssertionError` naming the broken invariant, so ``kkt bench`` reports it failed.  The sizes are
the module's constants, which tests shrink.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from kkt.emulator.faults import Faults
from kkt.emulator.shtrih import ShtrihRegister, open_device
from kkt.protocols.errors import FrameError
from kkt.protocols.shtrih import classic, fn
from kkt.protocols.shtrih.frame import ACK, ENQ, FILLER, NAK, STX, code_bytes, encode_frame
from kkt.protocols.shtrih.link import (
    CommandReceived,
    DeviceSettings,
    Event,
    HostSettings,
    Role,
    ShtrihLink,
)
from kkt.protocols.shtrih.message import request_types
from kkt.protocols.shtrih.modes import OperationType, ReceiptType, TaxRate, TaxSystem
from kkt.tools.demo import EmulatorThread

import kkt
from kkt import FiscalResult, Item, Operation, Payments, Receipt, Register, Vat
from kkt.journal import Journal
from kkt.session import ShtrihSession

from . import Bench, Figure, case

# -- sizes and timings (module constants: tests shrink them) -------------------------------------

# (share of bytes damaged, receipts): half the damaged bytes are dropped, half bit-flipped.
LOSSY_QUICK: tuple[tuple[float, int], ...] = ((0.01, 60),)
LOSSY_FULL: tuple[tuple[float, int], ...] = ((0.01, 1000), (0.05, 300))
LOSSY_LOSE_RATE = 0.03  # share of answers the register forgets after doing the work
LOSSY_SECONDS = 1800.0  # a run at one rate stops selling after this long (and says so)

CRASH_KILLS_QUICK = 10
CRASH_KILLS_FULL = 100
CRASH_UP_SECONDS = (0.05, 0.6)  # the emulator lives this long (uniform) between kills
CRASH_RECEIPT_ATTEMPTS = 3000  # one receipt's tries before the soak calls it lost
CRASH_RECEIPT_SECONDS = 90.0  # ... and its time
CRASH_RETRY_PAUSE = 0.02  # between two tries of one receipt
CRASH_START_SECONDS = 60.0  # the emulator process must listen within this

CONCURRENCY_CLIENTS = 8
CONCURRENCY_QUICK = 10  # receipts per client
CONCURRENCY_FULL = 100
UNSERIALIZED_QUICK = 10  # receipts per client in the probe without the lock
UNSERIALIZED_FULL = 30
UNSERIALIZED_READS = 10  # documents each client reads in that probe

FUZZ_SECONDS_QUICK = 10.0  # the whole fuzz budget: half on the emulator, half on the driver
FUZZ_SECONDS_FULL = 60.0
FUZZ_LIVENESS_SECONDS = 1.0  # how often the emulator must prove it still answers
FUZZ_EXCHANGES_PER_CALL = 1000  # a driver call that needs more exchanges than this hangs
FUZZ_CALL_SECONDS = 30.0  # ... as does one that takes this long in real time
FUZZ_SEED = 54

# Loopback timing: the emulator reacts in microseconds, so the link's timeouts can be short (the
# device's byte timeout below the host's ACK timeout, as on a real line).
SOAK_HOST = HostSettings(ack=0.12, byte=0.1, quiet=0.04, probe=0.15, answer=5.0)
SOAK_DEVICE = DeviceSettings(byte=0.06, confirm=0.15, filler_after_ack=True)
# The crash soak's emulator is a separate process that starts, fsyncs and dies: looser timing.
CRASH_HOST = HostSettings(ack=0.5, byte=0.3, quiet=0.1, probe=0.3, answer=10.0)
PROBE_HOST = HostSettings(ack=0.5, byte=0.3, quiet=0.05, probe=0.3, answer=10.0)

PASSWORD = 30
RECEIPT_KIND = 3  # FFD document type of a receipt


def _receipt(total: int) -> Receipt:
    return Receipt((Item("Товар", total, Decimal(1), Vat.VAT20),), Payments(cash=total))


def _receipts_by_total(device: ShtrihRegister) -> dict[int, list[tuple[int, int]]]:
    """The FN's receipts: total -> [(document number, fiscal sign), ...]."""
    found: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for record in device.fn._store.records():
        if record.kind == RECEIPT_KIND:
            found[record.total].append((record.number, record.fiscal_sign))
    return found


def _first(problems: list[str], limit: int = 5) -> str:
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more


def _fail_if(soak: str, problems: list[str]) -> None:
    if problems:
        raise AssertionError(f"soak {soak}: {_first(problems)}")


class _LogTally(logging.Handler):
    """Counts the project's warnings and keeps its first errors (an emulator's internal errors
    are logged, not raised: this is where a soak sees them)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.levels: Counter[str] = Counter()
        self.errors: list[str] = []
        self.error_count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.levels[record.levelname] += 1
        if record.levelno >= logging.ERROR:
            self.error_count += 1
            if len(self.errors) < 5:
                cause = ""
                if record.exc_info and record.exc_info[1] is not None:
                    error = record.exc_info[1]
                    cause = f" ({type(error).__name__}: {error})"
                self.errors.append(f"{record.name}: {record.getMessage()}{cause}")


@contextlib.contextmanager
def _tally_logs() -> Iterator[_LogTally]:
    """Collect the ``kkt`` loggers' warnings instead of printing them in the middle of the
    figures (a soak provokes thousands on purpose)."""
    logger = logging.getLogger("kkt")
    tally = _LogTally()
    propagate = logger.propagate
    logger.addHandler(tally)
    logger.propagate = False
    try:
        yield tally
    finally:
        logger.removeHandler(tally)
        logger.propagate = propagate


# -- lossy ----------------------------------------------------------------------------------------


@case("lossy", soak=True)
def lossy(bench: Bench) -> Iterator[Figure]:
    """Exactly-once selling over a lossy line, at each configured share of damaged bytes."""
    problems: list[str] = []
    for rate, count in LOSSY_QUICK if bench.quick else LOSSY_FULL:
        yield from _lossy_run(bench, rate, count, problems)
    _fail_if("lossy", problems)


def _lossy_run(bench: Bench, rate: float, count: int, problems: list[str]) -> Iterator[Figure]:
    label = f"{rate * 100:g}pct"
    name = f"soak.lossy.{label}"
    device = open_device(bench.work / f"lossy-{label}")
    faults = Faults(seed=11)
    outcomes: dict[int, str] = {}
    untyped: list[str] = []
    elapsed = 0.0
    try:
        with _tally_logs(), EmulatorThread(device, faults, settings=SOAK_DEVICE) as emulator:
            url = f"socket://127.0.0.1:{emulator.port}"
            with kkt.connect(url, settings=SOAK_HOST) as register:
                register.open_shift()  # on a clean line: the soak is about the receipts
                faults.configure(
                    drop=rate / 2, corrupt=rate / 2, lose_rate=LOSSY_LOSE_RATE, seed=11
                )
                started = time.monotonic()
                for index in range(count):
                    if time.monotonic() - started > LOSSY_SECONDS:
                        problems.append(
                            f"{label}: stopped after {index} of {count} receipts "
                            f"({LOSSY_SECONDS:g} s)"
                        )
                        break
                    total = 10_000 + index
                    try:
                        register.sell(_receipt(total))
                        outcomes[total] = "done"
                    except kkt.OutcomeUnknown:
                        outcomes[total] = "unknown"
                    except kkt.KktError:
                        outcomes[total] = "failed"
                    except Exception as error:  # not the driver's own: a bug to report
                        outcomes[total] = "untyped"
                        untyped.append(f"receipt {total}: {_describe(error)}")
                    if (index + 1) % 100 == 0:
                        bench.log(f"soak lossy {label}: {index + 1}/{count} receipts")
                elapsed = time.monotonic() - started
                faults.clear()
        in_fn = _receipts_by_total(device)
        verification = device.verify()
    finally:
        device.close()

    tally = Counter(outcomes.values())
    duplicates = sum(
        len(in_fn.get(total, ())) - 1 for total in outcomes if len(in_fn.get(total, ())) > 1
    )
    lost = [
        total for total, outcome in outcomes.items() if outcome == "done" and not in_fn.get(total)
    ]
    phantom = [
        total for total, outcome in outcomes.items() if outcome == "failed" and in_fn.get(total)
    ]
    foreign = sorted(set(in_fn) - set(outcomes))
    note = f"{count} receipts, {rate:.0%} of bytes damaged, {LOSSY_LOSE_RATE:.0%} answers lost"
    yield Figure(f"{name}.done", tally["done"], "count", note)
    yield Figure(f"{name}.failed", tally["failed"], "count", "failed safely: not in the FN")
    yield Figure(f"{name}.unknown", tally["unknown"], "count", "outcome unknown: at most once")
    unknown_fiscal = sum(
        1 for t, outcome in outcomes.items() if outcome == "unknown" and in_fn.get(t)
    )
    yield Figure(f"{name}.unknown_fiscal", unknown_fiscal, "count", "of those, in the FN")
    yield Figure(f"{name}.duplicates", duplicates, "count", "must be 0")
    yield Figure(f"{name}.lost", len(lost), "count", "done but not in the FN; must be 0")
    yield Figure(f"{name}.failed_but_fiscal", len(phantom), "count", "must be 0")
    yield Figure(f"{name}.untyped_errors", len(untyped), "count", "not kkt.KktError; must be 0")
    yield Figure(f"{name}.receipts_per_s", len(outcomes) / elapsed if elapsed else 0.0, "1/s")
    if duplicates:
        doubled = [total for total in outcomes if len(in_fn.get(total, ())) > 1]
        problems.append(f"{label}: receipts fiscalized more than once: {doubled[:10]}")
    if lost:
        problems.append(f"{label}: receipts reported done but not in the FN: {lost[:10]}")
    if phantom:
        problems.append(f"{label}: receipts reported failed yet in the FN: {phantom[:10]}")
    if foreign:
        problems.append(f"{label}: the FN holds receipts nobody sold: totals {foreign[:10]}")
    problems += [f"{label}: the driver raised an untyped error: {text}" for text in untyped]
    if not verification.ok:
        problems.append(f"{label}: the FN does not verify: {_first(list(verification.problems))}")


# -- crash ----------------------------------------------------------------------------------------


def _free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (the emulator is restarted on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class _EmulatorProcess:
    """``kkt emulator serve`` as a child process that can be killed and started again."""

    def __init__(self, state: Path, port: int, log: Path) -> None:
        self.state = state
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.refused_starts = 0  # starts that found the port busy and were tried again

    def start(self) -> None:
        # The port may be held for a moment -- even by the driver: a connect to a port in the
        # ephemeral range while nothing listens there can, rarely, connect the socket to itself.
        # The driver drops that link at its next failed exchange, and the port is free again.
        deadline = time.monotonic() + CRASH_START_SECONDS
        while True:
            try:
                self._start_once()
                self.starts += 1
                return
            except _EarlyExit:
                if time.monotonic() > deadline:
                    raise
                self.refused_starts += 1
                time.sleep(0.5)

    def _start_once(self) -> None:
        command = [sys.executable, "-m", "kkt", "emulator", "serve"]
        command += ["--state", str(self.state), "--tcp", f"127.0.0.1:{self.port}"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
            )
        assert self.process.stdout is not None
        descriptor = self.process.stdout.fileno()
        deadline = time.monotonic() + CRASH_START_SECONDS
        seen = b""
        while not any(line.startswith(b"listening tcp") for line in seen.split(b"\n")[:-1]):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise AssertionError(
                    f"the emulator did not listen within {CRASH_START_SECONDS:g} s; see {self.log}"
                )
            ready, _, _ = select.select([descriptor], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(descriptor, 4096)
            if not chunk:
                code = self.process.wait(10)
                self.kill()
                raise _EarlyExit(f"the emulator exited ({code}) before listening: {self._tail()}")
            seen += chunk

    def kill(self) -> None:
        """SIGKILL (kill -9) and wait; nothing of the process outlives this."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
        if process.stdout is not None:
            process.stdout.close()

    def _tail(self) -> str:
        try:
            return self.log.read_text(errors="replace").strip().splitlines()[-1]
        except (OSError, IndexError):
            return "(no output)"


class _EarlyExit(AssertionError):
    pass


@dataclass
class _Seller:
    """The driver's side of the crash soak: sells receipt after receipt, each with its key,
    retrying a receipt after any failure until it is done."""

    register: Register
    stop: threading.Event
    attempted: list[tuple[str, int]] = field(default_factory=list)  # (key, total)
    results: dict[str, tuple[int, FiscalResult]] = field(default_factory=dict)
    failures: Counter[str] = field(default_factory=Counter)  # error type -> tries it failed
    interrupted: int = 0  # receipts that needed more than one try
    given_up: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)  # anything but the driver's typed errors

    def run(self) -> None:
        try:
            index = 0
            while not self.stop.is_set():
                key, total = f"crash-{index}", 30_000 + index
                self.attempted.append((key, total))
                if not self._sell(key, total):
                    return
                index += 1
        except Exception as error:
            self.crashed.append("".join(traceback.format_exception_only(error)).strip())

    def _sell(self, key: str, total: int) -> bool:
        started = time.monotonic()
        for attempt in range(1, CRASH_RECEIPT_ATTEMPTS + 1):
            try:
                self.results[key] = (total, self.register.sell(_receipt(total), key=key))
                self.interrupted += attempt > 1
                return True
            except kkt.KktError as error:
                self.failures[type(error).__name__] += 1
                if time.monotonic() - started > CRASH_RECEIPT_SECONDS:
                    self.given_up.append(
                        f"{key}: not done after {attempt} tries in {CRASH_RECEIPT_SECONDS:g} s "
                        f"(last: {type(error).__name__}: {error})"
                    )
                    return False
                time.sleep(CRASH_RETRY_PAUSE)
        self.given_up.append(f"{key}: not done after {CRASH_RECEIPT_ATTEMPTS} tries")
        return False


def _verify_state(state: Path) -> list[str]:
    """The FN verifier over a stored state (the emulator process is down)."""
    try:
        device = open_device(state)
    except Exception as error:
        return [f"the state does not open: {type(error).__name__}: {error}"]
    try:
        verification = device.verify()
        return [] if verification.ok else list(verification.problems) or ["not ok"]
    finally:
        device.close()


@case("crash", soak=True)
def crash(bench: Bench) -> Iterator[Figure]:
    """kill -9 of the emulator process at random instants under a selling driver."""
    kills = bench.size(CRASH_KILLS_QUICK, CRASH_KILLS_FULL)
    state = bench.work / "crash"
    emulator = _EmulatorProcess(state, _free_port(), bench.work / "crash-emulator.log")
    rng = random.Random(2026)
    stop = threading.Event()
    seller: _Seller | None = None
    worker: threading.Thread | None = None
    register: Register | None = None
    killed = 0
    verify_failures: list[str] = []
    problems: list[str] = []
    started = time.monotonic()
    try:
        with _tally_logs():
            emulator.start()
            url = f"socket://127.0.0.1:{emulator.port}"
            register = kkt.connect(
                url, journal=bench.work / "crash-journal.sqlite", settings=CRASH_HOST
            )
            if not register.status().shift_open:
                register.open_shift()
            seller = _Seller(register, stop)
            worker = threading.Thread(target=seller.run, name="soak-crash-seller", daemon=True)
            worker.start()
            for _ in range(kills):
                time.sleep(rng.uniform(*CRASH_UP_SECONDS))
                if not worker.is_alive():
                    break  # the seller gave up: the figures say why
                emulator.kill()
                killed += 1
                broken = _verify_state(state)
                if broken:
                    verify_failures.append(f"after kill {killed}: {_first(broken, 3)}")
                emulator.start()
                if killed % 10 == 0:
                    bench.log(f"soak crash: {killed}/{kills} kills, {len(seller.results)} receipts")
            stop.set()  # the seller finishes the receipt in hand, the emulator up
            worker.join(CRASH_RECEIPT_SECONDS + 30)
            if worker.is_alive():
                problems.append("the seller did not finish its last receipt (a hang?)")
    finally:
        stop.set()
        emulator.kill()
        if register is not None:
            register.close()
        if worker is not None:
            worker.join(5)
    elapsed = time.monotonic() - started
    assert seller is not None

    device = open_device(state)
    try:
        in_fn = _receipts_by_total(device)
        verification = device.verify()
    finally:
        device.close()
    totals = {total for _, total in seller.attempted}
    duplicates = sum(len(in_fn[total]) - 1 for total in totals if len(in_fn.get(total, ())) > 1)
    lost = list(seller.given_up)
    mismatched: list[str] = []
    for key, (total, result) in seller.results.items():
        documents = in_fn.get(total, [])
        if not documents:
            lost.append(f"{key}: done as document {result.document_number}, not in the FN")
        elif (result.document_number, result.fiscal_sign) not in documents:
            mismatched.append(
                f"{key}: result says document {result.document_number} sign "
                f"{result.fiscal_sign}, the FN has {documents}"
            )
    if not verification.ok:
        verify_failures.append(f"at the end: {_first(list(verification.problems), 3)}")
    foreign = sorted(set(in_fn) - totals)

    note = f"{killed} kills in {elapsed:.0f} s"
    if emulator.refused_starts:
        note += f"; {emulator.refused_starts} restarts found the port busy and were retried"
    yield Figure("soak.crash.kills", killed, "count", note)
    yield Figure("soak.crash.receipts", len(seller.results), "count", "done, each with its key")
    yield Figure(
        "soak.crash.interrupted", seller.interrupted, "count", "receipts done after a failed try"
    )
    yield Figure(
        "soak.crash.failed_tries", seller.failures.total(), "count", _counts(seller.failures)
    )
    yield Figure("soak.crash.duplicates", duplicates, "count", "must be 0")
    yield Figure("soak.crash.lost", len(lost), "count", "must be 0")
    yield Figure("soak.crash.mismatched", len(mismatched), "count", "must be 0")
    yield Figure("soak.crash.verify_failures", len(verify_failures), "count", "must be 0")
    problems += seller.crashed
    if duplicates:
        problems.append(f"{duplicates} receipt(s) fiscalized more than once")
    problems += lost + mismatched + verify_failures
    if foreign:
        problems.append(f"the FN holds receipts nobody sold: totals {foreign[:10]}")
    if killed < kills and not problems:
        problems.append(f"only {killed} of {kills} kills happened")
    _fail_if("crash", problems)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counter.most_common())


# -- concurrency ----------------------------------------------------------------------------------


@dataclass
class _Client:
    """One of the concurrent clients: its own connection, its own receipts."""

    number: int
    url: str
    count: int
    lock: threading.Lock | None  # None: the unserialized probe
    base: int
    results: list[tuple[int, FiscalResult]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the driver's typed errors
    outcomes: dict[int, str] = field(default_factory=dict)  # total -> done/failed/unknown
    crashed: list[str] = field(default_factory=list)
    reads: list[tuple[int, object]] = field(default_factory=list)  # (number, document read)
    read_failures: list[str] = field(default_factory=list)

    def sell(self, start: threading.Barrier) -> None:
        try:
            with kkt.connect(self.url) as register:
                start.wait(30)
                for index in range(self.count):
                    self._sell_one(register, self.base + self.number * 1_000 + index)
        except Exception as error:
            self.crashed.append(f"client {self.number}: {type(error).__name__}: {error}")

    def _sell_one(self, register: Register, total: int) -> None:
        try:
            if self.lock is None:
                result = register.sell(_receipt(total))
            else:
                with self.lock:
                    result = register.sell(_receipt(total))
            self.results.append((total, result))
            self.outcomes[total] = "done"
            if self.lock is not None:
                # Reads need no lock: they run while another client's receipt is open.
                register.status()
                found = register.find_document(result.document_number)
                if found.fiscal_sign != result.fiscal_sign:
                    self.errors.append(
                        f"client {self.number}: document {result.document_number} has sign "
                        f"{found.fiscal_sign}, the sale said {result.fiscal_sign}"
                    )
        except kkt.OutcomeUnknown as error:
            self.outcomes[total] = "unknown"
            self.errors.append(f"client {self.number}, receipt {total}: {_describe(error)}")
        except kkt.KktError as error:
            self.outcomes[total] = "failed"
            self.errors.append(f"client {self.number}, receipt {total}: {_describe(error)}")

    def read(self, start: threading.Barrier, numbers: list[int]) -> None:
        try:
            with kkt.connect(self.url) as register:
                start.wait(30)
                for number in numbers:
                    try:
                        self.reads.append((number, register.document(number)))
                    except kkt.KktError as error:
                        self.read_failures.append(f"document {number}: {_describe(error)}")
        except Exception as error:
            self.crashed.append(f"client {self.number}: {type(error).__name__}: {error}")


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error)[:160]}"


def _run_clients(clients: list[_Client], work: Callable[[_Client], Callable[[], None]]) -> float:
    threads = [
        threading.Thread(target=work(client), name=f"soak-client-{client.number}", daemon=True)
        for client in clients
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    if any(thread.is_alive() for thread in threads):
        raise AssertionError("soak concurrency: a client did not finish within 600 s (a hang?)")
    return time.monotonic() - started


@case("concurrency", soak=True)
def concurrency(bench: Bench) -> Iterator[Figure]:
    """Eight clients, each its own connection, selling on one emulated register."""
    count = bench.size(CONCURRENCY_QUICK, CONCURRENCY_FULL)
    problems: list[str] = []
    device = open_device(bench.work / "concurrency")
    lock = threading.Lock()
    clients = [_Client(number, "", count, lock, 40_000) for number in range(CONCURRENCY_CLIENTS)]
    try:
        with _tally_logs(), EmulatorThread(device, Faults()) as emulator:
            url = f"socket://127.0.0.1:{emulator.port}"
            with kkt.connect(url) as register:
                register.open_shift()
            start = threading.Barrier(len(clients))
            for client in clients:
                client.url = url
            elapsed = _run_clients(clients, lambda client: lambda: client.sell(start))
        in_fn = _receipts_by_total(device)
        numbers = [record.number for record in device.fn._store.records()]
        verification = device.verify()
    finally:
        device.close()

    results = [pair for client in clients for pair in client.results]
    errors = [error for client in clients for error in client.errors + client.crashed]
    yield Figure(
        "soak.concurrency.receipts",
        len(results),
        "count",
        f"{len(clients)} clients x {count}, sales under one lock, reads unlocked",
    )
    yield Figure("soak.concurrency.errors", len(errors), "count", "must be 0")
    yield Figure("soak.concurrency.receipts_per_s", len(results) / elapsed, "1/s")
    problems += errors
    document_numbers = [result.document_number for _, result in results]
    if len(set(document_numbers)) != len(document_numbers):
        shared = [n for n, c in Counter(document_numbers).items() if c > 1]
        problems.append(f"two sales returned the same document: {shared[:10]}")
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"the FN's document numbers are not contiguous: {numbers[:20]}...")
    for total, result in results:
        if in_fn.get(total) != [(result.document_number, result.fiscal_sign)]:
            problems.append(
                f"receipt {total}: the sale said document {result.document_number}, "
                f"the FN has {in_fn.get(total)}"
            )
    sold = {total for client in clients for total in client.outcomes}
    foreign = sorted(set(in_fn) - sold)
    if foreign:
        problems.append(f"the FN holds receipts nobody sold: totals {foreign[:10]}")
    if not verification.ok:
        problems.append(f"the FN does not verify: {_first(list(verification.problems))}")

    yield from _unserialized(bench, problems)
    _fail_if("concurrency", problems)


def _unserialized(bench: Bench, problems: list[str]) -> Iterator[Figure]:
    """The same clients without the lock: measured, reported, not an invariant of the driver.

    A register keeps one open receipt and one document-read cursor for all its connections, and
    the driver's lock is per `Register` object, so clients on separate connections that do not
    serialise their receipts refuse, cancel and close each other's receipts: a sale can come back
    done with a document that holds another client's item (``misattributed``), and one can fail
    although its item went into the FN in another client's receipt (``failed_but_fiscal``).
    Concurrent document reads break each other's FF3A/FF3B cursor.  Only the FN's own
    consistency is an invariant here.
    """
    count = bench.size(UNSERIALIZED_QUICK, UNSERIALIZED_FULL)
    device = open_device(bench.work / "unserialized")
    clients = [_Client(number, "", count, None, 60_000) for number in range(CONCURRENCY_CLIENTS)]
    rng = random.Random(7)
    try:
        with _tally_logs() as logs, EmulatorThread(device, Faults()) as emulator:
            url = f"socket://127.0.0.1:{emulator.port}"
            with kkt.connect(url) as register:
                register.open_shift()
            for client in clients:
                client.url = url
            start = threading.Barrier(len(clients))
            _run_clients(clients, lambda client: lambda: client.sell(start))
            with kkt.connect(url) as register:
                last = register.fn_status().last_document
                plan = {
                    client.number: [rng.randint(1, last) for _ in range(UNSERIALIZED_READS)]
                    for client in clients
                }
                together = threading.Barrier(len(clients))
                _run_clients(
                    clients, lambda client: lambda: client.read(together, plan[client.number])
                )
                truth = {
                    n: register.document(n) for n in sorted({n for p in plan.values() for n in p})
                }
        in_fn = _receipts_by_total(device)
        verification = device.verify()
    finally:
        device.close()

    outcomes = {total: outcome for client in clients for total, outcome in client.outcomes.items()}
    tally = Counter(outcomes.values())
    results = [pair for client in clients for pair in client.results]
    misattributed = [
        total
        for total, result in results
        if (result.document_number, result.fiscal_sign) not in in_fn.get(total, [])
    ]
    phantom = [t for t, outcome in outcomes.items() if outcome == "failed" and in_fn.get(t)]
    duplicates = sum(len(v) - 1 for v in in_fn.values() if len(v) > 1)
    reads = [pair for client in clients for pair in client.reads]
    wrong = [number for number, document in reads if document != truth[number]]
    read_failures = sum(len(client.read_failures) for client in clients)
    crashed = [text for client in clients for text in client.crashed]
    name = "soak.concurrency.nolock"
    note = "no lock; informational"
    yield Figure(f"{name}.receipts", len(outcomes), "count", note)
    yield Figure(f"{name}.done", tally["done"], "count", note)
    yield Figure(
        f"{name}.refused", tally["failed"], "count", f"{note}; {logs.levels['WARNING']} warnings"
    )
    yield Figure(f"{name}.unknown", tally["unknown"], "count", note)
    yield Figure(f"{name}.misattributed", len(misattributed), "count", "done, but the FN disagrees")
    yield Figure(f"{name}.failed_but_fiscal", len(phantom), "count", note)
    yield Figure(f"{name}.duplicates", duplicates, "count", note)
    yield Figure(f"{name}.document_reads", len(reads) + read_failures, "count", note)
    yield Figure(f"{name}.document_failures", read_failures, "count", "shared FF3A/FF3B cursor")
    yield Figure(f"{name}.document_wrong", len(wrong), "count", "read returned another content")
    problems += crashed
    if not verification.ok:
        problems.append(
            f"unserialized: the FN does not verify: {_first(list(verification.problems))}"
        )


# -- fuzz -----------------------------------------------------------------------------------------

_PASSWORD_BYTES = PASSWORD.to_bytes(4, "little")
_CONTROLS = (STX, ENQ, ACK, NAK, FILLER)


def _known_codes() -> list[bytes]:
    return [code_bytes(code) for code in sorted(request_types())]


def _valid_requests() -> list[bytes]:
    """Well-formed commands to mutate (and to send as they are, so the fuzz reaches the FN)."""
    requests: list[Any] = [
        classic.GetDeviceType(),
        classic.GetShortStatus(PASSWORD),
        classic.GetLongStatus(PASSWORD),
        classic.ReadTable(PASSWORD, 18, 1, 1),
        classic.OpenReceipt(PASSWORD, ReceiptType.SALE),
        classic.Subtotal(PASSWORD),
        classic.CancelReceipt(PASSWORD),
        fn.GetFnStatus(PASSWORD),
        fn.GetShiftParams(PASSWORD),
        fn.FindDocument(PASSWORD, 1),
        fn.RequestDocumentTlv(PASSWORD, 1),
        fn.ReadDocumentTlv(PASSWORD),
        fn.BeginOpenShift(PASSWORD),
        fn.FnOpenShift(PASSWORD),
        fn.OperationV2(
            PASSWORD,
            OperationType.INCOME,
            Decimal(1),
            100,
            None,
            None,
            TaxRate.VAT20,
            1,
            4,
            1,
            "Товар",
        ),
        fn.CloseReceiptV2(PASSWORD, (100,) + (0,) * 15, 0, (0,) * 6, TaxSystem.OSN, ""),
    ]
    return [request.encode() for request in requests]


class _Mutator:
    """Seeded garbage and damaged frames: bit flips, truncations, wrong LRC, bogus lengths,
    stray control bytes, random command codes with random parameters."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.codes = _known_codes()
        self.valid = _valid_requests()

    def garbage(self, low: int, high: int) -> bytes:
        return self.rng.randbytes(self.rng.randint(low, high))

    def payload(self) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.35:
            return rng.choice(self.valid)
        if roll < 0.7:  # a known command with the right password and random parameters
            password = _PASSWORD_BYTES if rng.random() < 0.8 else b""
            return (rng.choice(self.codes) + password + self.garbage(0, 60))[:255]
        if roll < 0.85:  # any code at all
            code = bytes((0xFF, rng.randrange(256))) if rng.random() < 0.5 else self.garbage(1, 1)
            return (code + self.garbage(0, 60))[:255]
        return self.garbage(1, 255)

    def mutate(self, data: bytes) -> bytes:
        """One random damage to ``data`` (a frame, or any bytes)."""
        rng = self.rng
        if len(data) < 2:
            return data + self.garbage(0, 4)
        out = bytearray(data)
        kind = rng.randrange(8)
        if kind == 0:  # bit flips
            for _ in range(rng.randint(1, 3)):
                out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        elif kind == 1:  # cut short
            del out[rng.randrange(1, len(out)) :]
        elif kind == 2:  # wrong LRC
            out[-1] ^= rng.randint(1, 255)
        elif kind == 3:  # a bogus length byte
            out[1] = rng.choice((0, 1, 2, 255, max(0, len(out) - 4), min(255, len(out) - 2)))
        elif kind == 4:  # a control byte in the middle
            out.insert(rng.randrange(len(out)), rng.choice(_CONTROLS))
        elif kind == 5:  # a slice sent twice
            start = rng.randrange(len(out))
            out[start:start] = out[start : start + rng.randint(1, 8)]
        elif kind == 6:  # trailing garbage
            out += self.garbage(1, 40)
        else:  # garbage in the middle
            position = rng.randrange(1, len(out))
            out[position:position] = self.garbage(1, 20)
        return bytes(out)

    def chunk(self) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.3:
            return encode_frame(self.payload())
        if roll < 0.65:
            return self.mutate(encode_frame(self.payload()))
        if roll < 0.8:
            return self.garbage(1, 300)
        if roll < 0.92:
            return bytes(rng.choice(_CONTROLS) for _ in range(rng.randint(1, 12)))
        return bytes((STX,)) + self.garbage(0, 3)  # a frame that never finishes

    def input(self) -> bytes:
        return b"".join(self.chunk() for _ in range(self.rng.choice((1, 1, 1, 2, 3))))


class _EmulatorTarget:
    """Raw TCP connections to the emulator that carry fuzz inputs; a connection lives for a
    random number of inputs, and the emulator's replies are read (and sometimes ACKed)."""

    def __init__(self, port: int, rng: random.Random) -> None:
        self.port = port
        self.rng = rng
        self.connection: socket.socket | None = None
        self.left = 0
        self.inputs = 0
        self.dropped = 0  # connections the emulator closed on us

    def deliver(self, data: bytes) -> None:
        if self.connection is None or self.left <= 0:
            self.close()
            self.connection = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            self.left = self.rng.randint(1, 10)
        self.left -= 1
        self.inputs += 1
        try:
            self.connection.sendall(data)
            self._drain(self.connection)
        except OSError:
            self.dropped += 1
            self.close()

    def _drain(self, connection: socket.socket) -> None:
        deadline = time.monotonic() + 0.05
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([connection], [], [], min(0.004, remaining))
            if not ready:
                return
            reply = connection.recv(65536)
            if not reply:
                raise ConnectionResetError("the emulator closed the connection")
            if STX in reply and self.rng.random() < 0.5:
                connection.sendall(bytes((ACK,)))

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _unanswered(url: str) -> str | None:
    """None when the register at ``url`` answers a device-type query (no password needed, so
    whatever the fuzz wrote into its tables), else what went wrong."""
    try:
        with kkt.connect(url, settings=PROBE_HOST) as register:
            register.raw(classic.GetDeviceType())
        return None
    except kkt.KktError as error:
        return _describe(error)


def _hypothesis_inputs(
    deliver: Callable[[bytes], None], until: float, seed: int, scratch: Path
) -> int:
    """Hypothesis-generated inputs until ``until``, in rounds of examples; 0 when hypothesis
    is not installed (it is a test dependency, not the package's)."""
    first_use = "hypothesis" not in sys.modules  # not inside a test run that configured it
    try:
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import seed as fixed_seed
        from hypothesis import strategies as st
    except ImportError:
        return 0
    if first_use:
        # Hypothesis keeps caches in ./.hypothesis: keep `kkt bench` out of the user's directory.
        from hypothesis.configuration import set_hypothesis_home_dir

        set_hypothesis_home_dir(scratch / "hypothesis")
    payloads = st.one_of(
        st.sampled_from(_valid_requests()),
        st.builds(
            lambda code, body: (code + _PASSWORD_BYTES + body)[:255],
            st.sampled_from(_known_codes()),
            st.binary(max_size=64),
        ),
        st.binary(min_size=1, max_size=255),
    )
    frames = payloads.map(encode_frame)

    def damage(frame: bytes, where: int, value: int) -> bytes:
        out = bytearray(frame)
        out[where % len(out)] = value
        return bytes(out)

    chunks = st.one_of(
        frames,
        st.builds(damage, frames, st.integers(0, 300), st.integers(0, 255)),
        st.builds(lambda frame, cut: frame[: 1 + cut % len(frame)], frames, st.integers(0, 300)),
        st.builds(lambda frame: frame[:-1] + bytes((frame[-1] ^ 0xA5,)), frames),
        st.binary(min_size=1, max_size=300),
        st.lists(st.sampled_from(_CONTROLS), min_size=1, max_size=16).map(bytes),
    )
    count = 0

    def one(data: bytes) -> None:
        nonlocal count
        if time.monotonic() < until:
            deliver(data)
            count += 1

    rounds = 0
    while time.monotonic() < until:
        run = settings(
            max_examples=100,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(given(st.lists(chunks, min_size=1, max_size=3).map(b"".join))(one))
        fixed_seed(seed + rounds)(run)()
        rounds += 1
    return count


def _fuzz_emulator(bench: Bench, seconds: float, problems: list[str]) -> Iterator[Figure]:
    device = open_device(bench.work / "fuzz-emulator")
    rng = random.Random(FUZZ_SEED)
    unanswered: list[str] = []
    executed: Counter[str] = Counter()  # what reached the register's command handlers
    execute = device.execute

    def counted(payload: bytes) -> bytes:
        answer = execute(payload)
        error = answer[2:3] if answer[:1] == b"\xff" else answer[1:2]
        executed["done" if error == b"\x00" else "refused"] += 1
        return answer

    device.execute = counted  # type: ignore[method-assign]
    try:
        with (
            _tally_logs() as logs,
            EmulatorThread(device, Faults(), settings=SOAK_DEVICE) as emulator,
        ):
            url = f"socket://127.0.0.1:{emulator.port}"
            with kkt.connect(url) as register:
                register.open_shift()  # so receipts can get far
            target = _EmulatorTarget(emulator.port, rng)
            started = time.monotonic()
            next_check = started + FUZZ_LIVENESS_SECONDS

            def deliver(data: bytes) -> None:
                nonlocal next_check
                target.deliver(data)
                if time.monotonic() >= next_check:
                    failure = _unanswered(url)
                    if failure is not None:
                        unanswered.append(f"after {target.inputs} inputs: {failure}")
                    next_check = time.monotonic() + FUZZ_LIVENESS_SECONDS

            try:
                generated = _hypothesis_inputs(
                    deliver, started + seconds / 2, FUZZ_SEED, bench.work
                )
                mutator = _Mutator(rng)
                while time.monotonic() < started + seconds:
                    deliver(mutator.input())
            finally:
                target.close()
            failure = _unanswered(url)
            if failure is not None:
                unanswered.append(f"at the end: {failure}")
        verification = device.verify()
    finally:
        device.close()
    yield Figure(
        "soak.fuzz.emulator.inputs",
        target.inputs,
        "count",
        f"{generated} from hypothesis, the rest mutated; {seconds:g} s",
    )
    yield Figure(
        "soak.fuzz.emulator.commands",
        executed.total(),
        "count",
        f"frames that reached the register: {executed['done']} done, {executed['refused']} refused",
    )
    yield Figure("soak.fuzz.emulator.unanswered", len(unanswered), "count", "must be 0")
    yield Figure(
        "soak.fuzz.emulator.internal_errors",
        logs.error_count,
        "count",
        "errors the emulator logged (answered 39h or dropped a link); must be 0",
    )
    yield Figure(
        "soak.fuzz.emulator.links_dropped", target.dropped, "count", "connections it closed on us"
    )
    problems += [f"the emulator stopped answering {text}" for text in unanswered]
    problems += [f"the emulator logged an error: {text}" for text in logs.errors]
    if not verification.ok:
        problems.append(
            f"the FN does not verify after the fuzz: {_first(list(verification.problems))}"
        )


class _Hang(BaseException):
    """A driver call outlived its bound.  Raised from the fake line's I/O; a BaseException, so
    no ``except Exception`` in the driver can swallow it."""


# How the fake register behaves during one call, with weights.
_PERSONALITIES = {
    "honest": 15,  # the emulator's own answers
    "mixed": 35,  # mostly honest; some answers random or mutated; some bytes damaged
    "mutated": 15,  # every answer mutated, bytes damaged
    "random": 10,  # every answer random (often the right code with random data)
    "silent": 5,  # takes commands, never answers
    "babble": 6,  # ignores the protocol: random bytes back for whatever is written
    "chatter": 4,  # random bytes without end
    "flaky": 10,  # honest, but the port fails now and then (OSError)
}


class _FakeRegisterLine:
    """A port whose far end is a fake register, in virtual time: waiting costs nothing, so a
    timeout of seconds passes at once and thousands of calls fit in a few seconds.

    Commands are executed by an in-process emulated register (so sales get far); what goes back
    depends on the call's personality.  Every read and write checks the bounds: an exchange
    past its hard bound (`HostSettings.exchange_limit`) or a call past its real-time limit is a
    hang (`_Hang`).
    """

    BYTE_TIME = 87e-6  # 115200 baud

    def __init__(self, device: ShtrihRegister, rng: random.Random) -> None:
        self.device = device
        self.rng = rng
        self.mutator = _Mutator(rng)
        self.timeout: float | None = 0.0
        self.now = 0.0
        self.personality = "honest"
        self.out = bytearray()
        self.link = ShtrihLink(Role.DEVICE, device=DeviceSettings(byte=0.05, confirm=0.2))
        self.exchange_deadline = math.inf  # virtual
        self.call_deadline = math.inf  # real
        self.exchanges = 0
        self.abort = False

    # -- the port ---------------------------------------------------------------------------------

    @property
    def in_waiting(self) -> int:
        return len(self.out)

    def write(self, data: bytes, /) -> int:
        self._check()
        self._maybe_fail()
        self.now += len(data) * self.BYTE_TIME
        if self.personality == "babble":
            if self.rng.random() < 0.7:
                self.out += self.mutator.chunk()
        else:
            self._handle(self.link.receive_data(bytes(data), self.now))
        return len(data)

    def read(self, size: int = 1, /) -> bytes:
        self._check()
        self._maybe_fail()
        if self.personality == "chatter":
            self.now += 0.01
            return self.mutator.garbage(1, 16)
        if not self.out:
            self._wait()
        chunk = bytes(self.out[:size])
        del self.out[:size]
        self.now += len(chunk) * self.BYTE_TIME
        return chunk

    def close(self) -> None:
        pass

    def reopen(self) -> _FakeRegisterLine:
        """A new connection: the far end starts afresh."""
        self.link = ShtrihLink(Role.DEVICE, device=DeviceSettings(byte=0.05, confirm=0.2))
        self.out.clear()
        return self

    def clock(self) -> float:
        return self.now

    # -- calls ------------------------------------------------------------------------------------

    def begin_call(self, personality: str) -> None:
        self.personality = personality
        self.exchanges = 0
        self.call_deadline = time.monotonic() + FUZZ_CALL_SECONDS
        if self.link.executing:  # a silent register "reboots" between calls
            self.link.power_cycle()

    # -- internals --------------------------------------------------------------------------------

    def _check(self) -> None:
        if self.abort:
            raise _Hang("stopped by the watchdog")
        if self.now > self.exchange_deadline:
            raise _Hang(
                f"an exchange ran {self.now - self.exchange_deadline:.1f} s past its hard bound"
            )
        if time.monotonic() > self.call_deadline:
            raise _Hang(f"a call ran for more than {FUZZ_CALL_SECONDS:g} s of real time")

    def _maybe_fail(self) -> None:
        if self.personality == "flaky" and self.rng.random() < 0.03:
            raise OSError("fuzz: the port failed")

    def _wait(self) -> None:
        """Nothing to read: let virtual time run to the far end's next timer or the timeout."""
        limit = None if self.timeout is None else self.now + self.timeout
        due = self.link.get_timer()
        if due is not None and (limit is None or due <= limit):
            self.now = max(self.now, due)
            self._handle(self.link.handle_timer(self.now))
        elif limit is None:
            raise _Hang("the driver waits without a timeout on a line that sends nothing")
        else:
            self.now = limit

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, CommandReceived):
                answer = self._answer(event.command)
                if answer is not None:
                    try:
                        self.link.send_answer(answer, self.now)
                    except FrameError:
                        self.link.power_cycle()
        data = self.link.data_to_send()
        if data:
            damaged = self.personality in ("mixed", "mutated") and self.rng.random() < 0.25
            self.out += self.mutator.mutate(data) if damaged else data
        if self.personality == "mixed" and self.rng.random() < 0.02:
            self.out += encode_frame(self.mutator.payload())  # a frame nobody asked for

    def _answer(self, command: bytes) -> bytes | None:
        honest = self.device.execute(command)
        personality, roll = self.personality, self.rng.random()
        if personality in ("honest", "flaky") or (personality == "mixed" and roll < 0.6):
            return honest
        if personality == "silent":
            return None
        if personality == "random" or (personality == "mixed" and roll < 0.8):
            return self._random_answer(command)
        return self._mutated_answer(honest)

    def _random_answer(self, command: bytes) -> bytes:
        rng = self.rng
        code = command[:2] if command[:1] == b"\xff" else command[:1]
        roll = rng.random()
        if roll < 0.5:
            return code + b"\x00" + self.mutator.garbage(0, 60)  # "done", with nonsense
        if roll < 0.7:
            return code + bytes((rng.randrange(256),))  # any error code
        if roll < 0.85:
            return rng.choice(self.mutator.codes) + self.mutator.garbage(0, 60)
        return self.mutator.garbage(1, 255)

    def _mutated_answer(self, honest: bytes) -> bytes:
        rng = self.rng
        out = bytearray(honest)
        kind = rng.randrange(5)
        if kind == 0:
            for _ in range(rng.randint(1, 3)):
                out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del out[rng.randint(1, len(out)) :]
        elif kind == 2:
            out += self.mutator.garbage(1, 40)
        elif kind == 3:
            out[rng.randrange(len(out))] = rng.randrange(256)
        else:
            error_at = 2 if out[:1] == b"\xff" else 1
            if len(out) > error_at:
                out[error_at] = rng.randrange(256)
        return bytes(out[:255]) or b"\x00"


class _BoundedCommander:
    """The session under test, with each exchange's hard bound armed on the fake line."""

    def __init__(
        self, session: ShtrihSession, line: _FakeRegisterLine, settings: HostSettings
    ) -> None:
        self.session = session
        self.line = line
        self.settings = settings

    def exchange(self, payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes:
        line = self.line
        line.exchanges += 1
        if line.exchanges > FUZZ_EXCHANGES_PER_CALL:
            raise _Hang(f"a call made more than {FUZZ_EXCHANGES_PER_CALL} exchanges")
        # The link's own safety net fires at exactly the bound; 1 s more is for byte times.
        line.exchange_deadline = line.now + self.settings.exchange_limit(answer_timeout) + 1.0
        try:
            return self.session.exchange(payload, answer_timeout=answer_timeout, resend=resend)
        finally:
            line.exchange_deadline = math.inf

    def close(self) -> None:
        self.session.close()


DriverCall = Callable[[Register, random.Random, int], object]

# The driver calls the fuzz makes (sales twice over: they have the most steps).
DRIVER_CALLS: tuple[tuple[str, DriverCall], ...] = (
    ("status", lambda r, rng, n: r.status()),
    ("device_info", lambda r, rng, n: r.device_info()),
    ("fn_status", lambda r, rng, n: r.fn_status()),
    ("shift_info", lambda r, rng, n: r.shift_info()),
    ("clock", lambda r, rng, n: r.clock()),
    ("ofd_status", lambda r, rng, n: r.ofd_status()),
    ("find_document", lambda r, rng, n: r.find_document(rng.randint(0, 60))),
    ("document", lambda r, rng, n: r.document(rng.randint(1, 60))),
    ("registration", lambda r, rng, n: r.registration()),
    ("open_shift", lambda r, rng, n: r.open_shift("Кассир")),
    ("close_shift", lambda r, rng, n: r.close_shift()),
    ("x_report", lambda r, rng, n: r.x_report()),
    ("cash_in", lambda r, rng, n: r.cash_in(rng.randint(1, 10_000))),
    ("sell", lambda r, rng, n: r.sell(_receipt(100 + n))),
    ("sell", lambda r, rng, n: r.sell(_receipt(100 + n))),
    ("sell_with_key", lambda r, rng, n: r.sell(_receipt(100 + n), key=f"fuzz-{n}")),
    ("sell_with_key", lambda r, rng, n: r.sell(_receipt(100 + n), key=f"fuzz-{n}")),
    ("sell_return", lambda r, rng, n: r.sell_return(_receipt(100 + n))),
    ("correction", lambda r, rng, n: r.correction(Operation.SELL, 100 + n, reason="fuzz")),
)


@dataclass
class _DriverFuzz:
    line: _FakeRegisterLine
    journal: Journal
    rng: random.Random
    settings: HostSettings = field(default_factory=HostSettings)
    calls: int = 0
    typed: Counter[str] = field(default_factory=Counter)
    untyped: list[str] = field(default_factory=list)  # "ErrorType at file:line", one per call
    examples: dict[str, str] = field(default_factory=dict)  # the first call of each kind
    hangs: list[str] = field(default_factory=list)

    def run(self, until: float) -> None:
        session = self._session()
        names, weights = list(_PERSONALITIES), list(_PERSONALITIES.values())
        while time.monotonic() < until and not self.line.abort:
            name, call = self.rng.choice(DRIVER_CALLS)
            personality = self.rng.choices(names, weights)[0]
            self.line.begin_call(personality)
            commander = _BoundedCommander(session, self.line, self.settings)
            register = Register(commander, password=PASSWORD, journal=self.journal)
            self.calls += 1
            try:
                call(register, self.rng, self.calls)
            except kkt.KktError as error:
                self.typed[type(error).__name__] += 1
            except _Hang as hang:
                self.hangs.append(f"{name} ({personality}): {hang}")
                session = self._session()  # the old one is stuck mid-exchange
            except Exception as error:
                where = traceback.extract_tb(error.__traceback__)[-1]
                kind = f"{type(error).__name__} at {Path(where.filename).name}:{where.lineno}"
                self.untyped.append(kind)
                self.examples.setdefault(kind, f"{name} ({personality}): {str(error)[:200]}")
                session = self._session()

    def _session(self) -> ShtrihSession:
        line = self.line.reopen()
        return ShtrihSession(line, settings=self.settings, clock=line.clock, reopen=line.reopen)


def _fuzz_driver(bench: Bench, seconds: float, problems: list[str]) -> Iterator[Figure]:
    state = bench.work / "fuzz-driver"
    device = open_device(state)
    journal = Journal(bench.work / "fuzz-journal.sqlite")
    rng = random.Random(FUZZ_SEED + 1)
    fuzz = _DriverFuzz(_FakeRegisterLine(device, rng), journal, rng)
    try:
        with _tally_logs():
            device.execute(fn.BeginOpenShift(PASSWORD).encode())
            device.execute(fn.FnOpenShift(PASSWORD).encode())
            worker = threading.Thread(
                target=fuzz.run,
                args=(time.monotonic() + seconds,),
                name="soak-fuzz-driver",
                daemon=True,  # a call stuck without I/O cannot be stopped: do not wait on exit
            )
            worker.start()
            worker.join(seconds + FUZZ_CALL_SECONDS + 10)
            if worker.is_alive():
                fuzz.line.abort = True  # a call doing I/O ends at its next read or write
                worker.join(10)
            if worker.is_alive():
                fuzz.hangs.append("a driver call never returned and did no I/O")
    finally:
        journal.close()
        device.close()
    yield Figure(
        "soak.fuzz.driver.calls",
        fuzz.calls,
        "count",
        f"{seconds:g} s; typed errors: {_counts(fuzz.typed) or 'none'}",
    )
    yield Figure("soak.fuzz.driver.typed_errors", fuzz.typed.total(), "count", "kkt.KktError")
    yield Figure("soak.fuzz.untyped_errors", len(fuzz.untyped), "count", "must be 0")
    yield Figure("soak.fuzz.hangs", len(fuzz.hangs), "count", "must be 0")
    problems += [
        f"the driver raised {kind} ({count} calls; first: {fuzz.examples[kind]})"
        for kind, count in Counter(fuzz.untyped).most_common()
    ]
    problems += [f"a driver call hung: {text}" for text in fuzz.hangs]


@case("fuzz", soak=True)
def fuzz(bench: Bench) -> Iterator[Figure]:
    """Garbage and mutated frames at the emulator (over TCP) and at the driver (a fake
    register), for a fixed time."""
    seconds = FUZZ_SECONDS_QUICK if bench.quick else FUZZ_SECONDS_FULL
    problems: list[str] = []
    yield from _fuzz_emulator(bench, seconds / 2, problems)
    yield from _fuzz_driver(bench, seconds / 2, problems)
    _fail_if("fuzz", problems)
