"""ATOL Online v5 marking fields (``mark_code``, ``mark_quantity``, ``mark_processing_mode``,
``planned_status``) -> `kkt.Item` marking fields; refusals by path with ATOL's code 32.

The code is the libfptr sample code of the fact sheet ``ofd-cloud-marking.md`` §4.6; its Base64 is
the ``gs1m`` of the sheet's v5 example (§2.8), written out here."""

from __future__ import annotations

import base64
import copy
from decimal import Decimal
from typing import Any

import pytest
from kkt.cloud import jsontext
from kkt.cloud.atol.convert import order_correction, order_receipt, to_order
from kkt.cloud.atol.errors import ApiError
from kkt.protocols.ffd.marking import PlannedStatus
from support.atol_examples import v5_unmarked

CODE = "014494550435306821QXYXSALGLMYQQ\x1d91EE06\x1d92YWCXbmK6SN8vvwoxZFk7WAY9WoJNMGGr6Cgtiuja04c="
GS1M = (
    "MDE0NDk0NTUwNDM1MzA2ODIxUVhZWFNBTEdMTVlRUR05MUVFMDYdOTJZV0NYYm1LNlNOOHZ2d294WkZrN1dBWTlXb0pOTUdH"
    "cjZDZ3RpdWphMDRjPQ=="
)
SHORT = "04606203103348a3=EfODAB=UpGbL"  # tobacco pack: a short code, as text


def marked(**fields: Any) -> dict[str, Any]:
    data = v5_unmarked()
    item = data["receipt"]["items"][0]
    item.update(payment_object=33, mark_processing_mode="0", mark_code={"gs1m": GS1M})
    item.update(fields)
    return {key: value for key, value in data.items()}


def raw(data: dict[str, Any]) -> bytes:
    return jsontext.dumps(data).encode()


def refusal(data: dict[str, Any], operation: str = "sell") -> ApiError:
    with pytest.raises(ApiError) as caught:
        to_order(5, operation, "g", raw(data))
    return caught.value


def test_gs1m_becomes_the_code_as_scanned() -> None:
    assert base64.b64decode(GS1M).decode() == CODE
    item = order_receipt(to_order(5, "sell", "g", raw(marked()))).items[0]
    assert (item.mark_code, item.payment_subject) == (CODE, 33)
    assert item.planned_status is None and item.mark_quantity is None


def test_short_code_as_text_planned_status_and_part() -> None:
    data = marked(
        mark_code={"short": SHORT},
        planned_status=2,
        mark_quantity={"numerator": 1, "denominator": 4},
    )
    item = order_receipt(to_order(5, "sell", "g", raw(data))).items[0]
    assert item.mark_code == SHORT
    assert item.planned_status is PlannedStatus.MEASURED_IN_SALE
    assert item.mark_quantity == (1, 4)


def test_excise_with_marking() -> None:
    item = order_receipt(to_order(5, "sell", "g", raw(marked(payment_object=31)))).items[0]
    assert (item.payment_subject, item.mark_code) == (31, CODE)


REFUSALS = [
    (
        "two kinds",
        {"mark_code": {"gs1m": GS1M, "short": SHORT}},
        "receipt.items[0].mark_code: must hold exactly one code kind",
    ),
    ("no kind", {"mark_code": {}}, "receipt.items[0].mark_code: must hold exactly one code kind"),
    (
        "unknown kind",
        {"mark_code": {"datamatrix": GS1M}},
        "receipt.items[0].mark_code.datamatrix: is not a field ATOL defines",
    ),
    (
        "gs1m not base64",
        {"mark_code": {"gs1m": "01044945504353068\x1d21"}},
        "receipt.items[0].mark_code.gs1m: must be the whole marking code",
    ),
    (
        "gs1m binary",
        {"mark_code": {"gs1m": base64.b64encode(b"\x00\x01").decode()}},
        "receipt.items[0].mark_code.gs1m: decodes to",
    ),
    (
        "gs1m too long",
        {"mark_code": {"gs1m": "A" * 201}},
        "receipt.items[0].mark_code.gs1m: must be at most 200 characters",
    ),
    (
        "ean13 alone",
        {"mark_code": {"ean13": "4606203103348"}},
        "receipt.items[0].mark_code.ean13: is not supported by this service yet",
    ),
    (
        "fur",
        {"mark_code": {"fur": "RU-430302-AAA0277031"}},
        "receipt.items[0].mark_code.fur: is not supported",
    ),
    (
        "mode 1",
        {"mark_processing_mode": "1"},
        "receipt.items[0].mark_processing_mode: must be one of '0'",
    ),
    (
        "mode as number",
        {"mark_processing_mode": 0},
        "receipt.items[0].mark_processing_mode: must be one of '0'",
    ),
    (
        "part is whole",
        {"mark_quantity": {"numerator": 2, "denominator": 2}},
        "receipt.items[0].mark_quantity: numerator 2 must be below denominator 2",
    ),
    (
        "part zero",
        {"mark_quantity": {"numerator": 0, "denominator": 2}},
        "receipt.items[0].mark_quantity.numerator: ",
    ),
    (
        "part not whole",
        {"mark_quantity": {"numerator": Decimal("0.5"), "denominator": 2}},
        "receipt.items[0].mark_quantity.numerator: must be a whole number",
    ),
    (
        "planned status 7",
        {"planned_status": 7},
        "receipt.items[0].planned_status: must be a tag 2003 code",
    ),
    (
        "quantity 2",
        {"quantity": 2, "sum": Decimal("219.98")},
        "receipt.items[0].quantity: must be 1 for a marked item",
    ),
    (
        "33 without code",
        {"mark_code": None},
        "receipt.items[0].payment_object: 33 is marked goods: give the item's mark_code",
    ),
    ("wholesale", {"wholesale": True}, "receipt.items[0].wholesale: not supported yet"),
]


@pytest.mark.parametrize(
    ("fields", "message"), [pytest.param(f, m, id=name) for name, f, m in REFUSALS]
)
def test_refusals_name_the_path_with_code_32(fields: dict[str, Any], message: str) -> None:
    data = marked()
    item = data["receipt"]["items"][0]
    for key, value in fields.items():
        if value is None:
            item.pop(key)
        else:
            item[key] = value
    error = refusal(data)
    assert (error.code, error.http_status) == (32, 400)
    assert message in error.text, error.text


def test_marking_extras_without_a_code() -> None:
    data = v5_unmarked()
    data["receipt"]["items"][0]["planned_status"] = 1
    error = refusal(data)
    assert "receipt.items[0].planned_status: is for marked goods: give mark_code too" in error.text


def test_a_marked_item_in_a_correction_is_refused_not_dropped() -> None:
    items = copy.deepcopy(marked()["receipt"]["items"][:1])
    data = {
        "external_id": "c5",
        "timestamp": "01.09.2025 10:00:00",
        "correction": {
            "company": {"sno": "osn", "inn": "1234567891", "payment_address": "https://m.ru/"},
            "correction_info": {"type": "self", "base_date": "31.08.2025"},
            "items": items,
            "payments": [{"type": 0, "sum": Decimal("109.99")}],
            "total": Decimal("109.99"),
        },
    }
    error = refusal(data, "sell_correction")
    assert (
        "correction.items[0].mark_code: is not supported by this service yet in a correction"
        in (error.text)
    )
    with pytest.raises(ApiError):
        order_correction(to_order(5, "sell_correction", "g", raw(data)))
