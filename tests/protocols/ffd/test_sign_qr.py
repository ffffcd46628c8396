"""Fiscal sign (tag 1077) layout and the receipt QR string (tag 1196)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kkt.protocols.errors import CodecError
from kkt.protocols.ffd import (
    QrData,
    QrError,
    TlvError,
    decode_tlv,
    encode_tlv_item,
    fiscal_sign_from_tlv,
    fiscal_sign_tlv,
    parse_qr,
    qr_string,
)

# --- 1077 -----------------------------------------------------------------------------------------


def test_fiscal_sign_layout() -> None:
    # fact sheet fn-ffd-ofd.md §3: 2 service bytes, then the printed value as a big-endian uint32
    assert fiscal_sign_tlv(775000138) == bytes.fromhex("0000 2E31 904A")
    assert fiscal_sign_tlv(0x01020304, b"\x21\x04") == bytes.fromhex("2104 01020304")
    assert fiscal_sign_from_tlv(bytes.fromhex("3104 2E31904A")) == 775000138
    # the yandex/ofd sample (tests/example_test.py): 21 04 AA 10 75 41 -> 2853205313
    assert fiscal_sign_from_tlv(bytes.fromhex("2104AA107541")) == 2853205313


def test_fiscal_sign_travels_as_tag_1077() -> None:
    value = fiscal_sign_tlv(4294967295, b"\x31\x04")
    assert decode_tlv(encode_tlv_item(1077, value)) == [(1077, value)]


@given(st.integers(0, 2**32 - 1), st.binary(min_size=2, max_size=2))
def test_fiscal_sign_round_trip(sign: int, service: bytes) -> None:
    value = fiscal_sign_tlv(sign, service)
    assert len(value) == 6
    assert value[:2] == service
    assert fiscal_sign_from_tlv(value) == sign


@pytest.mark.parametrize(
    ("sign", "service"), [(-1, b"\0\0"), (2**32, b"\0\0"), (1, b"\0"), (1, b"\0\0\0")]
)
def test_fiscal_sign_refuses(sign: int, service: bytes) -> None:
    with pytest.raises(TlvError, match="1077"):
        fiscal_sign_tlv(sign, service)


@pytest.mark.parametrize("value", [b"", b"\0" * 5, b"\0" * 7])
def test_fiscal_sign_from_tlv_refuses(value: bytes) -> None:
    with pytest.raises(TlvError, match="6 bytes"):
        fiscal_sign_from_tlv(value)


# --- QR -------------------------------------------------------------------------------------------

# The real example of fact sheet §5.4 (ohbobbyboy/bobby_boy issue #2).
GOLDEN = "t=20170806T215500&s=500.00&fn=9720000100000101&i=10001&fp=775000138&n=1"
GOLDEN_DATA = QrData(
    dt.datetime(2017, 8, 6, 21, 55), 50000, "9720000100000101", 10001, 775000138, 1
)


def test_qr_golden_parses() -> None:
    assert parse_qr(GOLDEN) == GOLDEN_DATA


def test_qr_golden_formats_byte_for_byte() -> None:
    # qr_string always writes seconds, so the real example round-trips exactly
    assert qr_string(GOLDEN_DATA) == GOLDEN
    assert qr_string(parse_qr(GOLDEN)) == GOLDEN


def test_qr_variants() -> None:
    assert parse_qr("t=20170806T2155&s=500.00&fn=9720000100000101&i=10001&fp=775000138&n=1") == (
        GOLDEN_DATA
    )
    assert parse_qr("t=20170806T215500&s=500.00&fn=9720000100000101&i=10001&fp=775000138") == (
        GOLDEN_DATA
    )  # n missing -> 1
    assert parse_qr("n=1&fp=775000138&i=10001&fn=9720000100000101&s=500&t=20170806T215500") == (
        GOLDEN_DATA
    )  # any order, whole rubles
    shifted = parse_qr("t=20240229T000007&s=0.5&fn=1&i=0&fp=0&n=4\n")
    assert shifted == QrData(dt.datetime(2024, 2, 29, 0, 0, 7), 50, "1", 0, 0, 4)
    assert qr_string(shifted) == "t=20240229T000007&s=0.50&fn=1&i=0&fp=0&n=4"
    assert qr_string(QrData(dt.datetime(2020, 1, 2, 3, 4, 5), 1, "1", 2, 3, 2)).startswith(
        "t=20200102T030405&s=0.01&"
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", ["key=value"]),
        ("t=20170806T215500&s=500.00&fn=9720000100000101&i=10001", ["lacks fp"]),
        ("s=500.00&fn=1&i=1&fp=1", ["lacks t"]),
        ("t=20170806T2155&t=20170806T2155&s=1&fn=1&i=1&fp=1", ["twice"]),
        ("t=20170806 2155&s=1&fn=1&i=1&fp=1", ["t="]),
        ("t=20171306T2155&s=1&fn=1&i=1&fp=1", ["valid date"]),
        ("t=20170806T21&s=1&fn=1&i=1&fp=1", ["YYYYMMDDTHHMM"]),
        ("t=20170806T2155&s=1,00&fn=1&i=1&fp=1", ["sum"]),
        ("t=20170806T2155&s=1.001&fn=1&i=1&fp=1", ["sum"]),
        ("t=20170806T2155&s=-1&fn=1&i=1&fp=1", ["sum"]),
        ("t=20170806T2155&s=1&fn=97x0&i=1&fp=1", ["fn"]),
        ("t=20170806T2155&s=1&fn=1&i=1a&fp=1", ["i="]),
        ("t=20170806T2155&s=1&fn=1&i=1&fp=4294967296", ["fp", "out of range"]),
        ("t=20170806T2155&s=1&fn=1&i=1&fp=1&n=5", ["operation", "out of range"]),
        ("t=20170806T2155&s=1&fn=1&i=1&fp=1&n=0", ["operation"]),
        ("t=20170806T2155&s=1&fn=1&i=1&fp=1&junk", ["key=value"]),
    ],
)
def test_qr_parse_refuses(text: str, words: list[str]) -> None:
    with pytest.raises(QrError) as info:
        parse_qr(text)
    assert isinstance(info.value, CodecError)
    for word in words:
        assert word in str(info.value)


def test_qr_data_refuses() -> None:
    with pytest.raises(QrError, match="naive"):
        QrData(dt.datetime(2020, 1, 1, tzinfo=dt.UTC), 1, "1", 1, 1, 1)
    with pytest.raises(QrError, match="total"):
        QrData(dt.datetime(2020, 1, 1), -1, "1", 1, 1, 1)
    with pytest.raises(QrError, match="fn"):
        QrData(dt.datetime(2020, 1, 1), 1, "", 1, 1, 1)


@given(
    st.builds(
        QrData,
        when=st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2105, 12, 31)).map(
            lambda d: d.replace(microsecond=0)
        ),
        total=st.integers(0, 256**6 - 1),
        fn=st.from_regex(r"[0-9]{16}", fullmatch=True),
        fd=st.integers(0, 2**32 - 1),
        fp=st.integers(0, 2**32 - 1),
        operation=st.integers(1, 4),
    )
)
def test_qr_round_trip(data: QrData) -> None:
    assert parse_qr(qr_string(data)) == data
