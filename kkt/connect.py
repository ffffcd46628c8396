"""``kkt.connect(url)``: open a register by URL.

* ``socket://HOST:PORT`` -- TCP, through `kkt.tcp.TcpPort` (with ``?options`` pyserial's own);
* anything pyserial's ``serial_for_url`` opens: ``/dev/ttyUSB0``, ``COM3``, ``socket://host:7778``,
  ``rfc2217://host:port``, ``loop://``, ``spy://...`` (a hex trace of the traffic);
* ``usb://VID:PID[/SERIAL]`` -- bulk endpoints through pyusb (``usb_backend`` may be given);
* ``emulator:PATH`` -- an emulated register kept in the state directory PATH, in this process.

A serial port is opened exclusively: a second process gets `PortBusy`, not interleaved bytes.
A port that fails later (the register rebooted, the cable was pulled) is opened again at the next
command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import serial

from kkt.protocols.shtrih.link import HostSettings

from .errors import PortBusy, TransportError
from .journal import Journal
from .register import Register
from .session import ShtrikhSession
from .tcp import SCHEME as TCP_SCHEME
from .tcp import TcpPort, parse_tcp_url
from .usb import SCHEME as USB_SCHEME
from .usb import UsbPort, parse_usb_url

EMULATOR_SCHEME = "emulator:"


def connect(
    url: str,
    *,
    protocol: str = "shtrih",
    password: int = 30,
    baudrate: int = 115200,
    journal: str | Path | None = None,
    settings: HostSettings | None = None,
    usb_backend: Any = None,
) -> Register:
    """Open the register at ``url``; ``journal`` (a file path) enables idempotency keys."""
    if protocol != "shtrih":
        raise ValueError(f"protocol {protocol!r} is not supported yet; use 'shtrih'")
    # The journal first: a path that cannot hold it must not leave a port open behind it.
    opened_journal = Journal(journal) if journal else None
    try:
        commander = _commander(url, baudrate, settings, usb_backend)
    except BaseException:
        if opened_journal is not None:
            opened_journal.close()
        raise
    return Register(commander, password=password, journal=opened_journal)


def _commander(url: str, baudrate: int, settings: HostSettings | None, usb_backend: Any) -> Any:
    commander: Any
    if url.startswith(EMULATOR_SCHEME):
        from .inprocess import InProcess  # the one bridge to the emulator, imported on demand

        commander = InProcess(Path(url[len(EMULATOR_SCHEME) :].removeprefix("//")))
    elif url.startswith(USB_SCHEME):
        vid, pid, serial_number = parse_usb_url(url)

        def open_usb() -> Any:
            return UsbPort.open(vid, pid, serial_number, backend=usb_backend)

        commander = ShtrikhSession(open_usb(), settings=settings, reopen=open_usb)
    elif url.startswith(TCP_SCHEME) and "?" not in url:
        host, port_number = parse_tcp_url(url)

        def open_tcp() -> Any:
            return TcpPort(host, port_number)

        commander = ShtrikhSession(open_tcp(), settings=settings, reopen=open_tcp)
    else:

        def open_serial() -> Any:
            return _open_port(url, baudrate)

        commander = ShtrikhSession(open_serial(), settings=settings, reopen=open_serial)
    return commander


def _open_port(url: str, baudrate: int) -> Any:
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
        if "://" in url:
            hint = "is the register on, and listening at that address and port (Shtrikh: 7778)?"
        else:
            hint = (
                "check the path, the cable, and that you may use the port (Linux: the dialout "
                "group)"
            )
        raise TransportError(f"cannot open {url}: {text}; {hint}") from None
    return port
