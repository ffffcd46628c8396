"""Tag 1212 of an item with a marking code (`kkt.receipt.MARKED_PAYMENT_SUBJECTS`): goods (1) go
out as 33 «ТМ», excise goods (2) as 31 «АТМ»; a caller's 30-33 and any other kind are kept.
Values: fact sheet fn-ffd-ofd.md (1212: 30-33 marked goods) and ATOL's JSON-task names
(commodityWithMarking 33, exciseWithMarking 31) -- written out here, not read from the module.

The same rule through each way in: `kkt.Item`, ATOL's JSON task (`paymentObject` + `imcParams`)
and the cloud's ATOL Online v5 request (``payment_object`` + ``mark_code``)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from kkt.cloud import jsontext
from kkt.cloud.atol.convert import order_receipt, to_order
from support.atol_examples import v5_unmarked

from kkt import Item
from kkt.formats.atol_json import receipt_from_atol

# The libfptr sample code of the fact sheet ofd-cloud-marking.md §4.6.
CODE = "014494550435306821QXYXSALGLMYQQ\x1d91EE06\x1d92YWCXbmK6SN8vvwoxZFk7WAY9WoJNMGGr6Cgtiuja04c="
IMC = base64.b64encode(CODE.encode()).decode()

# (1212 given, 1212 sent for an item with a marking code)
WITH_A_CODE = [
    (1, 33),  # товар -> ТМ, goods with a marking code
    (2, 31),  # подакцизный товар -> АТМ, excise goods with a marking code
    (30, 30),
    (31, 31),
    (32, 32),
    (33, 33),
    (3, 3),  # работа: kept, the caller's to answer for
    (4, 4),  # услуга
    (10, 10),  # платёж
]


@pytest.mark.parametrize(("given", "sent"), WITH_A_CODE)
def test_an_item_with_a_code(given: int, sent: int) -> None:
    assert Item("Обувь", 100, payment_subject=given, mark_code=CODE).payment_subject == sent


def test_the_default_kind_with_a_code_is_33_and_without_one_stays_1() -> None:
    assert Item("Обувь", 100, mark_code=CODE).payment_subject == 33
    assert Item("Обувь", 100, mark_code="\x1d" + CODE).payment_subject == 33  # FNC1 first
    assert Item("Чай", 100).payment_subject == 1
    assert Item("Водка", 100, payment_subject=2).payment_subject == 2


# -- ATOL's JSON task ---------------------------------------------------------------------------


def atol_item(**changes: Any) -> Item:
    position: dict[str, Any] = {
        "type": "position",
        "name": "Обувь",
        "price": 100.00,
        "quantity": 1,
        "amount": 100.00,
        "tax": {"type": "none"},
    }
    position.update(changes)
    task = {
        "type": "sell",
        "items": [position],
        "payments": [{"type": "cash", "sum": 100.00}],
    }
    return receipt_from_atol(task).items[0]


@pytest.mark.parametrize(
    ("payment_object", "sent"),
    [
        (None, 33),  # left out: commodity
        ("commodity", 33),
        ("excise", 31),
        ("commodityWithMarking", 33),
        ("exciseWithMarking", 31),
        ("service", 4),
    ],
)
def test_atol_json_position_with_imc_params(payment_object: str | None, sent: int) -> None:
    fields: dict[str, Any] = {"imcParams": {"imcType": "auto", "imc": IMC}}
    if payment_object is not None:
        fields["paymentObject"] = payment_object
    item = atol_item(**fields)
    assert (item.mark_code, item.payment_subject) == (CODE, sent)


def test_atol_json_position_without_a_code_keeps_its_kind() -> None:
    assert atol_item(paymentObject="commodity").payment_subject == 1
    assert atol_item(paymentObject="excise").payment_subject == 2


# -- the cloud's ATOL Online v5 request ----------------------------------------------------------


def v5_item(**fields: Any) -> Item:
    body = copy.deepcopy(v5_unmarked())
    body["receipt"]["items"][0].update(fields)
    order = to_order(5, "sell", "g", jsontext.dumps(body).encode())
    return order_receipt(order).items[0]


@pytest.mark.parametrize(("payment_object", "sent"), [(1, 33), (2, 31), (31, 31), (33, 33), (4, 4)])
def test_v5_item_with_a_mark_code(payment_object: int, sent: int) -> None:
    item = v5_item(payment_object=payment_object, mark_processing_mode="0", mark_code={"gs1m": IMC})
    assert (item.mark_code, item.payment_subject) == (CODE, sent)


def test_v5_item_without_a_mark_code_keeps_its_kind() -> None:
    assert v5_item(payment_object=1).payment_subject == 1
