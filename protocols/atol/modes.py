"""ATOL modes, status flags and the codes of receipts and payments.

Sources (fact sheet §2.2-§2.4): the mode byte of 3Fh/45h carries the mode in its low nibble and
the sub-mode in its high nibble (kurbatov/atol4j ``DeviceStateRequest``, Zzzzipper/projects
``AtolProtocol.h`` ``StatusResponse::getDeviceSubMode``); the flag bits of 3Fh byte 9 and the
receipt types of 92h agree in atol4j, MultiMag ``atol.php`` and Zzzzipper; payment types of
99h/4Ah are atol4j ``RemittanceCommand``'s.
"""

from __future__ import annotations

import enum
from typing import Final

from ..errors import CodecError


class Mode(enum.IntEnum):
    """Low nibble of the mode byte: the mode entered with 56h and left with 48h."""

    SELECT = 0  # idle: info queries, 56h
    REGISTRATION = 1  # receipts, shift opening, cash in/out
    X_REPORTS = 2  # reports without closing the shift (67h)
    Z_REPORTS = 3  # closing the shift (5Ah)
    PROGRAMMING = 4  # tables
    FN_ACCESS = 5  # fiscal storage access (tax inspector)
    EKLZ_ACCESS = 6  # EKLZ / FN access
    EXTRA = 7  # "additional" (Zzzzipper Mode_Addition)


def split_mode(byte: int) -> tuple[int, int]:
    """``(mode, submode)`` of a mode byte: low nibble, high nibble."""
    if not 0 <= byte <= 0xFF:
        raise CodecError(f"a mode byte is 0..255, got {byte}")
    return byte & 0x0F, byte >> 4


def join_mode(mode: int, submode: int) -> int:
    """The mode byte for ``mode`` (low nibble) and ``submode`` (high nibble)."""
    if not (0 <= mode <= 0x0F and 0 <= submode <= 0x0F):
        raise CodecError(f"mode and submode are 0..15 each, got {mode} and {submode}")
    return submode << 4 | mode


class StatusFlags(enum.IntFlag):
    """Byte 9 of the 3Fh reply (bit 4 is not defined by any source)."""

    NONE = 0
    FISCAL = 0x01  # the register is registered (fiscalized)
    SHIFT_OPEN = 0x02
    DRAWER_OPEN = 0x04
    PAPER = 0x08  # paper is present (set = OK)
    COVER_OPEN = 0x20
    FN_ACTIVE = 0x40  # the fiscal storage is activated
    # Polarity disputed (fact sheet §7.5): MultiMag and Zzzzipper read set = battery present/OK,
    # atol4j reads set = battery low.  The bit is kept raw; only its name is chosen here.
    BATTERY = 0x80


class StateFlags(enum.IntFlag):
    """The printer byte of the 45h reply (bit names vary between sources; atol4j's are kept)."""

    NONE = 0
    NO_PAPER = 0x01
    NO_PRINTER_LINK = 0x02
    MECHANICAL_ERROR = 0x04
    CUTTER_ERROR = 0x08
    PRINTER_ERROR = 0x10  # overheat / printer failure


class ReceiptType(enum.IntEnum):
    """Receipt type of 92h (and the receipt state of 3Fh byte 22, where 0 means closed).

    8 and 10 follow libfptr's numbering (8 sell-return correction, 10 buy-return correction);
    atol4j names 10 "income refund correction" (fact sheet §3.2, §7.3) -- unverified on hardware.
    """

    SELL = 1
    SELL_RETURN = 2
    BUY = 4
    BUY_RETURN = 5
    SELL_CORRECTION = 7
    SELL_RETURN_CORRECTION = 8
    BUY_CORRECTION = 9
    BUY_RETURN_CORRECTION = 10


class PaymentType(enum.IntEnum):
    """Payment type of 99h and 4Ah (atol4j ``RemittanceCommand``; 1-based, unlike libfptr)."""

    CASH = 1
    ELECTRONIC = 2
    PREPAID = 3
    CREDIT = 4
    OTHER = 5


class Interface(enum.IntEnum):
    """The link the host uses, byte 29 of the 3Fh reply (atol4j ``getPortType``)."""

    RS232 = 1
    USB = 4
    BLUETOOTH = 5  # "Bluetooth / Wi-Fi" in Zzzzipper
    ETHERNET = 6
    WIFI = 7


# 92h flags.  Bit 0 is the test-mode bit in every source.  The "don't print" bit is disputed
# (fact sheet §7.3): 0x04 in Zzzzipper (CheckOpenFlag_NotPrint) and MultiMag (cmdOpenCheck), 0x02
# in atol4j (OpenBillCommand).  The majority reading is NO_PRINT; NO_PRINT_ATOL4J is the other.
TEST_MODE: Final = 0x01
NO_PRINT: Final = 0x04
NO_PRINT_ATOL4J: Final = 0x02
