"""Cash in and cash out are settled by the drawer: never misreported, never sent twice.

A cash operation forms no fiscal document, and its answer may not be its own (on ATOL another
program's task can answer under the same TID: tests/protocols/atol/test_link.py).  So `Register`
reads the cash in the drawer before and after the command and decides by it: moved by the sum ->
done, whatever the answer said; not moved -> not done (the command's error, or `CashNotMoved`
for a "success"); anything else -> `OutcomeUnknown`.  Each branch is run here against the
in-process emulated register of both vendors, the answer falsified around the real device (the
way the end-to-end test in tests/interop/test_atol_v3_clients.py meets it on a shared line);
Shtrih's lost answer is also met for real, through the emulator's fault injection over TCP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device
from kkt.protocols.shtrih.link import HostSettings

import kkt
from kkt import CashNotMoved, DeviceError, OutcomeUnknown, TransportError
from kkt.cash import DRAWER_TRIES

pytestmark = pytest.mark.timeout(60)

SUM = 12_345  # kopecks
SEED = 100_000  # put in first, so that a cash out has something to take


@pytest.fixture(params=["shtrih", "atol"])
def register(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[kkt.Register]:
    with kkt.connect(f"emulator:{tmp_path / 'state'}", protocol=request.param) as opened:
        opened.open_shift()
        opened.cash_in(SEED)
        yield opened


class Calls:
    """Wraps a device's cash command: counts the calls, then does what the branch needs."""

    def __init__(self, real: Callable[[int], None], action: Callable[[int], None]) -> None:
        self.real = real
        self.action = action
        self.amounts: list[int] = []

    def __call__(self, amount: int) -> None:
        self.amounts.append(amount)
        self.action(amount)


def wrap(register: kkt.Register, name: str, action: Callable[[Calls, int], None]) -> Calls:
    real = getattr(register.device, name)
    calls = Calls(real, lambda amount: action(calls, amount))
    setattr(register.device, name, calls)
    return calls


def foreign_refusal(calls: Calls, amount: int) -> None:
    """The command runs; its answer is another task's refusal (the review's case)."""
    calls.real(amount)
    raise DeviceError("66h: command not supported in this mode", code=0x66, vendor="atol")


def foreign_success(calls: Calls, amount: int) -> None:
    """The command never runs; a success answers it (another program's task)."""


def lost(calls: Calls, amount: int) -> None:
    """Nothing ran; the answer was lost on the line."""
    raise OutcomeUnknown("the answer was lost: the command may have been executed")


OPERATIONS = {"cash_in": SUM, "cash_out": -SUM}


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_a_clean_cash_operation_moves_the_drawer_once(register: kkt.Register, name: str) -> None:
    before = register.cash_in_drawer()
    calls = wrap(register, name, lambda calls, amount: calls.real(amount))
    assert getattr(register, name)(SUM) is None  # as before: nothing returned
    assert calls.amounts == [SUM]
    assert register.cash_in_drawer() == before + OPERATIONS[name]


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_done_by_the_drawer_though_the_answer_says_refused(
    register: kkt.Register, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = register.cash_in_drawer()
    calls = wrap(register, name, foreign_refusal)
    with caplog.at_level(logging.WARNING, logger="kkt.register"):
        getattr(register, name)(SUM)  # done: no error, so the caller does not put it in again
    assert calls.amounts == [SUM]  # never resent
    assert register.cash_in_drawer() == before + OPERATIONS[name]
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "66h" in warning.getMessage() and f"from {before} to" in warning.getMessage()


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_a_success_the_drawer_denies_is_cash_not_moved(register: kkt.Register, name: str) -> None:
    before = register.cash_in_drawer()
    calls = wrap(register, name, foreign_success)
    with pytest.raises(CashNotMoved, match=f"still holds {before} kopecks.*safe to repeat"):
        getattr(register, name)(SUM)
    assert calls.amounts == [SUM]
    assert register.cash_in_drawer() == before


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_a_failure_the_drawer_confirms_is_raised_as_it_was(
    register: kkt.Register, name: str
) -> None:
    before = register.cash_in_drawer()
    calls = wrap(register, name, lost)
    with pytest.raises(OutcomeUnknown, match="the answer was lost"):
        getattr(register, name)(SUM)
    assert calls.amounts == [SUM]
    assert register.cash_in_drawer() == before


def test_a_real_refusal_is_raised_unchanged(register: kkt.Register) -> None:
    before = register.cash_in_drawer()
    with pytest.raises(DeviceError) as refused:
        register.cash_out(before + 1)  # more than the drawer holds: the register refuses
    assert not isinstance(refused.value, CashNotMoved)
    assert register.cash_in_drawer() == before


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_a_drawer_moved_by_another_sum_is_outcome_unknown(
    register: kkt.Register, name: str
) -> None:
    before = register.cash_in_drawer()
    deposit = register.device.cash_in

    def also_another_program(calls: Calls, amount: int) -> None:
        calls.real(amount)
        deposit(700)  # another program puts cash in meanwhile

    calls = wrap(register, name, also_another_program)
    after = before + OPERATIONS[name] + 700
    with pytest.raises(OutcomeUnknown, match=f"from {before} to {after} kopecks.*kkt cash"):
        getattr(register, name)(SUM)
    assert calls.amounts == [SUM]


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_a_drawer_that_cannot_be_read_after_is_outcome_unknown(
    register: kkt.Register, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = register.cash_in_drawer()
    real_read = register.device.cash_in_drawer
    reads: list[bool] = []  # True for each read of the drawer that succeeded

    def read() -> int:
        if calls.amounts:  # from the moment the command went out, the line is gone
            reads.append(False)
            raise TransportError("the port is gone")
        reads.append(True)
        return real_read()

    monkeypatch.setattr(register.device, "cash_in_drawer", read)
    calls = wrap(register, name, lambda calls, amount: calls.real(amount))
    with pytest.raises(OutcomeUnknown, match=f"held {before} kopecks before.*kkt cash"):
        getattr(register, name)(SUM)
    assert calls.amounts == [SUM]
    # A query: read again after a failure; the command never.
    assert reads == [True] + [False] * DRAWER_TRIES
    reads.clear()
    with pytest.raises(TransportError):
        getattr(register, name)(SUM)  # the drawer unread before: nothing is sent
    assert calls.amounts == [SUM] and reads == [False] * DRAWER_TRIES


def test_a_read_of_the_drawer_answered_by_another_task_is_read_again(
    register: kkt.Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = register.cash_in_drawer()
    real_read = register.device.cash_in_drawer
    reads: list[int] = []

    def read() -> int:
        reads.append(1)
        if len(reads) in (1, 3):  # another program's refusal taken for each read once
            raise DeviceError("66h: command not supported in this mode", code=0x66)
        return real_read()

    monkeypatch.setattr(register.device, "cash_in_drawer", read)
    register.cash_in(SUM)
    assert len(reads) == 4
    assert real_read() == before + SUM


@pytest.mark.parametrize("amount", [0, -5])
def test_a_sum_of_nothing_is_refused_before_anything_is_sent(
    register: kkt.Register, amount: int
) -> None:
    calls = wrap(register, "cash_in", lambda calls, amount: calls.real(amount))
    with pytest.raises(kkt.CannotSend, match="above zero"):
        register.cash_in(amount)
    assert calls.amounts == []


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
def test_a_deposit_into_a_drawer_below_zero_is_done(tmp_path: Path, protocol: str) -> None:
    """The emulator lets a cash return pay out more than the drawer holds and reads 0 then (a
    real register refuses: Shtrih 46h, ATOL 98h); a deposit shows only what lifts it above zero,
    and nothing else could have lifted it: done."""
    item = kkt.Item("Товар", 10_000, Decimal(1), kkt.Vat.VAT20)
    with kkt.connect(f"emulator:{tmp_path / 'state'}", protocol=protocol) as register:
        register.open_shift()
        register.sell_return(kkt.Receipt((item,), kkt.Payments(cash=10_000)))
        assert register.cash_in_drawer() == 0  # 100.00 below zero
        calls = wrap(register, "cash_in", lambda calls, amount: calls.real(amount))
        register.cash_in(SUM)
        assert calls.amounts == [SUM]
        assert register.cash_in_drawer() == SUM - 10_000


def test_shtrih_a_lost_answer_of_an_executed_cash_in_is_done(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The emulator forgets the answer after doing the work (fault ``lose_answers``): the driver
    cannot tell from the link, the drawer can."""
    device: Any = open_device(tmp_path / "state")
    faults = Faults()
    settings = HostSettings(ack=0.3, byte=0.3, quiet=0.05, probe=0.2, answer=2.0)
    try:
        with ServiceThread(device, faults) as served:
            url = f"socket://127.0.0.1:{served.port}"
            with kkt.connect(url, settings=settings) as register:
                register.open_shift()
                before = register.cash_in_drawer()
                exchange = register.device.commander.exchange  # type: ignore[attr-defined]
                commands: list[bytes] = []

                def lose_the_cash_in_answer(payload: bytes, **kwargs: Any) -> bytes:
                    commands.append(payload[:1])
                    if payload[:1] == b"\x50":  # 50h: cash in
                        faults.configure(lose_answers=1)
                    return exchange(payload, **kwargs)  # type: ignore[no-any-return]

                register.device.commander.exchange = lose_the_cash_in_answer  # type: ignore[attr-defined]
                with caplog.at_level(logging.WARNING, logger="kkt.register"):
                    register.cash_in(SUM)  # the link could not tell (OutcomeUnknown): done
                assert "no longer holds its answer" in caplog.text and "done" in caplog.text
                assert register.cash_in_drawer() == before + SUM
                assert commands.count(b"\x50") == 1  # never resent
    finally:
        device.close()
