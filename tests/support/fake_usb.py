"""A fake pyusb backend: one USB device with bulk endpoints; the emulated register sits behind it.

What the host writes to the OUT endpoint feeds a device-role Shtrih link; commands it takes run on
the emulated register at once; what the link answers is read back from the IN endpoint.  pyusb's
own core (descriptors, configuration, claiming) runs unchanged on top of it.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import usb.backend
import usb.core
from kkt.protocols.shtrih.device import ShtrihDeviceLink
from kkt.protocols.shtrih.link import CommandReceived, DeviceSettings

VID, PID = 0x1FC9, 0x0083
OUT, IN = 0x01, 0x81
PACKET = 64


def _descriptor(**fields: Any) -> SimpleNamespace:
    return SimpleNamespace(extra_descriptors=[], **fields)


class FakeUsbBackend(usb.backend.IBackend):  # type: ignore[misc]
    def __init__(self, device: Any, *, silent: tuple[tuple[int, int], ...] = ()) -> None:
        self.device = device  # anything with execute(payload) -> answer payload
        # Other vendor devices on the bus, as (vid, pid): they take writes and never answer.
        self.silent = {f"silent-{i}": ids for i, ids in enumerate(silent)}
        self.written_to_silent: dict[tuple[int, int], int] = {}
        self.link = ShtrihDeviceLink(DeviceSettings(byte=0.25))
        self.outbox = bytearray()
        self.claimed: set[int] = set()
        self.opened = 0

    # -- enumeration and descriptors --------------------------------------------------------------

    def enumerate_devices(self) -> Any:
        yield "fake-register"
        yield from self.silent

    def get_device_descriptor(self, dev: Any) -> SimpleNamespace:
        vid, pid = self.silent.get(dev, (VID, PID))
        return _descriptor(
            bLength=18, bDescriptorType=1, bcdUSB=0x0200, bDeviceClass=0, bDeviceSubClass=0,
            bDeviceProtocol=0, bMaxPacketSize0=64, idVendor=vid, idProduct=pid, bcdDevice=0x0100,
            iManufacturer=0, iProduct=0, iSerialNumber=0, bNumConfigurations=1,
            address=1, bus=1, port_number=1, port_numbers=(1,), speed=2,
        )  # fmt: skip

    def get_configuration_descriptor(self, dev: Any, config: int) -> SimpleNamespace:
        return _descriptor(
            bLength=9, bDescriptorType=2, wTotalLength=32, bNumInterfaces=1,
            bConfigurationValue=1, iConfiguration=0, bmAttributes=0x80, bMaxPower=50,
        )  # fmt: skip

    def get_interface_descriptor(
        self, dev: Any, intf: int, alt: int, config: int
    ) -> SimpleNamespace:
        return _descriptor(
            bLength=9, bDescriptorType=4, bInterfaceNumber=0, bAlternateSetting=0,
            bNumEndpoints=2, bInterfaceClass=0xFF, bInterfaceSubClass=0, bInterfaceProtocol=0,
            iInterface=0,
        )  # fmt: skip

    def get_endpoint_descriptor(
        self, dev: Any, ep: int, intf: int, alt: int, config: int
    ) -> SimpleNamespace:
        address = (OUT, IN)[ep]
        return _descriptor(
            bLength=7, bDescriptorType=5, bEndpointAddress=address, bmAttributes=0x02,
            wMaxPacketSize=PACKET, bInterval=0, bRefresh=0, bSynchAddress=0,
        )  # fmt: skip

    # -- handles ----------------------------------------------------------------------------------

    def open_device(self, dev: Any) -> Any:
        self.opened += 1
        return dev  # the handle names the device

    def close_device(self, dev_handle: Any) -> None:
        self.opened -= 1

    def set_configuration(self, dev_handle: Any, config_value: int) -> None:
        pass

    def get_configuration(self, dev_handle: Any) -> int:
        return 1

    def claim_interface(self, dev_handle: Any, intf: int) -> None:
        self.claimed.add(intf)

    def release_interface(self, dev_handle: Any, intf: int) -> None:
        self.claimed.discard(intf)

    # -- transfers --------------------------------------------------------------------------------

    def bulk_write(self, dev_handle: Any, ep: int, intf: int, data: Any, timeout: int) -> int:
        if dev_handle in self.silent:
            ids = self.silent[dev_handle]
            self.written_to_silent[ids] = self.written_to_silent.get(ids, 0) + len(data)
            return len(data)
        events = self.link.receive_data(bytes(data), time.monotonic())
        for event in events:
            if isinstance(event, CommandReceived):
                self.link.send_answer(self.device.execute(event.command), time.monotonic())
        self.outbox += self.link.data_to_send()
        return len(data)

    def bulk_read(self, dev_handle: Any, ep: int, intf: int, buff: Any, timeout: int) -> int:
        deadline = time.monotonic() + timeout / 1000
        if dev_handle in self.silent:
            time.sleep(timeout / 1000)
            raise usb.core.USBTimeoutError("timeout", -7, 110)
        while not self.outbox:
            timer = self.link.get_timer()
            now = time.monotonic()
            if timer is not None and timer <= now:
                self.link.handle_timer(now)
                self.outbox += self.link.data_to_send()
                continue
            if now >= deadline:
                raise usb.core.USBTimeoutError("timeout", -7, 110)
            time.sleep(min(0.001, deadline - now))
        count = min(len(buff), len(self.outbox))
        for index in range(count):
            buff[index] = self.outbox[index]
        del self.outbox[:count]
        return count
