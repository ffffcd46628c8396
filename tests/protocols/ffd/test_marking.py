"""The marking-code model: parsing, types, B1h offsets, 2115, 1305, the 2106 labels.

Golden vectors and where they come from:

* 2115 -- ``shtrih-m/javapos_shtrih:Source/FiscalPrinterService/test/com/shtrih/fiscalprinter/
  Tag2115Test.java`` lines 27-36: ``"29293847568"`` -> ``"0976"``,
  ``"2938479283749287skdjfhksjdfh"`` -> ``"1325"``.
* The libfptr sample code of fact sheet ``ofd-cloud-marking.md`` §4.6 (index id 40743705226):
  85 bytes, type 4, AI 91 at 32, AI 92 at 39, 2115 "2038" (computed there).
* Codes a real ФН-М typed through FF61: ``01046006531059902152CUnq<GS>93Gk30`` -> 5
  (shtrih-m/fr_drv_ng issue #165, comment of 2024-03-26) and the tobacco pack
  ``04606203103348a3=EfODAB=UpGbL`` -> 1 (issue #145).
* The 2106 print labels: fact sheet §4.5's table (0, 3, 16, 19 ``[М]``; 1, 5, 7, 17 ``[М-]``;
  15 ``[М+]``).
"""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kkt.protocols.errors import CodecError
from kkt.protocols.ffd.marking import (
    ItemCheck,
    MarkCodeType,
    MarkingCodeError,
    control_code,
    item_check_label,
    parse_mark_code,
)

GS = "\x1d"
LIBFPTR = (
    "014494550435306821QXYXSALGLMYQQ" + GS + "91EE06" + GS
    + "92YWCXbmK6SN8vvwoxZFk7WAY9WoJNMGGr6Cgtiuja04c="
)  # fmt: skip
CRYPTO_88 = "A" * 87 + "="


@pytest.mark.parametrize(
    ("code", "expected"),
    [("29293847568", "0976"), ("2938479283749287skdjfhksjdfh", "1325"), (LIBFPTR, "2038")],
)
def test_control_code_golden(code: str, expected: str) -> None:
    assert control_code(code) == expected
    assert control_code(code.encode("ascii")) == expected


@given(st.binary(min_size=1, max_size=300))
def test_control_code_is_last_four_decimal_digits_of_crc32(data: bytes) -> None:
    assert control_code(data) == str(zlib.crc32(data)).zfill(4)[-4:]


def test_libfptr_sample_code() -> None:
    code = parse_mark_code(LIBFPTR)
    assert len(code.raw) == 85
    assert code.type is MarkCodeType.CRYPTO_44
    assert (code.gtin, code.serial, code.key_id) == ("44945504353068", "QXYXSALGLMYQQ", "EE06")
    assert code.crypto is not None and len(code.crypto) == 44
    assert (code.ai91_offset, code.ai92_offset) == (32, 39) == code.fn_offsets
    assert code.raw[32:34] == b"91" and code.raw[39:41] == b"92"
    assert code.control_code == "2038"
    assert code.product_code == "014494550435306821QXYXSALGLMYQQ"


def test_codes_a_real_fn_typed() -> None:
    milk = parse_mark_code("01046006531059902152CUnq" + GS + "93Gk30")
    assert milk.type is MarkCodeType.CRYPTO_4_UNCHECKABLE == 5
    assert (milk.gtin, milk.serial, milk.crypto, milk.fn_offsets) == (
        "04600653105990", "52CUnq", "Gk30", None,
    )  # fmt: skip
    pack = parse_mark_code(b"04606203103348a3=EfODAB=UpGbL")
    assert pack.type is MarkCodeType.SHORT == 1
    assert (pack.gtin, pack.serial) == ("04606203103348", "a3=EfOD")


def test_88_character_tail_and_44_without_key() -> None:
    code = parse_mark_code(f"0104650118042046215MLaaf{GS}91EE06{GS}92{CRYPTO_88}")
    assert code.type is MarkCodeType.CRYPTO_88 and code.fn_offsets == (25, 32)
    unkeyed = parse_mark_code(f"0104650118042046215MLaaf{GS}92{'B' * 44}")
    assert unkeyed.type is MarkCodeType.CRYPTO_44_UNCHECKABLE and unkeyed.fn_offsets is None


def test_short_unknown_and_leading_fnc1() -> None:
    assert parse_mark_code("0104650118042046215MLaaf").type is MarkCodeType.SHORT
    assert parse_mark_code("4601234567890").type is MarkCodeType.UNKNOWN
    lead = parse_mark_code(GS + LIBFPTR)
    assert lead.type is MarkCodeType.CRYPTO_44 and lead.fn_offsets == (33, 40)
    with_expiry = parse_mark_code(f"010465011804204617250101215MLaaf{GS}93dGVz")
    assert with_expiry.serial == "5MLaaf" and with_expiry.crypto == "dGVz"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (f"0104650118042046215MLaaf{GS}91EE06{GS}92{'x' * 43}", "AI 92 crypto tail is 43"),
        (f"0104650118042046215MLaaf{GS}91EE6{GS}92{'x' * 44}", "AI 91 key id is 3"),
        (f"0104650118042046215MLaaf{GS}92{CRYPTO_88}", "needs AI 91"),
        (f"0104650118042046215MLaaf{GS}91EE06", "without AI 92"),
        (f"0104650118042046215MLaaf{GS}93dGV", "AI 93 crypto code is 3"),
        (f"0104650118042046215MLaaf{GS}99xx", "unknown GS1 application identifier"),
        (f"010465011804204621{GS}93dGVz", "AI 21 at offset 16 is empty"),
        (f"0104650118042046{GS}93dGVz", "no serial number"),
        ("", "empty"),
        ("01046501180420462" + "1" * 300, "B1h takes at most 255"),
        ("0104650118042046 21x", "offset 16"),
        ("01046501180420462Ж", "non-ASCII"),
        (f"0104650118042046215ML{GS}21again", "occurs twice"),
        ("010465011804204617250", "AI 17 at offset 16 needs 6"),
    ],
)
def test_malformed_codes_say_what_is_wrong(code: str, message: str) -> None:
    with pytest.raises(MarkingCodeError, match=message) as caught:
        parse_mark_code(code)
    assert isinstance(caught.value, CodecError)


@pytest.mark.parametrize(
    ("value", "label"),
    [(0, "[М]"), (1, "[М-]"), (3, "[М]"), (5, "[М-]"), (7, "[М-]"), (15, "[М+]"), (16, "[М]"),
     (17, "[М-]"), (19, "[М]")],
)  # fmt: skip
def test_2106_labels(value: int, label: str) -> None:
    assert item_check_label(value) == label == ItemCheck(value).label


def test_2106_negative_matches_javapos_check() -> None:
    # SMFiscalPrinterImpl.checkTag2106: bit 0 without bit 1, or bit 2 without bit 3, refuses.
    for value in range(32):
        flags = ItemCheck(value)
        expected = (value & 1 and not value & 2) or (value & 4 and not value & 8)
        assert flags.negative == bool(expected)


_ALNUM = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", min_size=1)


@given(
    gtin=st.text("0123456789", min_size=14, max_size=14),
    serial=_ALNUM.filter(lambda s: len(s) <= 20),
    key=st.text("ABCDEF0123456789", min_size=4, max_size=4),
    tail=st.sampled_from([44, 88]).flatmap(
        lambda n: st.text("ABCxyz019+/=", min_size=n, max_size=n)
    ),
)
def test_built_codes_parse_back(gtin: str, serial: str, key: str, tail: str) -> None:
    text = f"01{gtin}21{serial}{GS}91{key}{GS}92{tail}"
    code = parse_mark_code(text)
    assert (code.gtin, code.serial, code.key_id, code.crypto) == (gtin, serial, key, tail)
    assert code.type in (MarkCodeType.CRYPTO_44, MarkCodeType.CRYPTO_88)
    assert code.fn_offsets == (text.index(GS + "91") + 1, text.index(GS + "92") + 1)
    assert code.product_code == f"01{gtin}21{serial}"


@given(st.binary(max_size=300))
def test_garbage_gives_a_code_or_a_typed_error(data: bytes) -> None:
    try:
        code = parse_mark_code(data)
    except MarkingCodeError:
        return
    assert code.raw == data and code.type in MarkCodeType
