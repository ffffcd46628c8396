"""Find registers: serial ports × baud rates, USB devices by VID:PID, and TCP addresses.

Each candidate is probed harmlessly and briefly: ENQ (a Shtrih register answers NAK or ACK at the
right speed) and then the device-type query FCh; failing that, an ATOL v3 task-state request (an
ATOL register answers with a packet) and then A5h and 3Fh -- status queries only, nothing that
prints or changes state, and no Abort that would clear another program's ATOL tasks.  Every port
is closed again, found or not, and no probe waits longer than its timeout.

Shtrih and ATOL registers on USB usually enumerate as CDC-ACM virtual COM ports, so they are found
among the serial ports; USB serial ports go first and are reported with their VID:PID.  Registers
that expose raw bulk endpoints instead are probed only when their ids are named in ``usb_ids``:
writing ENQ to an unknown vendor device is not harmless.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import serial
from serial.tools import list_ports

from kkt.protocols.atol.link import HostSettings as AtolHostSettings
from kkt.protocols.atol.packet import Packet, PacketDeframer
from kkt.protocols.shtrih import classic
from kkt.protocols.shtrih.frame import ACK, ENQ, NAK
from kkt.protocols.shtrih.link import HostSettings

from .errors import KktError, TransportError
from .transport.ports import open_port
from .transport.session import ATOL_PROBE, AtolSession, ShtrihSession
from .transport.usb import UsbPort, usb_modules, usb_url
from .vendors.atol import AtolDevice
from .vendors.shtrih import ShtrihDevice

log = logging.getLogger(__name__)

# Newer models default to 115200, older ones to 4800 (fact sheet §1.1); the rest follow.
BAUD_RATES = (115200, 4800, 9600, 19200, 38400, 57600)


@dataclass(frozen=True, slots=True)
class Found:
    url: str
    baudrate: int | None
    protocol: str
    model: int
    name: str
    serial: str
    usb_id: str | None = None  # "vid:pid" when the register sits on USB


def discover(
    ports: Iterable[str] | None = None,
    *,
    bauds: Iterable[int] = BAUD_RATES,
    hosts: Iterable[str] = (),
    usb_ids: Iterable[tuple[int, int]] = (),
    usb_backend: Any = None,
    exclude: Iterable[str] = (),
    timeout: float = 0.3,
    on_probe: Callable[[str], None] | None = None,
) -> list[Found]:
    """Registers answering on ``ports`` (default: every serial port of this machine, USB ones
    first), on raw USB devices whose ``(vid, pid)`` is in ``usb_ids``, or on ``hosts``
    (``host:port``, e.g. the RNDIS default ``192.168.137.111:7778``).  Ports in ``exclude`` are
    never opened (a scale, a modem, another register's driver).  ``on_probe`` hears what is
    about to be tried ("/dev/ttyS0 at 115200 baud", "socket://HOST:PORT", "usb VID:PID")."""
    skip = set(exclude)
    found: list[Found] = []
    usb_serial = _usb_serial_ports()
    if ports is None:
        ports = serial_ports(usb_serial)
    tell = on_probe or (lambda what: None)
    for port in ports:
        if port in skip:
            continue
        for baud in bauds:
            tell(f"{port} at {baud} baud")
            hit = _probe_serial(port, baud, timeout)
            if hit is not None:
                found.append(replace(hit, usb_id=usb_serial.get(port)))
                break
    wanted = set(usb_ids)
    if wanted:
        tell("usb " + ", ".join(f"{vid:04x}:{pid:04x}" for vid, pid in sorted(wanted)))
        found += _discover_usb(wanted, usb_backend, skip, timeout)
    for host in hosts:
        if host in skip:
            continue
        tell(f"socket://{host}")
        hit = _probe_tcp(host, timeout)
        if hit is not None:
            found.append(hit)
    return found


def serial_ports(usb_serial: dict[str, str | None] | None = None) -> list[str]:
    """This machine's serial ports, USB ones first: what ``discover`` probes by default."""
    usb = _usb_serial_ports() if usb_serial is None else usb_serial
    return sorted(usb, key=lambda p: (usb[p] is None, p))


def _usb_serial_ports() -> dict[str, str | None]:
    """Every serial port of this machine -> "vid:pid" for USB ones, None for the rest."""
    return {
        info.device: None if info.vid is None else f"{info.vid:04x}:{info.pid or 0:04x}"
        for info in list_ports.comports()
    }


def _discover_usb(
    wanted: set[tuple[int, int]], backend: Any, skip: set[str], timeout: float
) -> list[Found]:
    core, _ = usb_modules()
    try:
        devices = list(
            core.find(
                find_all=True,
                backend=backend,
                custom_match=lambda d: (d.idVendor, d.idProduct) in wanted,
            )
        )
    except core.NoBackendError:
        raise TransportError("no USB backend (libusb) is installed on this machine") from None
    found: list[Found] = []
    for device in devices:
        url = usb_url(device)
        if url in skip:
            continue
        try:
            port = UsbPort(device, url)
        except TransportError as exc:
            log.debug("%s: not probed (%s)", url, exc)
            continue
        try:
            hit = _identify(port, url, None, timeout)
        finally:
            port.close()
        if hit is not None:
            found.append(replace(hit, usb_id=f"{device.idVendor:04x}:{device.idProduct:04x}"))
    return found


# A harmless ATOL question (`kkt.transport.session.ATOL_PROBE`): the state of task 0xDF.
_ATOL_PROBE = ATOL_PROBE


def probe_protocol(port: Any, timeout: float = 1.0) -> str:
    """Which protocol the register on ``port`` speaks: "shtrih" or "atol".

    Status questions only: an ENQ (a Shtrih register answers NAK or ACK), then an ATOL task-state
    request (an ATOL register answers with a v3 packet).  Neither prints nor changes anything.
    """
    port.timeout = timeout
    port.write(bytes((ENQ,)))
    reply = port.read(1)
    if reply in (bytes((NAK,)), bytes((ACK,))):
        return "shtrih"
    port.write(_ATOL_PROBE)
    deframer = PacketDeframer()
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        port.timeout = left
        chunk = port.read(64)  # a reply may come in pieces (TCP segments, a slow serial line)
        if any(isinstance(token, Packet) for token in deframer.feed(chunk)):
            return "atol"
    raise TransportError(
        "the device answers neither a Shtrih ENQ nor an ATOL v3 packet: is it a register, is it "
        "on, and is the baud rate right?  Name the protocol (shtrih or atol) to skip the probe"
    )


def _probe_serial(path: str, baud: int, timeout: float) -> Found | None:
    try:
        port: Any = open_port(path, baudrate=baud)  # exclusively, as `kkt.connect` opens it
    except (TransportError, OSError) as exc:
        log.debug("%s: not probed (%s)", path, exc)
        return None
    try:
        port.reset_input_buffer()
        return _identify_any(port, path, baud, timeout)
    except (serial.SerialException, OSError) as exc:  # the port failed mid-probe
        log.debug("%s: probe failed (%s)", path, exc)
        return None
    finally:
        port.close()


def _probe_tcp(host: str, timeout: float) -> Found | None:
    address, _, port_text = host.rpartition(":")
    try:
        with socket.create_connection((address, int(port_text)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        log.debug("%s: nothing listens (%s)", host, exc)
        return None
    url = f"socket://{host}"
    try:
        port = open_port(url)
    except TransportError as exc:
        log.debug("%s: %s", url, exc)
        return None
    try:
        return _identify_any(port, url, None, timeout)
    finally:
        port.close()


def _identify_any(port: Any, url: str, baud: int | None, timeout: float) -> Found | None:
    """Whichever register answers: Shtrih (ENQ) or ATOL (a v3 task-state request)."""
    try:
        protocol = probe_protocol(port, timeout)
    except TransportError:
        return None
    if protocol == "atol":
        return _identify_atol(port, url, baud, timeout)
    return _identify(port, url, baud, timeout)


def _identify_atol(port: Any, url: str, baud: int | None, timeout: float) -> Found | None:
    # No Abort on opening: a probe must not clear the tasks of the program that owns the register.
    quick = AtolHostSettings(packet=timeout, packet_tries=2, abort_on_open=False)
    device = AtolDevice(AtolSession(port, settings=quick))
    device.query_tries = 1
    try:
        info = device.device_info()
    except KktError as exc:
        log.debug("%s: answers ATOL packets but not A5h/3Fh (%s)", url, exc)
        return None
    return Found(url, baud, info.protocol, info.model, info.name, info.serial)


def _identify(port: Any, url: str, baud: int | None, timeout: float) -> Found | None:
    quick = HostSettings(
        ack=timeout, byte=timeout, quiet=0.05, probe=timeout, max_enq=2, max_resend=1
    )
    device = ShtrihDevice(ShtrihSession(port, settings=quick))
    device.query_tries = 1  # a probe asks once: a silent port is not worth five tries
    try:
        kind = device.raw(classic.GetDeviceType())
    except KktError as exc:
        log.debug("%s: answers ENQ but not FCh (%s)", url, exc)
        return None
    try:
        serial_number = device.raw(classic.ReadTable(30, 18, 1, 1)).value.split(b"\0", 1)[0]
        number = serial_number.decode("cp1251", "replace")
    except KktError:
        number = ""  # another password, or no table 18: the model is still worth reporting
    protocol = f"shtrih {kind.protocol_version}.{kind.protocol_subversion}"
    return Found(url, baud, protocol, kind.model, kind.name, number)
