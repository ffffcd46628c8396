"""The driver over USB bulk endpoints, through pyusb and a fake backend bridged to the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest
from kkt.emulator.shtrih import open_device
from kkt.protocols.shtrih.link import HostSettings
from support.fake_usb import PID, VID, FakeUsbBackend

import kkt
from kkt.transport.usb import parse_usb_url

FAST = HostSettings(ack=0.5, quiet=0.05, probe=0.2)


def test_usb_urls() -> None:
    assert parse_usb_url("usb://1fc9:0083") == (0x1FC9, 0x0083, None)
    assert parse_usb_url("usb://1FC9:83/0012345678") == (0x1FC9, 0x83, "0012345678")
    with pytest.raises(kkt.TransportError, match="VID:PID"):
        parse_usb_url("usb://register")


@pytest.mark.timeout(120)
def test_the_day_over_usb(tmp_path: Path) -> None:
    from decimal import Decimal

    from kkt import Item, Operation, Payments, Receipt, Vat

    device = open_device(tmp_path / "state")
    backend = FakeUsbBackend(device)
    url = f"usb://{VID:04x}:{PID:04x}"
    items = (Item("Кофе", 19_900, Decimal(2), Vat.VAT20), Item("Вода", 7_000, vat=Vat.NONE))
    try:
        with kkt.connect(url, usb_backend=backend, settings=FAST) as register:
            assert register.device_info().name == "ШТРИХ-М-01Ф"
            register.open_shift()
            sold = register.sell(Receipt(items, Payments(cash=50_000)))
            returned = register.receipt(
                Receipt(items, Payments(electronic=46_800), operation=Operation.SELL_RETURN)
            )
            register.x_report()
            register.close_shift()
            assert register.find_document(sold.document_number).fiscal_sign == sold.fiscal_sign
            assert returned.operation == 2
        assert backend.opened == 0 and not backend.claimed  # released on close
        assert device.verify().ok
    finally:
        device.close()


def test_missing_usb_device_is_a_clear_error(tmp_path: Path) -> None:
    device = open_device(tmp_path / "state")
    try:
        with pytest.raises(kkt.TransportError, match="no USB device"):
            kkt.connect("usb://dead:beef", usb_backend=FakeUsbBackend(device))
    finally:
        device.close()
