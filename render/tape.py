"""A receipt tape as the printer lays it out: lines of text no wider than the tape, QR codes and
cuts.  Every output format (text, SVG, PNG, HTML) draws the same `Tape`, so what one shows the
others show too.

The tape's geometry is that of a thermal printer at 203 dpi (8 dots per mm), the usual head of
ШТРИХ and АТОЛ registers: `TAPE_DOTS` gives the printable width for each line width we render
(fact sheet ``ofd-cloud-marking.md`` §3.3: 32 characters -- ESC/POS 58 mm, 384 dots, font 12x24;
42 -- АТОЛ 22Ф, 58 mm, 384 dots; 48 -- АТОЛ 25Ф and ШТРИХ-М-01Ф, 80 mm, 576 dots).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

DOTS_PER_MM = 8  # 203 dpi, the thermal head of the registers this package drives
TAPE_DOTS = {32: 384, 42: 384, 48: 576}  # printable dots per line width (see the docstring)
WIDTHS = tuple(sorted(TAPE_DOTS))


class RenderError(Exception):
    """A document or tape cannot be rendered; the message says why and what to do."""


class MissingExtra(RenderError):
    """An optional library the chosen format needs is not installed (the message names the
    ``pip install`` that brings it)."""


@dataclass(frozen=True, slots=True)
class Line:
    """One printed line, at most the tape's width; ``bold`` for titles and the total."""

    text: str
    bold: bool = False


@dataclass(frozen=True, slots=True)
class QrCode:
    """A printed QR code carrying ``data`` (tag 1196's string)."""

    data: str


@dataclass(frozen=True, slots=True)
class Cut:
    """The knife: a full or a partial cut of the tape."""

    partial: bool = False


Entry = Line | QrCode | Cut


@dataclass(frozen=True, slots=True)
class Printed:
    """One detail of a document's print form as printed: its tag, label and value text."""

    tag: int
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Tape:
    """What a printer put on paper: ``entries`` at ``width`` characters a line.

    ``title`` names it (the HTML page's title); ``printed`` lists the document's details as
    they were laid out (empty for a tape that is not one document)."""

    width: int
    entries: tuple[Entry, ...]
    title: str = "Чек"
    printed: tuple[Printed, ...] = field(default=())

    def __post_init__(self) -> None:
        check_width(self.width)
        for entry in self.entries:
            if isinstance(entry, Line) and len(entry.text) > self.width:
                raise RenderError(
                    f"line {entry.text!r} is {len(entry.text)} characters, "
                    f"the tape holds {self.width}"
                )

    @property
    def dots(self) -> int:
        """Printable width in printer dots (203 dpi)."""
        return TAPE_DOTS[self.width]

    @property
    def qr_codes(self) -> list[str]:
        return [entry.data for entry in self.entries if isinstance(entry, QrCode)]


def check_width(width: object) -> int:
    if isinstance(width, bool) or not isinstance(width, int) or width not in TAPE_DOTS:
        raise RenderError(
            f"line width {width!r} is not one we render: use {', '.join(map(str, WIDTHS))} "
            "characters (58 mm tape: 32 or 42, 80 mm: 48)"
        )
    return width


class Layout:
    """Lines of text laid out at a fixed width: centred, wrapped, label-value pairs."""

    def __init__(self, width: int) -> None:
        self.width = check_width(width)
        self.entries: list[Entry] = []

    def wrap(self, text: str) -> list[str]:
        """``text`` in lines of at most the width, broken between words where it can be."""
        text = " ".join(text.split())
        if not text:
            return []
        return textwrap.wrap(text, self.width, break_long_words=True, break_on_hyphens=False) or [
            ""
        ]

    def line(self, text: str, *, bold: bool = False) -> None:
        for part in self.wrap(text):
            self.entries.append(Line(part, bold))

    def center(self, text: str, *, bold: bool = False) -> None:
        for part in self.wrap(text):
            self.entries.append(Line(part.center(self.width).rstrip(), bold))

    def pair(self, label: str, value: str, *, bold: bool = False) -> None:
        """``label`` on the left, ``value`` flush right; on two lines (or more) when both do not
        fit on one, the value still flush right."""
        label = " ".join(label.split())
        value = " ".join(value.split())
        if not label:
            for part in self.wrap(value):
                self.entries.append(Line(part.rjust(self.width), bold))
            return
        if len(label) + len(value) + 1 <= self.width:
            gap = self.width - len(label) - len(value)
            self.entries.append(Line(label + " " * gap + value, bold))
            return
        self.line(label, bold=bold)
        for part in self.wrap(value):
            self.entries.append(Line(part.rjust(self.width), bold))

    def rule(self) -> None:
        self.entries.append(Line("-" * self.width))

    def qr(self, data: str) -> None:
        self.entries.append(QrCode(data))

    def cut(self, *, partial: bool = False) -> None:
        self.entries.append(Cut(partial))
