"""``kkt bench receipts``: durable receipts per second, end to end, through the driver.

Each receipt is `Register.sell` of three items -- what an application calls -- so it counts the
whole exactly-once path.  On Shtrih, in the steady state (one sale after another): 3 x FF46 (the
first opens the receipt: no 8Dh for two items or more), the subtotal check (89h), the closing
(FF45), whose answer -- read twice, its second copy an ENQ replay, no command -- gives the fiscal
data; the FN's last document number and the shift's numbers are carried from the previous sale
(`kkt.vendors.base.Device.last_sale`).  The emulated FN commits every receipt durably
(fsync) before it answers.

* ``receipts.exchanges.shtrih`` / ``receipts.exchanges.atol`` -- commands per sale in the steady
  state, counted through the driver's commander (over TCP, against ``kkt emulator serve``; an
  empty payload, Shtrih's ENQ replay of the last answer, is no command);
* ``receipts.exchanges.atol.round_trips`` -- host writes per sale that carry ATOL packets, each
  then waiting for the register's answer: one round trip each, whatever it carries (a command's
  Add and its follow-up query's go out in one write, `AtolHostLink.follow`; an Ack rides on a
  later Add); ``receipts.exchanges.atol.packets`` -- the packets in them (an unescaped FEh starts
  each one);

* ``receipts.tcp.per_s`` / ``receipts.pty.per_s`` -- against ``kkt emulator serve`` in its own
  process, over TCP loopback and over a pseudo-terminal;
* ``receipts.atol.tcp.per_s`` / ``receipts.atol.pty.per_s`` -- the same receipt, the same driver
  call, against the emulator's ATOL personality (v3 task buffer; each Ack rides on a later Add):
  in the steady state 11 commands in 9 round trips -- 92h and its tag 1055 (E8h), EAh/EBh per
  item, the subtotal (3Fh) written with the last EBh, 4Ah written with the document's record
  (91h 34h); the mode, the last document and the shift's numbers carried from the previous sale
  (tests/kkt/test_atol_round_trips.py lists them write by write).  The document is never read
  back by A4h 45h/46h here: that alone is 24 exchanges for this receipt, one per first-level tag
  (tests/kkt/test_atol_device.py counts both).  Runs of this case on one build differ by up to
  3x on a busy machine: compare medians of several runs, not one figure;
* ``receipts.inproc.per_s`` -- the emulator in this process (``emulator:DIR``), no wire;
* ``fsync.raw_per_s`` -- this disk's rate of small write + fsync pairs, measured between rounds;
* ``receipts.inproc.fsync_ratio`` -- in-process receipts over raw fsyncs, per round, median.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from typing import Any

import kkt

from . import RECEIPT, Bench, Figure, case, fsync_rate, median_rate, rate
from .served import served_emulator

# Against ``kkt emulator serve``: the protocol, the figures' prefix, the TCP figure's note.
SERVED = (("shtrih", "receipts", "target >= 300"), ("atol", "receipts.atol", ""))


class _Counted:
    """Commands through a register's commander, and host packets on its port (ATOL)."""

    def __init__(self, register: kkt.Register) -> None:
        self.commands = self.packets = self.writes = 0
        self.register = register
        session: Any = register.device.commander
        self._exchange = session.exchange
        session.exchange = self._count_command
        port = session.port
        self._write = port.write
        port.write = self._count_packets

    def _count_command(self, payload: bytes, **options: Any) -> bytes:
        self.commands += bool(payload)  # an empty one asks for the last answer again (ENQ)
        answer: bytes = self._exchange(payload, **options)
        return answer

    def _count_packets(self, data: bytes) -> int:
        packets = data.count(0xFE)  # ATOL: an unescaped FEh starts a packet
        self.packets += packets
        self.writes += bool(packets)  # one write, then the answer is awaited: a round trip
        return int(self._write(data))


def _exchanges(url: str, protocol: str, sales: int) -> tuple[float, float]:
    """Commands and host packets per sale in the steady state (after two sales)."""
    commands, _writes, packets = _counted_sales(url, protocol, sales)
    return commands, packets


def _counted_sales(url: str, protocol: str, sales: int) -> tuple[float, float, float]:
    """Commands, host writes and host packets per sale in the steady state (after two sales)."""
    with kkt.connect(url, protocol=protocol) as register:
        if not register.status().shift_open:
            register.open_shift()
        register.sell(RECEIPT)
        register.sell(RECEIPT)
        counted = _Counted(register)
        for _ in range(sales):
            register.sell(RECEIPT)
        return counted.commands / sales, counted.writes / sales, counted.packets / sales


def _wire_rate(url: str, bench: Bench, protocol: str) -> float:
    with kkt.connect(url, protocol=protocol) as register:
        if not register.status().shift_open:
            register.open_shift()
        register.sell(RECEIPT)  # warm up
        return median_rate(lambda: register.sell(RECEIPT), bench.size(60, 300), bench.rounds())


@case("receipts")
def receipts_case(bench: Bench) -> Iterator[Figure]:
    for protocol, name, note in SERVED:
        state, tty = bench.work / f"{name}-served", bench.work / f"{name}-tty"
        with served_emulator(state, tty, protocol) as tcp_url:
            commands, writes, packets = _counted_sales(tcp_url, protocol, 10)
            per_sale = "commands per sale" + ("; target <= 5" if protocol == "shtrih" else "")
            yield Figure(f"receipts.exchanges.{protocol}", commands, "count", per_sale)
            if protocol == "atol":
                yield Figure("receipts.exchanges.atol.round_trips", writes, "count", "target <= 9")
                yield Figure("receipts.exchanges.atol.packets", packets, "count", "in those writes")
            tcp = _wire_rate(tcp_url, bench, protocol)
            yield Figure(f"{name}.tcp.per_s", tcp, "1/s", note)
            yield Figure(f"{name}.pty.per_s", _wire_rate(str(tty), bench, protocol), "1/s")
    count = bench.size(100, 500)
    receipts, fsyncs, ratios = [], [], []
    with kkt.connect(f"emulator:{bench.work / 'receipts-inproc'}") as register:
        register.open_shift()
        register.sell(RECEIPT)
        for _ in range(bench.rounds()):
            fsyncs.append(fsync_rate(bench.work, count))
            receipts.append(rate(lambda: register.sell(RECEIPT), count))
            ratios.append(receipts[-1] / fsyncs[-1])
    yield Figure("receipts.inproc.per_s", statistics.median(receipts), "1/s")
    yield Figure("fsync.raw_per_s", statistics.median(fsyncs), "1/s", "same disk, same run")
    yield Figure("receipts.inproc.fsync_ratio", statistics.median(ratios), "ratio", "target >= 0.5")
