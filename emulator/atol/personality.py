"""An emulated ATOL register: the ATOL personality over the vendor-neutral register model.

`AtolRegister.execute` takes the block a v3 ``Add`` carries (``pwd(2 BCD) code params…``) and
returns the reply block.  It never raises: an unknown command, a malformed one and a refusal each
become ATOL's error reply ``55 err ext`` (A5h: the single error byte), and an internal failure is
logged and answered F6h.  Every code it answers with is in the tables at the top of this module.

ATOL works in modes (fact sheet §2.2): 56h enters mode 1 (registration: shift opening, receipts,
cash), 2 (X reports), 3 (Z report), 4 (programming), 5 or 6 (FN access) with a 4-byte BCD mode
password, 48h returns to mode 0; a command outside its mode is refused 66h.  The passwords are the
operators' from `RegisterSettings`: cashiers 1..28 (their number by default), the administrator
29, the system administrator 30.  The operator who entered the mode signs the documents (tag 1021)
unless a 1021 is written with E8h.

A receipt: 92h opens it (type 1 sale, 2 sale return, 4 buy, 5 buy return; 7..10 the corrections),
E6h -- or EAh, tags, EBh -- add items, E8h writes receipt tags (1008 buyer contact, 1021 cashier,
1055 tax system, ...), 99h registers payments and answers what remains and the change, 4Ah adds
its own payment (0 = exactly what remains) and closes the receipt into the FN; 59h cancels it.  A
correction receipt carries no items: its total is what 99h and 4Ah pay.  E8h outside a receipt
keeps its tags for the next document (the shift opening 9Ah, the Z report 5Ah).

Readings chosen where the sources say nothing (fact sheet §7):

* sub-modes: their table is not public (§7.6); this emulator reports sub-mode 0 in every mode,
  and the receipt's state goes to 3Fh's receipt-state byte, as every driver reads it;
* tax numbers in E6h/EBh: 1 VAT 20 % (formerly 18 %), 2 VAT 10 %, 3 VAT 20/120, 4 VAT 10/110,
  5 VAT 0 %, 6 no VAT (FFD tag 1199 codes, as Zzzzipper sends them), and libfptr's 7 VAT 20 %,
  8 VAT 20/120, which the kkt driver sends; 0 (the section's tax) is "no VAT" here;
* the EBh ``amount`` is the item's sum; it may be lower than price x quantity (a discount folded
  in) but not higher; a zero tax sum is computed by the register (Zzzzipper's comment);
* an unknown command is answered 66h ("not implemented in this mode"), a malformed one 14h (bad
  length), a parameter out of range 13h (bad format); 3Fh's flag bit 7 is set (battery present,
  MultiMag's and Zzzzipper's reading);
* an interrupted print is finished by the register itself once paper is back (ATOL has no
  continue-print command): the next command after the paper returns prints the rest first;
* A4h 45h selects a document and answers its type and the length of its TLV body (the FFD
  document's STLV without its own tag and length, as the FN's 45h/46h and Shtrih's FF3A/FF3B
  give it); each 46h answers the next first-level tag, whole (Unact/kkm reads them so);
* A4h 10h, 30h and 33h answer as the FN's own 10h, 30h and 33h (fact sheet fn-ffd-ofd.md §4.3,
  §4.4, §4.6): a closed shift's count is its documents (Unact/kkm reads 30h and 33h so);
* 91h answers registers 12h (shift state), 33h (last receipt) and 34h (last document), others
  6Ch; 47h (beep) succeeds silently; ABh prints a short copy of an archived document in mode 6.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from kkt.protocols.atol import commands as c
from kkt.protocols.atol.modes import (
    TEST_MODE,
    Interface,
    Mode,
    PaymentType,
    ReceiptType,
    StateFlags,
    StatusFlags,
    join_mode,
)
from kkt.protocols.errors import CodecError
from kkt.protocols.ffd import DocumentType, LifePhase, Payments, TlvError, TlvList, decode_tlv

from ..fn import FnCode, FnError
from ..personality import Personality, VendorRefusal
from ..receipt import RECEIPT_OPERATION, Item, item_tax
from ..register import SYSADMIN, Reason, Refusal, RegisterModel
from .tables import (
    ATOL_CODES,
    ATOL_RECEIPT_TYPE,
    BAD_PAYMENT_TYPE,
    BAD_REGISTER,
    BAD_REPORT_TYPE,
    BAD_SUM,
    BAD_TLV,
    CORRECTION_OPERATIONS,
    DEVICE_MODE,
    DEVICE_TYPE,
    FIRMWARE,
    FN_CODES,
    MALFORMED,
    MAX_SUM,
    MODE_BLOCKED,
    MODE_LEVEL,
    MODEL_FISCAL_ONLY,
    MODEL_PRINTED,
    NAME_FISCAL_ONLY,
    NAME_PRINTED,
    NO_PAPER,
    NOT_FISCAL,
    PAYMENT_TYPES,
    PRINTER_MECHANICS,
    PROTOCOL,
    QUICK_CODES,
    RECEIPT_TYPES,
    REPORT_X,
    TAXES,
    UNKNOWN_COMMAND,
    VERSION,
    WRONG_MODE,
)

log = logging.getLogger(__name__)

# Which modes each command works in (None: any).
_ANY = None
_REGISTRATION = frozenset({Mode.REGISTRATION})
_FN_ACCESS = frozenset({Mode.EKLZ_ACCESS})  # mode 6, where MultiMag prints from the FN (ABh)


@dataclasses.dataclass
class _Correction:
    """An open correction receipt: ATOL builds it like a receipt, the FN forms it from a total."""

    receipt_type: int  # 7..10
    tags: TlvList = dataclasses.field(default_factory=list)


class AtolRegister(Personality):
    """One emulated register speaking ATOL.  Not thread-safe: the shells serialise commands."""

    REFUSALS = ATOL_CODES
    BAD_PARAMETER = BAD_TLV
    PARAMETER_ERRORS = (TlvError,)
    INTERNAL = 0xF6

    def __init__(self, model: RegisterModel, *, access_password: int = 0) -> None:
        super().__init__(model)
        self.access_password = access_password  # 2-byte BCD every command carries; 0 on devices
        self.mode = Mode.SELECT
        self.correction: _Correction | None = None
        self.paid: dict[int, int] = {}  # 99h payments of the open receipt, by payment type
        self.item_tags: TlvList | None = None  # EAh began an item: its tags until EBh
        self.pending_tags: TlvList = []  # E8h outside a receipt: for the next document
        self.reading: tuple[bytes, int] | None = None  # A4h 45h selected: (TLV body, offset)
        self._handlers: dict[
            type[c.Request[Any]], tuple[frozenset[Mode] | None, Callable[[Any], c.Answer]]
        ] = {
            c.GetStatus: (_ANY, self._status),
            c.GetStateCode: (_ANY, self._state_code),
            c.GetDeviceType: (_ANY, self._device_type),
            c.EnterMode: (_ANY, self._enter_mode),
            c.ExitMode: (_ANY, self._exit_mode),
            c.OpenShift: (_REGISTRATION, self._open_shift),
            c.OpenReceipt: (_REGISTRATION, self._open_receipt),
            c.RegisterItem: (_REGISTRATION, self._register_item),
            c.BeginItem: (_REGISTRATION, self._begin_item),
            c.EndItem: (_REGISTRATION, self._end_item),
            c.WriteTlv: (frozenset({Mode.REGISTRATION, Mode.Z_REPORTS}), self._write_tlv),
            c.Payment: (_REGISTRATION, self._payment),
            c.CloseReceipt: (_REGISTRATION, self._close_receipt),
            c.CancelReceipt: (_REGISTRATION, self._cancel_receipt),
            c.CashIn: (_REGISTRATION, self._cash),
            c.CashOut: (_REGISTRATION, self._cash),
            c.GetCashInDrawer: (_ANY, self._cash_in_drawer),
            c.ZReport: (frozenset({Mode.Z_REPORTS}), self._z_report),
            c.Report: (frozenset({Mode.X_REPORTS}), self._report),
            c.PrintLine: (_ANY, self._print_line),
            c.Cut: (_ANY, self._cut),
            c.ReadRegister: (_ANY, self._read_register),
            c.ReadLastDocument: (_ANY, self._read_last_document),
            c.ReadLastReceipt: (_ANY, self._read_last_receipt),
            c.ReadShiftState: (_ANY, self._read_shift_state),
            c.Beep: (_ANY, self._beep),
            c.PrintFnDocument: (_FN_ACCESS, self._print_fn_document),
            c.GetFnShift: (_ANY, self._fn_shift),
            c.GetFnOfdStatus: (_ANY, self._fn_ofd_status),
            c.GetFnStatus: (_ANY, self._fn_status),
            c.GetFnVersion: (_ANY, self._fn_version),
            c.GetFnSerial: (_ANY, self._fn_serial),
            c.GetFnValidity: (_ANY, self._fn_validity),
            c.GetFnDocumentSize: (_ANY, self._fn_document_size),
            c.GetFnDocumentData: (_ANY, self._fn_document_data),
            c.SetDate: (_ANY, self._set_date),
            c.SetDateTime: (_ANY, self._set_date_time),
        }

    # -- the vendor's half of `Personality.execute` ---------------------------------------------

    def code_of(self, payload: bytes) -> int:
        return payload[2] if len(payload) >= 3 else 0

    def decode(self, payload: bytes) -> c.Request[Any]:
        try:
            return c.decode_request(payload)
        except c.UnknownCommand as exc:
            raise VendorRefusal(UNKNOWN_COMMAND, str(exc)) from None
        except CodecError as exc:
            raise VendorRefusal(MALFORMED, str(exc)) from None

    def handle(self, request: c.Request[Any]) -> bytes:
        return c.encode_answer(request.CODE, self._run(request))

    def error_reply(self, code: int, error: int) -> bytes:
        return c.encode_error(code, error)

    def fn_code(self, error: FnError) -> int:
        return FN_CODES.get(error.code, 0xD4)

    def paper_code(self) -> int:
        return PRINTER_MECHANICS if self.printer.cover_open else NO_PAPER

    def quick(self, command: bytes) -> bool:
        return len(command) < 3 or command[2] in QUICK_CODES

    def _run(self, request: c.Request[Any]) -> c.Answer:
        entry = self._handlers.get(type(request))
        if entry is None:  # a codec this personality does not serve yet
            raise VendorRefusal(UNKNOWN_COMMAND, f"command {request.CODE:02X}h is not emulated")
        modes, handler = entry
        if request.password != self.access_password:
            raise Refusal(Reason.WRONG_PASSWORD, "wrong access password")
        if modes is not None and self.mode not in modes:
            wanted = " or ".join(str(int(mode)) for mode in sorted(modes))
            raise VendorRefusal(
                WRONG_MODE,
                f"{request.CODE:02X}h works in mode {wanted}, the register is in mode "
                f"{int(self.mode)}: leave it (48h) and enter the right one (56h)",
            )
        self._resume_printing()
        return handler(request)

    # -- state helpers ----------------------------------------------------------------------------

    def _resume_printing(self) -> None:
        """An ATOL register finishes an interrupted document by itself once paper is back."""
        if self.model.pending_print and self.printer.ready:
            try:
                self.model.continue_print()
            except Refusal:
                pass  # the paper ran out again: the rest still waits

    def _receipt_state(self) -> int:
        """3Fh byte 22: 0, or the ATOL type of the open receipt."""
        if self.model.receipt is not None:
            return ATOL_RECEIPT_TYPE[self.model.receipt.receipt_type]
        if self.correction is not None:
            return self.correction.receipt_type
        return 0

    def _require_fiscal(self) -> None:
        if self.fn.state.phase is LifePhase.READY:
            raise VendorRefusal(NOT_FISCAL, "the register is not fiscalized: register it first")

    def _require_document(self) -> None:
        """A receipt or a correction receipt is open."""
        if self.model.receipt is None and self.correction is None:
            raise Refusal(Reason.NO_RECEIPT, "no receipt is open: open one with 92h")

    def _require_no_document(self, flags: int = 0) -> None:
        """No receipt open (and, given a command's ``flags``, no test mode asked for)."""
        if flags & TEST_MODE:
            raise Refusal(Reason.NOT_SUPPORTED, "test mode is not emulated")
        if self.model.receipt is not None or self.correction is not None:
            raise Refusal(
                Reason.RECEIPT_OPEN, "a receipt is open: close it (4Ah) or cancel it (59h) first"
            )

    def _take_pending_tags(self) -> TlvList:
        tags, self.pending_tags = self.pending_tags, []
        return tags

    def _forget_document(self) -> None:
        self.correction = None
        self.paid = {}
        self.item_tags = None

    def _mode_byte(self) -> int:
        return join_mode(int(self.mode), 0)

    # -- state and identity -----------------------------------------------------------------------

    def _status(self, r: c.GetStatus) -> c.Status:
        s = self.fn.state
        flags = StatusFlags.BATTERY
        if s.phase is LifePhase.FISCAL:
            flags |= StatusFlags.FISCAL
        if s.phase is not LifePhase.READY:
            flags |= StatusFlags.FN_ACTIVE
        if s.shift_open:
            flags |= StatusFlags.SHIFT_OPEN
        if not self.printer.present or self.printer.paper:
            flags |= StatusFlags.PAPER  # a register without a printer never lacks paper
        if self.printer.present and self.printer.cover_open:
            flags |= StatusFlags.COVER_OPEN
        return c.Status(
            cashier=self.model.operator if self.mode != Mode.SELECT else 0,
            hall_number=1,
            when=self.clock.now(),
            flags=int(flags),
            serial=int(self.settings.serial) % 10**8,
            model=self._model_id(),
            firmware=FIRMWARE,
            mode=self._mode_byte(),
            receipt_number=s.receipt_number % 10**4,
            shift_number=s.shift_number % 10**4,
            receipt_state=self._receipt_state(),
            receipt_sum=self.model.receipt.total if self.model.receipt else 0,
            decimal_point=2,
            interface=int(Interface.ETHERNET),
        )

    def _state_code(self, r: c.GetStateCode) -> c.StateCode:
        flags = StateFlags.NONE
        if self.printer.present and not self.printer.paper:
            flags |= StateFlags.NO_PAPER
        if self.printer.present and self.printer.cover_open:
            flags |= StateFlags.MECHANICAL_ERROR
        return c.StateCode(self._mode_byte(), int(flags))

    def _model_id(self) -> int:
        return MODEL_FISCAL_ONLY if self.fiscal_only else MODEL_PRINTED

    def _device_type(self, r: c.GetDeviceType) -> c.DeviceType:
        name = NAME_FISCAL_ONLY if self.fiscal_only else NAME_PRINTED
        return c.DeviceType(PROTOCOL, DEVICE_TYPE, self._model_id(), DEVICE_MODE, VERSION, name)

    # -- modes ------------------------------------------------------------------------------------

    def _enter_mode(self, r: c.EnterMode) -> c.Done:
        if self.mode != Mode.SELECT:
            raise VendorRefusal(
                MODE_BLOCKED, f"the register is in mode {int(self.mode)}: leave it with 48h first"
            )
        if r.mode not in MODE_LEVEL:
            raise Refusal(Reason.BAD_PARAMETER, f"mode {r.mode} cannot be entered; use 1..6")
        mode = Mode(r.mode)
        for number in range(SYSADMIN, 0, -1):
            if self.settings.password(number) == r.mode_password:
                if number < MODE_LEVEL[mode]:
                    continue  # a cashier's password opens no administrator's mode
                self.model.operator = number
                self.mode = mode
                return c.Done()
        raise Refusal(Reason.WRONG_PASSWORD, f"wrong password for mode {int(mode)}")

    def _exit_mode(self, r: c.ExitMode) -> c.Done:
        self._require_no_document()
        self.mode = Mode.SELECT
        self.pending_tags = []
        return c.Done()

    # -- shifts and reports -----------------------------------------------------------------------

    def _open_shift(self, r: c.OpenShift) -> c.Done:
        self._require_fiscal()
        self._require_no_document(r.flags)
        self.model.open_shift(self._take_pending_tags())
        return c.Done()

    def _z_report(self, r: c.ZReport) -> c.Done:
        self._require_fiscal()
        self.model.close_shift(self._take_pending_tags())
        return c.Done()

    def _report(self, r: c.Report) -> c.Done:
        if r.report_type != REPORT_X:
            raise VendorRefusal(
                BAD_REPORT_TYPE, f"report type {r.report_type} is not emulated; 1 is the X report"
            )
        self.model.x_report()
        return c.Done()

    # -- receipts ---------------------------------------------------------------------------------

    def _open_receipt(self, r: c.OpenReceipt) -> c.Done:
        self._require_fiscal()
        self._require_no_document(r.flags)
        # The "don't print" flag (0x04, or atol4j's 0x02) is accepted and ignored: the tape is
        # the emulator's record of what was fiscalized.
        if r.receipt_type in CORRECTION_OPERATIONS:
            self.model.require_shift_for_sale()
            self.model.require_idle_printer()
            self.correction = _Correction(r.receipt_type, self._take_pending_tags())
        elif r.receipt_type in RECEIPT_TYPES:
            self.model.open_receipt(RECEIPT_TYPES[ReceiptType(r.receipt_type)])
            self.model.add_receipt_tags(self._take_pending_tags())
        else:
            raise Refusal(
                Reason.WRONG_RECEIPT_TYPE,
                f"receipt type {r.receipt_type} is not one of 1, 2, 4, 5 or 7..10",
            )
        self.paid = {}
        self.item_tags = None
        return c.Done()

    def _require_receipt_for_items(self) -> None:
        if self.correction is not None:
            raise Refusal(
                Reason.WRONG_RECEIPT_TYPE,
                "a correction receipt takes no items here: pay its total with 99h/4Ah",
            )
        self.model.require_receipt()

    def _vat(self, tax: int) -> int:
        if tax not in TAXES:
            raise Refusal(
                Reason.BAD_PARAMETER, f"tax number {tax} is not one of 0..6 (tag 1199's codes)"
            )
        return TAXES[tax]

    def _require_item(self, discount: int, advice: str) -> None:
        """An item may be added: a receipt is open, the printer ready, no discount asked for."""
        self._require_receipt_for_items()
        self.printer.check()
        if discount:
            raise Refusal(Reason.NOT_SUPPORTED, f"item discounts are not emulated: {advice}")

    def _register_item(self, r: c.RegisterItem) -> c.Done:
        advice = "send the discounted price, or EAh/EBh with the item's amount"
        self._require_item(r.discount, advice)
        vat = self._vat(r.tax)
        quantity = Decimal(r.quantity) / 1000
        amount = int((quantity * r.price).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        self._add_item(
            Item(
                r.name,
                r.price,
                quantity,
                amount,
                vat,
                item_tax(amount, vat),
                department=r.section or 1,
            )
        )
        return c.Done()

    def _add_item(self, item: Item) -> None:
        receipt = self.model.require_receipt()
        if max(item.price, item.amount, receipt.total + item.amount) > MAX_SUM:
            raise VendorRefusal(
                BAD_SUM, f"the receipt's sum would exceed {MAX_SUM} kopecks: split the receipt"
            )
        self.model.add_item(item)

    def _begin_item(self, r: c.BeginItem) -> c.Done:
        self._require_receipt_for_items()
        self.item_tags = []  # sent again, it starts the item again
        return c.Done()

    def _end_item(self, r: c.EndItem) -> c.Done:
        self._require_item(r.discount, "fold the discount into the item's amount")
        vat = self._vat(r.tax_type)
        quantity = Decimal(r.quantity) / 1000
        computed = int((quantity * r.price).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        if r.amount > computed + 1:
            raise VendorRefusal(
                BAD_SUM, f"the amount {r.amount} exceeds price x quantity = {computed} kopecks"
            )
        tags, self.item_tags = self.item_tags or [], None
        self._add_item(
            Item(
                r.name,
                r.price,
                quantity,
                r.amount,
                vat,
                r.tax_sum or item_tax(r.amount, vat),
                r.payment_method or 4,  # 1214: full payment
                r.payment_object or 1,  # 1212: goods
                r.section or 1,
                tags,
            )
        )
        return c.Done()

    def _write_tlv(self, r: c.WriteTlv) -> c.Done:
        tags = decode_tlv(r.tlv)
        if self.item_tags is not None:
            self.item_tags.extend(tags)
        elif self.model.receipt is not None:
            self.model.add_receipt_tags(tags)
        elif self.correction is not None:
            self.correction.tags.extend(tags)
        else:
            self.pending_tags.extend(tags)
        return c.Done()

    def _payment_type(self, payment_type: int) -> int:
        if payment_type not in PAYMENT_TYPES:
            raise VendorRefusal(
                BAD_PAYMENT_TYPE,
                f"payment type {payment_type} is not 1..5 (cash, electronic, prepaid, credit, "
                "other)",
            )
        return payment_type

    def _due(self) -> int | None:
        """What the open receipt costs (None for a correction: its payments are its total)."""
        return self.model.receipt.total if self.model.receipt is not None else None

    def _payment(self, r: c.Payment) -> c.PaymentAnswer:
        self._require_document()
        kind = self._payment_type(r.payment_type)
        paid = dict(self.paid)
        paid[kind] = paid.get(kind, 0) + r.amount
        due = self._due()
        if due is None:
            self.paid = paid
            return c.PaymentAnswer(0, 0)
        non_cash = sum(amount for k, amount in paid.items() if k != PaymentType.CASH)
        if non_cash > due:
            raise Refusal(
                Reason.NON_CASH_OVERPAID,
                f"non-cash payments {non_cash} exceed the receipt's {due} kopecks",
            )
        self.paid = paid
        total = sum(paid.values())
        return c.PaymentAnswer(max(0, due - total), max(0, total - due))

    def _close_receipt(self, r: c.CloseReceipt) -> c.Done:
        self._require_document()
        kind = self._payment_type(r.payment_type)
        paid = dict(self.paid)
        due = self._due()
        amount = r.amount
        if amount == 0 and due is not None:  # 0: exactly what remains
            amount = max(0, due - sum(paid.values()))
        paid[kind] = paid.get(kind, 0) + amount
        if self.correction is not None:
            correction = self.correction
            tags, tax_system = _without_tax_system(correction.tags)
            operation = CORRECTION_OPERATIONS[ReceiptType(correction.receipt_type)]
            self.model.correction(operation, sum(paid.values()), tags, tax_system, _payments(paid))
        else:
            receipt = self.model.require_receipt()
            kept = receipt.tags
            receipt.tags, tax_system = _without_tax_system(kept)
            try:
                self.model.close_receipt(_payments(paid), tax_system=tax_system)
            except Exception:
                if self.model.receipt is receipt:
                    receipt.tags = kept  # refused: the receipt stays as it was
                raise
        self._forget_document()
        return c.Done()

    def _cancel_receipt(self, r: c.CancelReceipt) -> c.Done:
        self._require_document()
        if self.model.receipt is not None:
            self.model.cancel_receipt()
        self._forget_document()
        return c.Done()

    # -- cash -------------------------------------------------------------------------------------

    def _cash(self, r: c.CashIn | c.CashOut) -> c.Done:
        self._require_no_document(r.flags)
        (self.model.cash_in if isinstance(r, c.CashIn) else self.model.cash_out)(r.amount)
        return c.Done()

    def _cash_in_drawer(self, r: c.GetCashInDrawer) -> c.CashInDrawer:
        return c.CashInDrawer(max(0, self.model.cash_in_drawer()))

    # -- printing and the clock -------------------------------------------------------------------

    def _print_line(self, r: c.PrintLine) -> c.Done:
        self.model.print_lines([r.text])
        return c.Done()

    def _cut(self, r: c.Cut) -> c.Done:
        self.model.cut(partial=r.partial)
        return c.Done()

    def _beep(self, r: c.Beep) -> c.Done:
        return c.Done()  # the emulator has no buzzer: the command succeeds, as on a device

    def _print_fn_document(self, r: c.PrintFnDocument) -> c.Done:
        """ABh: a copy of document ``number`` from the FN's archive (DAh when there is none)."""
        record = self.fn.record(r.number)
        self.model.print_lines(
            [
                "КОПИЯ ДОКУМЕНТА ИЗ ФН",
                f"ФД: {record.number}",
                f"ФП: {record.fiscal_sign}",
                record.when.strftime("%d.%m.%Y %H:%M"),
            ]
        )
        return c.Done()

    def _set_date(self, r: c.SetDate) -> c.Done:
        self._require_no_document()
        self.model.set_clock(dt.datetime.combine(r.date, self.clock.now().time()))
        return c.Done()

    def _set_date_time(self, r: c.SetDateTime) -> c.Done:
        self._require_no_document()
        self.model.set_clock(r.when)
        return c.Done()

    # -- registers and the FN ---------------------------------------------------------------------

    def _last_document(self) -> c.LastDocument:
        number = self.fn.state.last_number
        if not number:
            return c.LastDocument(0, 0, 0, None, 0)
        record = self.fn.record(number)
        return c.LastDocument(number, record.kind, record.total, record.when, record.fiscal_sign)

    def _read_last_document(self, r: c.ReadLastDocument) -> c.LastDocument:
        return self._last_document()

    def _read_last_receipt(self, r: c.ReadLastReceipt) -> c.LastDocument:
        """Register 33h: the last receipt or correction receipt (zeros before the first), its
        type byte the 92h receipt type (unverified, see `c.ReadLastReceipt`)."""
        for number in range(self.fn.state.last_number, 0, -1):
            record = self.fn.record(number)
            if record.kind in (DocumentType.RECEIPT, DocumentType.CORRECTION_RECEIPT):
                kind = _receipt_type(record.operation, correction=record.correction)
                return c.LastDocument(number, kind, record.total, record.when, record.fiscal_sign)
        return c.LastDocument(0, 0, 0, None, 0)

    def _read_shift_state(self, r: c.ReadShiftState) -> c.ShiftState:
        """Register 12h: closed, open or expired, and when the shift opened (open) or the last
        one closed (closed; None before the first shift)."""
        s = self.fn.state
        if s.shift_open:
            state = c.SHIFT_EXPIRED if self.model.shift_expired else c.SHIFT_OPEN
            return c.ShiftState(state, s.shift_opened_at)
        for number in range(s.last_number, 0, -1):  # the close is the last document or near it
            record = self.fn.record(number)
            if record.kind == DocumentType.SHIFT_CLOSE:
                return c.ShiftState(c.SHIFT_CLOSED, record.when)
        return c.ShiftState(c.SHIFT_CLOSED, None)

    def _read_register(self, r: c.ReadRegister) -> c.Answer:
        # A typed register decodes as its own class; with other parameters it lands here.
        readers: dict[int, Callable[[], c.Answer]] = {
            c.LAST_DOCUMENT_REGISTER: self._last_document,
            c.LAST_RECEIPT_REGISTER: lambda: self._read_last_receipt(c.ReadLastReceipt(0)),
            c.SHIFT_STATE_REGISTER: lambda: self._read_shift_state(c.ReadShiftState(0)),
        }
        if r.register in readers:
            return c.RegisterValue(readers[r.register]().encode_data())
        raise VendorRefusal(
            BAD_REGISTER,
            f"register {r.register:02X}h is not emulated; 12h (shift state), 33h (last receipt) "
            "and 34h (last document) are",
        )

    def _fn_shift(self, r: c.GetFnShift) -> c.FnShift:
        # The FN's 10h passed through (fact sheet fn-ffd-ofd.md §4.6): the open shift's last
        # receipt number, a closed shift's number of documents -- as the Shtrih personality's FF40.
        s = self.fn.state
        count = s.receipt_number if s.shift_open else s.shift_documents
        return c.FnShift(s.shift_open, s.shift_number & 0xFFFF, count & 0xFFFF)

    def _fn_ofd_status(self, r: c.GetFnOfdStatus) -> c.FnOfdStatus:
        return c.FnOfdStatus(*self.fn.exchange_status().answer_fields())  # the FN's 20h

    def _fn_status(self, r: c.GetFnStatus) -> c.FnStatus:
        """The FN's 30h answer passed through (unverified for ATOL: see `c.FnStatus`)."""
        status = self.fn.status()
        receipt = self.model.receipt is not None or self.correction is not None
        last = status.last_when.replace(second=0) if status.last_when else None
        return c.FnStatus(
            int(status.phase),
            0x04 if receipt else 0,  # current document: a receipt, or none
            bool(self.model.receipt and self.model.receipt.items),
            status.shift_open,
            int(status.warnings),
            last,
            status.serial,
            status.last_number,
        )

    def _fn_version(self, r: c.GetFnVersion) -> c.FnVersion:
        """The FN's 33h answer passed through (unverified for ATOL: see `c.FnVersion`)."""
        return c.FnVersion(self.fn.state.config.version[:16], False)  # False: like an МГМ

    def _fn_serial(self, r: c.GetFnSerial) -> c.FnSerial:
        return c.FnSerial(self.fn.serial)

    def _fn_validity(self, r: c.GetFnValidity) -> c.FnValidity:
        s = self.fn.state
        left = s.config.max_registrations - s.registrations_done
        return c.FnValidity(s.expires, left, s.registrations_done)

    def _fn_document_size(self, r: c.GetFnDocumentSize) -> c.FnDocumentSize:
        self.reading = None
        stlv = self.fn.record(r.number).tlv  # tag(2) length(2) value: the document as an STLV
        value = stlv[4:]
        self.reading = (value, 0)
        return c.FnDocumentSize(int.from_bytes(stlv[:2], "little"), len(value))

    def _fn_document_data(self, r: c.GetFnDocumentData) -> c.FnDocumentData:
        """The document's next first-level tag, whole (tag, length, value), then DAh.

        One tag per answer, as the FN's own 46h gives them (fact sheet fn-ffd-ofd.md §4.4) and
        as Unact/kkm ``cheque_data`` reads them: it parses each answer as one TLV, so pieces
        cut across tags would read as garbage tags there.  A host that joins the answers up to
        45h's size (the kkt driver) reads the same bytes either way, in more answers (24 for
        ``kkt bench``'s three-item receipt, where 240-byte pieces took 3).  The driver reads a
        document whole only to settle a failure or when asked: a sale's fiscal data come from
        91h 34h and A4h 10h (tests/kkt/test_atol_device.py counts a sale's exchanges).
        """
        if self.reading is None or self.reading[1] >= len(self.reading[0]):
            self.reading = None
            raise FnError(FnCode.NO_DATA, "no document is being read: select one with A4h 45h")
        value, offset = self.reading
        length = int.from_bytes(value[offset + 2 : offset + 4], "little")
        block = value[offset : offset + 4 + length]
        self.reading = (value, offset + len(block))
        return c.FnDocumentData(block)

    # -- for the control channel ------------------------------------------------------------------

    def power_loss(self) -> None:
        """The open receipt, its payments, tags not yet used and an interrupted print are gone,
        and the register comes back in mode 0 (the FN keeps what it formed)."""
        super().power_loss()
        self._forget_document()
        self.mode = Mode.SELECT
        self.pending_tags = []
        self.reading = None

    def mode_text(self) -> dict[str, int]:
        return {"mode": int(self.mode), "submode": 0}


def _without_tax_system(tags: TlvList) -> tuple[TlvList, int]:
    """The tags without a 1055 (tax system) written with E8h, and its value (0 when none): the
    model adds 1055 itself, checked against the registration."""
    tax_system = 0
    kept: TlvList = []
    for tag, value in tags:
        if tag == 1055 and isinstance(value, int):
            tax_system = value
        else:
            kept.append((tag, value))
    return kept, tax_system


def _receipt_type(operation: int, *, correction: bool) -> int:
    """The 92h receipt type of an FN receipt: its operation (tag 1054: 1 sale, 2 sale return,
    3 buy, 4 buy return), a correction's operation among 7..10."""
    if correction:
        by_operation = {op: int(kind) for kind, op in CORRECTION_OPERATIONS.items()}
    else:
        by_operation = {RECEIPT_OPERATION[model]: atol for model, atol in ATOL_RECEIPT_TYPE.items()}
    return by_operation.get(operation, 0)


def _payments(paid: dict[int, int]) -> Payments:
    return Payments(
        cash=paid.get(PaymentType.CASH, 0),
        electronic=paid.get(PaymentType.ELECTRONIC, 0),
        prepaid=paid.get(PaymentType.PREPAID, 0),
        credit=paid.get(PaymentType.CREDIT, 0),
        other=paid.get(PaymentType.OTHER, 0),  # "other" is counter-provision (1217)
    )
