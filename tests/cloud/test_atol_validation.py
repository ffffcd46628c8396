"""Every limit of ATOL's tables refuses with code 32 and names the failing field by its path."""
# ruff: noqa: E501 -- the case tables read one case a line

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from kkt.cloud.atol import ApiError, body_json, to_order
from support.atol_examples import V4_CORRECTION, V4_SELL, body, v5_unmarked

Edit = Callable[[dict[str, Any]], object]


def refusal(api: int, operation: str, data: dict[str, Any] | bytes) -> ApiError:
    payload = data if isinstance(data, bytes) else body_json(data).encode()
    with pytest.raises(ApiError) as caught:
        to_order(api, operation, "g", payload)
    return caught.value


def item(data: dict[str, Any], index: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = data["receipt"]["items"][index]
    return result


D = Decimal
V4_CASES: list[tuple[str, Edit, str]] = [
    ("price decimals", lambda d: item(d).update(price=D("1000.001")), "receipt.items[0].price: must have at most 2 decimals"),
    ("price string", lambda d: item(d).update(price="1000"), "receipt.items[0].price: must be a number"),
    ("price bool", lambda d: item(d).update(price=True), "receipt.items[0].price: must be a number"),
    ("price negative", lambda d: item(d).update(price=D(-1)), "receipt.items[0].price: must not be negative"),
    ("price too big", lambda d: item(d).update(price=D("42949672.96")), "receipt.items[0].price: must be at most 42949672.95"),
    ("price x quantity too big", lambda d: item(d).update(price=D("42949672.95"), quantity=D(2)), "receipt.items[0].price: price x quantity"),
    ("quantity decimals", lambda d: item(d).update(quantity=D("0.3001")), "receipt.items[0].quantity: must have at most 3 decimals"),
    ("quantity zero", lambda d: item(d).update(quantity=0), "receipt.items[0].quantity: must be more than 0"),
    ("quantity too big", lambda d: item(d).update(quantity=D("100000")), "receipt.items[0].quantity: must be at most 99999.999"),
    ("sum off", lambda d: item(d).update(sum=D("300.02")), "receipt.items[0].sum: 300.02 differs from price x quantity = 300.00"),
    ("sum missing", lambda d: item(d).pop("sum"), "receipt.items[0].sum: is required"),
    ("total off", lambda d: d["receipt"].update(total=D("398.99")), "receipt.total: 398.99 differs"),
    ("no items", lambda d: d["receipt"].update(items=[]), "receipt.items: must have at least 1 entry, got 0"),
    ("101 items", lambda d: d["receipt"].update(items=[item(d, 1)] * 101), "receipt.items: must have at most 100 entries, got 101"),
    ("no payments", lambda d: d["receipt"].update(payments=[]), "receipt.payments: must have at least 1 entry"),
    ("11 payments", lambda d: d["receipt"].update(payments=[{"type": 1, "sum": D(40)}] * 11), "receipt.payments: must have at most 10 entries, got 11"),
    ("7 vats", lambda d: d["receipt"].update(vats=[{"type": "vat20"}] * 7), "receipt.vats: must have at most 6 entries, got 7"),
    ("payment type 10", lambda d: d["receipt"]["payments"][0].update(type=10), "receipt.payments[0].type: input should be less than or equal to 9"),
    ("payment type 7", lambda d: d["receipt"]["payments"][0].update(type=7), "receipt.payments[0].type: 7 (ATOL's extended types 5..9) is not supported"),
    ("payment type text", lambda d: d["receipt"]["payments"][0].update(type="1"), "receipt.payments[0].type: must be a whole number"),
    ("payments short", lambda d: d["receipt"]["payments"][0].update(sum=D(399)), "receipt: payments 39900 kopecks do not cover the total 40000"),
    ("inn 11 digits", lambda d: d["receipt"]["company"].update(inn="12345678901"), "receipt.company.inn: must be an INN: 10 or 12 digits"),
    ("inn number", lambda d: d["receipt"]["company"].update(inn=1234567891), "receipt.company.inn: "),
    ("sno", lambda d: d["receipt"]["company"].update(sno="usn"), "receipt.company.sno: must be one of"),
    ("company email missing", lambda d: d["receipt"]["company"].pop("email"), "receipt.company.email: is required"),
    ("company email long", lambda d: d["receipt"]["company"].update(email="a" * 60 + "@b.ru"), "receipt.company.email: must be at most 64 characters"),
    ("payment address long", lambda d: d["receipt"]["company"].update(payment_address="x" * 257), "receipt.company.payment_address: must be at most 256"),
    ("timestamp shape", lambda d: d.update(timestamp="2019-02-01 13:45:00"), "timestamp: must be dd.mm.yyyy HH:MM:SS"),
    ("timestamp date", lambda d: d.update(timestamp="32.01.2019 13:45:00"), "timestamp: is not a real date and time"),
    ("callback scheme", lambda d: d["service"].update(callback_url="ftp://host/x"), "service.callback_url: must be an http:// or https:// URL"),
    ("callback long", lambda d: d["service"].update(callback_url="http://h/" + "a" * 250), "service.callback_url: must be at most 256"),
    ("external_id missing", lambda d: d.pop("external_id"), "external_id: is required"),
    ("external_id long", lambda d: d.update(external_id="x" * 129), "external_id: must be at most 128 characters"),
    ("unknown field", lambda d: d["receipt"].update(cashir="Иванов"), "receipt.cashir: is not a field ATOL defines here"),
    ("name long", lambda d: item(d).update(name="x" * 129), "receipt.items[0].name: must be at most 128 characters"),
    ("name empty", lambda d: item(d).update(name=""), "receipt.items[0].name: must not be empty"),
    ("name unprintable", lambda d: item(d).update(name="молоко 🥛"), "receipt.items[0].name: has characters a register cannot print"),
    ("payment method", lambda d: item(d).update(payment_method="full"), "receipt.items[0].payment_method: must be one of"),
    ("payment object", lambda d: item(d).update(payment_object=1), "receipt.items[0].payment_object: must be one of"),
    ("vat18", lambda d: item(d)["vat"].update(type="vat18"), "receipt.items[0].vat.type: vat18 (18 %) is refused since 01.02.2019"),
    ("vat unknown", lambda d: item(d)["vat"].update(type="vat5"), "receipt.items[0].vat.type: must be one of"),
    ("receipt vat18", lambda d: d["receipt"]["vats"][0].update(type="vat18"), "receipt.vats[0].type: vat18 (18 %) is refused"),
    ("vat sum decimals", lambda d: item(d)["vat"].update(sum=D("0.001")), "receipt.items[0].vat.sum: must have at most 2 decimals"),
    ("measurement unit", lambda d: item(d).update(measurement_unit="x" * 17), "receipt.items[0].measurement_unit: must be at most 16"),
    ("user data", lambda d: item(d).update(user_data="x" * 65), "receipt.items[0].user_data: must be at most 64"),
    ("client empty", lambda d: d["receipt"].update(client={}), "receipt.client: needs email or phone"),
    ("client missing", lambda d: d["receipt"].pop("client"), "receipt.client: is required"),
    ("client email bad", lambda d: d["receipt"].update(client={"email": "not-mail"}), "receipt.client.email: must be the buyer's e-mail"),
    ("client phone bad", lambda d: d["receipt"].update(client={"phone": "12"}), "receipt.client.phone: must be the buyer's e-mail"),
    ("check props", lambda d: d["receipt"].update(additional_check_props="x" * 17), "receipt.additional_check_props: must be at most 16"),
    ("cashier", lambda d: d["receipt"].update(cashier="x" * 65), "receipt.cashier: must be at most 64"),
    ("user props", lambda d: d["receipt"].update(additional_user_props={"name": "n"}), "receipt.additional_user_props.value: is required"),
    ("agent", lambda d: d["receipt"].update(agent_info={"type": "attorney"}), "receipt.agent_info: is not supported by this service yet"),
    ("agent type", lambda d: d["receipt"].update(agent_info={"type": "broker"}), "receipt.agent_info.type: must be one of"),
    ("supplier", lambda d: item(d).update(supplier_info={"name": "ООО"}), "receipt.items[0].supplier_info: is not supported"),
    ("nomenclature", lambda d: item(d).update(nomenclature_code="04 60"), "receipt.items[0].nomenclature_code: is not supported"),
    ("receipt not object", lambda d: d.update(receipt=[1]), "receipt: must be an object"),
    ("items not array", lambda d: d["receipt"].update(items={}), "receipt.items: must be an array"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "expected"), [c[1:] for c in V4_CASES], ids=[c[0] for c in V4_CASES]
)
def test_v4_limits(edit: Edit, expected: str) -> None:
    data = body(V4_SELL)
    edit(data)
    error = refusal(4, "sell", data)
    assert (error.code, error.http_status, error.type, error.status) == (32, 400, "system", "fail")
    assert expected in error.text
    assert "pydantic" not in error.text and "errors.pydantic.dev" not in error.text


V5_CASES: list[tuple[str, Edit, str]] = [
    ("measure", lambda d: item(d).update(measure=5), "receipt.items[0].measure: must be a tag 2108 code"),
    ("measure text", lambda d: item(d).update(measure="0"), "receipt.items[0].measure: must be a whole number"),
    ("payment object 28", lambda d: item(d).update(payment_object=28), "receipt.items[0].payment_object: must be 1..27 or 30..33"),
    ("payment object v4 name", lambda d: item(d).update(payment_object="commodity"), "receipt.items[0].payment_object: must be a whole number"),
    ("mark quantity", lambda d: item(d).update(mark_quantity={"numerator": 1, "denominator": 2}), "receipt.items[0].mark_quantity: is for marked goods: give mark_code too"),
    ("sectoral item", lambda d: item(d).update(sectoral_item_props=[]), "receipt.items[0].sectoral_item_props: not supported yet"),
    ("vat5", lambda d: item(d, 1)["vat"].update(type="vat5"), "receipt.items[1].vat.type: vat5 is not supported by this service yet"),
    ("vat22", lambda d: item(d, 1)["vat"].update(type="vat22"), "receipt.items[1].vat.type: vat22 is not supported"),
    ("timezone range", lambda d: d["receipt"].update(timezone=12), "receipt.timezone: input should be less than or equal to 11"),
    ("timezone", lambda d: d["receipt"].update(timezone=2), "receipt.timezone: is not supported"),
    ("internet text", lambda d: d["receipt"].update(internet="yes"), "receipt.internet: must be true or false"),
    ("cashier inn", lambda d: d["receipt"].update(cashier_inn="12"), "receipt.cashier_inn: must be an INN"),
    ("client birthdate", lambda d: d["receipt"]["client"].update(birthdate="1.1.2000"), "receipt.client.birthdate: must be dd.mm.yyyy"),
    ("cashless", lambda d: d["receipt"].update(cashless_payments=[{"sum": D(1), "method": 1, "id": "x"}]), "receipt.cashless_payments: is not supported"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "expected"), [c[1:] for c in V5_CASES], ids=[c[0] for c in V5_CASES]
)
def test_v5_limits(edit: Edit, expected: str) -> None:
    data = v5_unmarked()
    edit(data)
    error = refusal(5, "sell", data)
    assert error.code == 32
    assert expected in error.text


CORRECTION_CASES: list[tuple[str, Edit, str]] = [
    ("vats required", lambda d: d["correction"].pop("vats"), "correction.vats: is required"),
    ("base date", lambda d: d["correction"]["correction_info"].update(base_date="2019-01-20"), "correction.correction_info.base_date: must be dd.mm.yyyy"),
    ("kind", lambda d: d["correction"]["correction_info"].update(type="order"), "correction.correction_info.type: must be one of"),
    ("base name", lambda d: d["correction"]["correction_info"].pop("base_name"), "correction.correction_info.base_name: is required"),
    ("items in v4", lambda d: d["correction"].update(items=[]), "correction.items: is not a field"),
    ("vat18", lambda d: d["correction"]["vats"][0].update(type="vat118"), "correction.vats[0].type: vat118 (18 %) is refused"),
    ("receipt instead", lambda d: d.update(receipt=d.pop("correction")), "correction: is required"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "expected"), [c[1:] for c in CORRECTION_CASES], ids=[c[0] for c in CORRECTION_CASES]
)
def test_correction_limits(edit: Edit, expected: str) -> None:
    data = body(V4_CORRECTION)
    edit(data)
    error = refusal(4, "buy_correction", data)
    assert error.code == 32
    assert expected in error.text


def test_every_failing_field_is_listed_at_once() -> None:
    data = body(V4_SELL)
    item(data).update(price=D("1.001"), payment_method="x")
    item(data, 1).pop("name")
    data["receipt"]["company"]["inn"] = "1"
    data.update(timestamp="now")
    text = refusal(4, "sell", data).text
    for path in (
        "receipt.items[0].price",
        "receipt.items[0].payment_method",
        "receipt.items[1].name",
        "receipt.company.inn",
        "timestamp",
    ):
        assert f"{path}: " in text


def test_callback_url_mask_accepts_ports_queries_and_empty() -> None:
    for url in ("https://127.0.0.1:8080/cb?x=1&y=2", "http://магазин.рф/путь", ""):
        data = body(V4_SELL)
        data["service"]["callback_url"] = url
        assert to_order(4, "sell", "g", body_json(data).encode()).callback_url == (url or None)


def test_callback_url_mask_does_not_backtrack_for_ever() -> None:
    data = body(V4_SELL)
    data["service"]["callback_url"] = "http://" + "a-" * 120 + "!"
    assert "service.callback_url" in refusal(4, "sell", data).text


@pytest.mark.parametrize(
    ("api", "operation"),
    [(4, "sell_refund_correction"), (4, "refund"), (5, "sell_return"), (5, "")],
)
def test_unknown_operation_is_31(api: int, operation: str) -> None:
    error = refusal(api, operation, V4_SELL.encode())
    assert (error.code, error.http_status, error.name) == (31, 400, "IncomingOperationNotSupported")
    assert repr(operation) in error.text


@pytest.mark.parametrize(
    "payload", [b"", b"{", b"\xff\xfe{}", b'{"a": NaN}', b"[" * 100_000, b'{"a": -Infinity}']
)
def test_unreadable_body_is_40(payload: bytes) -> None:
    error = refusal(4, "sell", payload)
    assert (error.code, error.name, error.http_status) == (40, "BadRequest", 400)


@pytest.mark.parametrize("payload", [b"[]", b'"sell"', b"42", b"null"])
def test_json_that_is_not_an_object_is_32(payload: bytes) -> None:
    error = refusal(4, "sell", payload)
    assert error.code == 32 and error.text.startswith("(body): must be a JSON object")
