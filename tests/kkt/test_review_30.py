"""Session 30's second read (task RV): holes hunted in this session's safety changes.

Each test is a deterministic scenario over real components (the virtual-time rig of
test_double_hunt, the in-process emulator, BlockLine of test_document_reading).  The holes it
found (an item damaged past the checksum sold again by a keyed retry; an open ATOL return taken
for a sale; a sound correction judged damaged after a re-registration) were fixed in the same
session and run as plain tests, their docstrings keeping the cause; the rest pin what was
checked and found sound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.state import open_model
from kkt.protocols.atol.commands import OpenReceipt
from kkt.protocols.atol.modes import ReceiptType
from kkt.protocols.errors import LinkError

import kkt
from kkt.errors import TransportError
from kkt.results import Document

from .test_document_reading import ANSWER_LOST, NOT_TAKEN, OK, script, sold, through
from .test_double_hunt import CLOSE, Wire, clean, once, receipt_for, receipts_by_total
from .test_driver_messages import SHTRIH_CANCEL, SHTRIH_ITEM, drop, two_items

__all__ = ["clean", "sold"]  # fixtures, used by their names

ITEM = b"\xff\x46"  # Shtrih's FF46, one item line (its name inside the payload)


def damage_name_once(name: str) -> Callable[[bytes, int], bytes]:
    """A ``Script.up`` that damages the first FF46 frame carrying ``name``: bit 0 of the name's
    2nd and 3rd bytes flipped -- one bit column, so the XOR checksum still agrees.  The item's
    price, quantity and total are untouched: the subtotal, the closing answer and the total agree;
    only the FN's document shows another name."""
    target = name.encode("cp1251")
    done: list[bool] = []

    def up(data: bytes, _count: int) -> bytes:
        if done or len(data) < 4 or data[0] != 0x02 or data[2:4] != ITEM:
            return data
        at = data.find(target)
        if at < 0:
            return data
        done.append(True)
        damaged = bytearray(data)
        damaged[at + 1] ^= 0x01
        damaged[at + 2] ^= 0x01  # the same column: the LRC is unchanged
        return bytes(damaged)

    return up


def test_an_item_damaged_past_the_checksum_and_read_back_lost_is_not_sold_again(
    clean: tuple[Wire, kkt.Register], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A verifying register, a keyed sale: FF46's name damaged past the checksum (the FN's
    receipt is "Тпгар", the total right), and the read-back that would have caught it fails on
    the line -- `OutcomeUnknown`, the key pending, as documented.  The caller's retry with the
    key settles it from the FN: `settle_pending` finds the document after ``before`` with this
    total, but its items' fingerprint is not the receipt's, so it takes it for "another sale's
    receipt", says "not formed", and the retry SELLS THE RECEIPT AGAIN: two fiscal documents
    for one sale, though the first call said "IS fiscal ... Do not sell it again"."""
    wire, register = clean
    register.verify = True
    register.journal = kkt.journal.Journal(tmp_path / "journal")
    reading = register.device.read_document

    def unreadable(number: int) -> Document:
        raise TransportError("the line keeps spoiling long answers")

    try:
        register.sell(receipt_for(9_000), key="a")
        wire.script.up = damage_name_once("Товар")
        monkeypatch.setattr(register.device, "read_document", unreadable)
        with pytest.raises(kkt.OutcomeUnknown, match="IS fiscal: document") as first:
            register.sell(receipt_for(10_000), key="b")
        assert not isinstance(first.value, kkt.DamagedClosing)
        (number,) = receipts_by_total(wire.register)[10_000]
        assert "Тпгар" in repr(reading(number).tlv)  # the damage is in the FN
        monkeypatch.setattr(register.device, "read_document", reading)
        outcome: object
        try:
            outcome = register.sell(receipt_for(10_000), key="b")
        except kkt.KktError as error:
            outcome = error
    finally:
        register.journal.close()
    # Whatever the retry says (DamagedClosing is the fitting verdict), it must not sell again.
    assert receipts_by_total(wire.register)[10_000] == [number], outcome


def test_an_item_damaged_past_the_checksum_and_the_closing_answer_lost_is_never_failed(
    clean: tuple[Wire, kkt.Register],
) -> None:
    """Not verifying, no key: FF46's name damaged past the checksum, then the closing answer
    lost after the register executed FF45.  The driver settles from the FN: the one document
    formed since ``before`` has this total but other items.  Whatever it says, it must never
    say "failed, nothing charged" of a receipt that IS in the FN (the caller would sell it
    again)."""
    wire, register = clean
    register.sell(receipt_for(9_000))
    wire.script.up = damage_name_once("Товар")
    wire.script.lose = once(lambda command: command.startswith(CLOSE))
    outcome: object
    try:
        outcome = register.sell(receipt_for(10_000))
    except kkt.KktError as error:
        outcome = error
    held = receipts_by_total(wire.register).get(10_000, [])
    assert len(held) == 1, outcome
    assert "Тпгар" in repr(register.device.read_document(held[0]).tlv)  # the damage is in the FN
    assert not isinstance(outcome, kkt.NotFiscalized), outcome
    assert isinstance(outcome, kkt.OutcomeUnknown | kkt.FiscalResult), outcome


def test_a_keyed_retry_after_an_item_damaged_and_the_closing_answer_lost_does_not_sell_again(
    clean: tuple[Wire, kkt.Register], tmp_path: Path
) -> None:
    """As above, with a key: the first call says `OutcomeUnknown` ("check them before selling
    it again"), the key pending; the caller's retry with the key must not sell it again."""
    wire, register = clean
    register.journal = kkt.journal.Journal(tmp_path / "journal")
    try:
        register.sell(receipt_for(9_000), key="a")
        wire.script.up = damage_name_once("Товар")
        wire.script.lose = once(lambda command: command.startswith(CLOSE))
        with pytest.raises(kkt.OutcomeUnknown):
            register.sell(receipt_for(10_000), key="b")
        (number,) = receipts_by_total(wire.register)[10_000]
        outcome: object
        try:
            outcome = register.sell(receipt_for(10_000), key="b")
        except kkt.KktError as error:
            outcome = error
    finally:
        register.journal.close()
    assert receipts_by_total(wire.register)[10_000] == [number], outcome


# -- document reading (`Device._read_tlv_blocks`): blocks lost where the register's refusal
# -- past the end is the only witness


@pytest.mark.parametrize("where", ["first", "last"])
def test_a_lost_first_or_last_block_reads_the_document_again(sold: Any, where: str) -> None:
    """The block whose answer was lost is the first (nothing read yet) or the last (the reading
    then asks once past the end at once): both vendors' registers refuse, the document is read
    again whole -- never returned short."""
    protocol, register, number, clean = sold
    blocks = len(clean.tlv)
    fates = [ANSWER_LOST] if where == "first" else [OK] * (blocks - 1) + [ANSWER_LOST]
    line = through(register, protocol, script(*fates))
    try:
        assert register.device.read_document(number) == clean
    finally:
        register.device.commander = line.inner
    assert line.fates.count(ANSWER_LOST) == 1


def test_a_sound_receipt_whose_read_back_lost_a_block_is_verified(sold: Any) -> None:
    """Verifying, the read-back loses a block's answer: the document is read again and verified
    -- a sound receipt is never judged damaged by a block the line lost."""
    protocol, register, _number, _clean = sold
    register.verify = True
    line = through(register, protocol, script(OK, ANSWER_LOST, OK, NOT_TAKEN))
    try:
        items = (kkt.Item("Чай", 5_000, vat=kkt.Vat.VAT20), kkt.Item("Сахар", 7_000))
        result = register.sell(kkt.Receipt(items=items, payments=kkt.Payments(cash=12_000)))
    finally:
        register.device.commander = line.inner
    assert result.verified is True
    assert ANSWER_LOST in line.fates and NOT_TAKEN in line.fates


# -- a receipt left open: the cancel's retries ---------------------------------------------------


def test_a_cancel_done_with_its_answer_lost_is_not_sent_again_and_says_cancelled(
    clean: tuple[Wire, kkt.Register],
) -> None:
    """Item 2's FF46 never reaches the register; the cancel (88h) is executed and its answer
    lost (the link: "maybe executed").  The retry asks first, finds no receipt open, sends no
    second cancel -- and the error says cancelled, nothing charged, nothing left open."""
    wire, register = clean
    before = receipts_by_total(wire.register)
    drop(wire, lambda key, count: key == SHTRIH_ITEM and count > 1)
    lost: list[bytes] = []
    first = once(lambda command: command.startswith(SHTRIH_CANCEL))
    wire.script.lose = lambda command: first(command) and not lost.append(command)
    with pytest.raises(kkt.TransportError) as caught:
        register.sell(two_items())
    assert lost, "the cancel's answer was lost"
    assert "the receipt was cancelled, nothing was charged" in str(caught.value)
    assert not caught.value.left_open and not register.status().receipt_open
    assert sum(command.startswith(SHTRIH_CANCEL) for command in wire.executed) == 1
    assert receipts_by_total(wire.register) == before


# -- verify for corrections: the tax systems of the last registration report -------------------


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
def test_a_correction_after_a_reregistration_of_the_tax_systems_is_verified(
    protocol: str, tmp_path: Path
) -> None:
    """Registered for ОСН and УСН доход (1062 = 3, the emulator's own), re-registered for УСН
    доход минус расход (1062 = 4, reason 0x80 "the tax systems changed"): a correction made now
    reads back with 1055 = 4, as made -- verified, not `DamagedClosing`."""
    model = open_model(tmp_path / "register")
    try:
        current = model.fn.state.registration
        assert current is not None and current.tax_systems == 3
        model.reregister(replace(current, tax_systems=4), reasons=0x80)
    finally:
        model.close()
    url = f"emulator:{tmp_path / 'register'}"
    with kkt.connect(url, protocol=protocol, verify=True) as register:
        register.open_shift()
        outcome: object
        try:
            outcome = register.correction(kkt.Operation.SELL, 1_000, reason="act 1")
        except kkt.KktError as error:
            outcome = error
    assert isinstance(outcome, kkt.FiscalResult) and outcome.verified, outcome


# -- ATOL: a receipt found open after the opening command failed on the line ---------------------


class RefusalLostLine:
    """Passes every command; the first ATOL 92h (open a receipt) reaches the register, and its
    answer -- whatever it was -- is lost on the line ("maybe executed")."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lost = 0

    def exchange(self, payload: bytes, **options: Any) -> bytes:
        answer = bytes(self.inner.exchange(payload, **options))
        if not self.lost and payload[2:3] == b"\x92":
            self.lost += 1
            raise LinkError("the answer was lost (test)", command=payload, maybe_executed=True)
        return answer

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_atol_an_open_return_found_after_the_opening_failed_is_not_taken_for_a_sale(
    tmp_path: Path,
) -> None:
    """The one-writer rule broken: another program opened an empty sell-return receipt on the
    ATOL register (this driver believes none is open: its last receipt closed).  This sale's
    92h is refused -- a receipt is open -- and the refusal lost on the line: the driver asks the
    register what is open.  A return is not the sale's receipt: `NotFiscalized`, and no return
    fiscalized with this sale's items."""
    with kkt.connect(f"emulator:{tmp_path / 'register'}", protocol="atol") as register:
        register.open_shift()
        register.sell(receipt_for(9_000))
        device: Any = register.device
        device.raw(OpenReceipt(device.access_password, 0, int(ReceiptType.SELL_RETURN)))
        device.no_open_receipt = True  # another program's doing, on its own connection
        line = RefusalLostLine(device.commander)
        device.commander = line
        outcome: object
        try:
            outcome = register.sell(receipt_for(10_000))
        except kkt.KktError as error:
            outcome = error
        finally:
            device.commander = line.inner
        assert line.lost == 1
        last = register.device.read_document(register.device.last_document())
    assert dict(last.tlv).get(1054) != int(kkt.Operation.SELL_RETURN), outcome
    assert isinstance(outcome, kkt.NotFiscalized), outcome
