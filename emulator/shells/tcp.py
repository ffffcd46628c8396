"""The TCP shell: a device served on TCP, over Shtrih-M v1 (port 7778) or ATOL v3 (port 5555).

Every connection gets its own pump and link (its own ENQ/ACK state and pending answer), and all of
them share the device's one `DeviceRunner` (see `shells.service`), so commands from several
clients run one at a time, never interleaved.  A client that sends garbage gets what a register
gives it (NAKs, dropped partial frames); one that vanishes loses only its own answer.  Neither
can disturb the others or stop the server.
"""

from __future__ import annotations

import asyncio
import gc
import logging

from .listener import Listener, PumpFactory
from .pump import Pump

log = logging.getLogger(__name__)
# Loop turns between asyncio accepting a socket and the protocol's connection_made (CPython 3.11:
# the accept task, the transport's creation, the call_soon of connection_made), with a margin.
_ACCEPT_TURNS = 5


class TcpServer(Listener):
    """A listening socket (or several, for a name that resolves to more than one address)."""

    def __init__(self, make_pump: PumpFactory) -> None:
        self._make_pump = make_pump
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._pumps: set[Pump] = set()  # includes closed ones whose command still runs
        self._no_connections = asyncio.Event()
        self._no_connections.set()
        self._closing = False
        self._accepting = 0  # connections accepted whose connection_made has not come yet

    async def start(self, host: str, port: int) -> None:
        """Bind and listen; raises `OSError` (e.g. the port is busy)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accepted, host, port)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound (host, port) pairs -- the real port when 0 was asked for."""
        if self._server is None:
            return []
        return [sock.getsockname()[:2] for sock in self._server.sockets]

    @property
    def port(self) -> int:
        addresses = self.addresses
        if not addresses:
            raise RuntimeError("the server is not listening")
        return addresses[0][1]

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.abort()

    async def wait_closed(self) -> None:
        """After `close`: wait for the commands still running."""
        if self._server is not None:
            await self._server.wait_closed()
        # A connection accepted just before `close` reaches `_opened` a few loop turns later
        # (which aborts it); let those turns pass, so no accepted socket outlives the server.
        for _ in range(_ACCEPT_TURNS):
            await asyncio.sleep(0)
        if self._accepting:
            # CPython 3.11 fails to attach a transport to a closed server and drops the accepted
            # socket without closing it: only the garbage collector frees that descriptor.
            gc.collect()
        # Aborted transports report connection_lost on the next loop turns; only then is every
        # pump that may still run a command known.
        await self._no_connections.wait()
        await asyncio.gather(*(pump.wait_closed() for pump in list(self._pumps)))

    # -- called by connections ------------------------------------------------------------------

    def _accepted(self) -> _Connection:
        self._accepting += 1
        return _Connection(self)

    def _opened(self, connection: _Connection, transport: asyncio.Transport) -> Pump:
        self._accepting -= 1
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:  # (host, port[, flow, scope]): HOST:PORT
            peer = f"[{peer[0]}]:{peer[1]}" if ":" in str(peer[0]) else f"{peer[0]}:{peer[1]}"
        pump = self._make_pump(transport.write, f"tcp {peer}", transport.abort)
        self._connections.add(connection)
        self._no_connections.clear()
        self._pumps.add(pump)
        log.debug("tcp %s: connected", peer)
        if self._closing:
            transport.abort()  # accepted while the server was closing
        return pump

    def _lost(self, connection: _Connection, pump: Pump) -> None:
        self._connections.discard(connection)
        if not self._connections:
            self._no_connections.set()
        pump.close()
        task = pump.task
        if task is None or task.done():
            self._pumps.discard(pump)
        else:
            task.add_done_callback(lambda _: self._pumps.discard(pump))


class _Connection(asyncio.Protocol):
    def __init__(self, server: TcpServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._pump: Pump | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport  # asyncio sets TCP_NODELAY: one-byte replies go out at once
        self._pump = self._server._opened(self, transport)

    def data_received(self, data: bytes) -> None:
        if self._pump is not None:
            self._pump.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        log.debug("tcp: connection lost (%s)", exc or "closed by the client")
        if self._pump is not None:
            self._server._lost(self, self._pump)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
