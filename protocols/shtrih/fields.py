"""Wire types of Shtrih-M parameters, as `construct` adapters.

Conventions (fact sheet ``shtrih-protocol.md`` §2.1): integers little-endian; money in kopecks,
5 bytes (6 for cash registers); quantities ×1000 in 5 bytes for the classic sale commands and
×10⁶ in 6 bytes for FF46; dates ``DD MM YY`` for classic commands and ``YY MM DD [HH MM]`` for the
fiscal-storage ones; printed text WIN-1251 in fixed fields padded with 00 (a 00 ends the string).

Values leave this module as Python types: `int` kopecks, `Decimal` quantities, `date`, `time`,
`datetime`, `str`, enums.  An all-zero date means "none" (the FN reports 00 00 00 when it has no
unconfirmed document), so date fields decode to ``None`` there.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from construct import (
    Adapter,
    Array,
    Bytes,
    BytesInteger,
    Construct,
    Flag,
    GreedyBytes,
    Int8ul,
    Int16sl,
    Int16ul,
    Int32ul,
    SizeofError,
    Subconstruct,
    ValidationError,
)

U8 = Int8ul
U16 = Int16ul
U32 = Int32ul
S16 = Int16sl
Bool = Flag
Money5 = BytesInteger(5, swapped=True)
Money6 = BytesInteger(6, swapped=True)
Raw = GreedyBytes

MAX_MONEY5 = 256**5 - 1
WIN1251 = "cp1251"


class OptionalMoney5(Adapter):  # type: ignore[misc]
    """5-byte money where ``FF FF FF FF FF`` means "not given" (FF46 amount and tax amount)."""

    _ABSENT = 256**5 - 1

    def __init__(self) -> None:
        super().__init__(Money5)

    def _decode(self, obj: int, context: Any, path: str) -> int | None:
        return None if obj == self._ABSENT else obj

    def _encode(self, obj: int | None, context: Any, path: str) -> int:
        if obj is None:
            return self._ABSENT
        if not 0 <= obj < self._ABSENT:
            raise ValidationError(f"amount {obj} out of range 0..{self._ABSENT - 1}", path=path)
        return obj


class Quantity(Adapter):  # type: ignore[misc]
    """Unsigned quantity as a scaled integer (×1000 in 5 bytes, ×10⁶ in 6) <-> `Decimal`."""

    def __init__(self, size: int, decimals: int) -> None:
        super().__init__(BytesInteger(size, swapped=True))
        self.size = size
        self.decimals = decimals

    def _decode(self, obj: int, context: Any, path: str) -> Decimal:
        return Decimal(obj).scaleb(-self.decimals)

    def _encode(self, obj: Decimal | int, context: Any, path: str) -> int:
        scaled = Decimal(obj).scaleb(self.decimals)
        if scaled != scaled.to_integral_value() or scaled < 0:
            raise ValidationError(
                f"quantity {obj} needs more than {self.decimals} decimals or is negative", path=path
            )
        return int(scaled)


class FixedText(Adapter):  # type: ignore[misc]
    """A text field of exactly ``size`` bytes, padded with 00; decoding stops at the first 00."""

    def __init__(self, size: int, encoding: str = WIN1251) -> None:
        super().__init__(Bytes(size))
        self.size = size
        self.encoding = encoding

    def _decode(self, obj: bytes, context: Any, path: str) -> str:
        return obj.split(b"\x00", 1)[0].decode(self.encoding, errors="replace")

    def _encode(self, obj: str, context: Any, path: str) -> bytes:
        data = _encode_text(obj, self.encoding, path)
        if len(data) > self.size:
            raise ValidationError(
                f"text of {len(data)} bytes does not fit the {self.size}-byte field; shorten it",
                path=path,
            )
        return data.ljust(self.size, b"\x00")


class TailText(Adapter):  # type: ignore[misc]
    """Text running to the end of the frame, at most ``max_size`` bytes (FF46 name, FF45 text)."""

    def __init__(self, max_size: int, encoding: str = WIN1251) -> None:
        super().__init__(GreedyBytes)
        self.max_size = max_size
        self.encoding = encoding

    def _decode(self, obj: bytes, context: Any, path: str) -> str:
        return obj.split(b"\x00", 1)[0].decode(self.encoding, errors="replace")

    def _encode(self, obj: str, context: Any, path: str) -> bytes:
        data = _encode_text(obj, self.encoding, path)
        if len(data) > self.max_size:
            raise ValidationError(
                f"text of {len(data)} bytes is longer than the {self.max_size} allowed; shorten it",
                path=path,
            )
        return data


def _encode_text(text: str, encoding: str, path: str) -> bytes:
    if "\x00" in text:
        raise ValidationError("text must not contain NUL (it ends a string on the wire)", path=path)
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"character {text[exc.start]!r} cannot be written in {encoding}; replace it", path=path
        ) from None


class _Triplet(Adapter):  # type: ignore[misc]
    """Three bytes of a date or time; all zero means "none"."""

    def __init__(self) -> None:
        super().__init__(Bytes(3))


class DateDMY(_Triplet):
    def _decode(self, obj: bytes, context: Any, path: str) -> dt.date | None:
        if obj == b"\x00\x00\x00":
            return None
        return _date(2000 + obj[2], obj[1], obj[0], path)

    def _encode(self, obj: dt.date | None, context: Any, path: str) -> bytes:
        if obj is None:
            return b"\x00\x00\x00"
        return bytes((obj.day, obj.month, _year2(obj, path)))


class DateYMD(_Triplet):
    def _decode(self, obj: bytes, context: Any, path: str) -> dt.date | None:
        if obj == b"\x00\x00\x00":
            return None
        return _date(2000 + obj[0], obj[1], obj[2], path)

    def _encode(self, obj: dt.date | None, context: Any, path: str) -> bytes:
        if obj is None:
            return b"\x00\x00\x00"
        return bytes((_year2(obj, path), obj.month, obj.day))


class TimeHMS(Adapter):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(Bytes(3))

    def _decode(self, obj: bytes, context: Any, path: str) -> dt.time:
        try:
            return dt.time(obj[0], obj[1], obj[2])
        except ValueError:
            raise ValidationError(f"bad time {obj.hex(' ')}", path=path) from None

    def _encode(self, obj: dt.time, context: Any, path: str) -> bytes:
        return bytes((obj.hour, obj.minute, obj.second))


class DateTime5(Adapter):  # type: ignore[misc]
    """``YY MM DD HH MM`` (the FN's DATE_TIME); all zero means "none"."""

    def __init__(self) -> None:
        super().__init__(Bytes(5))

    def _decode(self, obj: bytes, context: Any, path: str) -> dt.datetime | None:
        if obj == b"\x00" * 5:
            return None
        try:
            return dt.datetime(2000 + obj[0], obj[1], obj[2], obj[3], obj[4])
        except ValueError:
            raise ValidationError(f"bad date-time {obj.hex(' ')}", path=path) from None

    def _encode(self, obj: dt.datetime | None, context: Any, path: str) -> bytes:
        if obj is None:
            return b"\x00" * 5
        if obj.second or obj.microsecond:
            raise ValidationError(
                "the FN keeps date-time to the minute; drop the seconds", path=path
            )
        return bytes((_year2(obj, path), obj.month, obj.day, obj.hour, obj.minute))


def _date(year: int, month: int, day: int, path: str) -> dt.date:
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise ValidationError(f"bad date {day:02}.{month:02}.{year}", path=path) from None


def _year2(value: dt.date, path: str) -> int:
    if not 2000 <= value.year <= 2099:
        raise ValidationError(
            f"year {value.year} outside 2000..2099 (two digits on the wire)", path=path
        )
    return value.year - 2000


class Tuple(Adapter):  # type: ignore[misc]
    """A fixed count of equal fields <-> a tuple."""

    def __init__(self, count: int, subcon: Construct) -> None:
        super().__init__(Array(count, subcon))
        self.count = count
        self.item = subcon

    def _decode(self, obj: list[Any], context: Any, path: str) -> tuple[Any, ...]:
        return tuple(obj)

    def _encode(self, obj: tuple[Any, ...], context: Any, path: str) -> list[Any]:
        if len(obj) != self.count:
            raise ValidationError(f"expected {self.count} values, got {len(obj)}", path=path)
        return list(obj)


class EnumField(Adapter):  # type: ignore[misc]
    """One byte <-> an `IntEnum` (unknown codes are refused) or an `IntFlag` (any bits kept)."""

    def __init__(
        self, enum_type: type[enum.IntEnum] | type[enum.IntFlag], subcon: Construct = Int8ul
    ) -> None:
        super().__init__(subcon)
        self.enum_type = enum_type

    def _decode(self, obj: int, context: Any, path: str) -> Any:
        try:
            return self.enum_type(obj)
        except ValueError:
            raise ValidationError(
                f"{obj} is not a valid {self.enum_type.__name__}", path=path
            ) from None

    def _encode(self, obj: Any, context: Any, path: str) -> int:
        return int(obj)


class Trailing(Subconstruct):  # type: ignore[misc]
    """A field that newer firmware appends: absent at the end of the data <-> None.

    Unlike ``construct.Optional`` it does not swallow a malformed value, and None builds nothing
    even when the inner type could encode None itself.
    """

    def _parse(self, stream: Any, context: Any, path: str) -> Any:
        position = stream.tell()
        if not stream.read(1):
            return None
        stream.seek(position)
        return self.subcon._parsereport(stream, context, path)

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        if obj is None:
            return None
        return self.subcon._build(obj, stream, context, path)

    def _sizeof(self, context: Any, path: str) -> int:
        raise SizeofError("a trailing field has no fixed size", path=path)
