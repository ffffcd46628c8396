"""A tape as plain text: its lines as printed; a QR code as the string it carries (broken at the
line width: the string has no spaces, so joining the lines gives it back); a cut as a rule."""

from __future__ import annotations

from .tape import Cut, Line, QrCode, Tape


def to_text(tape: Tape) -> str:
    out: list[str] = []
    for entry in tape.entries:
        if isinstance(entry, Line):
            out.append(entry.text.rstrip())
        elif isinstance(entry, QrCode):
            out.append("QR:")
            text = entry.data
            out += [text[i : i + tape.width] for i in range(0, len(text), tape.width)]
        elif isinstance(entry, Cut):
            mark = " частичный отрез " if entry.partial else " отрез "
            out.append(mark.center(tape.width, "-"))
    return "\n".join(out) + "\n"
