"""Modes, submodes, flags and codes of Shtrih-M answers, decoded into named values.

Sources: vendor protocol 1.17 (modes, submodes, ECR flags, FN status bits), fact sheet §2.2 and
§2.4; the FF46 tax-rate bitmask and FF45 tax-system bitmask as the official OPOS driver encodes
them (``GetFSTaxBits: 1 shl (index-1)``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Mode(enum.IntEnum):
    """Low nibble of the mode byte (10h/11h)."""

    PRINTING_REPORT = 0
    DATA_DUMP = 1
    SHIFT_OPEN = 2  # shift open, under 24 hours: selling allowed
    SHIFT_EXPIRED = 3  # shift open over 24 hours: only the Z report
    SHIFT_CLOSED = 4
    BLOCKED_WRONG_TAX_PASSWORD = 5
    WAITING_DATE_CONFIRMATION = 6
    DECIMAL_POINT_CHANGE = 7
    DOCUMENT_OPEN = 8
    TECHNOLOGICAL_RESET_ALLOWED = 9
    TEST_RUN = 10
    FULL_FISCAL_REPORT = 11
    SLIP_DOCUMENT_OPEN = 12
    SLIP_PRINTING = 13
    SLIP_READY = 14
    MODE_15 = 15


class DocumentKind(enum.IntEnum):
    """High nibble of the mode byte in mode 8 (document open)."""

    SALE = 0
    BUY = 1
    SALE_RETURN = 2
    BUY_RETURN = 3
    NON_FISCAL = 4


class Submode(enum.IntEnum):
    PAPER_PRESENT = 0
    PASSIVE_NO_PAPER = 1  # paper ran out while idle
    ACTIVE_NO_PAPER = 2  # paper ran out mid-print
    AWAITING_CONTINUE = 3  # after active no-paper: send B0h
    PRINTING_FULL_REPORT = 4
    PRINTING = 5  # print-related commands answer 50h


class EcrFlags(enum.IntFlag):
    """The 2-byte flags of 10h/11h (protocol 1.17 set)."""

    JOURNAL_ROLL = 1 << 0
    RECEIPT_ROLL = 1 << 1
    SLIP_TOP_SENSOR = 1 << 2
    SLIP_BOTTOM_SENSOR = 1 << 3
    DECIMAL_POINT = 1 << 4
    EKLZ_PRESENT = 1 << 5
    JOURNAL_OPTICAL_SENSOR = 1 << 6  # 1 = paper
    RECEIPT_OPTICAL_SENSOR = 1 << 7  # 1 = paper
    JOURNAL_LEVER_DOWN = 1 << 8
    RECEIPT_LEVER_DOWN = 1 << 9
    COVER_OPEN = 1 << 10
    DRAWER_OPEN = 1 << 11
    JOURNAL_COVER_OPEN = 1 << 12


@dataclass(frozen=True, slots=True)
class ModeState:
    """The mode byte split into its nibbles."""

    mode: Mode
    status: int  # high nibble: document kind in mode 8, sub-state in modes 12-14

    @property
    def document(self) -> DocumentKind | None:
        if self.mode is Mode.DOCUMENT_OPEN and self.status in DocumentKind._value2member_map_:
            return DocumentKind(self.status)
        return None

    @property
    def shift_open(self) -> bool:
        return self.mode in (Mode.SHIFT_OPEN, Mode.SHIFT_EXPIRED, Mode.DOCUMENT_OPEN)

    def __str__(self) -> str:
        if self.document is not None:
            return f"document open ({self.document.name.lower().replace('_', ' ')})"
        text = self.mode.name.lower().replace("_", " ")
        return f"{text} [{self.status}]" if self.status else text


def decode_mode(byte: int) -> ModeState:
    return ModeState(Mode(byte & 0x0F), byte >> 4)


def encode_mode(state: ModeState) -> int:
    return (state.status << 4) | int(state.mode)


def decode_submode(byte: int) -> Submode | int:
    """Known submodes as `Submode`; anything else is returned unchanged."""
    return Submode(byte) if byte in Submode._value2member_map_ else byte


class FnDocument(enum.IntEnum):
    """FF01 "current document" codes."""

    NONE = 0x00
    REGISTRATION = 0x01
    SHIFT_OPEN = 0x02
    RECEIPT = 0x04
    SHIFT_CLOSE = 0x08
    FISCAL_MODE_CLOSE = 0x10
    BSO = 0x11
    REREGISTRATION_FN_REPLACED = 0x12
    REREGISTRATION = 0x13
    CORRECTION_RECEIPT = 0x14
    CORRECTION_BSO = 0x15
    STATE_REPORT = 0x17


class OfdStatus(enum.IntFlag):
    """FF39 exchange-status bits."""

    TRANSPORT_CONNECTED = 1 << 0
    MESSAGE_FOR_OFD = 1 << 1
    WAITING_TICKET = 1 << 2
    COMMAND_FROM_OFD = 1 << 3
    SETTINGS_CHANGED = 1 << 4
    WAITING_REPLY = 1 << 5


class TaxSystem(enum.IntFlag):
    """FF45 tax-system bitmask (tag 1055)."""

    OSN = 1 << 0  # общая
    USN_INCOME = 1 << 1  # упрощённая, доход
    USN_INCOME_EXPENSE = 1 << 2  # упрощённая, доход минус расход
    ENVD = 1 << 3
    ESHN = 1 << 4
    PSN = 1 << 5


class TaxRate(enum.IntFlag):
    """FF46 tax-rate bitmask: bit n-1 for the register's tax n (tables 6, rows 1-6)."""

    VAT20 = 1 << 0
    VAT10 = 1 << 1
    VAT0 = 1 << 2
    NO_VAT = 1 << 3
    VAT20_120 = 1 << 4
    VAT10_110 = 1 << 5


class OperationType(enum.IntEnum):
    """FF46 / FF36 operation (tag 1054, "признак расчёта")."""

    INCOME = 1  # приход
    INCOME_RETURN = 2  # возврат прихода
    EXPENSE = 3  # расход
    EXPENSE_RETURN = 4  # возврат расхода


class ReceiptType(enum.IntEnum):
    """8Dh receipt type."""

    SALE = 0
    BUY = 1
    SALE_RETURN = 2
    BUY_RETURN = 3
