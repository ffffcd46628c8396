"""Issue 14, defects 3 and 5: a register of the other vendor is recognised within seconds, and a
session's overall deadline (`kkt.connect(time_limit=...)`, the CLI's ``--timeout``) bounds every
exchange and retry of a command -- without ever resending a money-moving command because of it.

Time bounds here are generous upper limits on behaviour that took 13-62 s before the fix.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kkt.emulator.atol import open_device as open_atol
from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device as open_shtrih

import kkt
from kkt import Item, Payments, Receipt, Vat
from kkt.errors import NotFiscalized, OutcomeUnknown, TransportError
from kkt.transport.session import TimeUp, WrongProtocol


@pytest.fixture
def atol_served(tmp_path: Path) -> Iterator[ServiceThread]:
    device = open_atol(tmp_path / "atol")
    try:
        with ServiceThread(device, Faults(), protocol="atol") as thread:
            yield thread
    finally:
        device.close()


@pytest.fixture
def shtrih_faults() -> Faults:
    return Faults()


@pytest.fixture
def shtrih_served(tmp_path: Path, shtrih_faults: Faults) -> Iterator[ServiceThread]:
    device = open_shtrih(tmp_path / "shtrih")
    try:
        with ServiceThread(device, shtrih_faults) as thread:
            yield thread
    finally:
        device.close()


@pytest.fixture
def silent() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_a_shtrih_client_recognises_an_atol_register(atol_served: ServiceThread) -> None:
    started = time.monotonic()
    with kkt.connect(f"socket://127.0.0.1:{atol_served.port}") as register:
        with pytest.raises(TransportError, match="--protocol atol") as caught:
            register.status()
    assert time.monotonic() - started < 10  # it took 57 s, and then blamed the cable
    assert isinstance(caught.value, kkt.WrongProtocol)  # a class of its own, for callers
    assert isinstance(caught.value.__cause__, WrongProtocol)
    assert "--protocol auto" in str(caught.value)


def test_an_atol_client_recognises_a_shtrih_register(shtrih_served: ServiceThread) -> None:
    started = time.monotonic()
    with kkt.connect(f"socket://127.0.0.1:{shtrih_served.port}", protocol="atol") as register:
        # Not "outcome unknown": a Shtrih register never executes an ATOL packet.
        with pytest.raises(TransportError, match="--protocol shtrih") as caught:
            register.status()
        assert time.monotonic() - started < 10  # it took 13 s
        # Known from now on: the next command fails at once, without touching the line.
        again = time.monotonic()
        with pytest.raises(TransportError, match="--protocol shtrih"):
            register.fn_info()
        assert time.monotonic() - again < 1
    assert isinstance(caught.value, kkt.WrongProtocol)  # a class of its own, for callers
    assert isinstance(caught.value.__cause__, WrongProtocol)


def test_auto_still_finds_each_protocol(
    atol_served: ServiceThread, shtrih_served: ServiceThread
) -> None:
    for port, vendor in ((atol_served.port, "atol"), (shtrih_served.port, "shtrih")):
        with kkt.connect(f"socket://127.0.0.1:{port}", protocol="auto") as register:
            assert register.device.vendor == vendor
            assert register.status().shift_open is False


def test_the_time_limit_bounds_a_whole_command_on_a_silent_line(silent: int) -> None:
    started = time.monotonic()
    with kkt.connect(f"socket://127.0.0.1:{silent}", time_limit=2.0) as register:
        # Status is several exchanges with retries; each alone may take 11 s.
        with pytest.raises(TransportError, match="time limit of 2 s") as caught:
            register.status()
        assert time.monotonic() - started < 6  # it took 57 s
        assert isinstance(caught.value.__cause__, TimeUp)
        with pytest.raises(TransportError, match="time limit"):  # every later one: at once
            register.fn_info()
    assert time.monotonic() - started < 7


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
def test_a_time_limit_must_be_positive(bad: float, silent: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        kkt.connect(f"socket://127.0.0.1:{silent}", time_limit=bad)


def test_the_time_limit_on_a_lossy_line_never_doubles_a_sale(
    shtrih_served: ServiceThread, shtrih_faults: Faults, tmp_path: Path
) -> None:
    url = f"socket://127.0.0.1:{shtrih_served.port}"
    with kkt.connect(url) as register:
        register.open_shift(cashier="Петрова А.")
        before = register.fn_info().last_document
    receipt = Receipt(items=(Item("Кофе", 19_900, vat=Vat.VAT20),), payments=Payments(cash=19_900))
    shtrih_faults.configure(drop=0.3, seed=3)
    started = time.monotonic()
    outcome: object
    with kkt.connect(url, time_limit=3.0) as register:
        try:
            outcome = register.sell(receipt)
        except (OutcomeUnknown, NotFiscalized, TransportError) as error:
            outcome = error
    assert time.monotonic() - started < 10, outcome  # a status alone took 62 s
    shtrih_faults.clear()
    with kkt.connect(url) as register:
        formed = register.fn_info().last_document - before
    # At most the one receipt, never two -- whatever the deadline cut.
    assert formed in (0, 1)
    if not isinstance(outcome, OutcomeUnknown):
        assert formed == (0 if isinstance(outcome, KktErrorTypes) else 1)


KktErrorTypes = (NotFiscalized, TransportError)
