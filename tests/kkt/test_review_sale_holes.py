"""Review of issue 20's cut sale (branch review-sale): holes in exactly-once, as failing tests.

Each test here FAILS on main at b19e3d8 and demonstrates one hole; see the review report.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import reduce
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device
from kkt.protocols.errors import LinkError
from support.tap import Send, tap

import kkt

from .test_carried_numbers import FAST, Log, as_the_fn_says, coffee


def _xor(data: bytes) -> int:
    return reduce(lambda a, b: a ^ b, data, 0)


@pytest.fixture
def register(tmp_path: Path) -> Iterator[kkt.Register]:
    with kkt.connect(f"emulator:{tmp_path / 'state'}") as register:
        register.open_shift()
        yield register


def _two_flips_in_one_column(answer: bytes, first: int, second: int) -> bytes:
    """The same bit flipped in two bytes of the answer: Shtrih's XOR (LRC) cannot see it."""
    for bit in range(6):
        mask = 1 << bit
        if first != 20 or not answer[first] & mask:
            if first == 20 and (answer[20] | mask) >= 60:
                continue  # a later minute of the same hour: within the 24 h span check
            damaged = bytearray(answer)
            damaged[first] ^= mask
            damaged[second] ^= mask
            assert _xor(damaged) == _xor(answer)  # the frame's checksum still agrees
            return bytes(damaged)
    raise AssertionError("no bit column to flip")


@pytest.mark.parametrize(
    "where",
    [
        pytest.param((12, 13), id="fiscal-sign"),
        pytest.param((20, 12), id="minute-and-sign"),
    ],
)
def test_closing_answer_damaged_past_the_lrc_is_done_with_wrong_data(
    register: kkt.Register, where: tuple[int, int]
) -> None:
    """HOLE 1: in the steady state `_from_answer` takes the fiscal sign and the time from the
    FF45 answer alone.  Two flips in one bit column pass the XOR checksum: the sale is `done`
    with a fiscal sign / time the FN does not hold (a QR code that will not verify).  Before
    issue 20 the FF0A read-back compared them with a second, independent answer."""
    register.sell(coffee())  # the next sale runs on carried numbers
    log = Log(register)
    log.answer_hook = lambda payload, answer: (
        _two_flips_in_one_column(answer, *where) if payload[:2] == b"\xff\x45" else answer
    )
    sold = register.sell(coffee())
    log.answer_hook = None
    as_the_fn_says(register, sold)  # fails: the result is not the FN's


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, Faults, str]]:
    device = open_device(tmp_path / "state")
    faults = Faults()
    try:
        with ServiceThread(device, faults) as thread:
            yield device, faults, f"socket://127.0.0.1:{thread.port}"
    finally:
        device.close()


def test_stale_carried_number_attributes_another_sale_to_a_lost_closing(
    served: tuple[Any, Faults, str],
) -> None:
    """HOLE 2: ``before`` carried from our previous sale is stale once another writer formed a
    document in the idle time (no reconnect on our side).  Our closing command is lost on the
    line (never executed).  `_settle` runs `find_formed(contested=False)`; ``last`` is exactly
    ``before + 1`` (the other writer's receipt), so the short record decides alone -- the same
    total and items -- and our sale is reported `done` with THEIR document, while ours is left
    open and never fiscalized (lost).  Asked of the FN (before issue 20), ``before`` would have
    been their document and ours would have been closed by `_settle`."""
    _, _, url = served
    with kkt.connect(url, settings=FAST) as ours, kkt.connect(url, settings=FAST) as theirs:
        ours.open_shift()
        ours.sell(coffee())
        theirs_sold = theirs.sell(coffee())  # the other writer, between two of our sales
        dropped: list[bool] = []

        def lossy(payload: bytes, send: Send) -> bytes:
            if payload[:2] == b"\xff\x45" and not dropped:
                dropped.append(True)  # the closing frame is lost on the line: never executed
                raise LinkError("the line dropped", command=payload, maybe_executed=True)
            return send(payload)

        tap(ours, lossy)
        sold = ours.sell(coffee())
        assert sold.document_number != theirs_sold.document_number  # fails: theirs is taken
