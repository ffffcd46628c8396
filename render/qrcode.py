"""The QR code of a receipt as modules, sized as the 2025 print rules ask.

The symbol (FFD §3, Table 5, via ``ofd-cloud-marking.md`` §3.2 and §3.4): QR Model 2, error
correction L or higher, at least 20 x 20 mm printed (Приказ ФНС ЕД-7-20/236@, in force from
01.09.2025), and the same on a screen.  We choose level **M**: a thermal tape fades and scuffs,
and M still fits a 71-character receipt string in version 5 (37 modules), which at the tape's
203 dpi and 5 dots a module is 185 dots = 23.1 mm -- above the 20 mm minimum on 58-mm paper.
`module_dots` makes the modules whole dots and the symbol (quiet zone not counted) at least 20 mm.

segno (pure Python, no dependencies, encodes with the standard's own mask evaluation) builds the
matrix; we draw it ourselves in each format so every output has the same geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

from .tape import DOTS_PER_MM, RenderError

MIN_SIZE_MM = 20  # the 2025 rule, for the symbol itself
QUIET_ZONE = 4  # modules of white around the symbol (ISO/IEC 18004)
ERROR_LEVEL = "M"


@dataclass(frozen=True, slots=True)
class QrMatrix:
    """The modules of one QR symbol: ``rows[y][x]`` is True for a dark module."""

    data: str
    version: int
    rows: tuple[tuple[bool, ...], ...]

    @property
    def size(self) -> int:
        return len(self.rows)

    def module_dots(self) -> int:
        """Dots per module at 203 dpi: whole dots, the symbol at least `MIN_SIZE_MM`."""
        needed = MIN_SIZE_MM * DOTS_PER_MM
        return -(-needed // self.size)

    def dark_runs(self) -> list[tuple[int, int, int]]:
        """``(row, first column, length)`` of every horizontal run of dark modules."""
        runs = []
        for y, row in enumerate(self.rows):
            x = 0
            while x < len(row):
                if row[x]:
                    start = x
                    while x < len(row) and row[x]:
                        x += 1
                    runs.append((y, start, x - start))
                else:
                    x += 1
        return runs


def qr_matrix(data: str) -> QrMatrix:
    """The QR symbol of ``data`` at error level M (segno picks the smallest version)."""
    import segno  # a core dependency, imported here to keep `import kkt` light

    if not data:
        raise RenderError("a QR code needs text to carry")
    code = segno.make_qr(data, error=ERROR_LEVEL, boost_error=False)
    rows = tuple(tuple(bool(cell) for cell in row) for row in code.matrix)
    version = code.version
    return QrMatrix(data, int(version) if isinstance(version, int) else 0, rows)
