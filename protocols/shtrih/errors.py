"""Shtrih-M error codes: the second byte of an answer.

Source: vendor protocol 1.17 error table, completed from the official JavaPOS driver's
``messages_ru.txt`` and pyshtrih ``excepts.py`` for codes 1.17 omits (fact sheet §3).  On FN models
codes 01h–3Fh come from the fiscal storage (ФН) and pass through the register unchanged; on pre-2017
models the same codes meant fiscal-memory errors -- this table gives the FN reading.

``retry_may_help`` is True only where the same command can succeed later without a person doing
anything (a print in progress, an FN or OFD link that comes back).  ``hint`` says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DeviceError


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    code: int
    ru: str
    en: str
    hint: str = ""
    retry_may_help: bool = False


def _e(code: int, ru: str, en: str, hint: str = "", retry: bool = False) -> ErrorInfo:
    return ErrorInfo(code, ru, en, hint, retry)


_FN_CHECK = "check the fiscal storage state (FF01) and the command's parameters"
_SHIFT_Z = "close the shift (Z report) before continuing"
_MARK_SEQUENCE = (
    "answer the pending check with FF69 (accept or reject) or clear it (FF69 decision 2) "
    "before the next FF61/FF67; FF70 shows which commands the FN allows now"
)
_MARK_TAGS = "a partial sale needs 2108 and 1023 (and 1291) with the code; see FN error 3Ch"
_MARK_UNCHECKED = "check the code with FF61 and accept it with FF69 before binding it (FF67)"
_MARK_REFUSED = "do not sell the item: take it off the sale"

ERRORS: dict[int, ErrorInfo] = {
    e.code: e
    for e in (
        _e(
            0x01,
            "ФН: неизвестная команда, неверный формат или неизвестные параметры",
            "FN: unknown command, bad format or unknown parameters",
            _FN_CHECK,
        ),
        _e(
            0x02,
            "ФН: другое состояние ФН",
            "FN: wrong FN state for this command",
            "the FN is in another phase or has a document open; " + _FN_CHECK,
        ),
        _e(0x03, "Отказ ФН", "FN failure", "the fiscal storage failed; call service"),
        _e(
            0x04,
            "Отказ КС",
            "FN crypto-coprocessor failure",
            "the fiscal storage failed; call service",
        ),
        _e(
            0x05,
            "ФН: параметры команды не соответствуют сроку жизни ФН",
            "FN: parameters do not match the FN's life phase",
            _FN_CHECK,
        ),
        _e(0x06, "ФН: архив переполнен", "FN archive full", "replace the fiscal storage"),
        _e(
            0x07,
            "ФН: неверная дата и/или время",
            "FN: wrong date or time (before the last document)",
            "set the register's clock correctly (it may not go back past the last document)",
        ),
        _e(
            0x08,
            "ФН: нет запрошенных данных",
            "FN: no requested data",
            "the document or data asked for does not exist",
        ),
        _e(
            0x09,
            "ФН: некорректное значение параметров команды",
            "FN: bad parameter value",
            "check INN, RNM and the other values sent",
        ),
        _e(
            0x10,
            "ФН: превышение размеров TLV данных",
            "FN: TLV data too large",
            "send fewer or shorter tags",
        ),
        _e(
            0x11,
            "ФН: нет транспортного соединения",
            "FN: no transport connection (OFD)",
            "check the network link to the OFD",
            True,
        ),
        _e(
            0x12,
            "ФН: исчерпан ресурс КС",
            "FN resource exhausted",
            "close the fiscal mode and replace the fiscal storage",
        ),
        _e(
            0x14,
            "ФН: исчерпан ресурс хранения",
            "FN storage resource exhausted",
            "send the queued documents to the OFD, then replace the fiscal storage",
        ),
        _e(
            0x15,
            "ФН: превышено время ожидания передачи сообщения (30 дней)",
            "FN: OFD message waiting more than 30 days",
            "restore the link to the OFD and send the queue",
        ),
        _e(
            0x16,
            "ФН: продолжительность смены более 24 часов",
            "FN: shift longer than 24 hours",
            _SHIFT_Z,
        ),
        _e(
            0x17,
            "ФН: неверная разница во времени между двумя операциями",
            "FN: time gap between documents differs from the FN's own timer by more than 5 minutes",
            "set the register's clock",
        ),
        _e(
            0x19,
            "ФН: реквизит не соответствует установленным при регистрации",
            "FN: an attribute does not match the registration (tax system, excise goods)",
            "use a tax system the register is registered for "
            "(tag 1062 of its registration: `kkt doc 1`)",
        ),
        _e(
            0x20,
            "ФН: сообщение от ОФД не может быть принято",
            "FN: the OFD message cannot be accepted",
            "check the OFD settings",
            True,
        ),
        _e(
            0x2F,
            "Таймаут обмена с ФН",
            "FN exchange timeout",
            "retry; if it persists call service",
            True,
        ),
        _e(
            0x30, "ФН не отвечает", "FN does not answer", "retry; if it persists call service", True
        ),
        _e(
            0x33,
            "Некорректные параметры в команде",
            "incorrect parameters in the command",
            "check lengths and values of the command's fields",
        ),
        _e(0x34, "Нет данных", "no data"),
        _e(
            0x35,
            "Некорректный параметр при данных настройках",
            "parameter incorrect for the current settings",
            "check the register's tables",
        ),
        _e(
            0x36,
            "Некорректные параметры в команде для данной реализации ККТ",
            "parameters incorrect for this model",
        ),
        _e(
            0x37,
            "Команда не поддерживается в данной реализации ККТ",
            "command not supported by this model or firmware",
            "use the model's supported command",
        ),
        _e(0x38, "Ошибка в ПЗУ", "ROM error", "call service"),
        _e(
            0x39,
            "Внутренняя ошибка ПО ККТ",
            "internal firmware error",
            "restart the register; call service",
        ),
        _e(
            0x3C,
            "Смена открыта – операция невозможна",
            "shift open: operation impossible",
            "close the shift first",
        ),
        _e(
            0x3D,
            "Смена не открыта – операция невозможна",
            "shift not open: operation impossible",
            "open a shift first",
        ),
        _e(
            0x45,
            "Сумма всех типов оплаты меньше итога чека",
            "sum of payments less than the receipt total",
            "pay the whole total",
        ),
        _e(0x46, "Не хватает наличности в кассе", "not enough cash in the drawer"),
        _e(0x48, "Переполнение итога чека", "receipt total overflow"),
        _e(
            0x49,
            "Операция невозможна в открытом чеке данного типа",
            "operation impossible in an open receipt of this type",
        ),
        _e(
            0x4A,
            "Открыт чек – операция невозможна",
            "receipt open: operation impossible",
            "close or cancel the open receipt",
        ),
        _e(0x4B, "Буфер чека переполнен", "receipt buffer full", "close the receipt"),
        _e(0x4E, "Смена превысила 24 часа", "shift exceeded 24 hours", _SHIFT_Z),
        _e(
            0x4F,
            "Неверный пароль",
            "wrong password",
            "check the operator or administrator password",
        ),
        _e(
            0x50,
            "Идет печать результатов выполнения предыдущей команды",
            "printing the previous command's result",
            "wait and repeat",
            True,
        ),
        _e(
            0x55,
            "Чек закрыт – операция невозможна",
            "receipt closed: operation impossible",
            "open a receipt first",
        ),
        _e(0x56, "Нет документа для повтора", "no document to repeat"),
        _e(
            0x58,
            "Ожидание команды продолжения печати",
            "waiting for the continue-print command",
            "load paper and send B0h (continue printing)",
        ),
        _e(0x59, "Документ открыт другим оператором", "document opened by another operator"),
        _e(0x5E, "Некорректная операция", "wrong operation"),
        _e(0x5F, "Отрицательный итог чека", "negative receipt total"),
        _e(0x60, "Переполнение при умножении", "overflow in multiplication"),
        _e(0x61, "Переполнение диапазона цены", "price out of range"),
        _e(0x62, "Переполнение диапазона количества", "quantity out of range"),
        _e(0x63, "Переполнение диапазона отдела", "department out of range"),
        _e(0x6B, "Нет чековой ленты", "no receipt paper", "load paper"),
        _e(0x6C, "Нет контрольной ленты", "no journal paper", "load paper"),
        _e(0x71, "Ошибка отрезчика", "cutter error", "check the cutter"),
        _e(
            0x72,
            "Команда не поддерживается в данном подрежиме",
            "command not supported in this submode",
            "check the submode (paper? printing?) with 10h",
        ),
        _e(
            0x73,
            "Команда не поддерживается в данном режиме",
            "command not supported in this mode",
            "check the mode with 10h: shift state, open document",
        ),
        _e(0x74, "Ошибка ОЗУ", "RAM error", "call service"),
        _e(0x75, "Ошибка питания", "power failure"),
        _e(0x77, "Принтер: нет сигнала с датчиков", "printer: no sensor signal"),
        _e(0x78, "Замена ПО", "firmware replaced"),
        _e(0x79, "Ошибка часов", "clock error", "set the date and time"),
        _e(0x7A, "Поле не редактируется", "field not editable"),
        _e(0x7B, "Ошибка оборудования", "hardware error", "call service"),
        _e(0x7C, "Не совпадает дата", "date mismatch", "confirm the date (23h)"),
        _e(0x7D, "Неверный формат даты", "bad date format"),
        _e(0x7E, "Неверное значение в поле длины", "bad value in a length field"),
        _e(0x8E, "Нулевой итог чека", "zero receipt total"),
        _e(0x8F, "ККТ не фискализирована", "register not fiscalised"),
        _e(
            0x90,
            "Поле превышает размер, установленный в настройках",
            "field larger than configured",
        ),
        _e(0x91, "Выход за границу поля печати", "outside the print area"),
        _e(0x92, "Наложение полей", "fields overlap"),
        _e(
            0x93,
            "Восстановление ОЗУ прошло успешно",
            "RAM restored after power loss",
            "check the register's state: the interrupted document was not completed",
        ),
        _e(
            0x94,
            "Исчерпан лимит операций в чеке",
            "operations-per-receipt limit reached",
            "close the receipt",
        ),
        # Marking (FFD 1.2): the FN's refusals 32h-35h, 3Ch, 3Eh as the register reports them.
        # A0h-A5h: 1.17 table (fact sheet shtrih-protocol.md §3; the same numbers in a C++ Shtrih
        # driver's enum, index id 20060923212).  JavaPOS ``messages_ru.txt`` numbers the last two
        # AAh and ACh instead -- the FN's code + 6Eh, as A0h-A3h are -- so both are listed.
        _e(
            0xA0,
            "ФН: запрещена работа с маркированными товарами",
            "FN: marking-code operations are not permitted",
            "the FN is not a marking FN (ФН-М) or the registration lacks FFD 1.2 marking",
        ),
        _e(
            0xA1,
            "ФН: неверная последовательность команд группы Bxh",
            "FN: marking commands out of sequence",
            _MARK_SEQUENCE,
        ),
        _e(
            0xA2,
            "ФН: работа с маркированными товарами временно заблокирована",
            "FN: marking temporarily blocked",
            "the FN's notification store is full: let the register send the notifications to "
            "the OFD (or export them with FF71-FF73 when autonomous)",
            True,
        ),
        _e(
            0xA3,
            "ФН: переполнена таблица проверки кодов маркировки",
            "FN: the table of checked marking codes is full (128)",
            "close the receipt, or clear the check results with FF69 (decision 2)",
        ),
        _e(
            0xA4,
            "ФН: в блоке TLV отсутствуют необходимые реквизиты",
            "FN: the TLV block lacks required tags",
            _MARK_TAGS,
        ),
        _e(
            0xA5,
            "ФН: в реквизите 2007 содержится КМ, который ранее не проверялся в ФН",
            "FN: the marking code was not checked in the FN before",
            _MARK_UNCHECKED,
        ),
        _e(
            0xAA,
            "ФН: в блоке TLV отсутствуют необходимые реквизиты",
            "FN: the TLV block lacks required tags (JavaPOS numbering)",
            _MARK_TAGS,
        ),
        _e(
            0xAC,
            "ФН: в реквизите 2007 содержится КМ, который ранее не проверялся в ФН",
            "FN: the marking code was not checked in the FN before (JavaPOS numbering)",
            _MARK_UNCHECKED,
        ),
        _e(
            0xC0,
            "Контроль даты и времени (подтвердите дату и время)",
            "date/time check: confirm the date and time",
            "confirm with 23h",
        ),
        _e(0xC4, "Несовпадение номеров смен", "shift number mismatch"),
        _e(0xC7, "Поле не редактируется в данном режиме", "field not editable in this mode"),
        _e(0xC8, "Нет связи с принтером", "printer link lost", "check the printer"),
        # ОИСМ's verdicts as JavaPOS ``messages_ru.txt`` names them (PrinterErrorD3-D5).
        _e(
            0xD3,
            "Товар не произведен или выбыл",
            "marked goods not produced or already withdrawn from circulation",
            _MARK_REFUSED,
        ),
        _e(0xD4, "Код маркировки фальсифицирован", "marking code is forged", _MARK_REFUSED),
        _e(0xD5, "Ошибка аутентификации", "authentication error"),
    )
}


class ShtrihDeviceError(DeviceError):
    """A Shtrih register refused a command; ``info`` holds the code's texts."""

    def __init__(self, info: ErrorInfo, command: int) -> None:
        name = f"{command:#04x}" if command <= 0xFF else f"{command:#06x}"
        message = f"command {name} refused with {info.code:02X}h: {info.en} ({info.ru})"
        if info.hint:
            message += f" -- {info.hint}"
        super().__init__(
            message, code=info.code, command=command, retry_may_help=info.retry_may_help
        )
        self.info = info


def error_info(code: int) -> ErrorInfo:
    """The table entry for ``code``; codes the table lacks get a generic entry."""
    known = ERRORS.get(code)
    if known is not None:
        return known
    return ErrorInfo(code, f"Ошибка {code:02X}h", f"error {code:02X}h (not in the 1.17 table)")


def device_error(code: int, command: int) -> ShtrihDeviceError:
    return ShtrihDeviceError(error_info(code), command)
