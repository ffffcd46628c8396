"""The ATOL device's exactly-once rules, each failure scripted on the commands themselves.

A `Scripted` commander runs every command on an in-process ATOL register and, where the script
says so, loses the reply after the register executed it, fails the exchange before it did, or
hands back a damaged reply.  Afterwards the register's FN says what really happened.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from kkt.protocols.atol import commands as c
from kkt.protocols.errors import LinkError

import kkt
from kkt import Item, Operation, Payments, Receipt, Register, Vat
from kkt.journal import Journal
from kkt.settle import fiscal_result
from kkt.transport.inprocess import InProcess
from kkt.vendors.atol import TAX_TYPES, AtolDevice

# What to do with one command: "ok", "lose" (run it, lose the reply), "down" (do not run it),
# or bytes (run it, answer these instead).
Rule = Callable[[bytes], "str | bytes"]


class Scripted:
    def __init__(self, state: Path, rule: Rule) -> None:
        self.inner = InProcess(state, protocol="atol")
        self.rule = rule
        self.sent: list[bytes] = []

    def exchange(self, payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes:
        self.sent.append(payload)
        what = self.rule(payload)
        if what == "down":
            raise LinkError("the line is down", command=payload, maybe_executed=False)
        reply = self.inner.exchange(payload, answer_timeout=answer_timeout)
        if what == "lose":
            raise LinkError("the reply was lost", command=payload, maybe_executed=True)
        return what if isinstance(what, bytes) else reply

    def close(self) -> None:
        self.inner.close()

    def documents(self, kind: int) -> list[int]:
        fn = self.inner.register.fn
        return [n for n in range(1, fn.state.last_number + 1) if fn.record(n).kind == kind]


def code(payload: bytes) -> int:
    return payload[2]


def milk(**changes: object) -> Receipt:
    values: dict[str, object] = {
        "items": (Item("Молоко", 8_900, Decimal(1), Vat.VAT10, measure=0),),
        "payments": Payments(cash=8_900),
    }
    values.update(changes)
    return Receipt(**values)  # type: ignore[arg-type]


def rig(tmp_path: Path, rule: Rule, journal: bool = False) -> tuple[Register, Scripted]:
    scripted = Scripted(tmp_path / "state", rule)
    register = Register(
        AtolDevice(scripted), journal=Journal(tmp_path / "journal.sqlite") if journal else None
    )
    register.open_shift()
    return register, scripted


def test_a_damaged_reply_after_the_closing_command_is_settled_by_the_fn(tmp_path: Path) -> None:
    """4Ah went through; the document query after it (91h 34h) keeps coming back damaged.  The
    receipt IS fiscal: the FN is asked, and the same key later returns that one receipt."""
    state = {"closed": False, "damaged": 0}

    def rule(payload: bytes) -> str | bytes:
        if code(payload) == 0x4A:
            state["closed"] = True
        elif state["closed"] and payload[2:4] == b"\x91\x34" and state["damaged"] < 5:
            state["damaged"] += 1
            return b"\x55\x00\xaa"
        return "ok"

    register, scripted = rig(tmp_path, rule, journal=True)
    first = register.sell(milk(), key="order-42")
    assert register.sell(milk(), key="order-42") == first
    assert scripted.documents(3) == [first.document_number]


def test_a_lost_correction_reply_is_settled_by_the_fn(tmp_path: Path) -> None:
    lost = {"done": False}

    def rule(payload: bytes) -> str:
        if code(payload) == 0x4A and not lost["done"]:
            lost["done"] = True
            return "lose"
        return "ok"

    register, scripted = rig(tmp_path, rule)
    fixed = register.correction(Operation.SELL, 12_300, reason="акт 5")
    assert scripted.documents(31) == [fixed.document_number] and fixed.total == 12_300


def test_a_lost_payment_reply_cancels_the_receipt(tmp_path: Path) -> None:
    """99h never closes a receipt: with its fate unknown, the receipt is cancelled and the sale
    reported not fiscal -- a payment registered twice would be a wrong fiscal receipt."""

    def rule(payload: bytes) -> str:
        return "lose" if code(payload) == 0x99 else "ok"

    register, scripted = rig(tmp_path, rule)
    with pytest.raises(kkt.NotFiscalized):
        register.sell(milk(payments=Payments(cash=4_000, electronic=4_900)))
    assert scripted.documents(3) == []
    assert not register.status().receipt_open


def test_an_item_sent_again_keeps_its_tags(tmp_path: Path) -> None:
    """EBh failed before the register took it: EAh starts the item afresh (its tags gone), so the
    tags go again with it."""
    failed = {"done": False}

    def rule(payload: bytes) -> str:
        if code(payload) == 0xEB and not failed["done"]:
            failed["done"] = True
            return "down"
        return "ok"

    register, _ = rig(tmp_path, rule)
    item = Item("Сыр", 99_000, Decimal("0.350"), Vat.VAT10, measure=11, extra=((1191, "Сорт A"),))
    sold = register.sell(Receipt((item,), Payments(cash=40_000)))
    tlv = register.document(sold.document_number).tlv
    items = [dict(value) for tag, value in tlv if tag == 1059 and isinstance(value, list)]
    assert len(items) == 1
    assert (items[0][2108], items[0][1191]) == (11, "Сорт A")


def test_a_tag_the_ffd_does_not_allow_is_cannot_send_and_leaves_nothing_open(
    tmp_path: Path,
) -> None:
    register, scripted = rig(tmp_path, lambda payload: "ok")
    with pytest.raises(kkt.CannotSend, match="1192"):
        register.sell(milk(extra=((1192, "x" * 20_000),)))  # 1192 holds 16 characters
    assert not register.status().receipt_open and scripted.documents(3) == []


def test_tax_bytes_are_the_fns_own_codes(tmp_path: Path) -> None:
    """EBh's tax byte follows tag 1199 (Zzzzipper's encoder): 1 is VAT 20 %, not libfptr's 7."""
    assert TAX_TYPES == {
        Vat.VAT20: 1,
        Vat.VAT10: 2,
        Vat.VAT120: 3,
        Vat.VAT110: 4,
        Vat.VAT0: 5,
        Vat.NONE: 6,
    }
    register, scripted = rig(tmp_path, lambda payload: "ok")
    register.sell(milk(items=(Item("Хлеб", 4_500, vat=Vat.VAT20),), payments=Payments(4_500)))
    ends = [c.decode_request(p) for p in scripted.sent if code(p) == 0xEB]
    assert [end.tax_type for end in ends] == [1]  # type: ignore[attr-defined]


def test_a_correction_whose_closing_failed_is_never_cancelled_and_reported_failed(
    tmp_path: Path,
) -> None:
    """4Ah went through and every query after it fails for a while: the correction exists, so
    the answer may be "unknown" but never a failure -- and it is not cancelled."""
    state = {"closed": False, "down": 0}

    def rule(payload: bytes) -> str:
        if code(payload) == 0x4A:
            state["closed"] = True
            return "lose"
        if state["closed"] and state["down"] < 40:
            state["down"] += 1
            return "down"
        return "ok"

    register, scripted = rig(tmp_path, rule)
    with pytest.raises(kkt.OutcomeUnknown):
        register.correction(Operation.SELL, 12_300)
    assert len(scripted.documents(31)) == 1


def coffee(operation: Operation = Operation.SELL) -> Receipt:
    """The receipt ``kkt bench receipts`` sells: three items, cash."""
    items = (
        Item("Кофе", 19_900, Decimal(2), Vat.VAT20),
        Item("Круассан", 14_500, Decimal(1), Vat.VAT10),
        Item("Вода 0,5", 7_000, Decimal("1.5"), Vat.NONE),
    )
    return Receipt(items, Payments(cash=70_000), operation=operation)


def command(payload: bytes) -> str:
    """A command's code as a log shows it: ``91 34`` and ``a4 45`` with their register or FN
    command, everything else by its code alone."""
    return payload[2:4].hex(" ") if payload[2] in (0x91, 0xA4) else f"{payload[2]:02x}"


# One sale of `coffee()` after another, nothing going wrong: open (92h) -- no mode check (45h):
# the register is known to be in mode 1 since the last sale -- with its tag 1055 (E8h), each item
# begun (EAh) and registered (EBh), the subtotal check (3Fh), the closing (4Ah) -- then the
# document's record (91h 34h: number, type, total, time, sign).  The FN's last document before it
# and the shift's numbers are carried from the previous sale (`Device.last_sale`).  Each command
# is one exchange (one task on the v3 buffer).
HAPPY_SALE = ["92", "e8", *["ea", "eb"] * 3, "3f", "4a", "91 34"]


def test_a_sale_on_the_happy_path_costs_eleven_exchanges_and_reads_no_document(
    tmp_path: Path,
) -> None:
    """The regression this guards: reading the receipt back by A4h 45h/46h after every sale.  The
    FN's 46h gives one first-level tag per answer, so that read alone costs more exchanges than
    the whole sale -- counted here, so that the guard is not vacuous.  An idempotency key costs
    no exchange (the journal is local), and its replay none at all."""
    register, scripted = rig(tmp_path, lambda payload: "ok", journal=True)
    register.sell(coffee())  # the first sale also reads the FN's serial and the status, once
    scripted.sent.clear()
    sold = register.sell(coffee())
    assert [command(payload) for payload in scripted.sent] == HAPPY_SALE
    scripted.sent.clear()
    keyed = register.sell(coffee(), key="order-7")
    assert [command(payload) for payload in scripted.sent] == HAPPY_SALE
    scripted.sent.clear()
    assert register.sell(coffee(), key="order-7") == keyed and scripted.sent == []
    scripted.sent.clear()
    register.find_document(sold.document_number)
    read_back = [command(payload) for payload in scripted.sent]
    assert read_back[0] == "a4 45" and set(read_back[1:]) == {"a4 46"}
    assert len(read_back) > len(HAPPY_SALE)


@pytest.mark.parametrize("operation", [Operation.SELL, Operation.SELL_RETURN, Operation.BUY])
def test_the_fast_result_is_the_one_the_documents_tlv_gives(
    tmp_path: Path, operation: Operation
) -> None:
    """The fiscal data a sale returns from 91h 34h and A4h 10h are those of its own document as
    the FN keeps it, read whole by A4h 45h/46h (tags 1040, 1012, 1077, 1054, 1020): the time to
    the minute, the fiscal sign as printed.  So is the time of a shift report."""
    register, scripted = rig(tmp_path, lambda payload: "ok")
    receipt = coffee(operation)
    fast = register.receipt(receipt)
    scripted.sent.clear()
    found = register.find_document(fast.document_number)
    assert "a4 46" in [command(payload) for payload in scripted.sent]  # the TLV itself
    assert (found.type, found.operation, found.total) == (3, int(operation), receipt.total)
    assert fiscal_result(register.device, found, receipt.total, int(operation)) == fast
    closed = register.close_shift()
    assert closed.when == register.find_document(closed.document_number).when


def test_a_correction_closing_answer_naming_an_old_document_is_settled_not_trusted(
    tmp_path: Path,
) -> None:
    """Review: an ATOL 4Ah answered "55 00 00" that is not this task's (another program's task
    under the same TID, which a Req after a reconnect takes for ours) while the correction was
    never formed.  A sale settles such an answer by the FN (its document is not after the
    start); a correction reported the FN's previous document -- here the shift's opening -- as
    itself, and left the correction open on the register."""
    faked = {"done": False}

    def rule(payload: bytes) -> str | bytes:
        return "ok"

    register, scripted = rig(tmp_path, rule)
    inner = scripted.inner.exchange

    def foreign_success(payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes:
        if code(payload) == 0x4A and not faked["done"]:
            faked["done"] = True
            return b"\x55\x00\x00"  # not executed: the answer belongs to another task
        return inner(payload, answer_timeout=answer_timeout)

    scripted.inner.exchange = foreign_success  # type: ignore[method-assign]
    before = register.fn_info().last_document
    try:
        made = register.correction(Operation.SELL, 12_300, reason="акт 6")
    except (kkt.NotFiscalized, kkt.OutcomeUnknown):
        assert scripted.documents(31) == []
    else:
        assert made.document_number > before
        assert scripted.documents(31) == [made.document_number]
    assert not register.status().receipt_open


def test_a_mode_left_behind_our_back_is_entered_again_and_the_sale_goes_through(
    tmp_path: Path,
) -> None:
    """The mode is taken on trust between sales (no 45h); another program that left it makes
    the opening refused 66h (never executed): the device asks, enters mode 1 again and opens."""
    register, scripted = rig(tmp_path, lambda payload: "ok")
    register.sell(coffee())
    scripted.inner.exchange(c.ExitMode(0).encode(), answer_timeout=1.0)  # someone else's 48h
    scripted.sent.clear()
    register.sell(coffee())
    sent = [command(payload) for payload in scripted.sent]
    assert sent[:4] == ["92", "45", "56", "92"], sent
    assert len(scripted.documents(3)) == 2  # both receipts, each once


def test_the_mode_is_asked_again_after_a_failed_command(tmp_path: Path) -> None:
    failing = {"on": False}

    def rule(payload: bytes) -> str:
        return "down" if failing["on"] and payload[2] == 0x92 else "ok"

    register, scripted = rig(tmp_path, rule)
    register.sell(coffee())
    failing["on"] = True
    with pytest.raises(kkt.KktError):
        register.sell(coffee())
    failing["on"] = False
    scripted.sent.clear()
    register.sell(coffee())
    assert "45" in [command(payload) for payload in scripted.sent]


def test_a_66h_in_the_remembered_mode_is_not_the_cash_ins_answer_and_it_is_never_sent_again(
    tmp_path: Path,
) -> None:
    """Another program on the register Aborts and reuses TIDs: its refused task's 66h ("not in
    this mode") comes back for our cash in, which ran.  The register is still in mode 1, so that
    answer is not ours: the cash in is not run again (the drawer judges it), not twice."""
    state = {"second": False}

    def rule(payload: bytes) -> str | bytes:
        if code(payload) == 0x49:
            if state["second"]:
                return b"\x55\x66\x00"  # the other program's refusal, under our TID
            state["second"] = True
        return "ok"

    register, scripted = rig(tmp_path, rule)
    drawer = scripted.inner.register.model.cash_in_drawer
    register.cash_in(100)  # enters mode 1; the mode is remembered from here
    before = drawer()
    scripted.sent.clear()
    register.cash_in(100)
    assert drawer() - before == 100, "run once: neither lost nor doubled"
    assert [command(p) for p in scripted.sent].count("49") == 1, scripted.sent
