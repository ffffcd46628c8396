"""The QR code in the PNG and in the SVG decodes, with an independent decoder (zxing-cpp, the C++
ZXing port, from PyPI), to exactly the document's QR string, for 50 random receipts; and the
decoded fields (t, s, fn, i, fp, n) equal the document's tags 1012, 1020, 1041, 1040, 1077
(bytes 2..5, big-endian) and 1054.

The SVG is turned into pixels by this test itself, not by the renderer: the QR's path (runs of
``M x,y h w v h h -w z``) is filled on a blank image and handed to the decoder.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from io import BytesIO

import pytest
import zxingcpp
from kkt.protocols.ffd import TlvList, find, parse_qr, qr_of_document
from kkt.render import document_tape, render, to_svg
from kkt.render.printform import unwrap
from kkt.render.qrcode import MIN_SIZE_MM, qr_matrix
from PIL import Image, ImageDraw
from support.documents import random_receipts

RECEIPTS = 50
_RUN = re.compile(r"M(\d+),(\d+)h(\d+)v(\d+)h-\d+z")


def decode(image: Image.Image) -> list[str]:
    found = zxingcpp.read_barcodes(image.convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)
    return [barcode.text for barcode in found]


def svg_qr_pixels(svg: str) -> Image.Image:
    root = ET.fromstring(svg)
    width = int(root.attrib["viewBox"].split()[2])
    height = int(root.attrib["viewBox"].split()[3])
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    paths = [node for node in root.iter("{http://www.w3.org/2000/svg}path")]
    assert len(paths) == 1, "one QR code per receipt"
    for x, y, run, module in _RUN.findall(paths[0].attrib["d"]):
        left, top = int(x), int(y)
        draw.rectangle((left, top, left + int(run) - 1, top + int(module) - 1), fill=0)
    return image


def check_fields(qr: str, body: TlvList) -> None:
    data = parse_qr(qr)
    when = find(body, 1012)
    sign = find(body, 1077)
    assert isinstance(when, dt.datetime) and isinstance(sign, bytes)
    assert data.when == when
    assert data.total == find(body, 1020)
    assert data.fn == find(body, 1041)
    assert data.fd == find(body, 1040)
    assert data.fp == int.from_bytes(sign[2:6], "big")
    assert data.operation == find(body, 1054)


@pytest.mark.timeout(300)
def test_the_qr_decodes_to_the_documents_string_in_png_and_svg() -> None:
    seen = set()
    for tlv in random_receipts(RECEIPTS, seed=17):
        _, body = unwrap(tlv)
        qr = qr_of_document(body)
        seen.add(qr)
        check_fields(qr, body)
        tape = document_tape(tlv, width=32 if len(seen) % 2 else 48)
        assert tape.qr_codes == [qr]
        png = render(tape, "png")
        assert decode(Image.open(BytesIO(png))) == [qr]
        assert decode(svg_qr_pixels(to_svg(tape))) == [qr]
        check_fields(decode(Image.open(BytesIO(png)))[0], body)
    assert len(seen) == RECEIPTS


def test_the_symbol_meets_the_2025_size_rule_at_203_dpi() -> None:
    # A receipt string of the longest kind: 10-digit sign, 7-digit sum, 16-digit FN.
    qr = "t=20261231T235900&s=9999999.99&fn=9999078900000001&i=4294967295&fp=4294967295&n=4"
    matrix = qr_matrix(qr)
    assert matrix.size * matrix.module_dots() >= MIN_SIZE_MM * 8  # at least 20 mm, no quiet zone
    assert (matrix.size + 8) * matrix.module_dots() <= 384  # and it fits a 58-mm tape
