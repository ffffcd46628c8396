"""The receipt printer of an emulated register: a tape of text lines, paper, cover.

A fiscal-only register (registered for internet/automatic use) has no printer at all: it is
created with ``present=False`` and keeps no tape.  Printing while paper is out raises `PaperOut`;
the personality turns that into its protocol's error and submode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_TAPE = 10_000  # lines kept; older ones are dropped (a long-running emulator must not grow)


class PaperOut(Exception):
    """The printer has no paper (or its cover is open); ``remaining`` lines were not printed."""

    def __init__(self, reason: str, remaining: list[str] | None = None) -> None:
        super().__init__(reason)
        self.remaining = remaining or []


@dataclass(slots=True)
class Printer:
    present: bool = True
    width: int = 48  # characters per line (ШТРИХ-М-01Ф, font 1)
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
            self.tape.append(line[: self.width])
        if len(self.tape) > MAX_TAPE:
            del self.tape[: len(self.tape) - MAX_TAPE]

    def centered(self, text: str) -> str:
        return text[: self.width].center(self.width).rstrip()

    def pair(self, left: str, right: str) -> str:
        room = max(1, self.width - len(right))
        return left[:room].ljust(room) + right
