"""An emulated Shtrikh-M register: the Shtrikh personality over the FN, receipt and printer models.

`ShtrikhRegister.execute` takes one request payload (code and parameters, as the link delivers it)
and returns the answer payload.  It never raises: a malformed command is answered 33h, an unknown
one 37h, a refusal with its Shtrikh code -- FN result codes 01h–3Fh pass through unchanged, as on
real FN-era registers -- and an internal failure 39h (logged), so no client can crash the device.

Modes and submodes are computed from the models, as 10h/11h report them: 4 shift closed, 2 shift
open, 3 shift over 24 h, 8 document open with the receipt type in the high nibble; submode 1 no
paper, 2 paper ran out mid-print, 3 paper back and waiting for B0h.

The cash in the drawer is not stored: it is the FN's cash counters (which survive any crash with
the archive) plus the cash deposited and withdrawn (kept by the register).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from kkt.protocols.errors import CodecError, FrameError
from kkt.protocols.ffd import QrData, TlvError, TlvList, decode_tlv, qr_string
from kkt.protocols.shtrih import classic, fn
from kkt.protocols.shtrih.frame import code_bytes, command_code
from kkt.protocols.shtrih.message import (
    Answer,
    Request,
    UnknownCommand,
    decode_request,
    encode_answer,
    encode_error,
)
from kkt.protocols.shtrih.modes import EcrFlags, OfdStatus, TaxRate

from ..clock import Clock
from ..fn import FiscalStorage, FnCode, FnError, LifePhase, Payments, VatSums, Verification
from ..fn.model import CORRECTION, RECEIPT
from ..printer import PaperOut, Printer
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
from .settings import RegisterSettings

log = logging.getLogger(__name__)

SHIFT_LIMIT = dt.timedelta(hours=24)

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
_OPERATION_NAMES = {1: "ПРИХОД", 2: "ВОЗВРАТ ПРИХОДА", 3: "РАСХОД", 4: "ВОЗВРАТ РАСХОДА"}
_RECEIPT_FOR_OPERATION = {1: 0, 3: 1, 2: 2, 4: 3}

OPERATOR, ADMIN, SYSADMIN = 1, 29, 30
# Commands that write nothing to disk, cheap enough to answer on the shells' event loop: queries
# (statuses, registers, tables, the FN's state and archive) and the steps of a receipt that live
# in memory until the closing command (open, items, their tags, subtotal, cancel).
QUICK_CODES = frozenset(
    {0x10, 0x11, 0x1A, 0x1B, 0x1F, 0xFC}
    | {0xFF01, 0xFF02, 0xFF03, 0xFF04, 0xFF0A, 0xFF39, 0xFF3F, 0xFF40}
    | {0x88, 0x89, 0x8D, 0xFF0C, 0xFF46, 0xFF4D}
)


class Refusal(Exception):
    """The register refuses with a Shtrikh error code."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"{code:02X}h {reason}".strip())
        self.code = code


def _money(kopecks: int) -> str:
    return f"{kopecks // 100}.{kopecks % 100:02d}"


class ShtrikhRegister:
    """One emulated register.  Not thread-safe: the shells serialise commands."""

    def __init__(
        self, storage: FiscalStorage, settings: RegisterSettings, clock: Clock, *, fiscal_only: bool
    ) -> None:
        self.fn = storage
        self.settings = settings
        self.clock = clock
        self.fiscal_only = fiscal_only
        self.printer = Printer(present=not fiscal_only)
        self.receipt: ReceiptBuilder | None = None
        self.pending: tuple[int, TlvList] | None = None  # FF41/FF42/FF35/FF37 begun: (code, tags)
        self.pending_print: list[str] = []  # lines a paper end interrupted: B0h prints them
        self.pending_date: dt.date | None = None  # 22h given, 23h not yet
        self.operator = SYSADMIN
        self.last_error = ""
        self.tlv_reading: tuple[bytes, int] | None = None  # FF3A began: (document value, offset)
        self._handlers: dict[type[Request[Any]], Callable[[Any], Answer]] = {
            classic.GetShortStatus: self._short_status,
            classic.GetLongStatus: self._long_status,
            classic.Beep: self._beep,
            classic.PrintString: self._print_string,
            classic.ReadCashRegister: self._cash_register,
            classic.ReadOperatingRegister: self._operating_register,
            classic.WriteTable: self._write_table,
            classic.ReadTable: self._read_table,
            classic.SetTime: self._set_time,
            classic.SetDate: self._set_date,
            classic.ConfirmDate: self._confirm_date,
            classic.Cut: self._cut,
            classic.ContinuePrint: self._continue_print,
            classic.XReport: self._x_report,
            classic.ZReport: self._z_report,
            classic.OpenShift: self._open_shift,
            classic.CashIn: self._cash_in,
            classic.CashOut: self._cash_out,
            classic.Sale: self._classic_item,
            classic.SaleReturn: self._classic_item,
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
            fn.BeginStateReport: lambda r: self._begin(r, fn.MakeStateReport.CODE),
            fn.MakeStateReport: self._state_report,
            fn.GetOfdExchangeStatus: self._ofd_status,
            fn.GetUnconfirmedCount: self._unconfirmed,
            fn.GetShiftParams: self._shift_params,
            fn.CloseReceiptV2: self._close_receipt_v2,
            fn.OperationV2: self._operation_v2,
        }

    # -- the one entry point ----------------------------------------------------------------------

    def execute(self, payload: bytes) -> bytes:
        try:
            code = command_code(payload)
        except FrameError:
            return b"\xff\x01" if payload[:1] == b"\xff" else payload[:1] + b"\x37"
        try:
            request = decode_request(payload)
        except UnknownCommand:
            return self._refuse(code, 0x37, "command not supported by this emulator")
        except CodecError as exc:
            return self._refuse(code, 0x33, str(exc))
        try:
            answer = self._handlers[type(request)](request)
        except Refusal as refusal:
            return self._refuse(code, refusal.code, str(refusal))
        except FnError as error:
            return self._refuse(code, int(error.code), str(error))
        except PaperOut as exc:
            return self._refuse(code, 0x6B, str(exc))
        except (CodecError, TlvError) as exc:
            return self._refuse(code, 0x33, str(exc))
        except Exception:
            log.exception("internal error executing %s", payload.hex(" "))
            return self._refuse(code, 0x39, "internal error (see the emulator's log)")
        self.last_error = ""
        return encode_answer(code, answer)

    def quick(self, payload: bytes) -> bool:
        """A command that writes nothing to disk (the shells may run it on their event loop
        instead of the worker thread)."""
        try:
            return command_code(payload) in QUICK_CODES
        except FrameError:
            return True  # refused at once

    def _refuse(self, code: int, error: int, reason: str) -> bytes:
        self.last_error = reason
        log.debug("refused %s: %s", code_bytes(code).hex(" "), reason)
        return encode_error(code, error)

    def close(self) -> None:
        self.fn.close()

    def verify(self) -> Verification:
        """Recompute the FN archive: numbering, signs, counters."""
        return self.fn.verify()

    # -- state helpers ----------------------------------------------------------------------------

    def _auth(self, request: Any, level: int) -> int:
        """Check the password; remember and return the operator number (1..30)."""
        password = request.password
        for number in range(30, 0, -1):
            if self.settings.password(number) == password:
                if number < level and not (level == ADMIN and number == SYSADMIN):
                    raise Refusal(0x4F, "this command needs the administrator's password")
                self.operator = number
                return number
        raise Refusal(0x4F, "wrong password")

    @property
    def _shift_open(self) -> bool:
        return self.fn.state.shift_open

    @property
    def _shift_expired(self) -> bool:
        opened = self.fn.state.shift_opened_at
        return opened is not None and self.clock.now() - opened > SHIFT_LIMIT

    def _mode(self) -> int:
        if self.pending_date is not None:
            return 6
        if self.receipt is not None:
            return 8 | (self.receipt.receipt_type << 4)
        if not self._shift_open:
            return 4
        return 3 if self._shift_expired else 2

    def _submode(self) -> int:
        if self.pending_print:
            return 3 if self.printer.ready else 2
        return 0 if self.printer.ready or not self.printer.present else 1

    def _flags(self) -> int:
        flags = EcrFlags(0)
        if self.printer.present and self.printer.paper:
            flags |= EcrFlags.RECEIPT_ROLL | EcrFlags.RECEIPT_OPTICAL_SENSOR
        if self.printer.present and self.printer.cover_open:
            flags |= EcrFlags.COVER_OPEN
        return int(flags)

    def _require_idle_printer(self) -> None:
        if self.pending_print:
            raise Refusal(0x58, "a document waits for continue-print (B0h)")

    def _require_shift_for_sale(self) -> None:
        if not self._shift_open:
            raise Refusal(0x3D, "open a shift first")
        if self._shift_expired:
            raise Refusal(0x4E, "the shift is over 24 hours old: close it with a Z report")

    def _require_receipt(self) -> ReceiptBuilder:
        if self.receipt is None:
            raise Refusal(0x55, "no receipt is open")
        return self.receipt

    def _print(self, lines: list[str]) -> None:
        """Print a fiscal document's lines: a paper end keeps the rest for B0h, never fails."""
        try:
            self.printer.print_lines(lines)
        except PaperOut as exc:
            self.pending_print = exc.remaining or lines

    def _document_number(self) -> int:
        """Through number of printed documents: fiscal ones and cash in/out."""
        return self.fn.state.last_number + self.settings.cash_operations

    def _cashier(self) -> str:
        return self.settings.operator_name(self.operator)

    def _document_footer(self, number: int, sign: int) -> list[str]:
        p = self.printer
        return [
            p.pair("ФН:", self.fn.serial),
            p.pair("ФД:", str(number)),
            p.pair("ФП:", str(sign)),
        ]

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
            last_print_result=5 if self.pending_print else 0,
        )

    def _long_status(self, r: classic.GetLongStatus) -> classic.LongStatus:
        op = self._auth(r, OPERATOR)
        now = self.clock.now()
        s = self.fn.state
        inn = int(s.registration.inn) if s.registration else 0
        last_closed = s.shift_number - (1 if s.shift_open else 0)
        return classic.LongStatus(
            operator=op,
            firmware_version="C2",
            firmware_build=1,
            firmware_date=dt.date(2026, 1, 1),
            number_in_hall=1,
            document_number=self._document_number() & 0xFFFF,
            flags=self._flags(),
            mode=self._mode(),
            submode=self._submode(),
            port=0,
            fp_version="",
            fp_build=0,
            fp_date=None,
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
        # ШТРИХ-М-01Ф per protocol 1.17: model 250, protocol 1.14
        return classic.DeviceType(0, 0, 1, 14, 250, 0, "ШТРИХ-М-01Ф")

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
        queue = self.fn.ofd_queue()
        status = OfdStatus.MESSAGE_FOR_OFD if queue.unsent else OfdStatus(0)
        when = queue.first_when.replace(second=0) if queue.first_when else None
        return fn.OfdExchangeStatus(
            int(status), False, min(queue.unsent, 0xFFFF), queue.first_number, when
        )

    def _unconfirmed(self, r: fn.GetUnconfirmedCount) -> fn.UnconfirmedCount:
        self._auth(r, OPERATOR)
        return fn.UnconfirmedCount(min(self.fn.ofd_queue().unsent, 0xFFFF))

    def _shift_params(self, r: fn.GetShiftParams) -> fn.ShiftParams:
        self._auth(r, OPERATOR)
        s = self.fn.state
        number = s.receipt_number if s.shift_open else s.shift_documents
        return fn.ShiftParams(s.shift_open, s.shift_number & 0xFFFF, number & 0xFFFF)

    # -- registers and tables ---------------------------------------------------------------------

    def _cash_in_drawer(self) -> int:
        blocks = self.fn.state.total_counters.operations
        sales = blocks[0].cash + blocks[3].cash - blocks[1].cash - blocks[2].cash
        return self.settings.cash_in_total - self.settings.cash_out_total + sales

    def _cash_register(self, r: classic.ReadCashRegister) -> classic.CashRegisterValue:
        op = self._auth(r, OPERATOR)
        shift = self.fn.state.shift_counters.operations
        values = {
            241: self._cash_in_drawer(),
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
        values[152] = self._document_number()
        return classic.OperatingRegisterValue(op, values.get(r.register, 0) & 0xFFFF)

    def _read_table(self, r: classic.ReadTable) -> classic.TableValue:
        self._auth(r, OPERATOR)
        value = self.settings.read_table(r.table, r.row, r.field, self)
        if value is None:
            raise Refusal(0x33, f"no field {r.table}/{r.row}/{r.field} in this register's tables")
        return classic.TableValue(value)

    def _write_table(self, r: classic.WriteTable) -> classic.Empty:
        self._auth(r, SYSADMIN)
        error = self.settings.write_table(r.table, r.row, r.field, r.value)
        if error:
            raise Refusal(error, f"table {r.table} field {r.field} cannot be written")
        return classic.Empty()

    # -- clock ------------------------------------------------------------------------------------

    def _set_clock(self, when: dt.datetime) -> None:
        setter = getattr(self.clock, "set", None)
        if setter is None:
            raise Refusal(0x37, "this emulator's clock cannot be set")
        setter(when)
        self.settings.remember_clock(self.clock)

    def _set_time(self, r: classic.SetTime) -> classic.Empty:
        self._auth(r, SYSADMIN)
        self._set_clock(dt.datetime.combine(self.clock.now().date(), r.time))
        return classic.Empty()

    def _set_date(self, r: classic.SetDate) -> classic.Empty:
        self._auth(r, SYSADMIN)
        self.pending_date = r.date
        return classic.Empty()

    def _confirm_date(self, r: classic.ConfirmDate) -> classic.Empty:
        self._auth(r, SYSADMIN)
        if self.pending_date is None or r.date != self.pending_date:
            self.pending_date = None
            raise Refusal(0x7C, "the date does not match the one set with 22h")
        self.pending_date = None
        self._set_clock(dt.datetime.combine(r.date, self.clock.now().time()))
        return classic.Empty()

    # -- printing ---------------------------------------------------------------------------------

    def _print_string(self, r: classic.PrintString) -> classic.OperatorAnswer:
        op = self._auth(r, OPERATOR)
        self._require_idle_printer()
        if r.flags & 0x02:
            self.printer.print_lines([r.text])
        return classic.OperatorAnswer(op)

    def _cut(self, r: classic.Cut) -> classic.OperatorAnswer:
        op = self._auth(r, OPERATOR)
        self._require_idle_printer()
        self.printer.print_lines(["-" * 8 + (" partial cut " if r.partial else " cut ") + "-" * 8])
        return classic.OperatorAnswer(op)

    def _continue_print(self, r: classic.ContinuePrint) -> classic.OperatorAnswer:
        op = self._auth(r, OPERATOR)
        if self.pending_print:
            lines, self.pending_print = self.pending_print, []
            self._print(lines)
            if self.pending_print:
                raise Refusal(0x6B, "paper ran out again")
        return classic.OperatorAnswer(op)

    # -- shifts -----------------------------------------------------------------------------------

    def _open_shift(self, r: classic.OpenShift) -> classic.OpenShiftAnswer:
        op = self._auth(r, OPERATOR)
        self._do_open_shift([])
        return classic.OpenShiftAnswer(op)

    def _do_open_shift(self, tags: TlvList) -> fn.ShiftOpened:
        if self._shift_open:
            raise Refusal(0x3C, "the shift is already open")
        self._require_idle_printer()
        self.printer.check()
        tags = self._with_cashier(tags)
        formed = self.fn.open_shift(tags)
        self.settings.start_shift()
        p = self.printer
        self._print(
            [
                p.centered(self.settings.user_name),
                p.centered("ОТЧЕТ ОБ ОТКРЫТИИ СМЕНЫ"),
                p.pair("СМЕНА:", str(formed.shift_number)),
                p.pair("КАССИР:", self._cashier()),
                *self._document_footer(formed.number, formed.fiscal_sign),
            ]
        )
        return fn.ShiftOpened(formed.shift_number, formed.number, formed.fiscal_sign)

    def _with_cashier(self, tags: TlvList) -> TlvList:
        if any(tag == 1021 for tag, _ in tags):
            return tags
        return [(1021, self._cashier()), *tags]

    def _z_report(self, r: classic.ZReport) -> classic.OperatorAnswer:
        op = self._auth(r, ADMIN)
        self._do_close_shift([])
        return classic.OperatorAnswer(op)

    def _do_close_shift(self, tags: TlvList) -> fn.ShiftClosed:
        if self.receipt is not None:
            raise Refusal(0x4A, "a receipt is open: close or cancel it first")
        if not self._shift_open:
            raise Refusal(0x3D, "the shift is not open")
        self._require_idle_printer()
        self.printer.check()
        s = self.fn.state
        formed = self.fn.close_shift(self._with_cashier(tags))
        p = self.printer
        self._print(
            [
                p.centered(self.settings.user_name),
                p.centered("ОТЧЕТ О ЗАКРЫТИИ СМЕНЫ"),
                p.pair("СМЕНА:", str(formed.shift_number)),
                p.pair("ЧЕКОВ ЗА СМЕНУ:", str(s.receipt_number)),
                p.pair("НАЛИЧНЫХ В КАССЕ:", _money(self._cash_in_drawer())),
                *self._document_footer(formed.number, formed.fiscal_sign),
            ]
        )
        return fn.ShiftClosed(formed.shift_number, formed.number, formed.fiscal_sign, None)

    def _x_report(self, r: classic.XReport) -> classic.OperatorAnswer:
        op = self._auth(r, ADMIN)
        self._require_idle_printer()
        p = self.printer
        lines = [p.centered("X-ОТЧЕТ"), p.pair("СМЕНА:", str(self.fn.state.shift_number))]
        for number, block in enumerate(self.fn.state.shift_counters.operations, start=1):
            lines.append(
                p.pair(f"{_OPERATION_NAMES[number]} ({block.count}):", _money(block.total))
            )
        lines.append(p.pair("НАЛИЧНЫХ В КАССЕ:", _money(self._cash_in_drawer())))
        self.printer.print_lines(lines)
        return classic.OperatorAnswer(op)

    def _begin(self, r: Any, code: int) -> classic.Empty:
        self._auth(r, OPERATOR)
        if self.receipt is not None:
            raise Refusal(0x4A, "a receipt is open")
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
        return self._do_open_shift(self._take_pending(r.CODE))

    def _fn_close_shift(self, r: fn.FnCloseShift) -> fn.ShiftClosed:
        self._auth(r, OPERATOR)
        return self._do_close_shift(self._take_pending(r.CODE))

    def _cancel_fn_document(self, r: fn.CancelFnDocument) -> classic.Empty:
        self._auth(r, OPERATOR)
        self.pending = None
        self.receipt = None
        return classic.Empty()

    # -- TLV --------------------------------------------------------------------------------------

    def _send_tlv(self, r: fn.SendTlv) -> classic.Empty:
        self._auth(r, OPERATOR)
        tags = decode_tlv(r.tlv)
        if self.receipt is not None:
            self.receipt.tags += tags
        elif self.pending is not None:
            self.pending[1].extend(tags)
        else:
            raise Refusal(0x02, "no document is being formed: open a receipt or begin a report")
        return classic.Empty()

    def _send_operation_tlv(self, r: fn.SendOperationTlv) -> classic.Empty:
        self._auth(r, OPERATOR)
        receipt = self._require_receipt()
        if not receipt.items:
            raise Refusal(0x33, "FF4D binds tags to the last item; add an item first")
        receipt.items[-1].extra += decode_tlv(r.tlv)
        return classic.Empty()

    # -- receipts ---------------------------------------------------------------------------------

    def _open_receipt(self, r: classic.OpenReceipt) -> classic.OperatorAnswer:
        op = self._auth(r, OPERATOR)
        if self.receipt is not None:
            raise Refusal(0x4A, "a receipt is already open")
        self._require_shift_for_sale()
        self._require_idle_printer()
        self.receipt = ReceiptBuilder(int(r.receipt_type))
        return classic.OperatorAnswer(op)

    def _receipt_for(self, receipt_type: int) -> ReceiptBuilder:
        """The open receipt, or a new one (an item command opens the receipt on its own)."""
        self._require_shift_for_sale()
        self._require_idle_printer()
        if self.receipt is None:
            self.receipt = ReceiptBuilder(receipt_type)
        elif self.receipt.receipt_type != receipt_type:
            raise Refusal(0x49, "this operation does not fit the open receipt's type")
        return self.receipt

    def _operation_v2(self, r: fn.OperationV2) -> classic.Empty:
        self._auth(r, OPERATOR)
        self.printer.check()
        receipt = self._receipt_for(_RECEIPT_FOR_OPERATION[int(r.operation)])
        computed = int((r.quantity * r.price).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        amount = computed if r.amount is None else r.amount
        if abs(amount - computed) > 1:
            raise Refusal(0x33, f"amount {amount} differs from price x quantity = {computed}")
        bits = [bit for bit in _TAX_BIT if bit & r.tax_rate]
        if len(bits) != 1:
            raise Refusal(0x33, "FF46 needs exactly one tax-rate bit")
        vat = _TAX_BIT[bits[0]]
        tax = item_tax(amount, vat) if r.tax_amount is None else r.tax_amount
        name = r.name[2:] if r.name.startswith("//") else r.name
        receipt.items.append(
            Item(
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
        )
        return classic.Empty()

    def _classic_item(self, r: classic.Sale | classic.SaleReturn) -> classic.OperatorAnswer:
        op = self._auth(r, OPERATOR)
        self.printer.check()
        receipt = self._receipt_for(0 if isinstance(r, classic.Sale) else 2)
        amount = int((r.quantity * r.price).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        vat = _TAX_GROUP.get(r.taxes[0], NO_VAT)
        receipt.items.append(
            Item(
                r.text,
                r.price,
                r.quantity,
                amount,
                vat,
                item_tax(amount, vat),
                department=r.department,
            )
        )
        return classic.OperatorAnswer(op)

    def _subtotal(self, r: classic.Subtotal) -> classic.SubtotalAnswer:
        op = self._auth(r, OPERATOR)
        return classic.SubtotalAnswer(op, self._require_receipt().total)

    def _cancel_receipt(self, r: classic.CancelReceipt) -> classic.OperatorAnswer:
        op = self._auth(r, OPERATOR)
        self._require_receipt()
        self.receipt = None
        return classic.OperatorAnswer(op)

    def _close_receipt_v2(self, r: fn.CloseReceiptV2) -> fn.ReceiptClosed:
        self._auth(r, OPERATOR)
        p = r.payments
        payments = Payments(
            cash=p[0], electronic=sum(p[1:13]), prepaid=p[13], credit=p[14], counter=p[15]
        )
        taxes = VatSums(*r.taxes) if any(r.taxes) else None
        return self._close(payments, r.rounding, taxes, int(r.tax_system))

    def _classic_close(self, r: classic.CloseReceipt) -> classic.CloseReceiptAnswer:
        op = self._auth(r, OPERATOR)
        if r.discount:
            raise Refusal(
                0x33, "receipt discounts are not supported by this emulator; use item amounts"
            )
        payments = Payments(cash=r.payments[0], electronic=sum(r.payments[1:]))
        closed = self._close(payments, 0, None, 0)
        return classic.CloseReceiptAnswer(op, closed.change, "")

    def _close(
        self, paid: Payments, rounding: int, taxes: VatSums | None, tax_system: int
    ) -> fn.ReceiptClosed:
        receipt = self._require_receipt()
        if not receipt.items:
            raise Refusal(0x33, "the receipt has no items")
        if rounding > 99:
            raise Refusal(0x33, "rounding is at most 99 kopecks")
        due = receipt.total - rounding
        if due < 0:
            raise Refusal(0x5F, "the receipt total is negative")
        if paid.total < due:
            raise Refusal(
                0x45, f"payments {_money(paid.total)} are less than the total {_money(due)}"
            )
        change = paid.total - due
        if change > paid.cash:
            raise Refusal(0x33, "only cash can be overpaid (change is given in cash)")
        tax_system = self._tax_system(tax_system)
        if self.fiscal_only and not receipt.has_tag(1008):
            raise Refusal(
                0x33,
                "a fiscal-only register sends the receipt electronically: "
                "give the buyer's phone or e-mail (tag 1008) with FF0C first",
            )
        self.printer.check()
        payments = Payments(
            paid.cash - change, paid.electronic, paid.prepaid, paid.credit, paid.counter
        )
        tags = self._with_cashier(self._place_tags(receipt.tags))
        tags = [*tags, (1055, tax_system), *receipt.items_tlv()]
        formed = self.fn.receipt(
            receipt.operation, due, payments, taxes or receipt.vat_sums(), tags
        )
        self.receipt = None
        self._print_receipt(
            receipt, formed.number, formed.fiscal_sign, formed.when, due, paid, change
        )
        return fn.ReceiptClosed(change, formed.number, formed.fiscal_sign, None)

    def _tax_system(self, requested: int) -> int:
        registered = self.fn.state.registration.tax_systems if self.fn.state.registration else 0
        if requested == 0:  # not given: the lowest registered system
            return registered & -registered
        if requested & (requested - 1) or not requested & registered:
            raise Refusal(
                0x33, f"tax system {requested:#x} is not one of the registered {registered:#x}"
            )
        return requested

    def _place_tags(self, tags: TlvList) -> TlvList:
        present = {tag for tag, _ in tags}
        extra: TlvList = [
            (tag, value)
            for tag, value in ((1009, self.settings.address), (1187, self.settings.place))
            if tag not in present
        ]
        return [*extra, *tags]

    def _print_receipt(
        self,
        receipt: ReceiptBuilder,
        number: int,
        sign: int,
        when: dt.datetime,
        due: int,
        paid: Payments,
        change: int,
    ) -> None:
        p = self.printer
        lines = [
            p.centered(self.settings.user_name),
            p.centered(self.settings.address),
            p.centered("КАССОВЫЙ ЧЕК"),
            p.centered(_OPERATION_NAMES[receipt.operation]),
            p.pair(f"ЧЕК: {self.fn.state.receipt_number}", when.strftime("%d.%m.%y %H:%M")),
        ]
        for item in receipt.items:
            lines.append(item.name[: p.width])
            lines.append(
                p.pair(
                    f"  {item.quantity.normalize():f} x {_money(item.price)}",
                    f"={_money(item.amount)}",
                )
            )
        lines += [p.pair("ИТОГ", f"={_money(due)}")]
        if paid.cash:
            lines.append(p.pair("НАЛИЧНЫМИ", f"={_money(paid.cash)}"))
        if paid.electronic:
            lines.append(p.pair("БЕЗНАЛИЧНЫМИ", f"={_money(paid.electronic)}"))
        if change:
            lines.append(p.pair("СДАЧА", f"={_money(change)}"))
        lines += [p.pair("КАССИР:", self._cashier()), *self._document_footer(number, sign)]
        lines.append("QR: " + self.qr(number))
        self._print(lines)

    def qr(self, number: int) -> str:
        """The QR string of receipt ``number`` (also what a fiscal-only register hands out)."""
        record = self.fn.record(number)
        if record.kind not in (RECEIPT, CORRECTION):
            raise Refusal(0x33, f"document {number} is not a receipt")
        return qr_string(
            QrData(
                record.when,
                record.total,
                self.fn.serial,
                number,
                record.fiscal_sign,
                record.operation,
            )
        )

    # -- corrections and reports ------------------------------------------------------------------

    def _correction_receipt(self, r: fn.MakeCorrectionReceipt) -> fn.CorrectionReceiptMade:
        self._auth(r, OPERATOR)
        if self.receipt is not None:
            raise Refusal(0x4A, "a receipt is open")
        self._require_shift_for_sale()
        self.printer.check()
        tags = self._with_cashier(self._place_tags(self._take_pending(r.CODE)))
        if not any(tag == 1173 for tag, _ in tags):
            tags.append((1173, 0))  # correction on the user's own initiative
        tags.append((1055, self._tax_system(0)))
        operation = int(r.operation)
        formed = self.fn.receipt(
            operation,
            r.total,
            Payments(cash=r.total),
            VatSums(no_vat=r.total),
            tags,
            correction=True,
        )
        p = self.printer
        self._print(
            [
                p.centered("КАССОВЫЙ ЧЕК КОРРЕКЦИИ"),
                p.centered(_OPERATION_NAMES[operation]),
                p.pair("ИТОГ", f"={_money(r.total)}"),
                *self._document_footer(formed.number, formed.fiscal_sign),
                "QR: " + self.qr(formed.number),
            ]
        )
        return fn.CorrectionReceiptMade(
            formed.receipt_number, formed.number, formed.fiscal_sign, None
        )

    def _state_report(self, r: fn.MakeStateReport) -> fn.StateReport:
        self._auth(r, OPERATOR)
        if self.receipt is not None:
            raise Refusal(0x4A, "a receipt is open")
        self.printer.check()
        formed = self.fn.state_report(self._take_pending(r.CODE))
        queue = self.fn.ofd_queue()
        first = queue.first_when.date() if queue.first_when else None
        p = self.printer
        self._print(
            [
                p.centered("ОТЧЕТ О ТЕКУЩЕМ СОСТОЯНИИ РАСЧЕТОВ"),
                p.pair("НЕПЕРЕДАННЫХ ФД:", str(queue.unsent)),
                *self._document_footer(formed.number, formed.fiscal_sign),
            ]
        )
        return fn.StateReport(formed.number, formed.fiscal_sign, queue.unsent, first, None)

    # -- cash -------------------------------------------------------------------------------------

    def _cash_in(self, r: classic.CashIn) -> classic.CashOperationAnswer:
        op = self._auth(r, OPERATOR)
        self._cash_operation(r.amount, deposit=True)
        return classic.CashOperationAnswer(op, self._document_number() & 0xFFFF)

    def _cash_out(self, r: classic.CashOut) -> classic.CashOperationAnswer:
        op = self._auth(r, OPERATOR)
        if r.amount > self._cash_in_drawer():
            raise Refusal(0x46, "not enough cash in the drawer")
        self._cash_operation(r.amount, deposit=False)
        return classic.CashOperationAnswer(op, self._document_number() & 0xFFFF)

    def _cash_operation(self, amount: int, *, deposit: bool) -> None:
        if self.receipt is not None:
            raise Refusal(0x4A, "a receipt is open")
        if not self._shift_open:
            raise Refusal(0x3D, "open a shift first")
        self._require_idle_printer()
        self.printer.check()
        self.settings.cash_operation(amount, deposit=deposit)
        p = self.printer
        self.printer.print_lines(
            [
                p.centered("ВНЕСЕНИЕ" if deposit else "ВЫПЛАТА"),
                p.pair("СУММА", f"={_money(amount)}"),
            ]
        )

    # -- for the control channel ------------------------------------------------------------------

    def power_loss(self) -> None:
        """Power fails: what was being built is gone (the FN had formed nothing of it yet).

        The FN's archive and everything fiscalized stay; the open receipt, a begun report and
        an interrupted print are lost, and the register comes back idle, as a real one does.
        """
        self.receipt = None
        self.pending = None
        self.pending_print = []
        self.pending_date = None

    def status_text(self) -> dict[str, object]:
        fn_status = self.fn.status()
        return {
            "mode": self._mode(),
            "submode": self._submode(),
            "phase": int(fn_status.phase),
            "shift_open": fn_status.shift_open,
            "last_document": fn_status.last_number,
            "unsent": self.fn.ofd_queue().unsent,
            "now": self.clock.now().isoformat(),
            "paper": self.printer.paper,
            "cover_open": self.printer.cover_open,
            "last_error": self.last_error,
        }

    @property
    def phase(self) -> LifePhase:
        return self.fn.status().phase

    def tape(self) -> list[str]:
        return list(self.printer.tape)
