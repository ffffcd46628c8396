"""The print form of FFD documents: which tags print, in which order, with which label, and how
their values read on paper -- and the layout of one document on a tape.

Sources (fact sheets in ``shared/reference``): the receipt's order, labels and value formats are
FFD Tables 4, 5, 20 and 21 as ``ofd-cloud-marking.md`` §3.1 gives them (marked ``FFD`` below);
the reports' order follows their FFD tables as ``fn-ffd-ofd.md`` §1.4 lists them.  The FFD gives
the reports' details no printed labels; theirs are our reading, in the short capitals registers
print (marked ``ours``).  A second reading for those: the print names of Shtrikh's official
JavaPOS driver (``shtrih-m/javapos_shtrih``, ``Source/Core/src/com/shtrih/fiscalprinter/
TLVTags.java``) -- КАССИР, МЕСТО РАСЧЕТОВ, ИНН ОФД, ВЕРСИЯ ККТ, ВЕРСИЯ ФФД ККТ / ФН, РЕСУРС КЛЮЧЕЙ
ФП, СЧЕТЧИКИ ИТОГОВ СМЕНЫ / ФН, ТИП КОРРЕКЦИИ are its words too; where its names are long phrases
(«КОЛ-ВО КАССОВЫХ ЧЕКОВ ЗА СМЕНУ(БСО)») ours are shorter, to fit a 32-character tape.  For 1178
and 1179 that driver keeps the FFD 1.05 meaning (the date and number of the correction's basis
document); we print the FFD 1.2 one the tag dictionary has (the corrected settlement's date, the
tax authority's order number).  Where the sheets disagree or say nothing:

* 1042 (receipt number in the shift) and 1038 (shift) are electronic-only in S3's transcription of
  FFD Table 96, yet real receipts print both (``fn-ffd-ofd.md`` §7.1): we print them.
* Flags equal to 0 are not printed (FFD Table 5); neither are sums equal to 0 among the payment
  forms, the receipt's VAT sums and the counters (a zero says nothing a buyer needs; ИТОГ always
  prints).
* A VAT rate of «без НДС» prints nothing (FFD Table 8, §3.1 row 12).
* Change (СДАЧА) is not a tag: the FN keeps the cash kept (1031), so the tendered cash and the
  change print only when the caller knows them (``change=``); labels ПОЛУЧЕНО / СДАЧА are ours.
* The fiscal sign prints as the decimal of bytes 2..5 of 1077 read big-endian (FFD Table 5).

Tags this table has no label for are not printed (the electronic-only ones: 1209, 1203, 1117 in
receipts ...).  A labelled tag that a document carries outside its type's order (a tag another
FFD version adds) still prints, before the fiscal details at the foot, so nothing labelled is
lost.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from kkt.protocols.ffd import (
    DocumentType,
    TlvList,
    Value,
    fiscal_sign_from_tlv,
    qr_of_document,
)
from kkt.protocols.ffd.view import (
    MEASURES,
    OPERATION_TYPES,
    PAYMENT_METHODS,
    PRODUCT_TYPES,
    VAT_RATES,
)

from .tape import Layout, Printed, RenderError, Tape

Show = Callable[[Value], str | None]  # a value as printed; None: this value is not printed

FFD = "FFD"  # label and format from FFD Tables 4-5 (ofd-cloud-marking.md §3.1)
OURS = "ours"  # the FFD gives no printed label: our reading


# -- how values read on paper --------------------------------------------------------------------


def _text(value: Value) -> str | None:
    if isinstance(value, bytes):  # a tag this package's dictionary does not know yet
        value = value.decode("cp866")
    text = " ".join(str(value).split())
    return text or None


def money(value: Value) -> str | None:
    """Kopecks as ``{Ц}.ЦЦ`` roubles (FFD Table 5)."""
    kopecks = _int(value)
    return f"{kopecks // 100}.{kopecks % 100:02d}"


def _money_not_zero(value: Value) -> str | None:
    return money(value) if _int(value) else None


def _number(value: Value) -> str | None:
    return str(_int(value))


def _number_not_zero(value: Value) -> str | None:
    return str(_int(value)) if _int(value) else None


def _int(value: Value) -> int:
    if isinstance(value, bytes):  # an unknown tag: read as the FFD's little-endian integers
        return int.from_bytes(value, "little")
    if isinstance(value, bool) or not isinstance(value, int):
        raise RenderError(f"expected a number, got {value!r}")
    return value


def _when(value: Value) -> str | None:
    """``ДД.ММ.ГГ ЧЧ:ММ`` (FFD Table 5)."""
    return _time(value).strftime("%d.%m.%y %H:%M")


def _day(value: Value) -> str | None:
    return _time(value).strftime("%d.%m.%y")


def _time(value: Value) -> dt.datetime:
    if isinstance(value, bytes) and len(value) == 4:  # unixtime of an unknown tag
        return dt.datetime(1970, 1, 1) + dt.timedelta(seconds=int.from_bytes(value, "little"))
    if not isinstance(value, dt.datetime):
        raise RenderError(f"expected a date-time, got {value!r}")
    return value


def _quantity(value: Value) -> str | None:
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(_int(value))


def _fiscal_sign(value: Value) -> str | None:
    if not isinstance(value, bytes):
        raise RenderError(f"tag 1077 must be 6 bytes, got {value!r}")
    return str(fiscal_sign_from_tlv(value))


def _hex(value: Value) -> str | None:
    return value.hex().upper() if isinstance(value, bytes) else _text(value)


def _code(table: dict[int, str]) -> Show:
    def show(value: Value) -> str | None:
        number = _int(value)
        return table.get(number, str(number)).upper()

    return show


def _bitmask(table: dict[int, str]) -> Show:
    def show(value: Value) -> str | None:
        number = _int(value)
        names = [name.upper() for bit, name in table.items() if number & bit]
        return ", ".join(names) if names else str(number)

    return show


def _flag(value: Value) -> str | None:
    return "" if _int(value) else None  # printed as its label alone; 0 is not printed


def _vat(value: Value) -> str | None:
    return None if _int(value) == 6 else VAT_RATES.get(_int(value), f"НДС {_int(value)}").upper()


# FFD Table 6 short names, as registers print them (our reading of "ОСН, УСН …", §3.1 row 6).
TAX_SHORT = {1: "ОСН", 2: "УСН", 4: "УСН ДОХОД-РАСХОД", 8: "ЕНВД", 16: "ЕСХН", 32: "ПСН"}


# -- the label table, by tag number ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Detail:
    """How one tag prints: its label, its value on paper, and how it is laid out.

    ``how``: ``pair`` (label left, value right), ``line`` (the value alone, wrapped),
    ``center``, ``flag`` (the label alone, when the flag is 1) or ``block`` (an STLV: the label
    as a heading, then its members by their own labels)."""

    tag: int
    label: str
    show: Show
    how: str = "pair"
    source: str = OURS
    bold: bool = False


def _details(*details: Detail) -> dict[int, Detail]:
    return {detail.tag: detail for detail in details}


LABELS: dict[int, Detail] = _details(
    # the head of a document
    Detail(1048, "", _text, "center", FFD),  # наименование пользователя: no label
    Detail(1018, "ИНН", _text, source=FFD),
    Detail(1256, "СВЕДЕНИЯ О ПОКУПАТЕЛЕ", _text, "block"),
    Detail(1227, "ПОКУПАТЕЛЬ", _text),
    Detail(1228, "ИНН ПОКУПАТЕЛЯ", _text, source=FFD),
    Detail(1254, "АДРЕС ПОКУПАТЕЛЯ", _text),
    Detail(1012, "", _when, "line", FFD),  # дата, время: no label
    Detail(1042, "ЧЕК", _number),
    Detail(1038, "СМЕНА", _number),
    Detail(1054, "", _code(OPERATION_TYPES), "center", FFD, bold=True),
    Detail(1055, "СНО", _code(TAX_SHORT), source=FFD),
    Detail(1021, "КАССИР", _text, source=FFD),
    Detail(1037, "РН ККТ", _text, source=FFD),
    Detail(1036, "АВТОМАТ", _text),
    Detail(1009, "", _text, "line", FFD),  # адрес расчетов: no label in 1.05
    Detail(1187, "МЕСТО РАСЧЕТОВ", _text, source=FFD),
    Detail(1008, "ЭЛ. АДР. ПОКУПАТЕЛЯ", _text, source=FFD),  # or ТЕЛ. ПОКУПАТЕЛЯ: `_label`
    # corrections
    Detail(1173, "ТИП КОРРЕКЦИИ", _code({0: "самостоятельно", 1: "по предписанию"})),
    Detail(1174, "ОСНОВАНИЕ ДЛЯ КОРРЕКЦИИ", _text, "block"),
    Detail(1177, "ОПИСАНИЕ КОРРЕКЦИИ", _text),
    Detail(1178, "ДАТА РАСЧЕТА", _day),
    Detail(1179, "ПРЕДПИСАНИЕ №", _text),
    # the sums (FFD §3.1 rows 13-16)
    Detail(1020, "ИТОГ", money, source=FFD, bold=True),
    Detail(1031, "НАЛИЧНЫМИ", _money_not_zero, source=FFD),
    Detail(1081, "БЕЗНАЛИЧНЫМИ", _money_not_zero, source=FFD),
    Detail(1215, "ПРЕДВАРИТЕЛЬНАЯ ОПЛАТА (АВАНС)", _money_not_zero, source=FFD),
    Detail(1216, "ПОСЛЕДУЮЩАЯ ОПЛАТА (КРЕДИТ)", _money_not_zero, source=FFD),
    Detail(1217, "ИНАЯ ФОРМА ОПЛАТЫ", _money_not_zero, source=FFD),
    Detail(1102, "СУММА НДС 20%", _money_not_zero, source=FFD),
    Detail(1103, "СУММА НДС 10%", _money_not_zero, source=FFD),
    Detail(1104, "СУММА С НДС 0%", _money_not_zero, source=FFD),
    Detail(1105, "СУММА БЕЗ НДС", _money_not_zero, source=FFD),
    Detail(1106, "СУММА НДС 20/120", _money_not_zero, source=FFD),
    Detail(1107, "СУММА НДС 10/110", _money_not_zero, source=FFD),
    Detail(1060, "САЙТ ФНС", _text, source=FFD),
    Detail(1192, "ДОП. РЕКВИЗИТ", _text),
    Detail(1084, "", _text, "block"),
    Detail(1085, "", _text, "line"),
    Detail(1086, "", _text, "line"),
    # an item's details other than its name, quantity, price and cost (laid out by `_item`)
    Detail(1199, "", _vat, source=FFD),
    Detail(1200, "", _money_not_zero, source=FFD),
    Detail(1214, "", _code(PAYMENT_METHODS), "line"),
    Detail(1212, "", _code(PRODUCT_TYPES), "line"),
    Detail(1229, "АКЦИЗ", _money_not_zero),
    Detail(1230, "КОД СТРАНЫ", _text, source=FFD),
    Detail(1231, "ДЕКЛАРАЦИЯ", _text, source=FFD),
    Detail(1191, "", _text, "line"),
    # reports
    Detail(1013, "ЗН ККТ", _text),
    Detail(1062, "СНО", _bitmask(TAX_SHORT)),
    Detail(1017, "ИНН ОФД", _text),
    Detail(1046, "ОФД", _text),
    Detail(1117, "ЭЛ. АДР. ОТПРАВИТЕЛЯ", _text),
    Detail(1001, "АВТОМАТИЧЕСКИЙ РЕЖИМ", _flag, "flag"),
    Detail(1002, "АВТОНОМНЫЙ РЕЖИМ", _flag, "flag"),
    Detail(1056, "ШИФРОВАНИЕ", _flag, "flag"),
    Detail(1108, "ККТ ДЛЯ ИНТЕРНЕТ", _flag, "flag"),
    Detail(1109, "ККТ ДЛЯ УСЛУГ", _flag, "flag"),
    Detail(1110, "АС БСО", _flag, "flag"),
    Detail(1221, "ПРИНТЕР В АВТОМАТЕ", _flag, "flag"),
    Detail(1290, "ПРИЗНАКИ УСЛОВИЙ ПРИМЕНЕНИЯ", _number_not_zero),
    Detail(1101, "КОД ПРИЧИНЫ ПЕРЕРЕГИСТРАЦИИ", _number),
    Detail(1205, "КОДЫ ПРИЧИН ИЗМЕНЕНИЯ", _number),
    Detail(1188, "ВЕРСИЯ ККТ", _text),
    Detail(1189, "ВЕРСИЯ ФФД ККТ", _code({1: "1.0", 2: "1.05", 3: "1.1", 4: "1.2"})),
    Detail(1190, "ВЕРСИЯ ФФД ФН", _code({1: "1.0", 2: "1.05", 3: "1.1", 4: "1.2"})),
    Detail(1118, "ЧЕКОВ ЗА СМЕНУ", _number),
    Detail(1111, "ФД ЗА СМЕНУ", _number),
    Detail(1097, "НЕПЕРЕДАННЫХ ФД", _number),
    Detail(1098, "ФД НЕ ПЕРЕДАНЫ С", _day),
    Detail(1116, "ПЕРВЫЙ НЕПЕРЕДАННЫЙ ФД", _number),
    Detail(1050, "РЕСУРС ФН МЕНЕЕ 30 ДНЕЙ", _flag, "flag"),
    Detail(1051, "ЗАМЕНИТЕ ФН (МЕНЕЕ 3 ДНЕЙ)", _flag, "flag"),
    Detail(1052, "ПАМЯТЬ ФН ЗАПОЛНЕНА", _flag, "flag"),
    Detail(1053, "ПРЕВЫШЕНО ВРЕМЯ ОТВЕТА ОФД", _flag, "flag"),
    Detail(1206, "СООБЩЕНИЕ ОПЕРАТОРА", _number_not_zero),
    Detail(1213, "РЕСУРС КЛЮЧЕЙ ФП", lambda value: f"{_int(value)} ДН."),
    Detail(1194, "СЧЕТЧИКИ ИТОГОВ СМЕНЫ", _text, "block"),
    Detail(1157, "СЧЕТЧИКИ ИТОГОВ ФН", _text, "block"),
    Detail(1158, "СЧЕТЧИКИ НЕПЕРЕДАННЫХ ФД", _text, "block"),
    Detail(1134, "ЧЕКОВ ВСЕГО", _number_not_zero),
    Detail(1129, "ПРИХОД", _text, "block"),
    Detail(1130, "ВОЗВРАТ ПРИХОДА", _text, "block"),
    Detail(1131, "РАСХОД", _text, "block"),
    Detail(1132, "ВОЗВРАТ РАСХОДА", _text, "block"),
    Detail(1133, "КОРРЕКЦИИ", _text, "block"),
    Detail(1145, "КОРРЕКЦИИ ПРИХОДА", _text, "block"),
    Detail(1146, "КОРРЕКЦИИ РАСХОДА", _text, "block"),
    Detail(1232, "КОРРЕКЦИИ ВОЗВРАТА ПРИХОДА", _text, "block"),
    Detail(1233, "КОРРЕКЦИИ ВОЗВРАТА РАСХОДА", _text, "block"),
    Detail(1135, "ЧЕКОВ", _number_not_zero),
    Detail(1144, "ЧЕКОВ КОРРЕКЦИИ", _number_not_zero),
    Detail(1201, "СУММА", _money_not_zero),
    Detail(1136, "НАЛИЧНЫМИ", _money_not_zero),
    Detail(1138, "БЕЗНАЛИЧНЫМИ", _money_not_zero),
    Detail(1218, "ПРЕДОПЛАТАМИ", _money_not_zero),
    Detail(1219, "ПОСТОПЛАТАМИ", _money_not_zero),
    Detail(1220, "ВСТРЕЧНЫМИ ПРЕДОСТАВЛЕНИЯМИ", _money_not_zero),
    Detail(1139, "НДС 20%", _money_not_zero),
    Detail(1140, "НДС 10%", _money_not_zero),
    Detail(1141, "НДС 20/120", _money_not_zero),
    Detail(1142, "НДС 10/110", _money_not_zero),
    Detail(1143, "С НДС 0%", _money_not_zero),
    Detail(1183, "БЕЗ НДС", _money_not_zero),
    # the OFD's confirmation
    Detail(1078, "ФПО", _hex),
    # the fiscal details at the foot (§3.1 row 20)
    Detail(1040, "ФД", _number, source=FFD),
    Detail(1041, "ФН", _text, source=FFD),
    Detail(1077, "ФП", _fiscal_sign, source=FFD),
)

# What no order below names and still never prints: electronic-only or formed from the type.
NOT_PRINTED = frozenset({1000, 1196, 1203, 1209, 1059})

_HEAD = (1048, 1018, 1009, 1187, 1012)
_FOOT = (1040, 1041, 1077)
_RECEIPT = (
    1048, 1018, 1256, 1227, 1228, 1012, 1042, 1038, 1054, 1055, 1021, 1037, 1036, 1009, 1187,
    1008, 1173, 1174, 1059, 1020, 1031, 1081, 1215, 1216, 1217, 1102, 1103, 1104, 1105, 1106,
    1107, 1060, 1192, 1084, *_FOOT,
)  # fmt: skip
_REGISTRATION = (
    *_HEAD, 1021, 1037, 1013, 1062, 1017, 1046, 1060, 1117, 1001, 1002, 1056, 1108, 1109, 1110,
    1221, 1290, 1101, 1205, 1188, 1189, 1190, 1213, *_FOOT,
)  # fmt: skip

ORDER: dict[int, tuple[int, ...]] = {
    DocumentType.REGISTRATION: _REGISTRATION,
    DocumentType.REREGISTRATION: _REGISTRATION,
    DocumentType.SHIFT_OPEN: (
        *_HEAD, 1038, 1021, 1037, 1188, 1189, 1050, 1051, 1052, 1053, 1206, 1213, *_FOOT,
    ),
    DocumentType.STATE_REPORT: (
        *_HEAD, 1037, 1038, 1097, 1098, 1116, 1213, 1158, 1157, *_FOOT,
    ),
    DocumentType.RECEIPT: _RECEIPT,
    DocumentType.CORRECTION_RECEIPT: _RECEIPT,
    DocumentType.BSO: _RECEIPT,
    DocumentType.CORRECTION_BSO: _RECEIPT,
    DocumentType.SHIFT_CLOSE: (
        *_HEAD, 1038, 1021, 1037, 1118, 1111, 1097, 1098, 1116, 1050, 1051, 1052, 1053, 1206,
        1213, 1194, 1157, *_FOOT,
    ),
    DocumentType.FISCAL_MODE_CLOSE: (*_HEAD, 1038, 1021, 1037, 1157, *_FOOT),
    DocumentType.OPERATOR_CONFIRMATION: (1017, 1041, 1040, 1012, 1078),
}  # fmt: skip

# Tag 1000 when the document does not carry it: FFD Table 11 for receipts (§3.1 row 1), the
# documents' own names otherwise.
TITLES = {
    DocumentType.REGISTRATION: "ОТЧЕТ О РЕГИСТРАЦИИ",
    DocumentType.REREGISTRATION: "ОТЧЕТ ОБ ИЗМЕНЕНИИ ПАРАМЕТРОВ РЕГИСТРАЦИИ",
    DocumentType.SHIFT_OPEN: "ОТЧЕТ ОБ ОТКРЫТИИ СМЕНЫ",
    DocumentType.STATE_REPORT: "ОТЧЕТ О ТЕКУЩЕМ СОСТОЯНИИ РАСЧЕТОВ",
    DocumentType.RECEIPT: "КАССОВЫЙ ЧЕК",
    DocumentType.CORRECTION_RECEIPT: "ЧЕК КОРРЕКЦИИ",
    DocumentType.BSO: "БСО",
    DocumentType.CORRECTION_BSO: "БСО КОРРЕКЦИИ",
    DocumentType.SHIFT_CLOSE: "ОТЧЕТ О ЗАКРЫТИИ СМЕНЫ",
    DocumentType.FISCAL_MODE_CLOSE: "ОТЧЕТ О ЗАКРЫТИИ ФН",
    DocumentType.OPERATOR_CONFIRMATION: "ПОДТВЕРЖДЕНИЕ ОПЕРАТОРА",
}
RECEIPT_TYPES = frozenset(
    {
        DocumentType.RECEIPT,
        DocumentType.CORRECTION_RECEIPT,
        DocumentType.BSO,
        DocumentType.CORRECTION_BSO,
    }
)

_PHONE = re.compile(r"\+?[0-9][0-9 ()-]*")


# -- laying a document out --------------------------------------------------------------------


def unwrap(tlv: TlvList, doc_type: int | None = None) -> tuple[int, TlvList]:
    """``(document type, its tags)`` from a document as the FN gives it (one STLV whose tag is
    the type) or from its bare tags with ``doc_type``."""
    if len(tlv) == 1 and isinstance(tlv[0][1], list) and tlv[0][0] in ORDER:
        return tlv[0][0], tlv[0][1]
    if doc_type is None:
        raise RenderError(
            "these tags are not wrapped in a document STLV: say which document it is "
            "(doc_type=3 for a receipt, 5 for a shift close ...)"
        )
    if doc_type not in ORDER:
        known = ", ".join(str(int(t)) for t in ORDER)
        raise RenderError(f"document type {doc_type} has no print form here (known: {known})")
    return doc_type, tlv


def document_tape(
    tlv: TlvList, *, width: int = 48, doc_type: int | None = None, change: int = 0
) -> Tape:
    """One FFD document laid out on a tape ``width`` characters wide, in its print form.

    ``change``: cash handed back (kopecks), which no tag holds; printed with the tendered cash
    when given."""
    kind, body = unwrap(tlv, doc_type)
    if isinstance(change, bool) or not isinstance(change, int) or change < 0:
        raise RenderError(f"change must be kopecks (an int >= 0), got {change!r}")
    page = _Page(Layout(width))
    title = _text(_first(body, 1000) or "") or TITLES[DocumentType(kind)]
    page.layout.center(title, bold=True)
    page.printed.append(Printed(1000, "", title))
    order = ORDER[kind]
    present = {tag for tag, _ in body}
    extras = [
        (tag, value)
        for tag, value in body
        if tag in LABELS and tag not in order and tag not in NOT_PRINTED
    ]
    for tag in order:
        if tag == 1040 and extras:  # tags of another FFD version: before the fiscal foot
            for extra_tag, value in extras:
                page.detail(extra_tag, value)
        for value in (value for t, value in body if t == tag):
            if tag == 1059:
                page.item(value)
            else:
                page.detail(tag, value)
        if tag == 1217 and change and 1031 in present:  # what was handed over and back
            cash = _int(_first(body, 1031) or 0)
            page.pair(0, "ПОЛУЧЕНО", money(cash + change) or "")
            page.pair(0, "СДАЧА", money(change) or "")
    if kind in RECEIPT_TYPES and {1012, 1020, 1040, 1041, 1054, 1077} <= present:
        page.layout.qr(qr_of_document(body))
    return Tape(width, tuple(page.layout.entries), title.capitalize(), tuple(page.printed))


def _first(body: TlvList, tag: int) -> Value | None:
    for item_tag, value in body:
        if item_tag == tag:
            return value
    return None


class _Page:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.printed: list[Printed] = []

    def pair(self, tag: int, label: str, value: str, *, bold: bool = False) -> None:
        self.layout.pair(label, value, bold=bold)
        self.printed.append(Printed(tag, label, value))

    def detail(self, tag: int, value: Value) -> None:
        detail = LABELS.get(tag)
        if detail is None:
            return
        if detail.how == "block":
            self.block(detail, value)
            return
        shown = detail.show(value)
        if shown is None:
            return
        label = _label(detail, shown)
        if detail.how == "flag":
            self.layout.line(label)
            self.printed.append(Printed(tag, label, ""))
        elif detail.how == "center":
            self.layout.center(shown, bold=detail.bold)
            self.printed.append(Printed(tag, "", shown))
        elif detail.how == "line":
            self.layout.line(shown, bold=detail.bold)
            self.printed.append(Printed(tag, "", shown))
        else:
            self.pair(tag, label, shown, bold=detail.bold)

    def block(self, detail: Detail, value: Value) -> None:
        if not isinstance(value, list):
            return
        inner = _Page(Layout(self.layout.width))
        for tag, member in value:
            inner.detail(tag, member)
        if not inner.printed:
            return  # every member is zero: the block says nothing
        if detail.label:
            self.layout.line(detail.label)
            self.printed.append(Printed(detail.tag, detail.label, ""))
        self.layout.entries += inner.layout.entries
        self.printed += inner.printed

    def item(self, value: Value) -> None:
        """One 1059: name; quantity x price = cost; VAT; the way and subject of payment ..."""
        if not isinstance(value, list):
            return
        name = _text(_first(value, 1030) or "") or ""
        if name:
            self.layout.line(name)
            self.printed.append(Printed(1030, "", name))
        quantity = _first(value, 1023)
        price = _first(value, 1079)
        cost = _first(value, 1043)
        shown_quantity = _quantity(quantity) if quantity is not None else "1"
        unit = _unit(value)
        left = f"{shown_quantity}{' ' + unit if unit else ''} x {money(price or 0)}"
        self.layout.pair(left, money(cost or 0) or "")
        if quantity is not None:
            self.printed.append(Printed(1023, "", shown_quantity or ""))
        self.printed += [
            Printed(1079, "", money(price or 0) or ""),
            Printed(1043, "", money(cost or 0) or ""),
        ]
        rate = _first(value, 1199)
        vat_label = _vat(rate) if rate is not None else None
        if vat_label:
            tax = _first(value, 1200)
            shown_tax = money(tax) if tax is not None else ""
            self.layout.pair(vat_label, shown_tax or "")
            self.printed.append(Printed(1199, vat_label, shown_tax or ""))
        for tag, member in value:
            if tag not in (1030, 1023, 1079, 1043, 1199, 1200, 1197, 2108):
                self.detail(tag, member)


def _unit(item: TlvList) -> str:
    measure = _first(item, 2108)
    if isinstance(measure, int):
        return MEASURES.get(measure, "")
    unit = _first(item, 1197)
    return (_text(unit) or "") if unit is not None else ""


def _label(detail: Detail, shown: str) -> str:
    if detail.tag == 1008 and _PHONE.fullmatch(shown):
        return "ТЕЛ. ПОКУПАТЕЛЯ"  # FFD Table 4: a phone, else an e-mail address
    return detail.label


__all__ = [
    "FFD",
    "LABELS",
    "NOT_PRINTED",
    "ORDER",
    "OURS",
    "RECEIPT_TYPES",
    "TITLES",
    "Detail",
    "document_tape",
    "money",
    "unwrap",
]
