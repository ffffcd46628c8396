"""Opening a port by URL: one opener, a table of schemes (as pyserial's protocol handlers are).

* ``socket://HOST:PORT`` -- TCP, through `kkt.transport.tcp.TcpPort` (with ``?options``: pyserial's
  own socket port);
* ``usb://VID:PID[/SERIAL]`` -- bulk endpoints through pyusb (``usb_backend`` may be given);
* anything else pyserial's ``serial_for_url`` opens: ``/dev/ttyUSB0``, ``COM3``,
  ``rfc2217://host:port``, ``loop://``, ``spy://...`` (a hex trace of the traffic).

A serial port is opened exclusively: a second process gets `PortBusy`, not interleaved bytes.
(``emulator:PATH`` is no port: `kkt.connect` hands it to `kkt.transport.inprocess`.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import serial

from ..errors import PortBusy, TransportError
from . import tcp, usb
from .session import Port

Opener = Callable[[], Port]
# HOST:PORT, [IPv6]:PORT -- a network address written without its socket:// scheme.
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):\d{1,5}$")


def _usb(url: str, baudrate: int, usb_backend: Any) -> Opener:
    vid, pid, serial_number = usb.parse_usb_url(url)
    return lambda: usb.UsbPort.open(vid, pid, serial_number, backend=usb_backend)


def _tcp(url: str, baudrate: int, usb_backend: Any) -> Opener:
    if "?" in url:  # pyserial's own options: its own socket port
        return _serial(url, baudrate, usb_backend)
    host, port_number = tcp.parse_tcp_url(url)
    return lambda: tcp.TcpPort(host, port_number)


def _serial(url: str, baudrate: int, usb_backend: Any) -> Opener:
    return lambda: _open_serial(url, baudrate)


SCHEMES: dict[str, Callable[[str, int, Any], Opener]] = {usb.SCHEME: _usb, tcp.SCHEME: _tcp}


def opener(url: str, *, baudrate: int = 115200, usb_backend: Any = None) -> Opener:
    """How to open (and, after a failure, reopen) the port ``url`` names."""
    for scheme, make in SCHEMES.items():
        if url.startswith(scheme):
            return make(url, baudrate, usb_backend)
    return _serial(url, baudrate, usb_backend)


def open_port(url: str, *, baudrate: int = 115200, usb_backend: Any = None) -> Port:
    """Open the port ``url`` names (`TransportError`, `PortBusy` when it cannot be opened)."""
    return opener(url, baudrate=baudrate, usb_backend=usb_backend)()


def _open_serial(url: str, baudrate: int) -> Any:
    try:
        port = serial.serial_for_url(url, baudrate=baudrate, timeout=0, do_not_open=True)
    except (ValueError, serial.SerialException) as error:
        raise TransportError(
            f"{url!r} is not a port this driver can open ({error}); write a device path "
            "(/dev/ttyUSB0, COM3), socket://HOST:PORT, usb://VID:PID or emulator:DIR"
        ) from None
    if "://" not in url:
        port.exclusive = True  # a second process must not interleave its bytes with ours
    try:
        port.open()
    except serial.SerialException as exc:
        text = str(exc)
        if "busy" in text.lower() or "lock" in text.lower():
            raise PortBusy(f"{url} is in use by another process; close it there first") from None
        if "://" not in url and _HOST_PORT.match(url) and not os.path.exists(url):
            hint = (
                f"did you mean socket://{url}? (a network register needs the socket:// scheme; "
                "without one the address is taken for a device path)"
            )
        elif "://" in url:
            hint = (
                "is the register on, and listening at that address and port (Shtrih: 7778, "
                "ATOL: 5555)?"
            )
        else:
            hint = (
                "check the path, the cable, and that you may use the port (Linux: the dialout "
                "group)"
            )
        raise TransportError(f"cannot open {url}: {text}; {hint}") from None
    return port
