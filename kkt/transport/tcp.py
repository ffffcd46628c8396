"""``socket://HOST:PORT``: a register on TCP, read the way the session loop wants.

pyserial's socket port reads like a serial port -- ``read(n)`` waits until ``n`` bytes came or the
timeout passed -- so a loop that wants "whatever has arrived" must read one byte at a time.  This
port's ``read(n)`` returns as soon as anything arrived (up to ``n`` bytes), or ``b""`` at the
timeout: one wait and one receive per burst.  Nagle's algorithm is off: every write is a frame or
a control byte that the other side is waiting for.
"""

from __future__ import annotations

import select
import socket

from ..errors import TransportError

SCHEME = "socket://"


def parse_tcp_url(url: str) -> tuple[str, int]:
    """``socket://host:7778`` -> ("host", 7778)."""
    host, colon, port = url[len(SCHEME) :].rstrip("/").rpartition(":")
    try:
        if not colon or not host:
            raise ValueError
        return host.strip("[]"), int(port)
    except ValueError:
        raise TransportError(
            f"{url!r} is not a TCP address; write socket://HOST:PORT (Shtrih: port 7778)"
        ) from None


class TcpPort:
    def __init__(self, host: str, port: int, *, connect_timeout: float = 5.0) -> None:
        try:
            self._socket = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as error:
            raise TransportError(
                f"cannot connect to {host}:{port}: {error.strerror or error}; is the register on, "
                "and listening at that address and port (Shtrih: 7778)?"
            ) from None
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.settimeout(connect_timeout)  # bounds a write; reads wait in select
        self.timeout: float | None = None

    # `read(n)` returns what has arrived without waiting for all ``n`` bytes (see the session).
    reads_available = True

    def _readable(self, timeout: float | None) -> bool:
        try:
            readable, _, _ = select.select([self._socket], [], [], timeout)
        except (ValueError, OSError) as error:  # closed under us (another thread's close)
            raise TransportError(f"the connection is closed: {error}") from None
        return bool(readable)

    @property
    def in_waiting(self) -> int:
        return 1 if self._readable(0) else 0

    def read(self, size: int = 1) -> bytes:
        if not self._readable(self.timeout):
            return b""
        try:
            data = self._socket.recv(size)
        except OSError as error:
            raise TransportError(f"the connection failed: {error}") from None
        if not data:
            raise TransportError("the register closed the connection")
        return data

    def write(self, data: bytes) -> int:
        try:
            self._socket.sendall(data)
        except OSError as error:
            raise TransportError(f"the connection failed: {error}") from None
        return len(data)

    def close(self) -> None:
        self._socket.close()
