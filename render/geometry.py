"""Where each entry of a tape goes on paper, in printer dots (203 dpi), for SVG and PNG alike.

The 2025 print rules (``ofd-cloud-marking.md`` §3.4) ask for lowercase letters at least 2 mm
high and at least 0.5 mm between lines.  At 8 dots per mm that is 16 dots: DejaVu Sans Mono's
x-height is 1120/2048 of its size, so the font is drawn at 30 dots (x-height 16.4 dots) and then
narrowed to the tape's character cell (12 dots at 32 or 48 characters, 9.1 at 42), as a
printer's tall, narrow font is; a line is 40 dots (5 mm), 35 of glyphs and 5 of gap.  The sheet
doubts a 42-column 58-mm tape can meet the rule with a printer's own font (§3.4 [?]); narrowing
keeps the height, so ours does.
"""

from __future__ import annotations

from dataclasses import dataclass

from .qrcode import QUIET_ZONE, QrMatrix, qr_matrix
from .tape import Cut, Line, QrCode, Tape

FONT_DOTS = 30  # font size: x-height 16.4 dots >= 2 mm
ASCENT_DOTS = 28  # baseline below a line's top (DejaVu's ascent at 30 dots is 27.8)
LINE_DOTS = 40  # line pitch: glyphs (34.9 dots) + a gap >= 0.5 mm
CUT_DOTS = 32  # room a cut mark takes
MARGIN = 16  # dots of blank paper each side and at both ends (2 mm)


@dataclass(frozen=True, slots=True)
class PlacedLine:
    top: int
    text: str
    bold: bool


@dataclass(frozen=True, slots=True)
class PlacedQr:
    top: int
    left: int
    matrix: QrMatrix
    module: int  # dots per module

    @property
    def side(self) -> int:
        """The symbol with its quiet zone, in dots."""
        return (self.matrix.size + 2 * QUIET_ZONE) * self.module


@dataclass(frozen=True, slots=True)
class PlacedCut:
    top: int
    partial: bool


Placed = PlacedLine | PlacedQr | PlacedCut


@dataclass(frozen=True, slots=True)
class Sheet:
    width: int  # dots: printable width and margins
    height: int
    cell: float  # dots per character
    items: tuple[Placed, ...]


def place(tape: Tape) -> Sheet:
    items: list[Placed] = []
    y = MARGIN
    for entry in tape.entries:
        if isinstance(entry, Line):
            items.append(PlacedLine(y, entry.text, entry.bold))
            y += LINE_DOTS
        elif isinstance(entry, QrCode):
            matrix = qr_matrix(entry.data)
            module = matrix.module_dots()
            side = (matrix.size + 2 * QUIET_ZONE) * module
            left = MARGIN + max(0, (tape.dots - side) // 2)
            items.append(PlacedQr(y, left, matrix, module))
            y += side
        elif isinstance(entry, Cut):
            items.append(PlacedCut(y, entry.partial))
            y += CUT_DOTS
    return Sheet(tape.dots + 2 * MARGIN, y + MARGIN, tape.dots / tape.width, tuple(items))
