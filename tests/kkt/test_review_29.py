"""Session 29's second read of asking ahead (5e7b147) and verify (5b609f5), as a hostile reviewer.

Each hole is a deterministic test that failed on 5b609f5, its cause and the fix in its docstring;
the holes fixed since (3562972: the lease guard, the per-call ``asks_ahead``, the journalled
damage verdict) run as plain tests, as does the correction read-back (session 30).  The rest
pin what was checked and found sound.  The rig is test_double_hunt's: the whole stack over a
simulated line in virtual time.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from kkt.cloud.lease import Lease, LeaseGuard

import kkt
from kkt.errors import TransportError

from .test_double_hunt import (
    CLOSE,
    TAXES,
    Wire,
    clean,
    damage_once,
    receipt_for,
    receipts_by_total,
)

__all__ = ["clean"]  # a fixture, used by its name


def _held_lease() -> Lease:
    clock = [100.0]
    lease = Lease("r1", 600.0, clock=lambda: clock[0])
    lease.granted(100.0)
    assert lease.held()
    return lease


def test_a_lease_guarded_shtrih_session_sells_a_receipt_of_two_items(
    clean: tuple[Wire, kkt.Register],
) -> None:
    """kkt.cloud.pool wraps every connected register's commander: ``device.commander =
    LeaseGuard(device.commander, lease, grant)``.  `Device.__init__` read ``asks_ahead`` from the
    bare `ShtrihSession` (True) -- and even read now, `LeaseGuard.__getattr__` hands over the
    inner session's ``asks_ahead = True``.  So the first FF46 of a receipt of two items calls
    ``LeaseGuard.exchange(..., sync_after=True)``, whose signature has no ``sync_after``:
    ``TypeError``, not even a `KktError` -- every multi-item receipt on a Shtrih register served
    by kkt.cloud fails (the in-process emulator the cloud tests use has no ``asks_ahead``, so
    none of them sees it).  Nothing is sent, so no double; but no sale either.

    Fix (cloud/lease.py): ``LeaseGuard.exchange(self, payload, *, answer_timeout, resend=True,
    sync_after=False)`` forwarding ``sync_after=sync_after`` to the inner session only when it
    asks ahead (``**({"sync_after": True} if sync_after else {})``), and a property
    ``asks_ahead`` returning ``getattr(self.inner, "asks_ahead", False)`` explicitly.  And
    (kkt/vendors/base.py) read ``getattr(self.commander, "asks_ahead", False)`` at each exchange,
    not once in ``__init__``: the commander is replaced after connecting (documented usage), so
    a wrapper that does NOT forward (a caller's instrumentation with a plain ``__getattr__``-less
    ``exchange``) would otherwise be handed ``sync_after`` it never declared."""
    wire, register = clean
    session = register.device.commander
    register.device.commander = LeaseGuard(session, _held_lease(), 1)  # type: ignore[arg-type]
    sold = register.sell(receipt_for(10_000, items=2))
    assert receipts_by_total(wire.register)[10_000] == [sold.document_number]


class _Instrumented:
    """A caller's wrapper around the session (timing, logging): the `Commander` protocol only."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls = 0

    def exchange(self, payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes:
        self.calls += 1
        return self.inner.exchange(  # type: ignore[attr-defined, no-any-return]
            payload, answer_timeout=answer_timeout, resend=resend
        )

    def close(self) -> None:
        self.inner.close()  # type: ignore[attr-defined]


def test_a_protocol_only_wrapper_set_after_connecting_sells_two_items(
    clean: tuple[Wire, kkt.Register],
) -> None:
    """`kkt.transport.session.Commander` is the documented protocol: ``exchange(payload, *,
    answer_timeout, resend)``.  A wrapper of that shape, put on ``device.commander`` after
    connecting (as cloud/pool.py does with its own), is called with ``sync_after=True`` because
    `Device._asks_ahead` was read from the session it replaced.  Fix (kkt/vendors/base.py):
    ``ahead = getattr(self.commander, "asks_ahead", False)`` in ``_raw_exchange``, per call."""
    wire, register = clean
    wrapper = _Instrumented(register.device.commander)
    register.device.commander = wrapper  # type: ignore[assignment]
    sold = register.sell(receipt_for(10_000, items=3))
    assert receipts_by_total(wire.register)[10_000] == [sold.document_number]
    assert wrapper.calls > 0


# -- verify: a document known damaged, later reported done ----------------------------------------


def _damaged_keyed_sale(wire: Wire, register: kkt.Register, tmp_path: Path) -> None:
    """Sale "b" (10000) whose FF45 is damaged past the checksum in a tax sum; verifying, it
    raises `DamagedClosing`, and its key is journalled with that verdict."""
    register.verify = True
    register.journal = kkt.journal.Journal(tmp_path / "journal")
    register.sell(receipt_for(9_000), key="a")
    wire.script.up = damage_once(CLOSE, {TAXES + 5: 0x01})  # vat10's low byte
    with pytest.raises(kkt.DamagedClosing):
        register.sell(receipt_for(10_000), key="b")
    entry = register.journal.get("b")
    assert entry is not None and entry.state == "done" and entry.result
    assert entry.result["damaged"]


def test_a_retry_whose_read_back_fails_does_not_make_a_damaged_sale_done(
    clean: tuple[Wire, kkt.Register], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sale "b" read back damaged once (`DamagedClosing`, key pending: "never done until it is
    corrected", register.py).  The caller retries with the key, as `OutcomeUnknown` asks;
    `settle_pending` finds the document, and `_verified` reads it back -- and that read fails on
    the line (a long FF3A/FF3B answer on the same bad line that damaged FF45).  `_verified` then
    says "the closing answer stands", ``verified=False``, and the key is journalled DONE: a
    document the driver itself found damaged is now reported fiscalized as sold, and every
    later call with the key replays it as done.

    Cause: kkt/register.py ``_verified`` treats "cannot read" alike for a fresh closing (whose
    answer vouches for it) and for a pending key's document (whose only verdict so far was
    "damaged"); the verdict itself is not kept.  Fix: on the settle path (``found`` of a pending
    key) a read-back that fails raises `OutcomeUnknown` (the key stays pending) instead of
    returning ``verified=False``; better, keep the verdict: the journal entry records
    "damaged: <differences>" when `DamagedClosing` is raised, and any later call with the key
    raises `DamagedClosing` again from it, read-back or not."""
    wire, register = clean
    try:
        _damaged_keyed_sale(wire, register, tmp_path)

        def unreadable(_device: object, result: kkt.FiscalResult, _receipt: object) -> None:
            raise TransportError(f"document {result.document_number}: no answer (test)")

        monkeypatch.setattr("kkt.register.check_document", unreadable)
        with pytest.raises(kkt.DamagedClosing):  # the verdict kept, nothing read
            register.sell(receipt_for(10_000), key="b")
        entry = register.journal.get("b")  # type: ignore[union-attr]
        assert entry is not None and entry.result and entry.result["damaged"], entry
    finally:
        register.journal.close()  # type: ignore[union-attr]


def test_a_retry_without_verify_does_not_make_a_damaged_sale_done(
    clean: tuple[Wire, kkt.Register], tmp_path: Path
) -> None:
    """`kkt sell --key b --verify` said DamagedClosing ("do not sell it again; correct it");
    the same key retried without ``--verify`` (another process, the cloud's default, a script
    that dropped the flag) settles the pending key from the FN and journals it DONE -- a tax
    sum damaged past the checksum is invisible without the read-back -- so the sale the driver
    found damaged is now "fiscalized" and replays as such forever.  Fix as above: the journal
    keeps the damage verdict with the pending key (or a state of its own, "damaged"), and every
    later call with that key raises `DamagedClosing` from it whatever ``verify`` says."""
    wire, register = clean
    try:
        _damaged_keyed_sale(wire, register, tmp_path)
        register.verify = False
        with pytest.raises(kkt.DamagedClosing):
            register.sell(receipt_for(10_000), key="b")
    finally:
        register.journal.close()  # type: ignore[union-attr]
    assert len(receipts_by_total(wire.register)[10_000]) == 1


# -- asking ahead over the whole stack: found sound ------------------------------------------------

ACK_ENQ = b"\x06\x05"


def test_our_ack_lost_between_two_items_adds_each_item_once(
    clean: tuple[Wire, kkt.Register],
) -> None:
    """The first "ACK ENQ" write of a receipt of three items (item 1's ACK, item 2's sync asked
    ahead) loses its ACK: the register still holds item 1's answer (``FF 46 00``, the same bytes
    item 2's would be) and answers the ENQ with ACK and that answer.  It is confirmed and
    skipped before item 2's frame goes out: three items, one document of the whole total."""
    wire, register = clean
    lost: list[int] = []

    def up(data: bytes, count: int) -> bytes:
        if data == ACK_ENQ and not lost:
            lost.append(count)
            return data[1:]
        return data

    wire.script.up = up
    sold = register.sell(receipt_for(10_002, items=3))
    assert lost, "no ENQ was asked ahead"
    assert receipts_by_total(wire.register)[10_002] == [sold.document_number]
    items = [c for c in wire.executed if c[:2] == b"\xff\x46"]
    assert len(items) == 3, [c.hex() for c in items]


def test_the_enq_asked_ahead_and_its_nak_lost_costs_one_round(
    clean: tuple[Wire, kkt.Register],
) -> None:
    """The whole "ACK ENQ" write lost: the register holds item 1's answer and heard no ENQ;
    item 2's sync hears nothing within ``ack``, asks again on a quiet line, drains the old
    answer, and only then writes item 2.  One document, three items."""
    wire, register = clean
    lost: list[int] = []

    def up(data: bytes, count: int) -> bytes:
        if data == ACK_ENQ and not lost:
            lost.append(count)
            return b""
        return data

    wire.script.up = up
    sold = register.sell(receipt_for(10_003, items=3))
    assert lost
    assert receipts_by_total(wire.register)[10_003] == [sold.document_number]
    assert len([c for c in wire.executed if c[:2] == b"\xff\x46"]) == 3


def test_a_stray_nak_behind_an_items_answer_does_not_let_item_2_go_unexecuted(
    clean: tuple[Wire, kkt.Register],
) -> None:
    """The link-level hole (test_review_ask_ahead: a NAK read with the answer) over the whole
    stack.  Item 1's answer arrives with a stray NAK behind it in one read; the host takes the
    NAK for the reply to the ENQ it is about to write, so item 2's frame will go straight.  The
    "ACK ENQ" write loses its ACK (the register keeps item 1's answer and answers the ENQ with
    ACK + ``FF 46 00``), and item 2's frame is lost.  The host reads that ACK as item 2's and
    item 1's replayed answer as item 2's answer: item 2 "added", never executed.  Only the
    subtotal check before FF45 saves the money -- the sale fails `NotFiscalized` (subtotal 6668
    where 10002) instead of recovering.  With the fix proposed there (the flag armed only once
    the ENQ is written), the NAK is noise, item 1's answer is drained as stale, item 2's lost
    frame is `NotDelivered` and `_add_once` sends it again: one document, three items."""
    wire, register = clean
    state = {"nak": False, "ack": False, "frame": False}

    def down(data: bytes, _count: int) -> bytes:
        if not state["nak"] and data[:1] == b"\x02" and data[2:4] == b"\xff\x46":
            state["nak"] = True
            return data + b"\x15"  # item 1's answer, a stray NAK behind it
        return data

    def up(data: bytes, _count: int) -> bytes:
        if state["nak"] and not state["ack"] and data == ACK_ENQ:
            state["ack"] = True
            return data[1:]  # our ACK lost, the ENQ through
        if state["ack"] and not state["frame"] and data[:1] == b"\x02" and data[2:4] == b"\xff\x46":
            state["frame"] = True
            return b""  # item 2's first frame lost
        return data

    wire.script.down, wire.script.up = down, up
    sold = register.sell(receipt_for(10_002, items=3))
    assert all(state.values()), state
    assert receipts_by_total(wire.register)[10_002] == [sold.document_number]
    assert len([c for c in wire.executed if c[:2] == b"\xff\x46"]) == 3


# -- verify: no false "damaged" on legitimate receipts, both vendors: found sound ------------------


def _legit_receipts() -> list[tuple[str, kkt.Receipt]]:
    item, vat, paid = kkt.Item, kkt.Vat, kkt.Payments
    one = Decimal(1)
    return [
        ("vat0", kkt.Receipt((item("A", 1_000, one, vat.VAT0),), paid(cash=1_000))),
        (
            "none, fractional quantity",
            kkt.Receipt(
                (item("A", 1_000, one, vat.NONE), item("B", 333, Decimal("2.5"), vat.NONE)),
                paid(cash=2_000),
            ),
        ),
        (
            "vat120 prepayment",
            kkt.Receipt((item("A", 1_001, one, vat.VAT120, 1),), paid(cash=1_001)),
        ),
        (
            "vat110 prepayment",
            kkt.Receipt((item("A", 1_001, one, vat.VAT110, 1),), paid(cash=1_001)),
        ),
        ("prepaid", kkt.Receipt((item("A", 5_000, one, vat.VAT20, 7),), paid(prepaid=5_000))),
        ("credit", kkt.Receipt((item("A", 5_000, one, vat.VAT20, 6),), paid(credit=5_000))),
        (
            "mixed payments with change",
            kkt.Receipt(
                (item("A", 5_000, one, vat.VAT20), item("B", 77, Decimal(7), vat.VAT10)),
                paid(cash=10_000, electronic=100, other=50),
            ),
        ),
        (
            "sell return",
            kkt.Receipt(
                (item("A", 5_000, one, vat.VAT20),),
                paid(cash=5_000),
                operation=kkt.Operation.SELL_RETURN,
            ),
        ),
        (
            "buy",
            kkt.Receipt(
                (item("A", 5_000, one, vat.VAT20),),
                paid(electronic=5_000),
                operation=kkt.Operation.BUY,
            ),
        ),
        (
            "usn income",
            kkt.Receipt(
                (item("A", 5_000, one, vat.NONE),),
                paid(cash=5_000),
                tax_system=kkt.TaxSystem.USN_INCOME,
            ),
        ),
        (
            "a free item",
            kkt.Receipt(
                (item("A", 0, one, vat.VAT20), item("B", 100, one, vat.VAT20)), paid(cash=100)
            ),
        ),
        (
            "fifteen items, VAT rounded per item",
            kkt.Receipt(
                tuple(item(f"I{n}", 101 + n, one, vat.VAT20) for n in range(15)),
                paid(cash=100_000),
            ),
        ),
    ]


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
def test_legitimate_receipts_read_back_as_sold(protocol: str, tmp_path: Path) -> None:
    """VAT 0 / no VAT turnovers, 20/120 and 10/110, prepaid, credit and "other" payments, change
    from cash, returns and purchases, USN, a free item, 1 item and 15: every one reads back as
    sold on both emulated vendors (``verified=True``), none is a false `DamagedClosing`."""
    with kkt.connect(f"emulator:{tmp_path / 'register'}", protocol=protocol, verify=True) as reg:
        reg.open_shift()
        for name, receipt in _legit_receipts():
            assert reg.receipt(receipt).verified is True, name


def test_verify_reads_a_correction_back_too(tmp_path: Path) -> None:
    """``connect(..., verify=True)`` promises "each receipt's document read back".  A
    correction receipt paid otherwise than in cash goes out as FF4A -- payments by kind, six
    tax sums and the tax system in one frame under the same XOR checksum as FF45 -- so it
    suffers the very damage verify exists for, yet `Register.correction` never calls
    `_verified`: ``verified`` is None and a damaged correction is "done".  Fix
    (kkt/register.py, kkt/verify.py): verify corrections as well -- read the document back,
    expect `DocumentType.CORRECTION`, compare 1054, 1020, the payments (1031, 1081, 1215-1217),
    1055 and 1173; or say in `connect`'s docstring and ``--verify``'s help that corrections
    are not covered."""
    with kkt.connect(f"emulator:{tmp_path / 'register'}", protocol="shtrih", verify=True) as reg:
        reg.open_shift()
        made = reg.correction(
            kkt.Operation.SELL, 1_000, payments=kkt.Payments(cash=500, electronic=500)
        )
        assert made.verified is True
