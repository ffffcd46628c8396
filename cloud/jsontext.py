"""JSON text with exact numbers: requests keep their money as `Decimal` from parse to register.

`json.dumps` cannot write a `Decimal` as a number (only as a string, or through a float, which
turns 0.1 into 0.1000000000000000055…); `dumps` writes it as the number it is, so a body stored
and read back (`loads`: numbers with a fraction become `Decimal`) is the body received.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def dumps(value: Any) -> str:
    """Compact JSON of dicts, lists, str, int, Decimal, bool and None (keys in given order).

    The standard library's C encoder writes the text, with each Decimal replaced by a marker
    string that is then replaced by the number's own text (the pure-Python writer, `_write`,
    took a tenth of the service's time under load: every answer and stored body passes here).
    A marker that also occurs in the value's own strings would make the replacement ambiguous:
    then, and for anything the encoder would write differently from `_write` (a key that is
    not a str), the pure-Python writer does it all."""
    decimals: list[str] = []
    try:
        plain = _plain(value, decimals)
    except _Unplain:
        parts: list[str] = []
        _write(value, parts)
        return "".join(parts)
    text = json.dumps(plain, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    if not decimals:
        return text
    pieces = text.split(_MARK_JSON)
    if len(pieces) != len(decimals) + 1:  # a string of the value holds the marker
        parts = []
        _write(value, parts)
        return "".join(parts)
    out = [pieces[0]]
    for number, piece in zip(decimals, pieces[1:], strict=True):
        out.append(number)
        out.append(piece)
    return "".join(out)


# A string no request carries in practice (it begins with a NUL); `dumps` checks anyway.
_MARK = "\x00kkt-decimal\x00"
_MARK_JSON = json.dumps(_MARK)  # as the encoder writes it, quotes included


class _Unplain(Exception):
    """A value the C encoder would write otherwise than `_write`: `_write` writes it."""


def _plain(value: Any, decimals: list[str]) -> Any:
    """``value`` with each Decimal replaced by `_MARK` and its text appended to ``decimals``
    (in the order the encoder writes them: keys in order, items in order)."""
    if isinstance(value, dict):
        plain: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Unplain
            plain[key] = _plain(item, decimals)
        return plain
    if isinstance(value, list | tuple):
        return [_plain(item, decimals) for item in value]
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} has no JSON form: give a finite number")
        decimals.append(str(value))
        return _MARK
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"{type(value).__name__} has no JSON form here")


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"a JSON object's key must be a str, not {type(key).__name__}")
            out.append("," if index else "")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            out.append("," if index else "")
            _write(item, out)
        out.append("]")
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} has no JSON form: give a finite number")
        out.append(str(value))
    elif value is None or isinstance(value, bool | int | float | str):
        out.append(json.dumps(value, ensure_ascii=False, allow_nan=False))
    else:
        raise TypeError(f"{type(value).__name__} has no JSON form here")
