"""`kkt.receipt_document`: a receipt's print form from what was sent and what the FN answered,
drawn as the same receipt read back from the emulator is drawn."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from kkt.protocols.ffd import DocumentType, find
from kkt.render import render

import kkt
from kkt import FiscalResult, Item, Payments, Receipt, Vat, receipt_document


def basket() -> Receipt:
    return Receipt(
        items=(
            Item("Кофе", 19_900, Decimal(2), Vat.VAT20),
            Item("Вода 0,5", 7_000, Decimal("1.5"), Vat.NONE, measure=0),
            Item("Булка", 4_550, Decimal(3), Vat.VAT10, payment_subject=1),
        ),
        payments=Payments(cash=50_000, electronic=19_300),  # 3 150.00 change, from the cash
        buyer_contact="buyer@example.org",
        cashier="Петрова А.",
    )


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
def test_the_composed_receipt_prints_as_the_one_read_back(tmp_path: Path, protocol: str) -> None:
    receipt = basket()
    with kkt.connect(f"emulator:{tmp_path / 'state'}", protocol=protocol) as register:
        register.open_shift()
        sold = register.sell(receipt)
        read_back = register.document(sold.document_number)
        registration = register.registration()
    # As a service keeps it: the result's JSON, the receipt, the registration.
    stored = FiscalResult.from_json(sold.to_json())
    composed = receipt_document(receipt, stored, registration)
    [(kind, body)] = composed
    assert kind == DocumentType.RECEIPT
    assert find(body, 1031) == 50_000 - receipt.change and find(body, 1081) == 19_300

    ours = render(composed, "txt").splitlines()
    theirs = render(read_back, "txt").splitlines()
    # The user's name (1048) is the registration's; the emulator does not repeat it on receipts.
    ours = [line for line in ours if line.strip() != registration.user]
    assert [line for line in ours if line not in theirs] == []
    # ... in the same order, and only the FN's own VAT totals are left to the read-back.
    assert [line for line in theirs if line in ours] == ours
    assert all(line.startswith("СУММА ") for line in theirs if line not in ours)
    assert len(ours) > 25 and any("БЕЗНАЛИЧНЫМИ" in line for line in ours)


def test_a_result_of_another_receipt_or_a_report_is_refused() -> None:
    receipt = basket()
    result = FiscalResult(7, 123, "9999078900000001", 1, 2, None, receipt.total, 1, "")
    with pytest.raises(ValueError, match="report"):
        receipt_document(receipt, result)  # no time: a report's result
    other = FiscalResult(
        7, 123, "9999078900000001", 1, 2, dt.datetime(2026, 12, 1, 10, 0), 100, 1, ""
    )
    with pytest.raises(ValueError, match="not this receipt's result"):
        receipt_document(receipt, other)
