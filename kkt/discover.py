"""Find registers: serial ports × baud rates, and TCP addresses, each probed harmlessly and briefly.

A probe is ENQ (a register answers NAK or ACK at the right speed) and then the device-type query
FCh -- status queries only, nothing that prints or changes state.  Every port is closed again,
found or not, and no probe waits longer than its timeout.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import serial
from serial.tools import list_ports

from kkt.protocols.shtrih import classic
from kkt.protocols.shtrih.frame import ACK, ENQ, NAK
from kkt.protocols.shtrih.link import HostSettings

from .errors import KktError
from .register import Register
from .session import ShtrikhSession

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


def discover(
    ports: Iterable[str] | None = None,
    *,
    bauds: Iterable[int] = BAUD_RATES,
    hosts: Iterable[str] = (),
    timeout: float = 0.3,
) -> list[Found]:
    """Registers answering on ``ports`` (default: every serial port of this machine) or ``hosts``
    (``host:port``, e.g. the RNDIS default ``192.168.137.111:7778``)."""
    found: list[Found] = []
    for port in list(ports) if ports is not None else [p.device for p in list_ports.comports()]:
        for baud in bauds:
            hit = _probe_serial(port, baud, timeout)
            if hit is not None:
                found.append(hit)
                break
    for host in hosts:
        hit = _probe_tcp(host, timeout)
        if hit is not None:
            found.append(hit)
    return found


def _probe_serial(path: str, baud: int, timeout: float) -> Found | None:
    try:
        port = serial.serial_for_url(path, baudrate=baud, timeout=timeout, do_not_open=True)
        if "://" not in path:
            port.exclusive = True
        port.open()
    except (serial.SerialException, OSError, ValueError) as exc:
        log.debug("%s: not probed (%s)", path, exc)
        return None
    try:
        port.reset_input_buffer()
        port.write(bytes((ENQ,)))
        reply = port.read(1)
        if reply not in (bytes((NAK,)), bytes((ACK,))):
            return None
        return _identify(port, path, baud, timeout)
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
        port = serial.serial_for_url(url, timeout=timeout)
    except (serial.SerialException, OSError) as exc:
        log.debug("%s: %s", url, exc)
        return None
    try:
        return _identify(port, url, None, timeout)
    finally:
        port.close()


def _identify(port: Any, url: str, baud: int | None, timeout: float) -> Found | None:
    quick = HostSettings(
        ack=timeout, byte=timeout, quiet=0.05, probe=timeout, max_enq=2, max_resend=1
    )
    register = Register(ShtrikhSession(port, settings=quick))
    register.query_tries = 1
    try:
        kind = register.raw(classic.GetDeviceType())
    except KktError as exc:
        log.debug("%s: answers ENQ but not FCh (%s)", url, exc)
        return None
    try:
        serial_number = register.raw(classic.ReadTable(30, 18, 1, 1)).value.split(b"\0", 1)[0]
        number = serial_number.decode("cp1251", "replace")
    except KktError:
        number = ""  # another password, or no table 18: the model is still worth reporting
    protocol = f"shtrih {kind.protocol_version}.{kind.protocol_subversion}"
    return Found(url, baud, protocol, kind.model, kind.name, number)
