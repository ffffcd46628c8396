"""Golden text renders: every document type the emulator forms, at 32, 42 and 48 characters,
compared byte for byte with a committed fixture (``golden/<document>-<width>.txt``).

The documents are real ones (the emulated register and FN, a fixed clock and signing secret:
`support.documents`).  After a deliberate change of the print form, rewrite the fixtures with
``KKT_REGOLD=1 python -m pytest tests/render/test_text_golden.py`` and read the diff.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest
from kkt.protocols.ffd import TlvList
from kkt.render import WIDTHS, document_tape, render
from support.documents import every_document

GOLDEN = Path(__file__).parent / "golden"
NAMES = (
    "registration",
    "shift_open",
    "receipt_sale",
    "receipt_return",
    "receipt_buy",
    "correction",
    "state_report",
    "shift_close",
    "reregistration",
    "fn_close",
)


@cache
def documents() -> dict[str, tuple[TlvList, int]]:
    return every_document()


def test_the_documents_cover_every_type_the_emulator_forms() -> None:
    kinds = {tlv[0][0] for tlv, _ in documents().values()}
    assert kinds == {1, 2, 3, 5, 6, 11, 21, 31}
    assert set(documents()) == set(NAMES)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", NAMES)
def test_text_render_is_the_golden_one(name: str, width: int) -> None:
    tlv, change = documents()[name]
    text = render(tlv, "txt", width=width, change=change)
    assert isinstance(text, str)
    path = GOLDEN / f"{name}-{width}.txt"
    if os.environ.get("KKT_REGOLD"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")
    assert all(len(line) <= width for line in text.splitlines())


@pytest.mark.parametrize("width", WIDTHS)
def test_no_line_is_wider_than_the_tape(width: int) -> None:
    for tlv, change in documents().values():
        tape = document_tape(tlv, width=width, change=change)
        lines = render(tape, "txt").splitlines()
        assert lines and max(map(len, lines)) <= width
