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

from .marking import item_check_label
from .tags import TAGS, TagType
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


# What the coded tags' values mean, for people (fact sheet fn-ffd-ofd.md §1.3, the tag table).
OPERATION_TYPES = {1: "приход", 2: "возврат прихода", 3: "расход", 4: "возврат расхода"}
TAX_SYSTEMS = {
    1: "ОСН",
    2: "УСН доход",
    4: "УСН доход − расход",
    8: "ЕНВД",
    16: "ЕСХН",
    32: "ПСН",
}
VAT_RATES = {
    1: "НДС 20%",
    2: "НДС 10%",
    3: "НДС 20/120",
    4: "НДС 10/110",
    5: "НДС 0%",
    6: "без НДС",
    7: "НДС 5%",
    8: "НДС 7%",
    9: "НДС 5/105",
    10: "НДС 7/107",
}
PRODUCT_TYPES = {
    1: "товар",
    2: "подакцизный товар",
    3: "работа",
    4: "услуга",
    5: "ставка азартной игры",
    6: "выигрыш азартной игры",
    7: "лотерейный билет",
    8: "выигрыш лотереи",
    9: "РИД",
    10: "платёж",
    11: "агентское вознаграждение",
    12: "выплата",
    13: "иной предмет расчета",
    27: "выдача денежных средств БПА",
    30: "маркированный подакцизный товар без кода (АТНМ)",
    31: "маркированный подакцизный товар (АТМ)",
    32: "маркированный товар без кода (ТНМ)",
    33: "маркированный товар (ТМ)",
}
PAYMENT_METHODS = {
    1: "полная предоплата",
    2: "частичная предоплата",
    3: "аванс",
    4: "полный расчет",
    5: "частичный расчет и кредит",
    6: "передача в кредит",
    7: "оплата кредита",
}
MEASURES = {
    0: "шт.",
    10: "г",
    11: "кг",
    12: "т",
    20: "см",
    21: "дм",
    22: "м",
    30: "кв. см",
    31: "кв. дм",
    32: "кв. м",
    40: "мл",
    41: "л",
    42: "куб. м",
    50: "кВт·ч",
    51: "Гкал",
    70: "сутки",
    71: "час",
    72: "мин",
    73: "с",
    80: "КБ",
    81: "МБ",
    82: "ГБ",
    83: "ТБ",
    255: "иное",
}
FFD_VERSIONS = {1: "1.0", 2: "1.05", 3: "1.1", 4: "1.2"}
# Marking (ofd-cloud-marking.md §4.5; the enums are `kkt.protocols.ffd.marking`).
PLANNED_STATUSES = {
    1: "штучный товар реализован",
    2: "мерный товар в стадии реализации",
    3: "штучный товар возвращен",
    4: "часть товара возвращена",
    5: "штучный товар в стадии реализации",
    6: "мерный товар реализован",
    255: "статус товара не изменился",
}
MARK_CODE_TYPES = {
    0: "не идентифицирован",
    1: "короткий КМ",
    2: "КМ с КП 88 символов, проверяемый в ФН",
    3: "КМ с КП 44 символа, не проверяемый в ФН",
    4: "КМ с КП 44 символа, проверяемый в ФН",
    5: "КМ с КП 4 символа, не проверяемый в ФН",
}
ITEM_CHECK_BITS = {
    1: "КП КМ проверен в ФН",
    2: "результат проверки КП КМ положительный",
    4: "проверка статуса ОИСМ выполнена",
    8: "статус товара корректен",
    16: "результат сформирован в автономном режиме",
}
CODES: dict[int, dict[int, str]] = {
    1054: OPERATION_TYPES,
    1055: TAX_SYSTEMS,
    1173: {0: "самостоятельно", 1: "по предписанию"},
    1199: VAT_RATES,
    1209: FFD_VERSIONS,
    1212: PRODUCT_TYPES,
    1214: PAYMENT_METHODS,
    2108: MEASURES,
    2003: PLANNED_STATUSES,
    2110: PLANNED_STATUSES,
    2100: MARK_CODE_TYPES,
    2105: {0: "запрос и КМ корректны", 1: "запрос некорректен", 2: "КМ не распознан"},
    2109: {1: "статус товара корректен", 2: "статус товара некорректен", 3: "оборот приостановлен"},
    2111: {0: "уведомление принято", 1: "уведомление некорректно"},
    2006: {0: "все КМ положительны", 1: "есть отрицательные КМ"},
    2107: {0: "все КМ положительны", 1: "есть отрицательные КМ (КМ?)"},
}
BITMASKS: dict[int, dict[int, str]] = {
    1062: TAX_SYSTEMS,
    2004: {1: "КМ проверен в ФН", 2: "результат положительный"},
    2005: ITEM_CHECK_BITS,
    2106: ITEM_CHECK_BITS,
    2112: {2: "КМ некорректен по ответу на запрос", 4: "КМ некорректен по квитанции"},
    2113: {1: "отрицательный ответ на запрос", 2: "отрицательная квитанция на уведомление"},
    2116: {
        1: "чек",
        2: "чек коррекции",
        4: "без запроса: автомат",
        8: "без запроса: общепит",
        16: "без запроса: опт",
    },
}
NOT_MONEY = frozenset({1293, 1294})  # VLN numerator and denominator of a fractional quantity


def is_money(tag: int) -> bool:
    """Kopecks on the wire: the FFD's VLN sums (1020, 1031, 1079, 1102 ...)."""
    spec = TAGS.get(tag)
    return spec is not None and spec.type is TagType.VLN and tag not in NOT_MONEY


def roubles(kopecks: int) -> str:
    """``54300`` -> ``"543.00 ₽"``."""
    sign = "-" if kopecks < 0 else ""
    whole, part = divmod(abs(kopecks), 100)
    return f"{sign}{whole}.{part:02d} ₽"


def text_value(value: Value, tag: int | None = None) -> str:
    """A value as one line of text (nested lists are shown by `rows`, not here).  With its
    ``tag``, money reads as roubles and a code as its meaning (``1 (приход)``)."""
    if isinstance(value, dt.datetime):
        return value.strftime("%d.%m.%Y %H:%M:%S")
    if isinstance(value, bytes):
        return value.hex(" ")
    if isinstance(value, list):
        return ""
    if tag == 2000 and isinstance(value, str):  # the code's GS bytes, visible
        return value.replace("\x1d", "<GS>")
    if tag is not None and isinstance(value, int) and not isinstance(value, bool):
        if is_money(tag):
            return roubles(value)
        if tag in CODES:
            meaning = CODES[tag].get(value)
            return f"{value} ({meaning})" if meaning else f"{value} (unknown code)"
        if tag in BITMASKS:
            names = [name for bit, name in BITMASKS[tag].items() if value & bit]
            if tag == 2106:  # what the receipt prints before the item comes first
                names.insert(0, item_check_label(value))
            return f"{value} ({', '.join(names)})" if names else str(value)
    return str(value)


def rows(items: TlvList, depth: int = 0) -> Iterator[tuple[int, int, str, str]]:
    """(depth, tag, name, value text) for every attribute, nested ones after their STLV: money
    in roubles, codes with their meaning (`text_value`); JSON keeps kopecks and codes."""
    for tag, value in items:
        yield depth, tag, tag_name(tag), text_value(value, tag)
        if isinstance(value, list):
            yield from rows(value, depth + 1)
