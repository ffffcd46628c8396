"""Corrections paid otherwise than in cash, and corrections made exactly once with a key.

Both vendors, on the in-process emulator, through a commander that can lose the reply of a
chosen command after the register executed it (or fail every exchange after it: a crash)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kkt.protocols.errors import LinkError
from kkt.protocols.ffd import DocumentType, TlvList, find

import kkt
from kkt import Operation, Payments, Register
from kkt.journal import Journal
from kkt.transport.inprocess import InProcess
from kkt.vendors.atol import AtolDevice
from kkt.vendors.shtrih import ShtrihDevice

VENDORS = ("shtrih", "atol")
DEVICES = {"shtrih": ShtrihDevice, "atol": AtolDevice}
# The command that forms the correction: Shtrih FF36 / FF4A, ATOL 4Ah (after the password).
CLOSING = {"shtrih": (b"\xff\x36", b"\xff\x4a"), "atol": (b"\x4a",)}
Rule = Callable[[bytes], str]  # "ok", "lose" (run it, lose the reply) or "down" (not run)


def closing(protocol: str, payload: bytes) -> bool:
    body = payload[2:] if protocol == "atol" else payload
    return any(body.startswith(code) for code in CLOSING[protocol])


class Scripted:
    def __init__(self, state: Path, protocol: str, rule: Rule) -> None:
        self.inner = InProcess(state, protocol=protocol)
        self.protocol = protocol
        self.rule = rule

    def exchange(self, payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes:
        what = self.rule(payload)
        if what == "down":
            raise LinkError("the line is down", command=payload, maybe_executed=False)
        reply = self.inner.exchange(payload, answer_timeout=answer_timeout)
        if what == "lose":
            raise LinkError("the reply was lost", command=payload, maybe_executed=True)
        return reply

    def close(self) -> None:
        self.inner.close()

    def corrections(self) -> list[int]:
        fn = self.inner.register.fn
        return [
            n
            for n in range(1, fn.state.last_number + 1)
            if fn.record(n).kind == DocumentType.CORRECTION_RECEIPT
        ]


def body_of(tlv: TlvList) -> TlvList:
    """A document's own tags, whether or not its STLV wrapper came with them."""
    if len(tlv) == 1 and isinstance(tlv[0][1], list):
        return tlv[0][1]
    return tlv


def rig(
    tmp_path: Path, protocol: str, rule: Rule = lambda payload: "ok"
) -> tuple[Register, Scripted]:
    scripted = Scripted(tmp_path / "state", protocol, rule)
    register = Register(DEVICES[protocol](scripted), journal=Journal(tmp_path / "journal.sqlite"))
    if not register.status().shift_open:
        register.open_shift()
    return register, scripted


@pytest.mark.parametrize("protocol", VENDORS)
def test_a_correction_paid_electronically_carries_its_payments(
    tmp_path: Path, protocol: str
) -> None:
    register, scripted = rig(tmp_path, protocol)
    try:
        paid = Payments(cash=5_000, electronic=7_300)
        made = register.correction(Operation.SELL, 12_300, reason="акт 7", payments=paid)
        assert scripted.corrections() == [made.document_number]
        document = register.document(made.document_number)
        body = body_of(document.tlv)
        assert document.type == DocumentType.CORRECTION_RECEIPT
        assert (find(body, 1020), find(body, 1031), find(body, 1081)) == (12_300, 5_000, 7_300)
        card = register.correction(
            Operation.BUY, 4_400, payments=Payments(electronic=4_400), key="fix-2"
        )
        body = body_of(register.document(card.document_number).tlv)
        assert (find(body, 1054), find(body, 1031), find(body, 1081)) == (3, 0, 4_400)
    finally:
        register.close()


@pytest.mark.parametrize("protocol", VENDORS)
def test_payments_that_are_not_the_total_are_refused_before_anything_is_sent(
    tmp_path: Path, protocol: str
) -> None:
    sent: list[bytes] = []

    def rule(payload: bytes) -> str:
        sent.append(payload)
        return "ok"

    register, scripted = rig(tmp_path, protocol, rule)
    try:
        sent.clear()
        with pytest.raises(kkt.ReceiptRejected, match="no change"):
            register.correction(Operation.SELL, 12_300, payments=Payments(cash=13_000))
        with pytest.raises(kkt.ReceiptRejected, match=r"payments\.credit"):
            register.correction(Operation.SELL, 100, payments=Payments(credit=-1, cash=101))
        assert not any(closing(protocol, payload) for payload in sent)
        assert scripted.corrections() == []
    finally:
        register.close()


def test_a_vendor_that_cannot_carry_a_payment_kind_refuses_it_first(tmp_path: Path) -> None:
    register, scripted = rig(tmp_path, "atol")
    try:
        register.device.CORRECTION_PAYMENTS = frozenset({"cash"})  # type: ignore[misc]
        with pytest.raises(kkt.ReceiptRejected, match=r"payments\.electronic: the atol"):
            register.correction(Operation.SELL, 100, payments=Payments(electronic=100))
        assert scripted.corrections() == []
    finally:
        register.close()


@pytest.mark.parametrize("protocol", VENDORS)
def test_a_repeated_key_returns_the_first_correction_and_sends_nothing(
    tmp_path: Path, protocol: str
) -> None:
    register, scripted = rig(tmp_path, protocol)
    try:
        paid = Payments(electronic=12_300)
        first = register.correction(Operation.SELL, 12_300, payments=paid, key="fix-1")
        again = register.correction(Operation.SELL, 12_300, payments=paid, key="fix-1")
        assert again == first and again.replayed and not first.replayed
        assert scripted.corrections() == [first.document_number]
        with pytest.raises(kkt.KeyConflict, match="another operation, sum or basis"):
            register.correction(
                Operation.SELL, 12_400, payments=Payments(electronic=12_400), key="fix-1"
            )
        with pytest.raises(kkt.KeyConflict, match="paid otherwise"):
            register.correction(Operation.SELL, 12_300, key="fix-1")
        assert scripted.corrections() == [first.document_number]
    finally:
        register.close()


@pytest.mark.parametrize("protocol", VENDORS)
def test_a_lost_closing_answer_with_a_key_is_settled_by_the_fn(
    tmp_path: Path, protocol: str
) -> None:
    state = {"lost": False}

    def rule(payload: bytes) -> str:
        if closing(protocol, payload) and not state["lost"]:
            state["lost"] = True
            return "lose"
        return "ok"

    register, scripted = rig(tmp_path, protocol, rule)
    try:
        paid = Payments(cash=300, electronic=12_000)
        made = register.correction(Operation.SELL, 12_300, payments=paid, key="fix-9")
        assert state["lost"] and scripted.corrections() == [made.document_number]
        again = register.correction(Operation.SELL, 12_300, payments=paid, key="fix-9")
        assert again == made and again.replayed
    finally:
        register.close()


@pytest.mark.parametrize("protocol", VENDORS)
def test_a_key_a_crash_left_pending_is_settled_from_the_fn(tmp_path: Path, protocol: str) -> None:
    """The closing command went through and then the line died for good (the host "crashed"):
    the call says OutcomeUnknown and the key stays pending; the next process, with the same
    journal, finds the correction in the FN and returns it without making another."""
    state = {"dead": False}

    def dying(payload: bytes) -> str:
        if state["dead"]:
            return "down"
        if closing(protocol, payload):
            state["dead"] = True
            return "lose"
        return "ok"

    register, scripted = rig(tmp_path, protocol, dying)
    paid = Payments(electronic=12_300)
    try:
        with pytest.raises(kkt.OutcomeUnknown):
            register.correction(Operation.BUY, 12_300, payments=paid, key="fix-crash")
    finally:
        register.close()
    entry = Journal(tmp_path / "journal.sqlite")
    try:
        pending = entry.get("fix-crash")
        assert pending is not None and pending.state == "pending"
    finally:
        entry.close()

    register, scripted = rig(tmp_path, protocol)
    try:
        found = register.correction(Operation.BUY, 12_300, payments=paid, key="fix-crash")
        assert found.replayed and found.total == 12_300 and found.operation == 3
        assert scripted.corrections() == [found.document_number]
        with pytest.raises(kkt.KeyConflict, match="a correction"):
            register.sell(
                kkt.Receipt((kkt.Item("Чай", 12_300),), Payments(cash=12_300)), key="fix-crash"
            )
    finally:
        register.close()


@pytest.mark.parametrize("protocol", VENDORS)
def test_a_pending_key_whose_correction_never_formed_makes_it_now(
    tmp_path: Path, protocol: str
) -> None:
    """The process died before the closing command: the FN has no correction after the key's
    mark, so the repeat makes it -- once."""
    state = {"dead": False}

    def dying(payload: bytes) -> str:
        if closing(protocol, payload):
            state["dead"] = True
        return "down" if state["dead"] else "ok"

    register, scripted = rig(tmp_path, protocol, dying)
    journal = register.journal
    assert journal is not None
    try:
        # What a crash between the journal's mark and the closing command leaves behind.
        journal.begin(
            "fix-late",
            register.device.last_document(),
            1,
            500,
            register.device.fn_serial(),
            kkt.correction.correction_fingerprint(1, 500, kkt.CorrectionBasis()),
            "cash=500,electronic=0,prepaid=0,credit=0,other=0",
        )
    finally:
        register.close()
    register, scripted = rig(tmp_path, protocol)
    try:
        made = register.correction(Operation.SELL, 500, key="fix-late")
        assert not made.replayed and scripted.corrections() == [made.document_number]
    finally:
        register.close()


@pytest.mark.parametrize("protocol", VENDORS)
def test_corrections_of_returns_are_made_too(tmp_path: Path, protocol: str) -> None:
    """FFD 1.2 corrects every settlement kind: a sale return's and a purchase return's too (ATOL
    92h types 8 and 10, Shtrih's operation byte 2 and 4)."""
    register, scripted = rig(tmp_path, protocol)
    try:
        paid = Payments(electronic=900)
        made = [
            register.correction(operation, 900, payments=paid)
            for operation in (Operation.SELL_RETURN, Operation.BUY_RETURN)
        ]
        assert [m.operation for m in made] == [2, 4]
        assert scripted.corrections() == [m.document_number for m in made]
    finally:
        register.close()
