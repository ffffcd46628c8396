"""A tape as an SVG image at the printer's scale: one user unit is one dot at 203 dpi, and the
``width``/``height`` in millimetres make it print at the tape's real size.  Text uses DejaVu
Sans Mono (shipped with this package for PNG; here named, with the viewer's monospace font as the
fallback) stretched to the tape's character cell; the QR code is drawn as whole modules."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from .geometry import ASCENT_DOTS, FONT_DOTS, MARGIN, PlacedCut, PlacedLine, PlacedQr, place
from .qrcode import QUIET_ZONE, QrMatrix
from .tape import DOTS_PER_MM, Tape

FONT_FAMILY = "'DejaVu Sans Mono', 'Liberation Mono', monospace"


def to_svg(tape: Tape) -> str:
    sheet = place(tape)
    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" version="1.1" '
        f'width="{sheet.width / DOTS_PER_MM:g}mm" height="{sheet.height / DOTS_PER_MM:g}mm" '
        f'viewBox="0 0 {sheet.width} {sheet.height}">',
        f"<title>{escape(tape.title)}</title>",
        f'<rect width="{sheet.width}" height="{sheet.height}" fill="#fff"/>',
        f'<g font-family="{FONT_FAMILY}" font-size="{FONT_DOTS}" fill="#000">',
    ]
    for item in sheet.items:
        if isinstance(item, PlacedLine):
            text = item.text.rstrip()
            body = text.lstrip(" ")
            if not body:
                continue
            lead = len(text) - len(body)
            weight = ' font-weight="bold"' if item.bold else ""
            out.append(
                f'<text x="{MARGIN + lead * sheet.cell:.2f}" y="{item.top + ASCENT_DOTS}" '
                f'textLength="{len(body) * sheet.cell:.2f}" lengthAdjust="spacingAndGlyphs" '
                f'xml:space="preserve"{weight}>{escape(body)}</text>'
            )
        elif isinstance(item, PlacedQr):
            out.append(qr_path(item.matrix, item.module, item.left, item.top))
        elif isinstance(item, PlacedCut):
            y = item.top + 16
            dash = "8 8" if item.partial else "16 4"
            out.append(
                f'<line x1="0" y1="{y}" x2="{sheet.width}" y2="{y}" stroke="#000" '
                f'stroke-width="2" stroke-dasharray="{dash}"/>'
            )
    out += ["</g>", "</svg>", ""]
    return "\n".join(out)


def qr_path(matrix: QrMatrix, module: int, left: int, top: int, *, label: bool = True) -> str:
    """The dark modules as one path of horizontal runs, inside its quiet zone at (left, top)."""
    x0 = left + QUIET_ZONE * module
    y0 = top + QUIET_ZONE * module
    d = "".join(
        f"M{x0 + x * module},{y0 + y * module}h{length * module}v{module}h{-length * module}z"
        for y, x, length in matrix.dark_runs()
    )
    side = (matrix.size + 2 * QUIET_ZONE) * module
    aria = f" aria-label={quoteattr(matrix.data)}" if label else ""
    return (
        f'<g class="qr"{aria}><rect x="{left}" y="{top}" width="{side}" height="{side}" '
        f'fill="#fff"/><path shape-rendering="crispEdges" fill="#000" d="{d}"/></g>'
    )
