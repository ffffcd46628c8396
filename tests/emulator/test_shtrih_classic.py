"""The classic commands a pyshtrih-style host sends, as the emulated register runs them (#15).

Texts come at the model's width (48 bytes on ШТРИХ-М-01Ф) and are cut where the line ends;
86h/87h move the last item's amount; 84h takes an item back; 8Ch prints a copy; 12h prints a bold
half-width line; 11h's firmware and fiscal-memory dates are dates, never zeros.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.clock import ManualClock
from kkt.emulator.shtrih import ShtrihRegister, open_device
from kkt.protocols.ffd import decode_tlv, find
from kkt.protocols.shtrih import classic
from kkt.protocols.shtrih.errors import ShtrihDeviceError
from kkt.protocols.shtrih.message import Request
from kkt.protocols.shtrih.models import M02F
from kkt.protocols.shtrih.modes import ReceiptType
from support.fn import START

CASHIER = 1  # pyshtrih's default password; its reports use 30
WIDE = "Длинное наименование товара, шире строки ШТРИХ-М-01Ф в 48 знаков"  # 64 characters


@pytest.fixture
def register(tmp_path: Path) -> ShtrihRegister:
    device = open_device(tmp_path / "kkt", clock=ManualClock(START))
    yield device
    device.close()


def run(register: ShtrihRegister, request: Request[Any]) -> Any:
    return request.decode_answer(register.execute(request.encode()))


def refused(register: ShtrihRegister, request: Request[Any]) -> int:
    with pytest.raises(ShtrihDeviceError) as caught:
        run(register, request)
    return caught.value.code


def sale(price: int, name: str = "Товар", quantity: str = "1") -> classic.Sale:
    return classic.Sale(CASHIER, Decimal(quantity), price, 1, (1, 0, 0, 0), name)


def close(cash: int) -> classic.CloseReceipt:
    return classic.CloseReceipt(CASHIER, (cash, 0, 0, 0), 0, (0, 0, 0, 0), "")


def items_of(register: ShtrihRegister, number: int) -> list[Any]:
    [(_, body)] = decode_tlv(register.fn.record(number).tlv)
    return [value for tag, value in body if tag == 1059]


@pytest.fixture
def shift(register: ShtrihRegister) -> ShtrihRegister:
    run(register, classic.OpenShift(CASHIER))
    return register


def test_a_wide_name_is_taken_and_cut_at_the_line(shift: ShtrihRegister) -> None:
    run(shift, classic.OpenReceipt(CASHIER, ReceiptType.SALE))
    run(shift, sale(12_345, WIDE))  # 62 bytes on the wire
    closed = run(shift, close(20_000))
    assert closed.change == 20_000 - 12_345
    number = shift.fn.status().last_number
    (item,) = items_of(shift, number)
    assert find(item, 1030) == WIDE[:48]  # what ШТРИХ-М-01Ф prints of it
    assert WIDE[:48] in shift.tape() and WIDE not in shift.tape()


def test_a_text_field_under_forty_bytes_is_refused_33h(shift: ShtrihRegister) -> None:
    payload = classic.PrintString(CASHIER, 2, "x").encode()[:-1]  # 39 bytes of text
    assert shift.execute(payload) == bytes((0x17, 0x33))


def test_print_string_and_bold_line_are_cut_at_their_widths(register: ShtrihRegister) -> None:
    run(register, classic.PrintString(CASHIER, 3, "Ж" * 60))
    run(register, classic.PrintBoldString(CASHIER, 3, "Б" * 60))
    run(register, classic.PrintBoldString(CASHIER, 1, "journal only: not on the receipt"))
    assert register.tape()[-2:] == ["Ж" * 48, "Б" * 24]


def test_exchange_params_are_kept_per_port(register: ShtrihRegister) -> None:
    assert run(register, classic.ReadExchangeParams(30, 0)) == classic.ExchangeParams(6, 50)
    run(register, classic.SetExchangeParams(30, 0, 2, 100))  # 9600 baud, 100 ms
    assert run(register, classic.ReadExchangeParams(30, 0)) == classic.ExchangeParams(2, 100)
    assert run(register, classic.ReadExchangeParams(30, 1)) == classic.ExchangeParams(6, 50)
    assert refused(register, classic.SetExchangeParams(30, 0, 9, 100)) == 0x33
    assert refused(register, classic.SetExchangeParams(CASHIER, 0, 2, 100)) == 0x4F


def test_drawer_and_feed(register: ShtrihRegister) -> None:
    run(register, classic.OpenDrawer(CASHIER, 0))
    before = len(register.tape())
    run(register, classic.Feed(CASHIER, 2, 3))
    run(register, classic.Feed(CASHIER, 1, 5))  # the journal: nothing on the receipt tape
    assert register.tape()[before:] == ["", "", ""]


def test_discount_and_surcharge_move_the_last_item(shift: ShtrihRegister) -> None:
    run(shift, classic.OpenReceipt(CASHIER, ReceiptType.SALE))
    run(shift, sale(1_000, "Первый"))
    run(shift, sale(2_000, "Второй", quantity="2"))
    run(shift, classic.Discount(CASHIER, 500, (0, 0, 0, 0), ""))
    run(shift, classic.Surcharge(CASHIER, 100, (0, 0, 0, 0), "Надбавка"))
    assert run(shift, classic.Subtotal(CASHIER)).subtotal == 1_000 + 4_000 - 500 + 100
    assert refused(shift, classic.Discount(CASHIER, 5_000, (0, 0, 0, 0), "")) == 0x33
    run(shift, close(5_000))
    first, second = items_of(shift, shift.fn.status().last_number)
    assert (find(first, 1043), find(first, 1079)) == (1_000, 1_000)
    assert (find(second, 1043), find(second, 1079)) == (3_600, 1_800)  # price "with discounts"


def test_close_with_a_receipt_discount_spreads_it_over_the_items(shift: ShtrihRegister) -> None:
    run(shift, classic.OpenReceipt(CASHIER, ReceiptType.SALE))
    run(shift, sale(1_001, "Первый"))
    run(shift, sale(2_000, "Второй", quantity="2"))
    ten_percent = classic.CloseReceipt(CASHIER, (4_000, 0, 0, 0), 1_000, (0, 0, 0, 0), "")
    assert refused(shift, ten_percent) == 0x45  # 4 000 is short of 4 501
    assert run(shift, classic.Subtotal(CASHIER)).subtotal == 5_001  # the refusal took it back
    over = classic.CloseReceipt(CASHIER, (9_000, 0, 0, 0), 10_000, (0, 0, 0, 0), "")
    assert refused(shift, over) == 0x33  # over 99.99 %
    closed = run(shift, classic.CloseReceipt(CASHIER, (5_000, 0, 0, 0), 1_000, (0, 0, 0, 0), ""))
    assert closed.change == 5_000 - 4_501  # 10 % of 5 001 is 500.1: 500 off
    record = shift.fn.record(shift.fn.status().last_number)
    first, second = items_of(shift, record.number)
    assert (find(first, 1043), find(second, 1043)) == (901, 3_600)
    assert record.total == 4_501


def test_storno_takes_back_the_matching_item(shift: ShtrihRegister) -> None:
    run(shift, classic.OpenReceipt(CASHIER, ReceiptType.SALE))
    run(shift, sale(1_000, "Первый"))
    run(shift, sale(2_000, "Второй"))
    storno = classic.Storno(CASHIER, Decimal(1), 1_000, 1, (0, 0, 0, 0), "")
    run(shift, storno)
    assert run(shift, classic.Subtotal(CASHIER)).subtotal == 2_000
    assert refused(shift, storno) == 0x33  # nothing of that price is left


def test_buy_and_buy_return_open_their_receipts(shift: ShtrihRegister) -> None:
    buy = classic.Buy(CASHIER, Decimal(1), 700, 1, (0, 0, 0, 0), "Закупка")
    run(shift, buy)
    assert run(shift, classic.GetShortStatus(CASHIER)).mode == 0x18  # 8.1: buy receipt open
    assert refused(shift, sale(100)) == 0x49  # a sale does not fit a buy receipt
    run(shift, close(700))
    assert shift.fn.record(shift.fn.status().last_number).operation == 3  # расход


def test_repeat_prints_a_copy_and_refuses_56h_with_nothing_printed(
    register: ShtrihRegister,
) -> None:
    assert refused(register, classic.RepeatDocument(CASHIER)) == 0x56
    run(register, classic.OpenShift(CASHIER))
    run(register, classic.OpenReceipt(CASHIER, ReceiptType.SALE))
    run(register, sale(1_500))
    run(register, close(1_500))
    documents = register.fn.status().last_number
    before = register.tape()
    run(register, classic.RepeatDocument(CASHIER))
    copy = register.tape()[len(before) :]
    assert copy and copy == before[-len(copy) :]  # the receipt's lines, again
    assert register.fn.status().last_number == documents  # nothing fiscal happened


def test_long_status_dates_are_dates(register: ShtrihRegister) -> None:
    status = run(register, classic.GetLongStatus(CASHIER))
    assert (status.firmware_version, status.firmware_build) == ("C1", 62922)
    assert status.firmware_date == dt.date(2025, 1, 10)
    assert status.fp_date == dt.date(2016, 1, 1)


def test_the_model_is_chosen_and_kept(tmp_path: Path) -> None:
    device = open_device(tmp_path / "kkt", clock=ManualClock(START))
    try:
        device.set_model(M02F.name)
        with pytest.raises(ValueError, match="no Shtrih model"):
            device.set_model("ШТРИХ-ЛАЙТ-01Ф")
    finally:
        device.close()
    device = open_device(tmp_path / "kkt", clock=ManualClock(START))
    try:
        assert run(device, classic.GetDeviceType()).name == "ШТРИХ-М-02Ф"
        assert device.printer.width == 48
    finally:
        device.close()


@pytest.mark.parametrize(
    ("prices", "hundredths"),
    [
        ((209, 209, 209, 209, 1), 500),  # four items' shares round down by more than the last
        ((1, 1, 1, 1), 5_000),  # four round up: the last would be charged more, not less
        ((1, 1, 1, 1, 1), -4_000),  # a surcharge rounds the same way
    ],
)
def test_a_receipt_discount_never_takes_an_item_below_zero_or_past_its_amount(
    shift: ShtrihRegister, prices: tuple[int, ...], hundredths: int
) -> None:
    # Review: 85h's spread rounded each item's share on its own and gave the last item whatever
    # was left, so a valid 5 % closing was refused 33h (the last item went negative) or a
    # discount raised the last item's amount.  Each item's share must lie between 0 and its own
    # amount's share rounded either way, the receipt's discount being the total's.
    run(shift, classic.OpenReceipt(CASHIER, ReceiptType.SALE))
    for price in prices:
        run(shift, sale(price))
    total = sum(prices)
    whole = int(
        (Decimal(total) * hundredths / 10_000).quantize(Decimal(1), rounding="ROUND_HALF_UP")
    )
    run(shift, classic.CloseReceipt(CASHIER, (total * 2, 0, 0, 0), hundredths, (0, 0, 0, 0), ""))
    record = shift.fn.record(shift.fn.status().last_number)
    assert record.total == total - whole
    for price, item in zip(prices, items_of(shift, record.number), strict=True):
        share = price - find(item, 1043)
        exact = Decimal(price) * hundredths / 10_000
        assert abs(share - exact) < 1, (price, find(item, 1043))
