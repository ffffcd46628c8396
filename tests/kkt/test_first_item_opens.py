"""Issue 20, Shtrih: a receipt of two items or more is opened by its first item (no 8Dh) -- the
second item checks the first one's type; a one-item receipt keeps 8Dh, whose type no later
command would check."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from kkt.protocols.ffd import find
from support.tap import Send, tap, untap

import kkt
from kkt import Item, Payments, Receipt, Vat

from .test_carried_numbers import STEADY, Log, as_the_fn_says, coffee


def one_item() -> Receipt:
    return Receipt(items=(Item("Чай", 15_000, Decimal(1), Vat.VAT20),), payments=Payments(20_000))


@pytest.fixture
def register(tmp_path: Path) -> Iterator[kkt.Register]:
    with kkt.connect(f"emulator:{tmp_path / 'state'}") as register:
        register.open_shift()
        yield register


def test_three_items_take_five_commands_and_one_item_keeps_the_opening(
    register: kkt.Register,
) -> None:
    register.sell(coffee())
    log = Log(register)
    sold = register.sell(coffee())
    assert [c for c in log.take() if c != "enq"] == ["ff46", "ff46", "ff46", "89", "ff45"]
    as_the_fn_says(register, sold)
    log.take()
    sold = register.sell(one_item())
    assert log.take() == ["8d", "ff46", "89", "ff45", "enq"]
    as_the_fn_says(register, sold)


def test_receipt_level_tags_follow_the_first_item(register: kkt.Register) -> None:
    """Without 8Dh the receipt's own tags (cashier, buyer's contact) go right after the first
    item, which opened it -- and the FN's document holds them."""
    sold = register.sell(replace(coffee(), cashier="Иванова", buyer_contact="+79990000000"))
    document = register.document(sold.document_number)
    assert (find(document.tlv, 1021), find(document.tlv, 1008)) == ("Иванова", "+79990000000")


def _damaged_operation(payload: bytes) -> bytes:
    """FF46 with its operation byte 1 (income) -> 3 (outcome: a purchase), and the same bit of
    a byte of the item's name flipped: the frame's XOR checksum does not change."""
    operation, name = 6, 33
    assert payload[operation] == 1
    damaged = bytearray(payload)
    damaged[operation] ^= 0x02
    damaged[name] ^= 0x02
    return bytes(damaged)


def test_a_damaged_first_item_opens_another_type_and_item_two_is_refused(
    register: kkt.Register,
) -> None:
    """Two flips in one bit column turn the first FF46's operation into a purchase: the
    register opens a purchase receipt with it.  Item 2 (a sale) does not fit that type and is
    refused; the driver cancels the receipt and reports `NotFiscalized` -- nothing is fiscal,
    and the sale sold again is fiscalized once, as a sale."""
    register.sell(coffee())
    last = register.fn_info().last_document
    items: list[bytes] = []

    def damage(payload: bytes, send: Send) -> bytes:
        if payload[:2] == b"\xff\x46":
            items.append(payload)
            if len(items) == 1:
                return send(_damaged_operation(payload))
        return send(payload)

    tap(register, damage)
    with pytest.raises(kkt.NotFiscalized, match="another type"):
        register.sell(coffee())
    untap(register)
    assert len(items) == 2  # the second item was refused, the third never sent
    assert not register.status().receipt_open
    assert register.fn_info().last_document == last  # nothing fiscalized
    sold = register.sell(coffee())
    assert sold.document_number == last + 1 and sold.operation == int(kkt.Operation.SELL)
    as_the_fn_says(register, sold)


def test_steady_is_five_commands_and_the_replay(register: kkt.Register) -> None:
    register.sell(coffee())
    log = Log(register)
    register.sell(coffee())
    assert log.take() == STEADY
