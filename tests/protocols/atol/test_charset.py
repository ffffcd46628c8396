"""ATOL's external code page: the four moved characters, atol4j's vector, errors, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kkt.protocols.atol.charset import SWAPS, can_encode, decode_text, encode_text
from kkt.protocols.errors import CodecError


def test_atol4j_vector() -> None:
    # kurbatov/atol4j src/test/java/.../charset/ExternalCharsetTest.java
    raw = bytes.fromhex("80 92 8E 8B 20 39 31 94")
    assert decode_text(raw) == "АТОЛ 91Ф"
    assert encode_text("АТОЛ 91Ф") == raw
    assert encode_text("0123456789") == bytes.fromhex("30 31 32 33 34 35 36 37 38 39")
    assert encode_text("") == b""


def test_device_name_from_the_sheet_dump() -> None:
    # Zzzzipper/projects AtolProtocol.h DeviceInfoResponse comment: "Казначей ФА" in CP866.
    assert encode_text("Казначей ФА") == bytes.fromhex("8A A0 A7 AD A0 E7 A5 A9 20 94 80")


@pytest.mark.parametrize(("char", "byte"), [("№", 0x24), ("$", 0xFC), ("€", 0xF2), ("■", 0xFF)])
def test_the_four_moved_characters(char: str, byte: int) -> None:
    # atol4j ExternalCharsetEncoder: № 0x24, $ 0xFC, € 0xF2, ■ 0xFF (CP866 has $, №, Є, NBSP there)
    assert SWAPS[byte] == char
    assert encode_text(char) == bytes((byte,))
    assert decode_text(bytes((byte,))) == char


def test_cp866_reading_differs_exactly_at_the_swaps() -> None:
    differ = [b for b in range(256) if decode_text(bytes((b,))) != bytes((b,)).decode("cp866")]
    assert differ == sorted(SWAPS)


def test_cp866_characters_replaced_have_no_byte() -> None:
    for char in ("Є", "\u00a0"):
        assert not can_encode(char)
        with pytest.raises(CodecError, match=f"U\\+{ord(char):04X}"):
            encode_text("ab" + char)


def test_error_names_the_character_and_its_position() -> None:
    with pytest.raises(CodecError, match=r"'é'.*position 3"):
        encode_text("caf" + "é")


def test_fe_also_reads_as_black_square() -> None:
    # CP866 draws ■ at 0xFE too; writing it picks atol4j's 0xFF.
    assert decode_text(b"\xfe") == "■"
    assert encode_text(decode_text(b"\xfe")) == b"\xff"


def test_every_byte_decodes() -> None:
    text = decode_text(bytes(range(256)))
    assert len(text) == 256
    assert encode_text(text) == bytes(range(256)).replace(b"\xfe", b"\xff")


_ALPHABET = st.sampled_from(sorted({decode_text(bytes((b,))) for b in range(256)}))


@given(st.text(alphabet=_ALPHABET, max_size=80))
def test_text_round_trip(text: str) -> None:
    assert decode_text(encode_text(text)) == text


@given(st.binary(max_size=80).filter(lambda raw: b"\xfe" not in raw))
def test_bytes_round_trip(raw: bytes) -> None:
    assert encode_text(decode_text(raw)) == raw
