"""An emulated Shtrih-M register: the Shtrih personality over the vendor-neutral register model.

`ShtrihRegister.execute` takes one request payload (code and parameters, as the link delivers it)
and returns the answer payload.  It never raises: a malformed command is answered 33h, an unknown
one 37h, a refusal with its Shtrih code (`SHTRIH_CODES`) -- FN result codes 01h–3Fh pass through
unchanged, as on real FN-era registers -- and an internal failure 39h (logged), so no client can
crash the device.

What a register does whatever its protocol (shifts, the receipt, closing it into the FN, cash,
reports, printing) lives in `emulator.register.RegisterModel`; this module decodes Shtrih's
commands, checks its passwords, computes its modes and keeps what only Shtrih has: the
"begin document" commands (FF41/FF42/FF35/FF37) with their tags, the two-step date setting
(22h/23h), the FF3A/FF3B document reader and the tables.

Modes and submodes are computed from the models, as 10h/11h report them: 4 shift closed, 2 shift
open, 3 shift over 24 h, 8 document open with the receipt type in the high nibble; submode 1 no
paper, 2 paper ran out mid-print, 3 paper back and waiting for B0h.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from kkt.protocols.errors import CodecError, FrameError
from kkt.protocols.ffd import Payments, TlvError, TlvList, decode_tlv
from kkt.protocols.ffd.marking import ItemCheck, LocalCheck
from kkt.protocols.shtrih import classic, fn
from kkt.protocols.shtrih import marking as mk
from kkt.protocols.shtrih import message as m
from kkt.protocols.shtrih.frame import command_code
from kkt.protocols.shtrih.models import M01F, ShtrihModel, model_named
from kkt.protocols.shtrih.modes import EcrFlags, TaxRate

from ..fn import FnCode, FnError, VatSums
from ..personality import Personality, VendorRefusal
from ..receipt import (
    NO_VAT,
    VAT0,
    VAT10,
    VAT10_110,
    VAT20,
    VAT20_120,
    Item,
    ReceiptBuilder,
    item_tax,
)
from ..register import ADMIN, OPERATOR, SYSADMIN, Reason, Refusal, RegisterModel
from .ofd import MAX_BLOCK, OfdBuffer
from .tables import BAD_FIELD, READ_ONLY, read_table, write_table

log = logging.getLogger(__name__)

# FF46 tax bitmask -> tag 1199 code
_TAX_BIT = {
    TaxRate.VAT20: VAT20,
    TaxRate.VAT10: VAT10,
    TaxRate.VAT0: VAT0,
    TaxRate.NO_VAT: NO_VAT,
    TaxRate.VAT20_120: VAT20_120,
    TaxRate.VAT10_110: VAT10_110,
}
# Classic sales name a tax group 1..4 (table 6 rows); this register has VAT 20, 10, 0, none.
_TAX_GROUP = {0: NO_VAT, 1: VAT20, 2: VAT10, 3: VAT0, 4: NO_VAT}
_RECEIPT_FOR_OPERATION = {1: 0, 3: 1, 2: 2, 4: 3}
# The classic item commands and the receipt type each opens (0 sale, 1 buy, 2/3 their returns).
_CLASSIC_RECEIPT = {
    classic.Sale: 0,
    classic.Buy: 1,
    classic.SaleReturn: 2,
    classic.BuyReturn: 3,
}
CORRECTION = fn.MakeCorrectionReceipt.CODE  # FF35 begins the correction FF36 or FF4A forms
MODEL_KEY = "shtrih_model"  # the settings' extra key naming the model (`models.MODELS`)
EXCHANGE_KEY = "shtrih_exchange"  # port -> [baud code, byte-timeout code], as 14h set them
# Until 14h sets them: 115200 baud (code 6, the newer models' default) and the documented 50 ms
# byte timeout (fact sheet §1.1).  Codes 7-9 are model-dependent; this one stops at 6.
DEFAULT_EXCHANGE = (6, 50)
MAX_BAUD_CODE = 6
# 11h's identity fields.  A live ШТРИХ-М-02Ф answers firmware "C1", build 62922 of 10.01.2025,
# and for the fiscal memory an FN-era register no longer has "NA", build 0, 01.01.2016 (frames
# quoted in a public test suite found through the code index; its repository is not named
# there).  pyshtrih parses both dates as dates (``handlers/functions.handle_date``): zeros there
# break it, so the register answers these rather than zeros.
FIRMWARE = ("C1", 62922, dt.date(2025, 1, 10))
FISCAL_MEMORY = ("NA", 0, dt.date(2016, 1, 1))

# Each refusal of the register model as the Shtrih error code it has always been answered with.
SHTRIH_CODES: dict[Reason, int] = {
    Reason.SHIFT_OPEN: 0x3C,
    Reason.SHIFT_CLOSED: 0x3D,
    Reason.SHIFT_EXPIRED: 0x4E,
    Reason.RECEIPT_OPEN: 0x4A,
    Reason.NO_RECEIPT: 0x55,
    Reason.WRONG_RECEIPT_TYPE: 0x49,
    Reason.EMPTY_RECEIPT: 0x33,
    Reason.NEGATIVE_TOTAL: 0x5F,
    Reason.PAYMENT_SHORT: 0x45,
    Reason.NON_CASH_OVERPAID: 0x33,
    Reason.NEEDS_CONTACT: 0x33,
    Reason.NO_CASH: 0x46,
    Reason.BAD_PARAMETER: 0x33,
    Reason.NOT_SUPPORTED: 0x37,
    Reason.PRINT_PENDING: 0x58,
    Reason.NO_PAPER: 0x6B,
    Reason.WRONG_PASSWORD: 0x4F,
    Reason.NO_DOCUMENT: 0x02,
    Reason.READ_ONLY: 0x7A,
    Reason.DATE_MISMATCH: 0x7C,
    # The FN's own result code, passed through as all 01h-3Fh are: 19h "attribute does not match
    # the registration (excise goods, tax system)" (fn-ffd-ofd.md §4, FN result codes).
    Reason.TAX_SYSTEM: 0x19,
}
_TABLE_REASONS = {READ_ONLY: Reason.READ_ONLY, BAD_FIELD: Reason.BAD_PARAMETER}

# The FN's marking result codes as Shtrikh answers them (shtrih-protocol.md §3: A0h-A5h "FN
# marking: forbidden / wrong B-group sequence / temporarily blocked / check table full / TLV lacks
# required tags / code not checked before"); the other FN codes pass through unchanged.
MARKING_ERRORS = {
    FnCode.MARKING_OFF: 0xA0,
    FnCode.MARKING_SEQUENCE: 0xA1,
    FnCode.MARKING_STORE_FULL: 0xA2,
    FnCode.MARKING_TABLE_FULL: 0xA3,
    FnCode.MARKING_DATA_MISSING: 0xA4,
    FnCode.MARKING_NOT_CHECKED: 0xA5,
}
# FF67's Data Matrix type by the code's 2100 type (SH117: 0 КМ88, 1 symmetric, 2 tobacco, 3 КМ44,
# FFh GS1 without marking); our reading -- no source pairs the two enums.
_DATA_MATRIX_TYPE = {
    2: mk.DataMatrixType.KM_88,
    3: mk.DataMatrixType.KM_44,
    4: mk.DataMatrixType.KM_44,
    5: mk.DataMatrixType.TOBACCO,
}
ITEM_CODE_GS1 = 0x444D  # FF67's "first 2 bytes of 1162": the FFD 1.05 product-code kind "DM"
MARK_BLOCK = 128  # FF72 hands out at most 128 bytes a block (SH117)

# Commands that write nothing to disk, cheap enough to answer on the shells' event loop: queries
# (statuses, registers, tables, the FN's state and archive) and the steps of a receipt that live
# in memory until the closing command (open, items, their tags, subtotal, cancel).
QUICK_CODES = frozenset(
    {0x10, 0x11, 0x1A, 0x1B, 0x1F, 0xFC}
    | {0xFF01, 0xFF02, 0xFF03, 0xFF04, 0xFF0A, 0xFF31, 0xFF39, 0xFF3C, 0xFF3F, 0xFF40}
    | {0x88, 0x89, 0x8D, 0xFF0C, 0xFF46, 0xFF4D}
)


def _percent_of(amount: int, hundredths: int) -> int:
    """``hundredths`` / 100 % of ``amount`` kopecks, rounded half up (away from zero)."""
    share = Decimal(amount) * hundredths / 10_000
    return int(share.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _set_amount(item: Item, amount: int) -> None:
    """A new amount (tag 1043) for ``item``: its price "with discounts" (1079) and tax follow."""
    if amount < 0:
        raise Refusal(Reason.BAD_PARAMETER, f"the discount is over the item's {item.amount}")
    item.amount = amount
    item.tax = item_tax(amount, item.vat)
    if item.quantity:
        price = Decimal(amount) / item.quantity
        item.price = int(price.quantize(Decimal(1), rounding=ROUND_HALF_UP))


class ShtrihRegister(Personality):
    """One emulated register speaking Shtrih.  Not thread-safe: the shells serialise commands."""

    REFUSALS = SHTRIH_CODES
    BAD_PARAMETER = 0x33
    PARAMETER_ERRORS = (CodecError, TlvError)
    INTERNAL = 0x39

    def __init__(self, model: RegisterModel) -> None:
        super().__init__(model)
        self.pending: tuple[int, TlvList] | None = None  # FF41/FF42/FF35/FF37 begun: (code, tags)
        self.pending_date: dt.date | None = None  # 22h given, 23h not yet
        self.tlv_reading: tuple[bytes, int] | None = None  # FF3A began: (document value, offset)
        self.ofd_buffer = OfdBuffer()  # FF30-FF33: the exchange through the driver
        self.shtrih_model: ShtrihModel = M01F
        self.set_model(str(model.settings.extra.get(MODEL_KEY, M01F.name)))
        self._handlers: dict[type[m.Request[Any]], Callable[[Any], m.Answer]] = {
            classic.GetShortStatus: self._short_status,
            classic.GetLongStatus: self._long_status,
            classic.Beep: self._beep,
            classic.SetExchangeParams: self._set_exchange,
            classic.ReadExchangeParams: self._read_exchange,
            classic.PrintString: self._print_string,
            classic.PrintBoldString: self._print_bold_string,
            classic.ReadCashRegister: self._cash_register,
            classic.ReadOperatingRegister: self._operating_register,
            classic.WriteTable: self._write_table,
            classic.ReadTable: self._read_table,
            classic.SetTime: self._set_time,
            classic.SetDate: self._set_date,
            classic.ConfirmDate: self._confirm_date,
            classic.Cut: self._cut,
            classic.OpenDrawer: self._open_drawer,
            classic.Feed: self._feed,
            classic.ContinuePrint: self._continue_print,
            classic.XReport: self._x_report,
            classic.ZReport: self._z_report,
            classic.OpenShift: self._open_shift,
            classic.CashIn: self._cash,
            classic.CashOut: self._cash,
            classic.Sale: self._classic_item,
            classic.Buy: self._classic_item,
            classic.SaleReturn: self._classic_item,
            classic.BuyReturn: self._classic_item,
            classic.Storno: self._storno,
            classic.Discount: self._adjust_last_item,
            classic.Surcharge: self._adjust_last_item,
            classic.RepeatDocument: self._repeat_document,
            classic.CloseReceipt: self._classic_close,
            classic.CancelReceipt: self._cancel_receipt,
            classic.Subtotal: self._subtotal,
            classic.OpenReceipt: self._open_receipt,
            classic.GetDeviceType: self._device_type,
            fn.GetFnStatus: self._fn_status,
            fn.GetFnSerial: self._fn_serial,
            fn.GetFnExpiry: self._fn_expiry,
            fn.GetFnVersion: self._fn_version,
            fn.CancelFnDocument: self._cancel_fn_document,
            fn.FindDocument: self._find_document,
            fn.RequestDocumentTlv: self._request_document_tlv,
            fn.ReadDocumentTlv: self._read_document_tlv,
            fn.BeginOpenShift: lambda r: self._begin(r, fn.FnOpenShift.CODE),
            fn.FnOpenShift: self._fn_open_shift,
            fn.BeginCloseShift: lambda r: self._begin(r, fn.FnCloseShift.CODE),
            fn.FnCloseShift: self._fn_close_shift,
            fn.SendTlv: self._send_tlv,
            fn.SendOperationTlv: self._send_operation_tlv,
            fn.BeginCorrectionReceipt: lambda r: self._begin(r, fn.MakeCorrectionReceipt.CODE),
            fn.MakeCorrectionReceipt: self._correction_receipt,
            fn.MakeCorrectionReceiptV2: self._correction_receipt_v2,
            fn.BeginStateReport: lambda r: self._begin(r, fn.MakeStateReport.CODE),
            fn.MakeStateReport: self._state_report,
            fn.GetOfdExchangeStatus: self._ofd_status,
            fn.GetUnconfirmedCount: self._unconfirmed,
            fn.GetBufferStatus: self._buffer_status,
            fn.ReadBufferBlock: self._read_buffer,
            fn.StartBufferWrite: self._start_buffer_write,
            fn.WriteBufferBlock: self._write_buffer,
            fn.GetOfdTicket: self._ofd_ticket,
            fn.GetShiftParams: self._shift_params,
            fn.CloseReceiptV2: self._close_receipt_v2,
            fn.OperationV2: self._operation_v2,
            **self._marking_handlers(),
        }
        self.mark_export: tuple[int, int, int] | None = None  # FF71/FF72: (number, size, offset)

    def set_model(self, name: str) -> None:
        """Be the Shtrih model called ``name`` (`models.MODELS`): its FCh identity, its line
        width.  Kept in the state directory; raises ValueError for a model not known."""
        model = model_named(name)
        self.shtrih_model = model
        self.printer.width = model.line_width
        if self.settings.extra.get(MODEL_KEY, M01F.name) != name:
            self.settings.extra[MODEL_KEY] = name
            self.settings.save()

    # -- the vendor's half of `Personality.execute` ---------------------------------------------

    _last_answer = b""  # the answer to the last command, for an in-process replay

    def execute(self, payload: bytes) -> bytes:
        if not payload and self._last_answer:
            # In process, the link's ENQ replay (`kkt.protocols.shtrih.host.HELD`): the last
            # answer again, as a device holding it pending would send it.
            return self._last_answer
        try:
            command_code(payload)
        except FrameError:
            return b"\xff\x01" if payload[:1] == b"\xff" else payload[:1] + b"\x37"
        self._last_answer = super().execute(payload)
        return self._last_answer

    def code_of(self, payload: bytes) -> int:
        return command_code(payload)

    def decode(self, payload: bytes) -> m.Request[Any]:
        try:
            return m.decode_request(payload)
        except m.UnknownCommand:
            raise VendorRefusal(0x37, "command not supported by this emulator") from None
        except CodecError as exc:
            raise VendorRefusal(0x33, str(exc)) from None

    def handle(self, request: m.Request[Any]) -> bytes:
        return m.encode_answer(request.CODE, self._handlers[type(request)](request))

    def error_reply(self, code: int, error: int) -> bytes:
        return m.encode_error(code, error)

    def fn_code(self, error: FnError) -> int:
        return MARKING_ERRORS.get(error.code, int(error.code))

    def paper_code(self) -> int:
        return 0x6B

    def quick(self, payload: bytes) -> bool:
        try:
            return command_code(payload) in QUICK_CODES
        except FrameError:
            return True  # refused at once

    # -- the model's receipt and operator ---------------------------------------------------------

    @property
    def receipt(self) -> ReceiptBuilder | None:
        return self.model.receipt

    @property
    def operator(self) -> int:
        return self.model.operator

    # -- state helpers ----------------------------------------------------------------------------

    def _auth(self, request: Any, level: int) -> int:
        """Check the password; remember and return the operator number (1..30)."""
        password = request.password
        for number in range(30, 0, -1):
            if self.settings.password(number) == password:
                if number < level and not (level == ADMIN and number == SYSADMIN):
                    raise Refusal(
                        Reason.WRONG_PASSWORD, "this command needs the administrator's password"
                    )
                self.model.operator = number
                return number
        raise Refusal(Reason.WRONG_PASSWORD, "wrong password")

    def _mode(self) -> int:
        if self.pending_date is not None:
            return 6
        if self.model.receipt is not None:
            return 8 | (self.model.receipt.receipt_type << 4)
        if not self.model.shift_open:
            return 4
        return 3 if self.model.shift_expired else 2

    def _submode(self) -> int:
        if self.model.pending_print:
            return 3 if self.printer.ready else 2
        return 0 if self.printer.ready or not self.printer.present else 1

    def _flags(self) -> int:
        flags = EcrFlags(0)
        if self.printer.present and self.printer.paper:
            flags |= EcrFlags.RECEIPT_ROLL | EcrFlags.RECEIPT_OPTICAL_SENSOR
        if self.printer.present and self.printer.cover_open:
            flags |= EcrFlags.COVER_OPEN
        return int(flags)

    # -- status and identity ----------------------------------------------------------------------

    def _short_status(self, r: classic.GetShortStatus) -> classic.ShortStatus:
        op = self._auth(r, OPERATOR)
        items = len(self.receipt.items) if self.receipt else 0
        return classic.ShortStatus(
            operator=op,
            flags=self._flags(),
            mode=self._mode(),
            submode=self._submode(),
            operations_low=items & 0xFF,
            battery_voltage=0x9E,
            supply_voltage=0xA3,
            fp_error=0,
            eklz_error=0,
            operations_high=items >> 8,
            print_head_temperature=30,
            previous_mode=0,
            key_update_status=0,
            last_print_result=5 if self.model.pending_print else 0,
        )

    def _long_status(self, r: classic.GetLongStatus) -> classic.LongStatus:
        op = self._auth(r, OPERATOR)
        now = self.clock.now()
        s = self.fn.state
        inn = int(s.registration.inn) if s.registration else 0
        last_closed = s.shift_number - (1 if s.shift_open else 0)
        return classic.LongStatus(
            operator=op,
            firmware_version=FIRMWARE[0],
            firmware_build=FIRMWARE[1],
            firmware_date=FIRMWARE[2],
            number_in_hall=1,
            document_number=self.model.document_number() & 0xFFFF,
            flags=self._flags(),
            mode=self._mode(),
            submode=self._submode(),
            port=0,
            fp_version=FISCAL_MEMORY[0],
            fp_build=FISCAL_MEMORY[1],
            fp_date=FISCAL_MEMORY[2],
            date=now.date(),
            time=now.time(),
            fp_flags=0,
            serial_low=int(self.settings.serial) & 0xFFFFFFFF,
            last_closed_shift=max(0, last_closed),
            free_fp_records=0,
            registrations=s.registrations_done,
            registrations_left=s.config.max_registrations - s.registrations_done,
            inn=inn,
            extra=b"",
        )

    def _device_type(self, r: classic.GetDeviceType) -> classic.DeviceType:
        # protocol 1.14, as 1.17's table and a live ШТРИХ-М-02Ф give it (`models`)
        model = self.shtrih_model
        return classic.DeviceType(0, 0, 1, 14, model.number, 0, model.name)

    def _set_exchange(self, r: classic.SetExchangeParams) -> classic.Empty:
        """Kept per port and read back by 15h; the emulator's pty and TCP links run at any speed,
        as a USB virtual COM port does, so nothing else changes."""
        self._auth(r, SYSADMIN)
        if r.baud_code > MAX_BAUD_CODE or r.port > 128:
            raise Refusal(Reason.BAD_PARAMETER, f"baud code {r.baud_code} or port {r.port}")
        kept = dict(self.settings.extra.get(EXCHANGE_KEY, {}))
        kept[str(r.port)] = [r.baud_code, r.timeout_code]
        self.settings.extra[EXCHANGE_KEY] = kept
        self.settings.save()
        return classic.Empty()

    def _read_exchange(self, r: classic.ReadExchangeParams) -> classic.ExchangeParams:
        self._auth(r, SYSADMIN)
        if r.port > 128:
            raise Refusal(Reason.BAD_PARAMETER, f"no port {r.port}")
        baud, timeout = self.settings.extra.get(EXCHANGE_KEY, {}).get(str(r.port), DEFAULT_EXCHANGE)
        return classic.ExchangeParams(int(baud), int(timeout))

    def _beep(self, r: classic.Beep) -> classic.OperatorAnswer:
        return classic.OperatorAnswer(self._auth(r, OPERATOR))

    def _fn_status(self, r: fn.GetFnStatus) -> fn.FnStatus:
        self._auth(r, OPERATOR)
        status = self.fn.status()
        current = 0
        if self.receipt is not None:
            current = 0x04
        elif self.pending is not None:
            current = {
                fn.FnOpenShift.CODE: 0x02,
                fn.FnCloseShift.CODE: 0x08,
                fn.MakeCorrectionReceipt.CODE: 0x14,
                fn.MakeStateReport.CODE: 0x17,
            }[self.pending[0]]
        received = bool(self.pending and self.pending[1]) or bool(
            self.receipt and self.receipt.items
        )
        last = status.last_when.replace(second=0) if status.last_when else None
        return fn.FnStatus(
            int(status.phase),
            current,
            received,
            status.shift_open,
            int(status.warnings),
            last,
            status.serial,
            status.last_number,
        )

    def _fn_serial(self, r: fn.GetFnSerial) -> fn.FnSerial:
        self._auth(r, OPERATOR)
        return fn.FnSerial(self.fn.serial)

    def _fn_version(self, r: fn.GetFnVersion) -> fn.FnVersion:
        self._auth(r, OPERATOR)
        return fn.FnVersion(self.fn.state.config.version[:16], False)  # False: like an МГМ

    def _fn_expiry(self, r: fn.GetFnExpiry) -> fn.FnExpiry:
        self._auth(r, OPERATOR)
        s = self.fn.state
        return fn.FnExpiry(
            s.expires, s.config.max_registrations - s.registrations_done, s.registrations_done
        )

    def _find_document(self, r: fn.FindDocument) -> fn.FoundDocument:
        self._auth(r, OPERATOR)
        record = self.fn.record(r.number)
        confirmed = self.fn.confirmed_at(r.number) is not None
        when = record.when.replace(second=0)
        return fn.FoundDocument(
            record.kind, confirmed, when, record.number, record.fiscal_sign, record.data
        )

    def _request_document_tlv(self, r: fn.RequestDocumentTlv) -> fn.DocumentTlvHeader:
        self._auth(r, SYSADMIN)
        stlv = self.fn.record(r.number).tlv  # tag(2) length(2) value: the document as an STLV
        tag = int.from_bytes(stlv[:2], "little")
        value = stlv[4:]
        self.tlv_reading = (value, 0)
        return fn.DocumentTlvHeader(tag, len(value))

    def _read_document_tlv(self, r: fn.ReadDocumentTlv) -> fn.DocumentTlvBlock:
        """One top-level TLV of the document per call (a longer one in 240-byte pieces)."""
        self._auth(r, SYSADMIN)
        if self.tlv_reading is None or self.tlv_reading[1] >= len(self.tlv_reading[0]):
            self.tlv_reading = None
            raise FnError(FnCode.NO_DATA, "no document is being read: FF3A first")
        value, offset = self.tlv_reading
        size = 4 + int.from_bytes(value[offset + 2 : offset + 4], "little")
        block = value[offset : offset + min(size, 240)]
        self.tlv_reading = (value, offset + len(block))
        return fn.DocumentTlvBlock(block)

    def _ofd_status(self, r: fn.GetOfdExchangeStatus) -> fn.OfdExchangeStatus:
        self._auth(r, OPERATOR)
        return fn.OfdExchangeStatus(*self.fn.exchange_status().answer_fields())  # the FN's 20h

    def _unconfirmed(self, r: fn.GetUnconfirmedCount) -> fn.UnconfirmedCount:
        self._auth(r, OPERATOR)
        return fn.UnconfirmedCount(min(self.fn.unconfirmed(), 0xFFFF))  # the FN's 42h

    def _buffer_status(self, r: fn.GetBufferStatus) -> fn.BufferStatus:
        self._auth(r, SYSADMIN)
        return fn.BufferStatus(self.ofd_buffer.load(self.fn), MAX_BLOCK)

    def _read_buffer(self, r: fn.ReadBufferBlock) -> fn.BufferBlock:
        self._auth(r, SYSADMIN)
        return fn.BufferBlock(self.ofd_buffer.read(r.offset, r.count))

    def _start_buffer_write(self, r: fn.StartBufferWrite) -> fn.WriteStarted:
        self._auth(r, SYSADMIN)
        return fn.WriteStarted(self.ofd_buffer.start_write(r.size))

    def _write_buffer(self, r: fn.WriteBufferBlock) -> m.Answer:
        self._auth(r, SYSADMIN)
        self.ofd_buffer.write(self.fn, r.offset, r.data)
        return classic.Empty()

    def _ofd_ticket(self, r: fn.GetOfdTicket) -> fn.OfdTicket:
        self._auth(r, SYSADMIN)
        receipt = self.fn.ofd_receipt(r.number)  # the FN's 41h: 08h when there is none
        when = receipt.when.replace(second=0, microsecond=0)
        return fn.OfdTicket(when, receipt.archive_sign, receipt.fd)

    def _shift_params(self, r: fn.GetShiftParams) -> fn.ShiftParams:
        self._auth(r, OPERATOR)
        s = self.fn.state
        number = s.receipt_number if s.shift_open else s.shift_documents
        return fn.ShiftParams(s.shift_open, s.shift_number & 0xFFFF, number & 0xFFFF)

    # -- registers and tables ---------------------------------------------------------------------

    def _cash_register(self, r: classic.ReadCashRegister) -> classic.CashRegisterValue:
        op = self._auth(r, OPERATOR)
        shift = self.fn.state.shift_counters.operations
        values = {
            241: self.model.cash_in_drawer(),
            242: self.settings.shift_cash_in,
            243: self.settings.shift_cash_out,
            193: shift[0].cash,  # sale (приход)
            194: shift[2].cash,  # buy (расход)
            195: shift[1].cash,  # sale return
            196: shift[3].cash,  # buy return
        }
        return classic.CashRegisterValue(op, max(0, values.get(r.register, 0)))

    def _operating_register(
        self, r: classic.ReadOperatingRegister
    ) -> classic.OperatingRegisterValue:
        op = self._auth(r, OPERATOR)
        shift = self.fn.state.shift_counters.operations
        by_type = (shift[0].count, shift[2].count, shift[1].count, shift[3].count)
        values = {144 + i: n for i, n in enumerate(by_type)}
        values.update({148 + i: n for i, n in enumerate(by_type)})
        values[152] = self.model.document_number()
        return classic.OperatingRegisterValue(op, values.get(r.register, 0) & 0xFFFF)

    def _read_table(self, r: classic.ReadTable) -> classic.TableValue:
        self._auth(r, OPERATOR)
        value = read_table(self.model, r.table, r.row, r.field)
        if value is None:
            raise Refusal(
                Reason.BAD_PARAMETER,
                f"no field {r.table}/{r.row}/{r.field} in this register's tables",
            )
        return classic.TableValue(value)

    def _write_table(self, r: classic.WriteTable) -> classic.Empty:
        self._auth(r, SYSADMIN)
        error = write_table(self.model, r.table, r.row, r.field, r.value)
        if error:
            raise Refusal(
                _TABLE_REASONS.get(error, Reason.BAD_PARAMETER),
                f"table {r.table} field {r.field} cannot be written",
            )
        return classic.Empty()

    # -- clock ------------------------------------------------------------------------------------

    def _set_time(self, r: classic.SetTime) -> classic.Empty:
        self._auth(r, SYSADMIN)
        self.model.set_clock(dt.datetime.combine(self.clock.now().date(), r.time))
        return classic.Empty()

    def _set_date(self, r: classic.SetDate) -> classic.Empty:
        self._auth(r, SYSADMIN)
        self.pending_date = r.date
        return classic.Empty()

    def _confirm_date(self, r: classic.ConfirmDate) -> classic.Empty:
        self._auth(r, SYSADMIN)
        if self.pending_date is None or r.date != self.pending_date:
            self.pending_date = None
            raise Refusal(Reason.DATE_MISMATCH, "the date does not match the one set with 22h")
        self.pending_date = None
        self.model.set_clock(dt.datetime.combine(r.date, self.clock.now().time()))
        return classic.Empty()

    # -- printing ---------------------------------------------------------------------------------

    def _print_string(self, r: classic.PrintString) -> classic.OperatorAnswer:
        op = self._auth(r, OPERATOR)
        self.model.require_idle_printer()
        if r.flags & 0x02:
            self.model.print_lines([r.text[: self.shtrih_model.line_width]])
        return classic.OperatorAnswer(op)

    def _print_bold_string(self, r: classic.PrintBoldString) -> classic.OperatorAnswer:
        """Font 2 is double width: half the line's characters fit, the rest is cut."""
        op = self._auth(r, OPERATOR)
        self.model.require_idle_printer()
        if r.flags & 0x02:
            self.model.print_lines([r.text[: self.shtrih_model.bold_width]])
        return classic.OperatorAnswer(op)

    def _repeat_document(self, r: classic.RepeatDocument) -> classic.OperatorAnswer:
        op = self._auth(r, OPERATOR)
        self.printer.check()
        if not self.model.repeat_document():
            raise VendorRefusal(0x56, "no document to repeat")
        return classic.OperatorAnswer(op)

    def _cut(self, r: classic.Cut) -> classic.OperatorAnswer:
        op = self._auth(r, OPERATOR)
        self.model.cut(partial=bool(r.partial))
        return classic.OperatorAnswer(op)

    def _open_drawer(self, r: classic.OpenDrawer) -> classic.OperatorAnswer:
        """The drawer's pulse: nothing to keep (no drawer is wired to an emulator)."""
        return classic.OperatorAnswer(self._auth(r, OPERATOR))

    def _feed(self, r: classic.Feed) -> classic.OperatorAnswer:
        op = self._auth(r, OPERATOR)
        self.model.require_idle_printer()
        if r.flags & 0x02:
            self.model.print_lines([""] * r.lines)
        return classic.OperatorAnswer(op)

    def _continue_print(self, r: classic.ContinuePrint) -> classic.OperatorAnswer:
        op = self._auth(r, OPERATOR)
        self.model.continue_print()
        return classic.OperatorAnswer(op)

    # -- shifts -----------------------------------------------------------------------------------

    def _open_shift(self, r: classic.OpenShift) -> classic.OpenShiftAnswer:
        op = self._auth(r, OPERATOR)
        self.model.open_shift([])
        return classic.OpenShiftAnswer(op)

    def _z_report(self, r: classic.ZReport) -> classic.OperatorAnswer:
        op = self._auth(r, ADMIN)
        self.model.close_shift([])
        return classic.OperatorAnswer(op)

    def _x_report(self, r: classic.XReport) -> classic.OperatorAnswer:
        op = self._auth(r, ADMIN)
        self.model.x_report()
        return classic.OperatorAnswer(op)

    def _begin(self, r: Any, code: int) -> classic.Empty:
        self._auth(r, OPERATOR)
        self.model.require_no_receipt()
        self.pending = (code, [])
        return classic.Empty()

    def _take_pending(self, code: int) -> TlvList:
        if self.pending is None or self.pending[0] != code:
            return []  # the "begin" command is optional
        tags = self.pending[1]
        self.pending = None
        return tags

    def _fn_open_shift(self, r: fn.FnOpenShift) -> fn.ShiftOpened:
        self._auth(r, OPERATOR)
        formed = self.model.open_shift(self._take_pending(r.CODE))
        return fn.ShiftOpened(formed.shift_number, formed.number, formed.fiscal_sign)

    def _fn_close_shift(self, r: fn.FnCloseShift) -> fn.ShiftClosed:
        self._auth(r, OPERATOR)
        formed = self.model.close_shift(self._take_pending(r.CODE))
        return fn.ShiftClosed(formed.shift_number, formed.number, formed.fiscal_sign, None)

    def _cancel_fn_document(self, r: fn.CancelFnDocument) -> classic.Empty:
        self._auth(r, OPERATOR)
        self.pending = None
        self.model.receipt = None
        return classic.Empty()

    # -- TLV --------------------------------------------------------------------------------------

    def _send_tlv(self, r: fn.SendTlv) -> classic.Empty:
        self._auth(r, OPERATOR)
        tags = decode_tlv(r.tlv)
        if self.model.receipt is not None:
            self.model.add_receipt_tags(tags)
        elif self.pending is not None:
            self.pending[1].extend(tags)
        else:
            raise Refusal(
                Reason.NO_DOCUMENT, "no document is being formed: open a receipt or begin a report"
            )
        return classic.Empty()

    def _send_operation_tlv(self, r: fn.SendOperationTlv) -> classic.Empty:
        self._auth(r, OPERATOR)
        self.model.require_receipt()
        self.model.add_item_tags(decode_tlv(r.tlv))
        return classic.Empty()

    # -- receipts ---------------------------------------------------------------------------------

    def _open_receipt(self, r: classic.OpenReceipt) -> classic.OperatorAnswer:
        op = self._auth(r, OPERATOR)
        self.model.open_receipt(int(r.receipt_type))
        return classic.OperatorAnswer(op)

    def _operation_v2(self, r: fn.OperationV2) -> classic.Empty:
        self._auth(r, OPERATOR)
        self.printer.check()
        receipt = self.model.receipt_for(_RECEIPT_FOR_OPERATION[int(r.operation)])
        computed = int((r.quantity * r.price).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        amount = computed if r.amount is None else r.amount
        if abs(amount - computed) > 1:
            raise Refusal(
                Reason.BAD_PARAMETER, f"amount {amount} differs from price x quantity = {computed}"
            )
        bits = [bit for bit in _TAX_BIT if bit & r.tax_rate]
        if len(bits) != 1:
            raise Refusal(Reason.BAD_PARAMETER, "FF46 needs exactly one tax-rate bit")
        vat = _TAX_BIT[bits[0]]
        tax = item_tax(amount, vat) if r.tax_amount is None else r.tax_amount
        name = r.name[2:] if r.name.startswith("//") else r.name
        item = Item(
            name,
            r.price,
            r.quantity,
            amount,
            vat,
            tax,
            r.payment_method,
            r.payment_subject,
            r.department,
        )
        receipt.items.append(self.model.take_mark(item))  # FF67 bound a code to it: marked
        return classic.Empty()

    def _classic_item(self, r: Any) -> classic.OperatorAnswer:
        op = self._auth(r, OPERATOR)
        self.printer.check()
        receipt = self.model.receipt_for(_CLASSIC_RECEIPT[type(r)])
        amount = int((r.quantity * r.price).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        vat = _TAX_GROUP.get(r.taxes[0], NO_VAT)
        receipt.items.append(
            Item(
                # the name as the register prints it: its line, the rest cut
                r.text[: self.shtrih_model.line_width],
                r.price,
                r.quantity,
                amount,
                vat,
                item_tax(amount, vat),
                department=r.department,
            )
        )
        return classic.OperatorAnswer(op)

    def _storno(self, r: classic.Storno) -> classic.OperatorAnswer:
        """Take back the last item of the same quantity, price and department."""
        op = self._auth(r, OPERATOR)
        receipt = self.model.require_receipt()
        for index in range(len(receipt.items) - 1, -1, -1):
            item = receipt.items[index]
            if (item.quantity, item.price, item.department) == (r.quantity, r.price, r.department):
                del receipt.items[index]
                return classic.OperatorAnswer(op)
        raise Refusal(
            Reason.BAD_PARAMETER, "no item of this quantity, price and department to take back"
        )

    def _adjust_last_item(self, r: classic.Discount | classic.Surcharge) -> classic.OperatorAnswer:
        """86h/87h change the last item's amount (tag 1043); its price (1079, "with discounts")
        and tax follow, as the FFD has no item discount of its own."""
        op = self._auth(r, OPERATOR)
        receipt = self.model.require_receipt()
        if not receipt.items:
            raise Refusal(Reason.BAD_PARAMETER, "a discount or surcharge follows an item")
        item = receipt.items[-1]
        amount = item.amount + (r.amount if isinstance(r, classic.Surcharge) else -r.amount)
        if amount < 0:
            raise Refusal(
                Reason.BAD_PARAMETER, f"a discount of {r.amount} is over the item's {item.amount}"
            )
        _set_amount(item, amount)
        return classic.OperatorAnswer(op)

    def _subtotal(self, r: classic.Subtotal) -> classic.SubtotalAnswer:
        op = self._auth(r, OPERATOR)
        return classic.SubtotalAnswer(op, self.model.subtotal())

    def _cancel_receipt(self, r: classic.CancelReceipt) -> classic.OperatorAnswer:
        op = self._auth(r, OPERATOR)
        self.model.cancel_receipt()
        return classic.OperatorAnswer(op)

    def _close_receipt_v2(self, r: fn.CloseReceiptV2) -> fn.ReceiptClosed:
        self._auth(r, OPERATOR)
        p = r.payments
        payments = Payments(
            cash=p[0], electronic=sum(p[1:13]), prepaid=p[13], credit=p[14], other=p[15]
        )
        taxes = VatSums(*r.taxes) if any(r.taxes) else None
        closed = self.model.close_receipt(payments, r.rounding, taxes, int(r.tax_system))
        # The answer's long form (LEN 21: javapos ``FSCloseReceipt.decode``) with the document's
        # DATE_TIME, to the minute as the FN keeps it: a host takes the receipt's fiscal data
        # from this answer instead of reading the document back.
        formed = closed.formed
        return fn.ReceiptClosed(
            closed.change,
            formed.number,
            formed.fiscal_sign,
            formed.when.replace(second=0, microsecond=0),
        )

    def _classic_close(self, r: classic.CloseReceipt) -> classic.CloseReceiptAnswer:
        """85h; its discount (hundredths of a percent, negative: a surcharge) is spread over the
        items, as the FFD has no receipt discount of its own -- and taken back if the closing is
        refused, so the receipt stays as it was."""
        op = self._auth(r, OPERATOR)
        receipt = self.model.require_receipt()
        if not -9999 <= r.discount <= 9999:
            raise Refusal(Reason.BAD_PARAMETER, "a discount is 0..99.99 % (-99.99 % surcharge)")
        before = [(item.amount, item.price, item.tax) for item in receipt.items]
        payments = Payments(cash=r.payments[0], electronic=sum(r.payments[1:]))
        try:
            if r.discount:
                self._spread_discount(receipt.items, r.discount)
            closed = self.model.close_receipt(payments)
        except BaseException:
            for item, (amount, price, tax) in zip(receipt.items, before, strict=True):
                item.amount, item.price, item.tax = amount, price, tax
            raise
        return classic.CloseReceiptAnswer(op, closed.change, "")

    @staticmethod
    def _spread_discount(items: list[Item], hundredths: int) -> None:
        """Take ``hundredths`` % of the total off the items in proportion, so the receipt's
        discount is the total's, rounded half up.  Each item's share is the rounded share of the
        running total less the one before it: the shares add up to the whole, and each lies
        within a kopeck of the item's exact share -- never over its amount, never of the other
        sign (rounding each item alone and giving the last what is left can push the last one
        below zero, or raise it under a discount)."""
        running = 0
        given = 0
        for item in items:
            running += item.amount
            share = _percent_of(running, hundredths) - given
            given += share
            _set_amount(item, item.amount - share)

    # -- corrections and reports ------------------------------------------------------------------

    def _correction_receipt(self, r: fn.MakeCorrectionReceipt) -> fn.CorrectionReceiptMade:
        self._auth(r, OPERATOR)
        # The checks come before the begun document's tags are taken: a refusal keeps them.
        self.model.require_no_receipt()
        self.model.require_shift_for_sale()
        self.printer.check()
        formed = self.model.correction(int(r.operation), r.total, self._take_pending(r.CODE))
        return fn.CorrectionReceiptMade(
            formed.receipt_number, formed.number, formed.fiscal_sign, None
        )

    def _correction_receipt_v2(self, r: fn.MakeCorrectionReceiptV2) -> fn.CorrectionReceiptMade:
        """FF4A: FF36 with the payments by kind and the tax system (the tax sums are the
        host's; this register forms the correction's as FF36 does: all without VAT)."""
        self._auth(r, OPERATOR)
        if r.kind not in (0, 1):
            raise Refusal(
                Reason.BAD_PARAMETER,
                f"correction kind {r.kind}: 0 (own initiative) or 1 (by order), tag 1173",
            )
        self.model.require_no_receipt()
        self.model.require_shift_for_sale()
        self.printer.check()
        cash, electronic, prepaid, credit, other = r.payments
        paid = Payments(cash, electronic, prepaid, credit, other)
        # FF35's tags are taken only once the model took the correction: a refusal keeps them.
        pending = self.pending[1] if self.pending and self.pending[0] == CORRECTION else []
        tags = [(tag, value) for tag, value in pending if tag != 1173]
        formed = self.model.correction(
            int(r.operation), r.total, [(1173, r.kind), *tags], r.tax_system, paid
        )
        self._take_pending(CORRECTION)
        return fn.CorrectionReceiptMade(
            formed.receipt_number, formed.number, formed.fiscal_sign, None
        )

    def _state_report(self, r: fn.MakeStateReport) -> fn.StateReport:
        self._auth(r, OPERATOR)
        self.model.require_no_receipt()
        self.printer.check()
        formed = self.model.state_report(self._take_pending(r.CODE))
        queue = self.fn.ofd_queue()
        first = queue.first_when.date() if queue.first_when else None
        return fn.StateReport(formed.number, formed.fiscal_sign, queue.unsent, first, None)

    # -- cash -------------------------------------------------------------------------------------

    def _cash(self, r: classic.CashIn | classic.CashOut) -> classic.CashOperationAnswer:
        op = self._auth(r, OPERATOR)
        (self.model.cash_in if isinstance(r, classic.CashIn) else self.model.cash_out)(r.amount)
        return classic.CashOperationAnswer(op, self.model.document_number() & 0xFFFF)

    # -- marking codes (FF61, FF67-FF73) ----------------------------------------------------------
    #
    # The register's one-command check and its FN's marking state (`RegisterModel.check_mark`,
    # `kkt.emulator.fn.marking`); the OISM it asks is the emulated one (`RegisterModel.oism`).

    def _marking_handlers(self) -> dict[type[m.Request[Any]], Callable[[Any], m.Answer]]:
        return {
            mk.CheckMarkCode: self._check_mark,
            mk.BindMarkCode: self._bind_mark,
            mk.DecideMarkCode: self._decide_mark,
            mk.GetMarkingStatus: self._marking_status,
            mk.GetNotificationStatus: self._notification_status,
            mk.StartNotificationExport: self._start_notification_export,
            mk.ReadNotificationBlock: self._read_notification_block,
            mk.ConfirmNotification: self._confirm_notification,
        }

    def _check_mark(self, r: mk.CheckMarkCode) -> mk.MarkCheckResult:
        """FF61: B1h, then (unless autonomous) B5h, the OISM, B6h; the code waits for FF69."""
        self._auth(r, OPERATOR)
        extra = dict(decode_tlv(r.tlv)) if r.tlv else {}
        quantity = extra.get(1023)
        measure = extra.get(2108)
        check = self.model.check_mark(
            r.code,
            int(r.planned_status),
            quantity if isinstance(quantity, Decimal) else None,
            measure if isinstance(measure, int) else None,
        )
        online: mk.OnlineCheck | None = None
        if check.online == mk.FN_CODE_ANSWER_REFUSED:
            online = mk.OnlineCheck(check.online, check.online_reason)
        elif check.online is not None:  # answered (with its TLVs) or silent: 2106 follows
            online = mk.OnlineCheck(check.online, check.verdict, check.server_tags[:0xFD])
        return mk.MarkCheckResult(LocalCheck(check.result), check.reason, check.kind, online)

    def _bind_mark(self, r: mk.BindMarkCode) -> mk.MarkBound:
        """FF67: bind a checked and accepted code to the next FF46 item.  A code not checked
        before is refused (A5h) rather than checked here: the host decides on every code."""
        self._auth(r, OPERATOR)
        entry = self.model.bind_mark(r.code)
        item_code = ITEM_CODE_GS1 if entry.kind else 0
        matrix = _DATA_MATRIX_TYPE.get(entry.kind, mk.DataMatrixType.GS1_UNMARKED)
        return mk.MarkBound(item_code, int(matrix), None)

    def _decide_mark(self, r: mk.DecideMarkCode) -> mk.MarkDecided:
        """FF69: 1 accept (2106 answered), 0 reject, 2 clear every check result."""
        self._auth(r, OPERATOR)
        if r.decision == mk.MarkDecision.CLEAR:
            self.model.clear_marks()
            return mk.MarkDecided(None)
        accept = r.decision == mk.MarkDecision.ACCEPT
        value = self.model.decide_mark(accept)
        return mk.MarkDecided(ItemCheck(value) if accept else None)

    def _marking_status(self, r: mk.GetMarkingStatus) -> mk.MarkingStatus:
        """FF70 = B0h."""
        self._auth(r, OPERATOR)
        s = self.fn.marking.status()
        return mk.MarkingStatus(
            int(s.step),
            s.notification_state,
            s.permitted,
            s.saved,
            s.in_notification,
            s.store_warning,
            min(s.queued, 0xFFFF),
        )

    def _notification_status(self, r: mk.GetNotificationStatus) -> mk.NotificationStatus:
        """FF68 = BAh."""
        self._auth(r, OPERATOR)
        s = self.fn.marking.notification_status()
        return mk.NotificationStatus(
            s.state, min(s.queued, 0xFFFF), s.number, s.when, min(s.percent_full, 100)
        )

    def _start_notification_export(self, r: mk.StartNotificationExport) -> mk.NotificationExport:
        """FF71 (autonomous, D3h/D4h): read the unconfirmed notifications from the first."""
        self._auth(r, OPERATOR)
        marking = self.fn.marking
        count, first, _session, _current = marking.export_status(start=True)
        self.mark_export = None
        if not count:
            return mk.NotificationExport(0, 0, 0)
        size, number = marking.export_next()
        self.mark_export = (number, size, 0)
        return mk.NotificationExport(count, first, size)

    def _read_notification_block(self, r: mk.ReadNotificationBlock) -> mk.NotificationBlock:
        """FF72 (D5h): the next block; past a notification's end, the next one's first."""
        self._auth(r, OPERATOR)
        if self.mark_export is None:
            raise FnError(FnCode.NO_DATA, "no notification export begun: send FF71 first")
        marking = self.fn.marking
        number, size, offset = self.mark_export
        if offset >= size:
            size, number = marking.export_next(following=True)
            offset = 0
        data = marking.read(offset, MARK_BLOCK)
        self.mark_export = (number, size, offset + len(data))
        return mk.NotificationBlock(number, size, offset, data)

    def _confirm_notification(self, r: mk.ConfirmNotification) -> classic.Empty:
        """FF73 (D6h): the notification reached the OISM; the FN drops it."""
        self._auth(r, OPERATOR)
        self.fn.marking.export_confirm(r.number, r.crc)
        if self.mark_export is not None and self.mark_export[0] == r.number:
            _number, size, _offset = self.mark_export
            self.mark_export = (r.number, size, size)  # the next FF72 starts the next one
        return classic.Empty()

    # -- for the control channel ------------------------------------------------------------------

    def power_loss(self) -> None:
        """The FN's archive and everything fiscalized stay; the open receipt, a begun report and
        an interrupted print are lost, and the register comes back idle, as a real one does."""
        super().power_loss()
        self.pending = None
        self.pending_date = None
        self.ofd_buffer = OfdBuffer()
        self.mark_export = None

    def mode_text(self) -> dict[str, int]:
        return {"mode": self._mode(), "submode": self._submode()}
