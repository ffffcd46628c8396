"""The `Receipt` model refuses values of the wrong type by their path, before anything is sent
(issue 14, defect 9: ``Item("Кофе", 199.00)`` was a bare TypeError inside ``sell()``, and
``vat="vat20"`` a KeyError)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import kkt
from kkt import Item, Operation, Payments, Receipt, ReceiptRejected, Vat


def receipt(*items: Item, **changes: Any) -> Receipt:
    values: dict[str, Any] = {"items": items, "payments": Payments(cash=100_000)}
    values.update(changes)
    return Receipt(**values)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            receipt(Item("Кофе", 199.00)),  # type: ignore[arg-type]
            "items[0].price: must be an int number of kopecks, e.g. 19900 for 199.00, got 199.0",
        ),
        (
            receipt(Item("Чай", 100), Item("Кофе", 19_900, amount=199.0)),  # type: ignore[arg-type]
            "items[1].amount: must be an int number of kopecks, e.g. 19900 for 199.00",
        ),
        (
            receipt(Item("Кофе", 19_900, vat="vat20")),  # type: ignore[arg-type]
            "items[0].vat: must be one of Vat.VAT20, Vat.VAT10, Vat.VAT0, Vat.NONE, Vat.VAT120, "
            "Vat.VAT110, got 'vat20'; did you mean Vat.VAT20?",
        ),
        (
            receipt(Item("Кофе", 19_900, 1.5)),  # type: ignore[arg-type]
            'items[0].quantity: must be a Decimal (or an int), e.g. Decimal("1.5")',
        ),
        (receipt(Item("Кофе", "199")), "items[0].price: must be an int number of kopecks"),  # type: ignore[arg-type]
        (receipt(Item(None, 100)), "items[0].name: must be a str"),  # type: ignore[arg-type]
        (receipt(Item("Кофе", 100, payment_method="4")), "items[0].payment_method: must be an int"),  # type: ignore[arg-type]
        (
            receipt(Item("Кофе", 100), payments=Payments(cash=600.0)),  # type: ignore[arg-type]
            "payments.cash: must be an int number of kopecks, e.g. 60000 for 600.00",
        ),
        (
            receipt(Item("Кофе", 100), operation="sell"),
            "operation: must be Operation.SELL, Operation.SELL_RETURN",
        ),
        (receipt(Item("Кофе", 100), items=[("Кофе", 100)]), "items[0]: must be an Item"),
        (
            receipt(Item("Кофе", 100), buyer_contact="not-an-email"),
            "buyer_contact: must be the buyer's e-mail (name@example.ru) or phone",
        ),
    ],
)
def test_a_wrong_type_is_refused_by_its_path(bad: Receipt, message: str) -> None:
    with pytest.raises(ReceiptRejected) as refused:
        bad.validate()
    assert message in str(refused.value)


def test_a_whole_quantity_may_be_an_int_and_contacts_may_be_an_email_or_a_phone() -> None:
    assert Item("Кофе", 19_900, 2) == Item("Кофе", 19_900, Decimal(2))  # type: ignore[arg-type]
    for contact in ("buyer@example.org", "+79990000000", "89990000000"):
        receipt(Item("Кофе", 19_900, 2), buyer_contact=contact).validate()  # type: ignore[arg-type]


def test_sell_refuses_a_float_price_before_anything_is_sent(tmp_path: Path) -> None:
    with kkt.connect(f"emulator:{tmp_path / 'state'}") as register:
        register.open_shift()
        last = register.fn_info().last_document
        for bad in (
            receipt(Item("Кофе", 199.00, vat=Vat.VAT20)),  # type: ignore[arg-type]
            receipt(Item("Кофе", 19_900, vat="vat20")),  # type: ignore[arg-type]
        ):
            with pytest.raises(ReceiptRejected, match=r"^items\[0\]\.(price|vat): must be"):
                register.receipt(bad)
            with pytest.raises(ReceiptRejected):
                register.sell(bad)
        assert register.fn_info().last_document == last
        assert register.status().receipt_items == 0  # no receipt was opened either
        sold = register.sell(receipt(Item("Кофе", 19_900, vat=Vat.VAT20)))
        assert sold.operation == Operation.SELL and sold.total == 19_900
