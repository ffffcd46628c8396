"""One emulated device served: on TCP, on pseudo-terminals and on the control channel.

`Service` builds what serving a device takes once -- the `DeviceRunner` (its command lock and
worker thread), the `Faults` every line and the control channel share, and the protocol's half of
every pump (`ShtrihCommands`, or ATOL's `AtolTasks` with the device's one task buffer and its
executor) -- and then listens wherever it is asked: `Service.tcp`, `Service.pty`,
`Service.control`.  Closing it closes every listener, waits for the commands still running, stops
the worker thread and removes the control socket.

Given a ``trace`` (`pump.TraceFactory`), every link's bytes in and out are reported to it.

`ServiceThread` runs a service on its own event loop in a background thread (a `LoopThread`), for a
host in the same process (tests, ``kkt demo``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..control import SOCKET_NAME, ControlError, Controls, serve_control
from ..faults import Faults
from ..personality import Personality
from . import atol, shtrih
from .listener import Listener, PumpFactory
from .loop_thread import LoopThread
from .ofdlink import OfdAddress, OfdLink
from .pty import PtyServer
from .pump import Pump, TraceFactory
from .runner import DeviceRunner, Emulated
from .tcp import TcpServer

PROTOCOLS = ("shtrih", "atol")
DEFAULT_PORTS = {"shtrih": shtrih.DEFAULT_PORT, "atol": atol.DEFAULT_PORT}


class Service(Listener):
    """``device`` served in ``protocol`` ("shtrih": Shtrih-M v1, "atol": ATOL v3) on the running
    event loop; ``async with`` closes it and waits on the way out.  ``atol_options``: how an
    ATOL register's task buffer delivers and keeps results (`atol.AtolOptions`)."""

    def __init__(
        self,
        device: Emulated,
        *,
        protocol: str = "shtrih",
        faults: Faults | None = None,
        trace: TraceFactory | None = None,
        atol_options: atol.AtolOptions | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
        self.device = device
        self.protocol = protocol
        self.faults = faults if faults is not None else Faults()
        self.trace = trace
        self.lock = asyncio.Lock()  # the device's commands and control actions, one at a time
        self.runner = DeviceRunner(device, self.lock, self.faults)
        self.tasks = atol.AtolTasks(self.runner, atol_options) if protocol == "atol" else None
        self._vendor = self.tasks if self.tasks is not None else shtrih.ShtrihCommands()
        self.listeners: list[Listener] = []
        self._control: asyncio.Server | None = None
        self._control_path: Path | None = None
        self.ofd: OfdLink | None = None  # the register's own OFD client (`send_to_ofd`)

    async def tcp(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        settings: Any = None,
        filler_after_ack: bool = True,
    ) -> TcpServer:
        """Listen on TCP (``port=0``: a free one, read it from `TcpServer.port`); raises
        `OSError`.  ``settings`` overrides the protocol's link timing for TCP; Shtrih only:
        ``filler_after_ack`` sends the 0xFF real network models send after the host's ACK."""
        server = TcpServer(self._pumps(settings, network=True, filler_after_ack=filler_after_ack))
        await server.start(host, port)
        self.listeners.append(server)
        return server

    async def pty(self, link: Path | str, *, settings: Any = None) -> PtyServer:
        """Serve a new pseudo-terminal reachable through the symlink ``link``; raises `OSError`
        (`FileExistsError` when ``link`` is a file other than a symlink)."""
        server = PtyServer(self._pumps(settings, network=False), Path(link))
        server.start()
        self.listeners.append(server)
        return server

    def send_to_ofd(self, address: OfdAddress) -> OfdLink:
        """Be a networked register: send every document the FN forms to the OFD at ``address``
        (`ofdlink.OfdLink`, a task on this loop; closed with the service)."""
        if not isinstance(self.device, Personality):
            raise TypeError("only an emulated register has an FN to send from")
        if self.ofd is not None:
            raise RuntimeError(f"this register sends to {self.ofd.address} already")
        self.ofd = OfdLink(self.device.fn, self.runner, address)
        self.ofd.start()
        return self.ofd

    async def control(self, state: Path) -> Path:
        """Listen on the control channel in the state directory ``state``; its socket's path."""
        if not isinstance(self.device, Personality):
            raise TypeError("the control channel steers an emulated register")
        controls = Controls(self.device, self.faults, ofd_send=self._ofd_send)
        self._control = await serve_control(state, controls, self.lock)
        self._control_path = state / SOCKET_NAME
        return self._control_path

    def close(self) -> None:
        """Stop listening and drop every line (commands already running finish)."""
        for listener in self.listeners:
            listener.close()
        if self._control is not None:
            self._control.close()
        if self.ofd is not None:
            self.ofd.close()

    async def wait_closed(self) -> None:
        """After `close`: wait for the commands still running, the control channel's clients
        and the worker thread."""
        try:
            for listener in self.listeners:
                await listener.wait_closed()
            if self.tasks is not None and self.tasks.executor is not None:
                await asyncio.wait([self.tasks.executor])
            if self._control is not None:
                await self._control.wait_closed()
            if self.ofd is not None:
                await self.ofd.wait_closed()
        finally:
            if self._control_path is not None:
                self._control_path.unlink(missing_ok=True)
            if self.tasks is not None:
                self.tasks.close()
            self.runner.close()

    async def _ofd_send(self) -> dict[str, Any]:
        if self.ofd is None:
            raise ControlError(
                "this emulator has no OFD to send to: serve it with --ofd HOST:PORT (then it "
                "sends by itself), relay with `kkt ofd relay`, or confirm with `ofd deliver`"
            )
        report = await self.ofd.send_now()
        if report.error is not None:
            raise ControlError(
                f"sent {len(report.sent)}, then stopped: {report.error}; "
                f"{report.unsent} document{'' if report.unsent == 1 else 's'} wait"
                f"{'s' if report.unsent == 1 else ''} (the register tries again every "
                f"{self.ofd.address.retry:g} s)"
            )
        return report.as_dict()

    def _pumps(
        self, settings: Any, *, network: bool, filler_after_ack: bool | None = None
    ) -> PumpFactory:
        if self.tasks is not None:
            timing: Any = atol.link_settings(settings, network=network, options=self.tasks.options)
        else:
            timing = shtrih.link_settings(
                settings, network=network, filler_after_ack=filler_after_ack
            )

        def pump(write: Any, name: str, on_error: Any) -> Pump:
            trace = self.trace(name) if self.trace is not None else None
            return Pump(
                self._vendor, self.runner, write, timing, name=name, on_error=on_error, trace=trace
            )

        return pump


class ServiceThread(LoopThread):
    """A `Service` on TCP 127.0.0.1 (a free port: `port`) and, given ``pty``, a pseudo-terminal,
    run by a background thread's event loop; ``with`` starts it and stops it (thread joined).

    ``settings`` is the TCP link's timing (the protocol's default if None); given ``ofd``, the
    register sends its documents there (`Service.send_to_ofd`; the link is then `ofd`).
    """

    what = "the emulator"

    def __init__(
        self,
        device: Emulated,
        faults: Faults | None = None,
        *,
        pty: Path | None = None,
        settings: Any = None,
        protocol: str = "shtrih",
        ofd: OfdAddress | None = None,
    ) -> None:
        super().__init__(name="kkt-emulator")
        self.device = device
        self.faults = faults if faults is not None else Faults()
        self.protocol = protocol
        self.port = 0
        self.ofd: OfdLink | None = None
        self._ofd_address = ofd
        self._pty = pty
        self._settings = settings

    def _start_failure(self, failure: BaseException) -> BaseException:
        error = RuntimeError(f"{self.what} did not start")
        error.__cause__ = failure
        return error

    async def _serve(self) -> None:
        assert self._stop is not None
        service = Service(self.device, protocol=self.protocol, faults=self.faults)
        async with service:
            server = await service.tcp(settings=self._settings)
            self.port = server.port
            if self._pty is not None:
                await service.pty(self._pty)
            if self._ofd_address is not None:
                self.ofd = service.send_to_ofd(self._ofd_address)
            self._ready.set()
            await self._stop.wait()
