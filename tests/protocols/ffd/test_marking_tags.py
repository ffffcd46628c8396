"""The marking tags in the TLV codec and the document view: 2000-2116, 1163 (1300-1325), 1291.

Bytes: ОИСМ's TLVs of a real FF61 answer (shtrih-m/fr_drv_ng issue #145: 2114, 2105, 2005) and
an item written here from the FFD 1.2 item table (fact sheet ``fn-ffd-ofd.md`` §2: 1059 adds 2108,
1163, 2115, 2106, 1291).
"""

from __future__ import annotations

import datetime as dt

import pytest
from kkt.protocols.ffd import TAGS, TagType, TlvError, decode_tlv, encode_tlv, tlv_to_json
from kkt.protocols.ffd.marking import parse_mark_code
from kkt.protocols.ffd.view import rows

MARKING_TAGS = [2000, 2001, 2002, 2003, 2004, 2005, 2006, 2007, 2100, 2101, 2102, 2104, 2105,
                2106, 2107, 2108, 2109, 2110, 2111, 2112, 2113, 2114, 2115, 2116]  # fmt: skip
PRODUCT_CODES = [*range(1300, 1310), *range(1320, 1326)]


def test_every_marking_tag_is_known() -> None:
    for tag in [*MARKING_TAGS, *PRODUCT_CODES, 1163, 1291, 1292, 1293, 1294]:
        assert tag in TAGS, tag
    assert TAGS[2007].type is TAGS[1163].type is TAGS[1291].type is TagType.STLV
    assert TAGS[2114].type is TagType.UNIXTIME and TAGS[2115].fixed_length == 4
    assert TAGS[1305].max_length == 38 and TAGS[2000].max_length == 256


def test_oism_answer_tlvs_of_a_real_fn() -> None:
    data = bytes.fromhex("42 08 04 00 80 07 15 61 39 08 01 00 00 D5 07 01 00 05")
    items = decode_tlv(data)
    assert items == [(2114, dt.datetime(2021, 8, 12, 11, 35, 28)), (2105, 0), (2005, 5)]
    assert encode_tlv(items) == data


def _item() -> list[tuple[int, object]]:
    code = parse_mark_code(
        "014494550435306821QXYXSALGLMYQQ\x1d91EE06\x1d92YWCXbmK6SN8vvwoxZFk7WAY9WoJNMGGr6Cgtiuja04c="
    )
    assert code.product_code is not None
    return [
        (1030, "Обувь"),
        (1079, 500000),
        (1023, 1),
        (2108, 0),
        (1163, [(1305, code.product_code)]),
        (2115, code.control_code),
        (2106, 15),
    ]


def test_a_marked_item_round_trips_and_reads() -> None:
    receipt = [(1059, _item()), (2107, 0)]
    data = encode_tlv(receipt)
    assert decode_tlv(data) == receipt
    json = tlv_to_json(decode_tlv(data))
    item = json["items"][0]
    assert item["tag1163"] == {"tag1305": "014494550435306821QXYXSALGLMYQQ"}
    assert item["tag2115"] == "2038" and item["tag2106"] == 15
    assert json["tag2107"] == [0]  # 2107 may repeat: always a list
    text = {tag: value for _, tag, _, value in rows(decode_tlv(data))}
    assert text[2106].startswith("15 ([М+]")
    assert text[2108] == "0 (шт.)"
    assert text[1305] == "014494550435306821QXYXSALGLMYQQ"


def test_notification_item_2007_with_the_code_and_its_gs() -> None:
    stlv = [(2007, [(2000, "0104600653105990215\x1d93Gk30"), (2100, 5), (2110, 1), (2102, 0)])]
    decoded = decode_tlv(encode_tlv(stlv))
    assert decoded == stlv
    text = [(tag, value) for _, tag, _, value in rows(decoded)]
    assert (2000, "0104600653105990215<GS>93Gk30") in text
    assert (2100, "5 (КМ с КП 4 символа, не проверяемый в ФН)") in text
    assert (2110, "1 (штучный товар реализован)") in text


def test_fractional_quantity_1291() -> None:
    stlv = [(1291, [(1292, "1/4"), (1293, 1), (1294, 4)])]
    assert decode_tlv(encode_tlv(stlv)) == stlv
    text = [(tag, value) for _, tag, _, value in rows(stlv)]
    assert (1293, "1") in text and (1294, "4") in text  # counts, not kopecks


@pytest.mark.parametrize(
    ("items", "message"),
    [([(2115, "123")], "exactly 4"), ([(1305, "x" * 39)], "maximum is 38")],
)
def test_limits_are_enforced(items: list[tuple[int, object]], message: str) -> None:
    with pytest.raises(TlvError, match=message):
        encode_tlv(items)  # type: ignore[arg-type]
