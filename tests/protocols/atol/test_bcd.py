"""ATOL packed BCD: atol4j's values, edges (0, max, overflow, negative), bad nibbles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kkt.protocols.errors import CodecError
from kkt.protocols.fields import bcd_max, decode_bcd, encode_bcd

# kurbatov/atol4j src/test/java/.../command/BinaryDecimalTest.java: these values round-trip
# through Command.encode(n, 5) / Result.decode.
ATOL4J_VALUES = [0, 1, 2, 10, 100, 123, 4294967295]


@pytest.mark.parametrize("value", ATOL4J_VALUES)
def test_atol4j_values_round_trip_in_five_bytes(value: int) -> None:
    raw = encode_bcd(value, 5)
    assert len(raw) == 5
    assert decode_bcd(raw) == value


def test_most_significant_byte_first() -> None:
    # Fact sheet §2.1: big-endian (atol4j Command.encode, MultiMag intToBCD, Zzzzipper LEUbcd*).
    assert encode_bcd(1234, 2) == bytes.fromhex("12 34")
    assert encode_bcd(30, 4) == bytes.fromhex("00 00 00 30")  # mode password 30, right-aligned
    assert encode_bcd(4294967295, 5) == bytes.fromhex("42 94 96 72 95")
    assert decode_bcd(bytes.fromhex("00 01 23 45 67")) == 1234567


def test_zero_and_max() -> None:
    assert encode_bcd(0, 1) == b"\x00"
    assert encode_bcd(99, 1) == b"\x99"
    assert encode_bcd(bcd_max(7), 7) == b"\x99" * 7
    assert decode_bcd(b"\x99" * 7) == 99_999_999_999_999


@pytest.mark.parametrize(("value", "size"), [(100, 1), (10000, 2), (10**10, 5), (10**14, 7)])
def test_overflow_is_a_codec_error(value: int, size: int) -> None:
    with pytest.raises(CodecError, match="does not fit"):
        encode_bcd(value, size)


def test_negative_and_non_int_are_codec_errors() -> None:
    with pytest.raises(CodecError, match="negative"):
        encode_bcd(-1, 2)
    with pytest.raises(CodecError):
        encode_bcd(True, 1)
    with pytest.raises(CodecError):
        encode_bcd(1.5, 1)  # type: ignore[arg-type]
    with pytest.raises(CodecError):
        encode_bcd(1, 0)


@pytest.mark.parametrize("raw", ["0A", "A0", "FF", "12 3F", "00 00 1B"])
def test_nibble_above_nine_is_a_codec_error(raw: str) -> None:
    with pytest.raises(CodecError, match="not packed BCD"):
        decode_bcd(bytes.fromhex(raw))


@given(
    st.integers(min_value=1, max_value=8).flatmap(
        lambda size: st.tuples(st.just(size), st.integers(0, bcd_max(size)))
    )
)
def test_round_trip(case: tuple[int, int]) -> None:
    size, value = case
    raw = encode_bcd(value, size)
    assert len(raw) == size
    assert decode_bcd(raw) == value


@given(st.binary(min_size=1, max_size=8))
def test_decode_then_encode_gives_the_bytes_back(raw: bytes) -> None:
    try:
        value = decode_bcd(raw)
    except CodecError:
        return
    assert encode_bcd(value, len(raw)) == raw
