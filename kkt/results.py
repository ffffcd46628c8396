"""What a `Register` reports, in one vocabulary for every vendor.

Each vendor's device (`kkt.vendors.shtrih`, `kkt.vendors.atol`) turns its own answers into these;
callers never see which protocol carried them.  Vendor numbers that have no common meaning (the
raw mode byte, a model code) are kept as they are and named beside (``mode_name``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from kkt.protocols.ffd import (
    DOCUMENT_NAMES,
    DocumentType,
    FnWarning,
    TlvList,
    fiscal_sign_tlv,
    tlv_to_json,
)
from kkt.protocols.ffd.marking import item_check_label


@dataclass(frozen=True, slots=True)
class Status:
    """The register's state now."""

    mode: int  # the vendor's own mode number (Shtrih 0..15, ATOL 0..7)
    mode_name: str  # that mode in words, e.g. "shift open", "document open (sale)"
    submode: int
    shift_open: bool
    shift_expired: bool  # open for more than 24 hours: only a Z report is allowed
    receipt_open: bool
    paper: bool
    cover_open: bool
    drawer_open: bool
    operator: int
    receipt_items: int | None  # items in the open receipt; None where the register cannot say


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    model: int
    name: str
    protocol: str
    serial: str
    firmware: str


@dataclass(frozen=True, slots=True)
class FnInfo:
    serial: str
    phase: int | None  # FN life phase (1, 3, 7, 15); None where the register does not report it
    last_document: int
    expires: dt.date | None
    registrations_left: int | None
    version: str
    warnings: FnWarning
    unsent: int


@dataclass(frozen=True, slots=True)
class OfdQueue:
    """Documents the FN holds for the OFD."""

    unsent: int
    first_number: int | None
    first_when: dt.datetime | None


@dataclass(frozen=True, slots=True)
class ShiftState:
    """The FN's view of the shift (cheap: one query)."""

    open: bool
    number: int  # the open shift's number, or the last closed one's
    receipts: int  # receipts in the open shift


@dataclass(frozen=True, slots=True)
class ShiftTotals:
    """The shift's figures an X report prints, as the register counts them (kopecks).

    ``None`` marks a figure the vendor's protocol cannot read: both vendors read the shift and
    the cash in the drawer; Shtrih also its cash registers (cash taken by operation, cash in and
    out this shift) and its receipt counters by operation.
    """

    shift_open: bool
    shift_number: int  # the open shift's number, or the last closed one's
    receipts: int  # receipts in the open shift
    cash_in_drawer: int
    cash_by_operation: dict[str, int] | None = None  # "sell", "sellReturn", "buy", "buyReturn"
    receipts_by_operation: dict[str, int] | None = None
    cash_in: int | None = None  # deposited this shift
    cash_out: int | None = None  # withdrawn this shift

    def to_json(self) -> dict[str, Any]:
        """Stable JSON (money in roubles, as every ``kkt --json`` sum)."""

        def roubles(kopecks: int | None) -> float | None:
            return None if kopecks is None else kopecks / 100

        by_operation = self.cash_by_operation
        return {
            "shift": {
                "open": self.shift_open,
                "number": self.shift_number,
                "receipts": self.receipts,
            },
            "cashInDrawer": roubles(self.cash_in_drawer),
            "cashByOperation": (
                None if by_operation is None else {k: v / 100 for k, v in by_operation.items()}
            ),
            "receiptsByOperation": self.receipts_by_operation,
            "cashIn": roubles(self.cash_in),
            "cashOut": roubles(self.cash_out),
        }


@dataclass(frozen=True, slots=True)
class ShiftInfo:
    open: bool
    number: int  # the open shift's number, or the last closed one's
    receipts: int  # receipts in the open shift
    opened_at: dt.datetime | None  # from the shift-open report, to the minute
    expired: bool  # open for more than 24 hours: only a Z report is allowed

    def age(self, now: dt.datetime) -> dt.timedelta | None:
        return now - self.opened_at if self.open and self.opened_at else None


RECEIPT_TYPES = frozenset(
    {
        DocumentType.RECEIPT,
        DocumentType.BSO,
        DocumentType.CORRECTION_RECEIPT,
        DocumentType.CORRECTION_BSO,
    }
)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """The archive's short record of one fiscal document."""

    number: int  # tag 1040
    type: int  # `DocumentType` value
    when: dt.datetime | None  # to the minute
    fiscal_sign: int  # tag 1077, printed value
    ofd_confirmed: bool
    operation: int | None = None  # tag 1054, receipts and corrections
    total: int | None = None  # tag 1020 in kopecks, receipts and corrections
    shift_number: int | None = None  # tag 1038, shift reports

    @property
    def is_receipt(self) -> bool:
        return self.type in RECEIPT_TYPES


@dataclass(frozen=True, slots=True)
class Formed:
    """What the FN answered when it formed a document."""

    number: int
    fiscal_sign: int
    shift_number: int = 0
    # The document's short record when the device read it with the closing command anyway (ATOL
    # asks 91h 34h for the number); None: ask `Device.find_document`.
    record: DocumentInfo | None = None


@dataclass(frozen=True, slots=True)
class MarkedItem:
    """A marked item of a fiscal receipt: its index in the receipt (0-based), its code as scanned
    (GS as "\x1d") and tag 2106, the FN's result of the code's check, which the receipt prints
    as ``label`` ([М+], [М-], [М])."""

    item: int
    code: str
    item_check: int  # tag 2106

    @property
    def label(self) -> str:
        return item_check_label(self.item_check)


# The key a journal's result carries when the receipt's document read back other than sold
# (`kkt.Register`, verifying): its text, for every later call with that key to raise again.
DAMAGED = "damaged"


@dataclass(frozen=True, slots=True)
class FiscalResult:
    """A fiscal document, as an ATOL-style `fiscalParams` would name it."""

    document_number: int  # tag 1040
    fiscal_sign: int  # tag 1077, printed value
    fn_number: str  # tag 1041
    shift_number: int
    receipt_number: int  # in the shift, tag 1042 (0 for reports)
    when: dt.datetime | None  # to the minute, as the FN keeps it
    total: int  # kopecks
    operation: int  # tag 1054, 0 for reports
    qr: str  # tag 1196 content, '' for reports
    # True when this call sent nothing: the document was fiscalized earlier under the same
    # idempotency key (and is returned from the journal, or found in the FN after a crash).
    # Not part of equality: a replay is the same fiscal document.
    replayed: bool = field(default=False, compare=False)
    # The receipt's marked items with their 2106 (`MarkedItem`), in item order; () for a receipt
    # without marked goods, and for a report.  A journal written before marking reads as ().
    marks: tuple[MarkedItem, ...] = ()
    # True when the document was read back after the sale and holds the receipt as sold
    # (`kkt.verify`; ``connect(..., verify=True)``: a document that differs, or cannot be read,
    # is no result but `DamagedClosing` / `OutcomeUnknown`).  Not part of equality: the same
    # fiscal document either way.
    verified: bool = field(default=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["when"] = self.when.isoformat() if self.when else None
        data["marks"] = [
            {"item": m.item, "code": m.code, "item_check": m.item_check} for m in self.marks
        ]
        return data

    def identifying_tlv(self) -> TlvList:
        """The receipt's identifying details as a document's tags (1012, 1042, 1038, 1054, 1020,
        1040, 1041, 1077): what `kkt.render` draws for a result whose whole document was not
        read (``register.document(N)`` has the full print form).  Its QR string is `qr`."""
        if not self.operation or self.when is None:
            raise ValueError(
                f"document {self.document_number} is a report, not a receipt: render "
                "register.document(N) instead"
            )
        return [
            (
                DocumentType.RECEIPT,
                [
                    (1012, self.when),
                    (1042, self.receipt_number),
                    (1038, self.shift_number),
                    (1054, self.operation),
                    (1020, self.total),
                    (1040, self.document_number),
                    (1041, self.fn_number),
                    (1077, fiscal_sign_tlv(self.fiscal_sign)),
                ],
            )
        ]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FiscalResult:
        data = {key: value for key, value in data.items() if key != DAMAGED}
        when = dt.datetime.fromisoformat(data["when"]) if data["when"] else None
        marks = tuple(
            MarkedItem(int(m["item"]), str(m["code"]), int(m["item_check"]))
            for m in data.get("marks") or ()
        )
        return cls(**{**data, "when": when, "marks": marks})


@dataclass(frozen=True, slots=True)
class Document:
    """One fiscal document from the FN's archive, its TLV decoded."""

    number: int
    type: int  # FFD document type (tag of its STLV): 1, 11, 2, 21, 3, 31, 5, 6
    when: dt.datetime | None  # to the minute, as FF0A reports it
    fiscal_sign: int
    ofd_confirmed: bool
    tlv: TlvList

    @property
    def type_name(self) -> str:
        return DOCUMENT_NAMES.get(self.type, f"документ типа {self.type}")

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "type": self.type,
            "typeName": self.type_name,
            "dateTime": self.when.isoformat() if self.when else None,
            "fiscalSign": str(self.fiscal_sign),
            "ofdConfirmed": self.ofd_confirmed,
            "tlv": tlv_to_json(self.tlv),
        }


@dataclass(frozen=True, slots=True)
class Registration:
    """What the (last) registration report of this FN says about the register's owner."""

    document_number: int
    inn: str  # tag 1018
    rnm: str  # tag 1037, the register's registration number
    user: str  # tag 1048
    address: str  # tag 1009
    ffd: str  # tag 1209 as a version: "1.05", "1.1", "1.2"
    place: str = ""  # tag 1187, the place of settlement ('' where the report has none)
    fns_site: str = ""  # tag 1060, the FNS site ('' where the report has none)

    def to_json(self) -> dict[str, Any]:
        return {
            "documentNumber": self.document_number,
            "userInn": self.inn,
            "registrationNumber": self.rnm,
            "user": self.user,
            "address": self.address,
            "ffdVersion": self.ffd,
            "place": self.place,
            "fnsSite": self.fns_site,
        }
