"""The receipt printer of an emulated register: a tape of text lines, paper, cover.

A fiscal-only register (registered for internet/automatic use) has no printer at all: it is
created with ``present=False`` and keeps no tape.  Printing while paper is out raises `PaperOut`;
the personality turns that into its protocol's error and submode.

Text lines are cut at the line width, as a printer cuts them.  A receipt's QR code is printed as
a code, not as text: `Printer.qr_code` makes its tape entry (``QR: `` and the whole tag 1196
string, one entry, never cut), so the tape shows exactly what a buyer's phone would read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_TAPE = 10_000  # lines kept; older ones are dropped (a long-running emulator must not grow)


QR_MARKER = "QR: "  # how the tape shows a printed QR code
# How the tape shows the knife (`kkt emulator ctl tape --format` draws these as cuts).
CUT_LINE = "-" * 8 + " cut " + "-" * 8
PARTIAL_CUT_LINE = "-" * 8 + " partial cut " + "-" * 8


class Code(str):
    """A printed code (the receipt's QR): one tape entry holding its whole text, not cut."""

    __slots__ = ()


class PaperOut(Exception):
    """The printer has no paper (or its cover is open); ``remaining`` lines were not printed."""

    def __init__(self, reason: str, remaining: list[str] | None = None) -> None:
        super().__init__(reason)
        self.remaining = remaining or []


@dataclass(slots=True)
class Printer:
    present: bool = True
    width: int = 48  # characters per line, font 1; a personality sets its model's
    paper: bool = True
    cover_open: bool = False
    paper_left: int | None = (
        None  # lines left on the roll; None: endless (the control channel sets it)
    )
    tape: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.present and self.paper and not self.cover_open

    def check(self) -> None:
        if self.present and not (self.paper and not self.cover_open):
            raise PaperOut("no paper" if not self.paper else "cover open")

    def print_lines(self, lines: list[str]) -> None:
        """Print whole lines (a fiscal-only register prints nothing and never fails)."""
        if not self.present:
            return
        self.check()
        for index, line in enumerate(lines):
            if self.paper_left is not None:
                if self.paper_left <= 0:
                    self.paper = False
                    self.paper_left = None
                    raise PaperOut("paper ran out while printing", lines[index:])
                self.paper_left -= 1
            self.tape.append(line if isinstance(line, Code) else line[: self.width])
        if len(self.tape) > MAX_TAPE:
            del self.tape[: len(self.tape) - MAX_TAPE]

    def qr_code(self, text: str) -> Code:
        """The tape entry of a QR code carrying ``text`` (printed whole, as a code is)."""
        return Code(QR_MARKER + text)

    def centered(self, text: str) -> str:
        return text[: self.width].center(self.width).rstrip()

    def pair(self, left: str, right: str) -> str:
        room = max(1, self.width - len(right))
        return left[:room].ljust(room) + right
