"""A tape as a 1-bit PNG at the printer's resolution: one pixel is one dot at 203 dpi, black or
white, as a thermal head prints.  Needs Pillow (``pip install 'kktkit[render]'``); the font is the
DejaVu Sans Mono this package ships (``fonts/``), so Cyrillic renders the same on a fresh machine
with no fonts installed.

Text is drawn with Pillow's basic layout (no libraqm, whose presence varies between machines) at
the font size `geometry` chooses, narrowed to the tape's character cell, and thresholded to black
and white.
"""

from __future__ import annotations

import io
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from .geometry import ASCENT_DOTS, FONT_DOTS, LINE_DOTS, MARGIN, PlacedCut, PlacedLine, PlacedQr
from .geometry import place as place_tape
from .qrcode import QUIET_ZONE
from .tape import DOTS_PER_MM, MissingExtra, Tape

if TYPE_CHECKING:
    from PIL import Image as ImageModule

FONT_FILE = "DejaVuSansMono.ttf"
INSTALL = "pip install 'kktkit[render]'"


def _pillow() -> Any:
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise MissingExtra(f"PNG output needs Pillow: {INSTALL}") from None
    return Image, ImageDraw, ImageFont


@cache
def _font() -> Any:
    _, _, image_font = _pillow()
    data = resources.files(__package__).joinpath("fonts", FONT_FILE).read_bytes()
    return image_font.truetype(io.BytesIO(data), FONT_DOTS, layout_engine=image_font.Layout.BASIC)


def to_image(tape: Tape) -> ImageModule.Image:
    """The tape as a Pillow image in mode ``1``."""
    image_module, image_draw, _ = _pillow()
    sheet = place_tape(tape)
    canvas = image_module.new("L", (sheet.width, sheet.height), 255)
    draw = image_draw.Draw(canvas)
    font = _font()
    for item in sheet.items:
        if isinstance(item, PlacedLine):
            text = item.text.rstrip()
            body = text.lstrip(" ")
            if not body:
                continue
            lead = len(text) - len(body)
            target = max(1, round(len(body) * sheet.cell))
            natural = int(font.getlength(body)) + 2
            strip = image_module.new("L", (natural, LINE_DOTS), 255)
            strip_draw = image_draw.Draw(strip)
            for dx in (0, 1) if item.bold else (0,):
                strip_draw.text((dx, ASCENT_DOTS), body, font=font, fill=0, anchor="ls")
            narrowed = strip.resize((target, LINE_DOTS), image_module.Resampling.LANCZOS)
            canvas.paste(narrowed, (MARGIN + round(lead * sheet.cell), item.top))
        elif isinstance(item, PlacedQr):
            x0 = item.left + QUIET_ZONE * item.module
            y0 = item.top + QUIET_ZONE * item.module
            for y, x, length in item.matrix.dark_runs():
                draw.rectangle(
                    (
                        x0 + x * item.module,
                        y0 + y * item.module,
                        x0 + (x + length) * item.module - 1,
                        y0 + (y + 1) * item.module - 1,
                    ),
                    fill=0,
                )
        elif isinstance(item, PlacedCut):
            y = item.top + 16
            step = 16 if item.partial else 8
            for x in range(0, sheet.width, step * 2):
                draw.rectangle((x, y - 1, x + step - 1, y), fill=0)
    dots: ImageModule.Image = canvas.point(lambda value: 255 if value >= 128 else 0, "1")
    return dots


def to_png(tape: Tape) -> bytes:
    """The tape as PNG bytes, 1 bit a pixel, tagged 203 dpi."""
    out = io.BytesIO()
    dpi = DOTS_PER_MM * 25.4
    to_image(tape).save(out, "PNG", dpi=(dpi, dpi), optimize=False)
    return out.getvalue()
