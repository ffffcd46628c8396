"""Fixtures for the FN emulator tests."""

from __future__ import annotations

import datetime as dt

import pytest
from kkt.emulator.clock import ManualClock
from kkt.emulator.fn import FiscalStorage, FnConfig, MemoryStore
from support.fn import START, registration


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def fn(clock: ManualClock) -> FiscalStorage:
    return FiscalStorage(MemoryStore(), clock, config=FnConfig(archive_capacity=1000))


@pytest.fixture
def registered(fn: FiscalStorage, clock: ManualClock) -> FiscalStorage:
    fn.register(registration())
    clock.advance(dt.timedelta(minutes=1))
    return fn
