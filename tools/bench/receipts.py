"""``kkt bench receipts``: durable receipts per second, end to end, through the driver.

Each receipt is `Register.sell` of three items -- what an application calls -- so it counts the
whole exactly-once path: the FN's last document number first, open (8Dh), 3 x FF46, close (FF45),
then the document's record and the shift's numbers for the fiscal data returned.  The emulated FN
commits every receipt durably (fsync) before it answers.

* ``receipts.tcp.per_s`` / ``receipts.pty.per_s`` -- against ``kkt emulator serve`` in its own
  process, over TCP loopback and over a pseudo-terminal;
* ``receipts.atol.tcp.per_s`` / ``receipts.atol.pty.per_s`` -- the same receipt, the same driver
  call, against the emulator's ATOL personality (v3 task buffer: Add, its reply, Ack per command;
  the mode entered, EAh/EBh per item, 4Ah, the FN's record read back by A4h);
* ``receipts.inproc.per_s`` -- the emulator in this process (``emulator:DIR``), no wire;
* ``fsync.raw_per_s`` -- this disk's rate of small write + fsync pairs, measured between rounds;
* ``receipts.inproc.fsync_ratio`` -- in-process receipts over raw fsyncs, per round, median.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import kkt
from kkt import Item, Payments, Receipt, Register, Vat

from . import Bench, Figure, case
from .served import served_emulator

RECEIPT = Receipt(
    (
        Item("Кофе капучино", 19_900, Decimal(2), Vat.VAT20),
        Item("Круассан", 14_500, Decimal(1), Vat.VAT10),
        Item("Вода 0,5", 7_000, Decimal("1.5"), Vat.NONE),
    ),
    Payments(cash=70_000),
)


def _sell_rate(register: Register, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        register.sell(RECEIPT)
    return count / (time.perf_counter() - started)


def _fsync_rate(directory: Path, count: int) -> float:
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        started = time.perf_counter()
        for _ in range(count):
            os.write(fd, b"x" * 256)
            os.fsync(fd)
        return count / (time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()


def _wire_rate(url: str, bench: Bench, protocol: str = "shtrih") -> float:
    count = bench.size(60, 300)
    with kkt.connect(url, protocol=protocol) as register:
        if not register.status().shift_open:
            register.open_shift()
        register.sell(RECEIPT)  # warm up
        return statistics.median(_sell_rate(register, count) for _ in range(bench.rounds()))


@case("receipts")
def receipts_case(bench: Bench) -> Iterator[Figure]:
    with served_emulator(bench.work / "receipts-served", pty=bench.work / "receipts-tty") as served:
        yield Figure(
            "receipts.tcp.per_s", _wire_rate(served.tcp_url, bench), "1/s", "target >= 300"
        )
        assert served.pty is not None
        yield Figure("receipts.pty.per_s", _wire_rate(str(served.pty), bench), "1/s")
    atol_state, atol_tty = bench.work / "receipts-atol", bench.work / "receipts-atol-tty"
    with served_emulator(atol_state, pty=atol_tty, protocol="atol") as served:
        rate = _wire_rate(served.tcp_url, bench, "atol")
        yield Figure("receipts.atol.tcp.per_s", rate, "1/s")
        assert served.pty is not None
        rate = _wire_rate(str(served.pty), bench, "atol")
        yield Figure("receipts.atol.pty.per_s", rate, "1/s")
    count = bench.size(100, 500)
    receipts, fsyncs, ratios = [], [], []
    with kkt.connect(f"emulator:{bench.work / 'receipts-inproc'}") as register:
        register.open_shift()
        register.sell(RECEIPT)
        for _ in range(bench.rounds()):
            fsyncs.append(_fsync_rate(bench.work, count))
            receipts.append(_sell_rate(register, count))
            ratios.append(receipts[-1] / fsyncs[-1])
    yield Figure("receipts.inproc.per_s", statistics.median(receipts), "1/s")
    yield Figure("fsync.raw_per_s", statistics.median(fsyncs), "1/s", "same disk, same run")
    yield Figure("receipts.inproc.fsync_ratio", statistics.median(ratios), "ratio", "target >= 0.5")
