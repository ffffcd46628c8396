"""Reading each receipt's document back (`kkt.verify`, ``connect(..., verify=True)``).

The damage the closing answer cannot show -- FF45 damaged past Shtrih's XOR checksum in a tax sum
or in the split of the payments (test_double_hunt, test_review_marking: strict xfails without
verifying) -- is caught by the read-back: `DamagedClosing`, the receipt in the FN once, never
"done", never sold again.  Over the virtual-time rig of test_double_hunt, and by hand for the
comparison's rules.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from kkt.protocols.ffd import DocumentType
from kkt.tools.cli import main

import kkt
from kkt.errors import TransportError
from kkt.results import Document
from kkt.verify import document_differences

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
        return Document(
            document.number,
            document.type,
            document.when,
            document.fiscal_sign,
            document.ofd_confirmed,
            tlv,  # type: ignore[arg-type]
        )

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
    # --json keeps ATOL's fiscalParams shape: the check is in the exit status and the text
    assert main([*base, "sell", str(EXAMPLE), "--verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fiscalDocumentNumber"] == 5
