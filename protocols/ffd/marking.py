"""Marking codes (КМ, FFD 1.2, «Честный знак»): the scanned code, its type, and the tag values.

Sans-IO: no device, no driver.  Facts from the fact sheet ``ofd-cloud-marking.md`` §4.2 (FN B1h),
§4.5 (the 2000-series tags and their values) and §4.6 (code formats); each reading the sheet
leaves open is marked "reading" below.

* `parse_mark_code` -- a code as scanned (GS1 DataMatrix with GS 0x1D separators, the tobacco
  pack's 29 characters, a bare ``01``/``21`` short code) -> `MarkCode`: its GTIN, serial, key id
  (AI 91), crypto tail (AI 92 / 93), its FFD type (tag 2100), the byte offsets of AI 91 and 92
  that FN command B1h needs, its control code (tag 2115) and its GS1.М product code (tag 1305).
  A code that claims to be GS1 but is malformed raises `MarkingCodeError` naming the fault;
  anything else printable is type 0 ("not identified"), which the FN also accepts.
* `control_code` -- tag 2115: the last four digits of the decimal CRC-32 of tag 2000.
* The enums of tags 2003, 2004, 2100, 2105, 2106 (with its printed label), 2108, 2109, 2110, 2116,
  and of B1h's reason byte.

Readings chosen:

* 2115 is taken over the code's bytes as given, GS bytes included (JavaPOS ``Tag2115.getValue``
  hashes the bytes it is handed; the fact sheet's [?]).
* 2100 for a 44-character crypto tail: 4 (checkable) when AI 91 names a key, else 3.  The FN
  decides with its key table; the code alone cannot tell, so this is our reading.
* The tobacco pack code (14-digit GTIN, 7-character serial, 4-character МРЦ, 4-character crypto
  code, no separators, 29 characters) is type 1, short: a real ФН-М said so for
  ``04606203103348a3=EfODAB=UpGbL`` (FF61 answer in shtrih-m/fr_drv_ng issue #145), while it
  answered 5 for an AI 93 code (issue #165).
* 1305 (GS1.М, at most 38 characters) is ``01`` + GTIN + ``21`` + serial: the code without its
  crypto tail, which is what fits 38 (FFD table 118 is not in the stored sources, §5 gap 8).
* The GTIN's check digit is not enforced: the libfptr sample code of §4.6 fails it, and the FN
  does not check it either.
"""

from __future__ import annotations

import enum
import re
import zlib
from dataclasses import dataclass

from ..errors import CodecError

GS = 0x1D  # the GS1 group separator (FNC1 in the symbol) as scanners send it
MAX_CODE_LENGTH = 255  # B1h's length byte; tag 2000 allows 256, the FN command not


class MarkingCodeError(CodecError):
    """A scanned marking code is malformed; the message says what is wrong and where."""


# -- tag values -----------------------------------------------------------------------------------


class PlannedStatus(enum.IntEnum):
    """Tag 2003 «планируемый статус товара» (also 2110 «присвоенный статус»)."""

    PIECE_SOLD = 1  # штучный товар реализован
    MEASURED_IN_SALE = 2  # мерный товар в стадии реализации
    PIECE_RETURNED = 3  # штучный товар возвращен
    MEASURED_RETURNED = 4  # часть товара возвращена
    # 5 and 6 come from a later amendment (ILI and Ferma carry them; fact sheet §4.5 [?]).
    PIECE_IN_SALE = 5  # штучный товар в стадии реализации
    MEASURED_SOLD = 6  # мерный товар реализован
    UNCHANGED = 255  # статус товара не изменился


class LocalCheck(enum.IntFlag):
    """Tag 2004 «результат проверки КМ» (FN B1h): bit 0 checked by the FN, bit 1 positive, so
    0 not checked, 1 negative, 3 positive."""

    CHECKED = 1
    POSITIVE = 2


class LocalCheckReason(enum.IntEnum):
    """B1h's second answer byte: why the FN did (not) check the crypto code."""

    CHECKED = 0
    TYPE_NOT_CHECKABLE = 1
    NO_KEY = 2  # the FN holds no key for the AI 91 key id
    AI_91_92_MISSING = 3  # AI 91 and/or 92 absent or malformed
    OTHER = 4


class AnswerRefusal(enum.IntEnum):
    """Why FN command B6h refused ОИСМ's answer (its 20h result's reason byte; BFh for a
    notification receipt, where 3 is "bad notification number")."""

    BAD_SIGN = 1  # неверный фискальный признак ответа
    BAD_FORMAT = 2  # неверный формат реквизитов ответа
    BAD_REQUEST_NUMBER = 3
    BAD_FN_NUMBER = 4
    BAD_CRC = 5
    BAD_LENGTH = 7


class MarkCodeType(enum.IntEnum):
    """Tag 2100 «тип кода маркировки» (FNP table 127, FFD 1.2 enum)."""

    UNKNOWN = 0  # не идентифицирован
    SHORT = 1  # короткий КМ (no crypto tail)
    CRYPTO_88 = 2  # КП 88 characters, checkable in the FN
    CRYPTO_44_UNCHECKABLE = 3
    CRYPTO_44 = 4  # КП 44 characters, checkable in the FN
    CRYPTO_4_UNCHECKABLE = 5  # КП 4 characters (AI 93)

    @property
    def fn_checkable(self) -> bool:
        """Whether B1h checks the crypto code itself (types 2 and 4: the ones that carry the
        AI 91/92 offsets)."""
        return self in (MarkCodeType.CRYPTO_88, MarkCodeType.CRYPTO_44)


class ItemCheck(enum.IntFlag):
    """Tag 2106 «результат проверки сведений о товаре» (and 2005, same bits)."""

    CODE_CHECKED = 1  # КП КМ checked in the FN
    CODE_POSITIVE = 2  # ... and found valid
    STATUS_CHECKED = 4  # ОИСМ checked the planned status
    STATUS_CORRECT = 8  # ... and found it correct
    AUTONOMOUS = 16  # result formed by a KKT in autonomous mode

    @property
    def negative(self) -> bool:
        """A check that was made came out negative (the crypto code or the planned status):
        JavaPOS ``checkTag2106`` refuses the sale on exactly these two conditions."""
        code_bad = bool(self & ItemCheck.CODE_CHECKED) and not self & ItemCheck.CODE_POSITIVE
        status_bad = bool(self & ItemCheck.STATUS_CHECKED) and not self & ItemCheck.STATUS_CORRECT
        return code_bad or status_bad

    @property
    def label(self) -> str:
        """What the receipt prints before the item: ``[М+]`` all four checks made and passed,
        ``[М-]`` one made check failed, ``[М]`` otherwise (fact sheet §4.5's table: 0, 3, 16, 19
        ``[М]``; 1, 5, 7, 17 ``[М-]``; 15 ``[М+]``)."""
        if self.negative:
            return LABEL_NEGATIVE
        full = ItemCheck.CODE_CHECKED | ItemCheck.CODE_POSITIVE
        full |= ItemCheck.STATUS_CHECKED | ItemCheck.STATUS_CORRECT
        return LABEL_POSITIVE if self & full == full else LABEL_UNCHECKED


LABEL_POSITIVE = "[М+]"
LABEL_NEGATIVE = "[М-]"
LABEL_UNCHECKED = "[М]"


def item_check_label(value: int) -> str:
    """The printed label of a 2106 byte (`ItemCheck.label`)."""
    return ItemCheck(value & 0x1F).label


class Measure(enum.IntEnum):
    """Tag 2108 «мера количества предмета расчета»."""

    PIECE = 0
    GRAM = 10
    KILOGRAM = 11
    TONNE = 12
    CENTIMETRE = 20
    DECIMETRE = 21
    METRE = 22
    SQUARE_CENTIMETRE = 30
    SQUARE_DECIMETRE = 31
    SQUARE_METRE = 32
    MILLILITRE = 40
    LITRE = 41
    CUBIC_METRE = 42
    KILOWATT_HOUR = 50
    GIGACALORIE = 51
    DAY = 70
    HOUR = 71
    MINUTE = 72
    SECOND = 73
    KILOBYTE = 80
    MEGABYTE = 81
    GIGABYTE = 82
    TERABYTE = 83
    OTHER = 255


class RequestProcessing(enum.IntEnum):
    """Tag 2105 «коды обработки запроса» (in ОИСМ's answer)."""

    OK = 0  # request and code correct
    BAD_REQUEST = 1
    CODE_UNRECOGNISED = 2


class OismItemStatus(enum.IntEnum):
    """Tag 2109 «ответ ОИСМ о статусе товара»."""

    STATUS_CORRECT = 1
    STATUS_INCORRECT = 2
    CIRCULATION_SUSPENDED = 3


class NotificationProcessing(enum.IntEnum):
    """Tag 2111 «коды обработки уведомления»."""

    ACCEPTED = 0
    INCORRECT = 1


class OperationKind(enum.IntFlag):
    """Tag 2116 «вид операции»."""

    RECEIPT = 1
    CORRECTION = 2
    NO_REQUEST_AUTOMAT = 4  # sale without an ОИСМ request: vending
    NO_REQUEST_CATERING = 8
    NO_REQUEST_WHOLESALE = 16


# -- the control code (2115) ----------------------------------------------------------------------


def control_code(code: bytes | str) -> str:
    """Tag 2115: the last four digits of the decimal CRC-32 (IEEE 802.3: poly 0x04C11DB7, init
    and final XOR 0xFFFFFFFF -- zlib's) of the code as given, zero-padded.

    JavaPOS ``Tag2115Test``: ``"29293847568"`` -> ``"0976"``.
    """
    data = code.encode("ascii") if isinstance(code, str) else bytes(code)
    return f"{zlib.crc32(data):04d}"[-4:]


# -- parsing --------------------------------------------------------------------------------------

# GS1 application identifiers a marking code carries (GS1 General Specifications, figure 3.2-1):
# fixed-length ones need no GS after them, variable-length ones end at a GS or the code's end.
_FIXED_AI = {"01": 14, "02": 14, "11": 6, "13": 6, "15": 6, "17": 6, "8005": 6, "7003": 10}
_VARIABLE_AI = {"10": 20, "21": 20, "240": 30, "91": 90, "92": 90, "93": 90}
_MEASURE_AI = re.compile(r"3[1-6]\d\d")  # 310n-369n net weights and measures: 6 digits
_TOBACCO_PACK = re.compile(rb"\d{14}[\x21-\x7e]{15}")
_CRYPTO_LENGTHS = (44, 88)


@dataclass(frozen=True, slots=True)
class MarkCode:
    """A parsed marking code.  ``raw`` is the code exactly as scanned (GS bytes kept): what tag
    2000 and FN command B1h carry."""

    raw: bytes
    type: MarkCodeType
    gtin: str | None = None
    serial: str | None = None
    key_id: str | None = None  # AI 91
    crypto: str | None = None  # AI 92 (44/88), AI 93 or the tobacco pack's 4 characters
    ai91_offset: int | None = None  # byte offset of the "9" of AI 91 in ``raw``
    ai92_offset: int | None = None

    @property
    def text(self) -> str:
        return self.raw.decode("ascii")

    @property
    def control_code(self) -> str:
        """Tag 2115."""
        return control_code(self.raw)

    @property
    def product_code(self) -> str | None:
        """Tag 1305 (GS1.М) of tag 1163: ``01`` GTIN ``21`` serial, when both are known."""
        if self.gtin is None or self.serial is None:
            return None
        return f"01{self.gtin}21{self.serial}"

    @property
    def fn_offsets(self) -> tuple[int, int] | None:
        """B1h's two offset bytes (AI 91, AI 92): present for types 2 and 4 only."""
        if not self.type.fn_checkable or self.ai91_offset is None or self.ai92_offset is None:
            return None
        return self.ai91_offset, self.ai92_offset


def parse_mark_code(code: bytes | str) -> MarkCode:
    """Parse a code as scanned; raise `MarkingCodeError` saying what is wrong with a malformed
    one.  See the module docstring for the formats and the readings."""
    if isinstance(code, str) and not code.isascii():
        raise MarkingCodeError(
            f"marking code {code!r} has non-ASCII characters (a scanner in a Cyrillic keyboard "
            "layout?); scan it again"
        )
    raw = code.encode("ascii") if isinstance(code, str) else bytes(code)
    _check_bytes(raw)
    body_start = 1 if raw[0] == GS else 0  # a leading FNC1 some scanners pass on
    if (
        raw[body_start : body_start + 2] == b"01"
        and raw[body_start + 2 : body_start + 16].isdigit()
    ):
        return _parse_gs1(raw, body_start)
    if _TOBACCO_PACK.fullmatch(raw):
        text = raw.decode("ascii")
        return MarkCode(
            raw, MarkCodeType.SHORT, gtin=text[:14], serial=text[14:21],
            crypto=text[25:29],
        )  # fmt: skip
    return MarkCode(raw, MarkCodeType.UNKNOWN)


def _check_bytes(raw: bytes) -> None:
    if not raw:
        raise MarkingCodeError("the marking code is empty")
    if len(raw) > MAX_CODE_LENGTH:
        raise MarkingCodeError(
            f"the marking code is {len(raw)} bytes; FN command B1h takes at most {MAX_CODE_LENGTH}"
        )
    for index, byte in enumerate(raw):
        if byte != GS and not 0x20 < byte < 0x7F:
            raise MarkingCodeError(
                f"byte {byte:#04x} at offset {index} is neither printable ASCII nor GS (0x1d): "
                "pass the code exactly as the scanner sent it, with GS bytes, not as text with "
                "escapes"
            )


def _read_ai(raw: bytes, at: int) -> str:
    for size in (2, 3, 4):
        ai = raw[at : at + size].decode("ascii")
        if ai in _FIXED_AI or ai in _VARIABLE_AI or (size == 4 and _MEASURE_AI.fullmatch(ai)):
            return ai
    shown = raw[at : at + 4].decode("ascii", "replace")
    raise MarkingCodeError(
        f"unknown GS1 application identifier at offset {at} ({shown!r}...): a marking code "
        "continues with AI 21, 91, 92 or 93 (or a GS is missing after a variable-length field)"
    )


def _parse_gs1(raw: bytes, start: int) -> MarkCode:
    fields: dict[str, str] = {}
    offsets: dict[str, int] = {}
    at = start
    while at < len(raw):
        if raw[at] == GS:
            at += 1
            continue
        ai = _read_ai(raw, at)
        if ai in fields:
            raise MarkingCodeError(f"GS1 AI {ai} occurs twice (again at offset {at})")
        offsets[ai] = at
        value_at = at + len(ai)
        if ai in _FIXED_AI or ai not in _VARIABLE_AI:
            size = _FIXED_AI.get(ai, 6)
            value = raw[value_at : value_at + size]
            if len(value) != size or GS in value:
                raise MarkingCodeError(
                    f"GS1 AI {ai} at offset {at} needs {size} characters; "
                    f"{len(value.split(bytes((GS,)))[0])} follow"
                )
            at = value_at + size
        else:
            end = raw.find(GS, value_at)
            end = len(raw) if end < 0 else end
            value = raw[value_at:end]
            if not value:
                raise MarkingCodeError(f"GS1 AI {ai} at offset {at} is empty")
            if len(value) > _VARIABLE_AI[ai]:
                raise MarkingCodeError(
                    f"GS1 AI {ai} at offset {at} is {len(value)} characters; "
                    f"at most {_VARIABLE_AI[ai]} (is a GS missing after it?)"
                )
            at = end
        fields[ai] = value.decode("ascii")
    return _classify(raw, fields, offsets)


def _classify(raw: bytes, fields: dict[str, str], offsets: dict[str, int]) -> MarkCode:
    gtin = fields["01"]
    if not gtin.isdigit():
        raise MarkingCodeError(f"GTIN (AI 01) {gtin!r} must be 14 digits")
    serial = fields.get("21")
    key_id, crypto = fields.get("91"), fields.get("92")
    code_type = MarkCodeType.SHORT if serial is not None else MarkCodeType.UNKNOWN
    if crypto is not None:
        if len(crypto) not in _CRYPTO_LENGTHS:
            raise MarkingCodeError(
                f"AI 92 crypto tail is {len(crypto)} characters; expected 44 or 88"
            )
        if key_id is not None and len(key_id) != 4:
            raise MarkingCodeError(f"AI 91 key id is {len(key_id)} characters; expected 4")
        if len(crypto) == 88:
            if key_id is None:
                raise MarkingCodeError(
                    "AI 92 crypto tail of 88 characters needs AI 91 (the key id) before it"
                )
            code_type = MarkCodeType.CRYPTO_88
        else:
            code_type = (
                MarkCodeType.CRYPTO_44 if key_id is not None else MarkCodeType.CRYPTO_44_UNCHECKABLE
            )
    elif "93" in fields:
        crypto = fields["93"]
        if len(crypto) != 4:
            raise MarkingCodeError(f"AI 93 crypto code is {len(crypto)} characters; expected 4")
        code_type = MarkCodeType.CRYPTO_4_UNCHECKABLE
    elif key_id is not None:
        raise MarkingCodeError("AI 91 (key id) without AI 92 (the crypto tail it keys)")
    if code_type is not MarkCodeType.UNKNOWN and serial is None:
        raise MarkingCodeError("the code has a crypto tail but no serial number (AI 21)")
    return MarkCode(
        raw,
        code_type,
        gtin=gtin,
        serial=serial,
        key_id=key_id,
        crypto=crypto,
        ai91_offset=offsets.get("91") if key_id is not None else None,
        ai92_offset=offsets.get("92") if "92" in fields else None,
    )


__all__ = [
    "GS",
    "LABEL_NEGATIVE",
    "LABEL_POSITIVE",
    "LABEL_UNCHECKED",
    "MAX_CODE_LENGTH",
    "AnswerRefusal",
    "ItemCheck",
    "LocalCheck",
    "LocalCheckReason",
    "MarkCode",
    "MarkCodeType",
    "MarkingCodeError",
    "Measure",
    "NotificationProcessing",
    "OismItemStatus",
    "OperationKind",
    "PlannedStatus",
    "RequestProcessing",
    "control_code",
    "item_check_label",
    "parse_mark_code",
]
