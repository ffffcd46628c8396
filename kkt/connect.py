"""``kkt.connect(url)``: open a register by URL.

* ``socket://HOST:PORT`` -- TCP, through `kkt.transport.tcp.TcpPort` (with ``?options``
  pyserial's own);
* anything pyserial's ``serial_for_url`` opens: ``/dev/ttyUSB0``, ``COM3``, ``socket://host:7778``,
  ``rfc2217://host:port``, ``loop://``, ``spy://...`` (a hex trace of the traffic);
* ``usb://VID:PID[/SERIAL]`` -- bulk endpoints through pyusb (``usb_backend`` may be given);
* ``emulator:PATH`` -- an emulated register kept in the state directory PATH, in this process.

`kkt.transport.ports` opens the ports (its table of schemes); ``emulator:`` is no port, and is
handled here.

``protocol`` is the register's: ``"shtrih"`` (Shtrih-M protocol v1, TCP port 7778), ``"atol"``
(ATOL protocol 3.1 over the v3 task buffer, TCP port 5555) or ``"auto"``, which probes the port
with harmless queries (an ENQ for Shtrih, a task-state request for ATOL) and picks the one that
answers.

``time_limit`` (seconds) bounds everything the register does from ``connect`` on -- one ``kkt``
command's ``--timeout``: an exchange still running then ends with `kkt.TransportError` (not sent)
or `kkt.OutcomeUnknown` (it may have been executed: check before repeating), and every later one
fails at once; nothing is resent because of it.

A serial port is opened exclusively: a second process gets `PortBusy`, not interleaved bytes.
A port that fails later (the register rebooted, the cable was pulled) is opened again at the next
command.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kkt.protocols.atol.link import HostSettings as AtolHostSettings
from kkt.protocols.shtrih.link import HostSettings

from .discover import probe_protocol
from .journal import Journal
from .register import Register
from .transport.ports import opener
from .transport.session import AtolSession, Commander, ShtrihSession
from .vendors.atol import AtolDevice
from .vendors.base import Device
from .vendors.shtrih import ShtrihDevice

EMULATOR_SCHEME = "emulator:"


PROTOCOLS = ("shtrih", "atol", "auto")
# Each vendor's host session, the type of its link's settings, and its device.
_VENDORS: dict[str, tuple[Any, type, type[ShtrihDevice | AtolDevice]]] = {
    "shtrih": (ShtrihSession, HostSettings, ShtrihDevice),
    "atol": (AtolSession, AtolHostSettings, AtolDevice),
}


def connect(
    url: str,
    *,
    protocol: str = "shtrih",
    password: int = 30,
    baudrate: int = 115200,
    journal: str | Path | None = None,
    settings: HostSettings | AtolHostSettings | None = None,
    usb_backend: Any = None,
    time_limit: float | None = None,
    verify: bool = False,
) -> Register:
    """Open the register at ``url``; ``journal`` (a file path) enables idempotency keys;
    ``verify`` reads every receipt's and every correction's document back after it is formed
    (`kkt.verify`: a closing damaged on a serial line past its checksum raises `DamagedClosing`
    instead of "done").

    ``password`` is the operator's (Shtrih) or the mode password (ATOL): 30, the system
    administrator, by default on both.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit must be a positive number of seconds, not {time_limit!r}")
    deadline = None if time_limit is None else time.monotonic() + time_limit
    # The journal first: a path that cannot hold it must not leave a port open behind it.
    opened_journal = Journal(journal) if journal else None
    try:
        device = _device(
            url, protocol, password, baudrate, settings, usb_backend, deadline, time_limit
        )
    except BaseException:
        if opened_journal is not None:
            opened_journal.close()
        raise
    return Register(device, journal=opened_journal, verify=verify)


def _device(
    url: str,
    protocol: str,
    password: int,
    baudrate: int,
    settings: HostSettings | AtolHostSettings | None,
    usb_backend: Any,
    deadline: float | None = None,
    time_limit: float | None = None,
) -> Device:
    if url.startswith(EMULATOR_SCHEME):
        from .transport.inprocess import InProcess  # the one bridge to the emulator, on demand

        vendor = "shtrih" if protocol == "auto" else protocol
        inproc = InProcess(Path(url[len(EMULATOR_SCHEME) :].removeprefix("//")), protocol=vendor)
        return _vendor_device(vendor, inproc, password)
    reopen = opener(url, baudrate=baudrate, usb_backend=usb_backend)
    port = reopen()
    if protocol == "auto":
        try:
            left = None if deadline is None else deadline - time.monotonic()
            protocol = probe_protocol(port, 1.0 if left is None else max(0.05, min(1.0, left / 2)))
        except BaseException:
            port.close()
            raise
    session, settings_type, _ = _VENDORS[protocol]
    if settings is not None and not isinstance(settings, settings_type):
        port.close()
        raise ValueError(
            f"settings for a {protocol} register are a kkt.protocols.{protocol}.link.HostSettings"
        )
    opened = session(port, settings=settings, reopen=reopen, deadline=deadline)
    if time_limit is not None:
        opened.limit_text = f"its time limit of {time_limit:g} s"
    commander: Commander = opened
    return _vendor_device(protocol, commander, password)


def _vendor_device(protocol: str, commander: Commander, password: int) -> Device:
    device: type[ShtrihDevice | AtolDevice] = _VENDORS[protocol][2]
    return device(commander, password=password)
