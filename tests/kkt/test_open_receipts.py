"""Hole 4 of issue 20's review: no receipt is left open by a refused closing, and a receipt open
on the register that this sale cannot prove its own is never adopted (filled and closed as ours).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device
from kkt.protocols.errors import LinkError
from kkt.protocols.shtrih import classic, fn
from kkt.protocols.shtrih.modes import OperationType, ReceiptType, TaxRate
from support.tap import Send, tap, untap

import kkt
from kkt import Item, Payments, Receipt, Vat

from .test_carried_numbers import FAST, as_the_fn_says, code, coffee


def one_item(cash: int = 20_000) -> Receipt:
    return Receipt(
        items=(Item("Чай", 15_000, Decimal(1), Vat.VAT20),), payments=Payments(cash=cash)
    )


@pytest.fixture
def register(tmp_path: Path) -> Iterator[kkt.Register]:
    with kkt.connect(f"emulator:{tmp_path / 'state'}") as register:
        register.open_shift()
        yield register


@pytest.mark.parametrize("receipt", [one_item(), coffee()], ids=["one-item", "three-items"])
def test_a_refused_closing_leaves_no_receipt_open(register: kkt.Register, receipt: Receipt) -> None:
    """The register refuses the closing command (the FN formed nothing): the sale fails, and
    the receipt it opened is cancelled -- not left open for whoever comes next."""
    register.sell(receipt)
    last = register.fn_info().last_document

    def refuse(payload: bytes, send: Send) -> bytes:
        if payload[:2] == b"\xff\x45":
            return b"\xff\x45\x4b"  # refused; never reaches the register
        return send(payload)

    tap(register, refuse)
    with pytest.raises(kkt.DeviceError):
        register.sell(receipt)
    untap(register)
    assert not register.status().receipt_open
    assert register.fn_info().last_document == last
    as_the_fn_says(register, register.sell(receipt))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    device = open_device(tmp_path / "state")
    try:
        with ServiceThread(device, Faults()) as thread:
            yield f"socket://127.0.0.1:{thread.port}"
    finally:
        device.close()


def _their_receipt(theirs: kkt.Register, kind: ReceiptType, items: int) -> None:
    theirs.raw(classic.OpenReceipt(30, kind))
    for _ in range(items):
        theirs.raw(
            fn.OperationV2(
                30, OperationType(int(kind) + 1), Decimal(1), 500, None, None,
                TaxRate.VAT20, 1, 4, 1, "их товар",
            )
        )  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "items"),
    [
        pytest.param(ReceiptType.SALE, 1, id="a-sale-with-their-item"),
        pytest.param(ReceiptType.BUY, 0, id="an-empty-purchase"),
    ],
)
def test_an_open_receipt_not_ours_is_cancelled_not_adopted(
    served: str, kind: ReceiptType, items: int
) -> None:
    """Our opening command is lost on the line (never executed) and a receipt is open on the
    register -- another program's.  It is not taken for ours: nothing of ours goes into it, it
    is cancelled, and the sale fails `NotFiscalized` saying so."""
    with kkt.connect(served, settings=FAST) as ours, kkt.connect(served, settings=FAST) as theirs:
        ours.open_shift()
        ours.sell(one_item())
        last = ours.fn_info().last_document
        _their_receipt(theirs, kind, items)
        sent: list[str] = []

        def lost_open(payload: bytes, send: Send) -> bytes:
            sent.append(code(payload))
            if payload[:1] == b"\x8d" and sent.count("8d") == 1:
                raise LinkError("the line dropped", command=payload, maybe_executed=True)
            return send(payload)

        tap(ours, lost_open)
        with pytest.raises(kkt.NotFiscalized, match="not this sale's"):
            ours.sell(one_item())
        untap(ours)
        assert "ff46" not in sent and "ff45" not in sent
        assert not ours.status().receipt_open
        assert ours.fn_info().last_document == last
        as_the_fn_says(ours, ours.sell(one_item()))
