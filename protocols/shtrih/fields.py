"""Shtrih-M's own wire types, on the shared ones of `kkt.protocols.fields`.

Conventions (fact sheet ``shtrih-protocol.md`` §2.1): integers little-endian; money in kopecks,
5 bytes (6 for cash registers); quantities ×1000 in 5 bytes for the classic sale commands and
×10⁶ in 6 bytes for FF46; dates ``DD MM YY`` for classic commands and ``YY MM DD [HH MM]`` for the
fiscal-storage ones; printed text WIN-1251 in fixed fields padded with 00 (a 00 ends the string).

Values leave this module as Python types: `int` kopecks, `Decimal` quantities, `date`, `time`,
`datetime`, `str`, enums.  An all-zero date means "none" (the FN reports 00 00 00 when it has no
unconfirmed document), so date fields decode to ``None`` there.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Any

from construct import (
    Adapter,
    Array,
    Construct,
    Flag,
    Int8ul,
    SizeofError,
    Subconstruct,
    ValidationError,
)

from .. import fields

Bool = Flag  # construct's own, as the strategies of the tests know it; the engine reads it strictly
Money5 = fields.Int(5)
Money6 = fields.Int(6)
MAX_MONEY5 = 256**5 - 1
WIN1251 = "cp1251"


class FixedText(fields.FixedText):
    """Text of exactly ``size`` bytes, padded with 00; a 00 ends it when read."""

    def __init__(self, size: int, encoding: str = WIN1251) -> None:
        super().__init__(size, fields.Codepage(encoding), nul="end")
        self.encoding = encoding


class TailText(fields.TailText):
    """Text running to the end of the frame, at most ``max_size`` bytes (FF46 name, FF45 text)."""

    def __init__(self, max_size: int, encoding: str = WIN1251) -> None:
        super().__init__(max_size, fields.Codepage(encoding), nul="end")
        self.encoding = encoding


class LineText(fields.TailText):
    """A printed text of the classic commands (12h, 17h, 80h-87h): at least ``min_size`` bytes
    padded with 00 -- the 40-byte field of the protocol -- and, on a model whose line is wider,
    as many more as the frame holds (``max_size``: what the 255-byte LEN leaves after the
    command's other fields).  pyshtrih sends its model's line width here (48 on ШТРИХ-М-01Ф,
    ``misc.prepare_string``); the register prints what fits its line and cuts the rest.  A
    shorter field is refused, as the device answers 33h to a bad length.
    """

    def __init__(self, max_size: int, min_size: int = 40, encoding: str = WIN1251) -> None:
        super().__init__(max_size, fields.Codepage(encoding), nul="end")
        self.size = min_size  # what `encode` pads to
        self.min_size = min_size
        self.encoding = encoding

    def decode(self, data: bytes) -> str:
        if len(data) < self.min_size:
            raise ValueError(
                f"text field of {len(data)} bytes is shorter than the {self.min_size} required"
            )
        if self.max_size is not None and len(data) > self.max_size:
            raise ValueError(f"text field of {len(data)} bytes is over {self.max_size}")
        return super().decode(data)


class SizedBlock(fields.Tail):
    """A length byte, then exactly that many bytes, ending the message (FF33's data block)."""

    def decode(self, data: bytes) -> bytes:
        if not data:
            raise ValueError("the block's size byte is missing")
        if data[0] != len(data) - 1:
            raise ValueError(f"the size byte says {data[0]} bytes, {len(data) - 1} follow")
        return data[1:]

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, bytes | bytearray) or len(value) > 0xFF:
            raise ValueError(f"must be at most 255 bytes, got {value!r}")
        return bytes((len(value),)) + bytes(value)


class DateDMY(fields.Stamp):
    def __init__(self) -> None:
        super().__init__("dmY", nullable=True)


class DateYMD(fields.Stamp):
    def __init__(self) -> None:
        super().__init__("Ymd", nullable=True)


class TimeHMS(fields.Stamp):
    def __init__(self) -> None:
        super().__init__("HMS")


class DateTime5(fields.Stamp):
    """``YY MM DD HH MM`` (the FN's DATE_TIME); all zero means "none"."""

    def __init__(self) -> None:
        super().__init__("YmdHM", nullable=True, exact=True)


class OptionalMoney5(Adapter):  # type: ignore[misc]
    """5-byte money where ``FF FF FF FF FF`` means "not given" (FF46 amount and tax amount)."""

    _ABSENT = MAX_MONEY5

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
        super().__init__(fields.Int(size))
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
