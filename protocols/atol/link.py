"""ATOL lower level v3: the task buffer as sans-IO state machines, one for each end of the wire.

Usage is the h11 pattern, as in `kkt.protocols.shtrih.link`: feed received bytes with
``receive_data(data, now)`` and timer expiries with ``handle_timer(now)`` (when ``now >=
get_timer()``); both return the events that happened; write out whatever ``data_to_send()``
returns.  ``now`` is monotonic seconds; nothing here sleeps, reads a clock or does I/O.

HOST (`AtolHostLink`): one command at a time
---------------------------------------------
Every request packet carries the next packet ID (00..DF, wrapping).  A packet is sent again,
byte for byte, when no reply with its ID came within ``HostSettings.packet`` seconds or the
device sent an empty packet with that ID ("repeat", fact sheet §1.3); replies with any other ID
are stale and ignored, and so is a corrupt packet (our own timeout resends).  A command is an
exchange of several packets (fact sheet §1.4, "execution flow used by every implementation"):

1. ``Abort`` -- only the first command of a fresh link, to clear tasks another session left;
   skipped when the link holds an unresolved TID of its own (below);
2. settle the unresolved TID of an earlier command whose exchange failed: ``Req`` until it
   ends, then ``Ack`` -- so no slot of the device's buffer leaks;
3. ``Add(NeedResult|IgnoreError, new TID, command)``: A3/A4 carry the reply inline; A1/A2/A8
   mean "taken": wait for the asynchronous packet F0 (A6/A7 with our TID) and poll ``Req(TID)``;
   B2 AlreadyExists for an Add sent more than once means the device took an earlier copy
   (switch to ``Req``); B3 NotFound to a ``Req`` for a task whose Add was never confirmed means
   the Add never arrived: add it again (Zzzzipper's rule, ``AtolTaskLayer.cpp`` after a TCP
   reconnect);
4. ``Ack(TID)`` frees the slot (B3 to a repeated Ack means it is already free: fine); then the
   reply is reported.  (Not piggy-backed as ``AckAdd``: its reply layout has one source only,
   MultiMag, and a separate Ack keeps every slot's life inside one exchange.)

A command whose exchange fails after a packet of its Add left keeps its TID *unresolved*.  The
next command settles it first (step 2) -- unless it is the very same command again: a caller
retrying a failed command then *resumes* it, ``Req(TID)`` instead of a new Add, and gets the
first run's reply if it ran (B3 for an Add never confirmed adds it, as above).  Retrying is
therefore exactly-once.  `CommandFailed.error.maybe_executed` is False only when
the device certainly did not take the task: no packet of the Add left, or the buffer refused it
(B1 Overflow, B4 IllegalValue, A5 Stopped).  No exchange outlives
``HostSettings.exchange_limit(answer_timeout)``.

DEVICE: `TaskBuffer` (one per device) and `AtolDeviceLink` (one per connection)
----------------------------------------------------------------------------
The buffer belongs to the register, not to a connection: a host that reconnects finds its task
with ``Req(TID)`` on the new connection.  The link answers every packet with its ID, an empty
packet to a corrupt one whose ID could be read, and a repeated identical packet (same ID, same
data) with the reply it gave before -- so a host's retransmission never runs anything twice.  An
Add's reply waits up to ``DeviceSettings.inline`` seconds for the task: done by then, it is A3/A4
with the reply; otherwise A1/A2, and the result follows in an F0 packet on the connection that
added the task (if it is still there).  The I/O half runs the tasks: `TaskReady` says one was
queued; it takes them with `TaskBuffer.next_task`, reports them with `TaskBuffer.complete` and
tells the owner's link with `AtolDeviceLink.task_finished`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import CodecError, LinkError
from .buffer import (
    MIN_COMMAND_SIZE,
    Abort,
    Ack,
    AckAdd,
    Add,
    AlreadyExists,
    AsyncError,
    AsyncResult,
    BufferReply,
    Error,
    IllegalValue,
    InProgress,
    NotFound,
    Overflow,
    Pending,
    Req,
    Result,
    StatusCode,
    Stopped,
    TaskFlags,
    Waiting,
    decode_buffer_command,
    decode_buffer_reply,
)
from .packet import (
    ASYNC_ID,
    MAX_DATA,
    MAX_REQUEST_ID,
    BadPacket,
    Packet,
    PacketDeframer,
    Token,
    encode_packet,
    is_valid_id,
)

# Every client in the fact sheet (§1.4) sends NeedResult|IgnoreError: the result is kept until
# our Ack (that is what makes a lost reply recoverable) and one failed command never stops the
# queue for the next.
HOST_FLAGS = TaskFlags.NEED_RESULT | TaskFlags.IGNORE_ERROR
# Hosts wrap TIDs like packet IDs (fact sheet §1.4: "TIDs 0…0xDF wrap").
MAX_TID = MAX_REQUEST_ID


# -- errors -------------------------------------------------------------------------------------


class NoReply(LinkError):
    """The register answered none of the sends of a packet: cable, port, power or address."""


class AnswerTimeout(LinkError):
    """The register took the task but did not finish it within the command's answer time."""


class TaskRefused(LinkError):
    """The register's buffer refused the task (full, illegal value, queue stopped, TID clash)."""


class TaskLost(LinkError):
    """The register no longer knows a task it had taken (restarted, or another host aborted)."""


class ExchangeTimeout(LinkError):
    """The exchange reached its hard bound (`HostSettings.exchange_limit`)."""


class ConnectionLost(LinkError):
    """The byte stream went away under the exchange and was not restored."""


# -- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnswerReceived:
    """Host: the command's reply block (``55 err ext …``, an error reply included)."""

    answer: bytes


@dataclass(frozen=True, slots=True)
class CommandFailed:
    """Host: the exchange failed; ``error.maybe_executed`` says what is safe to do next."""

    error: LinkError


@dataclass(frozen=True, slots=True)
class TaskReady:
    """Device: a task was queued in the buffer; run the next one (`TaskBuffer.next_task`)."""

    tid: int
    command: bytes


@dataclass(frozen=True, slots=True)
class LineNoise:
    """Either end: a packet that was not what the state expected, junk, or a corrupt packet."""

    token: Token


Event = AnswerReceived | CommandFailed | TaskReady | LineNoise


# -- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostSettings:
    """Timeouts (seconds) and tries of the host.

    ``packet`` and ``packet_tries`` follow SAMSON's ``AtolV3Transport`` (0.5 s per reply, the
    identical packet resent up to four times; fact sheet §1.3).  ``poll`` is how often a taken
    task is asked about with ``Req`` when no asynchronous result arrives.  ``max_readd`` bounds
    the re-adds after B3, ``max_tid_changes`` the new TIDs after a B2 to a first send (a TID
    someone else holds).  ``abort_on_open`` (off by default) clears the buffer with an Abort
    before the first command: it would also drop the results another program on the same register
    still has to collect (a status tool beside the till), and a lost result makes a command's
    fate unknown.  Without it, results nobody collects fill the buffer in time; the first B1 to
    an Add clears it once instead.
    """

    packet: float = 0.5
    packet_tries: int = 5
    poll: float = 0.5
    max_readd: int = 3
    max_tid_changes: int = 3
    abort_on_open: bool = False
    crc_over_escaped: bool = False

    def packet_step(self) -> float:
        """The longest one request packet can take: every send and its reply timeout."""
        return self.packet * self.packet_tries

    def exchange_limit(self, answer_timeout: float) -> float:
        """The longest one command can last, whatever the line does: a hard bound.

        Waits: the unresolved task of an earlier command (up to ``answer_timeout``) and ours (the
        same).  Packets: Abort, the settling Req and Ack, each Add (the first, the re-adds and
        the TID changes) with one Req, and the final Ack -- each at most `packet_step`.
        """
        adds = 1 + self.max_readd + self.max_tid_changes
        packets = 4 + 2 * adds
        return 2 * (answer_timeout + self.poll) + packets * self.packet_step()


@dataclass(frozen=True, slots=True)
class DeviceSettings:
    """Device-side timing.

    ``inline``: how long the reply to an Add waits for its task (a quick query then answers A3
    with its reply at once, as in Zzzzipper's dumps); keep it well under a host's packet timeout
    (0.5 s).  ``byte``: a packet that stops arriving is dropped after this silence, and an empty
    packet with its ID asks the host to repeat it.
    """

    inline: float = 0.1
    byte: float = 0.1
    crc_over_escaped: bool = False
    max_data: int = MAX_DATA


# -- the command layer's verdict on a reply -------------------------------------------------------


def reply_is_error(command: bytes, reply: bytes) -> bool:
    """Did the command (``pwd(2) code params…``) fail, judging by its reply block?

    Fact sheet §2.1: most replies are ``55 err ext …`` (an error when ``err`` is not 0);
    ``3F`` answers ``44 …`` when fine; ``A5`` starts with its error byte; ``74`` answers ``4C …``
    and ``4D`` answers ``4D …`` when fine (atol4j).  Anything else -- an empty reply, a ``55``
    with no error byte -- is an error.
    """
    if not reply:
        return True
    code = command[2] if len(command) > 2 else -1
    if code == 0xA5:
        return reply[0] != 0
    if code == 0x45 and len(reply) == 3 and reply[0] == 0x55:
        # ``55 mode flags``: an answer and an error reply look alike (`commands.reply_is_error`);
        # taking mode 1 for "error 01" would stop the queue of a host without IgnoreError.
        return False
    if code == 0x3F and reply[0] == 0x44:
        return False
    if code == 0x74 and reply[0] == 0x4C:
        return False
    if code == 0x4D and reply[0] == 0x4D:
        return False
    return len(reply) < 2 or reply[0] != 0x55 or reply[1] != 0


# -- host -----------------------------------------------------------------------------------------


class _Phase(enum.Enum):
    ABORT = "abort"  # Abort: the first command of a fresh link
    SETTLE = "settle"  # Req (then Ack) of an earlier command's unresolved TID
    ADD = "add"  # Add sent, its reply awaited
    WAIT = "wait"  # the task may be queued: F0 or Req polls
    ACK = "ack"  # the outcome is known; Ack frees the slot


@dataclass(slots=True)
class _Request:
    """One request packet in flight."""

    packet_id: int
    data: bytes
    wire: bytes
    due: float
    sends: int = 1
    timeouts: int = 0


@dataclass(frozen=True, slots=True)
class _Unresolved:
    """A task of a failed exchange the device may still hold."""

    tid: int
    command: bytes
    confirmed: bool  # the device had said it holds the task
    resumable: bool  # the caller never got its outcome: the same command again resumes it


@dataclass(slots=True)
class _Exchange:
    command: bytes
    answer_timeout: float
    repeatable: bool
    limit: float
    give_up_at: float
    tid: int
    phase: _Phase = _Phase.ABORT
    settle_tid: int = 0
    settle_ack: bool = False  # settling: Ack sent (the task had ended)
    settle_due: float = math.inf
    add_sent: bool = False  # a packet of the Add under ``tid`` left
    add_confirmed: bool = False  # the device said it holds the task (A1..A5, B2)
    readds: int = 0
    earlier_add: bool = False  # an Add under this TID left in an earlier exchange (resumed)
    tid_changes: int = 0
    answer_due: float = math.inf
    poll_at: float | None = None
    answer: bytes | None = None  # the reply, reported after its Ack
    refusal: LinkError | None = None  # A5: reported (after its Ack) instead of a reply
    cleared_full_buffer: bool = False  # B1 to our first Add: an Abort cleared the buffer once


class AtolHostLink:
    """The host end of an ATOL v3 link; see the module docstring for the rules."""

    def __init__(self, settings: HostSettings | None = None) -> None:
        self.settings = settings or HostSettings()
        self._deframer = self._new_deframer()
        self._out = bytearray()
        self._packet_id = MAX_REQUEST_ID  # the first packet gets 00
        self._tid = MAX_TID  # the first task gets TID 00
        self._fresh = True
        self._unresolved: _Unresolved | None = None
        self._exchange: _Exchange | None = None
        self._request: _Request | None = None

    def _new_deframer(self) -> PacketDeframer:
        return PacketDeframer(crc_over_escaped=self.settings.crc_over_escaped)

    # -- public API -------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A command is in progress."""
        return self._exchange is not None

    @property
    def unresolved_tid(self) -> int | None:
        """The TID of an earlier command the device may still hold; the next command settles it."""
        return None if self._unresolved is None else self._unresolved.tid

    def data_to_send(self) -> bytes:
        """Bytes to write to the line now (and forget)."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def get_timer(self) -> float | None:
        """The next instant `handle_timer` must be called, or None."""
        exchange = self._exchange
        if exchange is None:
            return None
        times = [exchange.give_up_at]
        if self._request is not None:
            times.append(self._request.due)
        elif exchange.poll_at is not None:
            times.append(exchange.poll_at)
        if exchange.phase is _Phase.WAIT:
            times.append(exchange.answer_due)
        elif exchange.phase is _Phase.SETTLE:
            times.append(exchange.settle_due)
        return min(t for t in times if t != math.inf)

    def send_command(
        self, command: bytes, now: float, *, answer_timeout: float, repeatable: bool
    ) -> None:
        """Start one command: ``pwd(2) code params…``, the block an Add carries.

        Its outcome comes back as `AnswerReceived` or `CommandFailed`.  ``repeatable`` says
        running it twice changes nothing (a query): a task the device lost after taking it is
        then simply added again, where a money-moving command fails with `TaskLost`.  The same
        bytes as a command that just failed resume that command (module docstring).  Raises
        `CodecError`/`FrameError` (nothing sent) for a block no Add can carry.
        """
        if self._exchange is not None:
            raise RuntimeError("a command is already in progress on this link; wait for its event")
        encode_packet(0, Add(0, HOST_FLAGS, command).encode())  # refuse it now, not mid-exchange
        limit = self.settings.exchange_limit(answer_timeout)
        unresolved = self._unresolved
        resume = unresolved is not None and unresolved.resumable and unresolved.command == command
        exchange = _Exchange(
            command=bytes(command),
            answer_timeout=answer_timeout,
            repeatable=repeatable,
            limit=limit,
            give_up_at=now + limit,
            tid=unresolved.tid if resume and unresolved is not None else self._new_tid(),
        )
        self._exchange = exchange
        if resume and unresolved is not None:
            # The caller retries the command that failed: ask for that task, do not add it again.
            self._unresolved = None
            self._fresh = False
            exchange.phase = _Phase.WAIT
            exchange.add_sent = True
            exchange.earlier_add = True
            if unresolved.confirmed:
                self._confirm(exchange, now)
            self._send(Req(exchange.tid).encode(), now)
            return
        if self._fresh and self._unresolved is None and self.settings.abort_on_open:
            exchange.phase = _Phase.ABORT
            self._send(Abort().encode(), now)
            return
        self._fresh = False
        self._after_abort(now)

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        events: list[Event] = []
        for token in self._deframer.feed(data):
            if isinstance(token, Packet):
                self._packet(token, now, events)
            else:
                events.append(LineNoise(token))  # corrupt: our own timeout resends
        return events

    def handle_timer(self, now: float) -> list[Event]:
        events: list[Event] = []
        exchange = self._exchange
        if exchange is None:
            return events
        if now >= exchange.give_up_at:
            self._give_up(now, events)
            return events
        request = self._request
        if request is not None and now >= request.due:
            request.timeouts += 1
            self._resend(now, events)
            if self._exchange is not exchange:
                return events
        if exchange.phase is _Phase.WAIT and now >= exchange.answer_due:
            self._fail(
                events,
                AnswerTimeout(
                    f"the register took the task (TID {exchange.tid:02X}) but did not finish it "
                    f"within {exchange.answer_timeout:g} s; it may still be running -- the next "
                    "command asks for it first; check the register before repeating this one",
                    command=exchange.command,
                    maybe_executed=True,
                ),
                unresolved=exchange.tid,
            )
            return events
        if exchange.phase is _Phase.SETTLE and now >= exchange.settle_due:
            self._fail(
                events,
                TaskRefused(
                    f"an earlier command (TID {exchange.settle_tid:02X}) is still running on the "
                    f"register after {exchange.answer_timeout:g} s; this command was not sent -- "
                    "wait and send it again",
                    command=exchange.command,
                    maybe_executed=False,
                ),
            )
            return events
        if self._request is None and exchange.poll_at is not None and now >= exchange.poll_at:
            exchange.poll_at = None
            self._send(Req(self._asked_tid(exchange)).encode(), now)
        return events

    def reconnected(self, now: float) -> None:
        """The byte stream was replaced (a port reopened): go on with the command in flight.

        The packet in flight is lost with the old stream and so is the device's memory of our
        last packet; an Add that may have arrived is therefore *not* sent again: ``Req(TID)``
        asks for it, and only B3 (never confirmed) adds it again.  Other requests are re-sent
        as new packets.
        """
        self._deframer = self._new_deframer()
        exchange = self._exchange
        request, self._request = self._request, None
        if exchange is None:
            return
        if exchange.phase is _Phase.ADD:
            exchange.phase = _Phase.WAIT
        if exchange.phase in (_Phase.WAIT, _Phase.SETTLE) and not exchange.settle_ack:
            exchange.poll_at = None
            self._send(Req(self._asked_tid(exchange)).encode(), now)
        elif request is not None:
            self._send(request.data, now)

    def abandon(self, now: float, reason: str = "the connection was lost") -> list[Event]:
        """End the command in flight without the device (its port is gone for good).

        Returns `AnswerReceived` when the reply was already known (only its Ack was missing) or
        `CommandFailed` with `ConnectionLost`; a task the device may hold stays unresolved.
        """
        exchange = self._exchange
        if exchange is None:
            return []
        events: list[Event] = []
        if exchange.phase is _Phase.ACK:
            self._finish_ack(events, unresolved=True)
            return events
        written = exchange.phase in (_Phase.ADD, _Phase.WAIT) and exchange.add_sent
        self._fail(
            events,
            ConnectionLost(
                reason
                + (
                    "; the register may have taken the command -- the next command asks for "
                    "it first; check the register before repeating this one"
                    if written
                    else "; the command was not sent"
                ),
                command=exchange.command,
                maybe_executed=written,
            ),
            unresolved=exchange.tid if written else None,
        )
        return events

    # -- internals: sending -----------------------------------------------------------------------

    def _new_tid(self) -> int:
        tid = self._tid
        while True:
            tid = 0 if tid >= MAX_TID else tid + 1
            if self._unresolved is None or tid != self._unresolved.tid:
                self._tid = tid
                return tid

    def _send(self, data: bytes, now: float) -> None:
        """A new request packet: the next ID."""
        self._packet_id = 0 if self._packet_id >= MAX_REQUEST_ID else self._packet_id + 1
        wire = encode_packet(self._packet_id, data, crc_over_escaped=self.settings.crc_over_escaped)
        self._request = _Request(self._packet_id, data, wire, now + self.settings.packet)
        self._out += wire

    def _send_add(self, now: float) -> None:
        exchange = self._exchange
        assert exchange is not None
        exchange.phase = _Phase.ADD
        exchange.add_sent = True
        exchange.poll_at = None
        self._send(Add(exchange.tid, HOST_FLAGS, exchange.command).encode(), now)

    def _resend(self, now: float, events: list[Event]) -> None:
        """The same packet again (same ID, same bytes), or give up after the last try.

        Tries are counted in timeouts: one damaged packet often brings both our timeout and the
        device's "repeat" (an empty packet), and must not cost two.  Repeats alone are bounded
        too, at twice the tries.
        """
        request = self._request
        assert request is not None
        tries = self.settings.packet_tries
        if request.timeouts < tries and request.sends < 2 * tries:
            request.sends += 1
            request.due = now + self.settings.packet
            self._out += request.wire
            return
        self._request = None
        self._no_reply(events)

    @staticmethod
    def _asked_tid(exchange: _Exchange) -> int:
        return exchange.settle_tid if exchange.phase is _Phase.SETTLE else exchange.tid

    def _after_abort(self, now: float) -> None:
        """Settle an unresolved TID first, else add the task."""
        exchange = self._exchange
        assert exchange is not None
        if self._unresolved is not None:
            exchange.phase = _Phase.SETTLE
            exchange.settle_tid = self._unresolved.tid
            exchange.settle_ack = False
            exchange.settle_due = now + exchange.answer_timeout
            self._send(Req(exchange.settle_tid).encode(), now)
            return
        self._send_add(now)

    # -- internals: receiving ---------------------------------------------------------------------

    def _packet(self, packet: Packet, now: float, events: list[Event]) -> None:
        exchange = self._exchange
        if packet.is_async:
            if exchange is None or not self._async_result(packet, now, events):
                events.append(LineNoise(packet))
            return
        request = self._request
        if exchange is None or request is None or packet.id != request.packet_id:
            events.append(LineNoise(packet))  # stale: a reply to an earlier packet
            return
        if packet.is_repeat_request:
            self._resend(now, events)  # the device got our packet damaged
            return
        try:
            reply = decode_buffer_reply(packet.data)
        except CodecError:
            # A reply that passed the CRC but is no reply: treat it as damaged; the timeout
            # sends the packet again and the device repeats its reply.
            events.append(LineNoise(packet))
            return
        if isinstance(reply, AsyncResult | AsyncError):
            events.append(LineNoise(packet))  # A6/A7 belong in packet F0 only
            return
        sends = request.sends
        self._request = None
        phase = exchange.phase
        if phase is _Phase.ABORT:
            # A3, or "A2 TID": someone's task is running and will finish; ours queue behind it.
            self._fresh = False
            self._after_abort(now)
        elif phase is _Phase.SETTLE:
            self._settle_reply(reply, now)
        elif phase is _Phase.ADD:
            self._add_reply(reply, sends, now, events)
        elif phase is _Phase.WAIT:
            self._req_reply(reply, now, events)
        else:
            # Any reply to Ack ends the task: A3/A4 freed it, B3 says it was already free.
            self._finish_ack(events, unresolved=False)

    def _async_result(self, packet: Packet, now: float, events: list[Event]) -> bool:
        """An F0 packet: the result of the task we wait for, or of the one we settle?"""
        exchange = self._exchange
        assert exchange is not None
        try:
            reply = decode_buffer_reply(packet.data)
        except CodecError:
            return False
        if not isinstance(reply, AsyncResult | AsyncError):
            return False
        if exchange.phase in (_Phase.ADD, _Phase.WAIT) and reply.tid == exchange.tid:
            # A Req (or the Add) in flight is answered by this; its reply will be stale.
            self._request = None
            self._confirm(exchange, now)
            self._outcome(reply.data, now)
            return True
        if exchange.phase is _Phase.SETTLE and reply.tid == exchange.settle_tid:
            if not exchange.settle_ack:
                self._request = None
                exchange.poll_at = None
                exchange.settle_ack = True
                self._send(Ack(exchange.settle_tid).encode(), now)
            return True
        return False

    def _settle_reply(self, reply: BufferReply, now: float) -> None:
        exchange = self._exchange
        assert exchange is not None
        if exchange.settle_ack or isinstance(reply, NotFound | Overflow | IllegalValue):
            # Acked (any reply ends it), or the device does not hold that TID: settled.
            self._unresolved = None
            exchange.settle_ack = False
            self._send_add(now)
        elif isinstance(reply, Pending | InProgress | Waiting):
            exchange.poll_at = now + self.settings.poll  # it still runs: wait for it
        else:
            exchange.settle_ack = True
            self._send(Ack(exchange.settle_tid).encode(), now)

    def _confirm(self, exchange: _Exchange, now: float) -> None:
        if not exchange.add_confirmed:
            exchange.add_confirmed = True
            exchange.answer_due = now + exchange.answer_timeout

    def _add_reply(self, reply: BufferReply, sends: int, now: float, events: list[Event]) -> None:
        exchange = self._exchange
        assert exchange is not None
        if isinstance(reply, AlreadyExists):
            if sends > 1:
                # Our earlier copy of this Add arrived and its reply was lost: ask for the task.
                self._confirm(exchange, now)
                exchange.phase = _Phase.WAIT
                self._send(Req(exchange.tid).encode(), now)
                return
            # The very first send was refused: someone else holds this TID.  Ours was not
            # taken; take another TID (never Req, or we would take a foreign task's result).
            exchange.tid_changes += 1
            if exchange.tid_changes > self.settings.max_tid_changes:
                self._fail(
                    events,
                    TaskRefused(
                        "the register's buffer holds tasks under every TID tried (another host "
                        "is using it?); the command was not executed -- retry later",
                        command=exchange.command,
                        maybe_executed=False,
                    ),
                )
                return
            exchange.tid = self._new_tid()
            self._send_add(now)
            return
        if isinstance(reply, Overflow) and sends == 1 and not exchange.earlier_add:
            if not exchange.cleared_full_buffer and exchange.readds == 0:
                # A full buffer is mostly results nobody will Ack (hosts that crashed or were
                # cut off: no Abort on opening keeps another host's tasks safe).  Clear it once
                # and add ours again -- our Add was certainly not taken.
                exchange.cleared_full_buffer = True
                exchange.phase = _Phase.ABORT
                self._send(Abort().encode(), now)
                return
        if isinstance(reply, Overflow | IllegalValue):
            what = (
                "the register's task buffer is full (another host's tasks?)"
                if isinstance(reply, Overflow)
                else "the register refused the task as illegal (B4)"
            )
            # The refusal speaks for the copy of the Add it answers.  An Add sent more than once,
            # re-added (after B3 to our Req) or resumed may have had an earlier copy taken (the
            # refused copy, or that B3, may be damage that passed CRC-8), so only an Add sent
            # once is certainly not executed.
            earlier = sends > 1 or exchange.readds > 0 or exchange.earlier_add
            self._fail(
                events,
                TaskRefused(
                    f"{what}; "
                    + (
                        "an earlier copy of the task may have been taken -- sending the same "
                        "command again asks for it"
                        if earlier
                        else "the command was not executed and may be sent again"
                    ),
                    command=exchange.command,
                    maybe_executed=earlier,
                ),
                unresolved=exchange.tid if earlier else None,
            )
            return
        if isinstance(reply, NotFound):
            # No defined reply to Add: what the device did is unknown; ask it next time.
            self._fail(
                events,
                TaskRefused(
                    "the register answered the task's Add with B3 NotFound; its fate is unknown "
                    "-- the next command asks for it; check the register before repeating it",
                    command=exchange.command,
                    maybe_executed=True,
                ),
                unresolved=exchange.tid,
            )
            return
        self._confirm(exchange, now)
        self._task_state(reply, now)

    def _req_reply(self, reply: BufferReply, now: float, events: list[Event]) -> None:
        exchange = self._exchange
        assert exchange is not None
        if isinstance(reply, NotFound):
            # B3 cannot tell "the Add never arrived" from "it ran, and its result was wiped" (a
            # restart, another host's Abort).  Zzzzipper adds the task again whenever the Add
            # was never confirmed; that is safe only for a query.  Anything else fails with
            # "may have been executed" and the driver above judges by the register's state
            # (the receipt's sum, the FN's archive) -- a cash-in or a payment run twice is money.
            if exchange.repeatable:
                exchange.readds += 1
                if exchange.readds <= self.settings.max_readd:
                    self._send_add(now)
                    return
            self._fail(
                events,
                TaskLost(
                    f"the register no longer knows task {exchange.tid:02X}"
                    + (
                        " after taking it (restarted? aborted by another host?)"
                        if exchange.add_confirmed
                        else f" after {exchange.readds} adds"
                    )
                    + "; it may have been executed -- check the register before repeating it",
                    command=exchange.command,
                    maybe_executed=True,
                ),
            )
            return
        if isinstance(reply, AlreadyExists | Overflow | IllegalValue):
            exchange.poll_at = now + self.settings.poll  # no defined Req reply: ask again
            return
        self._confirm(exchange, now)
        self._task_state(reply, now)

    def _task_state(self, reply: BufferReply, now: float) -> None:
        """A1..A5 about our task (to Add or Req)."""
        exchange = self._exchange
        assert exchange is not None
        if isinstance(reply, Result | Error):
            self._outcome(reply.data, now)
        elif isinstance(reply, Stopped):
            exchange.refusal = TaskRefused(
                f"the register did not run the task: its queue is stopped by failed task "
                f"{reply.tid:02X}; the command was not executed and may be sent again",
                command=exchange.command,
                maybe_executed=False,
            )
            self._outcome(b"", now)
        else:  # Pending, InProgress, Waiting
            exchange.phase = _Phase.WAIT
            exchange.poll_at = now + self.settings.poll

    def _outcome(self, answer: bytes, now: float) -> None:
        """The task ended: free its slot, then report."""
        exchange = self._exchange
        assert exchange is not None
        exchange.answer = answer
        exchange.phase = _Phase.ACK
        exchange.poll_at = None
        self._send(Ack(exchange.tid).encode(), now)

    # -- internals: ending ------------------------------------------------------------------------

    def _finish(self, events: list[Event], event: Event) -> None:
        self._exchange = None
        self._request = None
        events.append(event)

    def _finish_ack(self, events: list[Event], *, unresolved: bool) -> None:
        """Report the known outcome; ``unresolved``: the Ack was not confirmed, settle it later."""
        exchange = self._exchange
        assert exchange is not None and exchange.answer is not None
        if unresolved:
            # A Req next time finds it (A3) and Acks it, or hears B3.  Not resumable: the caller
            # has the outcome, and the same bytes again are a new command.
            self._unresolved = _Unresolved(
                exchange.tid, exchange.command, confirmed=True, resumable=False
            )
        if exchange.refusal is not None:
            self._finish(events, CommandFailed(exchange.refusal))
        else:
            self._finish(events, AnswerReceived(exchange.answer))

    def _fail(
        self, events: list[Event], error: LinkError, *, unresolved: int | None = None
    ) -> None:
        exchange = self._exchange
        if unresolved is not None and exchange is not None:
            self._unresolved = _Unresolved(
                unresolved, exchange.command, exchange.add_confirmed, resumable=True
            )
        self._finish(events, CommandFailed(error))

    def _no_reply(self, events: list[Event]) -> None:
        exchange = self._exchange
        assert exchange is not None
        if exchange.phase is _Phase.ACK:
            self._finish_ack(events, unresolved=True)
            return
        tries = self.settings.packet_tries
        written = exchange.phase in (_Phase.ADD, _Phase.WAIT)
        self._fail(
            events,
            NoReply(
                f"no reply to {tries} sends of a packet: check the cable or network, the port "
                "and baud rate, and that the register is on"
                + (
                    "; the register may have taken the command -- the next command asks for it "
                    "first; check the register before repeating this one"
                    if written
                    else "; the command was not sent"
                ),
                command=exchange.command,
                maybe_executed=written,
            ),
            unresolved=exchange.tid if written else None,
        )

    def _give_up(self, now: float, events: list[Event]) -> None:
        """The hard bound: no sequence of bytes keeps an exchange alive past it."""
        exchange = self._exchange
        assert exchange is not None
        if exchange.phase is _Phase.ACK:
            self._finish_ack(events, unresolved=True)
            return
        written = exchange.phase in (_Phase.ADD, _Phase.WAIT)
        self._fail(
            events,
            ExchangeTimeout(
                f"the exchange did not end within its bound of {exchange.limit:.0f} s"
                + (
                    "; the register may have taken the command -- check it before repeating it"
                    if written
                    else "; the command was not sent"
                ),
                command=exchange.command,
                maybe_executed=written,
            ),
            unresolved=exchange.tid if written else None,
        )


# -- device: the task buffer ----------------------------------------------------------------------


class TaskState(enum.Enum):
    PENDING = "pending"
    IN_PROGRESS = "in progress"
    DONE = "result"
    FAILED = "error"
    STOPPED = "stopped"


_ENDED = (TaskState.DONE, TaskState.FAILED, TaskState.STOPPED)


@dataclass(eq=False, slots=True)
class Task:
    """One task in the buffer.  ``owner`` is the link that added it (for its F0 packet)."""

    tid: int
    flags: TaskFlags
    command: bytes
    owner: object | None = None
    state: TaskState = TaskState.PENDING
    reply: bytes = b""
    stopped_by: int = 0  # STOPPED: the failed task that stopped the queue

    @property
    def ended(self) -> bool:
        return self.state in _ENDED

    def status(self) -> BufferReply:
        """The reply to ``Req`` about this task."""
        state = self.state
        if state is TaskState.PENDING:
            return Pending()
        if state is TaskState.IN_PROGRESS:
            return InProgress()
        if state is TaskState.DONE:
            return Result(self.reply)
        if state is TaskState.FAILED:
            return Error(self.reply)
        return Stopped(self.stopped_by)

    def async_status(self) -> AsyncResult | AsyncError:
        """The packet F0 announcing the end of this task."""
        if self.state is TaskState.DONE:
            return AsyncResult(self.tid, self.reply)
        return AsyncError(self.tid, self.reply)


class TaskBuffer:
    """The register's task buffer, shared by every connection of one device.

    Tasks run one at a time in the order they were added.  A result is kept until ``Ack`` when
    the task asked for it (NeedResult); otherwise the slot is freed as soon as it ends.  A task
    without IgnoreError that fails stops the queue: the tasks waiting behind it, and those added
    while it stays in the buffer, report ``A5 TID`` (its TID) and are not run.  The sheet marks
    that rule [?] (§1.4, "presumably"); ``stop_on_error=False`` selects the other reading (the
    flag changes nothing).
    """

    def __init__(self, capacity: int = 16, *, stop_on_error: bool = True) -> None:
        # No capacity is published for any model; 16 is this emulator's choice [?].
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.stop_on_error = stop_on_error
        self._tasks: dict[int, Task] = {}  # insertion order is the queue order
        self._stopped_by: int | None = None
        self._watchers: list[Callable[[Task], None]] = []

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def tasks(self) -> list[Task]:
        return list(self._tasks.values())

    def get(self, tid: int) -> Task | None:
        return self._tasks.get(tid)

    def subscribe(self, watcher: Callable[[Task], None]) -> None:
        """Call ``watcher(task)`` whenever a task ends (`complete`); the I/O halves use it to
        tell the owner's link."""
        self._watchers.append(watcher)

    def unsubscribe(self, watcher: Callable[[Task], None]) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    # -- host commands ----------------------------------------------------------------------------

    def add(
        self, tid: int, flags: TaskFlags, command: bytes, *, owner: object | None = None
    ) -> BufferReply:
        """``Add``: A1 queued (A5 when the queue is stopped), or B1/B2/B4."""
        if int(flags) & ~int(TaskFlags.NEED_RESULT | TaskFlags.IGNORE_ERROR):
            # WaitAsyncData (or an undefined bit): this device has no source of async data.
            return IllegalValue()
        if len(command) < MIN_COMMAND_SIZE:
            return IllegalValue()
        if tid in self._tasks:
            return AlreadyExists()  # checked before the capacity: a repeat is never "full"
        if len(self._tasks) >= self.capacity:
            return Overflow()
        task = Task(tid, TaskFlags(flags), bytes(command), owner)
        self._tasks[tid] = task
        if self._stopped_by is not None:
            task.state = TaskState.STOPPED
            task.stopped_by = self._stopped_by
        return task.status()

    def request(self, tid: int) -> BufferReply:
        """``Req``: the task's state and kept reply, or B3."""
        task = self._tasks.get(tid)
        return NotFound() if task is None else task.status()

    def ack(self, tid: int) -> BufferReply:
        """``Ack``: free an ended task's slot (its status byte); B3 for an unknown TID.

        A task that has not ended is not freed: its state (A1/A2) is the reply.
        """
        task = self._tasks.get(tid)
        if task is None:
            return NotFound()
        if not task.ended:
            return task.status()
        self._remove(tid)
        status = task.status()
        if isinstance(status, Result):
            return Result()
        if isinstance(status, Error):
            return Error()
        return status

    def abort(self) -> BufferReply:
        """``Abort``: drop every task; ``A2 TID`` when one is executing (it cannot be stopped).

        The executing task finishes; its result is not kept (nobody will Ack it), so its slot
        frees itself when it ends.
        """
        running = next((t for t in self._tasks.values() if t.state is TaskState.IN_PROGRESS), None)
        self._tasks.clear()
        self._stopped_by = None
        if running is None:
            return Result()
        running.flags &= ~TaskFlags.NEED_RESULT
        self._tasks[running.tid] = running
        return InProgress(running.tid)

    # -- the executor ---------------------------------------------------------------------------

    def next_task(self) -> Task | None:
        """The oldest pending task, now marked in progress; None when none may run now."""
        if any(t.state is TaskState.IN_PROGRESS for t in self._tasks.values()):
            return None  # one at a time
        for task in self._tasks.values():
            if task.state is TaskState.PENDING:
                task.state = TaskState.IN_PROGRESS
                return task
        return None

    def complete(self, tid: int, reply: bytes, *, failed: bool) -> Task | None:
        """The executor finished task ``tid``; None when the buffer no longer holds it (a power
        cycle or an Abort came in between).  Watchers hear of it."""
        task = self._tasks.get(tid)
        if task is None or task.state is not TaskState.IN_PROGRESS:
            return None
        task.reply = bytes(reply)
        task.state = TaskState.FAILED if failed else TaskState.DONE
        if failed and self.stop_on_error and not task.flags & TaskFlags.IGNORE_ERROR:
            self._stopped_by = tid
            for other in self._tasks.values():
                if other.state is TaskState.PENDING:
                    other.state = TaskState.STOPPED
                    other.stopped_by = tid
        if not task.flags & TaskFlags.NEED_RESULT:
            self._remove(tid)
        for watcher in list(self._watchers):
            watcher(task)
        return task

    def power_cycle(self) -> None:
        """The register lost power: the buffer is gone."""
        self._tasks.clear()
        self._stopped_by = None

    def _remove(self, tid: int) -> None:
        del self._tasks[tid]
        if self._stopped_by == tid:
            self._stopped_by = None  # the failed task left: the queue runs again


# -- device: one connection -----------------------------------------------------------------------


@dataclass(slots=True)
class _Deferred:
    """An Add's reply held back while its task may still finish within the inline window."""

    packet_id: int
    data: bytes
    tid: int
    prefix: bytes  # AckAdd: the Ack's status byte goes first
    due: float


class AtolDeviceLink:
    """The device end of one connection, over the device's shared `TaskBuffer`."""

    def __init__(self, buffer: TaskBuffer, settings: DeviceSettings | None = None) -> None:
        self.buffer = buffer
        self.settings = settings or DeviceSettings()
        self._deframer = self._new_deframer()
        self._out = bytearray()
        self._last_rx = 0.0
        self._cache: tuple[int, bytes, bytes] | None = None  # id, request data, reply wire
        self._deferred: _Deferred | None = None

    def _new_deframer(self) -> PacketDeframer:
        return PacketDeframer(
            crc_over_escaped=self.settings.crc_over_escaped, max_data=self.settings.max_data
        )

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def get_timer(self) -> float | None:
        times = []
        if self._deferred is not None:
            times.append(self._deferred.due)
        if self._deframer.has_partial:
            times.append(self._last_rx + self.settings.byte)
        return min(times) if times else None

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        events: list[Event] = []
        if not data:
            return events
        self._last_rx = now
        for token in self._deframer.feed(data):
            if isinstance(token, Packet):
                self._packet(token, now, events)
            else:
                if isinstance(token, BadPacket):
                    self._ask_repeat(token)
                events.append(LineNoise(token))
        return events

    def handle_timer(self, now: float) -> list[Event]:
        events: list[Event] = []
        if self._deframer.has_partial and now >= self._last_rx + self.settings.byte:
            dropped = self._deframer.drop_partial()
            if dropped is not None:
                self._ask_repeat(dropped)
                events.append(LineNoise(dropped))
        deferred = self._deferred
        if deferred is not None and now >= deferred.due:
            self._flush_deferred()
        return events

    def task_finished(self, task: Task, now: float) -> None:
        """A task ended (`TaskBuffer.complete`): reply inline, or send F0 if this link added it."""
        deferred = self._deferred
        if deferred is not None and deferred.tid == task.tid:
            self._deferred = None
            self._reply(deferred.packet_id, deferred.data, deferred.prefix + task.status().encode())
        elif task.owner is self:
            self._out += encode_packet(
                ASYNC_ID,
                task.async_status().encode(),
                crc_over_escaped=self.settings.crc_over_escaped,
            )

    def power_cycle(self) -> None:
        """The register lost power: this connection forgets its packets (the buffer is separate)."""
        self._deframer = self._new_deframer()
        self._cache = None
        self._deferred = None
        self._out.clear()

    # -- internals --------------------------------------------------------------------------------

    def _ask_repeat(self, bad: BadPacket) -> None:
        """An empty packet with the corrupt packet's ID, if one could be read (fact sheet §1.3)."""
        raw = bad.raw
        if len(raw) < 4 or raw[3] > MAX_REQUEST_ID:
            return
        self._out += encode_packet(raw[3], b"", crc_over_escaped=self.settings.crc_over_escaped)

    def _reply(self, packet_id: int, data: bytes, reply: bytes) -> None:
        wire = encode_packet(packet_id, reply, crc_over_escaped=self.settings.crc_over_escaped)
        self._cache = (packet_id, data, wire)
        self._out += wire

    def _flush_deferred(self) -> None:
        deferred = self._deferred
        if deferred is None:
            return
        self._deferred = None
        task = self.buffer.get(deferred.tid)
        status: BufferReply = task.status() if task is not None else NotFound()
        self._reply(deferred.packet_id, deferred.data, deferred.prefix + status.encode())

    def _packet(self, packet: Packet, now: float, events: list[Event]) -> None:
        if packet.is_async or not is_valid_id(packet.id):
            events.append(LineNoise(packet))
            return
        deferred = self._deferred
        if deferred is not None and (packet.id, packet.data) == (deferred.packet_id, deferred.data):
            return  # the host repeats the Add whose reply is on its way
        cache = self._cache
        if cache is not None and packet.id == cache[0] and packet.data in (cache[1], b""):
            self._out += cache[2]  # a retransmission (or "repeat"): the same reply, run nothing
            return
        if packet.is_repeat_request:
            events.append(LineNoise(packet))  # asks for a reply we no longer hold
            return
        self._flush_deferred()  # the host moved on: the held reply goes first
        try:
            command = decode_buffer_command(packet.data)
        except CodecError:
            self._reply(packet.id, packet.data, IllegalValue().encode())
            return
        buffer = self.buffer
        if isinstance(command, Add | AckAdd):
            prefix = b""
            if isinstance(command, AckAdd):
                prefix = bytes((self._ack_code(buffer.ack(command.ack_tid)),))
            status = buffer.add(command.tid, command.flags, command.data, owner=self)
            if isinstance(status, Pending):
                events.append(TaskReady(command.tid, command.data))
                if self.settings.inline > 0:
                    self._deferred = _Deferred(
                        packet.id, packet.data, command.tid, prefix, now + self.settings.inline
                    )
                    return
            self._reply(packet.id, packet.data, prefix + status.encode())
        elif isinstance(command, Req):
            self._reply(packet.id, packet.data, buffer.request(command.tid).encode())
        elif isinstance(command, Ack):
            self._reply(packet.id, packet.data, buffer.ack(command.tid).encode())
        else:
            self._reply(packet.id, packet.data, buffer.abort().encode())

    @staticmethod
    def _ack_code(reply: BufferReply) -> StatusCode:
        return StatusCode(reply.code)


__all__ = [
    "HOST_FLAGS",
    "MAX_TID",
    "AnswerReceived",
    "AnswerTimeout",
    "AtolDeviceLink",
    "AtolHostLink",
    "CommandFailed",
    "ConnectionLost",
    "DeviceSettings",
    "Event",
    "ExchangeTimeout",
    "HostSettings",
    "LineNoise",
    "NoReply",
    "Task",
    "TaskBuffer",
    "TaskLost",
    "TaskReady",
    "TaskRefused",
    "TaskState",
    "reply_is_error",
]
