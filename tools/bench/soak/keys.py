"""The ``keys`` soak: a shop's script retrying ``sell --key K`` through a bad line until it settles.

Each key is one sale (a total of its own).  The script calls the driver afresh for every try --
a new connection and the shared journal, as ``kkt sell FILE --key K`` run again does -- up to
`KEYS_TRIES` times per key, through a line that drops and flips bytes and a register that forgets
some answers after doing the work.  Every key must end done (the target: all but one of 25), no
sale may be in the FN twice, and a key reported done must be in the FN with its fiscal data.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device

import kkt
from kkt.journal import Journal

from .. import Bench, Figure, case
from .common import (
    SOAK_DEVICE,
    SOAK_HOST,
    describe,
    fail_if,
    first_few,
    receipt_for,
    receipts_by_total,
    tally_logs,
)

# -- sizes and rates (module constants: tests shrink them) ---------------------------------------

KEYS_QUICK = 8
KEYS_FULL = 25
KEYS_TRIES = 8  # calls of ``sell --key K`` per key before the script gives up on it
KEYS_DROP = 0.01  # share of bytes lost on the line, both directions
KEYS_FLIP = 0.01  # share of bytes with a flipped bit
KEYS_LOSE_RATE = 0.02  # share of answers the register forgets after doing the work
KEYS_TARGET = 24 / 25  # share of keys that must end done
KEYS_SECONDS = 1800.0  # the run stops trying after this long (and says so)


@case("keys", soak=True)
def keys(bench: Bench) -> Iterator[Figure]:
    """Keys retried through a lossy line: each settles, none is sold twice."""
    problems: list[str] = []
    yield from _keys_run(bench, KEYS_QUICK if bench.quick else KEYS_FULL, problems)
    fail_if("keys", problems)


def _keys_run(bench: Bench, count: int, problems: list[str]) -> Iterator[Figure]:
    name = "soak.keys"
    device = open_device(bench.work / "keys")
    journal_path = bench.work / "keys-journal.sqlite"
    faults = Faults(seed=14)
    tries: dict[int, int] = {}
    results: dict[int, tuple[int, int]] = {}  # total -> (document number, fiscal sign)
    untyped: list[str] = []
    started = time.monotonic()
    try:
        with tally_logs(), ServiceThread(device, faults, settings=SOAK_DEVICE) as emulator:
            url = f"socket://127.0.0.1:{emulator.port}"
            with kkt.connect(url, settings=SOAK_HOST) as register:
                register.open_shift()  # on a clean line: the soak is about the receipts
            faults.configure(drop=KEYS_DROP, corrupt=KEYS_FLIP, lose_rate=KEYS_LOSE_RATE, seed=14)
            for index in range(count):
                if time.monotonic() - started > KEYS_SECONDS:
                    problems.append(f"stopped after {index} of {count} keys ({KEYS_SECONDS:g} s)")
                    break
                total = 30_000 + index
                for attempt in range(1, KEYS_TRIES + 1):
                    tries[total] = attempt
                    try:
                        with kkt.connect(url, settings=SOAK_HOST, journal=journal_path) as register:
                            result = register.sell(receipt_for(total), key=f"order-{total}")
                        results[total] = (result.document_number, result.fiscal_sign)
                        break
                    except kkt.KktError:
                        continue  # the script tries again with the same key
                    except Exception as error:  # not the driver's own: a bug to report
                        untyped.append(f"key order-{total}: {describe(error)}")
                        break
                bench.log(f"soak keys: {index + 1}/{count} keys, {len(results)} done")
            faults.clear()
        in_fn = receipts_by_total(device)
        verification = device.verify()
    finally:
        device.close()
    journal = Journal(journal_path)
    try:
        pending = [
            total
            for total in tries
            if (entry := journal.get(f"order-{total}")) is not None and entry.state == "pending"
        ]
    finally:
        journal.close()

    doubles = [total for total in tries if len(in_fn.get(total, ())) > 1]
    wrong = [total for total, got in results.items() if got not in in_fn.get(total, ())]
    foreign = sorted(set(in_fn) - set(tries))
    spent = sorted(tries[total] for total in results)
    note = (
        f"{count} keys, up to {KEYS_TRIES} tries each; {KEYS_DROP:.0%} bytes dropped, "
        f"{KEYS_FLIP:.0%} flipped, {KEYS_LOSE_RATE:.0%} answers lost"
    )
    yield Figure(f"{name}.done", len(results), "count", note)
    yield Figure(f"{name}.tries_median", statistics.median(spent) if spent else 0, "count")
    yield Figure(f"{name}.tries_max", max(spent, default=0), "count")
    yield Figure(f"{name}.doubles", len(doubles), "count", "must be 0")
    yield Figure(f"{name}.pending", len(pending), "count", "keys left pending in the journal")
    yield Figure(f"{name}.wrong_result", len(wrong), "count", "done, not in the FN; must be 0")
    yield Figure(f"{name}.untyped_errors", len(untyped), "count", "not kkt.KktError; must be 0")
    yield Figure(f"{name}.seconds", time.monotonic() - started, "s")
    if len(results) < count * KEYS_TARGET:
        undone = [total for total in tries if total not in results]
        problems.append(
            f"{len(results)} of {count} keys done (target {KEYS_TARGET:.0%}); not done: "
            f"{undone[:10]}"
        )
    if doubles:
        problems.append(f"keys fiscalized more than once: totals {doubles[:10]}")
    if wrong:
        problems.append(f"keys done with fiscal data the FN does not hold: {wrong[:10]}")
    if foreign:
        problems.append(f"the FN holds receipts nobody sold: totals {foreign[:10]}")
    problems += [f"the driver raised an untyped error: {text}" for text in untyped]
    if not verification.ok:
        problems.append(f"the FN does not verify: {first_few(list(verification.problems))}")
