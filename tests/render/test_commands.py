"""Where users reach the renderer: ``kkt doc N --format …`` and ``kkt emulator ctl tape
--format …`` (the emulated printer's tape, its non-fiscal text and cuts included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zxingcpp
from kkt.emulator.control import Controls
from kkt.emulator.faults import Faults
from kkt.emulator.printer import QR_MARKER
from kkt.emulator.shtrih import open_device
from kkt.protocols.ffd import parse_qr
from kkt.render import Cut, Line, QrCode, to_text
from kkt.tools.cli import main
from kkt.tools.render_cli import printed_tape
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "receipt.json"


def test_kkt_doc_draws_the_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = ["--url", f"emulator:{tmp_path / 'register'}"]
    assert main([*url, "shift", "open", "--cashier", "Петрова А."]) == 0
    capsys.readouterr()
    assert main([*url, "sell", str(EXAMPLE), "--json"]) == 0
    sold = json.loads(capsys.readouterr().out)
    assert main([*url, "doc", "3", "--format", "txt", "--width", "32"]) == 0
    text = capsys.readouterr().out
    assert "КАССОВЫЙ ЧЕК" in text and "Круассан с миндалём" in text
    assert max(len(line) for line in text.splitlines()) <= 32
    qr_lines = text.split("QR:\n", 1)[1].splitlines()
    assert "".join(qr_lines) == sold["qr"]
    svg = tmp_path / "receipt.svg"
    assert main([*url, "doc", "3", "--format", "svg", "-o", str(svg)]) == 0
    assert "svg written to" in capsys.readouterr().err
    assert svg.read_text(encoding="utf-8").startswith("<svg") and "ИТОГ" in svg.read_text()
    png = tmp_path / "receipt.png"
    assert main([*url, "doc", "3", "--format", "png", "--width", "42", "-o", str(png)]) == 0
    decoded = zxingcpp.read_barcodes(Image.open(png).convert("L"))
    assert [code.text for code in decoded] == [sold["qr"]]
    assert main([*url, "doc", "3", "--format", "html", "--json"]) == 2
    assert "choose one" in capsys.readouterr().err
    assert main([*url, "doc", "3", "--format", "pdf"]) == 2  # argparse names the choices
    capsys.readouterr()
    assert main([*url, "doc", "3", "--width", "32"]) == 2  # a width draws nothing by itself
    assert "give --format" in capsys.readouterr().err


def test_ctl_tape_draws_the_printed_tape(tmp_path: Path) -> None:
    device = open_device(tmp_path / "state")
    try:
        controls = Controls(device, Faults())
        model = device.model
        model.open_shift([])
        model.print_lines(["Добро пожаловать!"])
        model.cut(partial=True)
        answer = controls.handle({"action": "tape"})
        assert answer["width"] == model.printer.width
        tape = printed_tape(answer["lines"], answer["width"])
        assert Cut(partial=True) in tape.entries
        assert Line("Добро пожаловать!") in tape.entries
        assert "частичный отрез" in to_text(tape)
    finally:
        device.close()


def test_the_tape_keeps_a_qr_code_whole() -> None:
    qr = "t=20261102T091400&s=633.00&fn=9999078900000001&i=3&fp=1176722932&n=1"
    tape = printed_tape(["ИТОГ", QR_MARKER + qr, "-------- cut --------"], 32)
    assert tape.entries == (Line("ИТОГ"), QrCode(qr), Cut())
    assert parse_qr(tape.qr_codes[0]).fd == 3
