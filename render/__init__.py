"""Receipts you can look at: an FFD document, or a printer's tape, as text, SVG, PNG or HTML.

One layout (`Tape`: lines at the tape's width, QR codes, cuts) and four ways to draw it::

    from kkt.render import render
    html = render(document, "html")              # a kkt.Document, a FiscalResult or TLV
    png = render(document, "png", width=42)      # bytes; needs `pip install 'kktkit[render]'`

* `document_tape` lays out one document in its FFD print form (`printform`: the tags that print,
  their order and labels, money in roubles and kopecks, the QR code);
* `to_text`, `to_svg`, `to_html` need nothing beyond the package (segno draws the QR code);
  `to_png` needs Pillow (the ``render`` extra) and uses the DejaVu Sans Mono font shipped here.

This package imports only `kkt.protocols`: the driver, the tools and the emulator may all use it.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from kkt.protocols.ffd import TlvList

from .html import to_html
from .printform import LABELS, ORDER, Detail, document_tape
from .svg import to_svg
from .tape import (
    TAPE_DOTS,
    WIDTHS,
    Cut,
    Entry,
    Line,
    MissingExtra,
    Printed,
    QrCode,
    RenderError,
    Tape,
)
from .text import to_text

Format = Literal["txt", "svg", "png", "html"]
FORMATS: tuple[Format, ...] = ("txt", "svg", "png", "html")


@runtime_checkable
class HasDocument(Protocol):
    """A document read from the FN (`kkt.Document`): its type and its tags."""

    @property
    def type(self) -> int: ...

    @property
    def tlv(self) -> TlvList: ...


@runtime_checkable
class HasIdentifyingTags(Protocol):
    """A fiscal result (`kkt.FiscalResult`) that can name its receipt's identifying tags."""

    def identifying_tlv(self) -> TlvList: ...


Source = TlvList | HasDocument | HasIdentifyingTags | Tape


def to_png(tape: Tape) -> bytes:
    """The tape as a 1-bit PNG at 203 dpi (needs Pillow: ``pip install 'kktkit[render]'``)."""
    from .png import to_png as draw  # Pillow is optional: imported only when asked for

    return draw(tape)


def tape_of(source: Source, *, width: int = 48, change: int = 0) -> Tape:
    """The tape of a `Tape` (as it is), a `kkt.Document`, a `kkt.FiscalResult` or a document's
    TLV (one STLV whose tag is its type)."""
    if isinstance(source, Tape):
        return source
    if isinstance(source, HasIdentifyingTags):
        try:
            tags = source.identifying_tlv()
        except ValueError as error:  # a report's result: no receipt to identify
            raise RenderError(str(error)) from None
        return document_tape(tags, width=width, change=change)
    if isinstance(source, HasDocument):
        return document_tape(source.tlv, width=width, doc_type=source.type, change=change)
    if isinstance(source, list):
        return document_tape(source, width=width, change=change)
    raise RenderError(
        f"cannot render a {type(source).__name__}: give a kkt.Document, a FiscalResult, "
        "a document's TLV or a Tape"
    )


def render(source: Source, fmt: str = "txt", *, width: int = 48, change: int = 0) -> Any:
    """``source`` drawn as ``fmt``: ``txt``, ``svg`` and ``html`` give `str`, ``png`` `bytes`."""
    drawers = {"txt": to_text, "svg": to_svg, "html": to_html, "png": to_png}
    drawer = drawers.get(fmt)
    if drawer is None:
        raise RenderError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    return drawer(tape_of(source, width=width, change=change))


__all__ = [
    "FORMATS",
    "LABELS",
    "ORDER",
    "TAPE_DOTS",
    "WIDTHS",
    "Cut",
    "Detail",
    "Entry",
    "Format",
    "HasDocument",
    "HasIdentifyingTags",
    "Line",
    "MissingExtra",
    "Printed",
    "QrCode",
    "RenderError",
    "Tape",
    "document_tape",
    "render",
    "tape_of",
    "to_html",
    "to_png",
    "to_svg",
    "to_text",
]
