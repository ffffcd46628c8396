"""Reading each receipt's and correction's document back (`kkt.verify`, ``connect(...,
verify=True)``).

The damage the closing answer cannot show -- FF45 damaged past Shtrih's XOR checksum in a tax sum
or in the split of the payments (test_double_hunt, test_review_marking: strict xfails without
verifying), FF4A so damaged in a correction's -- is caught by the read-back: `DamagedClosing`,
the receipt (the correction) in the FN once, never "done", never made again.  Over the
virtual-time rig of test_double_hunt, on the emulated vendors, and by hand for the comparison's
rules.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from kkt.emulator.state import open_model
from kkt.protocols.ffd import DocumentType
from kkt.tools.cli import main

import kkt
from kkt.correction import CorrectionBasis
from kkt.errors import TransportError
from kkt.results import Document
from kkt.verify import document_differences, expect_correction

from .test_double_hunt import (
    CLOSE,
    PAYMENTS,
    TAXES,
    Wire,
    clean,
    damage_once,
    fn_receipt,
    receipt_for,
    receipts_by_total,
)

__all__ = ["clean"]  # a fixture, used by its name


def verifying(clean: tuple[Wire, kkt.Register]) -> tuple[Wire, kkt.Register]:
    wire, register = clean
    register.verify = True
    return wire, register


def test_a_clean_sale_reads_back_as_sold(clean: tuple[Wire, kkt.Register]) -> None:
    wire, register = verifying(clean)
    sold = register.sell(receipt_for(10_000, items=3))
    assert sold.verified is True
    assert receipts_by_total(wire.register)[10_000] == [sold.document_number]


def test_without_verifying_nothing_is_read_back(clean: tuple[Wire, kkt.Register]) -> None:
    _, register = clean
    assert register.sell(receipt_for(10_000)).verified is False


def test_a_tax_sum_damaged_past_the_checksum_is_damaged_closing(
    clean: tuple[Wire, kkt.Register],
) -> None:
    """test_double_hunt's xfail, verifying: VAT 10 % of 1 kopeck in a receipt of VAT 20 %."""
    wire, register = verifying(clean)
    register.sell(receipt_for(9_000))
    wire.script.up = damage_once(CLOSE, {TAXES + 5: 0x01})  # vat10's low byte
    with pytest.raises(kkt.DamagedClosing, match=r"VAT total \(1103\) 1 where 0") as caught:
        register.sell(receipt_for(10_000))
    assert "IS fiscal" in str(caught.value) and "Do not sell it again" in str(caught.value)
    assert len(receipts_by_total(wire.register)[10_000]) == 1


def test_payments_moved_between_kinds_are_damaged_closing(
    clean: tuple[Wire, kkt.Register],
) -> None:
    """test_review_marking's xfail, verifying: 16 kopecks moved from cash to electronic, the
    sum paid and the change unchanged."""
    wire, register = verifying(clean)
    register.sell(receipt_for(9_000))
    wire.script.up = damage_once(CLOSE, {PAYMENTS: 0x10, PAYMENTS + 5: 0x10})
    with pytest.raises(kkt.DamagedClosing, match="payments"):
        register.sell(receipt_for(10_000))
    (number,) = receipts_by_total(wire.register)[10_000]
    assert fn_receipt(wire, number).payments == kkt.Payments(cash=9_984, electronic=16)


def test_a_damaged_keyed_sale_is_journalled_damaged_and_never_sold_again(
    clean: tuple[Wire, kkt.Register], tmp_path: Path
) -> None:
    """The key is journalled with the verdict; the retry the caller makes says so again -- one
    document, never "done"."""
    wire, register = verifying(clean)
    register.journal = kkt.journal.Journal(tmp_path / "journal")
    try:
        register.sell(receipt_for(9_000), key="a")
        wire.script.up = damage_once(CLOSE, {TAXES + 5: 0x01})
        for _ in range(2):
            with pytest.raises(kkt.DamagedClosing):
                register.sell(receipt_for(10_000), key="b")
        entry = register.journal.get("b")  # done, with the verdict: never sold again
        assert entry is not None and entry.state == "done" and entry.result
        assert "VAT total (1103)" in entry.result["damaged"]
    finally:
        register.journal.close()
    assert len(receipts_by_total(wire.register)[10_000]) == 1


def test_a_document_that_cannot_be_read_is_no_done(
    clean: tuple[Wire, kkt.Register], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Asked to verify, the driver says done only of what it read back: a document the line
    will not carry is `OutcomeUnknown` naming it (fiscal), the key pending; the retry with the
    key, the line mended, reads it and says done -- one document."""
    wire, register = verifying(clean)
    register.journal = kkt.journal.Journal(tmp_path / "journal")
    reading = register.device.read_document

    def unreadable(number: int) -> Document:
        raise TransportError("the line keeps spoiling long answers")

    try:
        monkeypatch.setattr(register.device, "read_document", unreadable)
        with pytest.raises(kkt.OutcomeUnknown, match="IS fiscal: document") as caught:
            register.sell(receipt_for(10_000), key="k")
        assert not isinstance(caught.value, kkt.DamagedClosing)
        entry = register.journal.get("k")
        assert entry is not None and entry.state == "pending"
        monkeypatch.setattr(register.device, "read_document", reading)
        sold = register.sell(receipt_for(10_000), key="k")
        assert sold.verified and sold.replayed
    finally:
        register.journal.close()
    assert receipts_by_total(wire.register)[10_000] == [sold.document_number]


def test_a_reading_damaged_on_the_line_is_no_verdict(
    clean: tuple[Wire, kkt.Register], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The document as sold, its first reading damaged past the checksum (a VAT total off):
    the second reading disagrees, so nothing is said of the document -- `OutcomeUnknown`, never
    a `DamagedClosing` that a journal would keep."""
    wire, register = verifying(clean)
    reading = register.device.read_document
    readings: list[int] = []

    def once_damaged(number: int) -> Document:
        document = reading(number)
        readings.append(number)
        if len(readings) > 1:
            return document
        tlv = [(tag, value + 1024 if tag == 1102 else value) for tag, value in document.tlv]
        return replace(document, tlv=tlv)

    monkeypatch.setattr(register.device, "read_document", once_damaged)
    with pytest.raises(kkt.OutcomeUnknown, match="a second reading disagreed") as caught:
        register.sell(receipt_for(10_000))
    assert not isinstance(caught.value, kkt.DamagedClosing)
    assert len(readings) == 2
    assert len(receipts_by_total(wire.register)[10_000]) == 1


def test_a_damaged_verdict_stands_for_a_retry_that_does_not_verify(
    clean: tuple[Wire, kkt.Register], tmp_path: Path
) -> None:
    wire, register = verifying(clean)
    register.journal = kkt.journal.Journal(tmp_path / "journal")
    try:
        register.sell(receipt_for(9_000), key="a")
        wire.script.up = damage_once(CLOSE, {TAXES + 5: 0x01})
        with pytest.raises(kkt.DamagedClosing):
            register.sell(receipt_for(10_000), key="b")
        register.verify = False
        with pytest.raises(kkt.DamagedClosing, match=r"VAT total \(1103\)"):
            register.sell(receipt_for(10_000), key="b")
    finally:
        register.journal.close()
    assert len(receipts_by_total(wire.register)[10_000]) == 1


# -- the comparison's rules, by hand ------------------------------------------------------------

WHEN = dt.datetime(2026, 12, 3, 10, 0)
BASKET = kkt.Receipt(
    (
        kkt.Item("Кофе", 19_900, Decimal(2), kkt.Vat.VAT20),  # VAT 6633.33 -> 6633
        kkt.Item("Булка", 4_550, Decimal(3), kkt.Vat.VAT10),  # 13650: VAT 1240.90 -> 1241
        kkt.Item("Вода", 7_000, Decimal("1.5"), kkt.Vat.NONE),  # 10500
    ),
    kkt.Payments(cash=70_000, electronic=5_000),  # total 63950: change 11050 from the cash
)
AS_SOLD = [
    (1054, 1),
    (1020, 63_950),
    (1031, 58_950),
    (1081, 5_000),
    (1055, 1),
    (1102, 6_633),
    (1103, 1_241),
    (1105, 10_500),
]


def document(tlv: list[tuple[int, object]], kind: int = DocumentType.RECEIPT) -> Document:
    return Document(7, kind, WHEN, 123_456, False, tlv)  # type: ignore[arg-type]


def result() -> kkt.FiscalResult:
    return kkt.FiscalResult(7, 123_456, "9999078900012345", 1, 3, WHEN, 63_950, 1, "")


def differences(tlv: list[tuple[int, object]], kind: int = DocumentType.RECEIPT) -> list[str]:
    return list(document_differences(document(tlv, kind), result(), BASKET))


def replaced(tag: int, value: object) -> list[tuple[int, object]]:
    return [(t, value if t == tag else v) for t, v in AS_SOLD]


def test_the_document_as_sold_agrees() -> None:
    assert differences(AS_SOLD) == []


@pytest.mark.parametrize("vat", [6_632, 6_634])
def test_a_vat_total_rounded_otherwise_by_a_kopeck_agrees(vat: int) -> None:
    """A register may round the rate's sum rather than each item: within a kopeck per item."""
    assert differences(replaced(1102, vat)) == []


@pytest.mark.parametrize(
    ("tag", "value", "named"),
    [
        (1102, 6_635, "VAT total (1102)"),  # two kopecks off for one item at the rate
        (1103, 1, "VAT total (1103)"),
        (1105, 10_501, "turnover without VAT (1105)"),  # turnovers are exact
        (1020, 63_951, "total (1020)"),
        (1031, 58_934, "payments"),
        (1055, 2, "tax system (1055)"),
        (1054, 2, "operation (1054)"),
    ],
)
def test_a_tag_off_is_named(tag: int, value: int, named: str) -> None:
    found = differences(replaced(tag, value))
    assert len(found) == 1 and found[0].startswith(named), found


def test_a_vat_total_of_a_rate_not_sold_is_a_difference() -> None:
    assert differences([*AS_SOLD, (1106, 3)]) == ["VAT total (1106) 3 where 0 was sold"]


def test_another_sign_time_or_type_is_a_difference() -> None:
    other = Document(7, DocumentType.RECEIPT, WHEN, 654_321, False, AS_SOLD)  # type: ignore[arg-type]
    assert [d.split(" ")[1] for d in document_differences(other, result(), BASKET)] == ["sign"]
    later = Document(7, DocumentType.RECEIPT, WHEN.replace(minute=1), 123_456, False, AS_SOLD)  # type: ignore[arg-type]
    assert next(iter(document_differences(later, result(), BASKET))).startswith("time")
    assert differences(AS_SOLD, kind=DocumentType.SHIFT_OPEN) == [
        f"it is a document of type {int(DocumentType.SHIFT_OPEN)}, not a receipt"
    ]


# -- the command line: `kkt sell --verify`, both vendors ------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "receipt.json"


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
def test_kkt_sell_verify_reads_the_document_back(
    protocol: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--protocol", protocol, "--url", f"emulator:{tmp_path / 'register'}"]
    assert main([*base, "shift", "open"]) == 0
    assert main([*base, "sell", str(EXAMPLE), "--verify"]) == 0
    assert "read back as sold" in capsys.readouterr().out
    assert main([*base, "sell", str(EXAMPLE)]) == 0
    assert "read back" not in capsys.readouterr().out
    # --json: ATOL's fiscalParams shape, with "verified" beside it
    assert main([*base, "sell", str(EXAMPLE), "--verify", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["fiscalDocumentNumber"] == 5 and printed["verified"] is True


# -- corrections: the same read-back ---------------------------------------------------------------

ELECTRONIC = kkt.Payments(cash=700, electronic=300)  # on Shtrih: FF4A, not FF36
# FF4A's payments: after its code (2), password (4), kind (1), operation (1) and total (5 bytes).
FF4A, CORRECTION_PAYMENTS = b"\xff\x4a", 2 + 4 + 1 + 1 + 5
# 16 kopecks from cash to electronic: bit 4 of cash's low byte (700 = 0x2BC) set, of
# electronic's (300 = 0x12C) clear -- the sum unchanged, the checksum too.
MOVE_16 = {CORRECTION_PAYMENTS: 0x10, CORRECTION_PAYMENTS + 5: 0x10}


def corrections(wire: Wire) -> list[int]:
    records = wire.register.fn._store.records()
    return [r.number for r in records if r.kind == DocumentType.CORRECTION_RECEIPT]


@pytest.mark.parametrize("ffd", ["1.2", "1.05"])
@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
def test_sound_corrections_read_back_as_made(protocol: str, ffd: str, tmp_path: Path) -> None:
    """In cash (Shtrih FF36) and paid otherwise (FF4A), on the user's initiative and by order
    with its date and number, a sale's and a purchase's, FFD 1.2 and 1.05 (1174 with 1177):
    each verified, none damaged."""
    order = CorrectionBasis(by_order=True, settled_on=dt.date(2026, 11, 30), number="7/1")
    open_model(tmp_path / "register", ffd=ffd).close()  # registered in that FFD version
    with kkt.connect(f"emulator:{tmp_path / 'register'}", protocol=protocol, verify=True) as reg:
        assert reg.registration().ffd == ffd
        reg.open_shift()
        made = [
            reg.correction(kkt.Operation.SELL, 1_000, reason="act 1"),
            reg.correction(kkt.Operation.SELL, 1_000, payments=ELECTRONIC, basis=order),
            reg.correction(kkt.Operation.BUY, 2_500, payments=kkt.Payments(electronic=2_500)),
        ]
        assert [m.verified for m in made] == [True, True, True]
        reg.verify = False
        assert reg.correction(kkt.Operation.SELL, 1_000).verified is False


def test_a_correction_damaged_past_the_checksum_is_damaged_closing(
    clean: tuple[Wire, kkt.Register],
) -> None:
    """FF4A with 16 kopecks moved from cash to electronic, the sum and the checksum unchanged:
    the FN holds it (fiscal) -- read back, it is `DamagedClosing`, made once."""
    wire, register = verifying(clean)
    wire.script.up = damage_once(FF4A, MOVE_16)
    with pytest.raises(kkt.DamagedClosing, match="payments") as caught:
        register.correction(kkt.Operation.SELL, 1_000, payments=ELECTRONIC)
    text = str(caught.value)
    assert "the correction IS fiscal" in text and "Do not make it again" in text
    assert "'cash': 684, 'electronic': 316" in text
    (number,) = corrections(wire)
    assert fn_receipt(wire, number).payments == kkt.Payments(cash=684, electronic=316)


def test_without_verifying_the_damaged_correction_is_done(
    clean: tuple[Wire, kkt.Register],
) -> None:
    """What verify is for: the same damage, not read back, reads "fiscalized"."""
    wire, register = clean
    wire.script.up = damage_once(FF4A, MOVE_16)
    made = register.correction(kkt.Operation.SELL, 1_000, payments=ELECTRONIC)
    assert made.verified is False and corrections(wire) == [made.document_number]


def _tampered(
    register: kkt.Register, monkeypatch: pytest.MonkeyPatch, tag: int, value: object
) -> list[int]:
    """Every reading of a correction's document holds ``value`` for ``tag`` (the FN's document
    so); the numbers read."""
    reading = register.device.read_document
    read: list[int] = []

    def tampered(number: int) -> Document:
        document = reading(number)
        if document.type != DocumentType.CORRECTION_RECEIPT:
            return document
        read.append(number)
        tlv = [(t, value if t == tag else v) for t, v in document.tlv]
        return replace(document, tlv=tlv)

    monkeypatch.setattr(register.device, "read_document", tampered)
    return read


@pytest.mark.parametrize(
    ("tag", "value", "named"),
    [
        (1173, 1, "correction type (1173) 1 where 0 was made"),
        (1174, [(1178, dt.datetime(2026, 11, 30)), (1179, "8/1")], "correction basis (1174: 1179)"),
        (1105, 999, "turnover without VAT (1105) 999 where 1000 was made"),
    ],
)
def test_an_atol_correction_that_reads_back_otherwise_is_damaged_closing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tag: int, value: object, named: str
) -> None:
    """ATOL's correction read back with a tag of its own other than sent (read twice, alike):
    `DamagedClosing` naming it, the correction in the FN once."""
    basis = CorrectionBasis(settled_on=dt.date(2026, 11, 30), number="7/1")
    with kkt.connect(f"emulator:{tmp_path / 'register'}", protocol="atol", verify=True) as reg:
        reg.open_shift()
        last = reg.fn_info().last_document
        read = _tampered(reg, monkeypatch, tag, value)
        with pytest.raises(kkt.DamagedClosing, match=r"the correction IS fiscal") as caught:
            reg.correction(kkt.Operation.SELL, 1_000, payments=ELECTRONIC, basis=basis)
        assert named in str(caught.value)
        assert read == [last + 1, last + 1]  # read twice, alike: a verdict
        assert reg.fn_info().last_document == last + 1


def test_a_damaged_keyed_correction_is_journalled_and_never_made_again(
    clean: tuple[Wire, kkt.Register], tmp_path: Path
) -> None:
    """The key is journalled done with the verdict; every retry -- verifying or not -- raises it
    again, and nothing is sent: one correction in the FN."""
    wire, register = verifying(clean)
    register.journal = kkt.journal.Journal(tmp_path / "journal")
    try:
        wire.script.up = damage_once(FF4A, MOVE_16)
        with pytest.raises(kkt.DamagedClosing):
            register.correction(kkt.Operation.SELL, 1_000, payments=ELECTRONIC, key="c")
        entry = register.journal.get("c")
        assert entry is not None and entry.state == "done" and entry.result
        assert "payments" in entry.result["damaged"]
        with pytest.raises(kkt.DamagedClosing, match="payments"):
            register.correction(kkt.Operation.SELL, 1_000, payments=ELECTRONIC, key="c")
        register.verify = False
        with pytest.raises(kkt.DamagedClosing, match="payments"):
            register.correction(kkt.Operation.SELL, 1_000, payments=ELECTRONIC, key="c")
    finally:
        register.journal.close()
    assert len(corrections(wire)) == 1


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
def test_a_correction_that_cannot_be_read_is_no_done(
    protocol: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A correction's document the line will not carry: `OutcomeUnknown` naming it (fiscal),
    not `DamagedClosing`, the key pending; the retry with the key, the line mended, settles it
    from the FN and reads it back: done, verified, replayed -- one correction."""
    url = f"emulator:{tmp_path / 'register'}"
    with kkt.connect(url, protocol=protocol, verify=True, journal=tmp_path / "journal") as reg:
        reg.open_shift()
        last = reg.fn_info().last_document
        reading = reg.device.read_document

        def unreadable(number: int) -> Document:
            if number <= last:  # the registration: short enough
                return reading(number)
            raise TransportError("the line keeps spoiling long answers")

        monkeypatch.setattr(reg.device, "read_document", unreadable)
        with pytest.raises(kkt.OutcomeUnknown, match="the correction IS fiscal") as caught:
            reg.correction(kkt.Operation.SELL, 1_000, payments=ELECTRONIC, key="k")
        assert not isinstance(caught.value, kkt.DamagedClosing)
        assert "Do not make it again" in str(caught.value)
        entry = reg.journal.get("k")  # type: ignore[union-attr]
        assert entry is not None and entry.state == "pending"
        monkeypatch.setattr(reg.device, "read_document", reading)
        made = reg.correction(kkt.Operation.SELL, 1_000, payments=ELECTRONIC, key="k")
        assert made.verified and made.replayed and made.document_number == last + 1
        assert reg.fn_info().last_document == last + 1


def test_a_pending_correction_settled_on_another_day_is_not_damaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A basis without its own date is "today" (1178) when the correction is made; its key
    settled on a later day must not compare the document with that day's date."""
    url = f"emulator:{tmp_path / 'register'}"
    with kkt.connect(url, protocol="shtrih", verify=True, journal=tmp_path / "journal") as reg:
        reg.open_shift()
        last = reg.fn_info().last_document
        reading = reg.device.read_document

        def unreadable(number: int) -> Document:
            if number <= last:
                return reading(number)
            raise TransportError("no answer")

        monkeypatch.setattr(reg.device, "read_document", unreadable)
        with pytest.raises(kkt.OutcomeUnknown):
            reg.correction(kkt.Operation.SELL, 1_000, payments=ELECTRONIC, key="k")
        monkeypatch.setattr(reg.device, "read_document", reading)

        tomorrow = dt.date.today() + dt.timedelta(days=1)

        class Tomorrow(dt.date):
            @classmethod
            def today(cls) -> Tomorrow:
                return cls(tomorrow.year, tomorrow.month, tomorrow.day)

        # kkt.register's own ``dt`` only: the datetime module stays as it is for everyone else
        on_another_day = SimpleNamespace(**{**vars(dt), "date": Tomorrow})
        monkeypatch.setattr("kkt.register.dt", on_another_day)
        made = reg.correction(kkt.Operation.SELL, 1_000, payments=ELECTRONIC, key="k")
        assert made.verified and made.replayed


# -- a correction's comparison, by hand ---------------------------------------------------------

BY_ORDER = [(1173, 1), (1174, [(1178, dt.datetime(2026, 11, 30)), (1179, "7/1")])]
MADE = expect_correction(kkt.Operation.SELL, 1_000, ELECTRONIC, BY_ORDER, frozenset({1, 4}))
CORRECTION = [(1054, 1), (1020, 1_000), (1031, 700), (1081, 300), (1105, 1_000), (1055, 4)]


def correction_differences(tlv: list[tuple[int, object]]) -> list[str]:
    made = kkt.FiscalResult(7, 123_456, "9999078900012345", 1, 3, WHEN, 1_000, 1, "")
    held = document([*tlv, *BY_ORDER], kind=DocumentType.CORRECTION_RECEIPT)
    return list(document_differences(held, made, MADE))


def test_a_correction_as_made_agrees() -> None:
    assert correction_differences(CORRECTION) == []
    without_taxes = [(t, v) for t, v in CORRECTION if t not in (1105, 1055)]
    assert correction_differences(without_taxes) == []  # the register's to form: not held against


@pytest.mark.parametrize(
    ("tlv", "named"),
    [
        ([*CORRECTION, (1102, 167)], "VAT total (1102) 167 where 0 was made"),
        ([(t, 2 if t == 1055 else v) for t, v in CORRECTION], "tax system (1055) 2 where [1, 4]"),
        ([(t, 690 if t == 1031 else v) for t, v in CORRECTION], "payments"),
        ([(t, 3 if t == 1054 else v) for t, v in CORRECTION], "operation (1054) 3 where 1"),
    ],
)
def test_a_correction_tag_off_is_named(tlv: list[tuple[int, object]], named: str) -> None:
    found = correction_differences(tlv)
    assert len(found) == 1 and found[0].startswith(named), found


def test_a_correction_basis_lost_or_a_receipt_in_its_place_is_a_difference() -> None:
    made = kkt.FiscalResult(7, 123_456, "9999078900012345", 1, 3, WHEN, 1_000, 1, "")
    held = document([*CORRECTION, (1173, 1)], kind=DocumentType.CORRECTION_RECEIPT)
    assert list(document_differences(held, made, MADE)) == [
        "correction basis (1174: 1178) None where datetime.datetime(2026, 11, 30, 0, 0) was made",
        "correction basis (1174: 1179) None where '7/1' was made",
    ]
    receipt = document([*CORRECTION, *BY_ORDER])
    assert list(document_differences(receipt, made, MADE)) == [
        f"it is a document of type {int(DocumentType.RECEIPT)}, not a correction receipt"
    ]


# -- the command line: `kkt correction --verify`, both vendors -----------------------------------


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
def test_kkt_correction_verify_reads_the_document_back(
    protocol: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--protocol", protocol, "--url", f"emulator:{tmp_path / 'register'}"]
    task = tmp_path / "correction.json"
    task.write_text(
        json.dumps(
            {
                "type": "sellCorrection",
                "correctionType": "instruction",
                "correctionBaseDate": "2026.11.30",
                "correctionBaseNumber": "7/1",
                "payments": [{"type": "cash", "sum": 100.5}],
            }
        )
    )
    assert main([*base, "shift", "open"]) == 0
    assert main([*base, "correction", str(task), "--verify"]) == 0
    assert "correction receipt fiscalized, read back as made" in capsys.readouterr().out
    assert main([*base, "correction", str(task)]) == 0
    assert "read back" not in capsys.readouterr().out
    assert main([*base, "correction", str(task), "--verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fiscalDocumentNumber"] == 5
