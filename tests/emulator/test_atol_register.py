"""The emulated ATOL register, driven in process with the protocol core's encoded requests."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kkt.emulator.atol import AtolRegister, open_device
from kkt.emulator.clock import ManualClock
from kkt.emulator.shtrih import open_device as open_shtrih
from kkt.protocols.atol import commands as c
from kkt.protocols.atol.errors import AtolDeviceError
from kkt.protocols.atol.modes import Mode, PaymentType, ReceiptType, StatusFlags, split_mode
from kkt.protocols.ffd import DocumentType, decode_tlv, encode_tlv, find, parse_qr
from kkt.protocols.ofd import operator_ack
from kkt.protocols.shtrih import classic
from support.fn import START

SYS, ADMIN_PASSWORD = 30, 29
CASH, CARD = PaymentType.CASH, PaymentType.ELECTRONIC


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def register(tmp_path: Path, clock: ManualClock) -> Iterator[AtolRegister]:
    device = open_device(tmp_path / "kkt", clock=clock)
    yield device
    device.close()


def run(register: AtolRegister, request: c.Request[Any]) -> Any:
    return request.decode_answer(register.execute(request.encode()))


def refused(register: AtolRegister, request: c.Request[Any]) -> int:
    with pytest.raises(AtolDeviceError) as caught:
        run(register, request)
    return caught.value.code


def enter(register: AtolRegister, mode: Mode, password: int = SYS) -> None:
    mode_now, _ = split_mode(run(register, c.GetStateCode(0)).mode)
    if mode_now != Mode.SELECT:
        run(register, c.ExitMode(0))
    run(register, c.EnterMode(0, int(mode), password))


def tlv(tag: int, value: Any) -> c.WriteTlv:
    return c.WriteTlv(0, 0, encode_tlv([(tag, value)]))


def end_item(price: int, quantity: int = 1000, name: str = "Товар", tax: int = 1) -> c.EndItem:
    amount = price * quantity // 1000
    return c.EndItem(0, 0, price, quantity, amount, tax, 0, 1, 1, 4, 0, 0, name)


def e6_item(price: int, quantity: int = 1000, name: str = "Товар", tax: int = 1) -> c.RegisterItem:
    return c.RegisterItem(0, 0, name, price, quantity, 0, 0, 0, tax, 1)


def open_shift(register: AtolRegister) -> None:
    enter(register, Mode.REGISTRATION)
    run(register, c.OpenShift(0))


def sell(register: AtolRegister, *prices: int, kind: PaymentType = CASH) -> None:
    run(register, c.OpenReceipt(0, 0, ReceiptType.SELL))
    for price in prices:
        run(register, c.BeginItem(0, 0, 1))
        run(register, end_item(price))
    run(register, c.CloseReceipt(0, 0, kind, 0))


def status(register: AtolRegister) -> c.Status:
    return run(register, c.GetStatus(0))  # type: ignore[no-any-return]


# -- a whole day ----------------------------------------------------------------------------------


def test_a_day_through_execute(register: AtolRegister) -> None:
    kind = run(register, c.GetDeviceType(0))
    assert (kind.model, kind.name) == (61, "АТОЛ 30Ф")
    first = status(register)
    assert split_mode(first.mode) == (Mode.SELECT, 0)
    assert StatusFlags.FISCAL in StatusFlags(first.flags)
    assert StatusFlags.SHIFT_OPEN not in StatusFlags(first.flags)

    enter(register, Mode.REGISTRATION)
    assert split_mode(status(register).mode) == (Mode.REGISTRATION, 0)
    assert status(register).cashier == SYS
    run(register, tlv(1021, "Петрова А."))
    run(register, c.OpenShift(0))
    assert StatusFlags.SHIFT_OPEN in StatusFlags(status(register).flags)
    assert run(register, c.GetFnShift(0)) == c.FnShift(True, 1, 0)

    # 1: cash, with change (EAh/EBh items, 99h then 4Ah paying exactly what remains)
    run(register, c.OpenReceipt(0, 0, ReceiptType.SELL))
    run(register, c.BeginItem(0, 0, 1))
    run(register, tlv(2108, 0))  # an item tag (measure: pieces)
    run(register, end_item(12_345))
    run(register, c.BeginItem(0, 0, 1))
    run(register, end_item(5_000, 1_500, "Сыр"))
    assert status(register).receipt_state == ReceiptType.SELL
    assert status(register).receipt_sum == 19_845
    assert run(register, c.Payment(0, 0, CASH, 20_000)) == c.PaymentAnswer(0, 155)
    run(register, c.CloseReceipt(0, 0, CASH, 0))
    assert status(register).receipt_state == 0
    first_receipt = register.fn.record(register.fn.state.last_number)
    assert (first_receipt.kind, first_receipt.total) == (DocumentType.RECEIPT, 19_845)
    assert first_receipt.payments.cash == 19_845  # the change went back to the buyer

    # 2: electronic, FFD 1.0 items (E6h), the buyer's contact
    run(register, c.OpenReceipt(0, 0, ReceiptType.SELL))
    run(register, e6_item(9_990))
    run(register, tlv(1008, "buyer@example.org"))
    run(register, c.CloseReceipt(0, 0, CARD, 0))
    second = register.fn.record(register.fn.state.last_number)
    assert (second.total, second.payments.electronic, second.payments.cash) == (9_990, 9_990, 0)
    assert find(decode_tlv(second.tlv)[0][1], 1008) == "buyer@example.org"  # type: ignore[arg-type]

    # 3: mixed -- part by card, the rest in cash with change
    run(register, c.OpenReceipt(0, 0, ReceiptType.SELL))
    run(register, c.BeginItem(0, 0, 1))
    run(register, end_item(30_000))
    assert run(register, c.Payment(0, 0, CARD, 10_000)) == c.PaymentAnswer(20_000, 0)
    run(register, c.CloseReceipt(0, 0, CASH, 25_000))
    third = register.fn.record(register.fn.state.last_number)
    assert (third.payments.electronic, third.payments.cash) == (10_000, 20_000)

    # a return, and a cancelled receipt that leaves no trace in the FN
    run(register, c.OpenReceipt(0, 0, ReceiptType.SELL_RETURN))
    run(register, c.BeginItem(0, 0, 1))
    run(register, end_item(9_990))
    run(register, c.CloseReceipt(0, 0, CASH, 0))
    returned = register.fn.record(register.fn.state.last_number)
    assert (returned.operation, returned.total) == (2, 9_990)
    before = register.fn.state.last_number
    run(register, c.OpenReceipt(0, 0, ReceiptType.SELL))
    run(register, e6_item(1_000))
    run(register, c.CancelReceipt(0))
    assert status(register).receipt_state == 0
    assert register.fn.state.last_number == before

    assert status(register).receipt_number == 4
    last = run(register, c.ReadLastDocument(0))
    assert (last.number, last.document_type, last.total) == (
        returned.number,
        DocumentType.RECEIPT,
        9_990,
    )
    assert (last.when, last.fiscal_sign) == (
        returned.when.replace(second=0),
        returned.fiscal_sign,
    )

    enter(register, Mode.X_REPORTS, ADMIN_PASSWORD)
    run(register, c.Report(0, 1))
    enter(register, Mode.Z_REPORTS, ADMIN_PASSWORD)
    run(register, c.ZReport(0))
    assert StatusFlags.SHIFT_OPEN not in StatusFlags(status(register).flags)
    closed = register.fn.record(register.fn.state.last_number)
    assert closed.kind == DocumentType.SHIFT_CLOSE

    assert register.verify().ok
    sales, sale_returns = register.fn.state.total_counters.operations[:2]
    assert (sales.count, sales.total) == (3, 19_845 + 9_990 + 30_000)
    assert (sale_returns.count, sale_returns.total) == (1, 9_990)
    tape = "\n".join(register.tape())
    assert tape.count("КАССОВЫЙ ЧЕК") == 4 and "X-ОТЧЕТ" in tape
    assert "ОТЧЕТ О ЗАКРЫТИИ СМЕНЫ" in tape and "Петрова А." in tape
    opened = register.fn.record(2)
    assert opened.kind == DocumentType.SHIFT_OPEN
    assert find(decode_tlv(opened.tlv)[0][1], 1021) == "Петрова А."  # type: ignore[arg-type]


def test_documents_read_back_through_a4_equal_the_archive(register: AtolRegister) -> None:
    open_shift(register)
    sell(register, 10_000, 2_550)
    sell(register, 70_000, kind=CARD)
    for number in range(1, register.fn.state.last_number + 1):
        size = run(register, c.GetFnDocumentSize(0, number))
        body = b""
        while len(body) < size.size:
            block = run(register, c.GetFnDocumentData(0)).data
            assert block
            body += block
            # One whole first-level tag per answer (Unact/kkm cheque_data parses each so).
            assert len(decode_tlv(block)) == 1
        record = register.fn.record(number)
        assert size.document_type == record.kind
        assert body == record.tlv[4:]
    assert refused(register, c.GetFnDocumentData(0)) == 0xDA  # nothing more to read
    assert refused(register, c.GetFnDocumentSize(0, 999)) == 0xDA  # no such document


def test_fn_queries(register: AtolRegister) -> None:
    assert run(register, c.GetFnSerial(0)).serial == register.fn.serial
    validity = run(register, c.GetFnValidity(0))
    assert validity.expires == register.fn.state.expires and validity.registrations_done == 1
    assert run(register, c.GetFnShift(0)) == c.FnShift(False, 0, 0)
    open_shift(register)
    sell(register, 1_000)
    ofd = run(register, c.GetFnOfdStatus(0))
    assert (ofd.unsent, ofd.first_unsent) == (3, 1)
    assert ofd.first_unsent_when == START.replace(second=0)
    assert run(register, c.GetFnShift(0)) == c.FnShift(True, 1, 1)
    register_value = run(register, c.ReadRegister(0, 0x34, 0, 1)).data
    assert c.LastDocument.decode_data(register_value).number == 3
    assert refused(register, c.ReadRegister(0, 0x10)) == 0x6C


def test_ofd_exchange_status_follows_the_fn(register: AtolRegister) -> None:
    # A4h 20h is the FN's 20h passed through (atol4j FiscalDataExchangeStateRequest: "if the
    # document was sent already, the number awaiting the receipt"): the emulated register's own
    # sender drives the FN in process, the driver sees each step.
    fn = register.fn
    assert run(register, c.GetFnOfdStatus(0)).state == 0x02  # the registration waits
    fn.set_transport(True)
    fn.start_reading()
    reading = run(register, c.GetFnOfdStatus(0))
    assert (reading.state, reading.reading, reading.unsent, reading.first_unsent) == (3, True, 1, 1)
    fn.finish_reading()
    assert run(register, c.GetFnOfdStatus(0)).state == 0x07  # sent, awaiting the receipt
    registration = fn.state.registration
    assert registration is not None
    fn.write_receipt(operator_ack(fn.serial, 1, START, registration.ofd_inn))
    fn.set_transport(False)
    done = run(register, c.GetFnOfdStatus(0))
    assert (done.state, done.unsent, done.first_unsent, done.first_unsent_when) == (0, 0, 0, None)


def test_a_correction_receipt(register: AtolRegister) -> None:
    open_shift(register)
    run(register, c.OpenReceipt(0, 0, ReceiptType.SELL_CORRECTION))
    assert status(register).receipt_state == ReceiptType.SELL_CORRECTION
    run(register, tlv(1173, 0))
    run(register, tlv(1055, 1))
    run(register, c.CloseReceipt(0, 0, CASH, 5_000))
    record = register.fn.record(register.fn.state.last_number)
    assert (record.kind, record.operation, record.total) == (
        DocumentType.CORRECTION_RECEIPT,
        1,
        5_000,
    )
    body = decode_tlv(record.tlv)[0][1]
    assert [tag for tag, _ in body].count(1055) == 1  # type: ignore[union-attr]
    assert register.verify().ok


def test_the_clock(register: AtolRegister, clock: ManualClock) -> None:
    run(register, c.SetDateTime(0, dt.datetime(2026, 11, 3, 10, 30, 15)))
    assert clock.now() == dt.datetime(2026, 11, 3, 10, 30, 15)
    run(register, c.SetDate(0, dt.date(2026, 11, 5)))
    assert clock.now() == dt.datetime(2026, 11, 5, 10, 30, 15)
    assert status(register).when == clock.now()


# -- refusals -------------------------------------------------------------------------------------


def test_wrong_mode(register: AtolRegister) -> None:
    assert refused(register, c.OpenReceipt(0, 0, ReceiptType.SELL)) == 0x66
    assert refused(register, c.OpenShift(0)) == 0x66
    enter(register, Mode.REGISTRATION)
    assert refused(register, c.ZReport(0)) == 0x66
    assert refused(register, c.Report(0, 1)) == 0x66
    assert refused(register, c.EnterMode(0, 2, SYS)) == 0x1E  # leave mode 1 first
    enter(register, Mode.X_REPORTS)
    assert refused(register, c.Report(0, 9)) == 0xA3  # a report this emulator does not make


def test_wrong_password(register: AtolRegister) -> None:
    assert refused(register, c.EnterMode(0, 1, 1234)) == 0x8C
    assert refused(register, c.EnterMode(0, 3, 5)) == 0x8C  # a cashier cannot close the shift
    assert refused(register, c.GetStatus(7)) == 0x8C  # the access password is 0000
    run(register, c.EnterMode(0, 1, 5))  # cashier 5 may sell
    assert status(register).cashier == 5
    open_shift_tags = register.settings.operator_name(5)
    run(register, c.OpenShift(0))
    opened = register.fn.record(register.fn.state.last_number)
    assert find(decode_tlv(opened.tlv)[0][1], 1021) == open_shift_tags  # type: ignore[arg-type]


def test_shift_closed_open_and_expired(register: AtolRegister, clock: ManualClock) -> None:
    enter(register, Mode.REGISTRATION)
    assert refused(register, c.OpenReceipt(0, 0, ReceiptType.SELL)) == 0xD4
    assert refused(register, c.CashIn(0, 0, 1_000)) == 0xD4
    run(register, c.OpenShift(0))
    assert refused(register, c.OpenShift(0)) == 0x9C
    clock.advance(dt.timedelta(hours=25))
    assert refused(register, c.OpenReceipt(0, 0, ReceiptType.SELL)) == 0x88
    enter(register, Mode.Z_REPORTS)
    run(register, c.ZReport(0))
    assert register.verify().ok


def test_receipt_open_and_closed(register: AtolRegister) -> None:
    open_shift(register)
    assert refused(register, c.Payment(0, 0, CASH, 100)) == 0x9A
    assert refused(register, c.CancelReceipt(0)) == 0x9A
    run(register, c.OpenReceipt(0, 0, ReceiptType.SELL))
    assert refused(register, c.OpenReceipt(0, 0, ReceiptType.SELL)) == 0x9B
    assert refused(register, c.ExitMode(0)) == 0x9B
    assert refused(register, c.CashIn(0, 0, 100)) == 0x9B
    assert refused(register, c.OpenReceipt(0, 0, 3)) == 0x9B
    run(register, c.CancelReceipt(0))
    assert refused(register, c.OpenReceipt(0, 0, 3)) == 0x6A  # no receipt type 3


def test_payment_short_and_non_cash_over_the_total(register: AtolRegister) -> None:
    open_shift(register)
    run(register, c.OpenReceipt(0, 0, ReceiptType.SELL))
    run(register, e6_item(10_000))
    assert refused(register, c.CloseReceipt(0, 0, CASH, 9_000)) == 0x72
    assert refused(register, c.Payment(0, 0, CARD, 10_001)) == 0x71
    assert refused(register, c.Payment(0, 0, 9, 100)) == 0x7E
    assert run(register, c.Payment(0, 0, CARD, 4_000)) == c.PaymentAnswer(6_000, 0)
    assert refused(register, c.CloseReceipt(0, 0, CASH, 5_000)) == 0x72  # 9 000 of 10 000
    run(register, c.CloseReceipt(0, 0, CASH, 6_000))
    record = register.fn.record(register.fn.state.last_number)
    assert (record.payments.electronic, record.payments.cash) == (4_000, 6_000)


def test_cash_in_and_out(register: AtolRegister) -> None:
    open_shift(register)
    run(register, c.CashIn(0, 0, 50_000))
    assert refused(register, c.CashOut(0, 0, 60_000)) == 0x98
    run(register, c.CashOut(0, 0, 20_000))
    assert register.model.cash_in_drawer() == 30_000
    assert "ВНЕСЕНИЕ" in register.tape()[-4] or any("ВЫПЛАТА" in line for line in register.tape())


def test_unknown_and_malformed_commands(register: AtolRegister) -> None:
    assert register.execute(b"\x00\x00\x01") == b"\x55\x66\x00"
    assert register.execute(b"\x00\x00\x3f\x00") == b"\x55\x14\x00"  # an extra byte
    assert register.execute(b"\x00") == b"\x55\x14\x00"
    assert register.execute(b"\x00\x00\xa5\x00") == b"\x14"  # A5h: one error byte
    assert "extra" in register.last_error


def test_paper(register: AtolRegister) -> None:
    enter(register, Mode.REGISTRATION)
    register.printer.paper = False
    assert refused(register, c.OpenShift(0)) == 0x67
    assert run(register, c.GetStateCode(0)).flags & 0x01
    assert StatusFlags.PAPER not in StatusFlags(status(register).flags)
    register.printer.paper = True
    register.printer.cover_open = True
    assert refused(register, c.OpenShift(0)) == 0x69
    register.printer.cover_open = False
    run(register, c.OpenShift(0))
    run(register, c.OpenReceipt(0, 0, ReceiptType.SELL))
    run(register, e6_item(1_000))
    register.printer.paper_left = 3  # the roll ends three lines into the receipt
    run(register, c.CloseReceipt(0, 0, CASH, 0))  # fiscalized: the answer says so
    assert not register.tape()[-1].startswith("QR: ")
    register.printer.paper = True
    status(register)  # the register finishes the document by itself once paper is back
    assert register.tape()[-1].startswith("QR: ")
    assert register.verify().ok


def test_fiscal_only(tmp_path: Path, clock: ManualClock) -> None:
    register = open_device(tmp_path / "fo", fiscal_only=True, clock=clock)
    try:
        kind = run(register, c.GetDeviceType(0))
        assert (kind.model, kind.name) == (77, "АТОЛ 42ФС")
        open_shift(register)
        run(register, c.OpenReceipt(0, 0, ReceiptType.SELL))
        run(register, e6_item(3_000))
        assert refused(register, c.CloseReceipt(0, 0, CASH, 0)) == 0xE7
        assert "1008" in register.last_error
        run(register, tlv(1008, "+79990000000"))
        run(register, c.CloseReceipt(0, 0, CASH, 0))
        assert register.tape() == []
        number = register.fn.state.last_number
        qr = parse_qr(register.qr(number))
        assert (qr.total, qr.fd) == (3_000, number)
        assert register.status_text()["mode"] == 1
    finally:
        register.close()


def test_one_state_directory_two_personalities(tmp_path: Path, clock: ManualClock) -> None:
    shtrih = open_shtrih(tmp_path / "kkt", clock=clock)
    try:
        shtrih.execute(classic.OpenShift(SYS).encode())
        assert shtrih.fn.state.shift_open
    finally:
        shtrih.close()
    atol = open_device(tmp_path / "kkt", clock=clock)
    try:
        assert StatusFlags.SHIFT_OPEN in StatusFlags(status(atol).flags)
        enter(atol, Mode.REGISTRATION)
        sell(atol, 4_200)
        assert atol.fn.state.last_number == 3 and atol.verify().ok
    finally:
        atol.close()


def test_power_loss_and_quick(register: AtolRegister) -> None:
    open_shift(register)
    run(register, c.OpenReceipt(0, 0, ReceiptType.SELL))
    assert register.quick(c.GetStatus(0).encode()) and register.quick(e6_item(1).encode())
    assert not register.quick(c.CloseReceipt(0, 0, CASH, 0).encode())
    register.power_loss()
    assert status(register).receipt_state == 0 and split_mode(status(register).mode)[0] == 0
    assert register.status_text()["shift_open"] is True


# -- misbehaving clients --------------------------------------------------------------------------

_CODES = sorted({cls.CODE for cls in c.request_types().values()})
# Well-formed commands in any order: they walk the register through its modes and receipts.
_VALID = [
    request.encode()
    for request in (
        c.EnterMode(0, 1, SYS),
        c.EnterMode(0, 2, SYS),
        c.EnterMode(0, 3, SYS),
        c.ExitMode(0),
        c.OpenShift(0),
        c.ZReport(0),
        c.Report(0, 1),
        c.OpenReceipt(0, 0, ReceiptType.SELL),
        c.OpenReceipt(0, 0, ReceiptType.BUY_RETURN),
        c.OpenReceipt(0, 0, ReceiptType.SELL_CORRECTION),
        e6_item(1_500, 2_500),
        c.BeginItem(0, 0, 1),
        end_item(999),
        tlv(1008, "buyer@example.org"),
        tlv(1055, 2),
        c.Payment(0, 0, CARD, 1_000),
        c.Payment(0, 0, CASH, 5_000),
        c.CloseReceipt(0, 0, CASH, 0),
        c.CloseReceipt(0, 0, CARD, 700),
        c.CancelReceipt(0),
        c.CashIn(0, 0, 10_000),
        c.CashOut(0, 0, 3_000),
        c.GetFnDocumentSize(0, 2),
        c.GetFnDocumentData(0),
        c.GetStatus(0),
    )
]
_COMMANDS = st.one_of(
    st.sampled_from(_VALID),
    st.binary(max_size=40),
    st.tuples(st.sampled_from(_CODES), st.binary(max_size=30)).map(
        lambda pair: b"\x00\x00" + bytes((pair[0],)) + pair[1]
    ),
)


def _well_formed(command: bytes, reply: bytes) -> None:
    code = command[2] if len(command) >= 3 else 0
    if code == 0x45:  # its error reply has the shape of its answer (only the v3 buffer tells)
        assert len(reply) == 3 and reply[0] == c.REPLY_MARK
        return
    if c.reply_is_error(code, reply):
        assert len(reply) == (1 if code == 0xA5 else 3)
        return
    c.decode_request(command).decode_answer(reply)  # a success reply decodes as its answer


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_COMMANDS, max_size=25))
def test_random_bytes_never_raise_and_get_a_well_formed_reply(
    tmp_path: Path, clock: ManualClock, commands: list[bytes]
) -> None:
    register = open_device(tmp_path / f"fuzz-{len(list(tmp_path.iterdir()))}", clock=clock)
    try:
        open_shift(register)
        run(register, c.OpenReceipt(0, 0, ReceiptType.SELL))
        for command in commands:
            reply = register.execute(command)
            _well_formed(command, reply)
            assert reply[1:2] != b"\xf6", register.last_error  # no internal error
        assert register.verify().ok
    finally:
        register.close()


def test_shift_state_register_says_expired_after_24_hours(
    register: AtolRegister, clock: ManualClock
) -> None:
    # RPiVendApp CashDesk.cs (source repository unknown) StageProperties: state 2 is "the shift
    # is older than 24 hours"; the date-time stays the opening's.
    open_shift(register)
    clock.advance(dt.timedelta(hours=25))
    state = run(register, c.ReadShiftState(0, 0, 1))
    assert state == c.ShiftState(c.SHIFT_EXPIRED, register.fn.state.shift_opened_at)
    # A raw register read of 12h (other parameters) gives the same bytes.
    assert run(register, c.ReadRegister(0, 0x12, 1, 0)) == c.RegisterValue(state.encode_data())


def test_last_receipt_register_skips_later_documents(register: AtolRegister) -> None:
    assert run(register, c.ReadLastReceipt(0)) == c.LastDocument(0, 0, 0, None, 0)
    open_shift(register)
    run(register, c.OpenReceipt(0, 0, ReceiptType.SELL_RETURN))
    run(register, c.BeginItem(0, 0, 1))
    run(register, end_item(2500))
    run(register, c.CloseReceipt(0, 0, CASH, 0))
    receipt = run(register, c.ReadLastDocument(0))
    run(register, c.ExitMode(0))
    enter(register, Mode.Z_REPORTS)
    run(register, c.ZReport(0))  # the last document is now the shift's closing
    last = run(register, c.ReadLastReceipt(0))
    assert run(register, c.ReadLastDocument(0)).number == receipt.number + 1
    # The 92h type of a sale return (2), where register 34h gives the FFD document type (3).
    assert last == dataclasses.replace(receipt, document_type=int(ReceiptType.SELL_RETURN))
    assert receipt.document_type == DocumentType.RECEIPT
    assert run(register, c.ReadRegister(0, 0x33, 0, 1)) == c.RegisterValue(last.encode_data())


def test_other_registers_are_refused_with_bad_register(register: AtolRegister) -> None:
    assert refused(register, c.ReadRegister(0, 0x35)) == 0x6C
