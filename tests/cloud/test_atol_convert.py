"""ATOL Online bodies -> Order -> kkt.Receipt / correction arguments (golden: §2.8 examples)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from kkt.cloud.atol import (
    ApiError,
    body_json,
    fingerprint,
    order_correction,
    order_receipt,
    to_order,
)
from support.atol_examples import V4_CORRECTION, V4_SELL, V5_SELL, body, v5_unmarked

import kkt


def raw(data: dict[str, Any]) -> bytes:
    return body_json(data).encode("utf-8")


def refusal(api: int, operation: str, data: dict[str, Any] | bytes) -> ApiError:
    payload = data if isinstance(data, bytes) else raw(data)
    with pytest.raises(ApiError) as caught:
        to_order(api, operation, "g", payload)
    return caught.value


def test_v4_example_becomes_the_expected_receipt() -> None:
    order = to_order(4, "sell", "MyCompany_MyShop", V4_SELL.encode())
    assert (order.api, order.group, order.operation) == (4, "MyCompany_MyShop", "sell")
    assert order.external_id == "17052917561851307"
    assert order.callback_url == "http://testtest"
    assert order.inn == "1234567891"
    receipt = order_receipt(order)
    assert receipt == kkt.Receipt(
        items=(
            kkt.Item(
                "колбаса Клинский Брауншвейгская с/к в/с",
                100_000,
                Decimal("0.3"),
                kkt.Vat.VAT20,
                payment_method=4,
                payment_subject=1,
                amount=30_000,
                extra=((1197, "кг"),),
            ),
            kkt.Item(
                "яйцо Окское куриное С0 белое",
                10_000,
                Decimal(1),
                kkt.Vat.VAT10,
                payment_method=4,
                payment_subject=1,
                amount=10_000,
                extra=((1197, "Упаковка 10 шт."),),
            ),
        ),
        payments=kkt.Payments(electronic=40_000),
        operation=kkt.Operation.SELL,
        tax_system=kkt.TaxSystem.OSN,
        buyer_contact="kkt@kkt.ru",
        extra=((1117, "chek@romashka.ru"), (1187, "http://magazin.ru/")),
    )
    assert receipt.total == 40_000


def test_numbers_stay_exact_in_the_stored_body() -> None:
    order = to_order(4, "sell", "g", V4_SELL.encode())
    item = order.body["receipt"]["items"][0]
    assert item["quantity"] == Decimal("0.3") and isinstance(item["quantity"], Decimal)
    assert json.loads(body_json(order.body), parse_float=Decimal) == order.body


def test_fingerprint_ignores_the_timestamp_only() -> None:
    first = body(V4_SELL)
    retry = body(V4_SELL) | {"timestamp": "02.02.2019 10:00:00"}
    assert to_order(4, "sell", "g", raw(first)).fingerprint == fingerprint(retry, 4, "sell")
    changed = body(V4_SELL)
    changed["receipt"]["items"][0]["name"] = "колбаса"
    assert fingerprint(changed, 4, "sell") != fingerprint(first, 4, "sell")


def test_a_refund_with_the_sales_body_is_another_request() -> None:
    """Shops reuse the order number as external_id: a full refund has the sale's very body."""
    sale = to_order(4, "sell", "g", raw(body(V4_SELL)))
    refund = to_order(4, "sell_refund", "g", raw(body(V4_SELL)))
    in_v5 = fingerprint(body(V4_SELL), 5, "sell")
    assert len({sale.fingerprint, refund.fingerprint, in_v5}) == 3


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("sell", kkt.Operation.SELL),
        ("sell_refund", kkt.Operation.SELL_RETURN),
        ("buy", kkt.Operation.BUY),
        ("buy_refund", kkt.Operation.BUY_RETURN),
    ],
)
def test_operations(operation: str, expected: kkt.Operation) -> None:
    assert order_receipt(to_order(4, operation, "g", V4_SELL.encode())).operation == expected


def test_payment_types_and_contacts() -> None:
    data = body(V4_SELL)
    data["receipt"]["payments"] = [
        {"type": 0, "sum": Decimal("100.50")},
        {"type": 2, "sum": Decimal(100)},
        {"type": 3, "sum": Decimal(100)},
        {"type": 4, "sum": Decimal("99.50")},
    ]
    data["receipt"]["client"] = {"phone": "9990000000"}
    data["receipt"]["cashier"] = "Иванов И.И."
    data["receipt"]["company"]["sno"] = "usn_income"
    receipt = order_receipt(to_order(4, "sell", "g", raw(data)))
    assert receipt.payments == kkt.Payments(cash=10050, prepaid=10000, credit=10000, other=9950)
    assert receipt.buyer_contact == "+79990000000"
    assert receipt.cashier == "Иванов И.И."
    assert receipt.tax_system == kkt.TaxSystem.USN_INCOME
    data["receipt"]["client"] = {"email": "a@b.ru", "phone": "+79990000000"}
    assert order_receipt(to_order(4, "sell", "g", raw(data))).buyer_contact == "a@b.ru"


def test_missing_sno_takes_the_registers_or_osn() -> None:
    data = body(V4_SELL)
    del data["receipt"]["company"]["sno"]
    order = to_order(4, "sell", "g", raw(data))
    receipt = order_receipt(order, tax_system=kkt.TaxSystem.PATENT)
    assert receipt.tax_system == kkt.TaxSystem.PATENT
    assert order_receipt(order).tax_system == kkt.TaxSystem.OSN


def test_a_body_stored_with_floats_converts_the_same() -> None:
    # The pool may hand a stored body back through json.dumps(default=float).
    order = to_order(4, "sell", "g", V4_SELL.encode())
    again = json.dumps(order.body, default=float, ensure_ascii=False).encode()
    assert order_receipt(to_order(4, "sell", "g", again)) == order_receipt(order)


def test_v4_extras_reach_the_receipt() -> None:
    data = body(V4_SELL)
    data["receipt"]["additional_check_props"] = "смена 5"
    data["receipt"]["additional_user_props"] = {"name": "Скидка", "value": "5 %"}
    data["receipt"]["items"][0]["user_data"] = "арт. 77"
    receipt = order_receipt(to_order(4, "sell", "g", raw(data)))
    assert (1192, "смена 5") in receipt.extra
    assert (1084, [(1085, "Скидка"), (1086, "5 %")]) in receipt.extra
    assert receipt.items[0].extra == ((1197, "кг"), (1191, "арт. 77"))


def test_v5_unmarked_example() -> None:
    data = v5_unmarked()
    data["receipt"]["cashier_inn"] = "123456789047"
    data["receipt"]["client"]["name"] = "Иван"
    order = to_order(5, "sell", "g", raw(data))
    assert order.callback_url == "https://shop.example/atol/cb"
    receipt = order_receipt(order)
    assert [item.price for item in receipt.items] == [10999, 999]
    assert [item.measure for item in receipt.items] == [0, 0]
    assert [item.payment_subject for item in receipt.items] == [1, 1]
    assert receipt.payments == kkt.Payments(electronic=11998)
    assert (1125, b"\x01") in receipt.extra
    assert (1203, "123456789047") in receipt.extra
    assert (1256, [(1227, "Иван")]) in receipt.extra


def test_v5_example_with_a_cut_code_is_refused_by_path() -> None:
    # V5_SELL's gs1m is the fact sheet's code cut after "92YWCX": the FN would refuse it, so the
    # door does (whole codes convert: tests/cloud/test_marking_convert.py)
    error = refusal(5, "sell", body(V5_SELL))
    assert error.code == 32 and error.http_status == 400
    assert "receipt.items[0].mark_code.gs1m: AI 92 crypto tail is 4 characters" in error.text


def test_v4_correction() -> None:
    args = order_correction(to_order(4, "sell_correction", "g", V4_CORRECTION.encode()))
    assert args.operation == kkt.Operation.SELL
    assert args.total == 20050
    assert args.payments == kkt.Payments(cash=15000, electronic=5050)
    assert args.basis == kkt.CorrectionBasis(
        by_order=True, settled_on=dt.date(2019, 1, 20), number="1175", name="Предписание"
    )
    assert set(args.dropped) == {"correction.company.sno", "correction.cashier", "correction.vats"}


def test_v5_correction_carries_total_and_drops_items() -> None:
    data = {
        "external_id": "c5",
        "timestamp": "01.09.2025 10:00:00",
        "correction": {
            "company": {"sno": "osn", "inn": "1234567891", "payment_address": "https://m.ru/"},
            "correction_info": {"type": "self", "base_date": "31.08.2025"},
            "items": body(V5_SELL)["receipt"]["items"][1:],
            "payments": [{"type": 0, "sum": Decimal("9.99")}],
            "total": Decimal("9.99"),
        },
    }
    args = order_correction(to_order(5, "buy_refund_correction", "g", raw(data)))
    assert args.operation == kkt.Operation.BUY_RETURN
    assert (args.total, args.payments) == (999, kkt.Payments(cash=999))
    assert args.basis == kkt.CorrectionBasis(settled_on=dt.date(2025, 8, 31))
    assert "correction.items" in args.dropped


def test_receipt_and_correction_functions_refuse_the_other_kind() -> None:
    with pytest.raises(ValueError, match="order_correction"):
        order_receipt(to_order(4, "sell_correction", "g", V4_CORRECTION.encode()))
    with pytest.raises(ValueError, match="order_receipt"):
        order_correction(to_order(4, "sell", "g", V4_SELL.encode()))


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
def test_the_emulator_takes_the_converted_receipt_and_correction(
    tmp_path: Any, protocol: str
) -> None:
    register = kkt.connect(f"emulator:{tmp_path / 'kkt'}", protocol=protocol)
    try:
        register.open_shift()
        data = v5_unmarked()
        data["receipt"]["company"]["location"] = "Москва, ул. Тестовая, 1"
        data["receipt"]["cashier"] = "Иванов"
        data["receipt"]["additional_user_props"] = {"name": "n", "value": "v"}
        data["receipt"]["client"]["inn"] = "123456789047"
        done = register.receipt(order_receipt(to_order(5, "sell", "g", raw(data))))
        assert done.total == 11998
        v4 = register.receipt(order_receipt(to_order(4, "sell", "g", V4_SELL.encode())))
        assert v4.total == 40000
        args = order_correction(to_order(4, "sell_correction", "g", V4_CORRECTION.encode()))
        fixed = register.correction(args.operation, args.total, basis=args.basis)
        assert fixed.document_number > v4.document_number
    finally:
        register.close()
