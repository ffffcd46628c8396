"""``kkt cloud serve --emulated N``: N emulated registers and the one emulated OFD they send to,
served on 127.0.0.1 by a child process.

Why a child process: the service's own process is busy with HTTP and the drivers' sessions; the
emulators (each a register with its durable FN, fsyncing every document) get a CPU of their own
and one event loop there, as `kkt bench farm` runs its farm.

Layout under the service's state directory (reused across restarts, so a restarted service finds
its registers' FNs as they were)::

    STATE/emulated/00 ... NN   one register each (`kkt.emulator.state`: FN archive, settings)
    STATE/emulated/ofd         the emulated OFD (`kkt.emulator.ofd`)
    STATE/emulated/ports.json  the TCP ports last served: taken again when free

The child dies with its parent: it stops on ``"stop"`` from the pipe **or on the pipe's end of
file** -- which is what it reads when the parent is gone, even after ``kill -9`` -- and the
kernel then drops its state locks.  SIGINT is ignored in the child (a Ctrl-C reaches the whole
process group; the parent stops it in order).

Each register keeps its control channel (``STATE/emulated/NN/control.sock``, `control` sends one
request: paper out, clock, faults ...), and each sends every document to the OFD by itself (a
networked register, like ``kkt emulator serve --ofd``).  ``protocol="mixed"`` serves the even
registers as Shtrih-M and the odd ones as ATOL.  ``inn`` registers the registers created now
with that INN (an existing register keeps the INN it has).

The registers share one emulated ОИСМ's knowledge of sold codes (`Circulation`): a marked unit
sold on one is "sold before" on every other.  Each still has its own ОИСМ settings (the control
channel's ``oism`` action steers one register's answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import select
import signal
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from kkt.emulator.atol import AtolRegister
from kkt.emulator.ofd import OfdService, OfdStateBusy
from kkt.emulator.ofd.oism import Circulation
from kkt.emulator.personality import Personality
from kkt.emulator.shells import Service
from kkt.emulator.shells.ofdlink import DEFAULT_RETRY, OfdAddress
from kkt.emulator.shtrih import ShtrihRegister
from kkt.emulator.state import StateBusy, StateLock, open_model

from .pool import RegisterSpec

PROTOCOLS = ("shtrih", "atol", "mixed")
START_TIMEOUT = 300.0  # creating many FNs costs fsyncs; an existing state opens at once
STOP_TIMEOUT = 60.0
PORTS_FILE = "ports.json"
HOST = "127.0.0.1"
CHILD_CODE = "from kkt.cloud.emulated import child_main; child_main()"


class EmulatedError(RuntimeError):
    """The emulated registers could not be started or steered; the message says why."""


class EmulatedPool:
    """``count`` emulated registers (``protocol``: "shtrih", "atol" or "mixed") and one emulated
    OFD, served by a child process from ``state_dir/emulated``.  A context manager, or `start`
    and `stop`; `specs` names them for a `RegisterPool`."""

    def __init__(
        self,
        state_dir: str | Path,
        count: int,
        protocol: str = "shtrih",
        inn: str | None = None,
        *,
        ofd_retry: float = DEFAULT_RETRY,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100:
            raise ValueError(
                f"count must be a whole number of registers from 1 to 100, not {count!r}"
            )
        if inn is not None and "inn" not in inspect.signature(open_model).parameters:
            raise ValueError(
                "this kktkit's emulator registers every register with its test INN only; "
                "leave the INN out (or update kktkit)"
            )
        self.root = Path(state_dir) / "emulated"
        self.count = count
        self.protocol = protocol
        self.inn = inn
        self.ofd_retry = ofd_retry
        self.ports: list[int] = []
        self.ofd_port = 0
        self._process: subprocess.Popen[bytes] | None = None

    # -- what it serves ---------------------------------------------------------------------------

    def protocols(self) -> list[str]:
        """Each register's protocol, by index."""
        if self.protocol != "mixed":
            return [self.protocol] * self.count
        return ["shtrih" if index % 2 == 0 else "atol" for index in range(self.count)]

    def state(self, index: int) -> Path:
        """Register ``index``'s state directory."""
        return self.root / f"{index:02d}"

    @property
    def urls(self) -> list[str]:
        return [f"socket://{HOST}:{port}" for port in self.ports]

    def specs(self, group: str) -> list[RegisterSpec]:
        """The registers as the pool's specs for ``group`` (names ``emulated-00`` ...)."""
        if not self.ports:
            raise RuntimeError("start the emulated registers first")
        return [
            RegisterSpec(f"emulated-{index:02d}", group, url, protocol)
            for index, (url, protocol) in enumerate(zip(self.urls, self.protocols(), strict=True))
        ]

    @property
    def pid(self) -> int | None:
        """The child process's PID while it runs."""
        return None if self._process is None else self._process.pid

    def control(self, index: int, request: dict[str, Any]) -> dict[str, Any]:
        """Send ``request`` to register ``index``'s control channel (`kkt.emulator.control`:
        ``{"action": "paper", "state": "out"}`` ...); its answer.  Raises `EmulatedError`."""
        return _control(self.state(index) / "control.sock", request)

    def ofd_control(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send ``request`` to the emulated OFD's control channel (`kkt.emulator.ofd.control`)."""
        return _control(self.root / "ofd" / "control.sock", request)

    # -- starting and stopping --------------------------------------------------------------------

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("the emulated registers are started already")
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        config = {
            "root": str(self.root),
            "protocols": self.protocols(),
            "inn": self.inn,
            "last": self._last_ports(),
            "retry": self.ofd_retry,
        }
        # A fresh interpreter (not multiprocessing: its "spawn" re-runs the parent's main module,
        # which a service embedded in someone's script cannot promise to guard).  Its stdin is
        # the pipe whose end of file means "the parent is gone".
        self._process = subprocess.Popen(
            [sys.executable, "-c", CHILD_CODE, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        try:
            ready = self._expect("ready", START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        self.ports, self.ofd_port = list(ready["ports"]), int(ready["ofd_port"])
        self._save_ports()

    def stop(self) -> None:
        """Stop the child (asked, then terminated, then killed) and wait for it."""
        process = self._process
        if process is None:
            return
        try:
            assert process.stdin is not None
            process.stdin.write(b"stop\n")
            process.stdin.flush()
            self._expect("closed", STOP_TIMEOUT)
        except (OSError, ValueError, EmulatedError):
            pass  # what matters now is that it is gone
        finally:
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self._process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _expect(self, kind: str, timeout: float) -> Any:
        process = self._process
        assert process is not None and process.stdout is not None
        readable, _, _ = select.select([process.stdout], [], [], timeout)
        line = process.stdout.readline() if readable else None
        if line is None:
            raise EmulatedError(f"the emulated registers sent no {kind!r} in {timeout:.0f} s")
        if not line:
            try:
                code = process.wait(5)
            except subprocess.TimeoutExpired:
                code = None
            raise EmulatedError(f"the emulated registers' process died (exit code {code})")
        try:
            tag, value = json.loads(line)
        except ValueError:
            raise EmulatedError(f"the emulated registers said {line!r}") from None
        if tag == "error":
            raise EmulatedError(f"the emulated registers failed: {value}")
        if tag != kind:
            raise EmulatedError(f"the emulated registers sent {tag!r}, expected {kind!r}")
        return value

    def _last_ports(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / PORTS_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save_ports(self) -> None:
        text = json.dumps({"ports": self.ports, "ofd_port": self.ofd_port})
        path = self.root / PORTS_FILE
        path.write_text(text + "\n")
        os.chmod(path, 0o600)


def _control(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(10)
            connection.connect(str(path))
            connection.sendall(json.dumps(request).encode() + b"\n")
            with connection.makefile("rb") as answers:
                line = answers.readline()
        answer: dict[str, Any] = json.loads(line)
    except (OSError, ValueError) as error:
        raise EmulatedError(f"the control channel {path} failed: {error}") from None
    if not answer.get("ok"):
        raise EmulatedError(f"the control channel {path} refused {request}: {answer}")
    return answer


# -- the child process --------------------------------------------------------------------------


def child_main() -> None:
    """The child process: serve what ``sys.argv[1]`` (JSON) describes; report on stdout (one JSON
    line: ``["ready", {...}]``, ``["closed", null]`` or ``["error", traceback]``); stop on
    ``stop`` or the end of stdin."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it, in order
    report = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr  # nothing else may write into the parent's channel

    def send(message: object) -> None:
        with contextlib.suppress(OSError):  # the parent may be gone
            report.write(json.dumps(message) + "\n")
            report.flush()

    try:
        config = json.loads(sys.argv[1])
        asyncio.run(_serve(send, config))
    except (StateBusy, OfdStateBusy) as busy:
        # Another process holds a state (a second service on the same --state): its message
        # names the owner; a traceback would only bury it.
        send(["error", str(busy)])
    except BaseException:
        send(["error", traceback.format_exc()])
    else:
        send(["closed", None])
    finally:
        with contextlib.suppress(OSError):
            report.close()


def _open(state: Path, protocol: str, inn: str | None) -> Personality:
    personality = AtolRegister if protocol == "atol" else ShtrihRegister
    extra: dict[str, Any] = {"inn": inn} if inn else {}  # the emulator's newer keyword
    return personality(open_model(state, **extra))


async def _serve(send: Callable[[object], None], config: dict[str, Any]) -> None:
    root, protocols, inn = Path(config["root"]), config["protocols"], config["inn"]
    wanted, retry = config["last"], float(config["retry"])
    last_ports = wanted.get("ports") if isinstance(wanted.get("ports"), list) else []
    ofd = OfdService(root / "ofd")
    devices: list[Personality] = []
    services: list[Service] = []
    ports: list[int] = []
    # One ОИСМ's knowledge of sold codes for every register here: a code sold on one register
    # is withdrawn for all, as in the one national system (`kkt.emulator.ofd.oism`).
    circulation = Circulation()
    try:
        try:
            await ofd.start(HOST, _int(wanted.get("ofd_port")), command="kkt cloud serve (OFD)")
        except OSError:
            await ofd.start(HOST, 0, command="kkt cloud serve (OFD)")  # the old port is taken
        assert ofd.server is not None
        address = OfdAddress(HOST, ofd.server.port, retry=retry)
        for index, protocol in enumerate(protocols):
            state = root / f"{index:02d}"
            device = _open(state, protocol, inn)
            devices.append(device)
            device.model.oism.share(circulation)
            owner = getattr(device.model, "owner", None)
            if isinstance(owner, StateLock):
                owner.announce(command=f"kkt cloud serve (emulated register {index:02d})")
            # A networked register (Shtrih table 21: "through the register"), as `kkt emulator
            # serve --ofd` leaves it: served alone later, it still sends.
            settings = device.settings
            settings.ofd_host, settings.ofd_port = HOST, address.port
            settings.ofd_via_driver = False
            settings.save()
            service = Service(device, protocol=protocol)
            services.append(service)
            port = _int(last_ports[index]) if index < len(last_ports) else 0
            try:
                server = await service.tcp(HOST, port)
            except OSError:
                server = await service.tcp(HOST, 0)
            ports.append(server.port)
            service.send_to_ofd(address)
            await service.control(state)
        send(["ready", {"ports": ports, "ofd_port": address.port}])
        await _until_stopped()
    finally:
        for service in services:
            service.close()
        for service in services:
            await service.wait_closed()
        for device in devices:
            device.close()
        await ofd.close()


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


async def _until_stopped() -> None:
    """Until the parent says "stop" -- or is gone (end of file on stdin)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stdin = sys.stdin.fileno()

    def on_input() -> None:
        try:
            data = os.read(stdin, 4096)
        except OSError:
            data = b""
        if not data or b"stop" in data:
            stop.set()

    loop.add_reader(stdin, on_input)
    try:
        await stop.wait()
    finally:
        loop.remove_reader(stdin)
