"""Discovery: registers on a pty and on TCP are found; silent and missing ports are skipped."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from kkt.emulator.faults import Faults
from kkt.emulator.shtrih import open_device
from kkt.tools.demo import EmulatorThread

from kkt.discover import discover


@pytest.mark.timeout(60)
def test_finds_the_emulator_and_skips_the_rest(tmp_path: Path) -> None:
    device = open_device(tmp_path / "state")
    silent_master, silent_slave = os.openpty()  # a port with nothing behind it
    try:
        with EmulatorThread(device, Faults(), pty=tmp_path / "tty") as emulator:
            started = time.monotonic()
            found = discover(
                [str(tmp_path / "missing"), os.ttyname(silent_slave), str(tmp_path / "tty")],
                bauds=(115200, 4800),
                hosts=[f"127.0.0.1:{emulator.port}", "127.0.0.1:1"],
                timeout=0.2,
            )
            elapsed = time.monotonic() - started
    finally:
        os.close(silent_master)
        os.close(silent_slave)
        device.close()
    assert [(f.url, f.baudrate) for f in found] == [
        (str(tmp_path / "tty"), 115200),
        (f"socket://127.0.0.1:{emulator.port}", None),
    ]
    assert {(f.model, f.name, f.serial) for f in found} == {(250, "ШТРИХ-М-01Ф", "0012345678")}
    assert elapsed < 10, f"discovery took {elapsed:.1f} s"
