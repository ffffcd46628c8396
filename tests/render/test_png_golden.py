"""A PNG with Cyrillic item names renders the same on a fresh virtual environment: its pixels are
compared with a committed golden image (``golden/cyrillic-48.png``).

Tolerance: at most 0.5 % of the pixels may differ.  The image is 1-bit (a thermal head's dots);
the font is the DejaVu Sans Mono shipped inside the package (no system font is looked up), drawn
with Pillow's basic layout (no libraqm).  What can still move pixels is the FreeType that Pillow's
wheel bundles: the `test` extra pins Pillow to one minor release (13.0), and the tolerance is for
a glyph edge's grey falling the other side of the black/white threshold after a patch release
(not measured across releases: a reading, stated so).  It stays far below what a missing or
substituted font changes: about 6 % of the golden receipt's pixels are black, so another
font moves several per cent.  Rewrite
the golden image with ``KKT_REGOLD=1`` after a deliberate change.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from kkt.render import render
from kkt.render.png import FONT_FILE
from PIL import Image, ImageChops
from support.documents import every_document

GOLDEN = Path(__file__).parent / "golden" / "cyrillic-48.png"
TOLERANCE = 0.005


def test_the_cyrillic_receipt_matches_the_golden_png() -> None:
    tlv, change = every_document()["receipt_sale"]
    drawn = Image.open(io.BytesIO(render(tlv, "png", width=48, change=change)))
    assert drawn.mode == "1"
    assert drawn.info["dpi"] == pytest.approx((203.2, 203.2), abs=0.1)
    if os.environ.get("KKT_REGOLD"):
        drawn.save(GOLDEN)
    golden = Image.open(GOLDEN)
    assert drawn.size == golden.size
    difference = ImageChops.difference(drawn.convert("L"), golden.convert("L"))
    total = drawn.width * drawn.height
    share = (total - difference.histogram()[0]) / total
    assert share <= TOLERANCE, f"{share:.2%} of the pixels differ from {GOLDEN.name}"


def test_the_font_comes_with_the_package_and_has_cyrillic() -> None:
    from importlib import resources

    fonts = resources.files("kkt.render").joinpath("fonts")
    assert fonts.joinpath(FONT_FILE).is_file()
    assert "Bitstream Vera" in fonts.joinpath("LICENSE-DejaVu.txt").read_text(encoding="utf-8")
    from kkt.render.png import _font

    font = _font()
    # Cyrillic glyphs are drawn, not the .notdef box: each letter its own shape
    shapes = {bytes(font.getmask(letter)) for letter in "ЖЩЁжщё"}
    assert len(shapes) == 6


def test_png_without_pillow_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from kkt.render import MissingExtra

    monkeypatch.setitem(sys.modules, "PIL", None)
    tlv, _ = every_document()["receipt_sale"]
    with pytest.raises(MissingExtra, match=r"pip install 'kktkit\[render\]'"):
        render(tlv, "png")
    assert "КАССОВЫЙ ЧЕК" in render(tlv, "txt")  # text, SVG and HTML need no Pillow
    assert "<svg" in render(tlv, "svg") and "<svg" in render(tlv, "html")


@pytest.mark.timeout(300)
def test_the_font_installs_with_the_package(tmp_path: Path) -> None:
    """A real (non-editable) install carries the font and its licence (package-data)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile"]
    subprocess.run(
        [*pip, "--target", str(site), str(root)],
        check=True,
        capture_output=True,
        timeout=280,
    )
    fonts = site / "kkt" / "render" / "fonts"
    assert (fonts / FONT_FILE).read_bytes() == (root / "render" / "fonts" / FONT_FILE).read_bytes()
    assert (fonts / "LICENSE-DejaVu.txt").is_file()
