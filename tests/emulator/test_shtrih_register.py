"""The emulated Shtrih register, driven in process with the protocol core's typed requests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kkt.emulator.clock import ManualClock
from kkt.emulator.shtrih import ShtrihRegister, open_device
from kkt.protocols.ffd import encode_tlv, parse_qr
from kkt.protocols.shtrih import classic, fn
from kkt.protocols.shtrih.errors import ShtrihDeviceError
from kkt.protocols.shtrih.message import Request, request_types
from kkt.protocols.shtrih.modes import OperationType, ReceiptType, TaxRate, TaxSystem, decode_mode
from support.fn import START
from support.strategies import message_strategy

SYS = 30


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def register(tmp_path: Path, clock: ManualClock) -> ShtrihRegister:
    device = open_device(tmp_path / "kkt", clock=clock)
    yield device
    device.close()


def run(register: ShtrihRegister, request: Request[Any]) -> Any:
    return request.decode_answer(register.execute(request.encode()))


def refused(register: ShtrihRegister, request: Request[Any]) -> int:
    with pytest.raises(ShtrihDeviceError) as caught:
        run(register, request)
    return caught.value.code


def mode(register: ShtrihRegister) -> int:
    return int(run(register, classic.GetShortStatus(SYS)).mode)


def item(price: int = 10_000, quantity: str = "1", name: str = "Товар") -> fn.OperationV2:
    return fn.OperationV2(
        SYS,
        OperationType.INCOME,
        Decimal(quantity),
        price,
        None,
        None,
        TaxRate.VAT20,
        1,
        4,
        1,
        name,
    )


def close(cash: int, electronic: int = 0, text: str = "") -> fn.CloseReceiptV2:
    payments = (cash, electronic) + (0,) * 14
    return fn.CloseReceiptV2(SYS, payments, 0, (0,) * 6, TaxSystem.OSN, text)


def sell(register: ShtrihRegister, cash: int = 50_000) -> fn.ReceiptClosed:
    run(register, classic.OpenReceipt(SYS, ReceiptType.SALE))
    for price in (10_000, 2_550, 1_990):
        run(register, item(price))
    return run(register, close(cash))  # type: ignore[no-any-return]


def test_identity_and_a_day(register: ShtrihRegister) -> None:
    device = run(register, classic.GetDeviceType())
    assert (device.model, device.name) == (250, "ШТРИХ-М-01Ф")
    assert mode(register) == 4
    run(register, classic.OpenShift(SYS))
    assert mode(register) == 2
    run(register, classic.OpenReceipt(SYS, ReceiptType.SALE))
    assert decode_mode(mode(register)).document is not None and mode(register) == 0x08
    for price in (10_000, 2_550, 1_990):
        run(register, item(price))
    assert run(register, classic.Subtotal(SYS)).subtotal == 14_540
    closed = run(register, close(20_000))
    assert closed.change == 20_000 - 14_540
    assert mode(register) == 2
    found = run(register, fn.FindDocument(SYS, closed.document_number))
    assert (found.document_type, found.number, found.fiscal_sign) == (
        3,
        closed.document_number,
        closed.fiscal_sign,
    )
    assert found.details() == fn.ReceiptDetails(OperationType.INCOME, 14_540)
    run(register, classic.ZReport(SYS))
    assert mode(register) == 4
    assert register.fn.verify().ok
    tape = "\n".join(register.tape())
    assert "КАССОВЫЙ ЧЕК" in tape and "ФП:" in tape and "ОТЧЕТ О ЗАКРЫТИИ СМЕНЫ" in tape


def test_fn_commands(register: ShtrihRegister) -> None:
    status = run(register, fn.GetFnStatus(SYS))
    assert status.phase == 0x03 and status.last_document_number == 1 and not status.shift_open
    run(register, fn.BeginOpenShift(SYS))
    assert run(register, fn.GetFnStatus(SYS)).current_document == 0x02
    run(register, fn.SendTlv(SYS, encode_tlv([(1021, "Петрова А.")])))
    opened = run(register, fn.FnOpenShift(SYS))
    assert (opened.shift_number, opened.document_number) == (1, 2)
    assert run(register, fn.GetShiftParams(SYS)) == fn.ShiftParams(True, 1, 0)
    sell(register)
    assert run(register, fn.GetShiftParams(SYS)).receipt_number == 1
    assert run(register, fn.GetOfdExchangeStatus(SYS)).queue_count == 3
    assert run(register, fn.GetUnconfirmedCount(SYS)).count == 3
    expiry = run(register, fn.GetFnExpiry(SYS))
    assert (
        expiry.expires == START.date() + dt.timedelta(days=470) and expiry.registrations_done == 1
    )
    run(register, fn.BeginCloseShift(SYS))
    closed = run(register, fn.FnCloseShift(SYS))
    assert (closed.shift_number, closed.document_number) == (1, 4)
    assert run(register, classic.ReadTable(SYS, 18, 1, 4)).value == register.fn.serial.encode()


def test_ofd_tables_19_and_21(register: ShtrihRegister) -> None:
    # Table 19: server, port, timeout; table 21 field 2: exchange mode (1 register, 0 driver)
    # (fact sheet ofd-cloud-marking.md §1.3).  They are the settings the register's sender reads.
    settings = register.settings
    assert (settings.ofd_host, settings.ofd_port, settings.ofd_via_driver) == (None, None, False)
    assert run(register, classic.ReadTable(SYS, 21, 1, 2)).value == b"\x01"
    run(register, classic.WriteTable(SYS, 19, 1, 1, b"127.0.0.1"))
    run(register, classic.WriteTable(SYS, 19, 1, 2, (7779).to_bytes(2, "little")))
    run(register, classic.WriteTable(SYS, 19, 1, 3, b"\x0a"))
    run(register, classic.WriteTable(SYS, 21, 1, 2, b"\x00"))
    assert (settings.ofd_host, settings.ofd_port, settings.ofd_timeout) == ("127.0.0.1", 7779, 10)
    assert settings.ofd_via_driver
    host = run(register, classic.ReadTable(SYS, 19, 1, 1)).value
    assert host == b"127.0.0.1".ljust(64, b"\x00")
    assert run(register, classic.ReadTable(SYS, 19, 1, 2)).value == b"\x63\x1e"
    assert run(register, classic.ReadTable(SYS, 21, 1, 2)).value == b"\x00"
    assert refused(register, classic.WriteTable(SYS, 21, 1, 2, b"\x02")) == 0x33
    assert refused(register, classic.WriteTable(SYS, 19, 1, 2, (70000).to_bytes(4, "little"))) == (
        0x33
    )
    run(register, classic.WriteTable(SYS, 19, 1, 1, b""))  # no server: the register has no network
    assert settings.ofd_host is None


def test_item_tags_and_receipt_tags_reach_the_document(register: ShtrihRegister) -> None:
    run(register, classic.OpenShift(SYS))
    run(register, classic.OpenReceipt(SYS, ReceiptType.SALE))
    run(register, item(5_000, "1.5", "Сыр"))
    run(
        register, fn.SendOperationTlv(SYS, bytes.fromhex("FF 03 04 00 06 40 42 0F"))
    )  # fact sheet §2.4
    run(register, fn.SendTlv(SYS, encode_tlv([(1008, "buyer@example.org")])))
    closed = run(register, close(7_500))
    from kkt.protocols.ffd import decode_tlv, find

    [(kind, body)] = decode_tlv(register.fn.record(closed.document_number).tlv)
    assert kind == 3 and find(body, 1008) == "buyer@example.org" and find(body, 1020) == 7_500
    items = [value for tag, value in body if tag == 1059]
    assert len(items) == 1
    assert (
        find(items[0], 1030) == "Сыр"
        and find(items[0], 1043) == 7_500
        and find(items[0], 1200) == 1_250
    )
    assert [v for t, v in items[0] if t == 1023] == [Decimal("1.500000"), Decimal("1.000000")]


def test_refusals(register: ShtrihRegister, clock: ManualClock) -> None:
    assert refused(register, classic.GetShortStatus(12345)) == 0x4F
    assert refused(register, classic.ZReport(1)) == 0x4F  # a cashier cannot close the shift
    assert refused(register, classic.OpenReceipt(SYS, ReceiptType.SALE)) == 0x3D
    assert refused(register, classic.ZReport(SYS)) == 0x3D
    run(register, classic.OpenShift(SYS))
    assert refused(register, classic.OpenShift(SYS)) == 0x3C
    assert refused(register, close(100)) == 0x55
    run(register, item(1_000))
    assert refused(register, classic.ZReport(SYS)) == 0x4A
    assert refused(register, close(500)) == 0x45
    assert (
        refused(
            register, fn.CloseReceiptV2(SYS, (0, 2_000) + (0,) * 14, 0, (0,) * 6, TaxSystem.OSN, "")
        )
        == 0x33
    )
    assert (
        refused(
            register, fn.CloseReceiptV2(SYS, (1_000,) + (0,) * 15, 0, (0,) * 6, TaxSystem.PSN, "")
        )
        == 0x19  # the FN's "does not match the registration", passed through (not 33h)
    )
    run(register, classic.CancelReceipt(SYS))
    assert register.execute(b"\xf7\x01") == b"\xf7\x37"  # unknown command
    assert register.execute(b"\x10\x1e\x00") == b"\x10\x33"  # truncated
    assert register.execute(b"\xff") == b"\xff\x01"


def test_shift_over_24_hours(register: ShtrihRegister, clock: ManualClock) -> None:
    run(register, classic.OpenShift(SYS))
    clock.advance(dt.timedelta(hours=25))
    assert mode(register) == 3
    assert refused(register, item()) == 0x4E
    run(register, classic.ZReport(SYS))
    assert mode(register) == 4


def test_paper_out_refuses_printing_commands_before_anything_happens(
    register: ShtrihRegister,
) -> None:
    run(register, classic.OpenShift(SYS))
    run(register, item(1_000))
    register.printer.paper = False
    assert refused(register, item(1_000)) == 0x6B
    assert refused(register, close(1_000)) == 0x6B  # not fiscalized: nothing to print on
    assert run(register, classic.GetShortStatus(SYS)).submode == 1
    assert register.fn.status().last_number == 2
    register.printer.paper = True
    assert run(register, close(1_000)).document_number == 3


def test_paper_runs_out_while_printing_the_receipt(register: ShtrihRegister) -> None:
    run(register, classic.OpenShift(SYS))
    run(register, item(1_000))
    register.printer.paper_left = 3  # the roll ends three lines into the receipt
    closed = run(register, close(1_000))
    assert closed.document_number == 3  # fiscalized: the answer says so, exactly once
    assert run(register, classic.GetShortStatus(SYS)).submode == 2
    assert refused(register, classic.PrintString(SYS, 2, "x")) == 0x58
    assert refused(register, classic.ContinuePrint(SYS)) == 0x6B
    register.printer.paper = True
    assert run(register, classic.GetShortStatus(SYS)).submode == 3
    run(register, classic.ContinuePrint(SYS))
    assert run(register, classic.GetShortStatus(SYS)).submode == 0
    tape = register.tape()
    assert any("КАССОВЫЙ ЧЕК" in line for line in tape) and tape[-1].startswith("QR: ")
    assert register.fn.status().last_number == 3


def test_the_printed_qr_is_the_whole_string_and_1012s_minute(
    register: ShtrihRegister, clock: ManualClock
) -> None:
    """Issue 14, defect 10: the printed QR line was cut at 48 characters, and its t= carried
    seconds the FN's own records (5-byte date-time) do not."""
    run(register, classic.OpenShift(SYS))
    clock.advance(dt.timedelta(seconds=28))
    closed = sell(register)
    qr = register.qr(closed.document_number)
    assert register.tape()[-1] == "QR: " + qr and len(qr) > register.printer.width
    assert all(len(line) <= register.printer.width for line in register.tape()[:-1])
    when = parse_qr(qr).when
    assert when == clock.now().replace(second=0) and when.second == 0
    document = run(register, fn.FindDocument(SYS, closed.document_number))
    assert document.datetime == when  # the FN's short record: the same minute


def test_fiscal_only_register(tmp_path: Path, clock: ManualClock) -> None:
    register = open_device(tmp_path / "fo", fiscal_only=True, clock=clock)
    try:
        run(register, classic.OpenShift(SYS))
        run(register, item(3_000))
        assert refused(register, close(3_000)) == 0x33
        assert "1008" in register.last_error
        run(register, fn.SendTlv(SYS, encode_tlv([(1008, "+79990000000")])))
        closed = run(register, close(3_000))
        assert register.tape() == []
        qr = parse_qr(register.qr(closed.document_number))
        assert (qr.total, qr.fd, qr.fp, qr.fn) == (
            3_000,
            closed.document_number,
            closed.fiscal_sign,
            register.fn.serial,
        )
    finally:
        register.close()


def test_cash_and_registers(register: ShtrihRegister) -> None:
    run(register, classic.OpenShift(SYS))
    run(register, classic.CashIn(SYS, 100_000))
    sell(register, 14_540)
    assert refused(register, classic.CashOut(SYS, 1_000_000)) == 0x46
    run(register, classic.CashOut(SYS, 4_540))
    assert run(register, classic.ReadCashRegister(SYS, 241)).value == 100_000 + 14_540 - 4_540
    assert run(register, classic.ReadCashRegister(SYS, 193)).value == 14_540
    assert run(register, classic.ReadOperatingRegister(SYS, 144)).value == 1


def test_correction_and_state_report(register: ShtrihRegister) -> None:
    run(register, classic.OpenShift(SYS))
    run(register, fn.BeginCorrectionReceipt(SYS))
    run(register, fn.SendTlv(SYS, encode_tlv([(1174, [(1178, START), (1179, "б/н")])])))
    made = run(register, fn.MakeCorrectionReceipt(SYS, 12_300, OperationType.INCOME))
    assert made.receipt_number == 1 and register.fn.record(made.document_number).kind == 31
    report = run(register, fn.MakeStateReport(SYS))
    assert report.unconfirmed_count == 4 and report.first_unconfirmed_date == START.date()
    assert register.fn.verify().ok


def test_a_correction_with_its_payments_ff4a(register: ShtrihRegister) -> None:
    """FF4A: the payments by kind go into the correction (1031, 1081 ...); payments that are not
    its sum, or a kind that is not 0/1, are refused and the begun correction's tags kept."""
    from kkt.protocols.ffd import decode_tlv, find

    run(register, classic.OpenShift(SYS))
    run(register, fn.BeginCorrectionReceipt(SYS))
    run(register, fn.SendTlv(SYS, encode_tlv([(1174, [(1178, START), (1179, "7/1")])])))

    def ff4a(total: int, payments: tuple[int, ...], kind: int = 1) -> fn.MakeCorrectionReceiptV2:
        taxes = (0, 0, 0, total, 0, 0)
        return fn.MakeCorrectionReceiptV2(
            SYS, kind, OperationType.EXPENSE, total, payments, taxes, int(TaxSystem.OSN)
        )

    assert refused(register, ff4a(12_300, (0, 12_000, 0, 0, 0))) == 0x33
    assert refused(register, ff4a(12_300, (300, 12_000, 0, 0, 0), kind=7)) == 0x33
    made = run(register, ff4a(12_300, (300, 12_000, 0, 0, 0)))
    record = register.fn.record(made.document_number)
    assert record.kind == 31 and record.operation == 3 and record.total == 12_300
    [(_, body)] = decode_tlv(record.tlv)
    assert isinstance(body, list) and (find(body, 1031), find(body, 1081)) == (300, 12_000)
    basis = find(body, 1174)
    assert find(body, 1173) == 1 and isinstance(basis, list) and find(basis, 1179) == "7/1"
    assert register.fn.verify().ok


def test_state_survives_reopening(tmp_path: Path, clock: ManualClock) -> None:
    first = open_device(tmp_path / "kkt", clock=clock)
    run(first, classic.OpenShift(SYS))
    closed = sell(first)
    first.close()
    again = open_device(tmp_path / "kkt", clock=clock)
    try:
        assert mode(again) == 2
        assert (
            run(again, fn.FindDocument(SYS, closed.document_number)).fiscal_sign
            == closed.fiscal_sign
        )
    finally:
        again.close()


_REQUESTS = sorted(request_types().values(), key=lambda c: c.CODE)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.one_of(st.binary(max_size=40), st.sampled_from(_REQUESTS).flatmap(message_strategy)),
        max_size=25,
    )
)
def test_misbehaving_client_never_crashes_or_corrupts(
    tmp_path: Path, clock: ManualClock, commands: list[Any]
) -> None:
    register = open_device(tmp_path / f"fuzz-{len(list(tmp_path.iterdir()))}", clock=clock)
    try:
        run(register, classic.OpenShift(SYS))
        for command in commands:
            payload = command if isinstance(command, bytes) else command.encode()
            if not payload:
                continue
            answer = register.execute(payload)
            assert answer[:1] == payload[:1] and len(answer) >= 2
        assert register.fn.verify().ok
    finally:
        register.close()
