"""Fiscal-storage (ФН) commands of Shtrih-M registers: the two-byte ``FF xx`` codes.

Layouts: vendor protocol 1.17 §"Команды работы с ФН", cross-checked with the official JavaPOS
driver (``FSReadStatus``, ``FSFindDocument``, ``FSCloseReceipt``, ``FSPrintRecItem`` ...) and
afilippov1985/kkt-shtrih (fact sheet §2.4).  Readings chosen where sources differ:

* FF03: 1.17 shows only the date; both official drivers require the two registration counters.
  Decoding accepts either, the counters are None when absent.
* FF3F: the count is 2 bytes (1.17, pyshtrih; fact sheet ``shtrih-protocol.md`` FF3F row; the
  issue-15 validation run agreed); JavaPOS's ``commands.xml`` says 4 and is wrong.
* FF36, FF38, FF43, FF45: a trailing DATE_TIME appears when the register's "extended answers"
  setting is on; it decodes to None otherwise.
* FF46 tax rates are a bitmask (`TaxRate`), bit n-1 for tax n, as the OPOS driver encodes them.
* Fiscal signs are 4-byte little-endian numbers, the form a receipt prints.
* FF30-FF33 (the register's message buffer for an OFD exchange through the driver) and FF3C (the
  OFD receipt by FD number): layouts from javapos_shtrih ``command/FSReadBufferStatus.java``,
  ``FSReadBlock.java``, ``FSStartWriteBlock.java``, ``FSWriteBlock.java``, ``FSReadDocTicket.java``
  and ``FSTicket.java`` (which decodes FF3C's data as the FN archive's receipt record, FNP table
  189: YMD, HM, ФПО 18 bytes, FD number 4), and SH117 pp. 47-50 (fact sheet
  ``ofd-cloud-marking.md`` §1.3).  FF3C's data is typed as that record; JavaPOS reads it only
  when at least 27 bytes came, which is exactly its size.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
from collections.abc import Callable
from decimal import Decimal

from .. import fields
from ..errors import CodecError
from ..ffd import DocumentType
from ..fields import U8, U16, U32, Bytes, Raw
from ..message import RequestClass, wire
from .classic import Empty
from .fields import (
    Bool,
    DateTime5,
    DateYMD,
    EnumField,
    FixedText,
    Money5,
    OptionalMoney5,
    Quantity,
    SizedBlock,
    TailText,
    Trailing,
    Tuple,
)
from .message import Answer, Request, answer, request
from .modes import OperationType, TaxRate, TaxSystem

_FN = 30.0  # OPOS waits 30 s for every FF command


@typing.dataclass_transform(frozen_default=True, field_specifiers=(wire, dataclasses.field))
def _fn_request(
    code: int, *, repeatable: bool = True, timeout: float = _FN
) -> Callable[[RequestClass], RequestClass]:
    return request(code, timeout=timeout, repeatable=repeatable)


# -- status and identity --------------------------------------------------------------------------


@answer
class FnStatus(Answer):
    """FF01 answer.  ``phase`` is a `kkt.protocols.ffd.LifePhase` value (one bit per phase reached:
    01h ready, 03h fiscal mode, 07h closed, 0Fh archive read), ``warnings`` `FnWarning` bits,
    ``current_document`` a `FnDocument` code."""

    phase: int = wire(U8)
    current_document: int = wire(U8)
    document_data_received: bool = wire(Bool)
    shift_open: bool = wire(Bool)
    warnings: int = wire(U8)
    datetime: dt.datetime | None = wire(DateTime5())
    fn_serial: str = wire(FixedText(16, "ascii"))
    last_document_number: int = wire(U32)


@_fn_request(0xFF01)
class GetFnStatus(Request[FnStatus]):
    password: int = wire(U32)


@answer
class FnSerial(Answer):
    serial: str = wire(FixedText(16, "ascii"))


@_fn_request(0xFF02)
class GetFnSerial(Request[FnSerial]):
    password: int = wire(U32)


@answer
class FnExpiry(Answer):
    expires: dt.date | None = wire(DateYMD())
    registrations_left: int | None = wire(Trailing(U8))
    registrations_done: int | None = wire(Trailing(U8))


@_fn_request(0xFF03)
class GetFnExpiry(Request[FnExpiry]):
    password: int = wire(U32)


@answer
class FnVersion(Answer):
    version: str = wire(FixedText(16, "ascii"))
    production: bool = wire(Bool)  # False: debug firmware


@_fn_request(0xFF04)
class GetFnVersion(Request[FnVersion]):
    password: int = wire(U32)


@_fn_request(0xFF08, repeatable=False)
class CancelFnDocument(Request[Empty]):
    password: int = wire(U32)


# -- archive --------------------------------------------------------------------------------------


_ASCII = fields.Codepage("ascii")


@answer
class RegistrationDetails(Answer):
    inn: str = wire(fields.FixedText(12, _ASCII, nul="blank"))
    rnm: str = wire(fields.FixedText(20, _ASCII, nul="blank"))
    tax_systems: TaxSystem = wire(EnumField(TaxSystem))
    work_mode: int = wire(U8)
    extra: bytes = wire(Raw)  # FFD 1.1+: extended flags, OFD INN, reason codes


@answer
class ShiftDetails(Answer):
    shift_number: int = wire(U16)


@answer
class ReceiptDetails(Answer):
    operation: OperationType = wire(EnumField(OperationType))
    total: int = wire(Money5)


@answer
class StateReportDetails(Answer):
    unconfirmed_count: int = wire(U32)
    first_unconfirmed_date: dt.date | None = wire(DateYMD())


DocumentDetails = RegistrationDetails | ShiftDetails | ReceiptDetails | StateReportDetails


@answer
class FoundDocument(Answer):
    """FF0A answer: the archive's short record of one fiscal document."""

    document_type: int = wire(U8)  # FFD type code, see `DocumentType`
    ofd_ticket_received: bool = wire(Bool)
    datetime: dt.datetime | None = wire(DateTime5())
    number: int = wire(U32)
    fiscal_sign: int = wire(U32)
    data: bytes = wire(Raw)  # type-specific, see `details`

    def details(self) -> DocumentDetails | None:
        """Decode ``data`` for the common document types; None for the others (or when the
        data is too short for its type)."""
        kind = _DETAILS.get(self.document_type)
        try:
            return None if kind is None else kind.decode_data(self.data)
        except CodecError:
            return None


_DETAILS: dict[int, type[DocumentDetails]] = {
    DocumentType.REGISTRATION: RegistrationDetails,
    DocumentType.REREGISTRATION: RegistrationDetails,
    DocumentType.SHIFT_OPEN: ShiftDetails,
    DocumentType.SHIFT_CLOSE: ShiftDetails,
    DocumentType.RECEIPT: ReceiptDetails,
    DocumentType.BSO: ReceiptDetails,
    DocumentType.CORRECTION_RECEIPT: ReceiptDetails,
    DocumentType.CORRECTION_BSO: ReceiptDetails,
    DocumentType.STATE_REPORT: StateReportDetails,
}


@_fn_request(0xFF0A)
class FindDocument(Request[FoundDocument]):
    password: int = wire(U32)
    number: int = wire(U32)


# -- shift ----------------------------------------------------------------------------------------


@_fn_request(0xFF41, repeatable=False)
class BeginOpenShift(Request[Empty]):
    """Start opening a shift; send cashier tags with FF0C, then `FnOpenShift`."""

    password: int = wire(U32)


@answer
class ShiftOpened(Answer):
    shift_number: int = wire(U16)
    document_number: int = wire(U32)
    fiscal_sign: int = wire(U32)


@_fn_request(0xFF0B, repeatable=False, timeout=100.0)
class FnOpenShift(Request[ShiftOpened]):
    password: int = wire(U32)


@_fn_request(0xFF42, repeatable=False)
class BeginCloseShift(Request[Empty]):
    password: int = wire(U32)


@answer
class ShiftClosed(Answer):
    shift_number: int = wire(U16)
    document_number: int = wire(U32)
    fiscal_sign: int = wire(U32)
    datetime: dt.datetime | None = wire(Trailing(DateTime5()))


@_fn_request(0xFF43, repeatable=False, timeout=65.0)
class FnCloseShift(Request[ShiftClosed]):
    password: int = wire(U32)


@answer
class ShiftParams(Answer):
    shift_open: bool = wire(Bool)
    shift_number: int = wire(U16)
    receipt_number: int = wire(U16)


@_fn_request(0xFF40)
class GetShiftParams(Request[ShiftParams]):
    password: int = wire(U32)


# -- TLV ------------------------------------------------------------------------------------------


@_fn_request(0xFF0C, repeatable=False)
class SendTlv(Request[Empty]):
    """Receipt- or document-level TLV (e.g. 1008 buyer contact, 1021 cashier).  At most 249 bytes
    fit a frame; repeating it would add the tags twice."""

    password: int = wire(U32)
    tlv: bytes = wire(Raw)


@_fn_request(0xFF4D, repeatable=False)
class SendOperationTlv(Request[Empty]):
    """TLV bound to the last operation (FF46), e.g. 1023 quantity, 2108 measure."""

    password: int = wire(U32)
    tlv: bytes = wire(Raw)


# -- correction and state report ------------------------------------------------------------------


@_fn_request(0xFF35, repeatable=False)
class BeginCorrectionReceipt(Request[Empty]):
    password: int = wire(U32)


@answer
class CorrectionReceiptMade(Answer):
    receipt_number: int = wire(U16)
    document_number: int = wire(U32)
    fiscal_sign: int = wire(U32)
    datetime: dt.datetime | None = wire(Trailing(DateTime5()))


@_fn_request(0xFF36, repeatable=False)
class MakeCorrectionReceipt(Request[CorrectionReceiptMade]):
    password: int = wire(U32)
    total: int = wire(Money5)
    operation: OperationType = wire(EnumField(OperationType))  # 1 приход, 3 расход


CORRECTION_PAYMENT_SLOTS = 5  # cash, electronic, prepaid, credit (postpayment), counter-provision
CORRECTION_TAX_SLOTS = 6  # VAT 20 (18), VAT 10, 0 %, no VAT, 20/120 (18/118), 10/110


@_fn_request(0xFF4A, repeatable=False)
class MakeCorrectionReceiptV2(Request[CorrectionReceiptMade]):
    """Form a correction receipt with its payments by kind and its tax sums (javapos_shtrih
    ``FSPrintCorrectionReceipt2``: 69 bytes).  ``kind`` is tag 1173 (0 own initiative, 1 by
    order); FF35 and FF0C before it carry the other tags."""

    password: int = wire(U32)
    kind: int = wire(U8)
    operation: OperationType = wire(EnumField(OperationType))  # 1 приход, 3 расход
    total: int = wire(Money5)
    payments: tuple[int, ...] = wire(Tuple(CORRECTION_PAYMENT_SLOTS, Money5))
    taxes: tuple[int, ...] = wire(Tuple(CORRECTION_TAX_SLOTS, Money5))
    tax_system: int = wire(U8)  # one tag 1055 bit


@_fn_request(0xFF37, repeatable=False)
class BeginStateReport(Request[Empty]):
    password: int = wire(U32)


@answer
class StateReport(Answer):
    document_number: int = wire(U32)
    fiscal_sign: int = wire(U32)
    unconfirmed_count: int = wire(U32)
    first_unconfirmed_date: dt.date | None = wire(DateYMD())
    datetime: dt.datetime | None = wire(Trailing(DateTime5()))


@_fn_request(0xFF38, repeatable=False)
class MakeStateReport(Request[StateReport]):
    password: int = wire(U32)


# -- OFD exchange ---------------------------------------------------------------------------------


@answer
class OfdExchangeStatus(Answer):
    status: int = wire(U8)  # `OfdStatus` bits
    reading_message: bool = wire(Bool)
    queue_count: int = wire(U16)
    first_document_number: int = wire(U32)
    first_document_datetime: dt.datetime | None = wire(DateTime5())


@_fn_request(0xFF39)
class GetOfdExchangeStatus(Request[OfdExchangeStatus]):
    password: int = wire(U32)


@answer
class UnconfirmedCount(Answer):
    count: int = wire(U16)


@_fn_request(0xFF3F)
class GetUnconfirmedCount(Request[UnconfirmedCount]):
    password: int = wire(U32)


# -- the message buffer of an exchange through the driver (table 21 field 2 = 0) ------------------
#
# The register fills its buffer with the whole message for the OFD -- the 30-byte session header
# and the FN's container -- when FF30 finds it empty and the FN has a message; the driver reads it
# with FF31, sends it, and writes the OFD's whole answer (header included) back with FF32/FF33;
# the register strips the header and hands the container to the FN (26h) once the last byte is
# in (fact sheet ``ofd-cloud-marking.md`` §1.3, JavaPOS ``SMFiscalPrinterImpl.sendFDODocuments``).


@answer
class BufferStatus(Answer):
    """FF30 answer: bytes waiting in the buffer (0 = nothing to send) and the largest block."""

    size: int = wire(U16)
    max_block: int = wire(U8)


@_fn_request(0xFF30)
class GetBufferStatus(Request[BufferStatus]):
    password: int = wire(U32)  # the system administrator's


@answer
class BufferBlock(Answer):
    data: bytes = wire(Raw)


@_fn_request(0xFF31)
class ReadBufferBlock(Request[BufferBlock]):
    """Read ``count`` bytes of the buffer from ``offset`` (shorter at its end)."""

    password: int = wire(U32)
    offset: int = wire(U16)
    count: int = wire(U8)


@answer
class WriteStarted(Answer):
    max_block: int = wire(U8)


# Repeatable, as FF31-FF33 are: each names its offset, so a resend writes the same bytes again,
# and an OFD receipt the FN is given twice is harmless (it keeps the first).
@_fn_request(0xFF32)
class StartBufferWrite(Request[WriteStarted]):
    """Start writing the OFD's answer of ``size`` bytes (its session header included)."""

    password: int = wire(U32)
    size: int = wire(U16)


@_fn_request(0xFF33)
class WriteBufferBlock(Request[Empty]):
    """Write ``data`` (a size byte, then the bytes) at ``offset``; the last block passes the
    answer to the FN, whose refusal (20h, 14h ...) this command answers."""

    password: int = wire(U32)
    offset: int = wire(U16)
    data: bytes = wire(SizedBlock())


@answer
class OfdTicket(Answer):
    """FF3C answer: the OFD's receipt as the FN's archive keeps it (FNP table 189)."""

    datetime: dt.datetime | None = wire(DateTime5())
    operator_sign: bytes = wire(Bytes(18))  # ФПО; the 16 bytes of tag 1078, then zeros
    document_number: int = wire(U32)


@_fn_request(0xFF3C)
class GetOfdTicket(Request[OfdTicket]):
    """The OFD receipt of fiscal document ``number``; the FN answers 08h when it has none."""

    password: int = wire(U32)
    number: int = wire(U32)


# -- documents as TLV ------------------------------------------------------------------------------


@answer
class DocumentTlvHeader(Answer):
    """FF3A answer: the document's STLV tag (its FFD type, 3 = receipt) and its value's length."""

    document_type: int = wire(U16)
    length: int = wire(U16)


@_fn_request(0xFF3A)
class RequestDocumentTlv(Request[DocumentTlvHeader]):
    """Start reading fiscal document ``number`` as TLV; FF3B then returns it block by block."""

    password: int = wire(U32)
    number: int = wire(U32)


@answer
class DocumentTlvBlock(Answer):
    data: bytes = wire(Raw)


# Not repeatable: each FF3B moves the FN's read cursor on, so a blind resend would skip a block.
# A reader that loses an answer starts over with FF3A (JavaPOS ``DIOReadDocumentTLV`` reads
# blocks until it holds FF3A's length; past the end the FN answers 08h, "no requested data").
@_fn_request(0xFF3B, repeatable=False)
class ReadDocumentTlv(Request[DocumentTlvBlock]):
    password: int = wire(U32)


# -- receipts v2 ----------------------------------------------------------------------------------


@answer
class ReceiptClosed(Answer):
    change: int = wire(Money5)
    document_number: int = wire(U32)
    fiscal_sign: int = wire(U32)
    datetime: dt.datetime | None = wire(Trailing(DateTime5()))


PAYMENT_SLOTS = (
    16  # 1 cash, 2-13 electronic ("безналичные" types), 14 prepaid, 15 credit, 16 counter-provision
)
TAX_SLOTS = 6


@_fn_request(0xFF45, repeatable=False)
class CloseReceiptV2(Request[ReceiptClosed]):
    """Close the open receipt: payments (kopecks), rounding (<= 99), tax sums, tax system."""

    password: int = wire(U32)
    payments: tuple[int, ...] = wire(Tuple(PAYMENT_SLOTS, Money5))
    rounding: int = wire(U8)
    taxes: tuple[int, ...] = wire(Tuple(TAX_SLOTS, Money5))
    tax_system: TaxSystem = wire(EnumField(TaxSystem))
    text: str = wire(TailText(64))


@_fn_request(0xFF46, repeatable=False)
class OperationV2(Request[Empty]):
    """One item line.  ``amount``/``tax_amount`` None send FF×5: the register computes them."""

    password: int = wire(U32)
    operation: OperationType = wire(EnumField(OperationType))
    quantity: Decimal = wire(Quantity(6, 6))
    price: int = wire(Money5)
    amount: int | None = wire(OptionalMoney5())
    tax_amount: int | None = wire(OptionalMoney5())
    tax_rate: TaxRate = wire(EnumField(TaxRate))
    department: int = wire(U8)
    payment_method: int = wire(U8)  # tag 1214: 1 full prepayment ... 4 full payment ... 7
    payment_subject: int = wire(U8)  # tag 1212: 1 goods, 2 excise goods, 3 work, 4 service ...
    name: str = wire(TailText(128))
