"""A blocking session over a port: the I/O half of the sans-IO Shtrikh link.

The loop writes what the link produced, reads with ``timeout = deadline - now`` (never polling
faster than the link needs), feeds what arrived and fires the link's timer when it is due.  Any
port works that pyserial's ``serial_for_url`` opens -- ``/dev/ttyUSB0``, ``socket://host:7778``,
``rfc2217://``, ``loop://`` -- or anything with the same ``read``/``write``/``timeout``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import serial

from kkt.protocols.shtrih.link import (
    AnswerReceived,
    CommandFailed,
    HostSettings,
    Role,
    ShtrikhLink,
)
from kkt.protocols.shtrih.message import Answer, Request

AnswerT = TypeVar("AnswerT", bound=Answer)
trace = logging.getLogger("kkt.trace")  # DEBUG: every byte on the wire, with timings


class Port(Protocol):
    timeout: float | None

    def write(self, data: bytes, /) -> int | None: ...

    def read(self, size: int = 1, /) -> bytes: ...

    @property
    def in_waiting(self) -> int: ...

    def close(self) -> None: ...


def open_port(url: str, *, baudrate: int = 115200) -> Any:
    """Open ``url`` with pyserial (a device path, ``socket://host:port``, ``loop://`` ...)."""
    return serial.serial_for_url(url, baudrate=baudrate, timeout=0)


class ShtrikhSession:
    """One host link on one port; commands run one at a time (a lock makes it thread-safe)."""

    def __init__(
        self,
        port: Port,
        *,
        settings: HostSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port = port
        self.link = ShtrikhLink(Role.HOST, host=settings)
        self._clock = clock
        self._lock = threading.Lock()

    def execute(self, request: Request[AnswerT]) -> AnswerT:
        """Send a typed request and return its typed answer.

        Raises `kkt.protocols.LinkError` when the exchange failed (its ``maybe_executed`` says
        whether the device may have done it) and `ShtrikhDeviceError` when the device refused.
        Money-moving requests are never re-sent by the link, even when that would be safe by the
        protocol: the caller decides after checking the fiscal storage.
        """
        answer = self.exchange(
            request.encode(), answer_timeout=request.TIMEOUT, resend=request.REPEATABLE
        )
        return request.decode_answer(answer)

    def exchange(self, payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes:
        """One raw command payload in, its answer payload out (see `execute`)."""
        with self._lock:
            link, port, now = self.link, self.port, self._clock
            started = now()
            link.send_command(payload, started, answer_timeout=answer_timeout, resend=resend)
            outcome: AnswerReceived | CommandFailed | None = None
            tracing = trace.isEnabledFor(logging.DEBUG)
            while True:
                data = link.data_to_send()
                if data:
                    if tracing:
                        trace.debug("%8.1f ms -> %s", (now() - started) * 1000, data.hex(" "))
                    port.write(data)
                if outcome is not None:
                    break
                deadline = link.get_timer()
                port.timeout = None if deadline is None else max(0.0, deadline - now())
                received = port.read(max(1, port.in_waiting))
                if received and tracing:
                    trace.debug("%8.1f ms <- %s", (now() - started) * 1000, received.hex(" "))
                events = link.receive_data(received, now()) if received else []
                if deadline is not None and now() >= deadline:
                    events += link.handle_timer(now())
                for event in events:
                    if isinstance(event, AnswerReceived | CommandFailed):
                        outcome = event
            if isinstance(outcome, CommandFailed):
                raise outcome.error
            return outcome.answer

    def close(self) -> None:
        self.port.close()
