"""The emulated FN's marking codes: the check sequence, the table, the sale bound to a checked
code, the notification queue and its export, and all of it across a reopen from disk."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.clock import ManualClock
from kkt.emulator.fn import FiscalStorage, FnCode, FnConfig, FnError, MemoryStore, SqliteStore
from kkt.emulator.fn.counters import VatSums
from kkt.emulator.fn.marking import MAX_CHECKED, MarkingFn, Step, parse_code
from kkt.emulator.fn.marking_wire import (
    block_crc,
    notification_receipt,
    oism_answer,
    read_notification,
    read_request,
    unseal,
)
from kkt.protocols.ffd import Payments, WorkMode, decode_tlv
from kkt.protocols.ffd.marking import control_code
from support.fn import START, registration

GS = "\x1d"
# The libfptr sample's code (fact sheet §4.6): GTIN 44945504353068, key EE06, 44-char crypto.
CODE = (
    f"014494550435306821QXYXSALGLMYQQ{GS}91EE06{GS}92YWCXbmK6SN8vvwoxZFk7WAY9WoJNMGGr6Cgtiuja04c="
).encode()


def code(serial: str, *, key: str = "EE06", crypto: str = "Y" * 44) -> bytes:
    return f"0104607012345678215{serial:0>12}{GS}91{key}{GS}92{crypto}".encode()


def item(mark: bytes | None = None, amount: int = 10000) -> tuple[int, Any]:
    body: list[tuple[int, Any]] = [
        (1030, "Туфли"),
        (1079, amount),
        (1023, Decimal(1)),
        (1043, amount),
        (1199, 6),
        (1214, 4),
        (2108, 0),
    ]
    if mark is not None:
        body.append((2000, mark))
    return (1059, body)


def sell(fn: FiscalStorage, *items: tuple[int, Any], operation: int = 1) -> int:
    total = sum(dict(body)[1043] for _tag, body in items)
    formed = fn.receipt(operation, total, Payments(cash=total), VatSums(no_vat=total), list(items))
    return formed.number


def refused(code_: FnCode, call: Callable[..., object], *args: object, **kwargs: object) -> FnError:
    with pytest.raises(FnError) as caught:
        call(*args, **kwargs)
    assert caught.value.code is code_, str(caught.value)
    return caught.value


class Oism:
    """The OISM side in one function: answer a request with a 2109 status."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock

    def answer(self, request: bytes, status: int | None = 1, request_code: int = 0) -> bytes:
        return oism_answer(
            read_request(request), request_code=request_code, status=status, when=self.clock.now()
        )


def accept(marking: MarkingFn, mark: bytes, clock: ManualClock, status: int | None = 1) -> int:
    """The whole online flow for one code; returns the 2106 saved."""
    marking.check(mark)
    request = marking.request(1)
    marking.answer(Oism(clock).answer(request, status))
    return marking.decide(True)


@pytest.fixture
def shift(clock: ManualClock) -> FiscalStorage:
    fn = FiscalStorage(MemoryStore(), clock, config=FnConfig(archive_capacity=1000))
    fn.register(registration())
    clock.advance(dt.timedelta(minutes=1))
    fn.open_shift()
    return fn


def test_code_formats_and_the_local_check() -> None:
    parsed = parse_code(CODE)
    assert (parsed.kind, parsed.key_id) == (4, "EE06")
    assert parsed.product_code == "014494550435306821QXYXSALGLMYQQ"
    assert parse_code(code("1", crypto="Z" * 88)).kind == 2
    assert parse_code(b"0104607012345678215ABCDEFGHIJKL").kind == 1  # no crypto tail: short
    assert parse_code(f"0104607012345678215ABC{GS}93abcd".encode()).kind == 5
    assert parse_code(b"\xff\xfe").kind == 0
    assert control_code(b"29293847568") == "0976"  # JP Tag2115 test


@pytest.mark.parametrize(
    ("mark", "result", "reason"),
    [
        (CODE, 3, 0),
        (code("2", crypto="BAD" + "x" * 41), 1, 0),  # the emulator's "bad crypto" marker
        (code("3", key="0000"), 0, 2),  # a key the FN does not have
        (b"0104607012345678215ABCDEFGHIJKL", 0, 1),  # short code: not checkable
        (b"garbage", 0, 4),
        (f"0104607012345678215AB{GS}91EE06{GS}92{'Q' * 50}".encode(), 0, 3),  # AI 92 malformed
    ],
)
def test_b1h_local_result(shift: FiscalStorage, mark: bytes, result: int, reason: int) -> None:
    checked = shift.marking.check(mark)
    assert (checked.result, checked.reason) == (result, reason)


def test_the_online_flow_saves_2106_and_the_sale_binds_it(
    shift: FiscalStorage, clock: ManualClock
) -> None:
    m = shift.marking
    assert m.status().step is Step.IDLE
    m.check(CODE)
    assert m.status().step is Step.CHECKED
    request = m.request(1, Decimal(1), 0)
    assert m.request(1) == request  # asked again: the same block, the same number
    parsed = read_request(request)
    assert (parsed.code, parsed.kind, parsed.planned, parsed.result) == (CODE, 4, 1, 3)
    online = m.answer(Oism(clock).answer(request))
    assert online.verdict == 15  # [М+]
    assert m.decide(True) == 15
    assert m.status().saved == 1
    number = sell(shift, item(CODE), item())
    receipt = decode_tlv(shift.record(number).tlv)[0][1]
    marked = [dict(body) for tag, body in receipt if tag == 1059]  # type: ignore[union-attr]
    assert marked[0][2106] == 15 and 2000 not in marked[0]
    assert 2106 not in marked[1]
    assert m.state.codes == ()  # the table is cleared by the receipt
    [notification] = m.queue
    info = read_notification(notification.message)
    assert (info.number, info.codes) == (1, (CODE,))
    assert m.sold_in(CODE) == number


@pytest.mark.parametrize(
    ("status", "request_code", "expected"),
    [(1, 0, 15), (2, 0, 7), (3, 0, 7), (None, 2, 3)],
)
def test_each_oism_answer_gives_its_2106(
    shift: FiscalStorage, clock: ManualClock, status: int | None, request_code: int, expected: int
) -> None:
    m = shift.marking
    m.check(CODE)
    request = m.request(1)
    assert m.answer(Oism(clock).answer(request, status, request_code)).verdict == expected


def test_no_answer_from_the_oism_keeps_the_fn_check_only(shift: FiscalStorage) -> None:
    m = shift.marking
    m.check(CODE)
    m.request(1)
    assert m.decide(True) == 3


def test_sequence_errors(shift: FiscalStorage, clock: ManualClock) -> None:
    m = shift.marking
    refused(FnCode.MARKING_SEQUENCE, m.request, 1)
    refused(FnCode.MARKING_SEQUENCE, m.decide, True)
    m.check(CODE)
    refused(FnCode.MARKING_SEQUENCE, m.check, CODE)
    refused(FnCode.MARKING_SEQUENCE, m.answer, b"")
    request = m.request(1)
    answer = bytearray(Oism(clock).answer(request))
    answer[-1] ^= 1
    assert refused(FnCode.OFD_REPLY_REJECTED, m.answer, bytes(answer)).reason == 5  # CRC
    m.clear()
    assert m.status().step is Step.IDLE


def test_a_rejected_code_never_reaches_a_document(shift: FiscalStorage, clock: ManualClock) -> None:
    m = shift.marking
    m.check(CODE)
    m.answer(Oism(clock).answer(m.request(1), status=3))
    m.decide(False)
    refused(FnCode.MARKING_NOT_CHECKED, sell, shift, item(CODE))
    assert shift.state.last_number == 2  # registration and shift only


def test_a_code_is_sold_once(shift: FiscalStorage, clock: ManualClock) -> None:
    accept(shift.marking, CODE, clock)
    sell(shift, item(CODE))
    refused(FnCode.MARKING_NOT_CHECKED, sell, shift, item(CODE))  # the table was cleared
    accept(shift.marking, CODE, clock)  # checked and accepted again: still sold once
    error = refused(FnCode.MARKING_NOT_CHECKED, sell, shift, item(CODE))
    assert "sold in document" in str(error)
    refused(FnCode.MARKING_NOT_CHECKED, sell, shift, item(CODE), item(CODE))
    sell(shift, item(CODE), operation=2)  # a sale return gives it back ...
    accept(shift.marking, CODE, clock)
    sell(shift, item(CODE))  # ... to be sold again


def test_2106_cannot_come_from_the_register(shift: FiscalStorage) -> None:
    refused(FnCode.FORBIDDEN_TAG, sell, shift, (1059, [*item()[1], (2106, 15)]))


def test_a_cancelled_receipt_keeps_the_table(shift: FiscalStorage, clock: ManualClock) -> None:
    accept(shift.marking, CODE, clock)
    refused(FnCode.MISSING_DATA, shift.receipt, 1, 100, Payments(cash=1), VatSums(), [item(CODE)])
    assert len(shift.marking.state.codes) == 1
    sell(shift, item(CODE))


def test_table_full_and_clear(shift: FiscalStorage, clock: ManualClock) -> None:
    m = shift.marking
    for n in range(MAX_CHECKED):
        m.check(code(str(n)))
        m.decide(True)
    assert m.status().step is Step.TABLE_FULL
    refused(FnCode.MARKING_TABLE_FULL, m.check, code("x"))
    refused(FnCode.WRONG_STATE, m.clear, receipt_open=True)
    m.clear()
    assert m.status().saved == 0


def test_checks_need_an_open_shift(clock: ManualClock) -> None:
    fn = FiscalStorage(MemoryStore(), clock)
    refused(FnCode.MARKING_OFF, fn.marking.check, CODE)
    fn.register(registration())
    refused(FnCode.WRONG_STATE, fn.marking.check, CODE)


def test_online_notifications_drain(shift: FiscalStorage, clock: ManualClock) -> None:
    m = shift.marking
    for n in range(2):
        accept(m, code(str(n)), clock)
        sell(shift, item(code(str(n))))
    status = m.notification_status()
    assert (status.state, status.queued, status.number) == (0, 2, 1)
    size = m.start_reading()
    message = m.read(0, 100) + m.read(100, size)
    m.finish_reading()
    assert m.notification_status().state == 2
    number = read_notification(message).number
    refused(FnCode.OFD_REPLY_REJECTED, m.take_receipt, notification_receipt(2, clock.now()))
    assert m.take_receipt(notification_receipt(number, clock.now())) == (0, 0)
    assert [n.number for n in m.queue] == [2]
    m.start_reading()
    assert m.take_receipt(notification_receipt(2, clock.now(), accepted=False))[0] == 1
    assert len(m.queue) == 1  # refused: it stays
    refused(FnCode.WRONG_STATE, m.export_status)


def test_autonomous_export(clock: ManualClock) -> None:
    fn = FiscalStorage(MemoryStore(), clock)
    fn.register(registration(work_mode=int(WorkMode.AUTONOMOUS), ofd_inn="000000000000"))
    clock.advance(dt.timedelta(minutes=1))
    fn.open_shift()
    m = fn.marking
    m.check(CODE)
    refused(FnCode.WRONG_STATE, m.request, 1)  # autonomous: no OISM
    assert m.decide(True) == 19  # FN positive, autonomous
    sell(fn, item(CODE))
    assert m.export_status(start=True) == (1, 1, 0, 0)
    size, number = m.export_next()
    block = m.read(0, size)
    assert unseal(block)
    refused(FnCode.BAD_PARAMETER, m.export_confirm, number, block_crc(block) ^ 1)
    assert m.export_confirm(number, block_crc(block)) == (0, 0)
    refused(FnCode.NO_DATA, m.export_next)
    refused(FnCode.WRONG_STATE, m.notification_status)


def test_everything_survives_a_reopen_from_disk(tmp_path: Path) -> None:
    clock = ManualClock(START)
    path = tmp_path / "fn.sqlite"
    fn = FiscalStorage(SqliteStore(path), clock)
    fn.register(registration())
    clock.advance(dt.timedelta(minutes=1))
    fn.open_shift()
    accept(fn.marking, code("1"), clock)
    sell(fn, item(code("1")))
    accept(fn.marking, code("2"), clock, status=2)
    fn.marking.check(code("3"))  # mid-check: RAM only
    fn.marking.request(1)
    request_number = fn.marking.state.request_number
    fn.close()

    fn = FiscalStorage(SqliteStore(path), clock)
    m = fn.marking
    assert m.status().step is Step.IDLE  # the code being checked is forgotten
    assert [c.code for c in m.state.codes] == [code("2")]
    assert m.state.codes[0].verdict == 7
    assert m.state.request_number == request_number  # never reused
    assert len(m.queue) == 1 and m.sold_in(code("1")) is not None
    refused(FnCode.MARKING_NOT_CHECKED, sell, fn, item(code("1")))
    m.start_reading()
    m.finish_reading()
    m.take_receipt(notification_receipt(1, clock.now()))
    fn.close()
    fn = FiscalStorage(SqliteStore(path), clock)
    assert fn.marking.queue == ()
    assert fn.verify().ok
    fn.close()
