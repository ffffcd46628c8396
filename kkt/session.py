"""A blocking session over a port: the I/O half of the sans-IO Shtrih link.

The loop writes what the link produced, reads with ``timeout = deadline - now`` (never polling
faster than the link needs), feeds what arrived and fires the link's timer when it is due.  Any
port works that pyserial's ``serial_for_url`` opens -- ``/dev/ttyUSB0``, ``socket://host:7778``,
``rfc2217://``, ``loop://`` -- or anything with the same ``read``/``write``/``timeout``.

A port that fails (a TCP peer gone, a USB cable pulled) ends the exchange with `PortLost`, a
`LinkError` that says whether the command's frame had gone out.  When the session knows how to
``reopen`` the port, the next exchange opens it again and starts the link afresh with ENQ; the
register above then asks the fiscal storage before it decides anything about a money-moving
command that was in flight.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import serial

from kkt.protocols.errors import LinkError
from kkt.protocols.line import AnswerReceived, CommandFailed
from kkt.protocols.shtrih.frame import STX
from kkt.protocols.shtrih.host import ShtrihHostLink
from kkt.protocols.shtrih.link import HostSettings
from kkt.protocols.shtrih.message import Answer, Request

from .errors import TransportError

AnswerT = TypeVar("AnswerT", bound=Answer)
trace = logging.getLogger("kkt.trace")  # DEBUG: every byte on the wire, with timings


class Port(Protocol):
    timeout: float | None

    def write(self, data: bytes, /) -> int | None: ...

    def read(self, size: int = 1, /) -> bytes: ...

    @property
    def in_waiting(self) -> int: ...

    def close(self) -> None: ...


MAX_READ = 4096  # bytes taken at once from a port that has more waiting


class PortLost(LinkError):
    """The port failed under the exchange (peer closed, device unplugged, I/O error)."""


def read_burst(port: Port, wait: float | None) -> bytes:
    """What the port has, waiting at most ``wait`` seconds (None: until something comes) for the
    first byte -- and then everything already arrived, in one read: one feed, one trace line, and
    no byte-by-byte reads where `in_waiting` only says "something" (sockets)."""
    port.timeout = None if wait is None else max(0.0, wait)
    if getattr(port, "reads_available", False):
        received = port.read(MAX_READ)  # returns what came, without waiting for more
    else:
        received = port.read(max(1, port.in_waiting))
    if received and port.in_waiting:
        port.timeout = 0
        received += port.read(MAX_READ)
    return received


def open_port(url: str, *, baudrate: int = 115200) -> Any:
    """Open ``url`` with pyserial (a device path, ``socket://host:port``, ``loop://`` ...)."""
    return serial.serial_for_url(url, baudrate=baudrate, timeout=0)


class ShtrihSession:
    """One host link on one port; commands run one at a time (a lock makes it thread-safe)."""

    def __init__(
        self,
        port: Port,
        *,
        settings: HostSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        reopen: Callable[[], Port] | None = None,
    ) -> None:
        self.port: Port | None = port
        self.settings = settings
        self.link = ShtrihHostLink(settings)
        self._clock = clock
        self._reopen = reopen
        self._lock = threading.Lock()
        self.reconnects = 0  # how many times a lost port was opened again

    def execute(self, request: Request[AnswerT]) -> AnswerT:
        """Send a typed request and return its typed answer.

        Raises `kkt.protocols.LinkError` when the exchange failed (its ``maybe_executed`` says
        whether the device may have done it) and `ShtrihDeviceError` when the device refused.
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
            port = self.port if self.port is not None else self._reconnect()
            try:
                return self._exchange(port, payload, answer_timeout, resend)
            except PortLost:
                self._drop_port()
                raise
            except BaseException:
                # Ctrl-C mid-exchange, or a port class failing its own way: the link is left
                # half-way through; a fresh one (starting with ENQ) is what the next command needs.
                if self.link.busy:
                    self._drop_port()
                raise

    def _exchange(self, port: Port, payload: bytes, answer_timeout: float, resend: bool) -> bytes:
        link, now = self.link, self._clock
        started = now()
        # ``resend`` is True exactly for repeatable queries (`Request.REPEATABLE`): they may also
        # skip the ENQ that guards a repeated command code.
        link.send_command(
            payload, started, answer_timeout=answer_timeout, resend=resend, idempotent=resend
        )
        outcome: AnswerReceived | CommandFailed | None = None
        tracing = trace.isEnabledFor(logging.DEBUG)
        frame_sent = False
        try:
            while True:
                data = link.data_to_send()
                if data:
                    if tracing:
                        trace.debug("%8.1f ms -> %s", (now() - started) * 1000, data.hex(" "))
                    frame_sent = frame_sent or data[0] == STX
                    port.write(data)
                if outcome is not None:
                    break
                deadline = link.get_timer()
                received = read_burst(port, None if deadline is None else deadline - now())
                if received and tracing:
                    trace.debug("%8.1f ms <- %s", (now() - started) * 1000, received.hex(" "))
                events = link.receive_data(received, now()) if received else []
                if deadline is not None and now() >= deadline:
                    events += link.handle_timer(now())
                for event in events:
                    if isinstance(event, AnswerReceived | CommandFailed):
                        outcome = event
        except (serial.SerialException, OSError, TransportError) as exc:
            raise PortLost(
                f"the port failed during the exchange ({exc})"
                + (
                    "; the command may have been executed -- check the register before repeating it"
                    if frame_sent
                    else "; the command was not sent"
                ),
                command=payload,
                maybe_executed=frame_sent,
            ) from exc
        if isinstance(outcome, CommandFailed):
            raise outcome.error
        return outcome.answer

    def _drop_port(self) -> None:
        """Forget a failed port and the link's half-done exchange; the next call reopens."""
        if self.port is not None:
            try:
                self.port.close()
            except (serial.SerialException, OSError, TransportError):
                pass  # it is already broken; closing is only tidiness
        self.port = None
        self.link = ShtrihHostLink(self.settings)

    def _reconnect(self) -> Port:
        if self._reopen is None:
            raise TransportError("the port was lost and this session cannot reopen it; reconnect")
        self.port = self._reopen()  # raises TransportError while the register is unreachable
        self.reconnects += 1
        logging.getLogger(__name__).info("port reopened (reconnect %d)", self.reconnects)
        return self.port

    def close(self) -> None:
        if self.port is not None:
            self.port.close()
            self.port = None
        self._reopen = None  # closed on purpose: never reopen behind the caller's back
