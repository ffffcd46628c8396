"""The driver prints at the line width of the model FCh names (one table: `models`), not at the
classic 40 (issue #15)."""

from __future__ import annotations

from pathlib import Path

from kkt.transport.inprocess import InProcess
from kkt.vendors.shtrih import ShtrihDevice


def test_print_text_fills_the_models_line(tmp_path: Path) -> None:
    commander = InProcess(tmp_path / "kkt")
    try:
        device = ShtrihDevice(commander)
        device.print_text("Ш" * 60 + "\nвторая строка")
        assert commander.register.tape()[-2:] == ["Ш" * 48, "вторая строка"]
    finally:
        commander.close()
