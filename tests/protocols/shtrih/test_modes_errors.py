"""The error table and the mode/submode/flag decoders."""

from __future__ import annotations

import pytest
from kkt.protocols.errors import DeviceError
from kkt.protocols.ffd import FnWarning, LifePhase
from kkt.protocols.shtrih.errors import ERRORS, device_error, error_info
from kkt.protocols.shtrih.modes import (
    DocumentKind,
    EcrFlags,
    Mode,
    ModeState,
    Submode,
    TaxRate,
    TaxSystem,
    decode_mode,
    decode_submode,
    encode_mode,
)


def test_error_table_entries_are_complete() -> None:
    assert len(ERRORS) > 60
    for code, info in ERRORS.items():
        assert info.code == code and 0 < code <= 0xFF
        assert info.ru and info.en, f"{code:02X}h lacks a text"


@pytest.mark.parametrize(
    ("code", "words", "retry"),
    [
        (0x4F, "wrong password", False),
        (0x50, "printing", True),
        (0x16, "24 hours", False),
        (0x3D, "shift not open", False),
        (0x6B, "no receipt paper", False),
        (0x11, "transport", True),
        (0x58, "continue-print", False),
    ],
)
def test_known_codes(code: int, words: str, retry: bool) -> None:
    info = error_info(code)
    assert words in info.en
    assert info.retry_may_help is retry


def test_unknown_code_still_gets_a_message() -> None:
    info = error_info(0xEE)
    assert "EEh" in info.en and "EEh" in info.ru
    error = device_error(0xEE, 0xFF46)
    assert isinstance(error, DeviceError)
    assert "0xff46" in str(error) and error.code == 0xEE


def test_device_error_message_says_what_to_do() -> None:
    message = str(device_error(0x4E, 0x80))
    assert "Z report" in message and "Смена превысила 24 часа" in message


@pytest.mark.parametrize(
    ("byte", "mode", "document", "shift_open"),
    [
        (0x02, Mode.SHIFT_OPEN, None, True),
        (0x03, Mode.SHIFT_EXPIRED, None, True),
        (0x04, Mode.SHIFT_CLOSED, None, False),
        (0x08, Mode.DOCUMENT_OPEN, DocumentKind.SALE, True),
        (0x18, Mode.DOCUMENT_OPEN, DocumentKind.BUY, True),
        (0x28, Mode.DOCUMENT_OPEN, DocumentKind.SALE_RETURN, True),
        (0x38, Mode.DOCUMENT_OPEN, DocumentKind.BUY_RETURN, True),
        (0x48, Mode.DOCUMENT_OPEN, DocumentKind.NON_FISCAL, True),
        (0x1C, Mode.SLIP_DOCUMENT_OPEN, None, False),
    ],
)
def test_mode_byte(byte: int, mode: Mode, document: DocumentKind | None, shift_open: bool) -> None:
    state = decode_mode(byte)
    assert state.mode is mode
    assert state.document is document
    assert state.shift_open is shift_open
    assert encode_mode(state) == byte


def test_mode_text() -> None:
    assert str(decode_mode(0x28)) == "document open (sale return)"
    assert str(decode_mode(0x04)) == "shift closed"
    assert str(ModeState(Mode.SLIP_DOCUMENT_OPEN, 1)) == "slip document open [1]"


def test_submodes() -> None:
    assert decode_submode(3) is Submode.AWAITING_CONTINUE
    assert decode_submode(5) is Submode.PRINTING
    assert decode_submode(9) == 9


def test_flag_bits_match_the_spec() -> None:
    # 1.17: bit 1 receipt roll, bit 7 receipt optical sensor, bit 10 cover, bit 11 drawer
    flags = EcrFlags(0b0000_1100_1000_0010)
    assert EcrFlags.RECEIPT_ROLL in flags and EcrFlags.RECEIPT_OPTICAL_SENSOR in flags
    assert EcrFlags.COVER_OPEN in flags and EcrFlags.DRAWER_OPEN in flags
    assert EcrFlags.JOURNAL_ROLL not in flags
    # FF01: phase 03h = fiscal mode; warnings bit 1 = 30 days left
    assert LifePhase(0x03) is LifePhase.FISCAL
    assert FnWarning(0x02) is FnWarning.RESOURCE_ENDS_IN_30_DAYS
    # FF46 tax bitmask: bit n-1 for tax n (OPOS GetFSTaxBits); FF45 tax systems
    assert [int(t) for t in TaxRate] == [1, 2, 4, 8, 16, 32]
    assert int(TaxSystem.USN_INCOME | TaxSystem.PSN) == 0x22
