"""What `kkt.render.render` accepts: a document's TLV, a `kkt.Document`, a `kkt.FiscalResult`
(its identifying details), a `Tape`; and the clear errors for what it cannot draw."""

from __future__ import annotations

import datetime as dt

import pytest
from kkt.protocols.ffd import QrData, qr_string
from kkt.render import Line, RenderError, Tape, document_tape, render, tape_of
from support.documents import every_document

from kkt.results import Document, FiscalResult

WHEN = dt.datetime(2026, 11, 22, 4, 11)


def result(operation: int = 1) -> FiscalResult:
    qr = qr_string(QrData(WHEN, 39_800, "9999078900000001", 12, 3_000_000_001, operation))
    return FiscalResult(12, 3_000_000_001, "9999078900000001", 4, 7, WHEN, 39_800, operation, qr)


def test_a_fiscal_result_draws_its_identifying_details_and_the_same_qr() -> None:
    sold = result()
    tape = tape_of(sold, width=32)
    assert tape.qr_codes == [sold.qr]
    text = render(sold, "txt", width=32)
    for shown in ("ИТОГ", "398.00", "ФД", "12", "ФП", "3000000001", "22.11.26 04:11", "ПРИХОД"):
        assert shown in text
    assert "<svg" in render(sold, "html")


def test_a_reports_result_is_refused_with_the_way_out() -> None:
    report = FiscalResult(2, 1, "9999078900000001", 1, 0, WHEN, 0, 0, "")
    with pytest.raises(RenderError, match=r"register\.document\(N\)"):
        render(report, "txt")


def test_a_document_read_from_the_fn_renders_by_its_type() -> None:
    tlv, _ = every_document()["shift_close"]
    body = tlv[0][1]
    assert isinstance(body, list)
    document = Document(8, 5, WHEN, 1, False, body)  # the bare tags, its type beside them
    assert render(document, "txt") == render(tlv, "txt")
    with pytest.raises(RenderError, match="doc_type"):
        document_tape(body)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda tlv: render(tlv, "pdf"), "not one of txt, svg, png, html"),
        (lambda tlv: render(tlv, "txt", width=40), "32, 42, 48"),
        (lambda tlv: render(tlv, "txt", change=-1), "change must be kopecks"),
        (lambda tlv: render(42, "txt"), "cannot render a int"),
        (lambda tlv: render(tlv[0][1], "txt"), "doc_type"),
        (lambda tlv: Tape(32, (Line("x" * 33),)), "33 characters, the tape holds 32"),
    ],
)
def test_bad_input_is_a_clear_render_error(call: object, message: str) -> None:
    tlv, _ = every_document()["receipt_sale"]
    with pytest.raises(RenderError, match=message):
        call(tlv)  # type: ignore[operator]
