"""FFD TLV codec: golden vectors, nesting, repetition, refusals, hypothesis round trips."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kkt.protocols.errors import CodecError
from kkt.protocols.ffd import (
    TAGS,
    TagSpec,
    TagType,
    TlvError,
    TlvList,
    Value,
    decode_tlv,
    encode_tlv,
    encode_tlv_item,
    find,
    find_all,
    fiscal_sign_from_tlv,
)

# --- golden vectors -------------------------------------------------------------------------------


def test_fvln_golden_yandex_ofd() -> None:
    # 1234567.89 -> 02 15 CD 5B 07: yandex/ofd tests (fact sheet fn-ffd-ofd.md §1.2).
    encoded = encode_tlv_item(1023, Decimal("1234567.89"))
    assert encoded == bytes.fromhex("FF03 0500 02 15CD5B07")
    assert decode_tlv(encoded) == [(1023, Decimal("1234567.89"))]


def test_fvln_golden_shtrih_ff4d() -> None:
    # FF4D example TLV `FF 03 04 00 06 40 42 0F`: tag 1023, 6 decimals, 0x0F4240 = 1.000000
    # (fact sheet shtrih-protocol.md §2.4, from fr_drv_ng_examples #42).
    data = bytes.fromhex("FF 03 04 00 06 40 42 0F")
    [(tag, value)] = decode_tlv(data)
    assert tag == 1023
    assert value == Decimal("1.000000")
    assert str(value) == "1.000000"  # the six decimals survive, not just the number
    assert encode_tlv([(1023, Decimal("1.000000"))]) == data


def test_fiscal_sign_tag_layout() -> None:
    # 1077 = 6 bytes, the printed value is the big-endian uint32 of bytes 2..5 (fact sheet §3);
    # this value is the one in the yandex/ofd dump below.
    data = bytes.fromhex("3504 0600 2104AA107541")
    [(tag, value)] = decode_tlv(data)
    assert (tag, value) == (1077, bytes.fromhex("2104AA107541"))
    assert isinstance(value, bytes)
    assert fiscal_sign_from_tlv(value) == 0xAA107541 == 2853205313


# A re-registration report (document 11) as a real KKT sent it to the OFD: the STLV that follows
# the 30-byte session header and the 32-byte container header of the dump in yandex/ofd
# `tests/example_test.py` (fact sheet §5.2 cites the same dump), without its 10 trailing bytes.
REREGISTRATION = bytes.fromhex(
    "0b00860111041000393939393037383930303030353438380d04140030303030"
    "30303030303530303835373020202020fa030c00373730323230333237362020"
    "1004040001000000f40304009855b958350406002104aa1075412004010000ea"
    "03010000e90301000055040100015604010000540401000026040100064d0401"
    "0001f5030c00303030303030303030303032180411008e8e8e2090808f8a8092"
    "2de6a5ade2e020f103300031313131343120a32e8caee1aaa2a02c20e3ab2e20"
    "8ae3e1aaaea2e1aaa0ef20a42e32308020aee4a8e120822d323032f9030c0037"
    "3730343335383531382020240408006e616c6f672e72755d0413006578616d70"
    "6c65406578616d706c652e636f6dfd030a0098a5adadaead208a2e2016040a00"
    "4f4f4f20544158434f4da504010002b904010002a4040300322e30a304310031"
    "313131343120a32e8caee1aaa2a02c20e3ab2e208ae3e1aaaea2e1aaa0ef0d0a"
    "a42e32308020aee4a8e120822d323032b3040c00373731323334353637383930"
    "c504010000b704010001"
)


def test_real_reregistration_report_decodes_and_reencodes() -> None:
    [(tag, document)] = decode_tlv(REREGISTRATION)
    assert tag == 11
    assert isinstance(document, list)
    assert find(document, 1041) == "9999078900005488"
    assert find(document, 1037) == "0000000005008570    "  # space-padded to 20 (§1.2)
    assert find(document, 1018) == "7702203276  "
    assert find(document, 1040) == 1
    assert find(document, 1012) == dt.datetime(2017, 3, 3, 11, 38)
    assert find(document, 1048) == "ООО РАПКАТ-центр "  # CP866
    assert find(document, 1209) == 2  # FFD 1.05
    assert find(document, 1101) == 1  # reason: FN replaced
    assert find(document, 1188) == "2.0"
    assert find(document, 9999) is None
    assert encode_tlv([(tag, document)]) == REREGISTRATION


# --- value types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "value", "wire"),
    [
        (1054, 1, "1E04 0100 01"),  # byte
        (1213, 0x1234, "BD04 0200 3412"),  # uint16 LE
        (1040, 0x01020304, "1004 0400 04030201"),  # uint32 LE
        (1020, 0, "FC03 0100 00"),  # VLN zero: one 00 byte (our choice, tlv module docstring)
        (1020, 50000, "FC03 0200 50C3"),  # VLN, minimal LE
        (1020, 256**6 - 1, "FC03 0600 FFFFFFFFFFFF"),  # the largest 6-byte sum
        (1023, Decimal(3), "FF03 0200 00 03"),  # FVLN without decimals
        (1023, Decimal("0.000"), "FF03 0200 03 00"),
        (1030, "Хлеб", "0604 0400 95ABA5A1"),  # CP866
        (1030, "", "0604 0000"),
        (1012, dt.datetime(1970, 1, 1, 0, 0, 1), "F403 0400 01000000"),
        (1162, b"\x00\x01", "8A04 0200 0001"),
        (50000, b"\xaa", "50C3 0100 AA"),  # unknown tag: raw bytes both ways
    ],
)
def test_value_encodings(tag: int, value: Value, wire: str) -> None:
    data = bytes.fromhex(wire)
    assert encode_tlv_item(tag, value) == data
    assert decode_tlv(data) == [(tag, value)]


def test_unixtime_is_wall_clock_as_utc() -> None:
    when = dt.datetime(2017, 8, 6, 21, 55, 0)
    data = encode_tlv_item(1012, when)
    assert int.from_bytes(data[4:], "little") == 1502056500  # 2017-08-06T21:55:00 read as UTC
    assert decode_tlv(data) == [(1012, when)]
    # microseconds are dropped, the rest is kept
    assert decode_tlv(encode_tlv_item(1012, when.replace(microsecond=999_999))) == [(1012, when)]


def test_vln_reads_trailing_zeros_and_empty() -> None:
    assert decode_tlv(bytes.fromhex("FC03 0600 50C300000000")) == [(1020, 50000)]
    assert decode_tlv(bytes.fromhex("FC03 0000")) == [(1020, 0)]


def test_fvln_int_and_positive_exponent() -> None:
    assert decode_tlv(encode_tlv_item(1023, 5)) == [(1023, Decimal(5))]
    assert encode_tlv_item(1023, Decimal("1E+2")) == bytes.fromhex("FF03 0200 00 64")


ITEM: TlvList = [
    (1030, "Молоко 3,2% 1 л"),
    (1079, 8990),
    (1023, Decimal("2.000")),
    (1043, 17980),
    (1199, 2),
    (1214, 4),
    (1212, 1),
]


def test_nested_stlv_item_round_trip() -> None:
    receipt: TlvList = [(3, [(1054, 1), (1059, ITEM), (1020, 17980)])]
    data = encode_tlv(receipt)
    assert data[:2] == b"\x03\x00"
    assert int.from_bytes(data[2:4], "little") == len(data) - 4
    item_at = data.index(b"\x23\x04")  # 1059 = 0x0423
    assert int.from_bytes(data[item_at + 2 : item_at + 4], "little") == len(encode_tlv(ITEM))
    assert decode_tlv(data) == receipt
    [(_, document)] = decode_tlv(data)
    assert isinstance(document, list)
    item = find(document, 1059)
    assert isinstance(item, list)
    assert find(item, 1023) == Decimal("2.000")
    assert find(item, 1030) == "Молоко 3,2% 1 л"


def test_repeated_tags_stay_in_order() -> None:
    second: TlvList = [(1030, "Хлеб"), (1079, 4500), (1023, Decimal(1)), (1043, 4500)]
    items: TlvList = [
        (1059, ITEM),
        (1059, second),
        (1073, "+79990000001"),
        (1073, "+79990000002"),
    ]
    decoded = decode_tlv(encode_tlv(items))
    assert decoded == items
    assert find_all(decoded, 1059) == [ITEM, second]
    assert find_all(decoded, 1073) == ["+79990000001", "+79990000002"]
    assert find(decoded, 1073) == "+79990000001"
    assert find_all(decoded, 1020) == []


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "value", "words"),
    [
        (1030, "я" * 129, ["1030", "129", "128"]),  # string too long
        (1020, 256**6, ["1020", "6 bytes"]),  # VLN too big for money
        (1020, -1, ["1020", "negative"]),
        (1023, Decimal(256**7), ["1023", "7 bytes"]),  # FVLN mantissa over 8 - 1 bytes
        (1023, Decimal("-1.5"), ["1023", "non-negative"]),
        (1023, Decimal("NaN"), ["1023"]),
        (1023, 1.5, ["1023", "Decimal"]),
        (1041, "123456789012345", ["1041", "exactly 16"]),  # fixed length wrong
        (1077, b"\x00" * 5, ["1077", "exactly 6"]),
        (1078, b"\x00" * 19, ["1078", "18"]),
        (50000, "text", ["50000", "unknown tag", "bytes"]),  # unknown tag, non-bytes value
        (50000, 7, ["50000", "bytes"]),
        (1030, "€ euro", ["1030", "CP866"]),  # not CP866
        (1054, 256, ["1054", "0..255"]),
        (1054, -1, ["1054", "0..255"]),
        (1213, 65536, ["1213", "0..65535"]),
        (1040, 2**32, ["1040", "0..4294967295"]),
        (1040, "1", ["1040", "int"]),
        (1054, True, ["1054", "int"]),
        (1012, dt.datetime(1969, 12, 31, 23, 59, 59), ["1012", "1970"]),
        (1012, dt.datetime(2106, 2, 7, 6, 28, 16), ["1012", "2106"]),
        (1012, dt.datetime(2020, 1, 1, tzinfo=dt.UTC), ["1012", "naive"]),
        (1012, dt.date(2020, 1, 1), ["1012", "datetime"]),
        (1059, b"\x00", ["1059", "list"]),
        (1059, [(1030, "x" * 128)] * 8, ["1059", "1024"]),  # STLV over its maximum
        (1059, [(1030, "x" * 129)], ["1030", "inside 1059"]),  # where the nested error is
        (70000, b"", ["70000"]),  # tag beyond u16
        (50000, b"\x00" * 65536, ["65535"]),  # u16 length limit
    ],
)
def test_encode_refuses(tag: int, value: object, words: list[str]) -> None:
    with pytest.raises(TlvError) as info:
        encode_tlv_item(tag, value)  # type: ignore[arg-type]
    message = str(info.value)
    for word in words:
        assert word in message
    assert isinstance(info.value, CodecError)


def test_error_names_the_tag() -> None:
    with pytest.raises(TlvError) as info:
        encode_tlv([(3, [(1059, [(1030, "x" * 200)])])])
    assert info.value.tag == 1030
    assert "inside 3 > 1059" in str(info.value)
    assert "наименование предмета расчета" in str(info.value)


@pytest.mark.parametrize(
    ("wire", "words"),
    [
        ("FC", ["truncated", "header"]),
        ("FC0301", ["truncated", "header"]),
        ("FC03 0300 0102", ["1020", "length 3"]),  # length beyond the data
        ("1E04 0200 0101", ["1054", "exactly 1"]),  # a byte of 2 bytes
        ("1004 0300 010203", ["1040", "exactly 4"]),
        ("FC03 0700 01020304050607", ["1020", "maximum is 6"]),
        ("FF03 0000", ["1023", "empty"]),
        ("1104 0300 313233", ["1041", "exactly 16"]),
        ("2304 0300 060400", ["truncated", "inside 1059"]),  # bad nested STLV
        ("2304 0500 0604 0200 41", ["1030", "inside 1059"]),
    ],
)
def test_decode_refuses(wire: str, words: list[str]) -> None:
    with pytest.raises(TlvError) as info:
        decode_tlv(bytes.fromhex(wire))
    for word in words:
        assert word in str(info.value)


def test_decode_refuses_hostile_nesting() -> None:
    data = b""
    for _ in range(40):  # 40 nested 1059s
        data = (1059).to_bytes(2, "little") + len(data).to_bytes(2, "little") + data
    with pytest.raises(TlvError, match="nested deeper"):
        decode_tlv(data)
    nested: Value = []
    for _ in range(40):
        nested = [(1059, nested)]
    with pytest.raises(TlvError, match="nested deeper"):
        encode_tlv(nested)


# --- hypothesis -----------------------------------------------------------------------------------

CP866 = bytes(range(256)).decode("cp866")
UNKNOWN_TAGS = st.integers(0, 0xFFFF).filter(lambda t: t not in TAGS)
DATETIMES = st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2105, 12, 31, 23, 59, 59)).map(
    lambda d: d.replace(microsecond=0)
)


def _limit(spec: TagSpec, budget: int) -> int:
    return budget if spec.max_length is None else min(spec.max_length, budget)


def _value(spec: TagSpec, budget: int, depth: int) -> st.SearchStrategy[Value]:
    """Values of ``spec`` whose encoding takes at most ``budget`` bytes (assumed ≥ its minimum)."""
    limit = _limit(spec, budget)
    kind = spec.type
    if kind in (TagType.BYTE, TagType.U16, TagType.U32):
        return st.integers(0, 256 ** (spec.fixed_length or 0) - 1)
    if kind is TagType.UNIXTIME:
        return DATETIMES
    if kind is TagType.VLN:
        return st.integers(0, 256**limit - 1)
    if kind is TagType.FVLN:
        mantissa = st.integers(0, 256 ** (limit - 1) - 1)
        return st.builds(
            lambda m, d: Decimal((0, tuple(map(int, str(m))), -d)), mantissa, st.integers(0, 6)
        )
    if kind is TagType.STRING:
        if spec.fixed_length is not None:
            return st.text(CP866, min_size=spec.fixed_length, max_size=spec.fixed_length)
        return st.text(CP866, max_size=limit)
    if kind is TagType.BYTES:
        if spec.fixed_length is not None:
            return st.binary(min_size=spec.fixed_length, max_size=spec.fixed_length)
        return st.binary(max_size=limit)
    return tlv_lists(limit, depth + 1)


def _min_size(spec: TagSpec) -> int:
    if spec.fixed_length is not None:
        return spec.fixed_length
    return {TagType.VLN: 1, TagType.FVLN: 2}.get(spec.type, 0)


SPECS = sorted(TAGS.values(), key=lambda s: s.tag)


@st.composite
def tlv_lists(draw: st.DrawFn, budget: int, depth: int = 0) -> TlvList:
    """TLV lists drawn from the dictionary (plus unknown tags) that encode in ``budget`` bytes."""
    items: TlvList = []
    remaining = budget
    for _ in range(draw(st.integers(0, 6))):
        room = remaining - 4
        if room < 0:
            break
        fits = [
            s for s in SPECS if _min_size(s) <= room and (s.type is not TagType.STLV or depth < 3)
        ]
        if fits and draw(st.integers(0, 9)) > 0:
            spec = draw(st.sampled_from(fits))
            tag, value = spec.tag, draw(_value(spec, room, depth))
        else:
            tag, value = draw(UNKNOWN_TAGS), draw(st.binary(max_size=min(room, 64)))
        items.append((tag, value))
        remaining -= len(encode_tlv_item(tag, value))
    return items


@settings(max_examples=400)
@given(tlv_lists(4000))
def test_round_trip(items: TlvList) -> None:
    data = encode_tlv(items)
    assert decode_tlv(data) == items
    assert encode_tlv(decode_tlv(data)) == data


@settings(max_examples=300)
@given(st.sampled_from(SPECS).flatmap(lambda s: st.tuples(st.just(s.tag), _value(s, 2000, 0))))
def test_every_tag_round_trips(item: tuple[int, Value]) -> None:
    assert decode_tlv(encode_tlv([item])) == [item]


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_decode_garbage_raises_only_tlv_error(data: bytes) -> None:
    try:
        decode_tlv(data)
    except TlvError:
        pass


@settings(max_examples=300)
@given(tlv_lists(600), st.data())
def test_decode_mutated_raises_only_tlv_error(items: TlvList, data: st.DataObject) -> None:
    wire = bytearray(encode_tlv(items))
    if wire:
        at = data.draw(st.integers(0, len(wire) - 1))
        wire[at] = data.draw(st.integers(0, 255))
        wire = wire[: data.draw(st.integers(0, len(wire)))]
    try:
        decode_tlv(bytes(wire))
    except TlvError:
        pass
