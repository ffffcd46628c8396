"""``kkt scan`` (find registers) and ``kkt doctor`` (what is wrong with this one?).

``doctor`` runs the checks a service engineer would otherwise do by hand, in order, and stops
where the next check could not mean anything: the port exists, this user may open it, nobody else
holds it, something answers and at which speed, it speaks the protocol, its clock agrees with this
computer's, its fiscal storage and OFD queue are healthy.  Every failed check says how to fix it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
from dataclasses import asdict
from typing import Any

import serial
from kkt.protocols.ffd import FnWarning
from rich.console import Console as RichConsole

import kkt
from kkt.discover import BAUD_RATES, discover, serial_ports
from kkt.errors import BadOfdAddress, KktError, PortBusy, TransportError, WrongProtocol
from kkt.ofd import parse_address
from kkt.transport.usb import SCHEME as USB_SCHEME

from .console import Output, grid, plural, show, waiting
from .usage import UsageError

# Where `kkt emulator serve` listens by default: Shtrih, then ATOL (`kkt scan` with no arguments).
DEFAULT_HOSTS = ("127.0.0.1:7778", "127.0.0.1:5555")
CLOCK_TOLERANCE = 60  # seconds of drift before doctor complains
OFD_WARN_DAYS = 25  # unsent this long: the 30-day block is near
OFD_BLOCK_DAYS = 30  # unsent this long: the FN refuses new documents
SHIFT_HOURS = dt.timedelta(hours=24)  # a shift's documents fall within 24 h of its start


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    scan = commands.add_parser(
        "scan",
        help="find registers on serial ports, USB and the network",
        description="Probe serial ports x baud rates (USB ones first), raw USB devices by "
        "VID:PID and TCP addresses with harmless status queries; print what answered.",
        parents=[common],
    )
    scan.add_argument(
        "ports",
        nargs="*",
        help="serial ports to probe (default: all of them, and 127.0.0.1:7778 and :5555 where "
        "`kkt emulator serve` listens)",
    )
    scan.add_argument("--host", action="append", default=[], help="HOST:PORT to probe (repeat)")
    scan.add_argument(
        "--usb", action="append", default=[], help="VID:PID of a raw-USB register (repeat)"
    )
    scan.add_argument("--exclude", action="append", default=[], help="a port never to touch")
    scan.add_argument(
        "--bauds",
        default=",".join(map(str, BAUD_RATES)),
        help="baud rates to try, comma-separated (default %(default)s)",
    )
    scan.set_defaults(handler=None, run=scan_command)
    doctor = commands.add_parser(
        "doctor",
        help="check the port, permissions, link, protocol, clock, FN and OFD queue",
        description="Check, in order, everything that usually stands between you and a "
        "working register, and say how to fix what fails.",
        parents=[common],
    )
    doctor.add_argument(
        "--ofd",
        metavar="HOST:PORT",
        help="also check that this computer reaches the OFD there (a TCP connection, nothing sent)",
    )
    doctor.set_defaults(handler=None, run=doctor_command)


# -- scan -------------------------------------------------------------------------------------


def scan_command(args: argparse.Namespace, out: Output) -> int:
    usb_ids = [_usb_id(text) for text in args.usb]
    bauds = _bauds(args.bauds)
    ports: list[str] = args.ports or serial_ports()
    # Nothing named: the serial ports and where `kkt emulator serve` listens by default.
    hosts: list[str] = args.host or ([] if args.ports else list(DEFAULT_HOSTS))
    with waiting("kkt scan: starting") as update:
        found = discover(
            ports,
            bauds=bauds,
            hosts=hosts,
            usb_ids=usb_ids,
            exclude=args.exclude,
            timeout=args.timeout or 0.3,
            on_probe=lambda what: update(f"kkt scan: trying {what}"),
        )
    data = [asdict(hit) for hit in found]
    tried = _tried([p for p in ports if p not in args.exclude], bauds, hosts, usb_ids)

    def human(console: RichConsole) -> None:
        if not found:
            console.print(
                f"no register answered; tried: {tried}.  Name ports or --host HOST:PORT, check "
                "cables and power, and try `kkt doctor --url PORT`",
                highlight=False,
                soft_wrap=True,
            )
            return
        rows = [(h.url, h.baudrate, f"{h.name} ({h.model})", h.serial, h.protocol) for h in found]
        console.print(grid(None, ("url", "baud", "model", "serial", "protocol"), rows))

    out.result(data, human)
    return 0 if found else 3


def _tried(
    ports: list[str], bauds: list[int], hosts: list[str], usb_ids: list[tuple[int, int]]
) -> str:
    """What a scan tried, in one line: a long list of serial ports cut short in the middle."""
    parts: list[str] = []
    if ports:
        shown = ports if len(ports) <= 4 else [*ports[:3], "…", ports[-1]]
        count = plural(len(ports), "serial port")
        parts.append(f"{', '.join(shown)} ({count} at {', '.join(map(str, bauds))} baud)")
    else:
        parts.append("no serial ports (none found on this machine)")
    parts += [f"usb {vid:04x}:{pid:04x}" for vid, pid in usb_ids]
    parts += [f"socket://{host}" for host in hosts]
    return ", ".join(parts)


def _bauds(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--bauds {text!r}: whole numbers separated by commas") from None


def _usb_id(text: str) -> tuple[int, int]:
    vid, colon, pid = text.partition(":")
    try:
        if not colon:
            raise ValueError
        return int(vid, 16), int(pid, 16)
    except ValueError:
        raise UsageError(f"--usb {text!r}: write VID:PID in hex, e.g. 1fc9:0083") from None


# -- doctor -----------------------------------------------------------------------------------


class Doctor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.checks: list[dict[str, Any]] = []  # as the JSON output has them
        self.found_protocol: str | None = None  # what answered on a serial port

    def note(self, check: str, ok: bool, detail: str, fix: str | None = None) -> bool:
        self.checks.append({"check": check, "ok": ok, "detail": detail, "fix": fix})
        return ok

    def run(self) -> None:
        url: str = self.args.url
        baud: int | None = None  # the speed found on a serial port
        if url.startswith(("emulator:", USB_SCHEME)):
            self.note("address", True, f"{url}: no port checks apply")
        elif url.startswith("socket://"):
            if not self._tcp(url):
                return
        elif "://" in url:
            self.note("address", True, f"{url}: a pyserial URL; checked by talking to it")
        else:
            baud = self._serial(url)
            if baud is None:
                return
        self._register(url, baud)

    def _tcp(self, url: str) -> bool:
        host, _, port = url[len("socket://") :].rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=self.args.timeout or 2.0):
                pass
        except (OSError, ValueError) as error:
            return self.note(
                "network",
                False,
                f"nothing accepts connections at {host}:{port} ({error})",
                "check the address and port (Shtrih network models: 7778; RNDIS default "
                "192.168.137.111), that the register is on, and any firewall between"
                + (
                    f"; {host}:{port} is where `kkt emulator serve --state DIR` listens"
                    + (" with --protocol atol" if port == "5555" else "")
                    + ": start one there to try the emulator"
                    if f"{host}:{port}" in DEFAULT_HOSTS
                    else ""
                ),
            )
        return self.note("network", True, f"{host}:{port} accepts connections")

    def _serial(self, path: str) -> int | None:
        if not os.path.exists(path):
            self.note(
                "port",
                False,
                f"{path} does not exist",
                "plug the register in and switch it on; `kkt scan` lists the ports that answer "
                "(on Linux see /dev/serial/by-id)",
            )
            return None
        self.note("port", True, f"{path} exists")
        if not os.access(path, os.R_OK | os.W_OK):
            self.note(
                "permissions",
                False,
                f"this user may not read and write {path}",
                "add yourself to the port's group (Linux: sudo usermod -aG dialout $USER), "
                "then log in again",
            )
            return None
        self.note("permissions", True, "read and write allowed")
        try:
            port = serial.serial_for_url(path, do_not_open=True, timeout=0.2)
            port.exclusive = True
            port.open()
            port.close()
        except serial.SerialException as error:
            self.note(
                "free",
                False,
                f"{path} cannot be opened: {error}",
                "another program holds the port (a driver, 1C, a service): close it first "
                "(`fuser -v PORT` shows which)",
            )
            return None
        self.note("free", True, "nobody else holds the port")
        bauds = [self.args.baudrate] + [b for b in BAUD_RATES if b != self.args.baudrate]
        hits = discover([path], bauds=bauds, timeout=self.args.timeout or 0.3)
        if not hits:
            self.note(
                "answers",
                False,
                f"nothing answered ENQ at {', '.join(map(str, bauds))} baud",
                "check the cable (a null-modem one for RS-232), that the register is on and "
                "not in its service menu, and the protocol it is set to",
            )
            return None
        hit = hits[0]
        self.found_protocol = hit.protocol.split()[0]  # "shtrih 1.13" -> "shtrih"
        fix = None
        if hit.baudrate != self.args.baudrate:
            fix = f"connect with --baud {hit.baudrate}"
        self.note("answers", fix is None, f"answers at {hit.baudrate} baud ({hit.protocol})", fix)
        return hit.baudrate

    def _register(self, url: str, baud: int | None) -> None:
        # The protocol asked for (auto: probed by connect, or found on the serial port); an
        # ATOL register checked with Shtrih's ENQ would never answer.
        protocol = self.args.protocol or "shtrih"
        if protocol == "auto" and self.found_protocol:
            protocol = self.found_protocol
        try:
            with kkt.connect(
                url,
                protocol=protocol,
                password=self.args.password,
                baudrate=baud or self.args.baudrate,
            ) as register:
                device = register.device_info()
                self.note(
                    "protocol", True, f"{device.name} (model {device.model}), {device.protocol}"
                )
                self._clock(register)
                self._fn(register)
        except PortBusy as error:
            self.note("free", False, str(error), "close the program that holds the port")
        except KktError as error:
            self.note("protocol", False, str(error), _fix_for(error, url))

    def _clock(self, register: kkt.Register) -> None:
        clock = register.clock()
        now = dt.datetime.now()
        if clock is None:
            self.note("clock", False, "the register has no date set", "kkt datetime set")
            return
        drift = (clock - now).total_seconds()
        ok = abs(drift) <= CLOCK_TOLERANCE
        self.note(
            "clock",
            ok,
            f"register {clock:%Y-%m-%d %H:%M:%S}, drift {drift:+.0f} s",
            None if ok else _clock_fix(register, now.replace(microsecond=0)),
        )

    def _fn(self, register: kkt.Register) -> None:
        fn = register.fn_info()
        problems = [flag.name or "" for flag in FnWarning if flag in fn.warnings]
        # The OFD timeout is the OFD check's business: the FN itself is fine.
        fn_problems = [name for name in problems if name != FnWarning.OFD_TIMEOUT.name]
        self.note(
            "fn",
            not problems,
            f"FN {fn.serial}, last document {fn.last_document}"
            + (f"; warnings: {', '.join(problems)}" if problems else ""),
            "plan the FN replacement now"
            if fn_problems
            else ("see the ofd check" if problems else None),
        )
        shift = register.shift_info()
        self.note(
            "shift",
            not shift.expired,
            "expired: open for over 24 hours"
            if shift.expired
            else ("open" if shift.open else "closed"),
            "close it: kkt shift close" if shift.expired else None,
        )
        self._ofd(register, FnWarning.OFD_TIMEOUT in fn.warnings)

    def _ofd(self, register: kkt.Register, timeout_flag: bool) -> None:
        ofd = register.ofd_status()
        last = (
            f"; the OFD's last receipt {show(ofd.last_receipt_when)}"
            if ofd.last_receipt_when
            else ""
        )
        if self.args.ofd:
            self._ofd_link(self.args.ofd)
        if not ofd.unsent or ofd.first_when is None:
            self.note("ofd", not timeout_flag, "nothing waits for the OFD" + last)
            return
        # The FN counts the 30 days by the register's clock, not this computer's.
        now = ofd.clock or dt.datetime.now()
        # Whole days toward zero: a clock set back a few hours is 0 days, not timedelta's -1.
        days = int((now - ofd.first_when).total_seconds() / 86400)
        ok = days < OFD_WARN_DAYS and not timeout_flag and not ofd.blocked
        url = self.args.url or "URL"
        where = url.removeprefix("emulator:") if url.startswith("emulator:") else "DIR"
        fix = (
            "restore the register's link to the OFD (network, OFD settings) so it sends the "
            "queue; a register with no network of its own: `kkt ofd relay --url "
            f"{url} --ofd HOST:PORT`; an emulator's queue is delivered with "
            f"`kkt emulator ctl --state {where} ofd deliver`"
        )
        self.note(
            "ofd",
            ok,
            f"{plural(ofd.unsent, 'document')} unsent, the oldest (document "
            f"{ofd.first_number}) for {plural(days, 'day')}"
            + (
                f": blocked, the FN forms no new documents after {OFD_BLOCK_DAYS} days"
                if ofd.blocked
                else (
                    f"; {plural(ofd.days_left or 0, 'day')} until the FN blocks sales"
                    + ("; the FN warns (OFD timeout)" if timeout_flag else "")
                )
            )
            + last,
            None if ok else fix,
        )

    def _ofd_link(self, address: str) -> None:
        """A TCP connection to the OFD the user named (--ofd): the register's own OFD setting is
        not read (no portable query), and nothing is sent -- a document would change the FN's
        queue, which is `kkt ofd relay`'s business, not a check's."""
        try:
            host, port = parse_address(address)
            with socket.create_connection((host, port), timeout=self.args.timeout or 5.0):
                pass
        except BadOfdAddress as error:
            self.note("ofd link", False, str(error), "give --ofd HOST:PORT")
        except OSError as error:
            self.note(
                "ofd link",
                False,
                f"the OFD at {address} does not accept connections ({error})",
                "check the OFD's address (its instructions, the register's OFD settings), this "
                "computer's network and firewall",
            )
        else:
            self.note("ofd link", True, f"the OFD at {address} accepts connections")


def _clock_fix(register: kkt.Register, now: dt.datetime) -> str:
    """What `kkt datetime set` will take, by the driver's own rule (`Register.set_datetime`):
    the FN refuses a document dated before its last one, or, with a shift open, outside the
    shift's 24 hours -- so advice to set this computer's time must be advice that works."""
    last = register.fn_info().last_document
    latest = register.find_document(last).when if last else None
    shift = register.shift_info()
    opened = shift.opened_at if shift.open else None
    if latest is not None and now < latest.replace(second=0):
        return (
            f"the FN's last document ({last}) is dated {latest:%Y-%m-%d %H:%M}, later than this "
            "computer's clock, and the FN refuses documents dated earlier: `kkt datetime set --to "
            f"{latest:%Y-%m-%dT%H:%M}` is the nearest time it takes (this computer's time, with "
            "`kkt datetime set`, once it has passed that)"
        )
    if opened is not None and not opened <= now < opened + SHIFT_HOURS:
        return (
            f"shift {shift.number} is open since {opened:%Y-%m-%d %H:%M} and the FN takes its "
            f"documents until {opened + SHIFT_HOURS:%Y-%m-%d %H:%M} only: close it (`kkt shift "
            "close`: its Z report takes the register's time, which `kkt datetime set` may not "
            "go back past), then `kkt datetime set`"
        )
    inside = f" (inside shift {shift.number}'s 24 hours)" if opened is not None else ""
    return f"kkt datetime set{inside}"


def _fix_for(error: KktError, url: str) -> str:
    if isinstance(error, WrongProtocol):
        return f"name the register's protocol: `kkt --protocol auto doctor --url {url}` finds it"
    if isinstance(error, TransportError):
        return "check the URL, the cable or network, and that the register is on"
    return "see the message; `kkt -v status` shows every byte exchanged"


def doctor_command(args: argparse.Namespace, out: Output) -> int:
    doctor = Doctor(args)
    doctor.run()

    def human(console: RichConsole) -> None:
        for check in doctor.checks:
            mark = "[green]ok[/green]  " if check["ok"] else "[red]FAIL[/red]"
            line = f"{mark} {check['check']:<12} {check['detail']}"
            console.print(line, highlight=False, soft_wrap=True)
            if check["fix"]:
                console.print(f"       {'':<12} → {check['fix']}", highlight=False, soft_wrap=True)

    out.result(doctor.checks, human)
    return 0 if all(check["ok"] for check in doctor.checks) else 1
