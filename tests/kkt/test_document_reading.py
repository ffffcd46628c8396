"""Reading a document back in blocks over a line that loses some (`Device._read_tlv_blocks`).

Both vendors hand a document out one top-level TLV a block, each read moving a cursor in the
register (Shtrih FF3A then FF3B, ATOL A4h 45h then A4h 46h; a read past the end is refused).  A
block read that fails on the line may have moved the cursor or not; the driver reads on, and the
document's size decides: a block lost ends the reading short, the register refuses the read past
its end, and the document is selected and read again.  A document is returned only whole --
never with a block missing -- or the reading fails with a typed error.

The register is the in-process emulator; the line's failures are made by a commander between the
driver and the emulator: a block read *not taken* (nothing done, the link says "not executed"), or
*done and its answer lost* (the cursor moved, the link says "maybe executed").
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kkt.protocols.errors import LinkError

import kkt
from kkt.errors import BadAnswer
from kkt.vendors.base import BLOCK_MISSES, READ_TRIES

# The payload's start of each vendor's block read (its code; ATOL's after the 2-byte password).
BLOCK_READS = {"shtrih": (0, b"\xff\x3b"), "atol": (2, b"\xa4\x46")}

# What the line does to one block read.
OK, NOT_TAKEN, ANSWER_LOST = "ok", "not taken", "answer lost"


class BlockLine:
    """Passes every command; a block read goes as ``fate()`` says: through, not taken (never
    reaches the register), or done by the register with its answer lost."""

    def __init__(self, inner: Any, protocol: str, fate: Callable[[], str]) -> None:
        self.inner = inner
        self.offset, self.code = BLOCK_READS[protocol]
        self.fate = fate
        self.fates: list[str] = []

    def exchange(self, payload: bytes, **options: Any) -> bytes:
        if payload[self.offset : self.offset + 2] != self.code:
            return bytes(self.inner.exchange(payload, **options))
        fate = self.fate()
        self.fates.append(fate)
        if fate == NOT_TAKEN:
            raise LinkError("the frame was damaged (test)", command=payload, maybe_executed=False)
        answer = bytes(self.inner.exchange(payload, **options))
        if fate == ANSWER_LOST:
            raise LinkError("the answer was lost (test)", command=payload, maybe_executed=True)
        return answer

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


@pytest.fixture(params=["shtrih", "atol"])
def sold(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A register with one three-item receipt sold, its document as read on a clean line."""
    register = kkt.connect(f"emulator:{tmp_path / 'register'}", protocol=request.param)
    register.open_shift()
    items = tuple(kkt.Item(f"Товар {n}", 10_000 + n, vat=kkt.Vat.VAT20) for n in range(3))
    result = register.sell(kkt.Receipt(items=items, payments=kkt.Payments(cash=30_003)))
    document = register.device.read_document(result.document_number)
    yield request.param, register, result.document_number, document
    register.close()


def through(register: kkt.Register, protocol: str, fate: Callable[[], str]) -> BlockLine:
    line = BlockLine(register.device.commander, protocol, fate)
    register.device.commander = line  # type: ignore[assignment]
    return line


def script(*fates: str) -> Callable[[], str]:
    """The given fates in turn, then every read through."""
    queue = list(fates)
    return lambda: queue.pop(0) if queue else OK


def test_a_block_read_not_taken_is_read_on(sold: Any) -> None:
    protocol, register, number, clean = sold
    line = through(register, protocol, script(OK, NOT_TAKEN, NOT_TAKEN, OK))
    assert register.device.read_document(number) == clean
    delivered = len(line.fates) - line.fates.count(NOT_TAKEN)
    assert delivered == len(clean.tlv)  # every block read once: no second reading was needed


def test_a_block_whose_answer_was_lost_reads_the_document_again_whole(sold: Any) -> None:
    """The cursor moved past a block the driver never saw: the blocks end short, the register
    refuses the read past the end, and the document is read again -- never returned with the
    block missing."""
    protocol, register, number, clean = sold
    line = through(register, protocol, script(OK, ANSWER_LOST))
    assert register.device.read_document(number) == clean
    # First reading: one block, one lost, the rest, one refused past the end; then whole again.
    assert len(line.fates) == 2 * len(clean.tlv) + 1


def test_a_line_that_loses_every_block_fails_typed(sold: Any) -> None:
    protocol, register, number, _ = sold
    through(register, protocol, lambda: ANSWER_LOST)
    with pytest.raises((kkt.OutcomeUnknown, kkt.TransportError)):
        register.device.read_document(number)


def test_a_document_the_fn_does_not_have_is_its_refusal(sold: Any) -> None:
    """A refusal with no block read lost is the register's own answer, reported as such."""
    _, register, number, _ = sold
    with pytest.raises(kkt.DeviceError):
        register.device.read_document(number + 5)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 2**32 - 1), lost=st.floats(0.0, 0.25), damaged=st.floats(0.0, 0.25))
def test_a_document_is_returned_whole_or_not_at_all(
    sold: Any, seed: int, lost: float, damaged: float
) -> None:
    """Whatever the line does to the block reads: the very document, or a typed failure."""
    protocol, register, number, clean = sold
    rng = random.Random(seed)

    def fate() -> str:
        roll = rng.random()
        return ANSWER_LOST if roll < lost else NOT_TAKEN if roll < lost + damaged else OK

    line = through(register, protocol, fate)
    try:
        try:
            assert register.device.read_document(number) == clean
        except (kkt.OutcomeUnknown, kkt.TransportError, BadAnswer):
            # Only after the line failed often enough to exhaust the budgets.
            assert line.fates.count(ANSWER_LOST) >= READ_TRIES or (
                line.fates.count(NOT_TAKEN) + line.fates.count(ANSWER_LOST) > BLOCK_MISSES
            )
    finally:
        register.device.commander = line.inner
