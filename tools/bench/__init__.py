"""``kkt bench``: figures anyone can reproduce, printed by cases.

A case is a function that takes a `Bench` and yields `Figure`s; `case` registers it under a group
name (``link``, ``receipts``, ``archive``, ``farm``, ``wire``, ``ofd``, ``cloud``, and the soaks).
Figures are printed as they come, as a table or, with ``--json``, one ``{"case", "value",
"unit"}`` object per line, with stable case names (``link.tcp.status_per_s`` ...).  Each case has a
short size (``--quick``, the whole bench in about a minute) and a full one.  The machine may be
noisy: cases report medians of rounds, and ratios measured within one run.
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from kkt import Item, Payments, Receipt, Vat

# The modules whose cases register themselves on import, in the order `kkt bench` runs them, and
# the soaks' modules (registered by name, run only when asked for).
CASE_MODULES = ("link", "receipts", "archive", "farm", "wire", "ofd", "cloud")
SOAK_MODULES = (
    "soak.lossy",
    "soak.crash",
    "soak.concurrency",
    "soak.fuzz",
    "soak.keys",
    "soak.ofd",
    "soak.relay",
    "soak.cloud_crash",
)


@dataclass(frozen=True, slots=True)
class Figure:
    case: str  # stable name, e.g. "link.tcp.status_per_s"
    value: float
    unit: str  # "1/s", "ratio", "MB", "ms", "count"
    note: str = ""  # what a person should know (sizes, which target)


@dataclass
class Bench:
    """What a case may use: its size, a scratch directory, a cache for prebuilt data."""

    quick: bool
    work: Path  # scratch, removed after the run
    cache: Path  # kept between runs (large prebuilt archives)
    log: Callable[[str], None] = field(default=lambda text: None)

    def size(self, quick: int, full: int) -> int:
        return quick if self.quick else full

    def rounds(self) -> int:
        return 3 if self.quick else 7


CaseFunction = Callable[[Bench], Iterable[Figure]]
CASES: dict[str, CaseFunction] = {}
SOAKS: dict[str, CaseFunction] = {}


def case(name: str, *, soak: bool = False) -> Callable[[CaseFunction], CaseFunction]:
    """Register a case (or, with ``soak=True``, a soak run only when asked for by name)."""

    def register(function: CaseFunction) -> CaseFunction:
        (SOAKS if soak else CASES)[name] = function
        return function

    return register


def load_cases() -> None:
    """Import every case and soak module, then order the cases as `CASE_MODULES` lists them (a
    test may have imported one module before the others)."""
    for module in CASE_MODULES + SOAK_MODULES:
        importlib.import_module(f"{__name__}.{module}")
    rank = {name: index for index, name in enumerate(CASE_MODULES)}
    ordered = sorted(CASES.items(), key=lambda item: rank.get(item[0], len(rank)))
    CASES.clear()
    CASES.update(ordered)


# The receipt the cases sell: three items, cash.
RECEIPT = Receipt(
    items=(
        Item("Кофе", 19_900, Decimal(2), Vat.VAT20),
        Item("Круассан", 14_500, Decimal(1), Vat.VAT10),
        Item("Вода 0,5", 7_000, Decimal("1.5"), Vat.NONE),
    ),
    payments=Payments(cash=70_000),
)


def rate(action: Callable[[], object], count: int) -> float:
    """Operations per second of ``count`` actions in a row."""
    started = time.perf_counter()
    for _ in range(count):
        action()
    return count / (time.perf_counter() - started)


def median_rate(action: Callable[[], object], count: int, rounds: int) -> float:
    """Operations per second: the median over ``rounds`` timed runs of ``count`` actions."""
    return statistics.median(rate(action, count) for _ in range(rounds))


def fsync_rate(directory: Path, count: int) -> float:
    """This disk's rate of small write + fsync pairs (what every durable FN document costs)."""
    path = directory / "fsync.probe"
    block = b"x" * 512
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:

        def write_and_sync() -> None:
            os.write(fd, block)
            os.fsync(fd)

        return rate(write_and_sync, count)
    finally:
        os.close(fd)
        path.unlink()


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


class Printer:
    """Prints figures as they arrive: a table for people, JSON lines for scripts."""

    def __init__(self, out: TextIO, *, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.figures: list[Figure] = []

    def __call__(self, figure: Figure) -> None:
        self.figures.append(figure)
        if self.as_json:
            row = {"case": figure.case, "value": round(figure.value, 3), "unit": figure.unit}
            print(json.dumps(row), file=self.out, flush=True)
        else:
            note = f"  {figure.note}" if figure.note else ""
            print(f"{figure.case:42} {figure.value:12.2f} {figure.unit:6}{note}", file=self.out)
            self.out.flush()


def run(
    names: Iterable[str], printer: Printer, bench: Bench, *, soaks: Iterable[str] = ()
) -> Iterator[str]:
    """Run the named cases and soaks -- every case when neither is named -- and yield the names
    of those that failed."""
    load_cases()
    soaks = list(soaks)
    chosen = list(names) or ([] if soaks else list(CASES))
    for name in chosen:
        yield from _run_one(name, CASES, printer, bench)
    for name in soaks:
        yield from _run_one(name, SOAKS, printer, bench)


def _run_one(
    name: str, table: dict[str, CaseFunction], printer: Printer, bench: Bench
) -> Iterator[str]:
    try:
        for figure in table[name](bench):
            printer(figure)
    except Exception as error:  # a case's failure is a result to report, not a crash
        bench.log(f"{name}: failed: {type(error).__name__}: {error}")
        yield name
