"""The SVG and the HTML e-receipt carry every detail of a document's print form.

The walk goes over the print-form table (`kkt.render.printform.ORDER` and `LABELS`, by tag
number): each tag the document carries whose value prints must be on the tape, and each printed
detail -- its label and its value -- must be in the SVG's text and in the HTML's text.  The
values are checked against the document's own tags too (money in roubles and kopecks, the fiscal
sign as bytes 2..5 of 1077 big-endian), not only against what the layout says it printed.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import xml.etree.ElementTree as ET
from functools import cache

import pytest
from kkt.protocols.ffd import TlvList, find, find_all, qr_of_document
from kkt.render import LABELS, ORDER, WIDTHS, document_tape, render
from kkt.render.printform import unwrap
from support.documents import every_document

SVG = "{http://www.w3.org/2000/svg}"


@cache
def documents() -> dict[str, tuple[TlvList, int]]:
    return every_document()


def _squash(text: str) -> str:
    return " ".join(text.split())


def svg_text(svg: str) -> str:
    root = ET.fromstring(svg)
    return _squash(" ".join(node.text or "" for node in root.iter(f"{SVG}text")))


def html_text(page: str) -> str:
    body = re.sub(r"<style>.*?</style>|<svg.*?</svg>|<title>.*?</title>", " ", page, flags=re.S)
    return _squash(html.unescape(re.sub(r"<[^>]+>", " ", body)))


def _found(needle: str, haystack: str) -> bool:
    return _squash(needle) in haystack


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", sorted(every_document()))
def test_svg_and_html_carry_every_printed_detail(name: str, width: int) -> None:
    tlv, change = documents()[name]
    kind, body = unwrap(tlv)
    tape = document_tape(tlv, width=width, change=change)
    shown = {
        "svg": svg_text(render(tlv, "svg", width=width, change=change)),
        "html": html_text(render(tlv, "html", width=width, change=change)),
    }
    printed_tags = {detail.tag for detail in tape.printed}
    # The walk over the table: whatever the document carries and the table prints is printed.
    for tag in ORDER[kind]:
        detail = LABELS.get(tag)
        for value in find_all(body, tag):
            if detail is None or tag == 1059 or detail.how == "block":
                continue
            if detail.show(value) is not None:
                assert tag in printed_tags, f"{name}: tag {tag} is in the document, not printed"
    assert tape.printed, name
    for detail in tape.printed:
        for form, text in shown.items():
            assert _found(detail.label, text), f"{form} of {name} lacks label {detail.label!r}"
            assert _found(detail.value, text), f"{form} of {name} lacks {detail.value!r}"
    # The details, read straight from the tags.
    must = [str(find(body, 1040)), str(find(body, 1041))]
    sign = find(body, 1077)
    assert isinstance(sign, bytes)
    must.append(str(int.from_bytes(sign[2:6], "big")))
    when = find(body, 1012)
    assert isinstance(when, dt.datetime)
    must.append(when.strftime("%d.%m.%y %H:%M"))
    total = find(body, 1020)
    if isinstance(total, int):
        must.append(f"ИТОГ {total // 100}.{total % 100:02d}")
    for item in find_all(body, 1059):
        assert isinstance(item, list)
        must.append(str(find(item, 1030)))
        cost = find(item, 1043)
        assert isinstance(cost, int)
        must.append(f"{cost // 100}.{cost % 100:02d}")
    for form, text in shown.items():
        for value in must:
            assert _found(value, text), f"{form} of {name} lacks {value!r}"
    if kind in (3, 31):
        assert tape.qr_codes == [qr_of_document(body)]


def test_a_receipt_prints_change_and_its_labels_in_ffd_order() -> None:
    tlv, change = documents()["receipt_sale"]
    assert change == 6_700
    lines = render(tlv, "txt", width=48, change=change).splitlines()
    words = [line.split()[0] for line in lines if line.strip()]
    order = ["КАССОВЫЙ", "ИНН", "ПРИХОД", "СНО", "КАССИР", "РН", "ИТОГ", "НАЛИЧНЫМИ"]
    positions = [words.index(word) for word in order]
    assert positions == sorted(positions)
    assert any(line.startswith("СДАЧА") and line.endswith("67.00") for line in lines)
    # «без НДС» prints no VAT line (FFD Table 8): the water's cost line is followed by its way
    # of payment, the coffee's by its VAT
    water = next(i for i, line in enumerate(lines) if line.startswith("1.5 x 60.00"))
    coffee = next(i for i, line in enumerate(lines) if line.startswith("2 x 199.00"))
    assert lines[water + 1] == "ПОЛНЫЙ РАСЧЕТ"
    assert lines[coffee + 1].split() == ["НДС", "20%", "66.33"]
