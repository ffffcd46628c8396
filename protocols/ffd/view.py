"""Fiscal documents for people and scripts: a decoded TLV list as JSON data and as named rows.

JSON keys are the FFD's own JSON names where the FFD gives one (``fiscalDocumentNumber``,
``items`` ...), else ``"tag<number>"``, so an OFD's export and ours read alike.  A tag that occurs
that the FFD lets repeat (the items 1059, the phones 1073 ...) is always a list, even of one, so a
script reads ``items`` the same way for every receipt; any other tag that nevertheless occurs more
than once becomes a list too.  Values become JSON-safe: money stays in
kopecks (ints, as the FFD JSON has it), times become ISO 8601 without a zone (the FN keeps the
wall-clock time of the place of settlement), FVLN quantities become strings (no float ever holds
them), bytes become hex.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from .tags import TAGS
from .tlv import TlvList, Value

DOCUMENT_NAMES = {
    1: "отчёт о регистрации",
    11: "отчёт об изменении параметров регистрации",
    2: "отчёт об открытии смены",
    21: "отчёт о текущем состоянии расчётов",
    3: "кассовый чек",
    31: "кассовый чек коррекции",
    4: "бланк строгой отчётности",
    41: "БСО коррекции",
    5: "отчёт о закрытии смены",
    6: "отчёт о закрытии фискального накопителя",
    7: "подтверждение оператора",
}


# Texts the FFD pads with spaces to a fixed width: the INNs to 12 (1017 OFD, 1018 user, 1203
# cashier, 1226 supplier, 1228 buyer), the RNM (1037) to 20 -- fact sheet fn-ffd-ofd.md §1.1.
PADDED_TAGS = frozenset({1017, 1018, 1037, 1203, 1226, 1228})


def strip_padding(items: TlvList) -> TlvList:
    """The document with the padding of its fixed-width texts (`PADDED_TAGS`) removed: the FN
    stores ``"7701000001  "``; the INN is ``"7701000001"``."""
    stripped: TlvList = []
    for tag, value in items:
        if isinstance(value, list):
            value = strip_padding(value)
        elif isinstance(value, str) and tag in PADDED_TAGS:
            value = value.rstrip(" ")
        stripped.append((tag, value))
    return stripped


def json_key(tag: int) -> str:
    spec = TAGS.get(tag)
    return spec.json_name if spec is not None and spec.json_name else f"tag{tag}"


def tag_name(tag: int) -> str:
    spec = TAGS.get(tag)
    return spec.name if spec is not None else "неизвестный реквизит"


def json_value(value: Value) -> Any:
    if isinstance(value, list):
        return tlv_to_json(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def tlv_to_json(items: TlvList) -> dict[str, Any]:
    """``[(1040, 7), (1059, [...]), (1059, [...])]`` -> ``{"fiscalDocumentNumber": 7,
    "items": [{...}, {...}]}``."""
    counts: dict[int, int] = {}
    for tag, _ in items:
        counts[tag] = counts.get(tag, 0) + 1
    data: dict[str, Any] = {}
    for tag, value in items:
        key = json_key(tag)
        spec = TAGS.get(tag)
        if counts[tag] > 1 or (spec is not None and spec.repeatable):
            data.setdefault(key, []).append(json_value(value))
        else:
            data[key] = json_value(value)
    return data


def text_value(value: Value) -> str:
    """A value as one line of text (nested lists are shown by `rows`, not here)."""
    if isinstance(value, dt.datetime):
        return value.strftime("%d.%m.%Y %H:%M:%S")
    if isinstance(value, bytes):
        return value.hex(" ")
    if isinstance(value, list):
        return ""
    return str(value)


def rows(items: TlvList, depth: int = 0) -> Iterator[tuple[int, int, str, str]]:
    """(depth, tag, name, value text) for every attribute, nested ones after their STLV."""
    for tag, value in items:
        yield depth, tag, tag_name(tag), text_value(value)
        if isinstance(value, list):
            yield from rows(value, depth + 1)
