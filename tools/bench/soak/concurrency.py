"""The ``concurrency`` soak: eight clients, each on its own TCP connection to one emulated
register.  A register has ONE open receipt and ONE document-read cursor, whoever is connected, so
the clients serialise their sales with one lock (reads run unlocked, interleaved with the others'
receipts).  The same clients without the lock are measured too and reported as ``nolock``
figures: what happens to an application that skips the lock (not an invariant of the driver)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device

import kkt
from kkt import FiscalResult, Register

from .. import Bench, Figure, case
from .common import describe, fail_if, first_few, receipt_for, receipts_by_total, tally_logs

# -- sizes and timings (module constants: tests shrink them) -------------------------------------

CONCURRENCY_CLIENTS = 8
CONCURRENCY_QUICK = 10  # receipts per client
CONCURRENCY_FULL = 100
UNSERIALIZED_QUICK = 10  # receipts per client in the probe without the lock
UNSERIALIZED_FULL = 30
UNSERIALIZED_READS = 10  # documents each client reads in that probe


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
                result = register.sell(receipt_for(total))
            else:
                with self.lock:
                    result = register.sell(receipt_for(total))
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
            self.errors.append(f"client {self.number}, receipt {total}: {describe(error)}")
        except kkt.KktError as error:
            self.outcomes[total] = "failed"
            self.errors.append(f"client {self.number}, receipt {total}: {describe(error)}")

    def read(self, start: threading.Barrier, numbers: list[int]) -> None:
        try:
            with kkt.connect(self.url) as register:
                start.wait(30)
                for number in numbers:
                    try:
                        self.reads.append((number, register.document(number)))
                    except kkt.KktError as error:
                        self.read_failures.append(f"document {number}: {describe(error)}")
        except Exception as error:
            self.crashed.append(f"client {self.number}: {type(error).__name__}: {error}")


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
        with tally_logs(), ServiceThread(device, Faults()) as emulator:
            url = f"socket://127.0.0.1:{emulator.port}"
            with kkt.connect(url) as register:
                register.open_shift()
            start = threading.Barrier(len(clients))
            for client in clients:
                client.url = url
            elapsed = _run_clients(clients, lambda client: lambda: client.sell(start))
        in_fn = receipts_by_total(device)
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
        problems.append(f"the FN does not verify: {first_few(list(verification.problems))}")

    yield from _unserialized(bench, problems)
    fail_if("concurrency", problems)


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
        with tally_logs() as logs, ServiceThread(device, Faults()) as emulator:
            url = f"socket://127.0.0.1:{emulator.port}"
            with kkt.connect(url) as register:
                register.open_shift()
            for client in clients:
                client.url = url
            start = threading.Barrier(len(clients))
            _run_clients(clients, lambda client: lambda: client.sell(start))
            with kkt.connect(url) as register:
                last = register.fn_info().last_document
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
        in_fn = receipts_by_total(device)
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
            f"unserialized: the FN does not verify: {first_few(list(verification.problems))}"
        )
