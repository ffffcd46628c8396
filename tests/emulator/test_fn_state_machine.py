"""A hypothesis state machine drives the FN against a small reference model.

The reference knows only the rules: which call must be refused with which code, what the next
document number is, what the counters must hold.  After every step the FN's numbers and counters
must match it and `verify` must pass; the storage is closed and reopened at random.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from kkt.emulator.clock import ManualClock
from kkt.emulator.fn import (
    KEY_LIFE_36_MONTHS,
    FiscalStorage,
    FnCode,
    FnConfig,
    FnError,
    SqliteStore,
    VatSums,
)
from kkt.protocols.ffd import Payments
from support.fn import START, registration

SHIFT_LIMIT = dt.timedelta(hours=24)
OFD_BLOCK = dt.timedelta(days=30)
CONFIG = FnConfig(key_life_days=KEY_LIFE_36_MONTHS, archive_capacity=10**6)


class FnMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="kkt-fn-"))
        self.clock = ManualClock(START)
        self.fn = FiscalStorage(
            SqliteStore(self.directory / "fn.sqlite"), self.clock, config=CONFIG
        )
        self.fn.register(registration())
        # the reference model
        self.number = 1
        self.when = {1: START}
        self.first_unsent = 1
        self.shift_open = False
        self.shift_opened = START
        self.shift_number = 0
        self.receipts_in_shift = 0
        self.totals: dict[int, list[int]] = {
            op: [0, 0, 0, 0] for op in (1, 2, 3, 4)
        }  # count, total, cash, e
        self.corrections = 0

    def teardown(self) -> None:
        self.fn.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- helpers ----------------------------------------------------------------------------------

    def _blocked(self) -> bool:
        first = self.when.get(self.first_unsent)
        return first is not None and self.clock.now() - first > OFD_BLOCK

    def _call(self, expected: FnCode | None, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = call(*args, **kwargs)
        except FnError as error:
            assert error.code is expected, (
                f"refused with {error.code!r}, expected {expected!r}: {error}"
            )
            event(f"refused {error.code.name}")
            return None
        assert expected is None, f"expected refusal {expected!r}, got {result!r}"
        self.number += 1
        assert result.number == self.number
        self.when[self.number] = self.clock.now()
        return result

    # -- rules ------------------------------------------------------------------------------------

    @rule(minutes=st.one_of(st.integers(0, 90), st.integers(0, 3 * 24 * 60), st.just(31 * 24 * 60)))
    def advance_clock(self, minutes: int) -> None:
        self.clock.advance(dt.timedelta(minutes=minutes))

    @rule()
    def open_shift(self) -> None:
        expected = (
            FnCode.WRONG_STATE
            if self.shift_open
            else FnCode.STORAGE_LIMITED
            if self._blocked()
            else None
        )
        if self._call(expected, self.fn.open_shift):
            self.shift_open, self.shift_opened = True, self.clock.now()
            self.shift_number += 1
            self.receipts_in_shift = 0

    @rule(
        operation=st.sampled_from([1, 2, 3, 4]),
        cash=st.integers(0, 10**7),
        electronic=st.integers(0, 10**7),
        correction=st.booleans(),
    )
    def receipt(self, operation: int, cash: int, electronic: int, correction: bool) -> None:
        expected = None
        if not self.shift_open:
            expected = FnCode.WRONG_STATE
        elif self.clock.now() - self.shift_opened > SHIFT_LIMIT:
            expected = FnCode.SHIFT_EXPIRED
        elif self._blocked():
            expected = FnCode.STORAGE_LIMITED
        total = cash + electronic
        item = [(1059, [(1030, "товар"), (1079, total), (1043, total)])]
        formed = self._call(
            expected,
            self.fn.receipt,
            operation,
            total,
            Payments(cash=cash, electronic=electronic),
            VatSums(no_vat=total),
            item,
            correction=correction,
        )
        if formed:
            self.receipts_in_shift += 1
            assert formed.receipt_number == self.receipts_in_shift
            assert formed.shift_number == self.shift_number
            row = self.totals[operation]
            row[0] += 1
            row[1] += total
            row[2] += cash
            row[3] += electronic
            self.corrections += correction

    @rule()
    def close_shift(self) -> None:
        expected = None if self.shift_open else FnCode.WRONG_STATE
        if expected is None and self._blocked():
            expected = FnCode.STORAGE_LIMITED
        if self._call(expected, self.fn.close_shift):
            self.shift_open = False

    @rule()
    def state_report(self) -> None:
        self._call(FnCode.STORAGE_LIMITED if self._blocked() else None, self.fn.state_report)

    @rule(count=st.integers(1, 5))
    def ofd_confirms(self, count: int) -> None:
        for _ in range(count):
            if self.first_unsent > self.number:
                try:
                    self.fn.ofd_confirm(self.first_unsent)
                except FnError as error:
                    assert error.code is FnCode.OFD_REPLY_REJECTED
                else:
                    raise AssertionError("confirmation accepted with an empty queue")
                return
            self.fn.ofd_confirm(self.first_unsent)
            self.first_unsent += 1

    @rule()
    def reopen_storage(self) -> None:
        before = self.fn.state
        self.fn.close()
        self.fn = FiscalStorage(SqliteStore(self.directory / "fn.sqlite"), self.clock)
        assert self.fn.state == before

    # -- invariants -------------------------------------------------------------------------------

    @invariant()
    def numbers_and_queue_match(self) -> None:
        state = self.fn.state
        assert state.last_number == self.number
        assert state.shift_open == self.shift_open
        assert state.shift_number == self.shift_number
        queue = self.fn.ofd_queue()
        assert queue.unsent == self.number - self.first_unsent + 1
        if queue.unsent:
            assert (queue.first_number, queue.first_when) == (
                self.first_unsent,
                self.when[self.first_unsent],
            )

    @invariant()
    def counters_match_the_reference_and_the_archive(self) -> None:
        blocks = self.fn.state.total_counters.operations
        for operation, (count, total, cash, electronic) in self.totals.items():
            block = blocks[operation - 1]
            assert (block.count, block.total, block.cash, block.electronic) == (
                count,
                total,
                cash,
                electronic,
            )
        assert self.fn.state.total_counters.corrections.count == self.corrections
        verification = self.fn.verify()
        assert verification.ok, verification.problems


FnMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestFnStateMachine = FnMachine.TestCase
