"""``kkt bench archive`` (alias ``fn``): how fast the emulated FN stores documents durably, and
whether it stays fast as its archive grows.

Figures, all from one run on the same disk:

* ``fsync.raw_per_s`` -- the disk's own rate of small write + fsync pairs (the ceiling);
* ``fn.durable.docs_per_s`` -- receipts formed and committed by `SqliteStore` (WAL, FULL sync);
* ``fn.durable.ratio`` -- the two divided (the target is >= 0.5);
* ``archive.<size>.docs_per_s`` and ``archive.<size>.rss_mb`` -- the same with ``size`` documents
  (``empty``, ``20k``, ``100k``, ``1m``) already archived (the archives are built once, quickly and
  non-durably, and cached), measured in a fresh process so RSS is the FN's own;
  ``archive.ratio_<size>`` -- that rate over the empty one; ``archive.rss_mb_<size>`` likewise.

Medians of several rounds are printed; the machine may be noisy, so compare ratios from one run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from kkt.emulator.clock import ManualClock
from kkt.emulator.fn import FiscalStorage, FnConfig, Registration, SqliteStore, VatSums
from kkt.protocols.ffd import Payments, TlvList, make_rnm

from . import Bench, Figure, case, fsync_rate, rate

START = dt.datetime(2026, 1, 10, 9, 0)
INN = "7707083893"
SERIAL = "0012345678"
OFD_INN = "7728168971"
ITEM: TlvList = [
    (
        1059,
        [
            (1030, "Товар для замера"),
            (1079, 12_345),
            (1043, 12_345),
            (1199, 1),
            (1214, 4),
            (1212, 1),
        ],
    )
]
CONFIG = FnConfig(archive_capacity=10_000_000, key_life_days=1110)


def _open_fn(path: Path, *, durable: bool) -> FiscalStorage:
    fn = FiscalStorage(SqliteStore(path, durable=durable), ManualClock(START), config=CONFIG)
    if fn.state.registration is None:
        rnm = make_rnm("0000000001", INN, SERIAL)
        fn.register(
            Registration(inn=INN, rnm=rnm, kkt_serial=SERIAL, tax_systems=1, ofd_inn=OFD_INN)
        )
    if not fn.state.shift_open:
        fn.open_shift()
    return fn


def _sell(fn: FiscalStorage) -> None:
    fn.receipt(1, 12_345, Payments(cash=12_345), VatSums(vat20=2_057), ITEM)


def _warm_fn(path: Path, count: int) -> FiscalStorage:
    """A durable FN, ``count // 2`` receipts in: its WAL has reached its working size."""
    fn = _open_fn(path, durable=True)
    for _ in range(count // 2):
        _sell(fn)
    return fn


def durable_rate(path: Path, count: int) -> float:
    fn = _warm_fn(path, count)
    try:
        return rate(lambda: _sell(fn), count)
    finally:
        fn.close()


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def cached_archive(size: int, cache: Path, log: Callable[[str], None]) -> Path:
    """An FN database with ``size`` receipts, built once (synchronous=OFF) and kept in ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"archive-{size}.sqlite"
    if path.exists():
        return path
    partial = path.with_suffix(".building")
    for leftover in cache.glob(partial.name + "*"):
        leftover.unlink()
    log(f"building a {size:,}-document archive once (cached in {cache}) ...")
    fn = _open_fn(partial, durable=False)
    while fn.state.last_number < size:
        _sell(fn)
    fn.close()
    partial.rename(path)
    return path


def _measure_in_child(path: Path, count: int) -> dict[str, float]:
    code = (
        "import json, sys; from pathlib import Path; from kkt.tools.bench import archive as b;"
        "p = Path(sys.argv[1]); r = b.durable_rate(p, int(sys.argv[2]));"
        "print(json.dumps({'rate': r, 'rss': b._rss_mb()}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path), str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, float] = json.loads(result.stdout)
    return data


def _label(size: int) -> str:
    if size == 0:
        return "empty"
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000}m"
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


@case("archive")
def archive_case(bench: Bench) -> Iterator[Figure]:
    rounds = 5 if bench.quick else 9
    docs = 300 if bench.quick else 1000
    sizes = [0, 20_000] if bench.quick else [0, 100_000, 1_000_000]
    work = bench.work
    # Raw fsync and durable documents alternate, round by round, so that a noisy neighbour slows
    # both; the ratio is taken per round, then the median of the rounds.
    fsync, durable, ratios = [], [], []
    fn = _warm_fn(work / "durable.sqlite", docs)
    for _ in range(rounds):
        fsync.append(fsync_rate(work, docs))
        durable.append(rate(lambda: _sell(fn), docs))
        ratios.append(durable[-1] / fsync[-1])
    fn.close()
    yield Figure("fsync.raw_per_s", statistics.median(fsync), "1/s", "small write + fsync")
    yield Figure("fn.durable.docs_per_s", statistics.median(durable), "1/s", "FN only, durable")
    yield Figure("fn.durable.ratio", statistics.median(ratios), "ratio", "target >= 0.5")
    by_size: dict[int, float] = {}
    for size in sizes:
        source = cached_archive(size, bench.cache, bench.log) if size else None
        target = work / f"archive-{size}.sqlite"
        if source is not None:
            shutil.copyfile(source, target)
        rates, rss = [], []
        for _ in range(max(3, rounds // 2)):
            measured = _measure_in_child(target, docs)
            rates.append(measured["rate"])
            rss.append(measured["rss"])
        target.unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(str(target) + suffix).unlink(missing_ok=True)
        by_size[size] = statistics.median(rates)
        label = _label(size)
        yield Figure(f"archive.{label}.docs_per_s", by_size[size], "1/s")
        yield Figure(f"archive.rss_mb_{label}", max(rss), "MB", "target <= 200" if size else "")
        if size:
            ratio = by_size[size] / by_size[0]
            yield Figure(f"archive.ratio_{label}", ratio, "ratio", "target >= 0.9")
