"""The FFD tag dictionary: coverage of the fact sheet's tags, types and limits, FN-formed tags."""

from __future__ import annotations

import pytest
from kkt.protocols.errors import CodecError
from kkt.protocols.ffd import (
    DOCUMENT_TAGS,
    FN_FORMED_TAGS_11,
    FN_FORMED_TAGS_12,
    TAGS,
    TagType,
    fn_formed_tags,
)

# Every tag the fact sheet fn-ffd-ofd.md §1.3 table gives a type for, plus the ones the brief names.
REQUIRED = [
    1000, 1001, 1002, 1005, 1008, 1009, 1012, 1013, 1016, 1017, 1018, 1020, 1021, 1022, 1023, 1026,
    1030, 1031, 1036, 1037, 1038, 1040, 1041, 1042, 1043, 1044, 1046, 1048, 1050, 1051, 1052, 1053,
    1054, 1055, 1056, 1057, 1059, 1060, 1062, 1068, 1073, 1074, 1075, 1077, 1078, 1079, 1081, 1084,
    1085, 1086, 1097, 1098, 1101, 1102, 1103, 1104, 1105, 1106, 1107, 1108, 1109, 1110, 1111, 1116,
    1117, 1118, 1126, 1129, 1130, 1131, 1132, 1133, 1134, 1135, 1136, 1138, 1139, 1140, 1141, 1142,
    1143, 1144, 1145, 1146, 1157, 1158, 1162, 1163, 1171, 1173, 1174, 1178, 1179, 1183, 1187, 1188,
    1189, 1190, 1191, 1192, 1193, 1194, 1196, 1197, 1198, 1199, 1200, 1201, 1203, 1205, 1206, 1207,
    1208, 1209, 1212, 1213, 1214, 1215, 1216, 1217, 1218, 1219, 1220, 1221, 1222, 1223, 1224, 1225,
    1226, 1227, 1228, 1229, 1230, 1231, 1232, 1233, 1256, 1260, 1261, 1270, 1273, 1274, 1275, 1276,
    1277, 1278, 1279, 1280, 1281, 1282, 1283, 1290, 2104, 2106, 2107, 2108, 2116,
]  # fmt: skip


def test_required_tags_present() -> None:
    missing = [tag for tag in REQUIRED if tag not in TAGS]
    assert missing == []


def test_specs_are_consistent() -> None:
    for tag, spec in TAGS.items():
        assert spec.tag == tag
        assert spec.name
        if spec.fixed_length is not None:
            assert spec.max_length == spec.fixed_length, tag


@pytest.mark.parametrize(
    ("tag", "type_", "max_length", "fixed_length"),
    [
        # fact sheet §1.2 / §1.3
        (1020, TagType.VLN, 6, None),  # money
        (1043, TagType.VLN, 6, None),
        (1136, TagType.VLN, 6, None),
        (1023, TagType.FVLN, 8, None),
        (1030, TagType.STRING, 128, None),
        (1041, TagType.STRING, 16, 16),
        (1037, TagType.STRING, 20, None),
        (1018, TagType.STRING, 12, None),
        (1017, TagType.STRING, 12, None),
        (1203, TagType.STRING, 12, None),
        (1226, TagType.STRING, 12, None),
        (1228, TagType.STRING, 12, None),
        (1230, TagType.STRING, 3, None),
        (1077, TagType.BYTES, 6, 6),
        (1078, TagType.BYTES, 18, None),
        (1012, TagType.UNIXTIME, 4, 4),
        (1098, TagType.UNIXTIME, 4, 4),
        (1040, TagType.U32, 4, 4),
        (1290, TagType.U32, 4, 4),
        (1205, TagType.U32, 4, 4),
        (1213, TagType.U16, 2, 2),
        (1054, TagType.BYTE, 1, 1),
        (1212, TagType.BYTE, 1, 1),  # S4's uint32 is wrong (§1.3)
        (1059, TagType.STLV, 1024, None),
        (1129, TagType.STLV, 116, None),
        (1133, TagType.STLV, 216, None),
        (1157, TagType.STLV, 708, None),
        (1194, TagType.STLV, 708, None),
        (1174, TagType.STLV, 292, None),
        (3, TagType.STLV, 32768, None),  # §2: receipt STLV maximum
        (7, TagType.STLV, 512, None),
    ],
)
def test_types_and_lengths(
    tag: int, type_: TagType, max_length: int | None, fixed_length: int | None
) -> None:
    spec = TAGS[tag]
    assert (spec.type, spec.max_length, spec.fixed_length) == (type_, max_length, fixed_length)


def test_repeatable_flags() -> None:
    for tag in (1059, 1073, 1074, 1171, 1084, 1101, 2107, 1261):
        assert TAGS[tag].repeatable, tag
    for tag in (1020, 1041, 1054, 1077):
        assert not TAGS[tag].repeatable, tag


def test_json_names_from_the_sheet() -> None:
    assert TAGS[1020].json_name == "totalSum"
    assert TAGS[1023].json_name == "quantity"
    assert TAGS[1041].json_name == "fiscalDriveNumber"
    assert TAGS[1059].json_name == "items"
    assert TAGS[1209].json_name == "fiscalDocumentFormatVer"


def test_document_tags_equal_their_codes() -> None:
    assert sorted(DOCUMENT_TAGS) == [1, 2, 3, 4, 5, 6, 7, 11, 21, 31, 41]
    for code, tag in DOCUMENT_TAGS.items():
        assert tag == code
        assert TAGS[tag].type is TagType.STLV


def test_fn_formed_tags_11() -> None:
    # fact sheet §1.3 "Attributes the FN forms itself", FFD 1.1
    assert {1012, 1020, 1037, 1038, 1040, 1041, 1042, 1077, 1209, 1213} <= FN_FORMED_TAGS_11
    assert set(range(1129, 1147)) <= FN_FORMED_TAGS_11
    assert {1050, 1051, 1052, 1053, 1054, 1205, 1206, 1207, 1218, 1219, 1220, 1221}.issubset(
        FN_FORMED_TAGS_11
    )
    assert {1109, 1110, 1126, 1193} <= FN_FORMED_TAGS_11
    # the KKT sends these itself
    assert not {1030, 1021, 1009, 1187, 1008, 1059, 1055, 1290, 2104} & FN_FORMED_TAGS_11
    assert len(FN_FORMED_TAGS_11) == 63  # counted from the list in §1.3


def test_fn_formed_tags_12() -> None:
    dropped = {1109, 1110, 1126, 1193, 1207, 1221}
    added = {2106, 1290, 2116, 2104}
    assert FN_FORMED_TAGS_12 == (FN_FORMED_TAGS_11 - dropped) | added
    assert not dropped & FN_FORMED_TAGS_12
    assert added <= FN_FORMED_TAGS_12
    assert 1077 in FN_FORMED_TAGS_12


def test_fn_formed_tags_by_version() -> None:
    assert fn_formed_tags(4) is FN_FORMED_TAGS_12
    assert fn_formed_tags(3) is FN_FORMED_TAGS_11
    assert fn_formed_tags(2) is FN_FORMED_TAGS_11  # 1.05: the 1.1 set, see the docstring
    for bad in (0, 1, 5):
        with pytest.raises(CodecError, match="FFD version"):
            fn_formed_tags(bad)
