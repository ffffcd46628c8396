"""A tape as a self-contained HTML page: the electronic receipt a buyer opens.

Nothing is fetched: the style is inline, the QR code is an inline SVG (no ``xmlns`` needed in
HTML, so the page holds no URL at all), fonts are the reader's own monospace ones.  The QR code is
drawn 40 mm wide on screen (the 2025 rules ask for at least 20 x 20 mm, ``ofd-cloud-marking.md``
§3.4) with crisp module edges, so a phone reads it off the screen.
"""

from __future__ import annotations

from html import escape

from .qrcode import QUIET_ZONE, qr_matrix
from .tape import Cut, Line, QrCode, Tape

QR_SCREEN_MM = 40

_STYLE = """
body { margin: 0; padding: 16px; background: #eee; }
.receipt { margin: 0 auto; padding: 12px 16px; background: #fff; color: #000;
  width: calc(var(--cols) * 1ch); box-shadow: 0 1px 4px rgba(0, 0, 0, .3);
  font: 14px/1.35 "DejaVu Sans Mono", "Liberation Mono", monospace; }
.l { white-space: pre; min-height: 1.35em; }
.b { font-weight: bold; }
.qr { display: block; margin: 8px auto; width: %dmm; height: %dmm; }
.cut { border: 0; border-top: 2px dashed #000; margin: 8px -16px; }
.cut.partial { border-top-style: dotted; }
"""


def to_html(tape: Tape) -> str:
    body: list[str] = []
    for entry in tape.entries:
        if isinstance(entry, Line):
            css = "l b" if entry.bold else "l"
            body.append(f'<div class="{css}">{escape(entry.text.rstrip())}</div>')
        elif isinstance(entry, QrCode):
            body.append(_qr_svg(entry.data))
        elif isinstance(entry, Cut):
            body.append('<hr class="cut partial">' if entry.partial else '<hr class="cut">')
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="ru">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(tape.title)}</title>",
            f"<style>{_STYLE % (QR_SCREEN_MM, QR_SCREEN_MM)}</style>",
            "</head>",
            "<body>",
            f'<main class="receipt" style="--cols: {tape.width}">',
            *body,
            "</main>",
            "</body>",
            "</html>",
            "",
        ]
    )


def _qr_svg(data: str) -> str:
    matrix = qr_matrix(data)
    side = matrix.size + 2 * QUIET_ZONE
    d = "".join(
        f"M{x + QUIET_ZONE},{y + QUIET_ZONE}h{length}v1h{-length}z"
        for y, x, length in matrix.dark_runs()
    )
    return (
        f'<svg class="qr" viewBox="0 0 {side} {side}" role="img" '
        f'aria-label="QR: {escape(data)}" shape-rendering="crispEdges">'
        f'<rect width="{side}" height="{side}" fill="#fff"/><path fill="#000" d="{d}"/></svg>'
    )
