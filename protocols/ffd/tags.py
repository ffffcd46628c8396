"""The FFD tag dictionary: every attribute's wire type, length limits and names.

Source: fact sheet ``fn-ffd-ofd.md`` §1.2–§1.3 (types and maximum lengths as transcribed by S3, the
FFD tables; S4 ``yandex/ofd`` where S3 is silent) and §2 (document codes and their STLV maxima).
Tags the sheet names without a type or a length carry a ``# best reading`` comment: the type given
there is our reading of the FFD tables, not a fact the sheet confirms.

Lengths are in bytes of the encoded value (a CP866 string has one byte per character).
``max_length`` is the most a value may take; ``fixed_length`` says the value is always exactly that
long (1041 FN number, 1077 ФПД, and the fixed-size integers BYTE/U16/U32/UNIXTIME).  Fixed-width
strings that the FFD pads (1037 RNM to 20, the INNs to 12) are *not* padded here: the codec keeps
values verbatim, and padding is the caller's business.  ``repeatable`` is information for the
document builder (several items, phones, properties…); the codec itself accepts any tag any number
of times.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import CodecError


class TagType(enum.Enum):
    """Wire types of FFD attributes (fact sheet §1.2)."""

    BYTE = "byte"  # 1 byte unsigned
    U16 = "uint16"  # 2 bytes LE
    U32 = "uint32"  # 4 bytes LE
    UNIXTIME = "unixtime"  # uint32 LE, seconds since 1970 of the wall-clock time
    VLN = "vln"  # unsigned LE integer of variable length (money in kopecks)
    FVLN = "fvln"  # decimals byte + VLN mantissa (quantity)
    STRING = "string"  # CP866, no terminator
    BYTES = "bytes"  # raw bytes
    STLV = "stlv"  # a nested TLV list


@dataclass(frozen=True, slots=True)
class TagSpec:
    """One attribute (реквизит) of the FFD: its number, names, wire type and length limits."""

    tag: int
    name: str  # the Russian name of the FFD tables
    json_name: str | None  # the JSON name the sheet or S4's JSON schemas give; else None
    type: TagType
    max_length: int | None  # None: only the TLV's own u16 length limits it
    fixed_length: int | None
    repeatable: bool = False


_INT_SIZES = {TagType.BYTE: 1, TagType.U16: 2, TagType.U32: 4, TagType.UNIXTIME: 4}
_MONEY = 6  # VLN money: at most 6 bytes (§1.2)


def _spec(
    tag: int,
    name: str,
    json_name: str | None,
    type_: TagType,
    max_length: int | None = None,
    *,
    fixed: int | None = None,
    repeatable: bool = False,
) -> TagSpec:
    if type_ in _INT_SIZES:
        max_length = fixed = _INT_SIZES[type_]
    elif fixed is not None:
        max_length = fixed
    return TagSpec(tag, name, json_name, type_, max_length, fixed, repeatable)


B, U16, U32, TIME = TagType.BYTE, TagType.U16, TagType.U32, TagType.UNIXTIME
VLN, FVLN, STR, RAW, STLV = (
    TagType.VLN,
    TagType.FVLN,
    TagType.STRING,
    TagType.BYTES,
    TagType.STLV,
)

_SPECS: list[TagSpec] = [
    # --- whole documents (§1.1, §2): the STLV tag equals the document code; maxima from S3 ---
    _spec(1, "отчет о регистрации", "fiscalReport", STLV, 6144),
    _spec(11, "отчет об изменении параметров регистрации", "fiscalReportCorrection", STLV, 6144),
    _spec(2, "отчет об открытии смены", "openShift", STLV, 4096),
    _spec(21, "отчет о текущем состоянии расчетов", "currentStateReport", STLV, 32768),
    _spec(3, "кассовый чек", "receipt", STLV, 32768),
    _spec(31, "кассовый чек коррекции", "receiptCorrection", STLV, 32768),
    _spec(4, "бланк строгой отчетности", None, STLV, 32768),
    _spec(41, "бланк строгой отчетности коррекции", None, STLV, 32768),
    _spec(5, "отчет о закрытии смены", "closeShift", STLV, 4096),
    _spec(6, "отчет о закрытии фискального накопителя", "closeArchive", STLV, 4096),
    _spec(7, "подтверждение оператора", None, STLV, 512),
    # FFD 1.2 marking documents (§2): the sheet gives no maxima.
    _spec(81, "запрос о коде маркировки", None, STLV),
    _spec(82, "уведомление о реализации маркированного товара", None, STLV),
    _spec(83, "ответ на запрос", None, STLV),
    _spec(84, "квитанция на уведомление", None, STLV),
    # --- attributes (§1.3) ---
    _spec(1000, "наименование документа", None, STR),  # printed form only; no maximum given
    _spec(1001, "признак автоматического режима", "autoMode", B),
    _spec(1002, "признак автономного режима", "offlineMode", B),
    _spec(1005, "адрес оператора перевода", "operatorAddress", STR, 256),
    _spec(1008, "телефон или электронный адрес покупателя", "buyerPhoneOrAddress", STR, 64),
    _spec(1009, "адрес расчетов", "retailPlaceAddress", STR, 256),
    _spec(1012, "дата, время", "dateTime", TIME),
    _spec(1013, "заводской номер ККТ", "kktNumber", STR, 20),
    _spec(1016, "ИНН оператора перевода", None, STR, 12),
    # 1017/1018: 12 characters, space-padded by the document's builder (fact sheet §1.2; the
    # vendor's table shtrih-m/opos TLVTags.pas marks both fixed-length 12)
    _spec(1017, "ИНН ОФД", "ofdInn", STR, 12),
    _spec(1018, "ИНН пользователя", "userInn", STR, 12),
    _spec(1020, "сумма расчета, указанного в чеке (БСО)", "totalSum", VLN, _MONEY),
    _spec(1021, "кассир", "operator", STR, 64),
    _spec(1022, "код ответа ОФД", None, B),
    _spec(1023, "количество предмета расчета", "quantity", FVLN, 8),
    _spec(1026, "наименование оператора перевода", "operatorName", STR, 64),
    _spec(1030, "наименование предмета расчета", "name", STR, 128),
    _spec(1031, "сумма по чеку (БСО) наличными", "cashTotalSum", VLN, _MONEY),
    _spec(1036, "номер автомата", "machineNumber", STR, 20),
    _spec(1037, "регистрационный номер ККТ", "kktRegId", STR, 20),
    _spec(1038, "номер смены", "shiftNumber", U32),
    _spec(1040, "номер ФД", "fiscalDocumentNumber", U32),
    _spec(1041, "номер ФН", "fiscalDriveNumber", STR, fixed=16),
    _spec(1042, "номер чека за смену", "requestNumber", U32),
    _spec(1043, "стоимость предмета расчета с учетом скидок и наценок", "sum", VLN, _MONEY),
    # best reading: string of 24 (S4 types the 1.0 bank-agent operation 1044 so)
    _spec(1044, "операция платежного агента", None, STR, 24),
    _spec(1046, "наименование ОФД", None, STR, 256),
    _spec(1048, "наименование пользователя", "user", STR, 256),
    _spec(1050, "признак исчерпания ресурса ФН", "fiscalDriveExhaustionSign", B),
    _spec(1051, "признак необходимости срочной замены ФН", "fiscalDriveReplaceRequiredSign", B),
    _spec(1052, "признак заполнения памяти ФН", "fiscalDriveMemoryExceededSign", B),
    _spec(1053, "признак превышения времени ожидания ответа ОФД", "ofdResponseTimeoutSign", B),
    _spec(1054, "признак расчета", "operationType", B),
    _spec(1055, "применяемая система налогообложения", None, B),
    _spec(1056, "признак шифрования", "encryptionSign", B),
    _spec(1057, "признак агента", None, B),
    _spec(1059, "предмет расчета", "items", STLV, 1024, repeatable=True),
    _spec(1060, "адрес сайта ФНС", "fnsUrl", STR, 256),
    _spec(1062, "системы налогообложения", "taxationType", B),
    _spec(1068, "сообщение оператора для ФН", None, STLV, 169),
    _spec(1073, "телефон платежного агента", None, STR, 19, repeatable=True),
    _spec(1074, "телефон оператора по приему платежей", None, STR, 19, repeatable=True),
    # best reading: repeatable like its neighbours 1073/1074 (the sheet groups them)
    _spec(1075, "телефон оператора перевода", None, STR, 19, repeatable=True),
    _spec(1077, "фискальный признак документа", "fiscalSign", RAW, fixed=6),
    # 16 bytes per S3, 18 per S4 and the S1 archive record: accept up to 18.
    _spec(1078, "фискальный признак оператора", None, RAW, 18),
    _spec(1079, "цена за единицу предмета расчета", "price", VLN, _MONEY),
    _spec(1081, "сумма по чеку (БСО) безналичными", "ecashTotalSum", VLN, _MONEY),
    _spec(1084, "дополнительный реквизит пользователя", "properties", STLV, 320, repeatable=True),
    _spec(1085, "наименование дополнительного реквизита пользователя", "key", STR, 64),
    _spec(1086, "значение дополнительного реквизита пользователя", "value", STR, 256),
    _spec(1097, "количество непереданных ФД", "notTransmittedDocumentsQuantity", U32),
    _spec(1098, "дата первого из непереданных ФД", "notTransmittedDocumentsDateTime", TIME),
    _spec(1101, "код причины перерегистрации", None, B, repeatable=True),
    _spec(1102, "сумма НДС чека по ставке 20%", "nds18", VLN, _MONEY),
    _spec(1103, "сумма НДС чека по ставке 10%", "nds10", VLN, _MONEY),
    _spec(1104, "сумма расчета по чеку с НДС по ставке 0%", "nds0", VLN, _MONEY),
    _spec(1105, "сумма расчета по чеку без НДС", "ndsNo", VLN, _MONEY),
    _spec(1106, "сумма НДС чека по расч. ставке 20/120", "nds18118", VLN, _MONEY),
    _spec(1107, "сумма НДС чека по расч. ставке 10/110", "nds10110", VLN, _MONEY),
    _spec(1108, "признак ККТ для расчетов только в Интернет", "internetSign", B),
    _spec(1109, "признак расчетов за услуги", "serviceSign", B),
    _spec(1110, "признак АС БСО", "bsoSign", B),
    _spec(1111, "общее количество ФД за смену", "documentsQuantity", U32),
    _spec(1116, "номер первого непереданного документа", None, U32),
    _spec(1117, "адрес электронной почты отправителя чека", "sellerAddress", STR, 64),
    _spec(1118, "количество кассовых чеков (БСО) за смену", "receiptsQuantity", U32),
    _spec(1126, "признак проведения лотереи", None, B),
    # --- counters (§1.3, §4.4: the STLV form of the 36h blocks) ---
    _spec(1129, "счетчики операций «приход»", None, STLV, 116),
    _spec(1130, "счетчики операций «возврат прихода»", None, STLV, 116),
    _spec(1131, "счетчики операций «расход»", None, STLV, 116),
    _spec(1132, "счетчики операций «возврат расхода»", None, STLV, 116),
    _spec(1133, "счетчики операций по чекам коррекции", None, STLV, 216),
    # best reading for 1134/1135/1144: the sheet types them uint32 (§1.2) and gives their
    # meaning only through the 36h layout (number of operations; count per operation type).
    _spec(1134, "количество чеков (БСО) со всеми признаками расчетов", None, U32),
    _spec(1135, "количество чеков по признаку расчетов", None, U32),
    _spec(1136, "итоговая сумма в чеках (БСО) наличными", "cashSum", VLN, _MONEY),
    # 1137 is left out: the sheet's member lists skip it and give it no type.
    _spec(1138, "итоговая сумма в чеках (БСО) безналичными", "ecashSum", VLN, _MONEY),
    _spec(1139, "сумма НДС по ставке 20%", None, VLN, _MONEY),
    _spec(1140, "сумма НДС по ставке 10%", None, VLN, _MONEY),
    _spec(1141, "сумма НДС по расч. ставке 20/120", None, VLN, _MONEY),
    _spec(1142, "сумма НДС по расч. ставке 10/110", None, VLN, _MONEY),
    _spec(1143, "сумма расчетов с НДС по ставке 0%", None, VLN, _MONEY),
    _spec(1144, "количество чеков коррекции", None, U32),
    # 1145/1146/1232/1233: per-operation-type correction counters, STLVs (count 1135 + sum
    # 1201, cf. the 44-byte block of 36h).  Maximum 100: yandex/ofd ``ofd/protocol.py`` and the
    # vendor's table (shtrih-m/opos ``Source/SmFiscalPrinter/Units/TLVTags.pas``) both say 100
    # for 1145/1146 (1133's 216 then only bounds the sum of them).
    _spec(1145, "счетчики коррекций «приход»", None, STLV, 100),
    _spec(1146, "счетчики коррекций «расход»", None, STLV, 100),
    _spec(1157, "счетчики итогов ФН", None, STLV, 708),
    _spec(1158, "счетчики итогов непереданных ФД", None, STLV, 708),
    _spec(1162, "код товара", None, RAW, 32),
    _spec(1163, "код товара (ФФД 1.2)", None, STLV, 256),
    _spec(1171, "телефон поставщика", None, STR, 19, repeatable=True),
    _spec(1173, "тип коррекции", None, B),
    _spec(1174, "основание для коррекции", None, STLV, 292),
    # 1177: FFD 1.05/1.1 only (str 256: yandex/ofd ``ofd/protocol.py`` correctionName).
    _spec(1177, "наименование основания для коррекции", None, STR, 256),
    # 1178: "дата документа основания" in 1.05, "дата совершения корректируемого расчета" in 1.2
    _spec(1178, "дата совершения корректируемого расчета", None, TIME),
    _spec(1179, "номер предписания налогового органа", None, STR, 32),
    _spec(1183, "сумма расчетов без НДС", None, VLN, _MONEY),
    _spec(1187, "место расчетов", "retailPlace", STR, 256),
    _spec(1188, "версия ККТ", None, STR, 8),
    _spec(1189, "версия ФФД ККТ", None, B),
    _spec(1190, "версия ФФД ФН", None, B),
    _spec(1191, "дополнительный реквизит предмета расчета", None, STR, 64),
    _spec(1192, "дополнительный реквизит чека (БСО)", None, STR, 16),
    _spec(1193, "признак проведения азартных игр", None, B),
    _spec(1194, "счетчики итогов смены", None, STLV, 708),
    _spec(1196, "QR-код", None, STR),  # printed form only; no maximum given
    _spec(1197, "единица измерения предмета расчета", None, STR, 16),
    _spec(1198, "размер НДС за единицу предмета расчета", None, VLN, _MONEY),
    _spec(1199, "ставка НДС", None, B),
    _spec(1200, "сумма НДС за предмет расчета", "ndsSum", VLN, _MONEY),
    _spec(1201, "общая итоговая сумма в чеках (БСО)", "totalSum", VLN, _MONEY),
    _spec(1203, "ИНН кассира", "operatorInn", STR, 12),
    _spec(1205, "коды причин изменения сведений о ККТ", None, U32),
    _spec(1206, "сообщение оператора", None, B),
    _spec(1207, "признак торговли подакцизными товарами", "exciseDutyProductSign", B),
    _spec(1208, "сайт чеков", None, STR, 256),
    _spec(1209, "номер версии ФФД", "fiscalDocumentFormatVer", B),
    _spec(1212, "признак предмета расчета", "productType", B),
    # 1213 is 2 bytes: fact sheet §1.2 (S3's FFD types), S1, and the vendor's table (shtrih-m/opos
    # ``Source/SmFiscalPrinter/Units/TLVTags.pas``: ttUInt16, 2); yandex/ofd's U32 is not followed.
    _spec(1213, "ресурс ключей ФП", "fnKeyResource", U16),
    _spec(1214, "признак способа расчета", "paymentType", B),
    _spec(1215, "сумма по чеку (БСО) предоплатой", None, VLN, _MONEY),
    _spec(1216, "сумма по чеку (БСО) постоплатой", None, VLN, _MONEY),
    _spec(1217, "сумма по чеку (БСО) встречным предоставлением", None, VLN, _MONEY),
    _spec(1218, "итоговая сумма в чеках (БСО) предоплатами", "prepaidSum", VLN, _MONEY),
    _spec(1219, "итоговая сумма в чеках (БСО) постоплатами", "creditSum", VLN, _MONEY),
    _spec(
        1220,
        "итоговая сумма в чеках (БСО) встречными предоставлениями",
        "provisionSum",
        VLN,
        _MONEY,
    ),
    _spec(1221, "признак установки принтера в автомате", "printInMachineSign", B),
    _spec(1222, "признак агента по предмету расчета", None, B),
    _spec(1223, "данные агента", None, STLV, 512),
    _spec(1224, "данные поставщика", None, STLV, 512),
    _spec(1225, "наименование поставщика", None, STR, 256),
    _spec(1226, "ИНН поставщика", None, STR, 12),
    _spec(1227, "покупатель (клиент)", None, STR, 256),
    _spec(1228, "ИНН покупателя (клиента)", None, STR, 12),
    _spec(1229, "сумма акциза", None, VLN, _MONEY),
    _spec(1230, "код страны происхождения товара", None, STR, 3),
    _spec(1231, "номер таможенной декларации", None, STR, 32),
    _spec(1232, "счетчики коррекций «возврат прихода»", None, STLV, 100),  # see 1145
    _spec(1233, "счетчики коррекций «возврат расхода»", None, STLV, 100),  # see 1145
    # members of 1256 (§1.3 names them, no types): best reading, except 1244 (3 chars, §1.2)
    _spec(1243, "дата рождения покупателя (клиента)", None, STR, 10),  # best reading: ДД.ММ.ГГГГ
    _spec(1244, "гражданство", None, STR, 3),
    _spec(1245, "код вида документа, удостоверяющего личность", None, STR, 2),  # best reading
    _spec(1246, "данные документа, удостоверяющего личность", None, STR, 64),  # best reading
    _spec(1254, "адрес покупателя (клиента)", None, STR, 256),  # best reading
    _spec(1256, "сведения о покупателе (клиенте)", None, STLV, 1024),
    _spec(1260, "отраслевой реквизит предмета расчета", None, STLV, 317),
    _spec(1261, "отраслевой реквизит чека", None, STLV, 317, repeatable=True),
    # members of 1260/1261 (§1.3 names them, no types): best reading
    _spec(1262, "идентификатор ФОИВ", None, STR, 3),
    _spec(1263, "дата документа основания", None, STR, 10),
    _spec(1264, "номер документа основания", None, STR, 32),
    _spec(1265, "значение отраслевого реквизита", None, STR, 256),
    _spec(1270, "операционный реквизит чека", None, STLV, 144),
    # members of 1270: 1273 is unixtime (§1.2); 1271/1272 best reading
    _spec(1271, "идентификатор операции", None, B),
    _spec(1272, "данные операции", None, STR, 64),
    _spec(1273, "дата, время операции", None, TIME),
    # additional attribute / data of reports, FFD 1.2 (§1.3: str 32 / bytes 32)
    _spec(1274, "дополнительный реквизит ОР", None, STR, 32),
    _spec(1275, "дополнительные данные ОР", None, RAW, 32),
    _spec(1276, "дополнительный реквизит ООС", None, STR, 32),
    _spec(1277, "дополнительные данные ООС", None, RAW, 32),
    _spec(1278, "дополнительный реквизит ОЗС", None, STR, 32),
    _spec(1279, "дополнительные данные ОЗС", None, RAW, 32),
    _spec(1280, "дополнительный реквизит ОТР", None, STR, 32),
    _spec(1281, "дополнительные данные ОТР", None, RAW, 32),
    _spec(1282, "дополнительный реквизит ОЗФН", None, STR, 32),
    _spec(1283, "дополнительные данные ОЗФН", None, RAW, 32),
    # 1290 is 4 bytes: fact sheet §1.2 lists it among the uint32 (with 1205), S3's FFD types.
    _spec(1290, "признаки условий применения ККТ", None, U32),
    # 1291–1294: ofd-cloud-marking.md §4.5 (1291 STLV ≤ 52, 1292 «ДРОБЬ» string ≤ 24 as
    # "{numerator}/{denominator}", 1293/1294 VLN ≤ 8)
    _spec(1291, "дробное количество маркированного товара", None, STLV, 52),
    _spec(1292, "дробная часть", None, STR, 24),
    _spec(1293, "числитель", None, VLN, 8),
    _spec(1294, "знаменатель", None, VLN, 8),
    # 1163's sub-tags, one per item (ofd-cloud-marking.md §4.5, FFD table 5): strings
    _spec(1300, "КТ Н", None, STR, 32),
    _spec(1301, "КТ EAN-8", None, STR, 8),
    _spec(1302, "КТ EAN-13", None, STR, 13),
    _spec(1303, "КТ ITF-14", None, STR, 14),
    _spec(1304, "КТ GS1.0", None, STR, 38),
    _spec(1305, "КТ GS1.М", None, STR, 38),
    _spec(1306, "КТ КМК", None, STR, 38),
    _spec(1307, "КТ МИ", None, STR, 20),
    _spec(1308, "КТ ЕГАИС-2.0", None, STR, 33),
    _spec(1309, "КТ ЕГАИС-3.0", None, STR, 14),
    _spec(1320, "КТ Ф.1", None, STR, 32),
    _spec(1321, "КТ Ф.2", None, STR, 32),
    _spec(1322, "КТ Ф.3", None, STR, 32),
    _spec(1323, "КТ Ф.4", None, STR, 32),
    _spec(1324, "КТ Ф.5", None, STR, 32),
    _spec(1325, "КТ Ф.6", None, STR, 32),
    # marking codes, FFD 1.2: ofd-cloud-marking.md §4.5 (types and lengths: FFD table 5; the
    # values are in `kkt.protocols.ffd.marking`).  2000 keeps the code's GS bytes (CP866 0x1D).
    _spec(2000, "код маркировки", None, STR, 256),
    _spec(2001, "номер запроса", None, U32),
    _spec(2002, "номер уведомления", None, U32),
    _spec(2003, "планируемый статус товара", None, B),
    _spec(2004, "результат проверки КМ", None, B),
    _spec(2005, "результаты обработки запроса", None, B),
    _spec(2006, "результаты обработки уведомления", None, B),
    _spec(2007, "данные о маркированном товаре", None, STLV, 512, repeatable=True),
    _spec(2100, "тип кода маркировки", None, B),
    _spec(2101, "идентификатор товара", None, STR, 38),
    _spec(2102, "режим обработки кода маркировки", None, B),
    _spec(2104, "количество непереданных уведомлений", None, U32),
    _spec(2105, "коды обработки запроса", None, B),
    _spec(2106, "результат проверки сведений о товаре", None, B),
    _spec(2107, "результаты проверки маркированных товаров", None, B, repeatable=True),
    _spec(2108, "мера количества предмета расчета", None, B),
    _spec(2109, "ответ ОИСМ о статусе товара", None, B),
    _spec(2110, "присвоенный статус товара", None, B),
    _spec(2111, "коды обработки уведомления", None, B),
    _spec(2112, "признак некорректных кодов маркировки", None, B),
    _spec(2113, "признак некорректных запросов и уведомлений", None, B),
    _spec(2114, "дата и время запроса", None, TIME),
    _spec(2115, "контрольный код КМ", None, STR, fixed=4),
    _spec(2116, "вид операции", None, B),
]

TAGS: dict[int, TagSpec] = {spec.tag: spec for spec in _SPECS}
if len(TAGS) != len(_SPECS):  # pragma: no cover - a typo in the table above
    raise RuntimeError("duplicate tag in the FFD tag table")
del B, U16, U32, TIME, VLN, FVLN, STR, RAW, STLV


class DocumentType(enum.IntEnum):
    """Fiscal document types (tag 1000 values, §2)."""

    REGISTRATION = 1  # отчет о регистрации
    SHIFT_OPEN = 2  # отчет об открытии смены
    RECEIPT = 3  # кассовый чек
    BSO = 4
    SHIFT_CLOSE = 5  # отчет о закрытии смены
    FISCAL_MODE_CLOSE = 6  # отчет о закрытии ФН
    OPERATOR_CONFIRMATION = 7  # подтверждение оператора
    REREGISTRATION = 11  # отчет об изменении параметров регистрации
    STATE_REPORT = 21  # отчет о текущем состоянии расчетов
    CORRECTION_RECEIPT = 31  # кассовый чек коррекции
    CORRECTION_BSO = 41  # БСО коррекции


DOCUMENT_TAGS: dict[int, int] = {kind: int(kind) for kind in DocumentType}
"""Fiscal document type code → the tag of the document's STLV (they are equal, §1.1)."""


@dataclass(frozen=True, slots=True)
class Payments:
    """How a receipt is paid, kopecks: tags 1031 (cash), 1081 (electronic), 1215 (prepayment),
    1216 (credit) and 1217 (other: counter-provision)."""

    cash: int = 0
    electronic: int = 0
    prepaid: int = 0
    credit: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.cash + self.electronic + self.prepaid + self.credit + self.other


def _tags(*parts: int | range) -> frozenset[int]:
    out: set[int] = set()
    for part in parts:
        out.update(part if isinstance(part, range) else (part,))
    return frozenset(out)


FN_FORMED_TAGS_11: frozenset[int] = _tags(
    1001, 1002, 1012, 1017, 1018, 1020, 1037, 1038, 1040, 1041, 1042, range(1050, 1055), 1056,
    1062, 1077, 1097, 1098, 1109, 1110, 1111, 1116, 1118, 1126, range(1129, 1147), 1157, 1158,
    1183, 1190, 1193, 1194, 1201, range(1205, 1208), 1209, 1213, range(1218, 1222), 1232, 1233,
)  # fmt: skip
"""Tags the FN forms itself in FFD 1.1 (S1 §5.3–5.4); the KKT sending one in 07h gets 0Bh."""

_DROPPED_IN_12 = frozenset({1109, 1110, 1126, 1193, 1207, 1221})  # folded into 1290
FN_FORMED_TAGS_12: frozenset[int] = (FN_FORMED_TAGS_11 - _DROPPED_IN_12) | {2104, 2106, 2116, 1290}
"""Tags the FN forms itself in FFD 1.2: the 1.1 list less the flags folded into 1290, plus
2104, 2106, 2116 and 1290."""


def fn_formed_tags(ffd_version: int) -> frozenset[int]:
    """The tags the FN forms itself for an FFD version given as a tag-1209 code.

    4 (FFD 1.2) gives `FN_FORMED_TAGS_12`; 3 (FFD 1.1) gives `FN_FORMED_TAGS_11`.  2 (FFD 1.05)
    also gives the 1.1 set: the sheet has no 1.05 list -- with an FN in 1.05 mode (commands
    02h/03h) the KKT itself sends most of these tags, so the 1.1 set is an upper bound, not the
    exact 1.05 behaviour.  Any other code raises `CodecError`.
    """
    if ffd_version == 4:
        return FN_FORMED_TAGS_12
    if ffd_version in (2, 3):
        return FN_FORMED_TAGS_11
    raise CodecError(
        f"unknown FFD version code {ffd_version} (tag 1209): use 2 (1.05), 3 (1.1) or 4 (1.2)"
    )
