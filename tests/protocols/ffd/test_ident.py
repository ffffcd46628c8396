"""INN check digits and RNM (tag 1037) check digits (fact sheet fn-ffd-ofd.md §4.8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kkt.protocols.errors import CodecError
from kkt.protocols.ffd import inn_is_valid, make_rnm, rnm_check_digits, rnm_is_valid

VALID_INNS = ["7707083893", "7728168971", "500100732259"]  # Сбербанк, another firm, a person


@pytest.mark.parametrize("inn", VALID_INNS)
def test_valid_inns(inn: str) -> None:
    assert inn_is_valid(inn)
    assert inn_is_valid(inn.ljust(12))  # as tag 1018 carries it, space-padded to 12


@pytest.mark.parametrize("inn", VALID_INNS)
def test_every_changed_digit_fails(inn: str) -> None:
    for at in range(len(inn)):
        changed = inn[:at] + str((int(inn[at]) + 1) % 10) + inn[at + 1 :]
        assert not inn_is_valid(changed), changed


@pytest.mark.parametrize(
    "inn",
    [
        "7707083894",  # last check digit wrong
        "500100732258",  # 12th digit wrong
        "500100732269",  # 11th digit wrong
        "770708389",  # too short
        "77070838930",  # 11 digits
        "77070838 3",
        "7707O83893",  # letter O
        "٧٧٠٧٠٨٣٨٩٣",  # Arabic-Indic digits are digits to str.isdigit, not to an INN
        "0000000000",  # the "no INN" marker
        "000000000000",
        "",
    ],
)
def test_invalid_inns(inn: str) -> None:
    assert not inn_is_valid(inn)


# A real re-registration report sent to an OFD (yandex/ofd tests/example_test.py, fact sheet §5.2):
# 1037 = "0000000005008570    ", 1018 = "7702203276  ", 1013 (KKT serial) = "000000000002".
def test_real_rnm_checks() -> None:
    assert rnm_check_digits("0000000005", "7702203276", "000000000002") == "008570"
    assert make_rnm("5", "7702203276", "2") == "0000000005008570"
    assert rnm_is_valid("0000000005008570", "7702203276", "000000000002")
    assert rnm_is_valid("0000000005008570    ", "7702203276  ", "000000000002")  # TLV padding
    assert inn_is_valid("7702203276")


def _crc16_ccitt_false(data: bytes) -> int:
    """Bit-by-bit CRC16-CCITT (poly 0x1021, init 0xFFFF), independent of crcmod."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def test_crc_parameters() -> None:
    assert _crc16_ccitt_false(b"123456789") == 0x29B1  # the catalogue check value
    source = b"0000000001" + b"007707083893" + b"00000000000000012345"
    expected = f"{_crc16_ccitt_false(source):06d}"
    assert rnm_check_digits("1", "7707083893", "12345") == expected


@given(
    st.from_regex(r"[0-9]{1,10}", fullmatch=True),
    st.sampled_from(VALID_INNS),
    st.from_regex(r"[0-9]{1,20}", fullmatch=True),
)
def test_make_rnm_round_trip(ordinal: str, inn: str, serial: str) -> None:
    rnm = make_rnm(ordinal, inn, serial)
    assert len(rnm) == 16
    assert rnm.isdigit()
    assert rnm[:10] == ordinal.rjust(10, "0")
    assert rnm_is_valid(rnm, inn, serial)
    assert rnm_is_valid(rnm.ljust(20), inn, serial)


def test_changed_rnm_digit_fails() -> None:
    rnm = make_rnm("1234567890", "7707083893", "00106304151234")
    for at in range(16):
        changed = rnm[:at] + str((int(rnm[at]) + 1) % 10) + rnm[at + 1 :]
        assert not rnm_is_valid(changed, "7707083893", "00106304151234"), changed
    assert not rnm_is_valid(rnm, "7728168971", "00106304151234")  # another owner
    assert not rnm_is_valid(rnm, "7707083893", "00106304151235")  # another register
    assert not rnm_is_valid("12345", "7707083893", "00106304151234")
    assert not rnm_is_valid("12345678901234567", "7707083893", "00106304151234")
    assert not rnm_is_valid(rnm, "77070838931234", "00106304151234")  # INN too long


@pytest.mark.parametrize(
    ("ordinal", "inn", "serial"),
    [
        ("", "7707083893", "1"),
        ("12345678901", "7707083893", "1"),
        ("12a", "7707083893", "1"),
        ("1", "7707083893x", "1"),
        ("1", "1234567890123", "1"),
        ("1", "7707083893", "1" * 21),
        ("1", "7707083893", "№1"),
    ],
)
def test_rnm_refuses_bad_parts(ordinal: str, inn: str, serial: str) -> None:
    with pytest.raises(CodecError):
        rnm_check_digits(ordinal, inn, serial)
