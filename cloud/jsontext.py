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
    """Compact JSON of dicts, lists, str, int, Decimal, bool and None (keys in given order)."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


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
