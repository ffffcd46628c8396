"""What the driver tells a caller after a failed sale (session 30's review of its messages).

* A sale that failed before its receipt became fiscal cancels the receipt; when that cancel does
  not get through the line, the error the caller gets says a receipt is left open (and
  ``left_open``), on both vendors -- and the next sale cancels it first, as the error says.
* An item the line keeps failing is named (1-based, with its name), with its tries, and with
  "nothing was charged".
* No user-facing message cites the project's fact sheets (files not shipped with the driver);
  ATOL's marking refusal says the fact itself.
* Items are named 1-based in messages; the errors' ``item`` attributes are 0-based indexes.
* A sale whose closing answer was lost and that the FN settles as done logs no warning.

The Shtrih tests run the whole stack over `test_double_hunt`'s simulated line (virtual time),
their faults scripted on the frames themselves; the ATOL ones over `test_atol_device`'s scripted
commander.  The register's own state (its open receipt, its FN's documents) is the judge.
"""

from __future__ import annotations

import ast
import importlib
import logging
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from support.tap import Send, tap, untap

import kkt
from kkt import Item, Payments, Receipt, Vat

from .test_atol_device import code as atol_code
from .test_atol_device import rig as atol_rig
from .test_double_hunt import RECEIPT_KIND, Wire, receipts_by_total
from .test_double_hunt import clean as _clean_fixture
from .test_marking_sale import Served, receipt, shoes, tea
from .test_marking_sale import code as mark_code
from .test_marking_sale import served as _served_fixture

clean = _clean_fixture
served = _served_fixture

NEXT_SALE = "the next sale cancels it first; `kkt status` shows it."
SHTRIH_ITEM, SHTRIH_CANCEL = b"\xff\x46", b"\x88"  # FF46 (an item), 88h (cancel the receipt)
ATOL_END_ITEM, ATOL_CANCEL = 0xEB, 0x59


def two_items() -> Receipt:
    return Receipt(
        (Item("Чай", 15_000, Decimal(1), Vat.VAT20), Item("Кофе", 20_000, Decimal(1), Vat.VAT20)),
        Payments(cash=35_000),
    )


def drop(wire: Wire, rule: Callable[[bytes, int], bool]) -> None:
    """Lose on the line every command frame for which ``rule(code bytes, its count)`` holds: the
    register never sees it (the host's ENQ gets NAK: "not taken")."""
    counts: dict[bytes, int] = {}

    def up(data: bytes, _writes: int) -> bytes:
        if len(data) < 4 or data[0] != 0x02 or data[1] != len(data) - 3:
            return data
        key = data[2:4] if data[2] == 0xFF else data[2:3]
        counts[key] = counts.get(key, 0) + 1
        return b"" if rule(key, counts[key]) else data

    wire.script.up = up


def fn_receipts(wire: Wire) -> list[int]:
    return sorted(n for numbers in receipts_by_total(wire.register).values() for n in numbers)


# -- 1 and 2: a receipt left open, an item the line keeps failing (Shtrih) -----------------------


def test_an_item_the_line_keeps_failing_is_named_and_a_receipt_left_open_is_said(
    clean: tuple[Wire, kkt.Register],
) -> None:
    """Item 2's FF46 never reaches the register, nor does the cancel after it: the sale fails
    naming item 2, its three sends and "nothing was charged" -- and says the receipt is left
    open, which it is.  The next sale with the cancel still lost does not begin (nothing of it
    is sent into that receipt); once the line carries the cancel, the next sale cancels the
    receipt first and is sold, one document."""
    wire, register = clean
    before = fn_receipts(wire)
    drop(wire, lambda key, count: (key == SHTRIH_ITEM and count > 1) or key == SHTRIH_CANCEL)
    with pytest.raises(kkt.TransportError) as caught:
        register.sell(two_items())
    message = str(caught.value)
    assert "item 2 ('Кофе')" in message and "sent 3 times" in message
    assert "nothing was charged" in message and "was cancelled" not in message
    assert message.endswith(
        "A receipt is left open on the register (its cancel did not get through the line): "
        + NEXT_SALE
    )
    assert caught.value.left_open
    assert register.status().receipt_open  # as said
    assert register.status().receipt_items == 1

    drop(wire, lambda key, _count: key == SHTRIH_CANCEL)
    with pytest.raises(kkt.NotFiscalized) as stale:
        register.sell(two_items())
    assert stale.value.left_open and "nothing of this sale was sent" in str(stale.value)
    assert register.status().receipt_items == 1  # nothing of that sale went into it

    drop(wire, lambda _key, _count: False)
    sold = register.sell(two_items())
    assert fn_receipts(wire) == [*before, sold.document_number]
    assert not register.status().receipt_open


def test_a_cancel_the_line_fails_once_is_tried_again_and_the_error_says_cancelled(
    clean: tuple[Wire, kkt.Register],
) -> None:
    """The first cancel is lost, the second gets through: the receipt is cancelled, and the
    error says so (no ``left_open``)."""
    wire, register = clean
    drop(
        wire,
        lambda key, count: (
            (key == SHTRIH_ITEM and count > 1) or (key == SHTRIH_CANCEL and count == 1)
        ),
    )
    with pytest.raises(kkt.TransportError) as caught:
        register.sell(two_items())
    message = str(caught.value)
    assert "item 2 ('Кофе')" in message
    assert "the receipt was cancelled, nothing was charged" in message
    assert "left open" not in message and not caught.value.left_open
    assert not register.status().receipt_open


def test_a_refused_closing_whose_cancel_is_lost_says_the_receipt_is_left_open(
    clean: tuple[Wire, kkt.Register],
) -> None:
    """The register refuses the closing command (FF45 answered 4Bh, the FN formed nothing), and
    the cancel after it never reaches the register: the refusal -- the same `DeviceError`, its
    code kept -- says a receipt is left open."""
    wire, register = clean
    last = fn_receipts(wire)

    def refuse(payload: bytes, send: Send) -> bytes:
        if payload[:2] == b"\xff\x45":
            return b"\xff\x45\x4b"  # refused; never reaches the register
        return send(payload)

    drop(wire, lambda key, _count: key == SHTRIH_CANCEL)
    tap(register, refuse)
    try:
        with pytest.raises(kkt.DeviceError) as caught:
            register.sell(two_items())
    finally:
        untap(register)
    assert caught.value.left_open and caught.value.code == 0x4B
    assert str(caught.value).endswith(
        "Nothing was charged, but a receipt is left open on the register (its cancel did not "
        "get through the line): " + NEXT_SALE
    )
    assert register.status().receipt_open and fn_receipts(wire) == last


def test_a_step_the_line_fails_is_named_with_the_receipt_fate(
    clean: tuple[Wire, kkt.Register],
) -> None:
    """Item 1's own tags (FF4D) never reach the register: the link's "did not take the
    command" is said as item 1's, with the receipt cancelled and nothing charged."""
    wire, register = clean
    drop(wire, lambda key, _count: key == b"\xff\x4d")
    tagged = Item("Сыр", 9_900, Decimal(1), Vat.VAT10, extra=((1191, "Сорт A"),))
    with pytest.raises(kkt.TransportError) as caught:
        register.sell(Receipt((tagged, Item("Чай", 100)), Payments(cash=10_000)))
    message = str(caught.value)
    assert message.startswith("item 1 ('Сыр'): ")
    assert "the receipt was cancelled, nothing was charged" in message
    assert not caught.value.left_open and not register.status().receipt_open


# -- 1 and 2 on ATOL ------------------------------------------------------------------------------


def test_atol_an_item_the_line_keeps_failing_with_its_cancel_lost(tmp_path: Path) -> None:
    """Item 2's EBh never reaches the register, nor does the cancel (59h): named, three sends,
    nothing charged, a receipt left open -- which the next sale cancels first."""
    line = {"items": 0, "cancel": False}

    def rule(payload: bytes) -> str:
        if atol_code(payload) == ATOL_END_ITEM and line["items"] >= 0:
            line["items"] += 1
            return "down" if line["items"] > 1 else "ok"
        if atol_code(payload) == ATOL_CANCEL and not line["cancel"]:
            return "down"
        return "ok"

    register, scripted = atol_rig(tmp_path, rule)
    sales = scripted.documents(RECEIPT_KIND)
    with pytest.raises(kkt.TransportError) as caught:
        register.sell(two_items())
    message = str(caught.value)
    assert "item 2 ('Кофе')" in message and "sent 3 times" in message
    assert caught.value.left_open and message.endswith(NEXT_SALE)
    assert "was cancelled" not in message
    assert register.status().receipt_open

    line.update(items=-1, cancel=True)  # the line is sound again
    sold = register.sell(two_items())
    assert scripted.documents(RECEIPT_KIND) == [*sales, sold.document_number]
    assert not register.status().receipt_open


# -- 3: no fact sheets in messages ---------------------------------------------------------------


def test_atol_marking_refusals_say_the_fact_and_the_state_readout_sends_nothing(
    tmp_path: Path,
) -> None:
    register, _ = atol_rig(tmp_path, lambda payload: "ok")
    with pytest.raises(kkt.NotSupported) as sale:
        register.sell(receipt(shoes(mark_code("500")), tea()))
    with pytest.raises(kkt.NotSupported) as state:
        register.marking_state()
    for error in (sale.value, state.value):
        assert "no public byte layout" in str(error)
        assert "fact sheet" not in str(error) and ".md" not in str(error)
    assert "nothing was sent" in str(sale.value)
    assert "nothing was sent" not in str(state.value)  # a readout: nothing was to be sent


def _packages() -> list[Path]:
    names = ("kkt", "kkt.cloud", "kkt.emulator", "kkt.protocols", "kkt.tools")
    return [Path(importlib.import_module(name).__path__[0]) for name in names]


def _messages(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module that are not docstrings (comments are not literals)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_message_cites_a_fact_sheet() -> None:
    """The fact sheets are the project's notes, not shipped: a message says the fact instead."""
    citing = [
        f"{path}:{line}: {text[:60]!r}"
        for package in _packages()
        for path in sorted(package.rglob("*.py"))
        for line, text in _messages(path)
        if "fact sheet" in text.lower()
    ]
    assert citing == []


def test_the_scan_sees_a_citing_literal_and_skips_docstrings(tmp_path: Path) -> None:
    """The check above finds what it looks for (a docstring may cite, a message may not)."""
    module = tmp_path / "m.py"
    module.write_text(
        '"""Module (fact sheet §1)."""\n'
        "def f():\n"
        '    """Docstring, fact sheet §2."""\n'
        '    raise ValueError("see the fact sheet §3")\n',
        encoding="utf-8",
    )
    assert [text for _, text in _messages(module) if "fact sheet" in text] == [
        "see the fact sheet §3"
    ]


# -- 4: items 1-based in messages ----------------------------------------------------------------


def test_a_code_sold_before_names_its_item_one_based_in_sentences(served: Served) -> None:
    register = served.register
    mark = mark_code("3001")
    register.sell(receipt(shoes(mark), tea()))
    # The emulated ОИСМ learnt the sale and would refuse the code first: told to say "valid"
    # for it, the FN's own refusal to bind it is what is left.
    served.oism("valid", mark)
    with pytest.raises(kkt.MarkAlreadySold) as caught:
        register.sell(receipt(tea(), shoes(mark)))
    message = str(caught.value)
    assert caught.value.item == 1  # the index in Receipt.items
    assert message.startswith("item 2 ('Обувь'): ")
    assert "  " not in message and message.endswith("look it up before selling again.")
    assert not caught.value.left_open and not register.status().receipt_open


def test_a_code_given_twice_names_both_items_one_based(tmp_path: Path) -> None:
    """Refused before anything is sent (on any vendor): the field's path is Python's index, the
    words name the items as a person counts them."""
    register, scripted = atol_rig(tmp_path, lambda payload: "ok")
    sent = len(scripted.sent)
    mark = mark_code("3002")
    with pytest.raises(kkt.ReceiptRejected) as caught:
        register.sell(receipt(tea(), shoes(mark), shoes(mark)))
    assert str(caught.value).startswith(
        "items[2].mark_code: the same code as items[1].mark_code (item 3, 'Обувь', and item 2, "
        "'Обувь')"
    )
    assert len(scripted.sent) == sent


# -- 5: a sale that went on fine logs no warning --------------------------------------------------


def test_a_lost_closing_answer_the_fn_settles_logs_info_not_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lost: list[bool] = []

    def rule(payload: bytes) -> str:
        if atol_code(payload) == 0x4A and not lost:
            lost.append(True)
            return "lose"
        return "ok"

    register, scripted = atol_rig(tmp_path, rule)
    with caplog.at_level(logging.INFO, logger="kkt"):
        sold = register.sell(two_items())
    assert lost and scripted.documents(RECEIPT_KIND)[-1] == sold.document_number
    said = [r for r in caplog.records if r.name.startswith("kkt")]
    assert [r.getMessage() for r in said if r.levelno >= logging.WARNING] == []
    assert any("the FN says the receipt is formed" in r.getMessage() for r in said)
