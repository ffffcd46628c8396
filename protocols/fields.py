"""Wire types shared by every vendor's typed commands, as `construct` constructs.

A message field is declared with one of these (`message.wire`); the vendor modules add only
what is theirs (Shtrih's money and WIN-1251 texts, ATOL's CP866 variant) on the same base
classes.  Values leave as Python types: `int`, `bool`, `bytes`, `str`, `date`, `time`, `datetime`.

Every type here reads strictly when compiled: construct's own compiled ``Bytes``, ``BytesInteger``
and ``Flag`` read short data without a word (``io.read(5)`` of three bytes), so a cut-short
message would decode to a wrong number.  `Fixed` and `Int` read through ``stream_read``, which
fails on short data, and the engine swaps construct's ``Flag`` for `Bool`.
"""

from __future__ import annotations

import datetime as dt
import typing
from dataclasses import dataclass
from typing import Any, Final, Literal

from construct import (
    BytesInteger,
    Construct,
    GreedyBytes,
    Int8ul,
    Int16sl,
    Int16ub,
    Int16ul,
    Int32ub,
    Int32ul,
    SizeofError,
    ValidationError,
    stream_read,
    stream_read_entire,
    stream_write,
)

from .errors import CodecError

U8 = Int8ul
U16 = Int16ul  # little-endian (Shtrih, the FN's own fields)
U32 = Int32ul
S16 = Int16sl
U16BE = Int16ub  # big-endian (ATOL)
U32BE = Int32ub
Raw = GreedyBytes  # raw bytes running to the end of the message

_FAILURES = (CodecError, ValueError, TypeError, OverflowError, AttributeError)


class Fixed(Construct):  # type: ignore[misc]
    """A field of exactly ``size`` bytes that `decode` reads and `encode` writes.

    Compiled as two direct calls (the bytes are read strictly), interpreted the usual way.
    A subclass raises `CodecError` or `ValueError` with a message saying what to change.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def decode(self, data: bytes) -> Any:
        raise NotImplementedError

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def _read(self, stream: Any, path: str) -> bytes:
        return typing.cast(bytes, stream_read(stream, self.size, path))

    def _parse(self, stream: Any, context: Any, path: str) -> Any:
        data = self._read(stream, path)
        try:
            return self.decode(data)
        except _FAILURES as exc:
            raise ValidationError(str(exc), path=path) from None

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        try:
            data = self.encode(obj)
        except _FAILURES as exc:
            raise ValidationError(str(exc), path=path) from None
        stream_write(stream, data, len(data), path)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        return self.size

    def _emitparse(self, code: Any) -> str:
        self._compileinstance(code)
        return f"linkedinstances[{id(self)}].decode(stream_read(io, {self.size}, '(???)'))"

    def _emitbuild(self, code: Any) -> str:
        self._compileinstance(code)
        return f"(io.write(linkedinstances[{id(self)}].encode(obj)), obj)[1]"


class Tail(Fixed):
    """A field running to the end of the message (it has no fixed size)."""

    def __init__(self) -> None:
        super().__init__(0)

    def _read(self, stream: Any, path: str) -> bytes:
        return typing.cast(bytes, stream_read_entire(stream, path))

    def _sizeof(self, context: Any, path: str) -> int:
        raise SizeofError("a field running to the end has no fixed size", path=path)

    def _emitparse(self, code: Any) -> str:
        self._compileinstance(code)
        return f"linkedinstances[{id(self)}].decode(io.read())"


class Int(BytesInteger):  # type: ignore[misc]
    """An unsigned (or signed) integer of ``size`` bytes in either byte order, read strictly."""

    def __init__(
        self, size: int, order: Literal["big", "little"] = "little", *, signed: bool = False
    ) -> None:
        super().__init__(size, signed=signed, swapped=order == "little")
        self.order = order

    def _emitparse(self, code: Any) -> str:
        return (
            f"int.from_bytes(stream_read(io, {self.length}, '(???)'), {self.order!r}, "
            f"signed={self.signed})"
        )

    def _emitbuild(self, code: Any) -> str:
        return (
            f"(io.write(int.to_bytes(obj, {self.length}, {self.order!r}, "
            f"signed={self.signed})), obj)[1]"
        )


class Bool(Fixed):
    """One byte read as a bool (0 False, anything else True), written as 0 or 1."""

    def __init__(self) -> None:
        super().__init__(1)

    def decode(self, data: bytes) -> bool:
        return data != b"\x00"

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, bool | int):
            raise TypeError(f"must be a bool, got {value!r}")
        return b"\x01" if value else b"\x00"


class Bytes(Fixed):
    """Exactly ``size`` raw bytes."""

    def decode(self, data: bytes) -> bytes:
        return data

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, bytes | bytearray) or len(value) != self.size:
            raise ValueError(f"must be {self.size} bytes, got {value!r}")
        return bytes(value)


class Reserved(Fixed):
    """``size`` bytes no field holds: written as zeros, ignored when read.  Declared with
    ``wire(..., reserved_after=n)`` after the field they follow."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.flagbuildnone = True

    def decode(self, data: bytes) -> None:
        return None

    def encode(self, value: Any) -> bytes:
        return bytes(self.size)


# -- BCD ------------------------------------------------------------------------------------------


def bcd_max(size: int) -> int:
    """The largest value ``size`` BCD bytes hold (``10 ** (2 * size) - 1``)."""
    return int(10 ** (2 * size)) - 1


def encode_bcd(value: int, size: int) -> bytes:
    """``value`` as ``size`` bytes of packed BCD, most significant byte first (``1234`` in two
    bytes is ``12 34``).  `CodecError` when ``value`` is negative or needs more digits."""
    if size < 1:
        raise CodecError(f"a BCD field is at least one byte, got size {size}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise CodecError(f"a BCD field holds an int, got {value!r}")
    if value < 0:
        raise CodecError(f"BCD cannot hold the negative number {value}; send its magnitude")
    if value > bcd_max(size):
        raise CodecError(
            f"{value} does not fit {size} BCD byte{'s' if size > 1 else ''} "
            f"(at most {bcd_max(size)}); split the amount or check its unit"
        )
    return bytes.fromhex(f"{value:0{2 * size}d}")


def decode_bcd(data: bytes) -> int:
    """Packed BCD bytes (most significant first) as an int; `CodecError` on a nibble above 9."""
    text = bytes(data).hex()
    if not text.isdigit():
        raise CodecError(
            f"{bytes(data).hex(' ')} is not packed BCD (a nibble is above 9); "
            "the field is binary or the reply is misaligned"
        )
    return int(text)


class Bcd(Fixed):
    """A packed BCD number of ``size`` bytes, most significant first."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.max = bcd_max(size)
        self._format = f"0{2 * size}d"

    def decode(self, data: bytes) -> int:
        text = data.hex()
        return int(text) if text.isdigit() else decode_bcd(data)

    def encode(self, value: Any) -> bytes:
        if type(value) is int and 0 <= value <= self.max:
            return bytes.fromhex(format(value, self._format))
        return encode_bcd(value, self.size)  # says what is wrong


# One BCD byte each way, for dates (00..99).
_TO_BCD: Final = {number: int(f"{number:02d}", 16) for number in range(100)}
_FROM_BCD: Final = {byte: number for number, byte in _TO_BCD.items()}


# -- texts ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Codepage:
    """How a vendor writes text: a Python codec's name, or its own two functions."""

    name: str

    def encode(self, text: str) -> bytes:
        try:
            return text.encode(self.name)
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"character {text[exc.start]!r} cannot be written in {self.name}; replace it"
            ) from None

    def decode(self, data: bytes) -> str:
        return data.decode(self.name, errors="replace")


Nul = Literal["end", "pad", "blank"]


class _Text:
    """What fixed and tail texts share: the code page, at most ``limit`` bytes, and what a 00
    byte means when read -- ``nul="end"``: the first 00 ends the text; ``nul="pad"``: trailing
    00s are padding; ``nul="blank"``: spaces around the text are padding (the FN's INN, RNM)."""

    size: int
    limit: int | None

    def _setup(self, codepage: Codepage, nul: Nul, limit: int | None) -> None:
        self.codepage = codepage
        self.nul = nul
        self.limit = limit

    def decode(self, data: bytes) -> str:
        if self.nul == "blank":
            return self.codepage.decode(data).strip()
        body = data.split(b"\x00", 1)[0] if self.nul == "end" else data.rstrip(b"\x00")
        return self.codepage.decode(body)

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise TypeError(f"must be a str, got {value!r}")
        if "\x00" in value:
            raise ValueError("text must not contain NUL (it ends a string on the wire)")
        data = self.codepage.encode(value)
        if self.limit is not None and len(data) > self.limit:
            raise ValueError(
                f"text of {len(data)} bytes is over the {self.limit} it holds; shorten it"
            )
        return data.ljust(self.size, b"\x00")


class FixedText(_Text, Fixed):
    """Text in exactly ``size`` bytes, padded with 00."""

    def __init__(self, size: int, codepage: Codepage, nul: Nul) -> None:
        Fixed.__init__(self, size)
        self._setup(codepage, nul, size)


class TailText(_Text, Tail):
    """Text running to the end of the message, at most ``max_size`` bytes (None: no limit)."""

    def __init__(self, max_size: int | None, codepage: Codepage, nul: Nul) -> None:
        Tail.__init__(self)
        self._setup(codepage, nul, max_size)
        self.max_size = max_size


class TailBytes(Tail):
    """Raw bytes running to the end of the message."""

    def decode(self, data: bytes) -> bytes:
        return data

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, bytes | bytearray):
            raise TypeError(f"must be bytes, got {value!r}")
        return bytes(value)


# -- dates and times ------------------------------------------------------------------------------


class Stamp(Fixed):
    """A date, a time or a date-time as one byte per part, in the order ``parts`` gives.

    Parts: ``Y`` year (two digits, 2000-2099), ``m`` month, ``d`` day, ``H`` hour, ``M`` minute,
    ``S`` second; each byte BCD when ``bcd``, else binary.  With ``nullable`` all-zero bytes read
    as None and None writes zeros.  A part the wire lacks (seconds of a ``YmdHM`` stamp) reads as
    0; when written it is dropped, or refused with ``exact`` (the FN keeps minutes, and a caller
    that passes seconds should know they are lost).
    """

    def __init__(
        self, parts: str, *, bcd: bool = False, nullable: bool = False, exact: bool = False
    ) -> None:
        super().__init__(len(parts))
        self.parts = parts
        self.bcd = bcd
        self.nullable = nullable
        self.exact = exact
        has_date = any(p in parts for p in "Ymd")
        has_time = any(p in parts for p in "HMS")
        self.kind: type = (dt.datetime if has_time else dt.date) if has_date else dt.time
        self.is_datetime = self.kind is dt.datetime

    def encode(self, value: Any) -> bytes:
        if value is None:
            if not self.nullable:
                raise ValueError("needs a value, got None")
            return bytes(self.size)
        if not isinstance(value, self.kind):
            raise TypeError(f"must be a {self.kind.__name__}, got {value!r}")
        value = typing.cast(Any, value)
        numbers: dict[str, int] = {}
        if self.kind is not dt.time:
            if not 2000 <= value.year <= 2099:
                raise ValueError(f"year {value.year} outside 2000..2099 (two digits on the wire)")
            numbers = {"Y": value.year - 2000, "m": value.month, "d": value.day}
        if isinstance(value, dt.datetime | dt.time):
            numbers |= {"H": value.hour, "M": value.minute, "S": value.second}
            if self.exact and (value.microsecond or ("S" not in self.parts and value.second)):
                raise ValueError("the wire keeps this to the minute; drop the seconds")
        if self.bcd:
            return bytes(_TO_BCD[numbers[p]] for p in self.parts)
        return bytes(numbers[p] for p in self.parts)

    def decode(self, data: bytes) -> Any:
        if self.nullable and not any(data):
            return None
        if self.bcd:
            try:
                values = [_FROM_BCD[b] for b in data]
            except KeyError:
                decode_bcd(data)  # raises, saying what is wrong
                raise
        else:
            values = list(data)
        parts = dict(zip(self.parts, values, strict=True))
        try:
            if self.kind is dt.time:
                return dt.time(parts.get("H", 0), parts.get("M", 0), parts.get("S", 0))
            day = (2000 + parts["Y"], parts["m"], parts["d"])
            if self.kind is dt.date:
                return dt.date(*day)
            return dt.datetime(*day, parts.get("H", 0), parts.get("M", 0), parts.get("S", 0))
        except ValueError as exc:
            raise ValueError(f"{data.hex(' ')} is not a valid date or time: {exc}") from None
