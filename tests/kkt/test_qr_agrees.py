"""The receipt's QR string (tag 1196) is one string everywhere: what the driver returns, what the
emulator prints and what it hands out (`ctl qr`), and its t= is the document's own 1012.

Issue 14, defect 10: the driver said ``t=…T041100`` (the FN's short record, to the minute), the
tape and ``ctl qr`` ``…T041128`` (the emulated FN had stamped 1012 to the second, which a real FN
cannot: the register hands it a 5-byte date-time), and the printed line was cut at 48 characters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.atol import open_device as open_atol
from kkt.emulator.clock import ManualClock
from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device
from kkt.protocols.atol.link import HostSettings as AtolHostSettings
from kkt.protocols.ffd import find, parse_qr, qr_of_document
from kkt.protocols.shtrih.link import HostSettings
from kkt.render import document_tape, tape_of

import kkt
from kkt import Item, Payments, Receipt, Vat

# A time with seconds: the place where the strings used to part.
WHEN = dt.datetime(2026, 11, 22, 4, 11, 28)
OPENERS: dict[str, Any] = {"shtrih": open_device, "atol": open_atol}
SETTINGS: dict[str, Any] = {
    "shtrih": HostSettings(ack=0.5, quiet=0.05, probe=0.2),
    "atol": AtolHostSettings(packet=0.5),
}


@pytest.fixture(params=["shtrih", "atol"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any, str]]:
    protocol = request.param
    device = OPENERS[protocol](tmp_path / "state", clock=ManualClock(WHEN))
    try:
        with ServiceThread(device, Faults(), protocol=protocol) as thread:
            yield protocol, device, f"socket://127.0.0.1:{thread.port}"
    finally:
        device.close()


def _tlv_time(document: kkt.Document) -> object:
    body = document.tlv
    if len(body) == 1 and isinstance(body[0][1], list):
        body = body[0][1]
    return find(body, 1012)


@pytest.mark.timeout(60)
def test_the_qr_is_one_string_driver_tape_and_fn(served: tuple[str, Any, str]) -> None:
    protocol, device, url = served
    with kkt.connect(url, protocol=protocol, settings=SETTINGS[protocol]) as register:
        register.open_shift(cashier="Петрова А.")
        sold = register.sell(
            Receipt(
                items=(Item("Кофе капучино 300 мл", 19_900, Decimal(2), Vat.VAT20),),
                payments=Payments(cash=40_000),
            )
        )
        document = register.document(sold.document_number)
    assert sold.qr == device.qr(sold.document_number)  # what `kkt emulator ctl qr N` says
    printed = [line for line in device.tape() if line.startswith("QR: ")]
    assert printed[-1] == "QR: " + sold.qr  # printed whole, not cut at the line width
    assert len(printed[-1]) > 48
    assert parse_qr(sold.qr).when == _tlv_time(document) == sold.when == document.when
    assert sold.qr.startswith("t=20261122T041100&s=398.00&")  # the FN keeps the minute
    # ... and the rendered receipt's, from the document read back and from the result alone
    body = document.tlv[0][1] if len(document.tlv) == 1 else document.tlv
    assert isinstance(body, list) and qr_of_document(body) == sold.qr
    assert tape_of(document).qr_codes == [sold.qr]
    assert document_tape(sold.identifying_tlv()).qr_codes == [sold.qr]
