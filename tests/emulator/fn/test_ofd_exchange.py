"""The emulated FN's exchange with the OFD (FNS 20h-26h, 41h, 42h), in process.

The messages and receipts are built and checked with `kkt.protocols.ofd` (the wire codec), the
refusal reasons are FNP's (fact sheet ``ofd-cloud-marking.md`` §1.1): 1 bad fiscal sign, 2 bad
receipt format, 3 bad FD number, 4 bad FN number, 5 bad CRC, 6 bad OFD INN.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kkt.emulator.clock import ManualClock
from kkt.emulator.fn import FiscalStorage, FnCode, FnConfig, FnError, MemoryStore, SqliteStore
from kkt.protocols.ffd import FnWarning, LifePhase, Payments, decode_tlv, find
from kkt.protocols.ofd import (
    check_document_message,
    container_crc,
    encode_container,
    fn_message_key,
    operator_ack,
    parse_document_message,
)
from support.fn import OFD_INN, START, registration

DAY = dt.timedelta(days=1)
ITEM = [(1059, [(1030, "Хлеб"), (1079, 100), (1023, 1), (1043, 100)])]


def _sell(fn: FiscalStorage) -> int:
    return fn.receipt(1, 100, Payments(cash=100), tlv=ITEM).number


def _read(fn: FiscalStorage, block: int = 100) -> bytes:
    """One relay's read: 21h(1), 22h, 23h in blocks, 25h."""
    fn.set_transport(True)
    size = fn.start_reading()
    message = b"".join(fn.read_block(offset, block) for offset in range(0, size, block))
    fn.finish_reading()
    assert len(message) == size
    return message


def _ack(fn: FiscalStorage, number: int, when: dt.datetime, **changes: object) -> bytes:
    values: dict[str, object] = {"fn_serial": fn.serial, "ofd_inn": OFD_INN, "code": 0}
    values.update(changes)
    return operator_ack(fd_number=number, when=when, **values)  # type: ignore[arg-type]


def _refused(reason: int, fn: FiscalStorage, container: bytes) -> None:
    with pytest.raises(FnError) as caught:
        fn.write_receipt(container)
    assert caught.value.code is FnCode.OFD_REPLY_REJECTED and caught.value.reason == reason
    assert f"reason {reason}" in str(caught.value)


def test_full_cycle_drains_the_queue(registered: FiscalStorage, clock: ManualClock) -> None:
    fn = registered
    fn.open_shift()
    _sell(fn)
    status = fn.exchange_status()
    assert (status.queued, status.first_unsent, status.message_waiting) == (3, 1, True)
    assert not status.transport_up and status.status_bits == 0x02
    delivered = []
    while fn.exchange_status().message_waiting:
        message = check_document_message(_read(fn))  # the MAC verifies under the FN's key
        assert fn.exchange_status().awaiting_receipt
        assert fn.exchange_status().status_bits == 0x07  # transport, message, awaiting receipt
        record = fn.record(message.fd_number)
        assert (message.fn_serial, message.doc_type) == (fn.serial, record.kind)
        assert message.document_tlv == record.tlv  # the archive's document, byte for byte
        assert fn.write_receipt(_ack(fn, message.fd_number, clock.now())) == 0
        delivered.append(message.fd_number)
    fn.set_transport(False)
    assert delivered == [1, 2, 3]
    assert fn.unconfirmed() == 0 and fn.exchange_status().first_unsent_when is None
    receipt = fn.ofd_receipt(3)
    assert (receipt.fd, receipt.when) == (3, clock.now())
    assert len(receipt.sign) == 16 and receipt.archive_sign == receipt.sign + bytes(2)
    assert fn.verify().ok


def test_reading_needs_transport_and_a_message(registered: FiscalStorage) -> None:
    fn = registered
    with pytest.raises(FnError) as caught:
        fn.start_reading()
    assert caught.value.code is FnCode.NO_TRANSPORT
    fn.set_transport(True)
    for call, args in ((fn.read_block, (0, 10)), (fn.finish_reading, ()), (fn.cancel_reading, ())):
        with pytest.raises(FnError) as caught:
            call(*args)  # type: ignore[operator]
        assert caught.value.code is FnCode.WRONG_STATE  # 02h: 22h was not given
    size = fn.start_reading()
    with pytest.raises(FnError) as caught:
        fn.read_block(size + 1, 10)
    assert caught.value.code is FnCode.UNKNOWN_COMMAND  # 01h: offset past the message
    assert fn.read_block(size - 3, 100) == fn.read_block(0, size)[-3:]
    fn.set_transport(False)  # the connection broke: the reading is over
    assert not fn.exchange_status().reading
    fn.ofd_confirm(1)
    fn.set_transport(True)
    with pytest.raises(FnError) as caught:
        fn.start_reading()
    assert caught.value.code is FnCode.NO_DATA  # 08h: nothing queued


def test_interrupted_read_is_read_again(registered: FiscalStorage, clock: ManualClock) -> None:
    fn = registered
    fn.open_shift()
    fn.set_transport(True)
    fn.start_reading()
    first_half = fn.read_block(0, 20)
    fn.cancel_reading()  # 24h: the document stays first
    assert fn.exchange_status().first_unsent == 1 and not fn.exchange_status().reading
    message = _read(fn)
    assert message.startswith(first_half)
    # the OFD's answer is lost: the same document is read and sent again, byte for byte
    assert _read(fn) == message
    assert fn.write_receipt(_ack(fn, 1, clock.now())) == 0
    assert parse_document_message(_read(fn)).fd_number == 2


def test_receipt_written_twice_is_harmless(registered: FiscalStorage, clock: ManualClock) -> None:
    fn = registered
    fn.open_shift()
    ack = _ack(fn, 1, clock.now())
    assert fn.write_receipt(ack) == 0
    clock.advance(DAY)
    assert fn.write_receipt(ack) == 0  # again: nothing changes
    later = _ack(fn, 1, clock.now())  # another valid receipt for the same FD
    assert fn.write_receipt(later) == 0
    assert fn.ofd_receipt(1).when == clock.now() - DAY  # the first one stays
    assert fn.unconfirmed() == 1 and fn.exchange_status().first_unsent == 2


def test_each_refusal_reason(registered: FiscalStorage, clock: ManualClock) -> None:
    fn = registered
    fn.open_shift()
    now = clock.now()
    good = _ack(fn, 1, now)
    # 1: the operator's sign does not verify (the ФПО is the STLV's last 16 bytes, before none)
    forged = bytearray(good)
    forged[-1] ^= 0xFF
    _refused(1, fn, _recrc(bytes(forged)))
    # 2: not a receipt: an FN's document container, and garbage
    _refused(2, fn, encode_container(3, fn.serial, 1, b"\x03\x00\x00\x00"))
    _refused(2, fn, b"\x00" * 10)
    # 3: an FD that is not the one awaited (2 is behind 1; 99 does not exist)
    _refused(3, fn, _ack(fn, 2, now))
    _refused(3, fn, _ack(fn, 99, now))
    # 4: another FN's receipt
    _refused(4, fn, _ack(fn, 1, now, fn_serial="9999078900009999"))
    # 5: damaged on the way
    damaged = bytearray(good)
    damaged[40] ^= 0x01
    _refused(5, fn, bytes(damaged))
    # 6: from another OFD
    _refused(6, fn, _ack(fn, 1, now, ofd_inn="7704358518"))
    assert fn.unconfirmed() == 2 and fn.exchange_status().first_unsent == 1  # nothing moved
    with pytest.raises(FnError) as caught:
        fn.ofd_receipt(1)
    assert caught.value.code is FnCode.NO_DATA
    assert fn.write_receipt(good) == 0


def _recrc(container: bytes) -> bytes:
    """The container with its CRC made right again (so only the sign is wrong)."""
    crc = container_crc(container)
    return container[:2] + crc.to_bytes(2, "little") + container[4:]


def test_a_rejecting_code_keeps_the_document(registered: FiscalStorage, clock: ManualClock) -> None:
    fn = registered
    assert fn.write_receipt(_ack(fn, 1, clock.now(), code=14)) == 14
    assert fn.unconfirmed() == 1 and fn.exchange_status().first_unsent == 1
    assert fn.write_receipt(_ack(fn, 1, clock.now())) == 0
    assert fn.unconfirmed() == 0


def test_counters_two_day_flag_and_thirty_day_block(
    registered: FiscalStorage, clock: ManualClock
) -> None:
    fn = registered  # document 1 (registration) is waiting from the start
    clock.advance(2 * DAY + dt.timedelta(minutes=1))
    assert FnWarning.OFD_TIMEOUT in fn.warnings()
    opened = fn.open_shift()
    [(_, body)] = decode_tlv(fn.record(opened.number).tlv)
    assert find(body, 1053) == 1
    _sell(fn)
    status = fn.exchange_status()
    assert (status.queued, status.first_unsent, fn.unconfirmed()) == (3, 1, 3)
    clock.advance(28 * DAY)  # over 30 days since document 1
    with pytest.raises(FnError) as caught:
        fn.state_report()
    assert caught.value.code is FnCode.STORAGE_LIMITED and "send the queue" in str(caught.value)
    for number in (1, 2):  # receipts for the two oldest: the oldest unsent is now 3, 28 days old
        fn.write_receipt(_ack(fn, number, clock.now()))
    status = fn.exchange_status()
    assert (status.queued, status.first_unsent) == (1, 3)
    assert status.first_unsent_when == fn.record(3).when
    fn.state_report()  # the block is lifted
    fn.write_receipt(_ack(fn, 3, clock.now()))
    fn.write_receipt(_ack(fn, 4, clock.now()))
    assert FnWarning.OFD_TIMEOUT not in fn.warnings()
    closed = fn.close_shift()
    [(_, body)] = decode_tlv(fn.record(closed.number).tlv)
    assert find(body, 1053) == 0 and find(body, 1097) == 0


def test_receipt_is_durable_and_old_archives_migrate(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "fn.sqlite"
    fn = FiscalStorage(SqliteStore(path), clock, config=FnConfig())
    fn.register(registration())
    fn.open_shift()
    fn.ofd_confirm(1)  # through the control channel, as before
    fn.close()
    # an archive written before receipts were kept: no ofd_sign column
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE documents DROP COLUMN ofd_sign")
    db.commit()
    db.close()
    again = FiscalStorage(SqliteStore(path), clock)
    assert again.verify().ok and again.exchange_status().first_unsent == 2
    assert again.ofd_receipt(1).sign == b""  # confirmed before: a time, no ФПО
    assert again.write_receipt(_ack(again, 2, clock.now())) == 0  # committed before it answers
    again.close()
    reopened = FiscalStorage(SqliteStore(path), clock)
    assert reopened.unconfirmed() == 0 and len(reopened.ofd_receipt(2).sign) == 16
    assert reopened.verify().ok
    reopened.close()


def test_post_fiscal_receipts_archive_the_fn(registered: FiscalStorage, clock: ManualClock) -> None:
    fn = registered
    fn.close_fn()
    for number in (1, 2):
        assert fn.write_receipt(_ack(fn, number, clock.now())) == 0
    assert fn.status().phase is LifePhase.ARCHIVE
    assert fn.write_receipt(_ack(fn, 2, clock.now())) == 0  # still harmless


def test_exchange_status_before_registration(clock: ManualClock) -> None:
    fn = FiscalStorage(MemoryStore(), clock)
    status = fn.exchange_status()
    assert (status.queued, status.first_unsent, status.status_bits) == (0, 0, 0)
    with pytest.raises(FnError) as caught:
        fn.set_transport(True)
    assert caught.value.code is FnCode.WRONG_STATE


def test_message_key_is_the_fns_public_one(registered: FiscalStorage) -> None:
    message = parse_document_message(_read(registered))
    assert message.mac_is_valid(fn_message_key(registered.serial))
    assert not message.mac_is_valid(fn_message_key("9999078900009999"))


@settings(max_examples=40, deadline=None)
@given(
    blocks=st.lists(st.integers(1, 600), min_size=1, max_size=30),
    cancel_after=st.integers(0, 5),
)
def test_any_block_sizes_read_the_same_message(blocks: list[int], cancel_after: int) -> None:
    """However a relay cuts its 23h reads, and wherever it cancels and starts again, it reads
    the same bytes: the document's container, whole."""
    fn = FiscalStorage(MemoryStore(), ManualClock(START), config=FnConfig(archive_capacity=100))
    fn.register(registration())
    fn.set_transport(True)
    size = fn.start_reading()
    whole = fn.read_block(0, size)
    for _ in range(cancel_after):
        fn.read_block(0, blocks[0])
        fn.cancel_reading()
        assert fn.start_reading() == size
    message, cuts = b"", iter(blocks * (size // min(blocks) + 1))
    while len(message) < size:
        message += fn.read_block(len(message), next(cuts))
    fn.finish_reading()
    assert message == whole and len(message) == size
    assert check_document_message(message).fd_number == 1
