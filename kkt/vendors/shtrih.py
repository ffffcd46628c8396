"""The Shtrih-M `Device`: the driver's steps as Shtrih commands (classic and FF-prefixed).

A step whose exchange failed is judged by what the register shows afterwards -- its mode for an
opened receipt, the open receipt's item count and subtotal for an item -- because a Shtrih link
cannot ask "did you do my last command?"; the closing command is judged by the FN's archive one
level up, in `kkt.settle`.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any, TypeVar

from kkt.protocols.errors import DeviceError as ProtocolDeviceError
from kkt.protocols.errors import LinkError, ProtocolError
from kkt.protocols.ffd import DocumentType, FnWarning, Payments, TlvList, find
from kkt.protocols.ffd.marking import ItemCheck, PlannedStatus
from kkt.protocols.ffd.view import strip_padding
from kkt.protocols.shtrih import classic, fn
from kkt.protocols.shtrih import marking as mk
from kkt.protocols.shtrih.message import Answer, Request
from kkt.protocols.shtrih.models import line_width
from kkt.protocols.shtrih.modes import (
    EcrFlags,
    Mode,
    OperationType,
    ReceiptType,
    TaxRate,
    TaxSystem,
    decode_mode,
)

from .. import errors, results
from ..errors import (
    BadAnswer,
    DeviceError,
    KktError,
    MarkAlreadySold,
    NotFiscalized,
    OfdBlocked,
    OutcomeUnknown,
    TransportError,
)
from ..marking import MarkCheck, MarkingState, short_code
from ..ofd import OfdReceipt
from ..receipt import Operation, Receipt, Vat
from .base import (
    CANCELLED,
    NOT_CHARGED,
    OFD_BLOCKED,
    Closed,
    Device,
    checked_serial,
    item_fate_unread,
    registration_mismatch,
)

log = logging.getLogger("kkt.register")
AnswerT = TypeVar("AnswerT", bound=Answer)

_VAT_BITS = {
    Vat.VAT20: TaxRate.VAT20,
    Vat.VAT10: TaxRate.VAT10,
    Vat.VAT0: TaxRate.VAT0,
    Vat.NONE: TaxRate.NO_VAT,
    Vat.VAT120: TaxRate.VAT20_120,
    Vat.VAT110: TaxRate.VAT10_110,
}
_RECEIPT_TYPE = {
    Operation.SELL: ReceiptType.SALE,
    Operation.BUY: ReceiptType.BUY,
    Operation.SELL_RETURN: ReceiptType.SALE_RETURN,
    Operation.BUY_RETURN: ReceiptType.BUY_RETURN,
}
# Cash register 241 (1Ah): the cash in the drawer; registers 193-196 (1Ah) and 144-147 (1Bh)
# count the shift's operations in this order (fact sheet §2.3, javapos ``CashRegister.java``).
CASH_IN_DRAWER = 241
_BY_OPERATION = ("sell", "buy", "sellReturn", "buyReturn")
_NO_DATA = 0x08  # the FN's "no requested data": FF3C for a document without a receipt
_WRONG_RECEIPT_TYPE = 0x49  # "operation impossible in an open receipt of this type"
_MARK_SEQUENCE = 0xA1  # the FN's marking sequence is elsewhere (a code waits for FF69)
_MARK_NOT_BINDABLE = 0xA5  # FF67: the code is not checked and accepted, or was sold before
_AUTONOMOUS = 0x02  # FF68 (BAh) on an autonomous FN: it exports notifications instead
# Tries of one marking command: FF61 and FF67 frames carry the whole code (about 100 bytes), so
# on a bad line they fail more often than a short command; a try that certainly did not go out
# (`TransportError`) is simply sent again, the others are settled first (FF70).
_MARK_TRIES = 8
ITEM_TRIES = 3  # sends of one item (FF46) that failed on the line before the sale gives up
_PENDING = (2, 3, 4)  # FF70 check states: a code between FF61 and FF69
# FF31/FF33 blocks: the register says its largest (FF30, FF32); never more than fits a frame's
# data with FF33's 9 bytes of command, password, offset and size (a frame carries 255).
_BLOCK = 240
# Shtrih codes (FN codes 01h-3Fh pass through) -> the class callers catch.
REFUSALS: dict[int, type[DeviceError]] = {
    0x6B: errors.PaperOut,
    0x6C: errors.PaperOut,
    0x58: errors.PaperOut,
    0x4E: errors.ShiftExpired,
    0x16: errors.ShiftExpired,
    0x4F: errors.WrongPassword,
    0x02: errors.WrongMode,
    0x3C: errors.WrongMode,
    0x3D: errors.WrongMode,
    0x4A: errors.WrongMode,
    0x55: errors.WrongMode,
    0x72: errors.WrongMode,
    0x73: errors.WrongMode,
    0x06: errors.FnExhausted,
    0x12: errors.FnExhausted,
    0x05: errors.FnExhausted,
    0x14: errors.FnExhausted,  # or the OFD backlog: `_refusal` tells them apart by the FN's flags
    0x15: errors.OfdBlocked,
}

# The command that gets the user out of a refusal, where the protocol table's hint names none.
_COMMANDS_OUT = {
    0x3C: "close the shift first: `kkt shift close` (Z report)",
    0x3D: "open a shift first: `kkt shift open`",
    0x4E: "close the shift (Z report) with `kkt shift close`, then open a new one",
    0x16: "close the shift (Z report) with `kkt shift close`, then open a new one",
}


def _cause(error: ProtocolDeviceError) -> str:
    """The register's refusal without the protocol table's generic hint."""
    return str(error).split(" -- ", 1)[0]


class ShtrihDevice(Device):
    """A Shtrih-M register behind a `Commander` (a link session, or the in-process emulator)."""

    vendor = "shtrih"
    REFUSALS = REFUSALS
    CORRECTION_PAYMENTS = frozenset({"cash", "electronic", "prepaid", "credit", "other"})  # FF4A
    MARKING = True  # FF61, FF69, FF67 (kkt.protocols.shtrih.marking)
    _line_width: int | None = None  # characters per line of this model (`models.line_width`)
    _registered_tax_system: int | None = None  # `_tax_system`, read once
    _receipt_tags: tuple[tuple[int, Any], ...] = ()  # receipt-level tags the first item sends

    def raw(self, request: Request[AnswerT], *, sync_after: bool = False) -> AnswerT:
        """Any typed Shtrih request (`kkt.protocols.shtrih.classic`, ``fn``); see `Device.raw`."""
        answer: AnswerT = super().raw(request, sync_after=sync_after)
        return answer

    def _refusal(self, error: ProtocolDeviceError) -> DeviceError:
        refusal = super()._refusal(error)
        if error.code in (0x14, 0x15):  # the FN is full -- or the OFD backlog blocks it
            try:
                warnings = FnWarning(self.raw(fn.GetFnStatus(self.password)).warnings)
            except KktError:
                return refusal
            if error.code == 0x15 or FnWarning.OFD_TIMEOUT in warnings:
                return OfdBlocked(
                    f"command {error.command:#04x} refused with {error.code:02X}h: {OFD_BLOCKED}",
                    code=error.code,
                    vendor="shtrih",
                )
        if isinstance(refusal, errors.PaperOut):
            # 6Bh/6Ch/58h say "no paper" for an open cover too (the 1.17 table has no cover
            # code; the cover is a flag of 10h's answer): the flags tell which it is.
            try:
                cover_open = EcrFlags.COVER_OPEN in EcrFlags(
                    self.raw(classic.GetShortStatus(self.password)).flags
                )
            except KktError:
                cover_open = False
            cause = (
                f"the printer's cover is open (the register answered {error.code:02X}h, "
                "its code for no paper)"
                if cover_open
                else _cause(error)
            )
            fix = "close the cover" if cover_open else "load paper and close the cover"
            return errors.PaperOut(
                f"{cause} -- {fix}, then run `kkt continue` (Register.continue_print())",
                cause=f"{cause} -- {fix}",
                code=error.code,
                vendor="shtrih",
            )
        command = _COMMANDS_OUT.get(error.code)
        if command:
            return type(refusal)(
                f"{_cause(error)} -- {command}",
                code=error.code,
                vendor="shtrih",
                retry_may_help=refusal.retry_may_help,
            )
        return refusal

    # -- queries ----------------------------------------------------------------------------------

    def status(self) -> results.Status:
        s = self.raw(classic.GetShortStatus(self.password))
        flags = EcrFlags(s.flags)
        mode = decode_mode(s.mode)
        return results.Status(
            mode=int(mode.mode),
            mode_name=str(mode),
            submode=s.submode,
            shift_open=mode.shift_open,
            shift_expired=mode.mode is Mode.SHIFT_EXPIRED,
            receipt_open=mode.mode is Mode.DOCUMENT_OPEN,
            paper=EcrFlags.RECEIPT_OPTICAL_SENSOR in flags,
            cover_open=EcrFlags.COVER_OPEN in flags,
            drawer_open=EcrFlags.DRAWER_OPEN in flags,
            operator=s.operator,
            receipt_items=s.operations_in_receipt,
        )

    def device_info(self) -> results.DeviceInfo:
        kind = self.raw(classic.GetDeviceType())
        long = self.raw(classic.GetLongStatus(self.password))
        serial = self.raw(classic.ReadTable(self.password, 18, 1, 1)).value.split(b"\0", 1)[0]
        return results.DeviceInfo(
            model=kind.model,
            name=kind.name,
            protocol=f"shtrih {kind.protocol_version}.{kind.protocol_subversion}",
            serial=serial.decode("cp1251", "replace") or str(long.serial_low),
            firmware=f"{long.firmware_version} build {long.firmware_build}",
        )

    def fn_info(self) -> results.FnInfo:
        status = self.raw(fn.GetFnStatus(self.password))
        expiry = self.raw(fn.GetFnExpiry(self.password))
        version = self.raw(fn.GetFnVersion(self.password))
        unsent = self.raw(fn.GetOfdExchangeStatus(self.password)).queue_count
        self._fn_serial = checked_serial(status.fn_serial)  # the serial comes with the status
        return results.FnInfo(
            serial=status.fn_serial,
            phase=status.phase,
            last_document=status.last_document_number,
            expires=expiry.expires,
            registrations_left=expiry.registrations_left,
            version=version.version,
            warnings=FnWarning(status.warnings),
            unsent=unsent,
        )

    def _read_fn_serial(self) -> str:
        return self.raw(fn.GetFnSerial(self.password)).serial

    def last_document(self) -> int:
        return self.raw(fn.GetFnStatus(self.password)).last_document_number

    def shift(self) -> results.ShiftState:
        """FF40 counts the open shift's receipts, but a closed shift's *documents* (the FN's 10h,
        fact sheet fn-ffd-ofd.md §4.6): a closed shift's receipts come from its Z report."""
        params = self.raw(fn.GetShiftParams(self.password))
        if params.shift_open:
            return results.ShiftState(True, params.shift_number, params.receipt_number)
        return results.ShiftState(
            False, params.shift_number, self._closed_shift_receipts(params.shift_number)
        )

    def _closed_shift_receipts(self, shift_number: int) -> int:
        """Tag 1118 (receipts in the shift) of shift ``shift_number``'s Z report, found among the
        last few documents (after a Z come at most OFD or state reports); 0 if none is found."""
        last = self.last_document()
        for number in range(last, max(0, last - 8), -1):
            found = self.find_document(number)
            ours = found.shift_number in (None, shift_number)
            if found.type == DocumentType.SHIFT_CLOSE and ours:
                receipts = find(self.read_document(number).tlv, 1118)
                return receipts if isinstance(receipts, int) else 0
        return 0

    def find_document(self, number: int) -> results.DocumentInfo:
        return _document_info(self.find_raw(number))

    def find_raw(self, number: int) -> fn.FoundDocument:
        """FF0A's own answer for document ``number``."""
        for _ in range(self.query_tries):
            found = self.raw(fn.FindDocument(self.password, number))
            if found.number == number:
                return found
            # An answer to another FF0A (a replay the line confused): never take it for this one.
            log.info(
                "asked for document %d, the answer is about %d (the line confused answers); "
                "asking again",
                number,
                found.number,
            )
        raise BadAnswer(f"the register keeps answering about another document than {number}")

    def read_document(self, number: int) -> results.Document:
        """FF3A, then FF3B until the document's length is read; FF0A for its sign and time."""

        def select() -> tuple[int, int]:
            header = self.raw(fn.RequestDocumentTlv(self.password, number))
            return header.document_type, header.length

        kind, items = self._read_tlv_blocks(
            number, select, lambda: self.raw(fn.ReadDocumentTlv(self.password)).data
        )
        found = self.find_raw(number)
        return results.Document(
            number,
            kind,
            found.datetime,
            found.fiscal_sign,
            found.ofd_ticket_received,
            strip_padding(items),  # INN and RNM are stored space-padded
        )

    def clock(self) -> dt.datetime | None:
        long = self.raw(classic.GetLongStatus(self.password))
        return dt.datetime.combine(long.date, long.time) if long.date else None

    def ofd_queue(self) -> results.OfdQueue:
        status = self.raw(fn.GetOfdExchangeStatus(self.password))
        if not status.queue_count:
            return results.OfdQueue(0, None, None)
        return results.OfdQueue(
            status.queue_count, status.first_document_number, status.first_document_datetime
        )

    def ofd_receipt(self, number: int) -> OfdReceipt | None:
        """FF3C: the OFD's receipt the FN keeps for document ``number`` (08h: none yet)."""
        try:
            ticket = self.raw(fn.GetOfdTicket(self.password, number))
        except DeviceError as refusal:
            if refusal.code == _NO_DATA:
                return None
            raise
        return OfdReceipt(number, ticket.datetime, ticket.operator_sign)

    def ofd_read_message(self) -> bytes | None:
        """FF30, then FF31 blocks of the largest size FF30 allows (JavaPOS ``fsReadBlockData``).

        Every block names its offset, so a block whose answer was lost is asked again, and a
        message read half is read again whole on the next call (the register keeps it in its
        buffer until the OFD's answer is written)."""
        status = self.raw(fn.GetBufferStatus(self.password))
        if not status.size:
            return None
        block = max(1, min(status.max_block or _BLOCK, _BLOCK))
        data = bytearray()
        while len(data) < status.size:
            count = min(block, status.size - len(data))
            piece = self.raw(fn.ReadBufferBlock(self.password, len(data), count)).data
            if not piece:
                raise BadAnswer(f"the register sent an empty block at {len(data)} of the message")
            data += piece[:count]
        return bytes(data)

    def ofd_write_answer(self, answer: bytes) -> None:
        """FF32 with the answer's size, then FF33 blocks; the last one passes it to the FN."""
        started = self.raw(fn.StartBufferWrite(self.password, len(answer)))
        block = max(1, min(started.max_block or _BLOCK, _BLOCK))
        for offset in range(0, len(answer), block):
            self.raw(fn.WriteBufferBlock(self.password, offset, answer[offset : offset + block]))

    def cash_in_drawer(self) -> int:
        return self.raw(classic.ReadCashRegister(self.password, CASH_IN_DRAWER)).value

    def shift_totals(self) -> results.ShiftTotals:
        """FF40 for the shift; cash registers (1Ah) 241 in the drawer, 193-196 cash by operation,
        242/243 cash in/out this shift; operating registers (1Bh) 144-147 receipts by operation
        (fact sheet §2.3: javapos ``CashRegister.java``, ``OperationRegister.properties``)."""
        state = self.shift()

        def cash(register: int) -> int:
            return self.raw(classic.ReadCashRegister(self.password, register)).value

        def count(register: int) -> int:
            return self.raw(classic.ReadOperatingRegister(self.password, register)).value

        return results.ShiftTotals(
            state.open,
            state.number,
            state.receipts,
            cash(CASH_IN_DRAWER),
            cash_by_operation={name: cash(193 + i) for i, name in enumerate(_BY_OPERATION)},
            receipts_by_operation={name: count(144 + i) for i, name in enumerate(_BY_OPERATION)},
            cash_in=cash(242),
            cash_out=cash(243),
        )

    # -- documents and the printer ----------------------------------------------------------------

    def open_shift(self, cashier: str | None) -> results.Formed:
        self.raw(fn.BeginOpenShift(self.password))
        self._tags([(1021, cashier)] if cashier else [])
        opened = self.raw(fn.FnOpenShift(self.password))
        return results.Formed(opened.document_number, opened.fiscal_sign, opened.shift_number)

    def close_shift(self, cashier: str | None) -> results.Formed:
        self.raw(fn.BeginCloseShift(self.password))
        self._tags([(1021, cashier)] if cashier else [])
        closed = self.raw(fn.FnCloseShift(self.password))
        return results.Formed(closed.document_number, closed.fiscal_sign, closed.shift_number)

    def x_report(self) -> None:
        self.raw(classic.XReport(self.password))

    def correction(
        self, operation: Operation, total: int, tags: TlvList, payments: Payments
    ) -> results.Formed:
        """FF35, its tags, then FF36 (the sum, in cash) -- or FF4A when anything is paid
        otherwise: it carries the payments by kind, the tax sums and the tax system."""
        # Read before FF35: no document is read from the FN while one is being formed.
        tax_system = self._tax_system() if payments.cash != total else 0
        self.raw(fn.BeginCorrectionReceipt(self.password))
        self._tags(tags)
        if payments.cash == total:
            made = self.raw(
                fn.MakeCorrectionReceipt(self.password, total, OperationType(int(operation)))
            )
        else:
            kind = find(tags, 1173)
            made = self.raw(
                fn.MakeCorrectionReceiptV2(
                    self.password,
                    kind if isinstance(kind, int) else 0,
                    OperationType(int(operation)),
                    total,
                    (
                        payments.cash,
                        payments.electronic,
                        payments.prepaid,
                        payments.credit,
                        payments.other,
                    ),
                    (0, 0, 0, total, 0, 0),  # all "no VAT", as FF36's register forms it
                    tax_system,
                )
            )
        return results.Formed(made.document_number, made.fiscal_sign)

    def _tax_system(self) -> int:
        """The lowest tax system the register is registered for (tag 1062 of document 1): what
        FF36 leaves the register to choose, FF4A must name."""
        if self._registered_tax_system is None:
            registered = find(self.read_document(1).tlv, 1062)
            bits = registered if isinstance(registered, int) else 0
            self._registered_tax_system = bits & -bits or int(TaxSystem.OSN)
        return self._registered_tax_system

    def cash_in(self, amount: int) -> None:
        self.raw(classic.CashIn(self.password, amount))

    def cash_out(self, amount: int) -> None:
        self.raw(classic.CashOut(self.password, amount))

    def print_text(self, text: str) -> None:
        if self._line_width is None:  # the model's, once per connection (one FCh exchange)
            self._line_width = line_width(self.raw(classic.GetDeviceType()).model)
        for line in text.splitlines() or [""]:
            self.raw(classic.PrintString(self.password, 0x02, line[: self._line_width]))

    def cut(self, *, partial: bool = False) -> None:
        self.raw(classic.Cut(self.password, partial))

    def continue_print(self) -> None:
        self.raw(classic.ContinuePrint(self.password))

    def set_datetime(self, when: dt.datetime) -> None:
        self.raw(classic.SetTime(self.password, when.time().replace(microsecond=0)))
        self.raw(classic.SetDate(self.password, when.date()))
        self.raw(classic.ConfirmDate(self.password, when.date()))

    def _tags(self, tags: TlvList) -> None:
        if tags:
            self.raw(fn.SendTlv(self.password, self._tlv(tags)))

    # -- the receipt's steps ----------------------------------------------------------------------

    def receipt_open(self) -> bool:
        return self.status().receipt_open

    def open_receipt(self, receipt: Receipt) -> None:
        """8Dh and the receipt-level tags (FF0C) -- or, for two items or more, nothing yet: the
        first item (FF46) opens the receipt, of the type its operation byte names, and the tags
        follow it (`add_item`).  One exchange less, as drivers selling on real registers do
        (re-star-ru/shtrih-m-driver ``printCheck.go``, afilippov1985/kkt-shtrih).

        Why a single item keeps 8Dh: two flips in one bit column pass the XOR checksum, and a
        damaged operation byte (1 -> 3: a purchase) in the only FF46 would open a receipt of
        another type with the right total, which neither the subtotal check nor the closing
        answer can see.  With 8Dh the receipt's type comes from a command of its own, and the
        register refuses an item of another type.  With two items or more the second one checks
        the first: the register refuses an FF46 whose operation does not fit the open receipt's
        type (emulator ``receipt_for``, `Reason.WRONG_RECEIPT_TYPE`, 49h; our reading of the
        register, which keeps one receipt type per document), so a first item damaged into
        another type is refused by item 2 and the receipt cancelled -- unless every later item
        were damaged the same way, each past the checksum, which is beyond any line.
        """
        self._receipt_tags = tuple(self._receipt_level_tags(receipt))
        # A receipt with marked goods is opened by 8Dh: FF67 binds a code in the open receipt,
        # whose type (a sale or a return) decides whether the FN may take a code sold before.
        if len(receipt.items) >= 2 and not any(item.marked for item in receipt.items):
            return  # the first FF46 opens it (`add_item`)
        self._open_once(
            classic.OpenReceipt(self.password, _RECEIPT_TYPE[receipt.operation]), receipt
        )
        self._send_receipt_tags()

    @staticmethod
    def _receipt_level_tags(receipt: Receipt) -> list[tuple[int, Any]]:
        tags: list[tuple[int, Any]] = []
        if receipt.cashier:
            tags.append((1021, receipt.cashier))
        if receipt.buyer_contact:
            tags.append((1008, receipt.buyer_contact))
        tags.extend(receipt.extra)
        return tags

    def _send_receipt_tags(self) -> None:
        tags, self._receipt_tags = list(self._receipt_tags), ()
        self._tags(tags)

    def open_receipt_fits(self, receipt: Receipt | None) -> bool | None:
        """10h: the mode's high nibble names the open receipt's type, and the item count."""
        state = self.raw(classic.GetShortStatus(self.password))
        mode = decode_mode(state.mode)
        if mode.mode is not Mode.DOCUMENT_OPEN:
            return None
        kind = None if receipt is None else int(_RECEIPT_TYPE[receipt.operation])
        return state.operations_in_receipt == 0 and kind in (None, mode.status)

    def add_item(self, receipt: Receipt, index: int, subtotal: int) -> None:
        item = receipt.items[index]
        operation = fn.OperationV2(
            self.password,
            OperationType(int(receipt.operation)),
            Decimal(item.quantity),
            item.price,
            item.amount,
            None,
            _VAT_BITS[item.vat],
            item.department,
            item.payment_method,
            item.payment_subject,
            item.name,
        )
        if item.mark_code is not None:
            self._bind(index, item.name, item.mark_code)
        # The next command is this same FF46 when the next item follows at once (no tags after
        # this one, no receipt tags after the first, no FF67 bind before the next).
        next_is_item = (
            index + 1 < len(receipt.items)
            and not item.tags
            and not (index == 0 and self._receipt_tags)
            and receipt.items[index + 1].mark_code is None
        )
        try:
            self._add_once(operation, subtotal, item.total, index, receipt, next_is_item)
        except DeviceError as refusal:
            if refusal.code == _WRONG_RECEIPT_TYPE and index and len(receipt.items) >= 2:
                raise NotFiscalized(
                    f"the register refused item {index + 1} ({item.name!r}) as not fitting the "
                    "open receipt's type: the first item opened a receipt of another type (its "
                    f"command damaged on the line past the checksum?); {CANCELLED}: sell it again"
                ) from refusal
            raise
        if item.tags:
            self.raw(fn.SendOperationTlv(self.password, self._tlv(item.tags)))
        if index == 0 and self._receipt_tags:
            self._send_receipt_tags()  # the receipt is open now (`open_receipt`)

    def _add_once(
        self,
        operation: fn.OperationV2,
        subtotal: int,
        amount: int,
        count: int,
        receipt: Receipt,
        sync_after: bool = False,
    ) -> None:
        """Add one item exactly once: after a failed exchange the open receipt's item count and
        subtotal tell whether the register took it (the count, because a free item leaves the
        subtotal as it was; the subtotal, because the count alone cannot tell a damaged item),
        and its type whether it is this receipt at all.  No receipt open after the first item
        of a receipt it opens (no 8Dh) means the item was not taken."""
        where = f"item {count + 1} ({receipt.items[count].name!r})"
        opened = True  # whether a receipt was open when last asked (none: nothing to cancel)
        for _ in range(ITEM_TRIES):
            try:
                self.raw(operation, sync_after=sync_after)
                return
            except (TransportError, OutcomeUnknown) as lost:
                try:
                    state = self.raw(classic.GetShortStatus(self.password))
                    mode = decode_mode(state.mode)
                    opened = mode.mode is Mode.DOCUMENT_OPEN
                    if not opened and count == 0 and len(receipt.items) > 1:
                        continue  # not taken: the first item opens the receipt (`open_receipt`)
                    if not opened:
                        raise NotFiscalized(
                            f"{where}: the receipt is no longer open on the register (was it "
                            "restarted, or cancelled by another program?); nothing was "
                            "charged: sell it again"
                        ) from None
                    if mode.status != int(_RECEIPT_TYPE[receipt.operation]):
                        raise NotFiscalized(
                            f"{where}: the receipt open on the register is of another type than "
                            "this one (another program's, or an item damaged on the line); "
                            f"{CANCELLED}: sell it again"
                        ) from None
                    items = state.operations_in_receipt
                    now = self.subtotal()
                except (TransportError, BadAnswer) as unread:
                    raise item_fate_unread(where, lost, unread) from unread
                if (items, now) == (count + 1, subtotal + amount):
                    return  # taken; only its answer was lost
                if (items, now) != (count, subtotal):
                    raise NotFiscalized(
                        f"{where}: the open receipt holds {items} items for {now} kopecks, "
                        f"expected {count} for {subtotal} or {count + 1} for {subtotal + amount} "
                        f"(an item damaged on the line?); {CANCELLED}: sell it again"
                    ) from None
        fate = CANCELLED if opened else f"no receipt was opened, {NOT_CHARGED}"
        raise TransportError(
            f"the register would not take {where}: sent {ITEM_TRIES} times, the line failed it "
            f"each time; {fate}: sell it again when the line is sound"
        )

    def _bind(self, index: int, name: str, code: str) -> None:
        """FF67: the code (checked and accepted before the receipt opened) goes with the next
        FF46.  Not repeatable: a bind whose answer was lost is not sent again -- what a second
        FF67 does on a register is not documented -- the receipt is cancelled instead."""
        request = mk.BindMarkCode(self.password, code.encode("ascii"))
        try:
            self.raw(request)
        except (TransportError, OutcomeUnknown) as lost:
            # "Not delivered" too: a register that lost the command's ACK and answer after
            # executing it says the same (the lossy soak's path g), so no second FF67.
            raise NotFiscalized(
                f"binding the marking code of item {index + 1} ({name!r}) failed on the line "
                f"({lost}); "
                f"{CANCELLED}: sell it again"
            ) from lost
        except DeviceError as refusal:
            if refusal.code != _MARK_NOT_BINDABLE:
                raise
            short = short_code(code)
            reason = (
                f"the FN refuses to bind code {short} ({refusal.code:02X}h): it holds no "
                "accepted check of it -- it sold that code before (a code is sold once; "
                "only a sale return gives it back)"
            )
            raise MarkAlreadySold(
                f"item {index + 1} ({name!r}): {reason}; {CANCELLED}. If this is a retried "
                "sale, its first attempt is the fiscal one: look it up before selling again.",
                item=index,
                code=short,
                item_check=None,
                reason=reason,
            ) from None

    def subtotal(self) -> int:
        return self.raw(classic.Subtotal(self.password)).subtotal

    def pay(self, receipt: Receipt) -> None:
        """Nothing: FF45 carries every payment."""

    def close_receipt(self, receipt: Receipt) -> results.Formed:
        p = receipt.payments
        request = fn.CloseReceiptV2(
            self.password,
            (p.cash, p.electronic) + (0,) * 11 + (p.prepaid, p.credit, p.other),
            0,
            (0,) * 6,
            TaxSystem(int(receipt.tax_system)),
            "",
        )
        try:
            closed = self.raw(request)
        except DeviceError as refusal:
            # 33h ("incorrect parameters") and 19h ("does not match the registration") do not
            # say which: the registration does.
            cause = registration_mismatch(self, receipt) if refusal.code in (0x19, 0x33) else None
            if cause is None:
                raise
            raise DeviceError(
                f"the register refused the receipt ({refusal.code:02X}h): {cause}; nothing was "
                "fiscalized, fix the receipt and sell it again",
                code=refusal.code,
                vendor="shtrih",
            ) from None
        # The long answer (LEN 21) carries the document's time; the change says which total the
        # register closed (`kkt.settle.receipt_result` checks both before trusting the answer).
        copy = self._second_copy(request)
        if copy is not None and copy != closed:
            raise OutcomeUnknown(
                "the closing command's answer read differently twice (damaged on the line); "
                "the FN's archive decides"
            )
        return Closed(
            closed.document_number,
            closed.fiscal_sign,
            when=closed.datetime,
            change=closed.change,
            confirmed=copy is not None,
        )

    def _second_copy(self, request: fn.CloseReceiptV2) -> Any:
        """The closing answer once more, as the register still holds it: the link NAKed the
        first copy and asks with a bare ENQ (`kkt.protocols.shtrih.host.HELD`), no command.

        Why a second copy suffices where the XOR checksum does not: the checksum misses two
        flips in one bit column, a damage the line does at random; two copies sent apart,
        each passing the checksum and equal byte for byte, would need the same damage twice --
        about the square of an already rare event, and no more likely than a damaged FF0A
        read-back agreeing with a damaged FF45 (the check it replaces) -- at the cost of a few
        bytes, not an exchange with the FN.  None when no copy comes (a commander that cannot
        replay, a lost replay): the FN is then asked (`kkt.settle._result`)."""
        try:
            again = self.commander.exchange(b"", answer_timeout=request.TIMEOUT, resend=True)
            return request.decode_answer(again)
        except (LinkError, ProtocolError, KktError) as failure:
            log.info("no second copy of the closing answer (%s); the FN is asked", failure)
            return None
        except Exception as failure:  # a commander that knows no replay (an empty payload)
            log.info("the commander gave no second copy (%r); the FN is asked", failure)
            return None

    def cancel_receipt(self) -> None:
        if self.receipt_open():
            self.raw(classic.CancelReceipt(self.password))

    # -- marked goods -----------------------------------------------------------------------------

    def check_mark(
        self, code: str, planned: PlannedStatus, tlv: TlvList, *, allow_offline: bool = False
    ) -> MarkCheck:
        """FF61 (the register runs FN B1h, B5h, asks ОИСМ, B6h).  FF61 is not repeatable, so a
        failed exchange is settled by FF70: a check it left waiting for FF69 is rejected, then
        the code is checked again; a code some earlier failure left waiting (A1h) likewise."""
        request = mk.CheckMarkCode(
            self.password, planned, 0, code.encode("ascii"), self._tlv(tlv) if tlv else b""
        )
        for attempt in range(1, _MARK_TRIES + 1):
            try:
                answer = self.raw(request)
                break
            except DeviceError as refusal:
                if refusal.code != _MARK_SEQUENCE or attempt == _MARK_TRIES:
                    raise
                log.info("a code was left between FF61 and FF69; rejecting it first")
            except TransportError:
                if attempt == _MARK_TRIES:
                    raise
                continue  # it did not go out: nothing was checked, send it again
            except (OutcomeUnknown, BadAnswer):
                if attempt == _MARK_TRIES:
                    raise
                log.info("FF61 failed on the line; asking the FN's marking state")
            self._drop_pending_check()
        return MarkCheck.judge(
            code,
            planned,
            answer.local,
            answer.reason,
            answer.code_type,
            answer.online,
            allow_offline=allow_offline,
        )

    def _drop_pending_check(self) -> None:
        """FF70; when a code waits between FF61 and FF69, FF69 reject it."""
        if self.raw(mk.GetMarkingStatus(self.password)).check_state in _PENDING:
            self._decide(mk.MarkDecision.REJECT)

    def decide_mark(self, accept: bool) -> ItemCheck | None:
        """FF69 accept (its 2106) or reject."""
        return self._decide(mk.MarkDecision.ACCEPT if accept else mk.MarkDecision.REJECT)

    def clear_marks(self) -> None:
        """FF69(2): every check result cleared (JavaPOS ``ActionClearBuffer``)."""
        self._decide(mk.MarkDecision.CLEAR)

    def _decide(self, decision: mk.MarkDecision) -> ItemCheck | None:
        """FF69 exactly once.  After a failed exchange FF70 tells: a code still waiting means
        it was not taken (sent again); none waiting means it was (the answer alone was lost --
        an accepted code's 2106 then comes from its check)."""
        request = mk.DecideMarkCode(self.password, decision)
        for _ in range(_MARK_TRIES):
            try:
                return self.raw(request).item_check
            except (TransportError, OutcomeUnknown, BadAnswer):
                state = self.raw(mk.GetMarkingStatus(self.password))
                if decision is mk.MarkDecision.CLEAR:
                    if not state.saved_results and state.check_state not in _PENDING:
                        return None
                elif state.check_state not in _PENDING:
                    return None
        raise TransportError("the register would not take the decision on the code; check the line")

    def marking_state(self) -> MarkingState:
        """FF70 (= FN B0h), and FF68 (= BAh) for the notification exchange unless the FN is
        autonomous (02h: it exports notifications by FF71-FF73 instead)."""
        status = self.raw(mk.GetMarkingStatus(self.password))
        try:
            notes: mk.NotificationStatus | None = self.raw(mk.GetNotificationStatus(self.password))
        except DeviceError as refusal:
            if refusal.code != _AUTONOMOUS:
                raise
            notes = None
        return MarkingState(
            status.check_state,
            status.notification_state,
            status.permitted,
            status.saved_results,
            status.codes_in_notification,
            status.store_warning,
            status.notifications_queued,
            exchange_state=None if notes is None else notes.state,
            first_queued=None if notes is None else notes.current_number,
            first_queued_at=None if notes is None else notes.current_datetime,
            store_percent=None if notes is None else notes.store_percent,
        )


def _document_info(found: fn.FoundDocument) -> results.DocumentInfo:
    details = found.details()
    operation = total = shift = None
    if isinstance(details, fn.ReceiptDetails):
        operation, total = int(details.operation), details.total
    elif isinstance(details, fn.ShiftDetails):
        shift = details.shift_number
    return results.DocumentInfo(
        found.number,
        found.document_type,
        found.datetime,
        found.fiscal_sign,
        found.ofd_ticket_received,
        operation,
        total,
        shift,
    )
