"""``socket://HOST:PORT``: a register on TCP, read the way the session loop wants.

pyserial's socket port reads like a serial port -- ``read(n)`` waits until ``n`` bytes came or the
timeout passed -- so a loop that wants "whatever has arrived" must read one byte at a time.  This
port's ``read(n)`` returns as soon as anything arrived (up to ``n`` bytes), or ``b""`` at the
timeout: one wait and one receive per burst.  Nagle's algorithm is off: every write is a frame or
a control byte that the other side is waiting for.

``TCP_USER_TIMEOUT`` (Linux): by default a frame the network keeps dropping is retransmitted for
as long as the kernel's ``tcp_retries2`` allows (about 15 minutes).  A caller that must know a
frame is either delivered or abandoned within a bound (the cloud pool: a register's lease runs
out) gives one for the ports opened in its thread: ``with user_timeout(4.0): ...`` -- every
`TcpPort` opened inside, reopened ones included, aborts its connection once written data stays
unacknowledged that long.  Without it nothing changes.
"""

from __future__ import annotations

import contextlib
import contextvars
import select
import socket
from collections.abc import Iterator

from ..errors import TransportError

SCHEME = "socket://"

# seconds, for the ports opened in this context (`user_timeout`); None: the kernel's default
_USER_TIMEOUT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "kkt_tcp_user_timeout", default=None
)


@contextlib.contextmanager
def user_timeout(seconds: float | None) -> Iterator[None]:
    """Every `TcpPort` opened inside (in this thread or task) gets ``TCP_USER_TIMEOUT`` =
    ``seconds`` where the system has it; None: the kernel's default."""
    if seconds is not None and not seconds > 0:
        raise ValueError(f"a TCP user timeout is a positive number of seconds, not {seconds!r}")
    token = _USER_TIMEOUT.set(seconds)
    try:
        yield
    finally:
        _USER_TIMEOUT.reset(token)


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
        self.user_timeout: float | None = None  # seconds of TCP_USER_TIMEOUT, when set
        wanted = _USER_TIMEOUT.get()
        option = getattr(socket, "TCP_USER_TIMEOUT", None)  # Linux only
        if wanted is not None and option is not None:
            self._socket.setsockopt(socket.IPPROTO_TCP, option, max(1, round(wanted * 1000)))
            self.user_timeout = wanted
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
