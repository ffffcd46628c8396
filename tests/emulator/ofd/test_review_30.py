"""Session 30's second read (task RV): the emulated ОИСМ's knowledge of sold codes
(`Circulation`) -- a code refused wrongly after a return, across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from kkt.emulator.clock import ManualClock
from kkt.emulator.ofd.oism import Answer, Circulation
from kkt.emulator.shtrih import ShtrihRegister, open_device
from support.fn import START

from .test_oism import code, sell_marked


def test_a_code_sold_and_returned_on_one_register_is_sellable_after_a_restart(
    tmp_path: Path,
) -> None:
    """The FN's store keeps what a return gave back: reopened, the register's ОИСМ answers
    "valid" for the code, not "sold before"."""
    mark = code("51").encode()
    device = open_device(tmp_path / "kkt", clock=ManualClock(START))
    try:
        device.model.open_shift([])
        sell_marked(device.model, mark)
        sell_marked(device.model, mark, returned=True)
    finally:
        device.close()
    device = open_device(tmp_path / "kkt", clock=ManualClock(START))
    try:
        assert device.model.oism.answer_for(mark) is Answer.VALID
    finally:
        device.close()


@pytest.mark.xfail(
    strict=True,
    reason="DOCUMENTED LIMITATION (emulator/ofd/oism.py docstring), not a double: a code sold "
    "on register A and returned on register B of one pool reads 'sold before' after the pool "
    "restarts -- each FN's store keeps only its own sales, and B's return of a code B never "
    "sold is not in B's sold set, so A's sale wins. Fix if wanted: keep returns in the store "
    "too (a 'returned' row with its FD) and let Circulation.watch take the newest of sale and "
    "return per code across the watched FNs",
)
def test_a_code_returned_on_another_register_is_sellable_after_the_pool_restarts(
    tmp_path: Path,
) -> None:
    mark = code("52").encode()
    names = ("a", "b")

    def open_pool() -> list[ShtrihRegister]:
        shared = Circulation()
        opened = [open_device(tmp_path / name, clock=ManualClock(START)) for name in names]
        for device in opened:
            device.model.oism.share(shared)
        return opened

    devices = open_pool()
    try:
        first, second = (device.model for device in devices)
        for model in (first, second):
            model.open_shift([])
        sell_marked(first, mark)
        sell_marked(second, mark, returned=True)
        assert first.oism.answer_for(mark) is Answer.VALID  # given back, for both
    finally:
        for device in devices:
            device.close()
    devices = open_pool()  # the pool restarted
    try:
        assert devices[0].model.oism.answer_for(mark) is Answer.VALID
    finally:
        for device in devices:
            device.close()
