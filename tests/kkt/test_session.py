"""The blocking host session against the emulated register over TCP (pyserial's socket://)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import ShtrihRegister, open_device
from kkt.protocols.errors import LinkError
from kkt.protocols.shtrih import classic, fn
from kkt.protocols.shtrih.errors import ShtrihDeviceError
from kkt.protocols.shtrih.link import AnswerLost, HostSettings
from kkt.tools.demo import run_demo

from kkt.transport.ports import open_port
from kkt.transport.session import ShtrihSession

SYS = 30


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[ShtrihSession, ShtrihRegister, Faults]]:
    register = open_device(tmp_path / "state")
    faults = Faults()
    with ServiceThread(register, faults) as emulator:
        port = open_port(f"socket://127.0.0.1:{emulator.port}")
        session = ShtrihSession(port, settings=HostSettings(ack=0.5, quiet=0.05, probe=0.2))
        try:
            yield session, register, faults
        finally:
            session.close()
    register.close()


@pytest.mark.timeout(60)
def test_typed_commands_over_socket(rig: tuple[ShtrihSession, ShtrihRegister, Faults]) -> None:
    session, register, _ = rig
    assert session.execute(classic.GetDeviceType()).model == 250
    session.execute(classic.OpenShift(SYS))
    assert session.execute(fn.GetShiftParams(SYS)).shift_open
    assert register.fn.state.shift_open
    with pytest.raises(ShtrihDeviceError) as caught:
        session.execute(classic.OpenShift(SYS))
    assert caught.value.code == 0x3C


@pytest.mark.timeout(60)
def test_an_answer_lost_on_the_line_is_collected_by_the_probe(
    rig: tuple[ShtrihSession, ShtrihRegister, Faults],
) -> None:
    session, register, faults = rig
    faults.configure(drop_answers=1)
    session.execute(classic.OpenShift(SYS))  # E0h: 100 s answer time, yet back in well under it
    assert register.fn.state.shift_open and register.fn.status().last_number == 2


@pytest.mark.timeout(60)
def test_a_forgotten_answer_is_reported_as_maybe_executed(
    rig: tuple[ShtrihSession, ShtrihRegister, Faults],
) -> None:
    session, register, faults = rig
    faults.configure(lose_answers=1)
    with pytest.raises(AnswerLost) as caught:
        session.execute(classic.OpenShift(SYS))
    assert isinstance(caught.value, LinkError) and caught.value.maybe_executed
    assert register.fn.state.shift_open  # it was executed: the caller must check, not resend
    assert session.execute(fn.GetShiftParams(SYS)).shift_number == 1


@pytest.mark.timeout(60)
def test_demo_runs_the_whole_stack() -> None:
    out = io.StringIO()
    assert run_demo(out) == 0
    text = out.getvalue()
    assert (
        "ШТРИХ-М-01Ф" in text
        and "receipts formed: 1" in text
        and "verified: 4 documents, ok" in text
    )
