"""Reading a receipt's (or a correction's) document back after the sale: is it what was sold?

The closing command's answer says the FN formed a document -- its number, fiscal sign and time --
but not what the document holds.  Over a serial line Shtrih's XOR checksum lets two flips in one
bit column through, and a closing command (FF45) damaged that way closes the receipt with other
payments, another tax system or tax sums of the line's making: fiscal, and nothing in the answer
shows it (the lossy soak met a few in a thousand receipts at 1 % damaged bytes).  Only the
document itself does.  A correction paid otherwise than in cash goes out on Shtrih as FF4A --
payments by kind, six tax sums and the tax system in one frame under the same checksum -- and
suffers the same damage; ATOL's correction is a task of its own, read back all the same.

`check_document` reads it (`Device.read_document`: FF3A/FF3B and FF0A on Shtrih) and compares
it with an `Expected`: what the host knows for certain of the document, built from a `Receipt`
(`expect_receipt`) or from a correction's arguments (`expect_correction`) -- one comparison for
both.  It holds the document type, the operation (1054), the total (1020), the payments as the
FN records them (1031 net of the change, 1081, 1215-1217), the tax system (1055), the tax sums
and turnovers by rate (1102-1107), and the tags sent as they are (a correction's 1173 and the
members of its 1174); the fiscal sign and time come from the answer.

A receipt's VAT totals the FN forms itself; a register may round each item's VAT or the rate's
sum, so a VAT total may differ from the items' sum (`kkt.printform.item_vat`) by under a kopeck
per item of its rate -- anything further off is damage.  Turnovers without VAT (1104, 1105) are
exact.  A correction the driver sends without VAT ("no VAT", as FF4A says it and FF36's register
forms it), so where its document holds a tax sum it is the total's turnover without VAT (1105)
and nothing else; its tax system is the register's choice (FF36, ATOL) or the lowest it is
registered for (FF4A), and is not compared (`Register.correction` passes no ``tax_systems``).

A document that differs -- read twice, alike: the reading crosses the same line, and a block
damaged past its checksum could make a sound document look otherwise -- raises `DamagedClosing`
(fiscal: never sold again; correct it with a correction receipt).  Two readings that disagree
raise `OutcomeUnknown`; a document that cannot be read, the reading's error (`kkt.Register`
reports either as `OutcomeUnknown` naming the document).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields

from kkt.protocols.ffd import DocumentType, Payments, TlvList

from .errors import OutcomeUnknown
from .printform import item_vat
from .receipt import Operation, Receipt, Vat
from .results import Document, FiscalResult
from .settle import PAYMENT_TAGS, DamagedClosing, net_payments
from .vendors.base import Device

# The receipt's VAT totals by rate (tag: the rates whose items' VAT adds up to it), and the
# turnovers of the rates without VAT (tag: the rates whose items' amounts add up to it).
_VAT_TOTALS = {1102: (Vat.VAT20,), 1103: (Vat.VAT10,), 1106: (Vat.VAT120,), 1107: (Vat.VAT110,)}
_TURNOVERS = {1104: (Vat.VAT0,), 1105: (Vat.NONE,)}
_SENT_NAMES = {1173: "correction type", 1174: "correction basis"}


@dataclass(frozen=True, slots=True)
class Expected:
    """What a document read back must hold: a receipt as sold, a correction as made.

    ``taxes``: tag 1102-1107 -> (the sum, the kopecks it may be off by); with
    ``taxes_where_present`` a tag the document lacks is not held against it (the register forms
    them), otherwise a missing tag reads 0.  ``tax_systems``: the 1055 values taken where the
    document holds one (empty: none checked).  ``sent``: tags sent as they are, to be held so
    (an STLV member by member).
    """

    noun: str  # "receipt", "correction": what the texts call it
    type: int  # the FFD document type (`DocumentType`)
    operation: int  # 1054
    total: int  # 1020, kopecks
    payments: Mapping[str, int]  # by `PAYMENT_TAGS` name, as the FN records them
    tax_systems: frozenset[int]
    taxes: Mapping[int, tuple[int, int]]
    taxes_where_present: bool = False
    sent: TlvList = field(default_factory=list)

    @property
    def verb(self) -> str:
        return "sold" if self.type == DocumentType.RECEIPT else "made"


def expect_receipt(receipt: Receipt) -> Expected:
    """A receipt's document as sold: its change taken off the cash, its VAT by its items."""
    taxes: dict[int, tuple[int, int]] = {}
    for tag, rates in _VAT_TOTALS.items():
        items = [item for item in receipt.items if item.vat in rates]
        taxes[tag] = (sum(item_vat(item) for item in items), len(items))
    for tag, rates in _TURNOVERS.items():
        taxes[tag] = (sum(item.total for item in receipt.items if item.vat in rates), 0)
    paid = {name: getattr(receipt.payments, name) for name in PAYMENT_TAGS}
    return Expected(
        noun="receipt",
        type=DocumentType.RECEIPT,
        operation=int(receipt.operation),
        total=receipt.total,
        payments=net_payments(paid, receipt.total),
        tax_systems=frozenset({int(receipt.tax_system)}),
        taxes=taxes,
    )


def expect_correction(
    operation: Operation,
    total: int,
    payments: Payments,
    sent: TlvList,
    tax_systems: frozenset[int] = frozenset(),
) -> Expected:
    """A correction's document as made: ``payments`` as given (a correction gives no change),
    no VAT, ``sent`` (its 1173 and 1174) as sent, a tax system of ``tax_systems``."""
    taxes = {tag: (0, 0) for tag in (*_VAT_TOTALS, 1104)}
    taxes[1105] = (total, 0)
    return Expected(
        noun="correction",
        type=DocumentType.CORRECTION_RECEIPT,
        operation=int(operation),
        total=total,
        payments={part.name: getattr(payments, part.name) for part in fields(payments)},
        tax_systems=tax_systems,
        taxes=taxes,
        taxes_where_present=True,
        sent=sent,
    )


def check_document(device: Device, result: FiscalResult, sold: Receipt | Expected) -> Document:
    """Read document ``result.document_number`` and raise `DamagedClosing` unless it holds
    ``sold`` (a receipt, or a correction's `Expected`); the document when it does.  Reading
    errors propagate."""
    expected = sold if isinstance(sold, Expected) else expect_receipt(sold)
    noun, number, sign = expected.noun, result.document_number, result.fiscal_sign
    again = "sell" if expected.noun == "receipt" else "make"
    document = device.read_document(number)
    differences = list(document_differences(document, result, expected))
    if differences:
        # The reading crossed the same line: a block damaged past its checksum can read as a
        # document that differs.  A verdict that stays in the journal needs the document read
        # twice, alike; two readings that disagree say nothing about the document.
        if device.read_document(number) != document:
            raise OutcomeUnknown(
                f"the {noun} IS fiscal: document {number} (fiscal sign {sign}); read back it "
                f"seemed to differ from the {noun} {expected.verb} ({'; '.join(differences)}), "
                "but a second reading disagreed with the first: the line damaged a reading.  "
                f"Do not {again} it again: repeat the call with the same key, or read document "
                f"{number}"
            )
        raise DamagedClosing(
            f"the {noun} IS fiscal: document {number} (fiscal sign {sign}), but read back it "
            f"differs from the {noun} {expected.verb}: "
            + "; ".join(differences)
            + f" (its closing command was damaged on the line past the checksum).  Do not "
            f"{again} it again: correct that document (a correction receipt)"
        )
    return document


def document_differences(
    document: Document, result: FiscalResult, sold: Receipt | Expected
) -> Iterable[str]:
    """What ``document`` holds otherwise than ``sold`` (a receipt, or a correction's
    `Expected`) and ``result`` said, one text each ("payments {...} where {...} was sold");
    nothing for a document as sold."""
    expected = sold if isinstance(sold, Expected) else expect_receipt(sold)
    tags = dict(document.tlv)

    def differs(name: str, held: object, wanted: object) -> str:
        return f"{name} {held!r} where {wanted!r} was {expected.verb}"

    if document.type != expected.type:
        kind = "a receipt" if expected.type == DocumentType.RECEIPT else "a correction receipt"
        yield f"it is a document of type {document.type}, not {kind}"
        return
    if document.fiscal_sign != result.fiscal_sign:
        yield differs("fiscal sign", document.fiscal_sign, result.fiscal_sign)
    if result.when is not None and document.when is not None and document.when != result.when:
        yield differs("time", document.when.isoformat(), result.when.isoformat())
    if tags.get(1054) != expected.operation:
        yield differs("operation (1054)", tags.get(1054), expected.operation)
    if tags.get(1020) != expected.total:
        yield differs("total (1020)", tags.get(1020), expected.total)
    held = {name: tags.get(tag, 0) for name, tag in PAYMENT_TAGS.items()}
    if held != dict(expected.payments):
        yield differs("payments", held, dict(expected.payments))
    systems = expected.tax_systems
    if systems and 1055 in tags and tags[1055] not in systems:
        wanted: object = next(iter(systems)) if len(systems) == 1 else sorted(systems)
        yield differs("tax system (1055)", tags[1055], wanted)
    for tag, (sum_, tolerance) in expected.taxes.items():
        if expected.taxes_where_present and tag not in tags:
            continue
        value = tags.get(tag, 0)
        if not isinstance(value, int) or abs(value - sum_) > tolerance:
            name = "turnover without VAT" if tag in _TURNOVERS else "VAT total"
            yield differs(f"{name} ({tag})", value, sum_)
    for tag, value in expected.sent:
        name = _SENT_NAMES.get(tag, "tag")
        if isinstance(value, list):
            members = tags.get(tag)
            held_members = dict(members) if isinstance(members, list) else {}
            for member, sent in value:
                if held_members.get(member) != sent:
                    yield differs(f"{name} ({tag}: {member})", held_members.get(member), sent)
        elif tags.get(tag) != value:
            yield differs(f"{name} ({tag})", tags.get(tag), value)
