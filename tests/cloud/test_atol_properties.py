"""Properties: any valid request survives JSON -> to_order -> receipt exactly; no input, however
broken, raises anything but ApiError."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kkt.cloud.atol import ApiError, body_json, fingerprint, load_body, order_receipt, to_order
from support.atol_examples import V4_SELL, body

import kkt

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.text(
    alphabet=st.sampled_from("абвгдежзийклмнопрстуфхцчшщыэюяABCDEFxyz0123456789 .,-"),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() != "")


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    price = draw(st.integers(0, 1_000_000))  # kopecks: 4 items stay under the limit
    quantity = Decimal(draw(st.integers(1, 99_999))) / 1000
    amount = (price * quantity).quantize(Decimal(1), rounding="ROUND_HALF_UP")
    return {
        "name": draw(names),
        "price": Decimal(price) / 100,
        "quantity": quantity,
        "sum": amount / 100,
        "payment_method": draw(st.sampled_from(["full_payment", "prepayment", "advance"])),
        "payment_object": draw(st.sampled_from(["commodity", "service", "job", "another"])),
        "vat": {"type": draw(st.sampled_from(["none", "vat0", "vat10", "vat20", "vat120"]))},
    }


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    listed = draw(st.lists(items(), min_size=1, max_size=4))
    total = sum((item["sum"] for item in listed), Decimal(0))
    cash = Decimal(draw(st.integers(0, int(total * 100)))) / 100
    payments = [{"type": 0, "sum": cash}] if cash else []
    if total - cash or not payments:
        payments.append({"type": draw(st.integers(1, 4)), "sum": total - cash})
    return {
        "external_id": draw(st.text(min_size=1, max_size=128)),
        "timestamp": "01.02.2019 13:45:00",
        "receipt": {
            "client": {"email": "kkt@kkt.ru"},
            "company": {
                "email": "chek@romashka.ru",
                "sno": draw(st.sampled_from(["osn", "usn_income", "patent"])),
                "inn": draw(st.from_regex(r"\A([0-9]{10}|[0-9]{12})\Z")),
                "payment_address": "http://magazin.ru/",
            },
            "items": listed,
            "payments": payments,
            "total": total,
        },
    }


@FAST
@given(requests())
def test_valid_request_round_trips_exactly(data: dict[str, Any]) -> None:
    raw = body_json(data).encode("utf-8")
    order = to_order(4, "sell", "g", raw)
    assert order.body == data and order.external_id == data["external_id"]
    assert load_body(body_json(order.body).encode()) == order.body
    assert order.fingerprint == fingerprint(json.loads(raw, parse_float=Decimal), 4, "sell")
    receipt = order_receipt(order)
    wanted = [int(item["sum"] * 100) for item in data["receipt"]["items"]]
    assert [item.total for item in receipt.items] == wanted
    assert receipt.payments.total == int(data["receipt"]["total"] * 100) == receipt.total


@FAST
@given(st.binary(max_size=400))
def test_garbage_bytes_raise_only_api_error(raw: bytes) -> None:
    try:
        to_order(4, "sell", "g", raw)
    except ApiError as error:
        assert error.code in (32, 40)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*path, index))
    return found


@FAST
@given(st.data(), json_values, st.sampled_from([4, 5]))
def test_a_broken_field_raises_only_api_error(data: st.DataObject, junk: Any, api: int) -> None:
    document = body(V4_SELL)
    path = data.draw(st.sampled_from(_paths(document)[1:]))
    target: Any = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = junk
    try:
        order = to_order(api, "sell", "g", body_json(document).encode())
    except ApiError as error:
        assert error.code == 32 and ": " in error.text
    else:  # what to_order lets through, the register's receipt is built from
        assert isinstance(order_receipt(order, tax_system=kkt.TaxSystem.OSN), kkt.Receipt)
