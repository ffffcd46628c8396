"""FFD TLV codec: attribute lists <-> bytes.

Framing (fact sheet ``fn-ffd-ofd.md`` §1.1): each attribute is ``tag u16 LE | length u16 LE |
value``, with no terminator and no alignment; an STLV's value is itself such a list; a repeated
attribute is simply the same tag again.

The value model is a list of ``(tag, value)`` pairs -- `TlvList` -- with the Python type chosen by
the tag's `TagType` in `TAGS`:

=========================  ==========================================================
BYTE, U16, U32, VLN        `int` (VLN money in kopecks)
UNIXTIME                   naive `datetime.datetime`: the wall-clock time, encoded as
                           seconds since 1970 as if it were UTC
FVLN                       `Decimal`; the decimals byte is the exponent (``1.000000`` keeps
                           its six decimals)
STRING                     `str` (CP866 on the wire)
BYTES                      `bytes`
STLV                       a nested `TlvList`
=========================  ==========================================================

Choices where the sheet leaves room:

* VLN is written in the fewest bytes that hold it ("trailing zero bytes may be dropped", §1.2);
  zero is written as one ``00`` byte, never as an empty value.  Reading accepts any length up to
  the tag's maximum, including trailing zeros and an empty value (read as 0).
* FVLN likewise writes the mantissa in the fewest bytes (zero as ``00``), after the decimals byte.
  A `Decimal` with a positive exponent (``1E+2``) is written with 0 decimals; an `int` is accepted
  and written with 0 decimals.  Negative, NaN and infinite values, and floats, are refused.
* A `datetime` with microseconds is written without them (the wire holds whole seconds); an aware
  `datetime` is refused: give the wall-clock time of the place of settlement.
* Strings and bytes are kept verbatim: fixed-width padding (1037, the INNs) is the caller's job.
* Unknown tags are written only from `bytes` and read back as `bytes`.
* STLVs may nest at most `MAX_DEPTH` levels deep (a document holds 1059, which holds 1223/1260/…;
  real documents need three or four) so that hostile input cannot exhaust the stack.

Every failure, writing or reading, is a `TlvError` naming the tag (and the enclosing STLVs).
"""

from __future__ import annotations

import calendar
import datetime as dt
import struct
from collections.abc import Iterable
from decimal import Decimal
from typing import TypeAlias

from ..errors import CodecError
from .tags import TAGS, TagSpec, TagType

Value: TypeAlias = int | str | bytes | Decimal | dt.datetime | list[tuple[int, "Value"]]
TlvList: TypeAlias = list[tuple[int, Value]]

ENCODING = "cp866"
MAX_LENGTH = 0xFFFF  # the length field is a u16
MAX_DEPTH = 16
_HEADER = struct.Struct("<HH")
_EPOCH = dt.datetime(1970, 1, 1)
_MAX_U32 = 0xFFFFFFFF


class TlvError(CodecError):
    """An FFD attribute list cannot be encoded or decoded; ``tag`` is the offending attribute."""

    def __init__(self, message: str, *, tag: int | None = None) -> None:
        super().__init__(message)
        self.tag = tag


def _where(tag: int, path: tuple[int, ...]) -> str:
    spec = TAGS.get(tag)
    name = f"tag {tag} ({spec.name})" if spec else f"tag {tag}"
    if path:
        name += " inside " + _path(path)
    return name


def _path(path: tuple[int, ...]) -> str:
    return " > ".join(map(str, path))


def _fail(tag: int, path: tuple[int, ...], problem: str) -> TlvError:
    return TlvError(f"{_where(tag, path)}: {problem}", tag=tag)


# --- encoding -----------------------------------------------------------------------------------


def encode_tlv(items: Iterable[tuple[int, Value]]) -> bytes:
    """Encode attributes as consecutive TLVs, each checked against its `TAGS` entry."""
    return _encode_list(items, ())


def encode_tlv_item(tag: int, value: Value) -> bytes:
    """Encode one attribute (``tag | length | value``)."""
    return _encode_item(tag, value, ())


def _encode_list(items: Iterable[tuple[int, Value]], path: tuple[int, ...]) -> bytes:
    if len(path) > MAX_DEPTH:
        raise TlvError(f"STLVs nested deeper than {MAX_DEPTH} levels at {_path(path)}")
    out = bytearray()
    for entry in items:
        if not (isinstance(entry, tuple) and len(entry) == 2):
            raise TlvError(f"expected (tag, value) pairs, got {entry!r}")
        out += _encode_item(entry[0], entry[1], path)
    return bytes(out)


def _encode_item(tag: int, value: Value, path: tuple[int, ...]) -> bytes:
    if isinstance(tag, bool) or not isinstance(tag, int) or not 0 <= tag <= 0xFFFF:
        raise TlvError(f"tag {tag!r} is not a number 0..65535", tag=None)
    body = _encode_value(tag, value, path)
    if len(body) > MAX_LENGTH:
        raise _fail(tag, path, f"value of {len(body)} bytes exceeds the TLV limit of {MAX_LENGTH}")
    return _HEADER.pack(tag, len(body)) + body


def _encode_value(tag: int, value: Value, path: tuple[int, ...]) -> bytes:
    known = _TAG_ENCODERS.get(tag)
    if known is None:
        if not isinstance(value, bytes):
            raise _fail(tag, path, f"unknown tag needs a bytes value, got {type(value).__name__}")
        return value
    spec, encoder = known
    body = encoder(spec, value, path)
    _check_length(spec, len(body), path)
    return body


def _check_length(spec: TagSpec, size: int, path: tuple[int, ...]) -> None:
    if spec.fixed_length is not None and size != spec.fixed_length:
        raise _fail(spec.tag, path, f"value is {size} bytes, must be exactly {spec.fixed_length}")
    if spec.max_length is not None and size > spec.max_length:
        raise _fail(spec.tag, path, f"value is {size} bytes, the maximum is {spec.max_length}")


def _wrong_type(spec: TagSpec, value: object, path: tuple[int, ...], wanted: str) -> TlvError:
    return _fail(
        spec.tag, path, f"{spec.type.name} value must be {wanted}, got {type(value).__name__}"
    )


def _as_int(spec: TagSpec, value: object, path: tuple[int, ...]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(spec, value, path, "an int")
    return value


def _encode_fixed_int(spec: TagSpec, value: Value, path: tuple[int, ...]) -> bytes:
    number = _as_int(spec, value, path)
    size = spec.fixed_length or 0
    if not 0 <= number < 256**size:
        raise _fail(spec.tag, path, f"{number} is out of range 0..{256**size - 1}")
    return number.to_bytes(size, "little")


def _encode_vln(spec: TagSpec, value: Value, path: tuple[int, ...]) -> bytes:
    number = _as_int(spec, value, path)
    if number < 0:
        raise _fail(spec.tag, path, f"{number} is negative; VLN holds unsigned values")
    return _vln_bytes(spec, number, path)


def _vln_bytes(spec: TagSpec, number: int, path: tuple[int, ...]) -> bytes:
    size = max(1, (number.bit_length() + 7) // 8)
    if spec.max_length is not None and size > spec.max_length - (spec.type is TagType.FVLN):
        limit = spec.max_length - (spec.type is TagType.FVLN)
        raise _fail(spec.tag, path, f"{number} does not fit in {limit} bytes")
    return number.to_bytes(size, "little")


def _encode_fvln(spec: TagSpec, value: Value, path: tuple[int, ...]) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _wrong_type(spec, value, path, "a Decimal (or an int)")
    number = Decimal(value)
    if not number.is_finite() or number < 0 or number.is_signed():
        raise _fail(spec.tag, path, f"{value} is not a finite non-negative number")
    _sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    mantissa = int("".join(map(str, digits)))
    if exponent > 0:
        mantissa *= 10**exponent
        exponent = 0
    if -exponent > 255:
        raise _fail(spec.tag, path, f"{value} has more than 255 decimals")
    return bytes((-exponent,)) + _vln_bytes(spec, mantissa, path)


def _encode_time(spec: TagSpec, value: Value, path: tuple[int, ...]) -> bytes:
    if not isinstance(value, dt.datetime):
        raise _wrong_type(spec, value, path, "a naive datetime")
    if value.tzinfo is not None:
        raise _fail(
            spec.tag, path, "datetime must be naive: give the wall-clock time without tzinfo"
        )
    seconds = calendar.timegm(value.timetuple())
    if not 0 <= seconds <= _MAX_U32:
        raise _fail(spec.tag, path, f"{value} is outside 1970-01-01..2106-02-07")
    return seconds.to_bytes(4, "little")


def _encode_string(spec: TagSpec, value: Value, path: tuple[int, ...]) -> bytes:
    if not isinstance(value, str):
        raise _wrong_type(spec, value, path, "a str")
    try:
        return value.encode(ENCODING)
    except UnicodeEncodeError as exc:
        bad = value[exc.start : exc.end]
        raise _fail(
            spec.tag, path, f"{bad!r} at position {exc.start} cannot be written in CP866"
        ) from None


def _encode_bytes(spec: TagSpec, value: Value, path: tuple[int, ...]) -> bytes:
    if not isinstance(value, bytes):
        raise _wrong_type(spec, value, path, "bytes")
    return value


def _encode_stlv(spec: TagSpec, value: Value, path: tuple[int, ...]) -> bytes:
    if not isinstance(value, list):
        raise _wrong_type(spec, value, path, "a list of (tag, value) pairs")
    return _encode_list(value, (*path, spec.tag))


# --- decoding -----------------------------------------------------------------------------------


def decode_tlv(data: bytes) -> TlvList:
    """Decode consecutive TLVs; STLVs of known tags are decoded recursively.

    Raises `TlvError` (and nothing else) on any malformed input.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TlvError(f"expected bytes, got {type(data).__name__}")
    return _decode_list(bytes(data), ())


def _decode_list(data: bytes, path: tuple[int, ...]) -> TlvList:
    if len(path) > MAX_DEPTH:
        raise TlvError(f"STLVs nested deeper than {MAX_DEPTH} levels at {_path(path)}")
    items: TlvList = []
    offset = 0
    inside = f" inside {_path(path)}" if path else ""
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            raise TlvError(
                f"truncated TLV header at offset {offset}{inside}: "
                f"{len(data) - offset} bytes left, 4 needed"
            )
        tag, length = _HEADER.unpack_from(data, offset)
        offset += _HEADER.size
        if offset + length > len(data):
            raise _fail(
                tag,
                path,
                f"length {length} runs past the end of the data "
                f"({len(data) - offset} bytes left at offset {offset})",
            )
        items.append((tag, _decode_value(tag, data[offset : offset + length], path)))
        offset += length
    return items


def _decode_value(tag: int, body: bytes, path: tuple[int, ...]) -> Value:
    spec = TAGS.get(tag)
    if spec is None:
        return body
    _check_length(spec, len(body), path)
    return _DECODERS[spec.type](spec, body, path)


def _decode_int(spec: TagSpec, body: bytes, path: tuple[int, ...]) -> Value:
    return int.from_bytes(body, "little")


def _decode_fvln(spec: TagSpec, body: bytes, path: tuple[int, ...]) -> Value:
    if not body:
        raise _fail(spec.tag, path, "FVLN value is empty; it needs at least the decimals byte")
    mantissa = int.from_bytes(body[1:], "little")
    digits = tuple(int(d) for d in str(mantissa))
    return Decimal((0, digits, -body[0]))


def _decode_time(spec: TagSpec, body: bytes, path: tuple[int, ...]) -> Value:
    return _EPOCH + dt.timedelta(seconds=int.from_bytes(body, "little"))


def _decode_string(spec: TagSpec, body: bytes, path: tuple[int, ...]) -> Value:
    return body.decode(ENCODING)  # CP866 maps every byte, so this cannot fail


def _decode_bytes(spec: TagSpec, body: bytes, path: tuple[int, ...]) -> Value:
    return body


def _decode_stlv(spec: TagSpec, body: bytes, path: tuple[int, ...]) -> Value:
    return _decode_list(body, (*path, spec.tag))


_ENCODERS = {
    TagType.BYTE: _encode_fixed_int,
    TagType.U16: _encode_fixed_int,
    TagType.U32: _encode_fixed_int,
    TagType.UNIXTIME: _encode_time,
    TagType.VLN: _encode_vln,
    TagType.FVLN: _encode_fvln,
    TagType.STRING: _encode_string,
    TagType.BYTES: _encode_bytes,
    TagType.STLV: _encode_stlv,
}

# Tag -> (spec, encoder), resolved once: encoding is on the fiscal storage's hot path.
_TAG_ENCODERS = {tag: (spec, _ENCODERS[spec.type]) for tag, spec in TAGS.items()}

_DECODERS = {
    TagType.BYTE: _decode_int,
    TagType.U16: _decode_int,
    TagType.U32: _decode_int,
    TagType.UNIXTIME: _decode_time,
    TagType.VLN: _decode_int,
    TagType.FVLN: _decode_fvln,
    TagType.STRING: _decode_string,
    TagType.BYTES: _decode_bytes,
    TagType.STLV: _decode_stlv,
}


# --- look-ups -----------------------------------------------------------------------------------


def find(items: TlvList, tag: int) -> Value | None:
    """The value of the first ``tag`` among ``items`` (top level only), or None."""
    for item_tag, value in items:
        if item_tag == tag:
            return value
    return None


def find_all(items: TlvList, tag: int) -> list[Value]:
    """The values of every ``tag`` among ``items`` (top level only), in order."""
    return [value for item_tag, value in items if item_tag == tag]
