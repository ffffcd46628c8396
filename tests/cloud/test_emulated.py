"""The emulated registers' child process: it serves N registers and the OFD they send to, dies
with its parent (even a ``kill -9`` of it), and a restart finds the same FNs on the same ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kkt.cloud.emulated import EmulatedError, EmulatedPool
from kkt.emulator.state import state_owner

import kkt

# A service in a process of its own: it starts the emulated registers, says where they are, and
# waits to be killed.
PARENT = """
import sys, time
import kkt
from kkt.cloud.emulated import EmulatedPool
pool = EmulatedPool(sys.argv[1], 2, "mixed")
pool.start()
with kkt.connect(pool.urls[0]) as register:
    serial = register.fn_info().serial
print(pool.pid, serial, *pool.ports, flush=True)
time.sleep(600)
"""


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaps counts: it holds no locks or sockets)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def test_the_child_dies_with_its_parent_and_a_restart_finds_its_registers(
    tmp_path: Path,
) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child, serial, *ports = parent.stdout.readline().split()
        assert state_owner(tmp_path / "emulated" / "00") is not None
    finally:
        parent.kill()  # SIGKILL: the parent cannot say goodbye
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 60  # a bound on a hang, not a speed requirement
    while not gone(int(child)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not gone(int(child)):
        os.kill(int(child), signal.SIGKILL)
        pytest.fail("the emulated registers' process outlived its parent")
    for name in ("00", "01", "ofd"):
        assert state_owner(tmp_path / "emulated" / name) is None, name

    with EmulatedPool(tmp_path, 2, "mixed") as pool:
        assert [str(port) for port in pool.ports] == ports  # free again: taken again
        assert [spec.protocol for spec in pool.specs("demo")] == ["shtrih", "atol"]
        with kkt.connect(pool.urls[0]) as register:
            assert register.fn_info().serial == serial
        status = pool.control(1, {"action": "status"})
        assert status["status"]["phase"] == 3
        with pytest.raises(EmulatedError, match="paper needs"):
            pool.control(0, {"action": "paper", "state": "sideways"})
        with pytest.raises(EmulatedError, match=r"in use by .*kkt cloud serve"):
            EmulatedPool(tmp_path, 2, "mixed").start()  # the states have their owner
        assert pool.ofd_control({"action": "status"})["listening"] is True
    assert pool.pid is None
    assert (tmp_path / "emulated").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("count", "protocol", "message"),
    [
        (0, "shtrih", "count must be"),
        (101, "shtrih", "count must be"),
        (True, "shtrih", "count must be"),
        (2, "ibm", "protocol 'ibm' is not one of"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(
    tmp_path: Path, count: int, protocol: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        EmulatedPool(tmp_path, count, protocol)
    assert not (tmp_path / "emulated").exists()


def test_specs_need_a_started_pool(tmp_path: Path) -> None:
    pool = EmulatedPool(tmp_path, 3, "mixed")
    assert pool.protocols() == ["shtrih", "atol", "shtrih"]
    with pytest.raises(RuntimeError, match="start"):
        pool.specs("demo")
