"""``--format txt|svg|png|html``, ``--width`` and ``-o FILE``: drawing a document or the emulated
printer's tape with `kkt.render` (`kkt doc N`, `kkt emulator ctl tape`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from kkt.emulator.printer import CUT_LINE, PARTIAL_CUT_LINE, QR_MARKER
from kkt.render import FORMATS, WIDTHS, Cut, Entry, Line, QrCode, RenderError, Source, Tape, render


def add_render_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help=f"{what} as text, SVG, PNG (needs `pip install 'kktkit[render]'`) or HTML",
    )
    parser.add_argument(
        "--width", type=int, choices=WIDTHS, help="characters a line (default: the register's)"
    )
    parser.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write it to FILE, not standard output"
    )


def write_rendered(source: Source, args: argparse.Namespace, width: int) -> None:
    """Draw ``source`` as ``--format`` at ``width`` to ``-o FILE`` or standard output; raises
    `RenderError` (the caller turns it into its usage error)."""
    drawn = render(source, args.format, width=width)
    if args.output is not None:
        if isinstance(drawn, bytes):
            args.output.write_bytes(drawn)
        else:
            args.output.write_text(drawn, encoding="utf-8")
        print(f"{args.format} written to {args.output}", file=sys.stderr)
    elif isinstance(drawn, bytes):
        if sys.stdout.isatty():
            raise RenderError("PNG is binary: write it with -o FILE (or redirect standard output)")
        sys.stdout.flush()
        sys.stdout.buffer.write(drawn)
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(drawn)


def printed_tape(lines: Iterable[str], width: int) -> Tape:
    """The emulated printer's tape (`kkt emulator ctl tape`) as a `Tape`: its QR entries as QR
    codes, its knife marks as cuts, every other line as printed (cut at ``width``, as the
    printer cuts it)."""
    entries: list[Entry] = []
    for line in lines:
        if line.startswith(QR_MARKER):
            entries.append(QrCode(line[len(QR_MARKER) :]))
        elif line in (CUT_LINE, PARTIAL_CUT_LINE):
            entries.append(Cut(partial=line == PARTIAL_CUT_LINE))
        else:
            entries.append(Line(line[:width]))
    return Tape(width, tuple(entries), title="Лента принтера")
