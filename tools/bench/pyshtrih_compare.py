"""Part of ``kkt bench wire``: this driver's 3-item sale against pyshtrih's, through the same
115200-baud line to the same emulated register.

pyshtrih (PyPI, the open Python driver for Shtrih-M) sells the old way, with no exactly-once
checks at all: open (8Dh), an 80h per item, close (85h) -- n + 2 commands, plus the 10h polls it
sends on its own before printing commands.  This driver sells `RECEIPT` (the same three items, the
same cash) with its whole exactly-once path: 3 x FF46 (the first opens the receipt), the subtotal
check (89h), FF45 and its answer's second copy (an ENQ replay, no command) in the steady
state.  Both talk to one serial-mode register (an `EmulatorProcess`, its FN durable) through one
`PacedLine` process; pyshtrih reaches the relay through pyserial's ``socket://``
port, as it would a COM port.

* ``wire.115200.kkt_3items_per_s`` / ``wire.115200.pyshtrih_3items_per_s`` -- receipts per
  second, medians of rounds, measured one after the other in the same run;
* ``wire.115200.kkt_over_pyshtrih`` -- the two divided (goal >= 1.5).

pyshtrih is a test dependency (``pip install pyshtrih``): without it the comparison is skipped
and says so.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import kkt

from . import RECEIPT, Figure
from .farm import HOST_SETTINGS, EmulatorProcess

BAUD = 115200
BYTE_TIME = 10 / BAUD
PYSHTRIH_TIMEOUT = 5.0  # seconds pyshtrih waits for a byte (its own default is 0.5 s per read)


def _rounds(sell: Callable[[], object], receipts: int, rounds: int) -> float:
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(receipts):
            sell()
        rates.append(receipts / (time.perf_counter() - started))
    return statistics.median(rates)


def _ours(url: str, receipts: int, rounds: int, warmup: int) -> float:
    with kkt.connect(url, settings=HOST_SETTINGS) as register:
        if not register.status().shift_open:
            register.open_shift()
        for _ in range(warmup):
            register.sell(RECEIPT)
        return _rounds(lambda: register.sell(RECEIPT), receipts, rounds)


def _theirs(pyshtrih: Any, serial: Any, url: str, receipts: int, rounds: int, warmup: int) -> float:
    device = pyshtrih.ShtrihM01F(url, BAUD, PYSHTRIH_TIMEOUT)
    # pyshtrih opens a `serial.Serial`; pyserial's URL form reaches the relay over TCP instead.
    device.protocol.serial = serial.serial_for_url(
        url,
        do_not_open=True,
        baudrate=BAUD,
        timeout=PYSHTRIH_TIMEOUT,
        write_timeout=PYSHTRIH_TIMEOUT,
    )
    items = [(item.name, int(Decimal(item.quantity) * 1000), item.price) for item in RECEIPT.items]
    cash = RECEIPT.payments.cash

    def sell() -> None:
        device.open_check(0)
        for item in items:
            device.sale(item, department_num=1, tax1=1)
        device.close_check(cash)

    device.connect()
    try:
        for _ in range(warmup):
            sell()
        return _rounds(sell, receipts, rounds)
    finally:
        device.disconnect()


def run_comparison(
    work: Path,
    line_process: Callable[[list[int], float], Any],
    *,
    receipts: int,
    rounds: int,
    warmup: int,
    log: Callable[[str], None] | None = None,
) -> Iterator[Figure]:
    """Both drivers' 3-item receipts per second through one paced line (``line_process``:
    `wire.LineProcess`, passed in to keep the modules apart), and their ratio."""
    try:
        import pyshtrih  # type: ignore[import-untyped]
        import serial
    except ImportError:
        if log is not None:
            log("wire: pyshtrih is not installed (pip install pyshtrih): no comparison")
        return
    with (
        EmulatorProcess([work / "compare-register"], serial=True) as emulator,
        line_process(emulator.ports, BYTE_TIME) as line,
    ):
        url = f"socket://127.0.0.1:{line.ports[0]}"
        ours = _ours(url, receipts, rounds, warmup)
        theirs = _theirs(pyshtrih, serial, url, receipts, rounds, warmup)
    failures = [f"broken FN archive in {state}" for state in emulator.broken]
    failures += [process.failure for process in (emulator, line) if process.failure]
    if failures:
        raise RuntimeError("; ".join(failures))
    yield Figure(
        f"wire.{BAUD}.kkt_3items_per_s", ours, "1/s", "3 x FF46, 89h, FF45 (+ ENQ); exactly once"
    )
    yield Figure(
        f"wire.{BAUD}.pyshtrih_3items_per_s", theirs, "1/s", "8Dh, 3 x 80h, 85h (+ its 10h polls)"
    )
    yield Figure(f"wire.{BAUD}.kkt_over_pyshtrih", ours / theirs, "ratio", "goal >= 1.5")
