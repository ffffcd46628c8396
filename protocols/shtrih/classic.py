"""Classic (one-byte) Shtrih-M commands: status, registers, tables, clock, printing, receipts.

Layouts: vendor protocol 1.17 and 2.0, cross-checked with the official JavaPOS driver's command
classes (fact sheet §2.3).  Answer timeouts are the official OPOS driver's values, raised to
JavaPOS's where it waits longer (fact sheet §1.6).  Every request starts with a 4-byte password
except FCh.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from ..fields import S16, U8, U16, U32, Raw
from ..message import wire
from .fields import (
    Bool,
    DateDMY,
    EnumField,
    FixedText,
    LineText,
    Money5,
    Money6,
    Quantity,
    TailText,
    TimeHMS,
    Trailing,
    Tuple,
)
from .message import Answer, Request, answer, request
from .modes import ReceiptType

# -- shared answers -------------------------------------------------------------------------------


@answer
class Empty(Answer):
    """An answer with no data after the error byte."""


@answer
class OperatorAnswer(Answer):
    """Just the number of the operator logged in (1..30)."""

    operator: int = wire(U8)


# -- status ---------------------------------------------------------------------------------------


@answer
class ShortStatus(Answer):
    """10h answer.  Decode ``flags`` with `EcrFlags`, ``mode`` with `decode_mode`."""

    operator: int = wire(U8)
    flags: int = wire(U16)
    mode: int = wire(U8)
    submode: int = wire(U8)
    operations_low: int = wire(U8)
    battery_voltage: int = wire(U8)
    supply_voltage: int = wire(U8)
    fp_error: int = wire(U8)
    eklz_error: int = wire(U8)
    operations_high: int = wire(U8)
    print_head_temperature: int = wire(U8)
    previous_mode: int = wire(U8)
    key_update_status: int = wire(U8)
    last_print_result: int | None = wire(Trailing(U8))  # 0 ok, 1 paper break, 2 error, 5 printing

    @property
    def operations_in_receipt(self) -> int:
        return self.operations_high << 8 | self.operations_low


@request(0x10, timeout=3.0)
class GetShortStatus(Request[ShortStatus]):
    password: int = wire(U32)


@answer
class LongStatus(Answer):
    """11h answer.  FN models keep the old layout with placeholder fiscal-memory fields."""

    operator: int = wire(U8)
    firmware_version: str = wire(FixedText(2, "ascii"))  # "C2" means C.2
    firmware_build: int = wire(U16)
    firmware_date: dt.date | None = wire(DateDMY())
    number_in_hall: int = wire(U8)
    document_number: int = wire(U16)
    flags: int = wire(U16)
    mode: int = wire(U8)
    submode: int = wire(U8)
    port: int = wire(U8)  # 128 when the host talks over a TCP socket
    fp_version: str = wire(FixedText(2, "ascii"))
    fp_build: int = wire(U16)
    fp_date: dt.date | None = wire(DateDMY())
    date: dt.date | None = wire(DateDMY())
    time: dt.time = wire(TimeHMS())
    fp_flags: int = wire(U8)
    serial_low: int = wire(U32)
    last_closed_shift: int = wire(U16)
    free_fp_records: int = wire(U16)
    registrations: int = wire(U8)
    registrations_left: int = wire(U8)
    inn: int = wire(Money6)  # 6-byte binary number
    # Model-dependent tail (FP flags/mode, serial high word, SKNO status): kept raw.
    extra: bytes = wire(Raw)


@request(0x11, timeout=3.0)
class GetLongStatus(Request[LongStatus]):
    password: int = wire(U32)


@request(0x13, timeout=3.0)
class Beep(Request[OperatorAnswer]):
    password: int = wire(U32)


@request(0x12, timeout=3.0)
class PrintBoldString(Request[OperatorAnswer]):
    """Print a line in the double-width font 2 (half the line's characters); ``flags`` as 17h."""

    password: int = wire(U32)
    flags: int = wire(U8)
    text: str = wire(LineText(249))


@request(0x14, timeout=3.0)
class SetExchangeParams(Request[Empty]):
    """Codes as fact sheet §1.1: baud 0=2400 .. 6=115200; byte timeout 0-150 ms, then coarser."""

    password: int = wire(U32)
    port: int = wire(U8)  # 0-127 COM, 128 TCP socket
    baud_code: int = wire(U8)
    timeout_code: int = wire(U8)


@answer
class ExchangeParams(Answer):
    baud_code: int = wire(U8)
    timeout_code: int = wire(U8)


@request(0x15, timeout=3.0)
class ReadExchangeParams(Request[ExchangeParams]):
    password: int = wire(U32)
    port: int = wire(U8)


@request(0x17, timeout=3.0)
class PrintString(Request[OperatorAnswer]):
    """Print a line; ``flags`` bit 0 journal, bit 1 receipt tape.  ``text`` is sent as at least
    40 bytes; a wider model takes up to its line width (`models.line_width`)."""

    password: int = wire(U32)
    flags: int = wire(U8)
    text: str = wire(LineText(249))


# -- registers and tables -------------------------------------------------------------------------


@answer
class CashRegisterValue(Answer):
    operator: int = wire(U8)
    value: int = wire(Money6)  # kopecks


@request(0x1A, timeout=3.0)
class ReadCashRegister(Request[CashRegisterValue]):
    """Cash (money) register: 241 cash in drawer, 242/243 cash in/out this shift, 193-196 ..."""

    password: int = wire(U32)
    register: int = wire(U8)


@answer
class OperatingRegisterValue(Answer):
    operator: int = wire(U8)
    value: int = wire(U16)


@request(0x1B, timeout=3.0)
class ReadOperatingRegister(Request[OperatingRegisterValue]):
    """Operating register: 144-147 receipts this shift by type, 152 document number, ..."""

    password: int = wire(U32)
    register: int = wire(U8)


@request(0x1E, timeout=3.0)
class WriteTable(Request[Empty]):
    """``value`` as the field stores it: a BIN field at its size (LE), a CHAR field in cp1251."""

    password: int = wire(U32)
    table: int = wire(U8)
    row: int = wire(U16)
    field: int = wire(U8)
    value: bytes = wire(Raw)


@answer
class TableValue(Answer):
    value: bytes = wire(Raw)


@request(0x1F, timeout=3.0)
class ReadTable(Request[TableValue]):
    password: int = wire(U32)
    table: int = wire(U8)
    row: int = wire(U16)
    field: int = wire(U8)


# -- clock ----------------------------------------------------------------------------------------


@request(0x21, timeout=3.0)
class SetTime(Request[Empty]):
    password: int = wire(U32)
    time: dt.time = wire(TimeHMS())


@request(0x22, timeout=3.0)
class SetDate(Request[Empty]):
    """Puts the register in mode 6 until `ConfirmDate` repeats the same date."""

    password: int = wire(U32)
    date: dt.date = wire(DateDMY())


@request(0x23, timeout=3.0)
class ConfirmDate(Request[Empty]):
    password: int = wire(U32)
    date: dt.date = wire(DateDMY())


# -- printing -------------------------------------------------------------------------------------


@request(0x25, timeout=10.0)
class Cut(Request[OperatorAnswer]):
    password: int = wire(U32)
    partial: bool = wire(Bool)


@request(0x28, timeout=10.0)
class OpenDrawer(Request[OperatorAnswer]):
    password: int = wire(U32)
    drawer: int = wire(U8)  # 0 or 1


@request(0x29, timeout=10.0)
class Feed(Request[OperatorAnswer]):
    """Feed ``lines`` empty lines; ``flags`` bit 0 journal, bit 1 receipt tape, bit 2 slip."""

    password: int = wire(U32)
    flags: int = wire(U8)
    lines: int = wire(U8)


@request(0xB0, timeout=10.0)
class ContinuePrint(Request[OperatorAnswer]):
    """Resume a document interrupted by paper end (submode 3)."""

    password: int = wire(U32)


# -- reports and shift ----------------------------------------------------------------------------


@request(0x40, timeout=30.0)
class XReport(Request[OperatorAnswer]):
    password: int = wire(U32)


@request(0x41, timeout=65.0, repeatable=False)
class ZReport(Request[OperatorAnswer]):
    """Print the Z report and close the shift (the FN forms the shift-close document)."""

    password: int = wire(U32)


@answer
class OpenShiftAnswer(Answer):
    # 1.17 lists the operator byte but gives LEN 2; pyshtrih reads none, JavaPOS reads it.
    operator: int | None = wire(Trailing(U8))


@request(0xE0, timeout=100.0, repeatable=False)
class OpenShift(Request[OpenShiftAnswer]):
    password: int = wire(U32)


# -- cash in / out --------------------------------------------------------------------------------


@answer
class CashOperationAnswer(Answer):
    operator: int = wire(U8)
    document_number: int = wire(U16)


@request(0x50, timeout=10.0, repeatable=False)
class CashIn(Request[CashOperationAnswer]):
    password: int = wire(U32)
    amount: int = wire(Money5)


@request(0x51, timeout=10.0, repeatable=False)
class CashOut(Request[CashOperationAnswer]):
    password: int = wire(U32)
    amount: int = wire(Money5)


# -- receipts (classic path; new firmware prefers FF46/FF45) -------------------------------------


@dataclass(frozen=True, slots=True)
class _ClassicItem:
    password: int = wire(U32)
    quantity: Decimal = wire(Quantity(5, 3))
    price: int = wire(Money5)
    department: int = wire(U8)
    taxes: tuple[int, int, int, int] = wire(Tuple(4, U8))  # 0 none, 1-4 tax group
    text: str = wire(LineText(235))  # the 255-byte LEN less the 20 bytes before the text


@request(0x80, timeout=10.0, repeatable=False)
class Sale(_ClassicItem, Request[OperatorAnswer]):
    pass


@request(0x81, timeout=10.0, repeatable=False)
class Buy(_ClassicItem, Request[OperatorAnswer]):
    pass


@request(0x82, timeout=10.0, repeatable=False)
class SaleReturn(_ClassicItem, Request[OperatorAnswer]):
    pass


@request(0x83, timeout=10.0, repeatable=False)
class BuyReturn(_ClassicItem, Request[OperatorAnswer]):
    pass


@request(0x84, timeout=10.0, repeatable=False)
class Storno(_ClassicItem, Request[OperatorAnswer]):
    """Take back an item of the open receipt: the same quantity, price and department."""


@dataclass(frozen=True, slots=True)
class _Adjustment:
    password: int = wire(U32)
    amount: int = wire(Money5)
    taxes: tuple[int, int, int, int] = wire(Tuple(4, U8))
    text: str = wire(LineText(241))


@request(0x86, timeout=10.0, repeatable=False)
class Discount(_Adjustment, Request[OperatorAnswer]):
    """A discount of ``amount`` kopecks on the last item of the open receipt."""


@request(0x87, timeout=10.0, repeatable=False)
class Surcharge(_Adjustment, Request[OperatorAnswer]):
    """A surcharge of ``amount`` kopecks on the last item of the open receipt."""


@answer
class CloseReceiptAnswer(Answer):
    operator: int = wire(U8)
    change: int = wire(Money5)
    web_link: str = wire(TailText(247))  # only when table 1 asks for the QR requisites


@request(0x85, timeout=30.0, repeatable=False)
class CloseReceipt(Request[CloseReceiptAnswer]):
    password: int = wire(U32)
    payments: tuple[int, int, int, int] = wire(Tuple(4, Money5))  # cash, types 2-4
    discount: int = wire(S16)  # hundredths of a percent, negative = surcharge
    taxes: tuple[int, int, int, int] = wire(Tuple(4, U8))
    text: str = wire(LineText(224))


@request(0x88, timeout=10.0, repeatable=False)
class CancelReceipt(Request[OperatorAnswer]):
    password: int = wire(U32)


@request(0x8C, timeout=30.0)
class RepeatDocument(Request[OperatorAnswer]):
    """Print the last document again (a copy: nothing fiscal happens)."""

    password: int = wire(U32)


@answer
class SubtotalAnswer(Answer):
    operator: int = wire(U8)
    subtotal: int = wire(Money5)


@request(0x89, timeout=10.0)
class Subtotal(Request[SubtotalAnswer]):
    password: int = wire(U32)


@request(0x8D, timeout=10.0, repeatable=False)
class OpenReceipt(Request[OperatorAnswer]):
    password: int = wire(U32)
    receipt_type: ReceiptType = wire(EnumField(ReceiptType))


# -- device type ----------------------------------------------------------------------------------


@answer
class DeviceType(Answer):
    """FCh answer: model identity (1.17: ШТРИХ-М-01Ф model 250, ЛАЙТ-01Ф 252, ...)."""

    device_type: int = wire(U8)
    subtype: int = wire(U8)
    protocol_version: int = wire(U8)
    protocol_subversion: int = wire(U8)
    model: int = wire(U8)
    language: int = wire(U8)  # 0 Russian, 1 English
    name: str = wire(TailText(255))


@request(0xFC, timeout=3.0)
class GetDeviceType(Request[DeviceType]):
    """No password."""
