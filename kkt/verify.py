"""Reading a receipt's document back after the sale: is it what was sold?

The closing command's answer says the FN formed a document -- its number, fiscal sign and time --
but not what the document holds.  Over a serial line Shtrih's XOR checksum lets two flips in one
bit column through, and a closing command (FF45) damaged that way closes the receipt with other
payments, another tax system or tax sums of the line's making: fiscal, and nothing in the answer
shows it (the lossy soak met a few in a thousand receipts at 1 % damaged bytes).  Only the
document itself does.

`check_document` reads it (`Device.read_document`: FF3A/FF3B and FF0A on Shtrih) and compares
what the host knows for certain: the document type and operation (1054), the total (1020), the
payments as the FN records them (1031 net of the change, 1081, 1215-1217), the tax system (1055),
the fiscal sign and time the answer gave, and the receipt's VAT totals by rate (1102-1107).  The
FN forms the VAT totals itself; a register may round each item's VAT or the rate's sum, so a VAT
total may differ from the items' sum (`kkt.printform.item_vat`) by under a kopeck per item of its
rate -- anything further off is damage.  Turnovers without VAT (1104, 1105) are exact.

A document that differs -- read twice, alike: the reading crosses the same line, and a block
damaged past its checksum could make a sound document look otherwise -- raises `DamagedClosing`
(fiscal: never sold again; correct it with a correction receipt).  Two readings that disagree
raise `OutcomeUnknown`; a document that cannot be read, the reading's error (`kkt.Register`
reports either as `OutcomeUnknown` naming the document).
"""

from __future__ import annotations

from collections.abc import Iterable

from kkt.protocols.ffd import DocumentType

from .errors import OutcomeUnknown
from .printform import item_vat
from .receipt import Receipt, Vat
from .results import Document, FiscalResult
from .settle import PAYMENT_TAGS, DamagedClosing, net_payments
from .vendors.base import Device

# The receipt's VAT totals by rate (tag: the rates whose items' VAT adds up to it), and the
# turnovers of the rates without VAT (tag: the rates whose items' amounts add up to it).
_VAT_TOTALS = {1102: (Vat.VAT20,), 1103: (Vat.VAT10,), 1106: (Vat.VAT120,), 1107: (Vat.VAT110,)}
_TURNOVERS = {1104: (Vat.VAT0,), 1105: (Vat.NONE,)}


def check_document(device: Device, result: FiscalResult, receipt: Receipt) -> Document:
    """Read document ``result.document_number`` and raise `DamagedClosing` unless it holds
    ``receipt`` as sold; the document when it does.  Reading errors propagate."""
    document = device.read_document(result.document_number)
    differences = list(document_differences(document, result, receipt))
    if differences:
        # The reading crossed the same line: a block damaged past its checksum can read as a
        # document that differs.  A verdict that stays in the journal needs the document read
        # twice, alike; two readings that disagree say nothing about the document.
        again = device.read_document(result.document_number)
        if again != document:
            raise OutcomeUnknown(
                f"the receipt IS fiscal: document {result.document_number} (fiscal sign "
                f"{result.fiscal_sign}); read back it seemed to differ from the receipt sold "
                f"({'; '.join(differences)}), but a second reading disagreed with the first: "
                "the line damaged a reading.  Do not sell it again: repeat the call with the "
                f"same key, or read document {result.document_number}"
            )
        raise DamagedClosing(
            f"the receipt IS fiscal: document {result.document_number} (fiscal sign "
            f"{result.fiscal_sign}), but read back it differs from the receipt sold: "
            + "; ".join(differences)
            + " (its closing command was damaged on the line past the checksum).  Do not sell "
            "it again: correct that document (a correction receipt)"
        )
    return document


def document_differences(
    document: Document, result: FiscalResult, receipt: Receipt
) -> Iterable[str]:
    """What ``document`` holds otherwise than ``receipt`` sold and ``result`` said, one text
    each ("payments {...} where {...} was sold"); nothing for a document as sold."""
    tags = dict(document.tlv)

    def differs(name: str, held: object, sold: object) -> str:
        return f"{name} {held!r} where {sold!r} was sold"

    if document.type != DocumentType.RECEIPT:
        yield f"it is a document of type {document.type}, not a receipt"
        return
    if document.fiscal_sign != result.fiscal_sign:
        yield differs("fiscal sign", document.fiscal_sign, result.fiscal_sign)
    if result.when is not None and document.when is not None and document.when != result.when:
        yield differs("time", document.when.isoformat(), result.when.isoformat())
    if tags.get(1054) != int(receipt.operation):
        yield differs("operation (1054)", tags.get(1054), int(receipt.operation))
    if tags.get(1020) != receipt.total:
        yield differs("total (1020)", tags.get(1020), receipt.total)
    paid = {name: getattr(receipt.payments, name) for name in PAYMENT_TAGS}
    sold = net_payments(paid, receipt.total)
    held = {name: tags.get(tag, 0) for name, tag in PAYMENT_TAGS.items()}
    if held != sold:
        yield differs("payments", held, sold)
    if 1055 in tags and tags[1055] != int(receipt.tax_system):
        yield differs("tax system (1055)", tags[1055], int(receipt.tax_system))
    for tag, rates in _VAT_TOTALS.items():
        items = [item for item in receipt.items if item.vat in rates]
        expected = sum(item_vat(item) for item in items)
        value = tags.get(tag, 0)
        if not isinstance(value, int) or abs(value - expected) > len(items):
            yield differs(f"VAT total ({tag})", value, expected)
    for tag, rates in _TURNOVERS.items():
        expected = sum(item.total for item in receipt.items if item.vat in rates)
        if tags.get(tag, 0) != expected:
            yield differs(f"turnover without VAT ({tag})", tags.get(tag, 0), expected)
