"""A blocking session over a port: the I/O half of the sans-IO ATOL v3 host link.

The same loop as `kkt.session.ShtrihSession` (and the same `Commander` interface): write what
the link produced, read with ``timeout = deadline - now``, feed what arrived, fire the link's
timer when due.

What ATOL's task buffer adds is recovery from a lost port.  The register keeps a task and its
result until the host's Ack, whatever happens to the connection, so when the port fails under a
command that may have reached the register, the session reopens it (when it knows how) and the
link asks for the task with ``Req(TID)`` on the new connection: the caller gets the command's own
reply, and nothing runs twice (B3 NotFound for a task never confirmed adds it again).  When the
port cannot be reopened in time the exchange ends with `PortLost`; the next exchange reopens it
and the link settles that task first (Req, then Ack), so no slot of the buffer leaks -- and a
retry of the same command resumes it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import serial

from kkt.protocols.atol.host import AtolHostLink
from kkt.protocols.atol.link import Event, HostSettings
from kkt.protocols.line import AnswerReceived, CommandFailed

from .errors import TransportError
from .session import Port, PortLost, read_burst, trace

log = logging.getLogger(__name__)

_PORT_ERRORS = (serial.SerialException, OSError, TransportError)


class AtolSession:
    """One ATOL host link on one port; commands run one at a time (a lock makes it thread-safe).

    ``reopen`` opens the port again after a failure; ``reopen_tries`` bounds how often one
    exchange does so before it gives up with `PortLost`.
    """

    def __init__(
        self,
        port: Port,
        *,
        settings: HostSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        reopen: Callable[[], Port] | None = None,
        reopen_tries: int = 2,
    ) -> None:
        self.port: Port | None = port
        self.settings = settings
        # One link for the session's life: its packet and task IDs and its unresolved task
        # outlive a port (a fresh link would Abort the very task we want back).
        self.link = AtolHostLink(settings)
        self._clock = clock
        self._reopen = reopen
        self._reopen_tries = reopen_tries
        self._lock = threading.Lock()
        self.reconnects = 0  # how many times a lost port was opened again

    def exchange(self, payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes:
        """One command block (``pwd(2) code params…``) in, its reply block out.

        ``resend`` is True for repeatable queries: a task the register lost after taking it is
        then simply added again.  Raises a `kkt.protocols.LinkError` (``maybe_executed`` says
        whether the register may have done it) when the exchange failed; a refusal by the
        register comes back as its reply (``55 err …``), for the command layer to decode.
        """
        with self._lock:
            if self.port is None:
                self._reconnect()  # raises TransportError while the register is unreachable
            now = self._clock()
            self.link.send_command(payload, now, answer_timeout=answer_timeout, repeatable=resend)
            try:
                return self._run(payload)
            except BaseException as interrupted:
                # Ctrl-C, or a port class failing in its own way: end the exchange in the link,
                # its task kept unresolved, or every later command would find the link busy.
                if self.link.busy:
                    self.link.abandon(
                        self._clock(), f"the exchange was interrupted ({interrupted!r})"
                    )
                raise

    def _run(self, payload: bytes) -> bytes:
        link, now = self.link, self._clock
        started = now()
        tracing = trace.isEnabledFor(logging.DEBUG)
        reopens = 0
        while True:
            port = self.port
            assert port is not None
            try:
                outcome = self._pump(port, started, tracing)
            except _PORT_ERRORS as exc:
                self._drop_port()
                if reopens < self._reopen_tries and self._reopen is not None and link.busy:
                    reopens += 1
                    try:
                        self._reconnect()
                    except _PORT_ERRORS as reopen_error:
                        log.info("reopening the port failed: %s", reopen_error)
                    else:
                        link.reconnected(now())  # Req for a task that may have arrived
                        continue
                outcome = self._abandoned(exc, payload)
            if isinstance(outcome, CommandFailed):
                raise outcome.error
            return outcome.answer

    def _abandoned(self, exc: Exception, payload: bytes) -> AnswerReceived | CommandFailed:
        """The port is gone for this exchange: the link's verdict, as `PortLost`."""
        for event in self.link.abandon(self._clock(), f"the port failed ({exc})"):
            if isinstance(event, AnswerReceived):
                return event  # only the Ack was missing; the next command settles it
            if isinstance(event, CommandFailed):
                error = event.error
                raise PortLost(
                    str(error), command=payload, maybe_executed=error.maybe_executed
                ) from exc
        raise PortLost(
            f"the port failed ({exc}) after the command ended",
            command=payload,
            maybe_executed=True,
        ) from exc

    def _pump(self, port: Port, started: float, tracing: bool) -> AnswerReceived | CommandFailed:
        """Run the link on ``port`` until the command ends; port errors propagate."""
        link, now = self.link, self._clock
        outcome: AnswerReceived | CommandFailed | None = None
        while True:
            data = link.data_to_send()
            if data:
                if tracing:
                    trace.debug("%8.1f ms -> %s", (now() - started) * 1000, data.hex(" "))
                port.write(data)
            if outcome is not None:
                return outcome
            deadline = link.get_timer()
            received = read_burst(port, None if deadline is None else deadline - now())
            if received and tracing:
                trace.debug("%8.1f ms <- %s", (now() - started) * 1000, received.hex(" "))
            events: list[Event] = link.receive_data(received, now()) if received else []
            if deadline is not None and now() >= deadline:
                events += link.handle_timer(now())
            for event in events:
                if isinstance(event, AnswerReceived | CommandFailed):
                    outcome = event

    def _drop_port(self) -> None:
        if self.port is not None:
            try:
                self.port.close()
            except _PORT_ERRORS:
                pass  # it is already broken; closing is only tidiness
        self.port = None

    def _reconnect(self) -> Port:
        if self._reopen is None:
            raise TransportError("the port was lost and this session cannot reopen it; reconnect")
        self.port = self._reopen()
        self.reconnects += 1
        log.info("port reopened (reconnect %d)", self.reconnects)
        return self.port

    def close(self) -> None:
        if self.port is not None:
            self.port.close()
            self.port = None
        self._reopen = None  # closed on purpose: never reopen behind the caller's back
