"""A receipt's fiscal document composed from what was sent and what the FN answered.

A service that fiscalized a receipt has the `Receipt` it sent and the `FiscalResult` the FN gave
back; reading the whole document from the FN again (``register.document(N)``) costs a long
exchange, and a register may be gone by the time a buyer asks for the receipt.
`receipt_document` puts the two together as the document's tags, in the shape `kkt.render` draws
(one STLV whose tag is the document type), so the print form needs no second reading.

It carries what the host knows for certain: the items as sent (1059: 1030, 1079, 1023, 2108,
1199, 1043, 1214, 1212 and their extra tags), each item's VAT sum (1200: fixed by its amount and
rate), the total (1020), the payments as the FN records them (1031 is the cash kept: the change
is given back from it), the tax system (1055), the cashier (1021), the buyer's contact (1008), the
receipt's extra tags, the identifying details of the result (`FiscalResult.identifying_tlv`), and,
given the `Registration`, the user's INN, RNM, name, address, place and the FNS site (1018, 1037,
1048, 1009, 1187, 1060).  What only the FN forms -- the receipt's VAT totals by rate (1102 ...),
the register's own tags -- is not guessed: the read-back document has those.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import cast

from kkt.protocols.ffd import DocumentType, TlvList, Value

from .receipt import VAT_CODES, Item, Receipt, Vat
from .results import FiscalResult, Registration

# The part of an amount that is VAT, for the rates that have one: rate / (100 + rate).
_VAT_SHARE = {
    Vat.VAT20: Decimal(20) / Decimal(120),
    Vat.VAT10: Decimal(10) / Decimal(110),
    Vat.VAT120: Decimal(20) / Decimal(120),
    Vat.VAT110: Decimal(10) / Decimal(110),
}


def item_vat(item: Item) -> int:
    """Tag 1200: the VAT in the item's amount, kopecks rounded half up (0 without VAT)."""
    share = _VAT_SHARE.get(item.vat)
    if share is None:
        return 0
    return int((item.total * share).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def item_extra(item: Item) -> TlvList:
    """The item's own tags beyond the item command's (2108, `Item.extra`), as TLV: the model
    types them ``object``; a value the FFD cannot hold was refused when the receipt was sent."""
    return [(tag, cast(Value, value)) for tag, value in item.tags]


def item_tlv(item: Item) -> tuple[int, Value]:
    """One item (1059) as the FN stores it."""
    body: TlvList = [
        (1030, item.name),
        (1079, item.price),
        (1023, item.quantity),
        (1043, item.total),
        (1199, VAT_CODES[item.vat]),
        (1200, item_vat(item)),
        (1214, item.payment_method),
        (1212, item.payment_subject),
        *item_extra(item),
    ]
    return (1059, body)


def receipt_document(
    receipt: Receipt, result: FiscalResult, registration: Registration | None = None
) -> TlvList:
    """The receipt's document -- ``[(DocumentType.RECEIPT, tags)]`` -- from ``receipt`` as it
    was sent, ``result`` as the FN answered it and the register's ``registration`` (optional).

    Raises ValueError when ``result`` is not a receipt's (a report's has no receipt to show) or
    is another receipt's (its operation or total differ from ``receipt``'s).
    """
    [(_, identifying)] = result.identifying_tlv()  # ValueError for a report's result
    assert isinstance(identifying, list)
    if (result.operation, result.total) != (int(receipt.operation), receipt.total):
        raise ValueError(
            f"document {result.document_number} is operation {result.operation} of "
            f"{result.total} kopecks, the receipt operation {int(receipt.operation)} of "
            f"{receipt.total}: not this receipt's result"
        )
    body: TlvList = []
    if registration is not None:
        for tag, value in (
            (1048, registration.user),
            (1018, registration.inn),
            (1037, registration.rnm),
            (1009, registration.address),
            (1187, registration.place),
            (1060, registration.fns_site),
        ):
            if value:
                body.append((tag, value))
    body += identifying
    if receipt.cashier:
        body.append((1021, receipt.cashier))
    if receipt.buyer_contact:
        body.append((1008, receipt.buyer_contact))
    body.append((1055, int(receipt.tax_system)))
    body += [item_tlv(item) for item in receipt.items]
    paid = receipt.payments
    body += [
        (1031, paid.cash - receipt.change),  # the FN keeps the cash kept, not the tendered
        (1081, paid.electronic),
        (1215, paid.prepaid),
        (1216, paid.credit),
        (1217, paid.other),
    ]
    body += [(tag, cast(Value, value)) for tag, value in receipt.extra]
    return [(DocumentType.RECEIPT, body)]
