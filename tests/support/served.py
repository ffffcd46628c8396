"""An emulated register served on TCP for command-line tests, its control channel at hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.atol import open_device as open_atol
from kkt.emulator.control import Controls
from kkt.emulator.faults import Faults
from kkt.emulator.personality import Personality
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device
from kkt.tools.cli import main


class Served:
    """An emulated register on TCP, with its control channel's actions at hand."""

    def __init__(self, device: Personality, thread: ServiceThread, protocol: str) -> None:
        self.device = device
        self.controls = Controls(device, Faults())
        self.url = f"socket://127.0.0.1:{thread.port}"
        self.protocol = protocol

    def ctl(self, **request: Any) -> dict[str, Any]:
        return self.controls.handle(request)

    def run(self, capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> tuple[str, str]:
        """`kkt --url ... ARGV`: its stdout and stderr; asserts its exit code and no traceback."""
        capsys.readouterr()
        returned = main(["--url", self.url, "--protocol", self.protocol, *argv])
        out, err = capsys.readouterr()
        assert returned == code, f"kkt {' '.join(argv)} -> {returned}: {err or out}"
        assert "Traceback" not in err
        return out, err

    def kkt(self, capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> str:
        """What the user reads: stderr of a failure, else stdout."""
        out, err = self.run(capsys, *argv, code=code)
        return err if code else out


def serve(tmp_path: Path, protocol: str, kind: type[Served] = Served) -> Iterator[Served]:
    """A fixture's body: the register of ``protocol`` served until the test ends."""
    device = (open_atol if protocol == "atol" else open_device)(tmp_path / protocol)
    try:
        with ServiceThread(device, Faults(), protocol=protocol) as thread:
            yield kind(device, thread, protocol)
    finally:
        device.close()
