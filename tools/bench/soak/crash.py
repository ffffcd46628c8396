"""The ``crash`` soak: the emulator runs as its own process (``kkt emulator serve``) and is killed
with SIGKILL at random instants while the driver sells with a journal and one idempotency key per
receipt; it is restarted at once on the same state and port, and the driver retries each receipt
with its key until it is done.  The FN verifies after every kill; at the end every key has exactly
one document, with the number and sign its result gave."""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kkt.emulator.shtrih import open_device
from kkt.protocols.shtrih.link import HostSettings

import kkt
from kkt import FiscalResult, Register

from .. import Bench, Figure, case
from ..served import EmulatorServer
from .common import counts, fail_if, first_few, receipt_for, receipts_by_total, tally_logs

# -- sizes and timings (module constants: tests shrink them) -------------------------------------

CRASH_KILLS_QUICK = 10
CRASH_KILLS_FULL = 100
CRASH_UP_SECONDS = (0.05, 0.6)  # the emulator lives this long (uniform) between kills
CRASH_RECEIPT_ATTEMPTS = 3000  # one receipt's tries before the soak calls it lost
CRASH_RECEIPT_SECONDS = 90.0  # ... and its time
CRASH_RETRY_PAUSE = 0.02  # between two tries of one receipt
# The crash soak's emulator is a separate process that starts, fsyncs and dies: looser timing.
CRASH_HOST = HostSettings(ack=0.5, byte=0.3, quiet=0.1, probe=0.3, answer=10.0)


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
                self.results[key] = (total, self.register.sell(receipt_for(total), key=key))
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
    emulator = EmulatorServer(state, bench.work / "crash-emulator.log")
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
        with tally_logs():
            emulator.start()
            register = kkt.connect(
                emulator.url, journal=bench.work / "crash-journal.sqlite", settings=CRASH_HOST
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
                    verify_failures.append(f"after kill {killed}: {first_few(broken, 3)}")
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
        in_fn = receipts_by_total(device)
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
        verify_failures.append(f"at the end: {first_few(list(verification.problems), 3)}")
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
        "soak.crash.failed_tries", seller.failures.total(), "count", counts(seller.failures)
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
    fail_if("crash", problems)
