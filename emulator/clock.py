"""Clocks for the emulator core: real time by default, shifted or hand-driven for tests.

The fiscal core never reads the system clock itself; it asks the clock it was given.  Times are
naive local wall-clock datetimes -- the form a register prints and the FN stores (YY MM DD HH MM).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    """The host's local time plus an adjustable offset (advance it to see a shift expire)."""

    def __init__(self, offset: dt.timedelta = dt.timedelta(0)) -> None:
        self._offset = offset
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            offset = self._offset
        return dt.datetime.now().replace(microsecond=0) + offset

    def advance(self, delta: dt.timedelta) -> None:
        """Move time forward (or back, to test the FN's refusal) by ``delta``."""
        with self._lock:
            self._offset += delta

    def set(self, when: dt.datetime) -> None:
        """Make `now` read ``when`` from this instant on (a register's set-date/time command)."""
        with self._lock:
            self._offset = when - dt.datetime.now().replace(microsecond=0)

    @property
    def offset(self) -> dt.timedelta:
        return self._offset


class ManualClock:
    """A clock that only moves when told to: deterministic tests."""

    def __init__(self, start: dt.datetime) -> None:
        self._now = start.replace(microsecond=0)

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, delta: dt.timedelta) -> None:
        self._now += delta

    def set(self, when: dt.datetime) -> None:
        self._now = when.replace(microsecond=0)
