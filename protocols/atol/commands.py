"""ATOL command layer ("верхний уровень"): typed requests and answers, sans-IO.

A request is the block a v3 ``Add`` carries (or a v2 frame's data): ``pwd(2 BCD) code params…``.
The reply is ``55 err ext data…`` for most commands, with these exceptions (fact sheet §2.1):

* 3Fh answers ``44 data…``; an error comes as ``55 err ext``;
* 4Dh answers ``4D sum…``; an error comes as ``55 err ext`` (atol4j ``CashRequest``);
* A5h answers ``err data…`` (an error is the single error byte);
* 45h answers ``55 mode flags`` -- no error byte, so an error reply ``55 err ext`` cannot be told
  from an answer by its bytes (`reply_is_error` says False); the v3 buffer's Error status (A4/A7)
  marks it, and `decode_error` reads it then;
* 91h and A4h answer ``55 err data…`` -- no extended byte before the data (atol4j
  ``RegisterValueRequest`` / ``fiscal/*Request``, Zzzzipper ``RegisterReadResponse`` /
  ``FSDocSizeResponse`` agree).

Numbers are packed BCD, most significant byte first; money is int kopecks, quantities are
thousandths.  Texts use ATOL's external code page (`charset`), zero-padded or running to the end.

The commands, each a class below with its code, fields, answer and T5 timeout (the answer timeout,
atol4j ``transport/protocol/v2/Timeout.java``, fact sheet §1.2):

* state and identity: 3Fh `GetStatus`, 45h `GetStateCode`, A5h `GetDeviceType`, 4Dh
  `GetCashInDrawer`;
* modes: 56h `EnterMode`, 48h `ExitMode`;
* receipts: 9Ah `OpenShift`, 92h `OpenReceipt`, E6h `RegisterItem` (FFD 1.0), EAh `BeginItem`,
  EBh `EndItem`, E8h `WriteTlv` (FFD 1.05+), 99h `Payment`, 4Ah `CloseReceipt`,
  59h `CancelReceipt`, 49h `CashIn`, 4Fh `CashOut`;
* reports and printing: 5Ah `ZReport`, 67h `Report`, 4Ch `PrintLine`, 75h `Cut`, 47h `Beep`,
  ABh `PrintFnDocument`;
* registers: 91h `ReadRegister`, 91h 12h `ReadShiftState`, 91h 33h `ReadLastReceipt`, 91h 34h
  `ReadLastDocument`;
* the FN (A4h): 10h `GetFnShift`, 20h `GetFnOfdStatus`, 30h `GetFnStatus` and 33h `GetFnVersion`
  (both unverified), 31h `GetFnSerial`, 32h `GetFnValidity`, 45h `GetFnDocumentSize`,
  46h `GetFnDocumentData`;
* clock: 64h `SetDate`, EDh `SetDateTime`.

Host side: ``block = req.encode()``; ``answer = req.decode_answer(reply)`` (raises
`AtolDeviceError` for an error reply, `CodecError` for a malformed one).  Device side:
``req = decode_request(block)``; ``encode_answer(req.CODE, answer)`` or ``encode_error(req.CODE,
error, ext)``.  Requests and answers are parsed strictly: a missing or an extra byte is a
`CodecError`.

Where the sources disagree the reading chosen is said next to the layout; ``unverified`` marks a
layout no public source confirms.

Why one module of over 700 lines: it is the catalogue -- every command registers itself here, so
`decode_request` knows them all once this module is imported, and each layout sits next to the
source it was read from.  Most of its lines are those citations; the engine is
`kkt.protocols.message`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .. import fields, message
from ..errors import CodecError
from ..fields import U8, U16, U16BE, U32, Bcd, Bool, Bytes, Stamp, TailBytes
from ..message import AnswerT, Catalogue, RequestClass, answer, register, wire
from ..message import UnknownCommand as UnknownCommand  # raised here; importers catch it
from .charset import FixedText, TailText
from .errors import AtolDeviceError, device_error

DEFAULT_TIMEOUT: Final = 10.0

# Dates one byte a part: BCD in commands and 3Fh/91h replies, binary in the FN's A4h replies.
_BCD_YMDHMS = Stamp("YmdHMS", bcd=True, nullable=True)
_BCD_DMYHM = Stamp("dmYHM", bcd=True, nullable=True)  # minutes: seconds dropped when written
_BCD_DMY = Stamp("dmY", bcd=True)
_BCD_DMYHMS = Stamp("dmYHMS", bcd=True)
_BCD_DMYHMS_NULLABLE = Stamp("dmYHMS", bcd=True, nullable=True)
_FN_YMDHM = Stamp("YmdHM", nullable=True)
_FN_YMD = Stamp("Ymd", nullable=True)
_CATALOGUE: Catalogue[Request[Any]] = Catalogue()


class Answer(message.Answer):
    """Base of typed answers: the data after the reply's header, parsed strictly."""

    __slots__ = ()


@answer
class Done(Answer):
    """The generic success answer, ``55 00 00``."""


@dataclass(frozen=True, slots=True)
class Request(message.Request[AnswerT]):
    """Base of typed requests; the class attributes are filled in by `command`.

    ``password`` is the access password (0..9999, 2 bytes BCD, 0 by default on devices).
    ``PREFIX`` holds the bytes after the code that pick the request (A4h's sub-command).
    """

    password: int

    def encode(self) -> bytes:
        """``pwd(2 BCD) code params…``: the block an ``Add`` carries."""
        try:
            password = fields.encode_bcd(self.password, 2)
        except CodecError as exc:
            raise CodecError(f"{type(self).__name__}.password: {exc}") from None
        return password + bytes((self.CODE,)) + self.PREFIX + self.encode_fields()

    @classmethod
    def answer_data(cls, reply: bytes) -> bytes:
        return split_reply(cls.CODE, reply)


@typing.dataclass_transform(frozen_default=True, field_specifiers=(wire, dataclasses.field))
def command(
    code: int, *, prefix: bytes = b"", repeatable: bool = False, timeout: float = DEFAULT_TIMEOUT
) -> Callable[[RequestClass], RequestClass]:
    """Register a request dataclass under ``code`` (and ``prefix``).

    ``repeatable`` is True only for read-only queries: sending them twice changes nothing, so a
    driver may resend one after a lost reply.  ``timeout`` is atol4j's T5 for the code.
    """

    def decorate(cls: RequestClass) -> RequestClass:
        return register(
            _CATALOGUE, cls, code, prefix=prefix, timeout=timeout, repeatable=repeatable
        )

    return decorate


# -- reply envelope -------------------------------------------------------------------------------

STATUS_MARK: Final = 0x44  # 'D', first byte of 3Fh's answer
REPLY_MARK: Final = 0x55  # 'U', first byte of the usual reply

# The bytes before an answer's data, by command code; the default is 55 00 00.
_HEADERS: Final = {
    0x3F: b"\x44",
    0xA5: b"\x00",
    0x45: b"\x55",
    0x91: b"\x55\x00",
    0xA4: b"\x55\x00",
    0x4D: b"\x4d",
}
_DEFAULT_HEADER: Final = bytes((REPLY_MARK, 0, 0))


def answer_header(code: int) -> bytes:
    """The bytes a successful reply to ``code`` starts with, before the answer's data."""
    return _HEADERS.get(code, _DEFAULT_HEADER)


def reply_is_error(code: int, reply: bytes) -> bool:
    """Whether ``reply`` (to command ``code``) is an error reply.

    A5h: a non-zero first byte.  45h: never -- its answer ``55 mode flags`` has the error reply's
    shape, so only the transport can say (the v3 buffer's Error status); use `decode_error`.
    Others: ``55`` and a non-zero error byte.
    """
    reply = bytes(reply)
    if not reply or code == 0x45:
        return False
    if code == 0xA5:
        return reply[0] != 0
    return reply[0] == REPLY_MARK and len(reply) >= 2 and reply[1] != 0


def decode_error(code: int, reply: bytes) -> AtolDeviceError:
    """The `AtolDeviceError` an error reply to ``code`` carries (``55 err [ext]``, or A5h's
    single byte); `CodecError` when ``reply`` is not an error reply of that shape."""
    reply = bytes(reply)
    if code == 0xA5:
        if len(reply) != 1 or reply[0] == 0:
            raise CodecError(f"A5h's error reply is one non-zero byte, got {reply.hex(' ')}")
        return device_error(code, reply[0])
    if len(reply) not in (2, 3) or reply[0] != REPLY_MARK or reply[1] == 0:
        raise CodecError(f"an error reply is 55 err [ext], err not 0; got {reply.hex(' ') or '-'}")
    return device_error(code, reply[1], reply[2] if len(reply) == 3 else 0)


def split_reply(code: int, reply: bytes) -> bytes:
    """The answer's data in ``reply`` to ``code``; raise the device's error or a `CodecError`."""
    reply = bytes(reply)
    if reply_is_error(code, reply):
        raise decode_error(code, reply)
    header = answer_header(code)
    if not reply.startswith(header):
        raise CodecError(
            f"a reply to {code:02X}h starts with {header.hex(' ')}, got "
            f"{reply.hex(' ') or 'nothing'}; the reply belongs to another command or is cut short"
        )
    return reply[len(header) :]


def encode_answer(code: int, answer: Answer) -> bytes:
    """Device side: the full reply block of a successful ``code``."""
    return answer_header(code) + answer.encode_data()


def encode_error(code: int, error: int, ext: int = 0) -> bytes:
    """Device side: the reply refusing ``code`` with ``error`` (and ``ext``).

    ``55 err ext``; for A5h the single error byte (it has no extended byte).  45h's error reply has
    the shape of its answer: send it in the v3 buffer's Error status so the host can tell.
    """
    if not 1 <= error <= 0xFF:
        raise CodecError(f"an error code is 1..255, got {error}")
    if not 0 <= ext <= 0xFF:
        raise CodecError(f"an extended error code is 0..255, got {ext}")
    if code == 0xA5:
        if ext:
            raise CodecError("A5h's error reply is one byte: it has no extended error")
        return bytes((error,))
    return bytes((REPLY_MARK, error, ext))


def decode_request(command: bytes) -> Request[Any]:
    """Device side: ``pwd(2) code params…`` as its typed request.

    `UnknownCommand` for a code it does not know; `CodecError` for a bad layout.  A 91h of a
    register with its own class (`TYPED_REGISTERS`) decodes as that class.
    """
    command = bytes(command)
    if len(command) < 3:
        raise CodecError(f"a command is pwd(2), a code and more; got {command.hex(' ') or '-'}")
    try:
        password = fields.decode_bcd(command[:2])
    except CodecError as exc:
        raise CodecError(f"password: {exc}") from None
    code, params = command[2], command[3:]
    if not _CATALOGUE.knows(code):
        raise UnknownCommand(code)
    cls = _CATALOGUE.find(code, params)
    if cls is None:
        raise UnknownCommand(code, params[0] if params else None)
    return cls(password, **cls.decode_values(params[len(cls.PREFIX) :]))


def request_types() -> dict[tuple[int, bytes], type[Request[Any]]]:
    """Every registered request class by (code, prefix)."""
    return {(cls.CODE, cls.PREFIX): cls for cls in _CATALOGUE.classes()}


# -- 3Fh, 45h, A5h: state and identity ------------------------------------------------------------


@answer
class Status(Answer):
    """3Fh's answer after ``44`` (29 bytes; fact sheet §2.4, atol4j, MultiMag, Zzzzipper agree).

    ``flags``: `StatusFlags`; ``mode``: the whole byte (`split_mode`); ``firmware``: bytes 15-16
    as one big-endian number, as the wire has them; ``receipt_state``: 0 closed, else the
    `ReceiptType`; ``interface``: `Interface`.
    """

    cashier: int = wire(Bcd(1))
    hall_number: int = wire(U8)
    when: dt.datetime | None = wire(_BCD_YMDHMS)
    flags: int = wire(U8)
    serial: int = wire(Bcd(4))
    model: int = wire(U8)
    firmware: int = wire(U16BE)
    mode: int = wire(U8)
    receipt_number: int = wire(Bcd(2))
    shift_number: int = wire(Bcd(2))
    receipt_state: int = wire(U8)
    receipt_sum: int = wire(Bcd(5))
    decimal_point: int = wire(U8)
    interface: int = wire(U8)


@command(0x3F, repeatable=True)
class GetStatus(Request[Status]):
    """3Fh: the register's state (mode, shift, receipt, clock)."""


@answer
class StateCode(Answer):
    """45h's answer after ``55``: the mode byte and the printer's `StateFlags`."""

    mode: int = wire(U8)
    flags: int = wire(U8)


@command(0x45, repeatable=True)
class GetStateCode(Request[StateCode]):
    """45h: mode and printer state."""


@answer
class DeviceType(Answer):
    """A5h's answer after the ``00`` error byte (Zzzzipper ``DeviceInfoResponse``, atol4j).

    ``mode`` is the two mode bytes as one big-endian number (``10 00`` is 0x1000; MultiMag prints
    them as hex digits); ``version`` the five version bytes as sent (major, minor, language,
    build BCD2 per Zzzzipper's comment); ``name`` the model name in the external code page.
    """

    protocol: int = wire(U8)
    device_type: int = wire(U8)
    model: int = wire(U8)
    mode: int = wire(U16BE)
    version: bytes = wire(Bytes(5))
    name: str = wire(TailText())


@command(0xA5, repeatable=True)
class GetDeviceType(Request[DeviceType]):
    """A5h: protocol, type, model, firmware and name."""


# -- modes ----------------------------------------------------------------------------------------


@command(0x56)
class EnterMode(Request[Done]):
    """56h: enter ``mode`` (`Mode`) with its password (4 bytes BCD, right-aligned: 30 is
    ``00 00 00 30``)."""

    mode: int = wire(U8)
    mode_password: int = wire(Bcd(4))


@command(0x48)
class ExitMode(Request[Done]):
    """48h: leave the current mode (twice from a sub-mode)."""


# -- receipts -------------------------------------------------------------------------------------


@command(0x9A)
class OpenShift(Request[Done]):
    """9Ah: open a shift; ``flags`` bit 0 test mode; ``text`` optional (atol4j sends none,
    MultiMag one zero byte, which reads back as "")."""

    flags: int = wire(U8, default=0)
    text: str = wire(TailText(), default="")


@command(0x92)
class OpenReceipt(Request[Done]):
    """92h: open a receipt of `ReceiptType` ``receipt_type``.

    ``flags``: `TEST_MODE` (bit 0); "don't print" is `NO_PRINT` = 0x04 (Zzzzipper, MultiMag:
    the majority reading, fact sheet §7.3) or `NO_PRINT_ATOL4J` = 0x02 (atol4j).
    """

    flags: int = wire(U8)
    receipt_type: int = wire(U8)


@command(0xE6, timeout=50.0)
class RegisterItem(Request[Done]):
    """E6h: register an item, FFD 1.0 style (104-byte command; atol4j, MultiMag, Zzzzipper).

    ``price`` kopecks BCD6, ``quantity`` thousandths BCD5, ``discount`` kopecks BCD6, ``section``
    BCD1 (Zzzzipper; a plain byte in MultiMag -- the same for 0..9).  The 17 bytes after the
    section are zeros here (MultiMag); Zzzzipper reads them as a 16-byte text and a reserved byte
    -- unverified, ignored when read.
    """

    flags: int = wire(U8)
    name: str = wire(FixedText(64))
    price: int = wire(Bcd(6))
    quantity: int = wire(Bcd(5))
    discount_type: int = wire(U8)
    discount_sign: int = wire(U8)
    discount: int = wire(Bcd(6))
    tax: int = wire(U8)
    section: int = wire(Bcd(1), reserved_after=17)


@command(0xEA, timeout=50.0)
class BeginItem(Request[Done]):
    """EAh: begin an item, FFD 1.05+ (Zzzzipper ``FN105CheckAddStartRequest``; it sends param 1).

    Tag writes (E8h) may follow before `EndItem`.
    """

    flags: int = wire(U8)
    param: int = wire(U8)
    reserved: int = wire(U8, default=0)


@command(0xEB, timeout=50.0)
class EndItem(Request[Done]):
    """EBh: end the item (Zzzzipper ``FN105CheckAddEndRequest``, the only public source).

    Money in kopecks BCD7, ``quantity`` thousandths BCD5; ``section``, ``payment_object`` (tag
    1212) and ``payment_method`` (tag 1214) are BCD1 as Zzzzipper writes them; two reserved zero
    bytes, then the name to the end of the block.
    """

    flags: int = wire(U8)
    price: int = wire(Bcd(7))
    quantity: int = wire(Bcd(5))
    amount: int = wire(Bcd(7))
    tax_type: int = wire(U8)
    tax_sum: int = wire(Bcd(7))
    section: int = wire(Bcd(1))
    payment_object: int = wire(Bcd(1))
    payment_method: int = wire(Bcd(1))
    discount_sign: int = wire(U8)
    discount: int = wire(Bcd(7), reserved_after=2)
    name: str = wire(TailText())


@command(0xE8)
class WriteTlv(Request[Done]):
    """E8h: write a fiscal tag.

    Unverified: chosen layout ``E8 flags tlv…`` (``tlv`` the whole tag: type, length, value).  No
    public encoder is known (atol4j only names the command); check it on a device.
    """

    flags: int = wire(U8)
    tlv: bytes = wire(TailBytes())


@answer
class PaymentAnswer(Answer):
    """99h's answer after ``55 00 00``: what is left to pay and the change, kopecks BCD5.

    Fact sheet §2.3 layout (13-byte reply); atol4j's ``RemittanceResult`` expects 12 bytes but
    reads from offset 3, which only fits the 13-byte reading.
    """

    remainder: int = wire(Bcd(5))
    change: int = wire(Bcd(5))


@command(0x99)
class Payment(Request[PaymentAnswer]):
    """99h: a payment of `PaymentType` ``payment_type`` (kopecks BCD5; atol4j)."""

    flags: int = wire(U8)
    payment_type: int = wire(U8)
    amount: int = wire(Bcd(5))


@command(0x4A, timeout=20.0)
class CloseReceipt(Request[Done]):
    """4Ah: close the receipt, paying ``amount`` (0 = exactly the total) of ``payment_type``.

    The type is a plain byte (atol4j, MultiMag; Zzzzipper writes BCD1, the same for 1..5).
    """

    flags: int = wire(U8)
    payment_type: int = wire(U8)
    amount: int = wire(Bcd(5))


@command(0x59)
class CancelReceipt(Request[Done]):
    """59h: cancel (annul) the open receipt."""


@command(0x49)
class CashIn(Request[Done]):
    """49h: cash in, kopecks BCD5; ``flags`` bit 0 test mode."""

    flags: int = wire(U8)
    amount: int = wire(Bcd(5))


@command(0x4F)
class CashOut(Request[Done]):
    """4Fh: cash out, kopecks BCD5; ``flags`` bit 0 test mode."""

    flags: int = wire(U8)
    amount: int = wire(Bcd(5))


@answer
class CashInDrawer(Answer):
    """4Dh's answer after ``4D``: the cash in the drawer, kopecks, packed BCD.

    atol4j ``CashRequest.Response`` takes the byte after ``4D`` to the reply's end as the BCD
    sum (an error reply starts with ``55`` instead).  Unverified: its length -- 7 bytes, as
    ATOL's other register sums (91h 34h's total) are; atol4j does not fix one.
    """

    amount: int = wire(Bcd(7))


@command(0x4D, repeatable=True)
class GetCashInDrawer(Request[CashInDrawer]):
    """4Dh: the cash in the drawer (atol4j ``CashRequest``, code 4Dh, no parameters)."""


# -- reports and printing -------------------------------------------------------------------------


@command(0x5A, timeout=40.0)
class ZReport(Request[Done]):
    """5Ah: the Z report, closing the shift (mode 3)."""


@command(0x67)
class Report(Request[Done]):
    """67h: a report without closing the shift (mode 2): 1 X, 2 sections, 3 cashiers, 5 hourly,
    7 counts, 8 service, 9 fiscal, 10h/13h/14h/15h goods."""

    report_type: int = wire(U8)


@command(0x4C)
class PrintLine(Request[Done]):
    """4Ch: print a line of text."""

    text: str = wire(TailText())


@command(0x75)
class Cut(Request[Done]):
    """75h: cut the paper, ``00`` full or ``01`` partial (atol4j ``CutCommand``)."""

    partial: bool = wire(Bool())


@command(0x47)
class Beep(Request[Done]):
    """47h: sound the buzzer (lazersib/multimag atol.php ``cmdBeep``, kurbatov/atol4j
    ``BuzzCommand``: the bare code, no parameters)."""


@command(0xAB, timeout=120.0)
class PrintFnDocument(Request[Done]):
    """ABh: print a copy of fiscal document ``number`` from the FN, BCD5 (lazersib/multimag
    atol.php ``cmdRePrintDocument``, sent in mode 6; T5 120 s, atol4j ``Timeout``)."""

    number: int = wire(Bcd(5))


# -- registers ------------------------------------------------------------------------------------


@answer
class RegisterValue(Answer):
    """91h's answer after ``55 00``: the register's bytes as sent."""

    data: bytes = wire(TailBytes())


@command(0x91, repeatable=True, timeout=45.0)
class ReadRegister(Request[RegisterValue]):
    """91h: read a register (atol4j ``RegisterValueRequest``).  On the device side a register
    with its own class (12h; 33h and 34h with zero parameters) decodes as that class."""

    register: int = wire(U8)
    param1: int = wire(U8, default=0)
    param2: int = wire(U8, default=0)


SHIFT_STATE_REGISTER: Final = 0x12
LAST_RECEIPT_REGISTER: Final = 0x33
LAST_DOCUMENT_REGISTER: Final = 0x34


@answer
class ShiftState(Answer):
    """Register 12h after ``55 00``: the shift's ``state`` and a date-time, DD MM YY hh mm ss BCD.

    The one public parser (RPiVendApp ``CashDesk.cs`` ``StageProperties``, the UWP C# app of fact
    sheet §5.1, source repository unknown) reads a 10-byte task reply ``A3 55 err state DD MM YY
    hh mm ss``, the states 0 closed, 1 open, 2 older than 24 hours.  Unact/kkm (Ruby,
    lib/kkm/constants/register_number.rb at f2ed5a8) names register 18 (12h) "the shift-open flag"
    and its 0.1.7 changelog "whether it is open and the time it opened or closed": the date-time
    is read here as the open shift's opening, or the last closed shift's closing (None before the
    first shift).
    """

    state: int = wire(U8)
    when: dt.datetime | None = wire(_BCD_DMYHMS_NULLABLE)


SHIFT_CLOSED, SHIFT_OPEN, SHIFT_EXPIRED = 0, 1, 2  # `ShiftState.state`


@command(0x91, prefix=bytes((SHIFT_STATE_REGISTER,)), repeatable=True, timeout=45.0)
class ReadShiftState(Request[ShiftState]):
    """91h register 12h: the shift's state.  RPiVendApp sends the parameters ``00 01`` (their
    meaning is not public: kept as sent); a `ReadRegister` of 12h decodes as this class."""

    param1: int = wire(U8, default=0)
    param2: int = wire(U8, default=0)


@answer
class LastDocument(Answer):
    """Register 34h after ``55 00`` (Zzzzipper ``RegisterReadResponse``, the only source).

    FD ``number`` BCD5, ``document_type``, ``total`` kopecks BCD7, ``when`` as DD MM YY hh mm BCD
    (minutes: seconds are dropped when written), ``fiscal_sign`` BCD5, three reserved bytes.
    """

    number: int = wire(Bcd(5))
    document_type: int = wire(U8)
    total: int = wire(Bcd(7))
    when: dt.datetime | None = wire(_BCD_DMYHM)
    fiscal_sign: int = wire(Bcd(5), reserved_after=3)


@command(0x91, prefix=bytes((LAST_DOCUMENT_REGISTER, 0, 0)), repeatable=True, timeout=45.0)
class ReadLastDocument(Request[LastDocument]):
    """91h register 34h: the last fiscal document (number, type, total, time, fiscal sign)."""


@command(0x91, prefix=bytes((LAST_RECEIPT_REGISTER, 0, 0)), repeatable=True, timeout=45.0)
class ReadLastReceipt(Request[LastDocument]):
    """91h register 33h: the last receipt, in `LastDocument`'s layout.

    Zzzzipper/projects AtolCommandLayer.cpp ``gotoStateLastSale`` reads register 33h
    (``Register_LastSale``) after closing a receipt and parses it with ``RegisterReadResponse``
    -- the layout of `LastDocument`; Unact/kkm names register 51 (33h) "the last receipt (sum,
    type, time)".  Unverified: the type byte is read as the receipt's 92h type (1 sale, 2 sale
    return, 4 buy, 5 buy return, 7..10 corrections), the "type" of a receipt.
    """


# 91h registers with their own request class: a `ReadRegister` of them decodes as that class.
TYPED_REGISTERS: Final = {
    SHIFT_STATE_REGISTER: ReadShiftState,
    LAST_RECEIPT_REGISTER: ReadLastReceipt,
    LAST_DOCUMENT_REGISTER: ReadLastDocument,
}


# -- A4h: fiscal storage queries ------------------------------------------------------------------
#
# A4h passes the FN's own commands and fields through, binary, in the FN's byte order
# (little-endian).  The fact sheet marks the order disputed (§2.1, §7.5): atol4j reads 10h/20h
# little-endian, and Unact/kkm (Ruby; lib/kkm/device_interface.rb at commit f2ed5a8, which sends
# raw protocol-3.1 blocks through the driver's RunCommand) reads 20h little-endian and writes
# 45h's document number little-endian, where Zzzzipper declares 45h big-endian -- in code no
# state of its AtolCommandLayer.cpp reaches (``gotoStateDocSize`` has no caller).  The working
# readers win: little-endian throughout.


@answer
class FnShift(Answer):
    """A4h 10h: shift state (atol4j ``ShiftStateRequest``).

    Number and receipts are 2-byte little-endian binary: A4h passes the FN's own 10h answer
    through, and the FN gives both as uint16 (fact sheet ``fn-ffd-ofd.md`` §4.6, S1 §4.6); an
    independent check of our documents (issue 15) agreed.  atol4j decodes the same bytes as BCD
    (the two agree below 10); we do not follow it.
    """

    open: bool = wire(Bool())
    number: int = wire(U16)
    receipts: int = wire(U16)


@command(0xA4, prefix=b"\x10", repeatable=True)
class GetFnShift(Request[FnShift]):
    """A4h 10h: is a shift open, its number, receipts in it."""


@answer
class FnOfdStatus(Answer):
    """A4h 20h: exchange with the OFD (atol4j ``FiscalDataExchangeStateRequest``).

    ``state`` bits: 0 connected, 1 unsent messages, 2 waiting for a reply, 3 command from the OFD,
    4 connection settings changed, 5 waiting for a command's reply.  ``unsent`` 2 bytes and
    ``first_unsent`` 4 bytes little-endian; ``first_unsent_when`` YY MM DD hh mm binary.
    """

    state: int = wire(U8)
    reading: bool = wire(Bool())
    unsent: int = wire(U16)
    first_unsent: int = wire(U32)
    first_unsent_when: dt.datetime | None = wire(_FN_YMDHM)


@command(0xA4, prefix=b"\x20", repeatable=True)
class GetFnOfdStatus(Request[FnOfdStatus]):
    """A4h 20h: the OFD exchange state and the oldest unsent document."""


@answer
class FnStatus(Answer):
    """A4h 30h: the FN's status -- its life phase, warnings and last document.

    The FN's own 30h answer passed through, 30 bytes (fact sheet fn-ffd-ofd.md §4.3), as
    Unact/kkm ``fn_status`` (f2ed5a8) reads it: phase at 2, document 3, data received 4, shift
    open 5, flags 6, the serial at 12..27 of ``55 00 …`` -- the one public ATOL reader; the
    last document's number after the serial is the FN's (it reads no further).  Phase, current
    document, document data received, shift open, warning flags, the last document's date-time
    YY MM DD hh mm binary, the FN serial (16 ASCII), the last document's number (4 bytes
    little-endian, as 20h's).
    """

    phase: int = wire(U8)
    current_document: int = wire(U8)
    document_data_received: bool = wire(Bool())
    shift_open: bool = wire(Bool())
    warnings: int = wire(U8)
    last_document_when: dt.datetime | None = wire(_FN_YMDHM)
    serial: str = wire(FixedText(16))
    last_document: int = wire(U32)


@command(0xA4, prefix=b"\x30", repeatable=True)
class GetFnStatus(Request[FnStatus]):
    """A4h 30h: the FN's life phase, warnings and last document (Unact/kkm ``FN_STATUS``)."""


@answer
class FnVersion(Answer):
    """A4h 33h: the FN's firmware version (16 ASCII, zero-padded) and whether it is serial
    firmware (1) or a prototype's (0).

    The FN's own 33h answer (fact sheet fn-ffd-ofd.md §4.4) passed through, as Unact/kkm
    ``fn_version`` (f2ed5a8) reads it: the version at 2..17 of ``55 00 …``, then 0 for debug
    (prototype) firmware.
    """

    version: str = wire(FixedText(16))
    production: bool = wire(Bool())


@command(0xA4, prefix=b"\x33", repeatable=True)
class GetFnVersion(Request[FnVersion]):
    """A4h 33h: the FN's firmware version (Unact/kkm ``FN_VERSION``)."""


@answer
class FnSerial(Answer):
    """A4h 31h: the FN's serial number as text (atol4j ``FiscalMemoryNumberRequest``)."""

    serial: str = wire(TailText())


@command(0xA4, prefix=b"\x31", repeatable=True)
class GetFnSerial(Request[FnSerial]):
    """A4h 31h: the FN's serial number."""


@answer
class FnValidity(Answer):
    """A4h 32h: FN expiry YY MM DD binary, registrations left and done (atol4j
    ``FiscalMemoryExpirationRequest``)."""

    expires: dt.date | None = wire(_FN_YMD)
    registrations_left: int = wire(U8)
    registrations_done: int = wire(U8)


@command(0xA4, prefix=b"\x32", repeatable=True)
class GetFnValidity(Request[FnValidity]):
    """A4h 32h: FN validity and registrations."""


@answer
class FnDocumentSize(Answer):
    """A4h 45h: the document's type and its TLV size, 2 bytes each, little-endian as the FN's
    own 45h answer (see the note above; Zzzzipper's unreached ``FSDocSizeResponse`` declares them
    big-endian)."""

    document_type: int = wire(U16)
    size: int = wire(U16)


@command(0xA4, prefix=b"\x45", repeatable=True)
class GetFnDocumentSize(Request[FnDocumentSize]):
    """A4h 45h: select document ``number`` (4 bytes little-endian: Unact/kkm ``cheque_data``
    writes ``A4 45`` and the number's bytes reversed) for reading with `GetFnDocumentData`."""

    number: int = wire(U32)


@answer
class FnDocumentData(Answer):
    """A4h 46h: the next block of the selected document's TLV -- one first-level tag (type,
    length, value), as Unact/kkm ``cheque_data`` parses each answer and the FN's own 46h gives
    them (fact sheet fn-ffd-ofd.md §4.4); after the last, an error."""

    data: bytes = wire(TailBytes())


@command(0xA4, prefix=b"\x46")
class GetFnDocumentData(Request[FnDocumentData]):
    """A4h 46h: the next block of the document selected by 45h.

    Not repeatable: each call moves the read position, so a resend after a lost reply skips a
    block -- select the document again (45h) and restart.
    """


# -- clock ----------------------------------------------------------------------------------------


@command(0x64)
class SetDate(Request[Done]):
    """64h: set the date, DD MM YY BCD (atol4j ``SetDateCommand``)."""

    date: dt.date = wire(_BCD_DMY)


@command(0xED)
class SetDateTime(Request[Done]):
    """EDh: set date and time, DD MM YY hh mm ss BCD (atol4j ``SetDateTimeCommand``)."""

    when: dt.datetime = wire(_BCD_DMYHMS)
