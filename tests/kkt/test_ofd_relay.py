"""The driver's OFD relay (`Register.ofd_exchange`) and `Register.ofd_status` / `ofd_receipt`.

A Shtrih register served without ``--ofd`` (its FN fills the queue and sends nothing) and the
emulated OFD (`kkt.emulator.ofd`) on loopback TCP.  The relay is interrupted at random points --
before any command, after a command ran but before its answer came back (mid-FF31 read, between
FF32 and FF33, mid-FF33 write), after the message was read but before it went out, after the OFD
stored it but before its receipt reached the register -- and the invariant holds: every document
stored once at the OFD, its receipt once in the FN, nothing left.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from kkt.emulator.clock import ManualClock
from kkt.emulator.ofd import OfdThread, StoredDocument
from kkt.emulator.shtrih import ShtrihRegister, open_device
from kkt.tools.bench.soak.common import receipt_for
from kkt.tools.bench.soak.relay import delivery_problems

import kkt
from kkt import ofd
from kkt.ofd import OfdStatus, parse_address, patch_p_version
from kkt.vendors.atol import AtolDevice
from kkt.vendors.shtrih import ShtrihDevice

START = dt.datetime(2026, 3, 2, 9, 0)
KILLS = 50


class Killed(BaseException):
    """The relay's process dies here: nothing of the driver catches it."""


class Direct:
    """A `Commander` straight into an emulated register that stays up while relays come and go;
    ``kill_at``: the command (1-based) at which the relay dies -- before the register runs it, or
    (``after``) once it ran and before its answer is read."""

    killed_in: ClassVar[list[str]] = []  # the command each kill hit ("FF33 ran" / "FF33 not run")

    def __init__(self, device: ShtrihRegister, kill_at: int = 0, *, after: bool = False) -> None:
        self.device, self.kill_at, self.after, self.count = device, kill_at, after, 0

    def exchange(self, payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes:
        if not payload:  # the closing answer's second copy (a bare ENQ): no command
            return self.device.execute(payload)
        self.count += 1
        command = payload[:2].hex().upper() if payload[0] == 0xFF else f"{payload[0]:02X}"
        if self.count == self.kill_at and not self.after:
            self.killed_in.append(f"{command} not run")
            raise Killed
        answer = self.device.execute(payload)
        if self.count == self.kill_at:
            self.killed_in.append(f"{command} ran")
            raise Killed
        return answer

    def close(self) -> None:
        pass


def register_over(device: ShtrihRegister, kill_at: int = 0, *, after: bool = False) -> kkt.Register:
    return kkt.Register(ShtrihDevice(Direct(device, kill_at, after=after)))  # type: ignore[arg-type]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def device(tmp_path: Path, clock: ManualClock) -> Iterator[ShtrihRegister]:
    emulated = open_device(tmp_path / "register", clock=clock)
    try:
        yield emulated
    finally:
        emulated.close()


@pytest.fixture
def served_ofd(tmp_path: Path, device: ShtrihRegister) -> Iterator[OfdThread]:
    with OfdThread(tmp_path / "ofd") as server:  # the emulator's OFD INN, as the FN's
        yield server


def stored(server: OfdThread) -> list[StoredDocument]:
    assert server.service.server is not None
    return server.service.server.store.documents()


def address(server: OfdThread) -> str:
    return server.service.address


def sell(device: ShtrihRegister, count: int, first_total: int = 10_000) -> None:
    register = register_over(device)
    if not register.shift_info().open:
        register.open_shift()
    for index in range(count):
        register.sell(receipt_for(first_total + index))


def check_everything_delivered_once(device: ShtrihRegister, server: OfdThread) -> int:
    """Every document of the FN is at the OFD once and its receipt in the FN; returns how many."""
    problems, documents, _ = delivery_problems(device, server)
    assert problems == []
    assert documents == device.fn.status().last_number
    assert device.fn.unconfirmed() == 0
    return documents


# -- the relay --------------------------------------------------------------------------------


def test_relay_sends_the_queue_and_writes_every_receipt(
    device: ShtrihRegister, served_ofd: OfdThread
) -> None:
    sell(device, 5)
    before = device.fn.exchange_status().queued
    assert before >= 7  # registration, shift open, 5 receipts
    result = register_over(device).ofd_exchange(address(served_ofd))
    assert result.sent == before
    assert result.acknowledged == tuple(range(1, before + 1))
    assert (result.left, result.first_left) == (0, None)
    assert check_everything_delivered_once(device, served_ofd) == before
    again = register_over(device).ofd_exchange(address(served_ofd))
    assert (again.sent, again.left) == (0, 0)


def test_relay_with_a_limit_leaves_the_rest(device: ShtrihRegister, served_ofd: OfdThread) -> None:
    sell(device, 3)
    queued = device.fn.exchange_status().queued
    result = register_over(device).ofd_exchange(address(served_ofd), limit=2)
    assert (result.sent, result.acknowledged) == (2, (1, 2))
    assert (result.left, result.first_left) == (queued - 2, 3)


def test_relay_interrupted_at_random_50_times_delivers_every_document_once(
    device: ShtrihRegister, served_ofd: OfdThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(16)
    real_send = ofd.send_session
    plan: dict[str, str] = {"send": ""}

    def send(host: str, port: int, message: bytes, timeout: float = 5.0) -> bytes:
        if plan["send"] == "before":
            raise Killed  # the message was read, never sent
        answer = real_send(host, port, message, timeout)
        if plan["send"] == "after":
            raise Killed  # the OFD stored it and answered; the register never got the answer
        return answer

    monkeypatch.setattr(ofd, "send_session", send)
    monkeypatch.setattr(Direct, "killed_in", [])
    sell(device, 6)
    kills = 0
    where: dict[str, int] = {}
    for round_ in range(KILLS):
        if round_ % 5 == 0:
            sell(device, 2, first_total=20_000 + round_ * 10)  # sales go on meanwhile
        kind = rng.choice(("command", "command-after", "before-send", "after-send"))
        plan["send"] = {"before-send": "before", "after-send": "after"}.get(kind, "")
        kill_at = rng.randint(1, 14) if kind.startswith("command") else 0
        register = register_over(device, kill_at, after=kind == "command-after")
        try:
            register.ofd_exchange(address(served_ofd), timeout=5.0)
        except Killed:
            kills += 1
            where[kind] = where.get(kind, 0) + 1
    plan["send"] = ""
    assert kills >= KILLS * 3 // 4, where  # most rounds died mid-way, each kind many times
    assert all(where.get(kind, 0) >= 5 for kind in ("command", "command-after", "after-send"))
    hit = set(Direct.killed_in)
    # Killed mid-read, between the read and the write, and mid-write (the answer is 2 blocks):
    # the last FF33 run -- the FN has the receipt, the relay never heard -- included.
    assert {"FF31 ran", "FF32 ran", "FF33 ran", "FF33 not run"} <= hit, hit
    result = register_over(device).ofd_exchange(address(served_ofd))
    assert result.left == 0
    delivered = check_everything_delivered_once(device, served_ofd)
    assert delivered >= 6 + 2 * (KILLS // 5)
    resent = [doc for doc in stored(served_ofd) if doc.times > 1]
    assert resent  # documents were sent again after a kill -- and stored once


def test_a_sale_goes_on_while_the_relay_waits_for_the_ofd(
    device: ShtrihRegister, served_ofd: OfdThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock is not held across the OFD's answer: a sale made while the relay waits for it
    goes through, and the relay's receipt is still taken afterwards."""
    sell(device, 1)
    register = register_over(device)
    real_send = ofd.send_session
    sold: list[int] = []

    def send(host: str, port: int, message: bytes, timeout: float = 5.0) -> bytes:
        if not sold:  # another thread, the same Register, as a shop's program shares one
            cashier = threading.Thread(
                target=lambda: sold.append(register.sell(receipt_for(777)).document_number)
            )
            cashier.start()
            cashier.join(30)  # held across this wait, the lock would keep the sale out for good
            assert sold, "the sale waited for the relay's OFD exchange"
        return real_send(host, port, message, timeout)

    monkeypatch.setattr(ofd, "send_session", send)
    result = register.ofd_exchange(address(served_ofd))
    assert sold and sold[0] in result.acknowledged
    check_everything_delivered_once(device, served_ofd)


# -- errors -----------------------------------------------------------------------------------


def test_an_unreachable_ofd_names_its_address_and_loses_nothing(
    device: ShtrihRegister, served_ofd: OfdThread
) -> None:
    sell(device, 1)
    queued = device.fn.exchange_status().queued
    where = address(served_ofd)
    served_ofd.control({"action": "down"})
    with pytest.raises(kkt.OfdUnreachable, match=where.replace(".", r"\.")) as raised:
        register_over(device).ofd_exchange(where, timeout=2.0)
    assert raised.value.address == where
    assert "run the relay again" in str(raised.value)
    assert device.fn.exchange_status().queued == queued
    served_ofd.control({"action": "up"})
    assert register_over(device).ofd_exchange(where).left == 0


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ({"action": "drop-ack"}, "gave no whole answer"),
        ({"action": "corrupt"}, "damaged receipt"),
        ({"action": "delay", "seconds": 1.5}, "gave no whole answer"),
    ],
)
def test_a_lost_or_damaged_answer_stops_the_run_and_the_next_delivers_once(
    device: ShtrihRegister, served_ofd: OfdThread, fault: dict[str, object], said: str
) -> None:
    sell(device, 1)
    served_ofd.control(fault)
    with pytest.raises(kkt.OfdUnreachable, match=said):
        register_over(device).ofd_exchange(address(served_ofd), timeout=0.5)
    assert device.fn.exchange_status().first_unsent == 1  # nothing lost, nothing skipped
    served_ofd.control({"action": "clear"})
    assert register_over(device).ofd_exchange(address(served_ofd)).left == 0
    check_everything_delivered_once(device, served_ofd)


def test_an_ofd_that_refuses_the_document_stops_the_relay_with_its_code(
    device: ShtrihRegister, served_ofd: OfdThread
) -> None:
    sell(device, 1)
    served_ofd.control({"action": "reject", "code": 14, "count": 1})
    with pytest.raises(kkt.OfdRefused, match="code 14") as raised:
        register_over(device).ofd_exchange(address(served_ofd))
    assert (raised.value.code, raised.value.document) == (14, 1)
    assert device.fn.exchange_status().first_unsent == 1  # the FN keeps it first in its queue
    assert register_over(device).ofd_exchange(address(served_ofd)).left == 0  # accepted now
    check_everything_delivered_once(device, served_ofd)


@pytest.mark.parametrize("text", ["ofd.example", "host:0", "host:port", ":7779", ""])
def test_a_bad_ofd_address_is_refused_before_anything_is_sent(text: str) -> None:
    with pytest.raises(kkt.errors.BadOfdAddress, match="HOST:PORT"):
        parse_address(text)


def test_addresses() -> None:
    assert parse_address("tcp://10.0.0.1:7779") == ("10.0.0.1", 7779)
    assert parse_address("[::1]:21101") == ("::1", 21101)


def test_atol_cannot_relay_and_says_why(tmp_path: Path) -> None:
    with kkt.connect(f"emulator:{tmp_path / 'atol'}", protocol="atol") as register:
        assert isinstance(register.device, AtolDevice)
        with pytest.raises(kkt.NotSupported, match="no public source") as raised:
            register.ofd_exchange("127.0.0.1:1")
        assert "--ofd HOST:PORT" in str(raised.value)


def test_p_version_is_rewritten_as_javapos_does_only_without_a_crc() -> None:
    header = bytearray(30)
    header[6:8] = b"\x01\x02"
    assert patch_p_version(bytes(header))[6:8] == b"\x01\x20"
    header[6:8] = b"\x01\x01"
    assert patch_p_version(bytes(header))[6:8] == b"\x01\x10"
    header[28] = 0x5A  # a session CRC covers the header: left alone
    assert patch_p_version(bytes(header)) == bytes(header)
    header[6:8], header[28] = b"\x01\x20", 0
    assert patch_p_version(bytes(header)) == bytes(header)


# -- ofd_status and ofd_receipt ---------------------------------------------------------------


def test_ofd_status_agrees_with_the_fn_and_counts_days_by_the_registers_clock(
    device: ShtrihRegister, clock: ManualClock, served_ofd: OfdThread
) -> None:
    sell(device, 2)
    register = register_over(device)
    register.ofd_exchange(address(served_ofd), limit=3)
    register.close_shift()  # the clock goes days ahead: no shift may be open over 24 hours
    clock.advance(dt.timedelta(days=3))
    status = register.ofd_status()
    fn = device.fn.exchange_status()
    assert (status.unsent, status.first_number, status.first_when) == (
        fn.queued,
        fn.first_unsent,
        fn.first_unsent_when,
    )
    assert status.clock == clock.now()
    # FF3C carries the minute (YMD HM); the OFD's receipt is of its own clock, not the register's
    assert status.last_receipt_when == device.fn.ofd_receipt(3).when.replace(second=0)
    assert status.blocks_at == fn.first_unsent_when + dt.timedelta(days=30)
    assert status.days_left == 30 - (clock.now() - fn.first_unsent_when).days == 27
    assert not status.blocked
    clock.advance(dt.timedelta(days=27, minutes=1))
    late = register.ofd_status()
    assert (late.days_left, late.blocked) == (0, True)
    with pytest.raises(kkt.OfdBlocked, match="restore the register's link to the OFD"):
        register.open_shift()
    register.ofd_exchange(address(served_ofd))
    done = register.ofd_status()
    assert (done.unsent, done.first_number, done.days_left, done.blocked) == (0, None, None, False)
    assert done.last_receipt_when is not None


def test_ofd_receipt_per_document(device: ShtrihRegister, served_ofd: OfdThread) -> None:
    sell(device, 1)
    register = register_over(device)
    register.ofd_exchange(address(served_ofd), limit=1)
    receipt = register.ofd_receipt(1)
    assert receipt is not None and receipt.document == 1
    assert receipt.sign == device.fn.ofd_receipt(1).archive_sign  # the archive's 18 bytes
    assert register.ofd_receipt(2) is None  # sent nowhere yet


def test_ofd_status_as_json() -> None:
    status = OfdStatus(2, 5, START, START + dt.timedelta(days=1, hours=1))
    assert status.to_json() == {
        "unsent": 2,
        "firstNumber": 5,
        "firstDateTime": "2026-03-02T09:00:00",
        "lastReceiptDateTime": None,
        "blocksAt": "2026-04-01T09:00:00",
        "daysUntilBlock": 29,
        "blocked": False,
        "registerClock": "2026-03-03T10:00:00",
    }


def test_atol_ofd_status_agrees_with_the_fn_without_a_last_receipt(tmp_path: Path) -> None:
    """ATOL's A4h 20h gives the queue; no public ATOL command reads a document's receipt, so the
    last receipt's time is None and `ofd_receipt` says why it cannot."""
    with kkt.connect(f"emulator:{tmp_path / 'atol'}", protocol="atol") as register:
        register.open_shift()
        register.sell(receipt_for(300))
        fn = register.device.commander.register.fn  # type: ignore[attr-defined]
        status, queue = register.ofd_status(), fn.exchange_status()
        assert (status.unsent, status.first_number) == (queue.queued, queue.first_unsent)
        assert status.first_when == queue.first_unsent_when.replace(second=0)  # YY MM DD hh mm
        assert status.last_receipt_when is None and status.days_left == 30
        with pytest.raises(kkt.NotSupported, match="no public query"):
            register.ofd_receipt(1)
