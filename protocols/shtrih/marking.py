"""Marking-code commands of Shtrih-M registers (FFD 1.2): FF61, FF67-FF73.

Layouts: vendor protocol 1.17 (SH117) pp. 58-66 as the fact sheet ``ofd-cloud-marking.md`` §4.3
transcribes it, and the official JavaPOS driver ``shtrih-m/javapos_shtrih`` (commit af0a237b,
``Source/Core/src/com/shtrih/fiscalprinter/command/``): ``FSCheckMC.java`` (FF61),
``FSBindMC.java`` (FF67), ``FSReadMCNotificationStatus.java`` (FF68), ``FSAcceptMC.java`` (FF69),
``FSReadMCStatus.java`` (FF70), ``FSStartReadMCNotifications.java`` (FF71),
``FSReadMCNotification.java`` (FF72), ``FSConfirmMCNotification.java`` (FF73), and how
``SMFiscalPrinterImpl.checkItemCode`` uses FF61/FF69.  All commands take the system
administrator's password.

Readings chosen where the sources differ (the fact sheet's [?]):

* FF61/FF67 answer: after the code type comes a length byte L and L bytes: the FN's answer code
  to the online check, then one byte, then ОИСМ's TLVs.  L counts all of them (``FSBindMC`` reads
  byte 4 when L > 0, byte 5 when L > 1, TLVs when L > 2); L = 0 (autonomous mode, no online
  check) decodes to ``online = None``.  The byte after the FN code is tag 2106 when the code is 0
  and the B6h refusal reason when it is 20h (``checkItemCode`` passes it to ``checkTag2106`` and
  to ``getServerErrorCodeText`` respectively); FFh means ОИСМ did not answer in time (SH117).
  JavaPOS names the two bytes the other way round in ``FSBindMC``: a naming slip, not a layout.
  We refuse L = 1 (an FN code without its result byte): no source sends it.
* FF67 answer: the 2-byte "item code" JavaPOS reads with ``readShort`` (SH117: the first two
  bytes of tag 1162) is kept as a little-endian int; the FF61-style result that follows only
  when the register had to check the code itself is `MarkCheckResult` or None.
* FF67 request: the optional trailing FFh (volume-sort accounting, ОСУ) is JavaPOS's; absent
  means no.
* FF69: decision 2 = clear the FN's check results (JavaPOS ``ActionClearBuffer``, used by
  ``mcClearBuffer``; SH117 lists only 0 and 1).  The answer's 2106 byte is optional: FN B2h
  answers it only on "save", and ``mcClearBuffer`` reads nothing.
* FF68: the date is the FN's DATE_TIME, ``YY MM DD HH MM`` (the FN's BAh answer, which SH117 says
  FF68 returns as is); JavaPOS reads it as D M Y + H M, which we take for a driver slip.  13 bytes
  (SH117's "LEN 5" header is a typo: the field list is 13 bytes).
* FF72 answer: number(4), full size(2), offset(2), block size(2), data -- JavaPOS's, with the
  block-size field SH117 omits; a block size that disagrees with the data is refused.
* FF73: the CRC16 is 2 bytes (JavaPOS ``writeShort``, and FN D6h's own field); SH117 says 4.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import typing
from collections.abc import Callable
from typing import Any

from construct import Construct, SizeofError, ValidationError, stream_read, stream_write

from ..errors import CodecError
from ..ffd.marking import (
    AnswerRefusal,
    ItemCheck,
    LocalCheck,
    LocalCheckReason,
    MarkCodeType,
    PlannedStatus,
)
from ..fields import U8, U16, U32, Raw, Tail
from ..message import RequestClass, wire
from .classic import Empty
from .fields import DateTime5, EnumField, Trailing
from .message import Answer, Request, answer, request

_FN = 30.0  # OPOS waits 30 s for every FF command
_ONLINE = 40.0  # FF61/FF67 wait for ОИСМ: JavaPOS's default (table 19 field 8 sets the device's)

FN_CODE_OK = 0x00
FN_CODE_ANSWER_REFUSED = 0x20  # B6h refused ОИСМ's answer; the next byte is its reason
FN_CODE_NO_ANSWER = 0xFF  # ОИСМ did not answer in time (SH117)


@typing.dataclass_transform(frozen_default=True, field_specifiers=(wire, dataclasses.field))
def _fn_request(
    code: int, *, repeatable: bool = True, timeout: float = _FN
) -> Callable[[RequestClass], RequestClass]:
    return request(code, timeout=timeout, repeatable=repeatable)


# -- wire types of these commands -----------------------------------------------------------------


class LengthPrefixed(Construct):  # type: ignore[misc]
    """A length byte, then 1..255 bytes, with more fields after them (FF67's code)."""

    def _parse(self, stream: Any, context: Any, path: str) -> bytes:
        size = stream_read(stream, 1, path)[0]
        if size == 0:
            raise ValidationError("the length byte is 0: the field may not be empty", path=path)
        return typing.cast(bytes, stream_read(stream, size, path))

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        if not isinstance(obj, bytes | bytearray) or not 1 <= len(obj) <= 0xFF:
            raise ValidationError(f"must be 1..255 bytes, got {obj!r}", path=path)
        data = bytes((len(obj),)) + bytes(obj)
        stream_write(stream, data, len(data), path)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        raise SizeofError("a length-prefixed field has no fixed size", path=path)


@dataclasses.dataclass(frozen=True, slots=True)
class OnlineCheck:
    """The online part of an FF61 answer: the FN's answer code to ОИСМ's answer (`FN_CODE_OK`,
    `FN_CODE_ANSWER_REFUSED`, `FN_CODE_NO_ANSWER`), one byte -- tag 2106 when the code is 0, the
    B6h refusal reason (1 bad sign ... 7 bad length) when 20h -- and ОИСМ's TLVs."""

    fn_code: int
    result: int
    tlv: bytes = b""

    @property
    def item_check(self) -> ItemCheck | None:
        """Tag 2106, when the FN took ОИСМ's answer."""
        return ItemCheck(self.result & 0x1F) if self.fn_code == FN_CODE_OK else None

    @property
    def refusal(self) -> AnswerRefusal | int | None:
        """Why the FN refused ОИСМ's answer (code 20h): an `AnswerRefusal`, or the bare number
        when it is not one of them."""
        if self.fn_code != FN_CODE_ANSWER_REFUSED:
            return None
        try:
            return AnswerRefusal(self.result)
        except ValueError:
            return self.result

    @property
    def timed_out(self) -> bool:
        return self.fn_code == FN_CODE_NO_ANSWER


class OnlineBlock(Tail):
    """``L`` then L bytes: `OnlineCheck` (L >= 2) or None (L = 0); bytes after the block (newer
    firmware) are ignored, as answers allow."""

    def decode(self, data: bytes) -> OnlineCheck | None:
        if not data:
            raise ValueError("the length byte of the online-check block is missing")
        size, block = data[0], data[1 : 1 + data[0]]
        if len(block) != size:
            raise ValueError(f"the online-check block says {size} bytes, {len(block)} follow")
        if size == 0:
            return None
        if size == 1:
            raise ValueError("the online-check block has the FN's code but no result byte")
        return OnlineCheck(block[0], block[1], block[2:])

    def encode(self, value: Any) -> bytes:
        if value is None:
            return b"\x00"
        if not isinstance(value, OnlineCheck):
            raise TypeError(f"must be an OnlineCheck or None, got {value!r}")
        if not (0 <= value.fn_code <= 0xFF and 0 <= value.result <= 0xFF):
            raise ValueError(f"FN code and result must be bytes, got {value!r}")
        if len(value.tlv) > 0xFD:
            raise ValueError(f"ОИСМ's TLVs are {len(value.tlv)} bytes; at most 253 fit")
        body = bytes((value.fn_code, value.result)) + bytes(value.tlv)
        return bytes((len(body),)) + body


class VolumeSortMarker(Tail):
    """FF67's optional last byte: FFh = volume-sort accounting (ОСУ); absent = no."""

    def decode(self, data: bytes) -> bool:
        if data in (b"", b"\xff"):
            return data == b"\xff"
        raise ValueError(f"after the code only FFh (ОСУ) may follow, got {data.hex(' ')}")

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, bool):
            raise TypeError(f"must be a bool, got {value!r}")
        return b"\xff" if value else b""


class CheckTail(Tail):
    """FF67's optional FF61-style result: `MarkCheckResult` or None when absent."""

    def decode(self, data: bytes) -> MarkCheckResult | None:
        return MarkCheckResult.decode_data(data) if data else None

    def encode(self, value: Any) -> bytes:
        if value is None:
            return b""
        if not isinstance(value, MarkCheckResult):
            raise TypeError(f"must be a MarkCheckResult or None, got {value!r}")
        return value.encode_data()


class SizedBlock16(Tail):
    """A 2-byte little-endian size and exactly that many bytes, ending the message (FF72)."""

    def decode(self, data: bytes) -> bytes:
        if len(data) < 2:
            raise ValueError("the block's 2-byte size is missing")
        size = int.from_bytes(data[:2], "little")
        if size != len(data) - 2:
            raise ValueError(f"the block size says {size} bytes, {len(data) - 2} follow")
        return data[2:]

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, bytes | bytearray) or len(value) > 0xFFFF:
            raise ValueError(f"must be at most 65535 bytes, got {value!r}")
        return len(value).to_bytes(2, "little") + bytes(value)


# -- FF61 check a code ----------------------------------------------------------------------------


@answer
class MarkCheckResult(Answer):
    """FF61 answer: the FN's local check (B1h: tag 2004 and the reason), the code type it
    recognised (tag 2100), and the online check (None in autonomous mode)."""

    local: LocalCheck = wire(EnumField(LocalCheck))
    reason: int = wire(U8)  # `LocalCheckReason`; kept an int so a new reason still decodes
    code_type: int = wire(U8)  # `MarkCodeType`, same
    online: OnlineCheck | None = wire(OnlineBlock())

    @property
    def local_reason(self) -> LocalCheckReason | None:
        try:
            return LocalCheckReason(self.reason)
        except ValueError:
            return None

    @property
    def mark_code_type(self) -> MarkCodeType | None:
        try:
            return MarkCodeType(self.code_type)
        except ValueError:
            return None


@answer
class _CheckHeader(Answer):
    """FF61's fixed part: both lengths come before both blocks, so `CheckMarkCode` splits the
    request itself around this header."""

    STRICT = False  # the code and the TLVs follow

    password: int = wire(U32)
    planned_status: PlannedStatus = wire(EnumField(PlannedStatus))
    mode: int = wire(U8)
    code_length: int = wire(U8)
    tlv_length: int = wire(U8)


_CHECK_HEADER_SIZE = 8


def _as_check(error: CodecError) -> CodecError:
    """The header's error under the request's own name (a message names what the caller built)."""
    return CodecError(str(error).replace(_CheckHeader.__name__, "CheckMarkCode"))


@_fn_request(0xFF61, timeout=_ONLINE, repeatable=False)
class CheckMarkCode(Request[MarkCheckResult]):
    """Check a marking code: the register runs FN B1h, B5h, sends the request to ОИСМ, B6h.

    ``code`` is the code as scanned (GS bytes kept); ``tlv`` carries 2108 and 1023 (and 1291) for
    a partial sale, else nothing; ``mode`` is tag 2102, "now always 0".  Not repeatable: a blind
    resend checks again while the first result waits for FF69 (the FN refuses it, A1h).
    """

    password: int = wire(U32)
    planned_status: PlannedStatus = wire(EnumField(PlannedStatus))
    mode: int = wire(U8)
    code: bytes = wire(Raw)  # on the wire after both length bytes, see `encode_fields`
    tlv: bytes = wire(Raw, default=b"")

    def encode_fields(self) -> bytes:
        for name, value, low in (("code", self.code, 1), ("tlv", self.tlv, 0)):
            if not isinstance(value, bytes | bytearray) or not low <= len(value) <= 0xFF:
                raise CodecError(f"CheckMarkCode.{name} must be {low}..255 bytes, got {value!r}")
        header = _CheckHeader(
            self.password, self.planned_status, self.mode, len(self.code), len(self.tlv)
        )
        try:
            fixed = header.encode_data()
        except CodecError as exc:
            raise _as_check(exc) from None
        return fixed + bytes(self.code) + bytes(self.tlv)

    @classmethod
    def decode_values(cls, data: bytes) -> dict[str, Any]:
        try:
            header = _CheckHeader.decode_data(data)
        except CodecError as exc:
            raise _as_check(exc) from None
        body = data[_CHECK_HEADER_SIZE:]
        if len(body) != header.code_length + header.tlv_length:
            raise CodecError(
                f"CheckMarkCode announces a {header.code_length}-byte code and "
                f"{header.tlv_length} bytes of TLV, but {len(body)} bytes follow"
            )
        if header.code_length == 0:
            raise CodecError("CheckMarkCode carries an empty marking code")
        return {
            "password": header.password,
            "planned_status": header.planned_status,
            "mode": header.mode,
            "code": body[: header.code_length],
            "tlv": body[header.code_length :],
        }


# -- FF67 bind a code to the item -----------------------------------------------------------------


class DataMatrixType(enum.IntEnum):
    """FF67's code type byte (JavaPOS ``FSBindMC``, SH117)."""

    KM_88 = 0
    SYMMETRIC = 1
    TOBACCO = 2
    KM_44 = 3
    GS1_UNMARKED = 0xFF  # a GS1 code without marking


@answer
class MarkBound(Answer):
    """FF67 answer: the item code (first 2 bytes of 1162), the Data Matrix type (`DataMatrixType`
    values: 0 КМ88, 1 symmetric, 2 tobacco, 3 КМ44, FFh GS1 without marking) and, when the
    register had to check the code first, that check's result."""

    item_code: int = wire(U16)
    data_matrix_type: int = wire(U8)  # `DataMatrixType`; an int so a new type still decodes
    check: MarkCheckResult | None = wire(CheckTail())

    @property
    def matrix_type(self) -> DataMatrixType | None:
        try:
            return DataMatrixType(self.data_matrix_type)
        except ValueError:
            return None


@_fn_request(0xFF67, timeout=_ONLINE, repeatable=False)
class BindMarkCode(Request[MarkBound]):
    """Bind a checked code to the next item (FF46).  Not repeatable: the code would go into the
    receipt twice."""

    password: int = wire(U32)
    code: bytes = wire(LengthPrefixed())
    volume_sort: bool = wire(VolumeSortMarker(), default=False)


# -- FF68 notification status ---------------------------------------------------------------------


@answer
class NotificationStatus(Answer):
    """FF68 answer = FN BAh: exchange state (0 idle, 1 reading a notification, 2 waiting for its
    receipt), notifications queued, the current one's number and date, store use in percent."""

    state: int = wire(U8)
    queued: int = wire(U16)
    current_number: int = wire(U32)
    current_datetime: dt.datetime | None = wire(DateTime5())
    store_percent: int = wire(U8)


@_fn_request(0xFF68)
class GetNotificationStatus(Request[NotificationStatus]):
    password: int = wire(U32)


# -- FF69 accept / reject -------------------------------------------------------------------------


class MarkDecision(enum.IntEnum):
    REJECT = 0
    ACCEPT = 1
    CLEAR = 2  # clear all check results (JavaPOS ``ActionClearBuffer``)


@answer
class MarkDecided(Answer):
    """FF69 answer: tag 2106 for the accepted code (absent when nothing was saved)."""

    item_check: ItemCheck | None = wire(Trailing(EnumField(ItemCheck)))


@_fn_request(0xFF69, repeatable=False)
class DecideMarkCode(Request[MarkDecided]):
    """Accept (save in the FN) or reject the last checked code; send after every FF61.  Not
    repeatable: a second accept is out of sequence (A1h)."""

    password: int = wire(U32)
    decision: MarkDecision = wire(EnumField(MarkDecision))


# -- FF70 marking status --------------------------------------------------------------------------


@answer
class MarkingStatus(Answer):
    """FF70 answer = FN B0h (8 bytes): check state (0 blocked / table full, 1 none pending,
    2 after B1h, 3 after B5h, 4 after B6h), notification state (0 none, 1 being formed, 2 store
    full), permitted B-commands (bits: B1h B2h B3h B5h B6h B7h/1 B7h/2 B7h/3), results saved,
    codes in the notification, store warning (0 <50 % .. 4 full), notifications queued."""

    check_state: int = wire(U8)
    notification_state: int = wire(U8)
    permitted: int = wire(U8)
    saved_results: int = wire(U8)
    codes_in_notification: int = wire(U8)
    store_warning: int = wire(U8)
    notifications_queued: int = wire(U16)


@_fn_request(0xFF70)
class GetMarkingStatus(Request[MarkingStatus]):
    password: int = wire(U32)


# -- FF71-FF73 notification export (autonomous mode) ----------------------------------------------


@answer
class NotificationExport(Answer):
    """FF71 answer: notifications to export, the first one's number and size."""

    count: int = wire(U16)
    first_number: int = wire(U32)
    first_size: int = wire(U16)


@_fn_request(0xFF71)
class StartNotificationExport(Request[NotificationExport]):
    """(Re)start reading the unconfirmed notifications from the first."""

    password: int = wire(U32)


@answer
class NotificationBlock(Answer):
    """FF72 answer: a block (at most 128 bytes) of notification ``number`` of ``size`` bytes,
    from ``offset``."""

    number: int = wire(U32)
    size: int = wire(U16)
    offset: int = wire(U16)
    data: bytes = wire(SizedBlock16())


# Not repeatable: each FF72 moves the read cursor on (a reader that loses an answer starts again
# with FF71).  Past the last notification the register answers 08h "no data".
@_fn_request(0xFF72, repeatable=False)
class ReadNotificationBlock(Request[NotificationBlock]):
    password: int = wire(U32)


# Not repeatable: it deletes the notification from the FN's queue.
@_fn_request(0xFF73, repeatable=False)
class ConfirmNotification(Request[Empty]):
    """Confirm notification ``number`` was exported; ``crc`` is its CRC16 (FN D6h: CCITT, init
    FFFFh, over the whole notification except its 2 bytes at offset 2)."""

    password: int = wire(U32)
    number: int = wire(U32)
    crc: int = wire(U16)


__all__ = [
    "FN_CODE_ANSWER_REFUSED",
    "FN_CODE_NO_ANSWER",
    "FN_CODE_OK",
    "BindMarkCode",
    "CheckMarkCode",
    "ConfirmNotification",
    "DataMatrixType",
    "DecideMarkCode",
    "GetMarkingStatus",
    "GetNotificationStatus",
    "MarkBound",
    "MarkCheckResult",
    "MarkDecided",
    "MarkDecision",
    "MarkingStatus",
    "NotificationBlock",
    "NotificationExport",
    "NotificationStatus",
    "OnlineCheck",
    "ReadNotificationBlock",
    "StartNotificationExport",
]
