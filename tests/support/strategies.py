"""Hypothesis strategies derived from the wire types of `kkt.protocols.shtrih` messages.

Every field of a request or answer dataclass carries its `construct` wire type; `message_strategy`
reads those and draws values the wire can carry, so a new command is covered by the round-trip
tests without writing a strategy for it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from decimal import Decimal
from typing import Any

import construct as c
from hypothesis import strategies as st
from kkt.protocols import fields as common
from kkt.protocols.shtrih import fields as f
from kkt.protocols.shtrih import marking as m


def _alphabet(encoding: str) -> str:
    chars = []
    for byte in range(1, 256):
        try:
            chars.append(bytes((byte,)).decode(encoding))
        except UnicodeDecodeError:
            continue
    return "".join(chars)


_ALPHABETS = {name: _alphabet(name) for name in ("cp1251", "ascii")}


def _text(size: int, encoding: str) -> st.SearchStrategy[str]:
    # Both encodings are single-byte, so characters == bytes.
    return st.text(alphabet=_ALPHABETS[encoding], max_size=size)


def _is_optional(con: Any) -> bool:
    return isinstance(con, f.Trailing)


def wire_strategy(con: Any) -> st.SearchStrategy[Any]:
    """Values that ``con`` can build."""
    if _is_optional(con):
        return st.none() | wire_strategy(con.subcon)
    if isinstance(con, f.OptionalMoney5):
        return st.none() | st.integers(0, f.MAX_MONEY5 - 1)
    if isinstance(con, f.Quantity):
        return st.integers(0, 256**con.size - 1).map(lambda v: Decimal(v).scaleb(-con.decimals))
    if isinstance(con, f.FixedText):
        return _text(con.size, con.encoding)
    if isinstance(con, f.TailText | f.LineText):
        return _text(con.max_size, con.encoding)
    if isinstance(con, f.DateDMY | f.DateYMD):
        return st.none() | st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31))
    if isinstance(con, f.TimeHMS):
        return st.times().map(lambda t: t.replace(microsecond=0, tzinfo=None))
    if isinstance(con, f.DateTime5):
        return st.none() | st.datetimes(
            dt.datetime(2000, 1, 1), dt.datetime(2099, 12, 31, 23, 59)
        ).map(lambda d: d.replace(second=0, microsecond=0))
    if isinstance(con, f.Tuple):
        return st.tuples(*[wire_strategy(con.item)] * con.count)
    if isinstance(con, f.EnumField):
        kind = con.enum_type
        if issubclass(kind, enum.IntFlag):
            return st.integers(0, 255).map(kind)
        return st.sampled_from(list(kind))
    if con is c.Flag:
        return st.booleans()
    if isinstance(con, c.BytesInteger):
        bits = 8 * con.length
        if con.signed:
            return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return st.integers(0, 2**bits - 1)
    if isinstance(con, c.FormatField):
        bits = 8 * con.length
        if con.fmtstr[-1].islower():
            return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return st.integers(0, 2**bits - 1)
    if isinstance(con, f.SizedBlock):
        return st.binary(max_size=0xFF)
    if isinstance(con, common.Bytes):
        return st.binary(min_size=con.size, max_size=con.size)
    if con is c.GreedyBytes:
        return st.binary(max_size=200)
    marking = _marking_strategy(con)
    if marking is not None:
        return marking
    raise NotImplementedError(f"no strategy for wire type {con!r}")


def _marking_strategy(con: Any) -> st.SearchStrategy[Any] | None:
    """The wire types of the marking commands (FF61..FF73), or None for any other type."""
    if isinstance(con, m.LengthPrefixed):
        return st.binary(min_size=1, max_size=0xFF)
    if isinstance(con, m.OnlineBlock):
        byte = st.integers(0, 0xFF)
        return st.none() | st.builds(m.OnlineCheck, byte, byte, st.binary(max_size=0xFD))
    if isinstance(con, m.VolumeSortMarker):
        return st.booleans()
    if isinstance(con, m.CheckTail):
        return st.none() | message_strategy(m.MarkCheckResult)
    if isinstance(con, m.SizedBlock16):
        return st.binary(max_size=600)
    return None


# Fields whose wire type (raw bytes) does not say their bounds: the message's own encoder does.
_FIELD_STRATEGIES: dict[tuple[type, str], st.SearchStrategy[Any]] = {
    (m.CheckMarkCode, "code"): st.binary(min_size=1, max_size=0xFF),  # a length byte, never 0
    (m.CheckMarkCode, "tlv"): st.binary(max_size=0xFF),
}


@st.composite
def message_strategy(draw: st.DrawFn, cls: type) -> Any:
    """An instance of a request/answer dataclass with wire-valid field values.

    Optional trailing fields are prefix-closed: once one is absent, the later ones are too
    (absent bytes cannot be followed by present ones on the wire).
    """
    values: dict[str, Any] = {}
    absent = False
    for field in dataclasses.fields(cls):
        special = _FIELD_STRATEGIES.get((cls, field.name))
        if special is not None:
            values[field.name] = draw(special)
            continue
        con = field.metadata["wire"]
        if _is_optional(con) and absent:
            values[field.name] = None
            continue
        value = draw(wire_strategy(con))
        if _is_optional(con) and value is None:
            absent = True
        values[field.name] = value
    return cls(**values)
