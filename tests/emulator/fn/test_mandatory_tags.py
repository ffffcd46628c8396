"""Every document the emulator forms carries every mandatory tag of its FFD version, with the
FFD's lengths and padding.

The tables below list, per document type and FFD version, the tags a validator requires.  Sources:

* [F] fact sheet ``/work/shared/reference/fn-ffd-ofd.md`` §1.4 (S3's transcription of the FFD
  tables: FFD 1.05 Tables 15, 18-20, 27, 30-32 of Приказ ММВ-7-20/229@; FFD 1.2 Tables 87-96, 120,
  123-124 of ЕД-7-20/236@), the "M" (mandatory) column.  Print-only tags ("P": 1000, 1196 QR, and
  in the shift and state reports 1048/1009/1187) never reach the FN's document and are left out;
  so are "код формы" and ФПС, which are not TLV tags of the document (the form code is the STLV
  tag itself, ФПС belongs to the OFD container).
* [Y] yandex/ofd ``schemas/1.05/<document>.schema.json``, the "required" lists (a third-party
  OFD's JSON schemas, FFD 1.05): where they ask for more than [F], the tag is listed here too.
* [C] conditions that hold for the emulator's register (sends to an OFD, so 1017 is due; a shift
  is open during the state report of this scenario, so 1038 is due; the OFD has confirmed nothing,
  so the unsent count, date and number are due).

* [V] the vendor's tag table, shtrih-m/opos ``Source/SmFiscalPrinter/Units/TLVTags.pas`` (types,
  lengths and which strings are fixed-length).

Lengths ([F] §1.2, the FFD's types): fixed-width strings are padded -- 1017 and 1018 to 12 (the
yandex/ofd dictionary's ofdInn/userInn pattern: 10 digits and two spaces, or 12 digits; [V]: fixed
12), 1037 to 20 ([V] fixed), 1041 is 16 ([V] fixed); 1213 is 2 bytes ([V] ttUInt16), 1290 and
1205 4 bytes (uint32; [V] 1205 a 4-byte bitmask), 1077 6 bytes.

Readings chosen where the sources disagree:

* 1174 in 1.05: [Y] (and ATOL Online v4 ``correction_info``, ``ofd-cloud-marking.md`` §2.3)
  require 1177, 1178 and 1179; [F] lists 1178 (C) and 1179 (M) only -- we form all three.
  In 1.2, 1177 is gone and 1179 (the order's number) is due only for a correction by order.
* 1050-1053 in the shift close: [F] conditional, [Y] required -- always formed, 0 or 1.
* 1002, 1116, 1097, 1098 in the state report: [F] conditional, [Y] required -- 1002 and 1097 are
  always formed; 1098/1116 name the first unsent document and exist only while one waits, as in
  the shift close (a date for an empty queue would be invented).
* 1213: [F] uint16, S1's 2 bytes and [V] against yandex/ofd ``ofd/protocol.py`` U32 -- 2 bytes.
* 1133's members: [F] §1.3 (1144, 1145, 1146, 1232, 1233); 1145/1146 are STLVs of at most 100
  bytes (yandex/ofd and [V]; our table had 48, inferred) -- their members are the count 1135 and
  the sum 1201 that the FN's 36h correction block keeps per type (S1).
* 1101 (1.05) against 1205 (1.1/1.2) for re-registration reasons: [F] §1.3; a 1.05 document gets
  1101 codes mapped from the 1205 bits (0x1 -> 1, 0x2 -> 2, 0x4/0x8 -> 3, others -> 4).
* a 1.2 correction without items: [F] makes 1059 mandatory; the register adds one item for the
  whole sum (no VAT, full settlement) when the host sends none.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from kkt.emulator.atol import open_device as open_atol
from kkt.emulator.clock import ManualClock
from kkt.emulator.fn import Registration
from kkt.emulator.receipt import VAT20, Item
from kkt.emulator.register import Refusal, RegisterModel
from kkt.emulator.shtrih import open_device as open_shtrih
from kkt.emulator.state import open_model
from kkt.protocols.atol.link import HostSettings as AtolHostSettings
from kkt.protocols.ffd import TAGS, DocumentType, Payments, TagType, decode_tlv, find, find_all
from kkt.protocols.shtrih.link import HostSettings as ShtrihHostSettings

import kkt
from kkt import CorrectionBasis, Operation

START = dt.datetime(2026, 11, 2, 9, 0, 0)
V105, V12 = 2, 4  # tag 1209 codes

D = DocumentType
_COMMON = {1209, 1018, 1012, 1037, 1040, 1041, 1077}  # [F] M in every document, both versions

# [F] 1.05 registration M (non-P) + [Y] fiscalReport: 1062 taxationType, 1109 serviceSign,
# 1017 ofdInn (also [F] C, [C] with an OFD); [F] C, [C] with an OFD: 1046 the OFD's name.
_REGISTRATION_105 = _COMMON | {
    1048, 1002, 1221, 1110, 1056, 1001, 1108, 1013, 1021, 1009, 1187, 1188, 1189,
    1062, 1109, 1017, 1046,
}  # fmt: skip
# [F] 1.2: M adds 1290, 1190, 1213; 1221, 1110, 1108, 1109 are folded into 1290.
_REGISTRATION_12 = (_REGISTRATION_105 - {1221, 1110, 1108, 1109}) | {1290, 1190, 1213}

MANDATORY: dict[tuple[int, int], set[int]] = {
    (D.REGISTRATION, V105): _REGISTRATION_105,
    (D.REGISTRATION, V12): _REGISTRATION_12,
    # [F] re-registration: 1101 (1.05, [Y] correctionReasonCode), 1205 M in 1.2
    (D.REREGISTRATION, V105): _REGISTRATION_105 | {1101},
    (D.REREGISTRATION, V12): _REGISTRATION_12 | {1205},
    # [F] shift open M: 1038, 1188, 1189; C 1021 (a cashier is always named here)
    (D.SHIFT_OPEN, V105): _COMMON | {1038, 1188, 1189, 1021},
    (D.SHIFT_OPEN, V12): _COMMON | {1038, 1188, 1189, 1021},
    # [F] shift close M: 1038, 1118, 1111; [Y] closeShift: 1097, 1098 and the four FN flags
    (D.SHIFT_CLOSE, V105): _COMMON | {1038, 1118, 1111, 1097, 1098, 1050, 1051, 1052, 1053},
    # [F] 1.2 adds 1194, 1157, 1213 and makes 1009/1187 M
    (D.SHIFT_CLOSE, V12): _COMMON
    | {1038, 1118, 1111, 1097, 1098, 1050, 1051, 1052, 1053, 1194, 1157, 1213, 1009, 1187},
    # [F] receipt M: 1042, 1038, 1054, 1059, 1020; [Y] receipt: 1055 taxationType
    (D.RECEIPT, V105): _COMMON | {1042, 1038, 1054, 1059, 1020, 1055},
    (D.RECEIPT, V12): _COMMON | {1042, 1038, 1054, 1059, 1020, 1055, 1009, 1187},
    # [F] correction M: 1042, 1038, 1054, 1174, 1020; [Y] receiptCorrection: 1173, 1055, 1021
    (D.CORRECTION_RECEIPT, V105): _COMMON | {1042, 1038, 1054, 1174, 1020, 1173, 1055, 1021},
    # [F] 1.2: 1059, 1009, 1187 become M
    (D.CORRECTION_RECEIPT, V12): _COMMON
    | {1042, 1038, 1054, 1174, 1020, 1173, 1055, 1021, 1059, 1009, 1187},
    # [F] state report C: 1038, 1002, 1116, 1097, 1098 ([Y] currentStateReport requires 1002,
    # 1116, 1097, 1098; [C] a shift is open)
    (D.STATE_REPORT, V105): _COMMON | {1038, 1002, 1116, 1097, 1098},
    (D.STATE_REPORT, V12): _COMMON | {1038, 1002, 1116, 1097, 1098, 1213, 1157},
    # [F] FN close M: 1048, 1038; [Y] closeArchive: 1187 retailPlace, 1021 operator
    (D.FISCAL_MODE_CLOSE, V105): _COMMON | {1048, 1038, 1187, 1021},
    (D.FISCAL_MODE_CLOSE, V12): _COMMON | {1048, 1038, 1187, 1021, 1157, 1009},
}

# Members of the STLVs: [F] §1.4 item M (1.05: 1030, 1079, 1043; 1.2: 1023, 1079, 1043);
# 1174: [Y] correctionBase requires 1177, 1178, 1179 (1.05); 1.2 drops 1177 ([F] §1.3 lists
# 1178/1179 only) and 1179 is the order number, due only for a correction by order.
MEMBERS: dict[tuple[int, int], set[int]] = {
    (1059, V105): {1030, 1079, 1043},
    (1059, V12): {1023, 1079, 1043},
    (1174, V105): {1177, 1178, 1179},
    (1174, V12): {1178},
    # [F] §1.3: 1133 contains 1144, 1145, 1146, 1232, 1233; 1157/1194 contain 1134, 1129-1133
    (1133, V105): {1144, 1145, 1146, 1232, 1233},
    (1133, V12): {1144, 1145, 1146, 1232, 1233},
    (1157, V12): {1134, 1129, 1130, 1131, 1132, 1133},
    (1194, V12): {1134, 1129, 1130, 1131, 1132, 1133},
}

# [C] the conditional tags a registered mode calls for ([F] §1.4 "C" columns, §7.2): the
# automat's number in automatic mode; for an Internet-only register the FNS site and the sender's
# e-mail in its registration, the Internet flag (1.05 O, 1.2 C) and the e-mail in its receipts.
_BY_MODE: dict[str, dict[int, set[int]]] = {
    "automatic": {D.REGISTRATION: {1036}, D.REREGISTRATION: {1036}, D.RECEIPT: {1036}},
    "internet": {
        D.REGISTRATION: {1060, 1117},
        D.REREGISTRATION: {1060, 1117},
        D.RECEIPT: {1108, 1117},
    },
}
_BY_MODE["automatic"][D.CORRECTION_RECEIPT] = _BY_MODE["automatic"][D.RECEIPT]  # [F] "as for
_BY_MODE["internet"][D.CORRECTION_RECEIPT] = _BY_MODE["internet"][D.RECEIPT]  # a receipt"

# Tags a version does not have: 1.2 folded these into 1290 ([F] §1.3) and dropped 1177; 1290 is
# new in 1.2.  (1108 stays in 1.2 receipts: [F] §1.4.)
_FOLDED = {1221, 1110, 1108, 1109}
ABSENT: dict[tuple[int, int], set[int]] = {
    (D.REGISTRATION, V12): _FOLDED,
    (D.REREGISTRATION, V12): _FOLDED,
    (D.CORRECTION_RECEIPT, V12): {1177},
}

# Exact wire lengths ([F] §1.2): padded strings and fixed-size integers.
EXACT = {1017: 12, 1018: 12, 1037: 20, 1041: 16, 1077: 6, 1213: 2, 1290: 4, 1205: 4}


def _walk(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(tag, value bytes) of each TLV at this level, read from the wire form directly."""
    offset = 0
    while offset < len(data):
        tag, length = struct.unpack_from("<HH", data, offset)
        yield tag, data[offset + 4 : offset + 4 + length]
        offset += 4 + length
    assert offset == len(data), "TLV lengths do not add up"


def _check_lengths(data: bytes, where: str) -> list[str]:
    problems = []
    for tag, body in _walk(data):
        spec = TAGS.get(tag)
        if spec is None:
            problems.append(f"{where}: tag {tag} is not in the FFD tag table")
            continue
        if tag in EXACT and len(body) != EXACT[tag]:
            problems.append(f"{where}: tag {tag} is {len(body)} bytes, the FFD says {EXACT[tag]}")
        if spec.max_length is not None and len(body) > spec.max_length:
            problems.append(f"{where}: tag {tag} is {len(body)} bytes, at most {spec.max_length}")
        if spec.type is TagType.STLV:
            problems += _check_lengths(body, f"{where}/{tag}")
    return problems


def _missing_members(data: bytes, ffd: int, where: str) -> list[str]:
    problems = []
    for tag, body in _walk(data):
        if TAGS.get(tag) is None or TAGS[tag].type is not TagType.STLV:
            continue
        present = {member for member, _ in _walk(body)}
        wanted = MEMBERS.get((tag, ffd), set())
        if wanted - present:
            problems.append(f"{where}/{tag}: lacks {sorted(wanted - present)}")
        problems += _missing_members(body, ffd, f"{where}/{tag}")
    return problems


def _all_tags(data: bytes) -> set[int]:
    found = set()
    for tag, body in _walk(data):
        found.add(tag)
        if TAGS.get(tag) is not None and TAGS[tag].type is TagType.STLV:
            found |= _all_tags(body)
    return found


def problems_of(document: bytes, ffd: int, modes: tuple[str, ...] = ()) -> list[str]:
    """Everything a validator with the tables above finds wrong in one whole document of a
    register registered in the ``modes`` ("automatic", "internet")."""
    ((kind, body),) = list(_walk(document))
    where = f"{DocumentType(kind).name} (FFD code {ffd})"
    present = {tag for tag, _ in _walk(body)}
    wanted = set(MANDATORY[kind, ffd])
    for mode in modes:
        wanted |= _BY_MODE[mode].get(kind, set())
    problems = [f"{where}: lacks {sorted(wanted - present)}"] if wanted - present else []
    problems += _check_lengths(body, where)
    problems += _missing_members(body, ffd, where)
    absent = {1290} if ffd == V105 else ABSENT.get((kind, ffd), set())
    extra = _all_tags(body) & absent
    if extra:
        problems.append(f"{where}: carries {sorted(extra)}, which FFD code {ffd} does not have")
    return problems


def _lifecycle(model: RegisterModel, clock: ManualClock, *, contact: bool = False) -> None:
    """One of each document the register forms: shift open, a receipt, corrections (with and
    without a basis from the host), a state report, shift close, re-registration, FN close."""

    def tick() -> None:
        clock.advance(dt.timedelta(minutes=1))

    tick()
    model.open_shift([])
    tick()
    model.open_receipt(0)
    model.add_item(Item("Товар", 10_000, Decimal(1), 10_000, VAT20, 1_667))
    if contact:  # a fiscal-only register sends the receipt: it needs the buyer's contact
        model.add_receipt_tags([(1008, "buyer@example.org")])
    model.close_receipt(Payments(cash=10_000))
    tick()
    model.correction(1, 500, [])  # an old host: no kind, no basis
    tick()
    basis = [(1178, dt.datetime(2026, 10, 30)), (1179, "12-34/5")]
    model.correction(3, 700, [(1173, 1), (1174, basis)])  # by order, with the order's number
    tick()
    model.state_report([])
    tick()
    model.close_shift([])
    tick()
    current = model.fn.state.registration
    assert current is not None
    changed = Registration(**{**_fields(current), "tax_systems": 0x01})
    model.reregister(changed, reasons=0x80)  # the tax systems changed
    tick()
    model.close_fn()


def _fields(registration: Registration) -> dict[str, object]:
    return {name: getattr(registration, name) for name in registration.__slots__}


@pytest.mark.parametrize("fiscal_only", [False, True], ids=["printer", "fiscal-only"])
@pytest.mark.parametrize(("ffd", "code"), [("1.05", V105), ("1.2", V12)])
def test_every_document_carries_its_mandatory_tags(
    tmp_path: Path, ffd: str, code: int, fiscal_only: bool
) -> None:
    """Every document type of FFD 1.05 and 1.2, for a register with a printer and for a
    fiscal-only one (automatic and Internet-only modes)."""
    clock = ManualClock(START)
    model = open_model(tmp_path / "kkt", ffd=ffd, clock=clock, fiscal_only=fiscal_only)
    modes = ("automatic", "internet") if fiscal_only else ()
    try:
        _lifecycle(model, clock, contact=fiscal_only)
        records = [model.fn.record(n) for n in range(1, model.fn.state.last_number + 1)]
        kinds = {record.kind for record in records}
        assert kinds == {int(kind) for kind, version in MANDATORY if version == code}
        problems = [p for record in records for p in problems_of(record.tlv, code, modes)]
        assert problems == []
        assert model.verify().ok
    finally:
        model.close()


def test_the_check_finds_what_the_issue_found() -> None:
    """The validator above rejects the documents of the issue: a 10-byte 1017, a 1133 of bare
    1201s, a shift close without its flags, a correction with only 1179 in its basis."""
    from kkt.protocols.ffd import encode_tlv

    common: list[tuple[int, object]] = [
        (1209, V105),
        (1018, "7707083893  "),
        (1012, START),
        (1037, "0000000001012345    "),
        (1040, 5),
        (1041, "9999078900000001"),
        (1077, b"\x00" * 6),
    ]
    correction = encode_tlv(
        [
            (
                31,
                [
                    *common,
                    (1042, 1),
                    (1038, 1),
                    (1054, 1),
                    (1020, 100),
                    (1173, 0),
                    (1055, 1),
                    (1021, "Кассир"),
                    (1174, [(1179, "1")]),
                ],
            )
        ]
    )
    assert problems_of(correction, V105) == [
        "CORRECTION_RECEIPT (FFD code 2)/1174: lacks [1177, 1178]"
    ]
    close = encode_tlv([(5, [*common, (1038, 1), (1118, 0), (1111, 1), (1097, 0)])])
    assert problems_of(close, V105) == [
        "SHIFT_CLOSE (FFD code 2): lacks [1050, 1051, 1052, 1053, 1098]"
    ]
    registration = [*common, (1017, "7728168971")]
    found = problems_of(encode_tlv([(1, registration)]), V105)
    assert "REGISTRATION (FFD code 2): tag 1017 is 10 bytes, the FFD says 12" in found
    counters = [(1133, [(1144, 1), (1201, 100)])]
    found = problems_of(encode_tlv([(5, [*common, (1194, counters)])]), V12)
    assert "SHIFT_CLOSE (FFD code 4)/1194/1133: lacks [1145, 1146, 1232, 1233]" in found


HOST_SETTINGS = {
    "shtrih": ShtrihHostSettings(ack=0.5, quiet=0.05, probe=0.2),
    "atol": AtolHostSettings(packet=0.5),
}
OPENERS = {"shtrih": open_shtrih, "atol": open_atol}


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
@pytest.mark.parametrize(("ffd", "code"), [("1.05", V105), ("1.2", V12)])
def test_the_driver_sends_the_correction_basis(
    tmp_path: Path, protocol: str, ffd: str, code: int
) -> None:
    """Through each vendor's protocol, the driver's correction carries 1173 and the 1174 its FFD
    version asks for: the basis given, or the defaults of an old caller (``reason`` only)."""
    state = tmp_path / "kkt"
    open_model(state, ffd=ffd).close()  # a register registered in this FFD version
    register = kkt.connect(f"emulator:{state}", settings=HOST_SETTINGS[protocol], protocol=protocol)
    try:
        register.open_shift()
        by_order = CorrectionBasis(by_order=True, settled_on=dt.date(2026, 10, 30), number="7/1")
        ordered = register.correction(Operation.BUY, 700, basis=by_order)
        old_style = register.correction(Operation.SELL, 300, reason="акт 5")
        register.close_shift()
    finally:
        register.close()
    device = OPENERS[protocol](state)
    try:
        documents = {n: device.fn.record(n).tlv for n in range(1, device.fn.state.last_number + 1)}
        assert [p for tlv in documents.values() for p in problems_of(tlv, code)] == []
        [(_, ordered_body)] = decode_tlv(documents[ordered.document_number])
        [(_, old_body)] = decode_tlv(documents[old_style.document_number])
    finally:
        device.close()
    assert find(ordered_body, 1173) == 1 and find(old_body, 1173) == 0
    basis, old_basis = find(ordered_body, 1174), find(old_body, 1174)
    assert isinstance(basis, list) and isinstance(old_basis, list)
    assert find(basis, 1178) == dt.datetime(2026, 10, 30)
    assert find(basis, 1179) == "7/1" and find(old_basis, 1179) == "акт 5"
    assert find(old_basis, 1178) == dt.datetime.combine(dt.date.today(), dt.time())
    if code == V105:
        assert (find(basis, 1177), find(old_basis, 1177)) == ("по предписанию", "самостоятельно")


def test_a_correction_by_order_without_its_number_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(kkt.ReceiptRejected, match="order's number"):
        CorrectionBasis(by_order=True).tags("1.2", dt.date(2026, 11, 2))
    with pytest.raises(kkt.ReceiptRejected, match="at most 32"):
        CorrectionBasis(number="x" * 33).check()
    day = dt.datetime(2026, 11, 2)
    assert CorrectionBasis().tags("1.2", day.date()) == [(1173, 0), (1174, [(1178, day)])]
    assert CorrectionBasis().tags("1.05", day.date()) == [
        (1173, 0),
        (1174, [(1177, "самостоятельно"), (1178, day), (1179, "б/н")]),
    ]


def test_the_register_refuses_a_correction_by_order_without_its_number(tmp_path: Path) -> None:
    clock = ManualClock(START)
    model = open_model(tmp_path / "kkt", clock=clock)
    try:
        clock.advance(dt.timedelta(minutes=1))
        model.open_shift([])
        before = model.fn.state.last_number
        with pytest.raises(Refusal, match="order's number"):
            model.correction(1, 100, [(1173, 1), (1174, [(1178, START)])])
        assert model.fn.state.last_number == before
    finally:
        model.close()


def test_an_archive_of_the_old_shape_still_opens_verifies_and_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documents formed before this change (1133 with bare 1201s, shift close without its zero
    flags) stay as they were signed: the state directory reopens, verifies, goes on, and the
    driver reads the old documents."""
    from kkt.emulator.fn import model as fn_model

    def old_counters(counters: object) -> list[tuple[int, object]]:
        return [(1134, 0), (1133, [(1144, 0), *((1201, 0) for _ in range(4))])]

    state = tmp_path / "kkt"
    clock = ManualClock(START)
    with monkeypatch.context() as patch:
        patch.setattr(fn_model, "_counter_tlv", old_counters)
        model = open_model(state, clock=clock)
        clock.advance(dt.timedelta(minutes=1))
        model.open_shift([])
        clock.advance(dt.timedelta(minutes=1))
        model.close_shift([])
        model.close()
    old_close = 3
    model = open_model(state, clock=clock)
    try:
        assert model.verify().ok
        clock.advance(dt.timedelta(minutes=1))
        model.open_shift([])
        assert model.verify().ok and model.fn.state.last_number == 4
    finally:
        model.close()
    register = kkt.connect(f"emulator:{state}", settings=HOST_SETTINGS["shtrih"])
    try:
        old = register.document(old_close)
        assert old.type == DocumentType.SHIFT_CLOSE
        counters = find(old.tlv, 1194)
        assert isinstance(counters, list)
        corrections = find(counters, 1133)
        assert isinstance(corrections, list) and find_all(corrections, 1201) == [0] * 4
    finally:
        register.close()
