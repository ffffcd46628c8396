"""``kkt.connect(url)``: open a register by URL.

* ``socket://HOST:PORT`` -- TCP, through `kkt.tcp.TcpPort` (with ``?options`` pyserial's own);
* anything pyserial's ``serial_for_url`` opens: ``/dev/ttyUSB0``, ``COM3``, ``socket://host:7778``,
  ``rfc2217://host:port``, ``loop://``, ``spy://...`` (a hex trace of the traffic);
* ``usb://VID:PID[/SERIAL]`` -- bulk endpoints through pyusb (``usb_backend`` may be given);
* ``emulator:PATH`` -- an emulated register kept in the state directory PATH, in this process.

``protocol`` is the register's: ``"shtrih"`` (Shtrih-M protocol v1, TCP port 7778), ``"atol"``
(ATOL protocol 3.1 over the v3 task buffer, TCP port 5555) or ``"auto"``, which probes the port
with harmless queries (an ENQ for Shtrih, a task-state request for ATOL) and picks the one that
answers.

A serial port is opened exclusively: a second process gets `PortBusy`, not interleaved bytes.
A port that fails later (the register rebooted, the cable was pulled) is opened again at the next
command.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import serial

from kkt.protocols.atol.link import HostSettings as AtolHostSettings
from kkt.protocols.shtrih.link import HostSettings

from .atol_device import AtolDevice
from .atol_session import AtolSession
from .commander import Commander
from .device import Device
from .discover import probe_protocol
from .errors import PortBusy, TransportError
from .journal import Journal
from .register import Register
from .session import ShtrihSession
from .shtrih_device import ShtrihDevice
from .tcp import SCHEME as TCP_SCHEME
from .tcp import TcpPort, parse_tcp_url
from .usb import SCHEME as USB_SCHEME
from .usb import UsbPort, parse_usb_url

EMULATOR_SCHEME = "emulator:"


PROTOCOLS = ("shtrih", "atol", "auto")


def connect(
    url: str,
    *,
    protocol: str = "shtrih",
    password: int = 30,
    baudrate: int = 115200,
    journal: str | Path | None = None,
    settings: HostSettings | AtolHostSettings | None = None,
    usb_backend: Any = None,
) -> Register:
    """Open the register at ``url``; ``journal`` (a file path) enables idempotency keys.

    ``password`` is the operator's (Shtrih) or the mode password (ATOL): 30, the system
    administrator, by default on both.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    # The journal first: a path that cannot hold it must not leave a port open behind it.
    opened_journal = Journal(journal) if journal else None
    try:
        device = _device(url, protocol, password, baudrate, settings, usb_backend)
    except BaseException:
        if opened_journal is not None:
            opened_journal.close()
        raise
    return Register(device, password=password, journal=opened_journal)


def _device(
    url: str,
    protocol: str,
    password: int,
    baudrate: int,
    settings: HostSettings | AtolHostSettings | None,
    usb_backend: Any,
) -> Device:
    if url.startswith(EMULATOR_SCHEME):
        from .inprocess import InProcess  # the one bridge to the emulator, imported on demand

        vendor = "shtrih" if protocol == "auto" else protocol
        inproc = InProcess(Path(url[len(EMULATOR_SCHEME) :].removeprefix("//")), protocol=vendor)
        return _vendor_device(vendor, inproc, password)
    opener = _opener(url, baudrate, usb_backend)
    port = opener()
    if protocol == "auto":
        try:
            protocol = probe_protocol(port)
        except BaseException:
            port.close()
            raise
    commander: Commander
    if protocol == "atol":
        if settings is not None and not isinstance(settings, AtolHostSettings):
            port.close()
            raise ValueError("settings for an ATOL register are an atol.link.HostSettings")
        commander = AtolSession(port, settings=settings, reopen=opener)
    else:
        if settings is not None and not isinstance(settings, HostSettings):
            port.close()
            raise ValueError("settings for a Shtrih register are a shtrih.link.HostSettings")
        commander = ShtrihSession(port, settings=settings, reopen=opener)
    return _vendor_device(protocol, commander, password)


def _vendor_device(protocol: str, commander: Commander, password: int) -> Device:
    if protocol == "atol":
        return AtolDevice(commander, password=password)
    return ShtrihDevice(commander, password=password)


def _opener(url: str, baudrate: int, usb_backend: Any) -> Callable[[], Any]:
    """How to open (and, after a failure, reopen) the port ``url`` names."""
    if url.startswith(USB_SCHEME):
        vid, pid, serial_number = parse_usb_url(url)
        return lambda: UsbPort.open(vid, pid, serial_number, backend=usb_backend)
    if url.startswith(TCP_SCHEME) and "?" not in url:
        host, port_number = parse_tcp_url(url)
        return lambda: TcpPort(host, port_number)
    return lambda: _open_port(url, baudrate)


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
