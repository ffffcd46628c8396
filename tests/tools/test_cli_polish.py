"""The ``kkt`` command as a newcomer meets it: what reaches the terminal, and how it reads
(session 30's review: logging, messages, help texts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kkt.emulator.faults import Faults
from kkt.emulator.personality import Personality
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device
from kkt.tools.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "receipt.json"


class ForgetTheClosingAnswer:
    """The register forgets the answer to the command that forms the next fiscal document once
    ``armed``: the driver's ENQ gets NAK, it logs a warning and settles the sale from the FN."""

    def __init__(self, register: Personality, faults: Faults) -> None:
        self.register = register
        self.faults = faults
        self.armed = False

    def execute(self, payload: bytes) -> bytes:
        before = self.register.fn.state.last_number
        answer = self.register.execute(payload)
        if self.armed and self.register.fn.state.last_number != before:
            self.armed = False
            self.faults.configure(lose_answers=1)  # this very answer (checked after execute)
        return answer

    def quick(self, payload: bytes) -> bool:
        return self.register.quick(payload)


@pytest.fixture
def forgetful(tmp_path: Path) -> Iterator[tuple[str, ForgetTheClosingAnswer]]:
    device = open_device(tmp_path / "served")
    faults = Faults()
    box = ForgetTheClosingAnswer(device, faults)
    try:
        with ServiceThread(box, faults) as thread:
            yield f"socket://127.0.0.1:{thread.port}", box
    finally:
        device.close()


@pytest.mark.parametrize(
    ("flags", "shown"),
    [((), False), (("-v",), True)],
)
def test_a_recovered_fault_is_no_news_without_v(
    forgetful: tuple[str, ForgetTheClosingAnswer],
    capsys: pytest.CaptureFixture[str],
    flags: tuple[str, ...],
    shown: bool,
) -> None:
    url, box = forgetful
    assert main(["--url", url, "shift", "open", "--json"]) == 0
    box.armed = True
    capsys.readouterr()
    assert main([*flags, "--url", url, "sell", str(EXAMPLE), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["fiscalDocumentNumber"] == 3  # settled from the FN: sold once
    warning = [line for line in err.splitlines() if "closing command failed" in line]
    if shown:
        assert len(warning) == 1 and warning[0].startswith("kkt: warning: closing command")
    else:
        assert err == ""
