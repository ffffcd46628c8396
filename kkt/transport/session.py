"""A blocking session over a port: the I/O half of a sans-IO host link, one loop for every vendor.

The loop writes what the link produced, reads with ``timeout = deadline - now`` (never polling
faster than the link needs), feeds what arrived and fires the link's timer when it is due.  Any
port works that `kkt.transport.ports.open_port` opens -- ``/dev/ttyUSB0``, ``socket://host:7778``,
``rfc2217://``, ``usb://``, ``loop://`` -- or anything with the same ``read``/``write``/``timeout``.

A port that fails (a TCP peer gone, a USB cable pulled) ends the exchange with `PortLost`, a
`LinkError` that says whether the command may have been executed.  What a vendor's link can do
about a lost port differs, and is the one thing a vendor's session adds (`LinkSession`'s hooks):

* Shtrih (`ShtrihSession`): the link cannot ask "did you do my last command?".  The next exchange
  opens the port again (when the session knows how to ``reopen`` it) with a fresh link that starts
  with ENQ; the register above asks the fiscal storage before it decides anything about a
  money-moving command that was in flight.
* ATOL (`AtolSession`): the register keeps a task and its result until the host's Ack, whatever
  happens to the connection, so the session reopens the port at once and the same link asks for
  the task with ``Req(TID)``: the caller gets the command's own reply and nothing runs twice (B3
  NotFound for a task never confirmed adds it again).  When the port cannot be reopened in time
  the exchange ends with `PortLost`; the next exchange reopens it and the link settles that task
  first (Req, then Ack), so no slot of the buffer leaks -- and a retry of the same command resumes
  it.

A session may carry an overall ``deadline`` (a moment on its clock, e.g. the end of one ``kkt``
command's ``--timeout``): an exchange still running then ends with `TimeUp` -- ``maybe_executed``
as the link judges it, so a money-moving command is never resent because of it -- and every later
exchange fails at once without touching the line.

A register that speaks the other vendor's protocol is recognised within about a second
(`WrongProtocol`, never executed): a Shtrih host that hears nothing after its first ENQ asks once
with a harmless ATOL task-state request (an ATOL register answers with an ``FE`` packet), and a
Shtrih host hearing an ``FE`` packet, or an ATOL host hearing Shtrih's NAK/ACK or an STX frame
and never a packet, knows at once.  This lives here, beside the port, not in the sans-IO links:
it is a question about what is on the other end of the port, asked with bytes neither link owns.

A session takes no lock: one command at a time is the caller's rule (`kkt.Register` holds one
lock around each of its commands).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import serial

from kkt.protocols.atol import link as atol
from kkt.protocols.atol.buffer import Req
from kkt.protocols.atol.host import MAX_TID, AtolHostLink
from kkt.protocols.atol.packet import MAX_REQUEST_ID, Packet, PacketDeframer, encode_packet
from kkt.protocols.errors import LinkError
from kkt.protocols.line import AnswerReceived, CommandFailed
from kkt.protocols.shtrih import link as shtrih
from kkt.protocols.shtrih.frame import ACK, ENQ, NAK, STX, Deframer, Frame
from kkt.protocols.shtrih.host import ShtrihHostLink
from kkt.protocols.shtrih.message import Answer, Request

from ..errors import TransportError

AnswerT = TypeVar("AnswerT", bound=Answer)
SettingsT = TypeVar("SettingsT")
log = logging.getLogger(__name__)
trace = logging.getLogger("kkt.trace")  # DEBUG: every byte on the wire, with timings


class Commander(Protocol):
    """Carries one command payload to the register and brings back its answer payload.

    ``resend`` is True for read-only queries only: the link may repeat them as it likes.
    """

    def exchange(self, payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes: ...

    def close(self) -> None: ...


class Port(Protocol):
    timeout: float | None

    def write(self, data: bytes, /) -> int | None: ...

    def read(self, size: int = 1, /) -> bytes: ...

    @property
    def in_waiting(self) -> int: ...

    def close(self) -> None: ...


MAX_READ = 4096  # bytes taken at once from a port that has more waiting
PORT_ERRORS = (serial.SerialException, OSError, TransportError)


class PortLost(LinkError):
    """The port failed under the exchange (peer closed, device unplugged, I/O error)."""


class TimeUp(LinkError):
    """The session's overall deadline passed: the exchange was ended (or never started)."""


class WrongProtocol(LinkError):
    """The device on the port speaks the other vendor's protocol; nothing was executed."""


# A harmless ATOL question: the state of task 0xDF (`Req`), in packet 0xDF.  A device that has
# no such task answers B3 NotFound; one that has keeps it (only `Ack` frees a task).  A Shtrih
# register takes it for line noise and answers NAK at most.
ATOL_PROBE = encode_packet(MAX_REQUEST_ID, Req(MAX_REQUEST_ID).encode())
# How long a wrong-protocol probe waits for its answer.
PROBE_WAIT = 0.5


def has_atol_packet(data: bytes) -> bool:
    """Whether ``data`` holds a whole ATOL v3 packet (``FE``, length, ID, data, CRC)."""
    return 0xFE in data and any(isinstance(t, Packet) for t in PacketDeframer().feed(data))


def looks_shtrih(data: bytes) -> bool:
    """Whether ``data`` (no ATOL packet in it) is what a Shtrih register sends: NAK or ACK alone
    (the network models' FF filler beside), or a whole STX frame whose LRC checks out -- not a
    damaged ATOL packet that lost its FE and happens to go on with 02."""
    if not data or 0xFE in data:
        return False
    if all(byte in (NAK, ACK, 0xFF) for byte in data):
        return NAK in data or ACK in data
    return any(isinstance(token, Frame) for token in Deframer().feed(data))


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


class LinkSession(Generic[SettingsT]):
    """One host link on one port; a vendor's session says what its link is and how a command
    starts on it, and what a lost port means (`_new_link`, `_start`, `_port_failed`,
    `_interrupted`).  ``settings`` are the link's timings (the vendor's ``HostSettings``);
    ``reopen`` opens the port again after a failure."""

    # The first byte of a command frame, to tell "the command went out" from control bytes.
    FRAME_START: ClassVar[int | None] = None

    def __init__(
        self,
        port: Port,
        *,
        settings: SettingsT | None = None,
        clock: Callable[[], float] = time.monotonic,
        reopen: Callable[[], Port] | None = None,
        deadline: float | None = None,
    ) -> None:
        self.port: Port | None = port
        self.settings = settings
        self.link = self._new_link()
        self._clock = clock
        self._reopen = reopen
        self.reconnects = 0  # how many times a lost port was opened again
        self._frame_sent = False
        # The moment (on ``clock``) after which no exchange may run: one command's time limit.
        self.deadline = deadline
        self.limit_text = "its time limit"  # how a `TimeUp` names the deadline ("--timeout 5")
        self._heard = False  # the device has answered in this session's protocol
        self._probed = False  # the other protocol's question was asked once
        self._foreign = 0  # bursts that looked like the other vendor's protocol
        self._wrong: str | None = None  # set once the device is known to speak another protocol
        self._resend = True

    def exchange(
        self,
        payload: bytes,
        *,
        answer_timeout: float,
        resend: bool = True,
        sync_after: bool = False,
    ) -> bytes:
        """One raw command payload in, its answer payload out.

        ``resend`` is True exactly for repeatable queries (`Request.REPEATABLE`).
        ``sync_after``: the next command will repeat this one's code (a session whose class says
        `asks_ahead` starts that command's sync with this one's last write).  Raises a
        `kkt.protocols.LinkError` (``maybe_executed`` says whether the register may have done it)
        when the exchange failed.
        """
        if self._wrong is not None:
            raise WrongProtocol(self._wrong, command=payload, maybe_executed=False)
        if self.deadline is not None and self._clock() >= self.deadline:
            raise TimeUp(self._time_up_text(sent=False), command=payload, maybe_executed=False)
        if self.port is None:
            self._reconnect()  # raises TransportError while the register is unreachable
        started = self._clock()
        self._start(payload, started, answer_timeout, resend, sync_after)
        tracing = trace.isEnabledFor(logging.DEBUG)
        self._frame_sent = False
        self._resend = resend
        try:
            while True:
                assert self.port is not None
                try:
                    outcome = self._pump(self.port, started, tracing, payload)
                except PORT_ERRORS as exc:
                    self._drop_port()
                    outcome = self._port_failed(exc, payload)
                    if outcome is None:
                        continue  # the port was opened again: the same link carries on
                if isinstance(outcome, CommandFailed):
                    raise outcome.error
                answer: bytes = outcome.answer
                return answer
        except BaseException as interrupted:
            # Ctrl-C mid-exchange, or a port class failing its own way: the link is left half-way
            # through, and every later command would find it busy.
            if self.link.busy:
                self._interrupted(interrupted)
            raise

    def _pump(self, port: Port, started: float, tracing: bool, payload: bytes) -> Any:
        """Run the link on ``port`` until the command ends; port errors propagate."""
        link, now = self.link, self._clock
        outcome: AnswerReceived | CommandFailed | None = None
        while True:
            data: bytes = link.data_to_send()
            if data:
                if tracing:
                    trace.debug("%8.1f ms -> %s", (now() - started) * 1000, data.hex(" "))
                self._frame_sent = self._frame_sent or data[0] == self.FRAME_START
                port.write(data)
            if outcome is not None:
                return outcome
            deadline: float | None = link.get_timer()
            wait = None if deadline is None else deadline - now()
            if self.deadline is not None:
                left = self.deadline - now()
                if left <= 0:
                    return self._time_up(payload)
                wait = left if wait is None else min(wait, left)
            if (
                not self._heard
                and not self._probed
                and now() - started >= self._probe_after()
                and (not self._frame_sent or self._resend)  # nothing money-moving in flight
            ):
                self._probed = True
                answer = self._probe_other(port, tracing, started)
                self._check_foreign(answer, payload, needed=1)
                received = answer if self.FEED_PROBE_ANSWER else b""
            else:
                received = read_burst(port, wait)
                if received and tracing:
                    trace.debug("%8.1f ms <- %s", (now() - started) * 1000, received.hex(" "))
                if received and not self._heard:
                    self._check_foreign(received, payload, needed=self.FOREIGN_BURSTS)
            events: list[object] = link.receive_data(received, now()) if received else []
            if deadline is not None and now() >= deadline:
                events += link.handle_timer(now())
            for event in events:
                if isinstance(event, AnswerReceived | CommandFailed):
                    outcome = event

    # -- the overall deadline and the other vendor's protocol -------------------------------------

    def _time_up_text(self, *, sent: bool) -> str:
        return f"the command did not finish within {self.limit_text}" + (
            "; the register may have executed it -- check it before repeating the command"
            if sent
            else "; it was not sent"
        )

    def _time_up(self, payload: bytes) -> Any:
        """The deadline passed mid-exchange: the outcome to return, or raise `TimeUp`."""
        raise TimeUp(
            self._time_up_text(sent=self._frame_sent),
            command=payload,
            maybe_executed=self._frame_sent,
        )

    def _check_foreign(self, received: bytes, payload: bytes, *, needed: int) -> None:
        """Raise `WrongProtocol` when ``received`` (before the device ever answered in this
        session's protocol) is the other vendor's speech, for the ``needed``-th time; note it
        when it is this one's."""
        verdict = self._foreign_verdict(received) if received else None
        if verdict is True:
            self._foreign += 1
            if self._foreign >= needed:
                self._wrong = self.WRONG_TEXT
                raise WrongProtocol(self._wrong, command=payload, maybe_executed=False)
        elif verdict is False:
            self._heard = True

    FOREIGN_BURSTS: ClassVar[int] = 1  # bursts in the other protocol that settle the question
    FEED_PROBE_ANSWER: ClassVar[bool] = False  # give the link what came back to the probe
    WRONG_TEXT: ClassVar[str] = ""

    def _foreign_verdict(self, received: bytes) -> bool | None:
        """True: the other protocol; False: this one; None: cannot tell."""
        raise NotImplementedError

    def _probe_after(self) -> float:
        """Silence (from the exchange's start, before anything was heard) after which the other
        protocol's harmless question is asked once; infinity: never."""
        return float("inf")

    def _probe_other(self, port: Port, tracing: bool, started: float) -> bytes:
        """Ask the other protocol's harmless question; what came back within `PROBE_WAIT`."""
        raise NotImplementedError

    def _ask(self, port: Port, question: bytes, tracing: bool, started: float) -> bytes:
        now = self._clock
        if tracing:
            trace.debug("%8.1f ms -> %s", (now() - started) * 1000, question.hex(" "))
        port.write(question)
        until = now() + PROBE_WAIT
        if self.deadline is not None:
            until = min(until, self.deadline)
        received = b""
        while (left := until - now()) > 0 and not self._foreign_or_own(received):
            received += read_burst(port, left)
        if received and tracing:
            trace.debug("%8.1f ms <- %s", (now() - started) * 1000, received.hex(" "))
        return received

    def _foreign_or_own(self, received: bytes) -> bool:
        return bool(received) and self._foreign_verdict(received) is not None

    # -- what a vendor's link needs ---------------------------------------------------------------

    def _new_link(self) -> Any:
        raise NotImplementedError

    # Whether `exchange` acts on ``sync_after`` (callers pass it only where it does).
    asks_ahead: ClassVar[bool] = False

    def _start(
        self, payload: bytes, now: float, answer_timeout: float, resend: bool, sync_after: bool
    ) -> None:
        raise NotImplementedError

    def _port_failed(self, exc: Exception, payload: bytes) -> Any:
        """The port failed (and is dropped): the command's outcome, None when the port was opened
        again and the link goes on, or raise `PortLost`."""
        raise NotImplementedError

    def _interrupted(self, error: BaseException) -> None:
        """The exchange ended by an exception while the link was busy."""
        raise NotImplementedError

    # -- the port ---------------------------------------------------------------------------------

    def _drop_port(self) -> None:
        """Forget a failed port; the next call reopens it."""
        if self.port is not None:
            try:
                self.port.close()
            except PORT_ERRORS:
                pass  # it is already broken; closing is only tidiness
        self.port = None

    def _reconnect(self) -> Port:
        if self._reopen is None:
            raise TransportError("the port was lost and this session cannot reopen it; reconnect")
        self.port = self._reopen()  # raises TransportError while the register is unreachable
        self.reconnects += 1
        log.info("port reopened (reconnect %d)", self.reconnects)
        return self.port

    def close(self) -> None:
        if self.port is not None:
            self.port.close()
            self.port = None
        self._reopen = None  # closed on purpose: never reopen behind the caller's back


class ShtrihSession(LinkSession[shtrih.HostSettings]):
    """A Shtrih host link: after a lost port, a fresh link (ENQ first) on the reopened port."""

    FRAME_START = STX

    def _new_link(self) -> ShtrihHostLink:
        return ShtrihHostLink(self.settings)

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

    asks_ahead = True  # `ShtrihHostLink`'s asking ahead

    def _start(
        self, payload: bytes, now: float, answer_timeout: float, resend: bool, sync_after: bool
    ) -> None:
        # Repeatable queries may also skip the ENQ that guards a repeated command code.
        self.link.send_command(
            payload,
            now,
            answer_timeout=answer_timeout,
            resend=resend,
            idempotent=resend,
            sync_after=sync_after,
        )

    def _port_failed(self, exc: Exception, payload: bytes) -> Any:
        self.link = self._new_link()  # the half-done exchange is forgotten with the port
        sent = self._frame_sent
        raise PortLost(
            f"the port failed during the exchange ({exc})"
            + (
                "; the command may have been executed -- check the register before repeating it"
                if sent
                else "; the command was not sent"
            ),
            command=payload,
            maybe_executed=sent,
        ) from exc

    def _interrupted(self, error: BaseException) -> None:
        # A fresh link (starting with ENQ) is what the next command needs, on a fresh port.
        self._drop_port()
        self.link = self._new_link()

    WRONG_TEXT = (
        "the device answers in ATOL's protocol, not Shtrih-M's: connect with --protocol atol "
        "(or --protocol auto; in Python protocol='atol'); nothing was executed"
    )

    def _foreign_verdict(self, received: bytes) -> bool | None:
        if received[0] == 0xFE and has_atol_packet(received):
            return True
        if any(byte in (NAK, ACK, STX) for byte in received):
            return False
        return None

    def _probe_after(self) -> float:
        ack: float = self.link.settings.ack
        return min(1.0, ack)

    def _probe_other(self, port: Port, tracing: bool, started: float) -> bytes:
        # The ATOL question may cross a late answer to our ENQ: that answer is dropped with it,
        # and the link asks again (no command frame of consequence is in flight: see `_pump`).
        return self._ask(port, ATOL_PROBE, tracing, started)


class AtolSession(LinkSession[atol.HostSettings]):
    """An ATOL host link, one for the session's life: its packet and task IDs and its unresolved
    task outlive a port (a fresh link would Abort the very task we want back).

    ``reopen_tries`` bounds how often one exchange opens a lost port again before it gives up
    with `PortLost` (``options``: `LinkSession`'s).  A refusal by the register comes back as
    its reply (``55 err …``), for the command layer to decode.
    """

    def __init__(self, port: Port, *, reopen_tries: int = 2, **options: Any) -> None:
        super().__init__(port, **options)
        self._reopen_tries = reopen_tries
        self._reopens = 0
        self._releasing = False

    def close(self) -> None:
        """Send the last task's Ack (the link defers each Ack to the next Add), then close.

        Best effort: a line that fails now costs the register one buffer slot, which it retires
        when the buffer fills -- the command's outcome is already the caller's.
        """
        if self.port is not None and not self.link.busy and self.link.pending_ack is not None:
            self._reopen = None  # closing: never open the port again for this
            self._releasing = True
            try:
                # The class's own loop: the Ack is no command, and what wraps the instance's
                # `exchange` (a caller's instrumentation) must not see it.
                LinkSession.exchange(self, b"", answer_timeout=0.0)
            except (LinkError, *PORT_ERRORS) as error:
                log.info("the last Ack was not delivered: %s", error)
            finally:
                self._releasing = False
        super().close()

    def _new_link(self) -> AtolHostLink:
        # A random first TID: another program on the register, or our own earlier run, may have
        # left a task under the TIDs a fresh link would take first (00, 01 ...).
        return AtolHostLink(self.settings, first_tid=secrets.randbelow(MAX_TID + 1))

    def _start(
        self, payload: bytes, now: float, answer_timeout: float, resend: bool, sync_after: bool
    ) -> None:
        # ``resend``: a task the register lost after taking it is simply added again.
        self._reopens = 0
        if self._releasing:
            self.link.release(now)
            return
        self.link.send_command(payload, now, answer_timeout=answer_timeout, repeatable=resend)

    def _port_failed(self, exc: Exception, payload: bytes) -> Any:
        link = self.link
        if self._reopens < self._reopen_tries and self._reopen is not None and link.busy:
            self._reopens += 1
            try:
                self._reconnect()
            except PORT_ERRORS as reopen_error:
                log.info("reopening the port failed: %s", reopen_error)
            else:
                link.reconnected(self._clock())  # Req for a task that may have arrived
                return None
        # The port is gone for this exchange: the link's verdict, as `PortLost`.
        for event in link.abandon(self._clock(), f"the port failed ({exc})"):
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

    def _interrupted(self, error: BaseException) -> None:
        # End the exchange in the link, its task kept unresolved.
        self.link.abandon(self._clock(), f"the exchange was interrupted ({error!r})")

    def _time_up(self, payload: bytes) -> Any:
        # The link's own verdict on its task (kept unresolved: the next exchange asks for it).
        text = None
        maybe = True
        for event in self.link.abandon(self._clock(), "the time limit passed"):
            if isinstance(event, AnswerReceived):
                return event  # only the Ack was missing; the next command settles it
            if isinstance(event, CommandFailed):
                maybe = event.error.maybe_executed
                text = self._time_up_text(sent=maybe)
        raise TimeUp(text or self._time_up_text(sent=True), command=payload, maybe_executed=maybe)

    FOREIGN_BURSTS = 2  # one stray NAK on a noisy line proves nothing; two in a row do
    FEED_PROBE_ANSWER = True  # a late reply packet caught by the probe is the link's
    WRONG_TEXT = (
        "the device answers in Shtrih-M's protocol, not ATOL's: connect with --protocol shtrih "
        "(or --protocol auto; in Python protocol='shtrih'); nothing was executed"
    )

    def _foreign_verdict(self, received: bytes) -> bool | None:
        if has_atol_packet(received):
            return False
        return True if looks_shtrih(received) else None

    def _probe_after(self) -> float:
        packet: float = self.link.settings.packet
        return min(1.0, packet * 2)

    def _probe_other(self, port: Port, tracing: bool, started: float) -> bytes:
        # An ENQ is one byte of noise to an ATOL register; a Shtrih register answers NAK or ACK.
        return self._ask(port, bytes((ENQ,)), tracing, started)
