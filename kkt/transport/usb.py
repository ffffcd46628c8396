"""``usb://VID:PID[/SERIAL]``: a register on USB bulk endpoints, through pyusb.

Some registers present a vendor USB interface instead of a virtual COM port.  `UsbPort` gives it
the same ``read``/``write``/``timeout`` face a pyserial port has, so the session loop is the same.
The pyusb backend can be passed in: the tests use a fake one bridged to the emulator, so no USB
hardware (nor libusb) is needed to run them.  pyusb is the optional ``usb`` extra.
"""

from __future__ import annotations

from typing import Any

from ..errors import TransportError

SCHEME = "usb://"


def parse_usb_url(url: str) -> tuple[int, int, str | None]:
    """``usb://1fc9:0083/0012345678`` -> (0x1FC9, 0x0083, "0012345678")."""
    body = url[len(SCHEME) :]
    ids, _, serial = body.partition("/")
    vid, colon, pid = ids.partition(":")
    try:
        if not colon:
            raise ValueError
        return int(vid, 16), int(pid, 16), serial or None
    except ValueError:
        raise TransportError(
            f"{url!r} is not a USB address; write usb://VID:PID or usb://VID:PID/SERIAL (hex ids)"
        ) from None


VENDOR_CLASS = 0xFF  # a vendor-specific interface: what a register on raw bulk endpoints shows


def usb_modules() -> tuple[Any, Any]:
    """pyusb's ``usb.core`` and ``usb.util``, or a `TransportError` that says how to get them."""
    try:
        import usb.core
        import usb.util
    except ImportError:
        raise TransportError("USB needs pyusb: pip install 'kktkit[usb]'") from None
    return usb.core, usb.util


def usb_url(device: Any) -> str:
    """The ``usb://VID:PID[/SERIAL]`` that names ``device`` (a pyusb device)."""
    url = f"{SCHEME}{device.idVendor:04x}:{device.idProduct:04x}"
    try:
        serial = device.serial_number if device.iSerialNumber else None
    except (ValueError, NotImplementedError, OSError):  # no permission to read strings
        serial = None
    return f"{url}/{serial}" if serial else url


class UsbPort:
    """Bulk IN/OUT endpoints of the first interface that has both."""

    def __init__(self, device: Any, where: str | None = None) -> None:
        core, util = usb_modules()
        self._core, self._util = core, util
        where = where or usb_url(device)
        try:
            device.set_configuration()
            interface = device.get_active_configuration()[(0, 0)]
        except core.USBError as exc:
            raise TransportError(
                f"cannot configure {where}: {exc} (permissions? udev rules?)"
            ) from None
        self._out = self._endpoint(interface, util.ENDPOINT_OUT)
        self._in = self._endpoint(interface, util.ENDPOINT_IN)
        if self._out is None or self._in is None:
            util.dispose_resources(device)
            raise TransportError(f"{where} has no bulk IN and OUT endpoints; is it a register?")
        self._device = device
        self._buffer = bytearray()
        self.timeout: float | None = None

    @classmethod
    def open(cls, vid: int, pid: int, serial: str | None = None, *, backend: Any = None) -> UsbPort:
        """The device with these ids (and serial number, when given)."""
        core, _ = usb_modules()

        def matches(device: Any) -> bool:
            if serial is None:
                return True
            try:
                return bool(device.serial_number == serial)
            except (ValueError, NotImplementedError, OSError, core.USBError):
                return False  # its serial cannot be read (permissions, no string descriptors)

        where = f"{SCHEME}{vid:04x}:{pid:04x}" + (f"/{serial}" if serial else "")
        try:
            device = core.find(idVendor=vid, idProduct=pid, backend=backend, custom_match=matches)
        except core.NoBackendError:
            raise TransportError("no USB backend (libusb) is installed on this machine") from None
        if device is None:
            raise TransportError(f"no USB device at {where}: is it plugged in and powered?")
        return cls(device, where)

    def _endpoint(self, interface: Any, direction: int) -> Any:
        util = self._util
        return util.find_descriptor(
            interface,
            custom_match=lambda e: (
                util.endpoint_direction(e.bEndpointAddress) == direction
                and util.endpoint_type(e.bmAttributes) == util.ENDPOINT_TYPE_BULK
            ),
        )

    # `read(n)` returns a buffered packet without waiting for all ``n`` bytes (see the session).
    reads_available = True

    @property
    def in_waiting(self) -> int:
        return len(self._buffer)

    def write(self, data: bytes) -> int:
        try:
            return int(self._out.write(data, timeout=1000))
        except self._core.USBError as exc:
            raise TransportError(f"USB write failed: {exc}; was the device unplugged?") from None

    def read(self, size: int = 1) -> bytes:
        if not self._buffer:
            # libusb reads 0 as "wait forever": the shortest real wait is 1 ms.
            wait = 0 if self.timeout is None else max(1, int(self.timeout * 1000))
            try:
                self._buffer += bytes(self._in.read(self._in.wMaxPacketSize, timeout=wait))
            except self._core.USBTimeoutError:
                return b""
            except self._core.USBError as exc:
                raise TransportError(f"USB read failed: {exc}; was the device unplugged?") from None
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def close(self) -> None:
        self._util.dispose_resources(self._device)
