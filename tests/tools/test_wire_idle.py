"""`kkt bench wire`'s account of the idle line: each wait charged to the side that ended it."""

from __future__ import annotations

import pytest
from kkt.tools.bench.wire import Idle


def test_each_wait_is_charged_to_the_writer_that_ended_it() -> None:
    idle = Idle()
    idle.carried(True, 0.000, 0.010, 0.010)  # the host's frame: 10 ms on the line
    idle.carried(False, 0.012, 0.013, 0.013)  # the register answers 2 ms later
    idle.carried(True, 0.0135, 0.014, 0.014)  # the host ACKs 0.5 ms after that
    assert idle.for_device == pytest.approx(0.002)
    assert idle.for_host == pytest.approx(0.0005)
    assert idle.for_relay == 0.0


def test_a_late_delivery_is_the_relays_not_the_receivers() -> None:
    """The frame was due at 10 ms but delivered at 10.3 ms: of the 1 ms before the answer
    began, 0.3 ms are the relay's lateness, 0.7 ms the register's."""
    idle = Idle()
    idle.carried(True, 0.000, 0.010, 0.0103)
    idle.carried(False, 0.011, 0.012, 0.012)
    assert idle.for_relay == pytest.approx(0.0003)
    assert idle.for_device == pytest.approx(0.0007)


def test_overlapping_chunks_leave_no_wait() -> None:
    """An ACK written while the other direction still carries bytes: nothing was waited for."""
    idle = Idle()
    idle.carried(False, 0.000, 0.005, 0.005)
    idle.carried(True, 0.004, 0.0041, 0.0041)
    idle.carried(False, 0.005, 0.006, 0.006)
    assert (idle.for_device, idle.for_host, idle.for_relay) == (0.0, 0.0, 0.0)
