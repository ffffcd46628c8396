"""One state directory, one owner: the lock (and pidfile) every opener of a state passes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kkt.emulator.shtrih import open_device
from kkt.emulator.state import LOCK_NAME, StateBusy, StateLock, state_owner

import kkt
from kkt.errors import PortBusy

pytestmark = pytest.mark.timeout(30)


def test_a_second_opener_is_refused_before_it_touches_anything(tmp_path: Path) -> None:
    state = tmp_path / "kkt"
    state.mkdir()
    held = StateLock.acquire(state, command="the first opener")
    try:
        with pytest.raises(StateBusy) as refused:
            open_device(state)
        # Nothing but the lock file: no archive created, no settings written.
        assert sorted(path.name for path in state.iterdir()) == [LOCK_NAME]
        assert refused.value.owner.pid == os.getpid()
        assert f"process {os.getpid()} (the first opener)" in str(refused.value)
        assert "kill" in str(refused.value) and "kkt emulator serve --state" in str(refused.value)
        owner = state_owner(state)
        assert owner is not None and owner.pid == os.getpid() and not owner.serving
    finally:
        held.release()
    assert state_owner(state) is None
    open_device(state).close()


def test_an_open_register_holds_its_state_until_closed(tmp_path: Path) -> None:
    state = tmp_path / "kkt"
    first = open_device(state)
    try:
        documents = first.fn.status().last_number
        with pytest.raises(StateBusy):
            open_device(state)
        with pytest.raises(PortBusy, match=f"in use by process {os.getpid()}"):
            kkt.connect(f"emulator:{state}")
        assert first.fn.status().last_number == documents
        assert first.verify().ok
    finally:
        first.close()
    again = open_device(state)  # closing let go
    again.close()
    assert (state / LOCK_NAME).read_text().split("\n")[0] == str(os.getpid())  # the pidfile


def test_a_killed_owner_does_not_block(tmp_path: Path) -> None:
    state = tmp_path / "kkt"
    holder = (
        "import sys, time; from pathlib import Path; from kkt.emulator.shtrih import open_device;"
        "device = open_device(Path(sys.argv[1])); print('ready', flush=True); time.sleep(60)"
    )
    with subprocess.Popen(
        [sys.executable, "-c", holder, str(state)], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
            owner = state_owner(state)
            assert owner is not None and owner.pid == process.pid
            with pytest.raises(StateBusy, match=f"process {process.pid}"):
                open_device(state)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
    # The pidfile still names the dead process, but the kernel dropped its lock.
    assert (state / LOCK_NAME).read_text().startswith(f"{process.pid}\n")
    assert state_owner(state) is None
    device = open_device(state)
    try:
        assert device.verify().ok
    finally:
        device.close()
