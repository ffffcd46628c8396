"""Discovery: registers on a pty and on TCP are found; silent and missing ports are skipped."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device
from support.fake_usb import PID, VID, FakeUsbBackend

from kkt.discover import discover


@pytest.mark.timeout(60)
def test_finds_the_emulator_and_skips_the_rest(tmp_path: Path) -> None:
    device = open_device(tmp_path / "state")
    silent_master, silent_slave = os.openpty()  # a port with nothing behind it
    try:
        with ServiceThread(device, Faults(), pty=tmp_path / "tty") as emulator:
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


@pytest.mark.timeout(60)
def test_finds_a_usb_register_by_its_ids_and_leaves_other_devices_alone(tmp_path: Path) -> None:
    device = open_device(tmp_path / "state")
    other = (0x0781, 0x5567)  # a vendor device nobody asked about: never written to
    asked_silent = (0x2912, 0x0005)  # asked about, but it never answers: bounded, skipped
    backend = FakeUsbBackend(device, silent=(other, asked_silent))
    try:
        started = time.monotonic()
        found = discover([], usb_ids=[(VID, PID), asked_silent], usb_backend=backend, timeout=0.2)
        elapsed = time.monotonic() - started
    finally:
        device.close()
    assert [(f.url, f.usb_id, f.name, f.serial) for f in found] == [
        (f"usb://{VID:04x}:{PID:04x}", f"{VID:04x}:{PID:04x}", "ШТРИХ-М-01Ф", "0012345678")
    ]
    assert backend.opened == 0 and not backend.claimed  # every device released again
    assert other not in backend.written_to_silent, "a device nobody named was written to"
    assert backend.written_to_silent[asked_silent] > 0, "the named silent device was probed"
    assert elapsed < 10, f"discovery took {elapsed:.1f} s"


def test_excluded_and_unknown_ports_are_never_opened(tmp_path: Path) -> None:
    device = open_device(tmp_path / "state")
    backend = FakeUsbBackend(device)
    try:
        url = f"usb://{VID:04x}:{PID:04x}"
        assert discover([], usb_ids=[(VID, PID)], usb_backend=backend, exclude=[url]) == []
        assert backend.opened == 0 and backend.link.data_to_send() == b""
    finally:
        device.close()
