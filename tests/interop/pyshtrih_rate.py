"""Receipts per second of pyshtrih and of this driver on the same emulator pty (a measurement, not
a test: ``python tests/interop/pyshtrih_rate.py [COUNT]`` with the test extra installed).

One ``kkt emulator serve --pty`` process; pyshtrih sells COUNT receipts of two items (8Dh, 2 x 80h,
85h, with its own 10h polls before printing commands), disconnects, then `kkt.connect` on the same
pty sells COUNT receipts of the same two items (8Dh, 2 x FF46h, FF45h and its exactly-once reads).
Each figure is the median of three rounds.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pyshtrih
from kkt.tools.bench.served import EmulatorServer

import kkt

ITEMS = (("Молоко пастеризованное 3,2% 930 мл, ТетраПак", 8_990), ("Хлеб", 4_550))
CASH = 20_000


def median_rate(action: Callable[[], object], count: int) -> float:
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(count):
            action()
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def pyshtrih_rate(tty: Path, count: int) -> float:
    device = pyshtrih.ShtrihM01F(str(tty), 115200)
    device.connect()
    try:
        device.open_shift()

        def sell() -> None:
            device.open_check(0)
            for name, price in ITEMS:
                device.sale((name, 1_000, price), department_num=1, tax1=1)
            device.close_check(CASH)

        sell()  # warm up
        return median_rate(sell, count)
    finally:
        device.disconnect()


def driver_rate(tty: Path, count: int) -> float:
    receipt = kkt.Receipt(
        items=tuple(kkt.Item(name[:48], price, Decimal(1), kkt.Vat.VAT20) for name, price in ITEMS),
        payments=kkt.Payments(cash=CASH),
    )
    with kkt.connect(str(tty)) as register:
        register.sell(receipt)  # warm up
        return median_rate(lambda: register.sell(receipt), count)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with tempfile.TemporaryDirectory() as work:
        state, tty = Path(work) / "state", Path(work) / "tty"
        server = EmulatorServer(state, Path(work) / "emulator.log", pty=tty)
        server.start()
        try:
            theirs = pyshtrih_rate(tty, count)
            print(f"pyshtrih 2.0.6 on the pty: {theirs:.1f} receipts/s (2 items, 80h/85h)")
            print(
                f"kkt driver on the pty:     {driver_rate(tty, count):.1f} receipts/s (FF46h/FF45h)"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
