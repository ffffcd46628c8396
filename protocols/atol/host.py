"""The host end of an ATOL v3 link: `AtolHostLink`, one command at a time.

The link rule (`kkt.protocols.atol.link`): a host class and a device class, sharing only framing.

Exactly-once rules
------------------
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
4. the reply is reported at once, and the task's ``Ack`` rides on the next command's Add: that
   Add goes out as ``AckAdd(ackTID, flags, TID, command)`` (C5h), one round trip per command
   instead of two.  Until the next command the result stays in the device's buffer, answering
   ``Req`` -- nothing of the exactly-once rules depends on the Ack, which only frees the slot.
   The acknowledgement status in the AckAdd's reply settles it (A3/A4 freed it; B3, already
   free, is believed once an earlier copy may have freed it: `_ack_status`); an AckAdd whose
   reply never came (the line failed, the port was reopened, or only the task's F0 arrived)
   leaves the Ack pending for the next command -- acknowledging a TID twice costs a B3, never
   a result, since no new task takes a pending Ack's TID.  When an older Ack is still pending
   as a task ends (a resumed command after such a failure) the ended task is acknowledged at
   once with a plain ``Ack`` -- at most one Ack is ever deferred.  `AtolHostLink.release`
   sends a pending Ack on its own (a session closing).

   AckAdd's reply layout, ``ackStatus addStatus [data]`` -- the Ack's one status byte, then
   exactly what an Add would have got -- is read from MultiMag (``atolbuffer.php``
   ``ackAdd``: ``$res[0]`` the Ack's state, accepted when A3/A4; ``$res[1]`` the Add's state;
   the rest its data); it is the only public client that decodes it.  The second reading is
   the command itself: atol4j (``v3/Command.java``) names C5h "confirm the result *and* add a
   new task", i.e. an ``Ack`` followed by an ``Add``, and the reply of each of those alone is
   one status byte (+ the Add's data); the concatenation is the layout MultiMag decodes.
   Cyberplat's TerminalClient (``Atol3FRConstants.h``) and Zzzzipper (``AtolProtocol.h``)
   define C5h but never send it.  Not confirmed on a device [?].

5. a *follow-up* (`AtolHostLink.follow`): a repeatable query the caller asks right after a
   command (the subtotal after the last item, the document's record after the closing) has its
   Add written in the same write as the command's, under a TID of its own -- one round trip for
   both.  The task buffer runs tasks in the order they were added (fact sheet §1.4: A1 Pending
   is a task "waiting behind another"; every public client reads results in that order), so
   the query answers the state the command left -- taken only when the device took the command
   from the packet written *before* the query's (its reply to that first copy: a resent Add may
   have arrived after the query's).  Its replies meanwhile are kept and handled when the query
   is asked for, as any Add's (B2, B3, its ownership: `_Exchange.owned`); when it is not asked
   for (the command failed, another command came first) its task is Acked later (ended) or
   settled by the next command (Req, then Ack).  Up to two Acks may then wait, one carried by
   each Add of such a write (`MAX_DEFERRED_ACKS`); a device without C5h gets them plainly.
   Reading: the packets of one write are answered one by one in order -- the device's link
   replies per packet ID (§1.3); that a real register reads a second packet while the first's
   task runs is not confirmed on hardware [?].

Whose task is it?  A task under our TID may be another session's: one killed with its last Ack
deferred (step 4) leaves its result in the buffer for good, and a later session's TIDs reach
that TID.  Its B2, its state to a Req and its F0 look exactly like our own task's.  So a task
state is taken for our command's only when the task is certainly ours (`_Exchange.owned`): the
device answered an Add of ours with the task's state, or the TID was known free when our Add
left -- the link remembers TIDs it saw freed (our Ack's A3/A4/B3, a Req's B3, our Abort:
`_clean`) and takes those first.  Otherwise a query is added again under another TID, and a
money-moving command fails "may have been executed" with its TID settled by the next command.
A money-moving command never gets there: when no TID is known free (a session's first
commands) it first asks ``Req`` for the TID it is to take -- B3, free; anything else, held by
someone: the next TID.

A command whose exchange fails after a packet of its Add left keeps its TID *unresolved*.  The
next command settles it first (step 2) -- unless it is the very same command again: a caller
retrying a failed command then *resumes* it, ``Req(TID)`` instead of a new Add, and gets the
first run's reply if it ran (B3 for an Add never confirmed adds it, as above).  Retrying is
therefore exactly-once.  `CommandFailed.error.maybe_executed` is False only when
the device certainly did not take the task: no packet of the Add left, or the buffer refused it
(B1 Overflow, B4 IllegalValue, A5 Stopped).  No exchange outlives
``HostSettings.exchange_limit(answer_timeout)``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import CodecError, FrameError, LinkError
from ..line import AnswerReceived, CommandFailed, LineNoise, LinkEnd
from . import buffer
from .link import (
    AnswerTimeout,
    ConnectionLost,
    Event,
    ExchangeTimeout,
    HostSettings,
    NoReply,
    TaskLost,
    TaskRefused,
)
from .packet import MAX_DATA, MAX_REQUEST_ID, Packet, PacketDeframer, Token, encode_packet

# Every client in the fact sheet (§1.4) sends NeedResult|IgnoreError: the result is kept until
# our Ack (that is what makes a lost reply recoverable) and one failed command never stops the
# queue for the next.
HOST_FLAGS = buffer.TaskFlags.NEED_RESULT | buffer.TaskFlags.IGNORE_ERROR
# Hosts wrap TIDs like packet IDs (fact sheet §1.4: "TIDs 0…0xDF wrap").
MAX_TID = MAX_REQUEST_ID
# Acks deferred to the next Adds at most (step 4): two, so that a write carrying a command and
# its follow-up query (step 5) can carry two -- one on each AckAdd.
MAX_DEFERRED_ACKS = 2


# An Add's reply that says the device took the task: its state, queued, running or ended.
_TAKEN = (
    buffer.Pending,
    buffer.InProgress,
    buffer.Waiting,
    buffer.Result,
    buffer.Error,
)


class _Phase(enum.Enum):
    ABORT = "abort"  # Abort: the first command of a fresh link
    SETTLE = "settle"  # Req (then Ack) of an earlier command's unresolved TID
    PROBE = "probe"  # Req of the TID a money-moving task is to take: is it free (B3)?
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
    owned: bool = True  # a task under the TID can only be ours (`_Exchange.owned`)


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
    # A task the device holds under ``tid`` can only be ours: the TID was free (`_clean`) when
    # our first Add under it left, or the device answered an Add of ours with the task's state.
    # Until then a B2, a Req's state or an F0 under the TID may be another session's task.
    owned: bool = False
    readds: int = 0
    earlier_add: bool = False  # an Add under this TID left in an earlier exchange (resumed)
    tid_changes: int = 0
    answer_due: float = math.inf
    poll_at: float | None = None
    answer: bytes | None = None  # the reply, reported after its Ack
    acking: int | None = None  # the deferred Ack this exchange's AckAdd carries
    unknown_ack_add: bool = False  # the AckAdd got a lone B4: is our task there (Req)?
    refusal: LinkError | None = None  # A5: reported (after its Ack) instead of a reply
    cleared_full_buffer: bool = False  # B1 to our first Add: an Abort cleared the buffer once
    releasing: bool = False  # `release`: plain Acks of the deferred TIDs, one after another
    # A follow-up query resumed (step 5): its replies that came during the command it followed,
    # handled as this exchange starts (`handle_timer`).
    early: list[Packet] = field(default_factory=list)
    follow_checked: bool = False  # the first Add of this exchange went out (a follow-up with it?)


@dataclass(slots=True)
class _FollowUp:
    """A repeatable query whose Add goes out in the same write as the Add of the command it
    follows (module docstring, step 5)."""

    after: bytes  # the command it follows
    command: bytes  # the query
    tid: int = -1
    request: _Request | None = None  # its Add's packet, once sent
    acking: int | None = None  # the deferred Ack its AckAdd carries
    after_packet: int = -1  # the packet ID of the command's Add it followed
    in_order: bool = False  # the device took that Add from that packet: the query ran after it
    owned: bool = False  # its TID was known free when its Add left
    early: list[Packet] = field(default_factory=list)  # its replies, kept until it is asked for


class AtolHostLink(LinkEnd[Token, Event]):
    """The host end of an ATOL v3 link; see the module docstring for the rules."""

    def __init__(
        self,
        settings: HostSettings | None = None,
        *,
        first_tid: int = 0,
        known_free: Iterable[int] = (),
    ) -> None:
        """``first_tid``: the first task's TID (00..DF).  A session that may share a register
        with other programs -- or follow an earlier run of itself -- starts at a random one:
        a task left unresolved under some TID is less likely to meet a new task of ours (or
        theirs) under the same TID, whose result our Req would then take for its own.

        ``known_free``: TIDs the caller knows the register holds no task under (a buffer it
        has just seen empty: a rig that powered the register on for this link).  By default
        none is known until the link sees it (`_clean`)."""
        if not 0 <= first_tid <= MAX_TID:
            raise ValueError(f"first_tid must be 0..{MAX_TID:#04x}, got {first_tid}")
        self.settings = settings or HostSettings()
        super().__init__(self._new_deframer(), None)  # a partial packet: our timeout resends
        self._packet_id = MAX_REQUEST_ID  # the first packet gets 00
        self._tid = first_tid - 1 if first_tid else MAX_TID  # `_new_tid` steps to first_tid
        self._fresh = True
        self._unresolved: _Unresolved | None = None
        # Follow-ups' tasks to settle after `_unresolved` (step 5), oldest first.
        self._leftovers: list[_Unresolved] = []
        self._exchange: _Exchange | None = None
        self._request: _Request | None = None
        # The TIDs of ended tasks whose outcome was reported and whose Acks ride on the next
        # Adds (as AckAdd), oldest first: their results still answer Req until then.
        self._pending_acks: list[int] = []
        self._ack_carried: dict[int, int] = {}  # how many exchanges have carried each of them
        self._follow: _FollowUp | None = None  # step 5: armed, or sent and not yet asked for
        self._piggyback = self.settings.piggyback_ack
        # TIDs under which the device holds no task, as this link last saw: freed by our Ack
        # (A3/A4, or B3), answered B3 to a Req, or cleared by our Abort.  New tasks take these
        # first; a TID taken by an Add of ours leaves the set until its Ack is confirmed.
        self._clean: set[int] = set(known_free)
        if any(not 0 <= tid <= MAX_TID for tid in self._clean):
            raise ValueError(f"known_free TIDs must be 0..{MAX_TID:#04x}")

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

    @property
    def pending_ack(self) -> int | None:
        """The oldest TID whose Ack waits for the next command (its AckAdd) or `release`."""
        return self._pending_acks[0] if self._pending_acks else None

    @property
    def pending_acks(self) -> tuple[int, ...]:
        """Every TID whose Ack waits, oldest first."""
        return tuple(self._pending_acks)

    def follow(self, after: bytes, query: bytes) -> None:
        """Send the repeatable ``query``'s Add in the same write as the Add of the next command,
        when that command is ``after`` (module docstring, step 5); asked for right after it, the
        query is then answered without a round trip of its own.  Anything else next disarms it.
        """
        if self._exchange is not None:
            raise RuntimeError("a command is in progress on this link; wait for its event")
        if self._follow is None and self.settings.follow_ups:
            self._follow = _FollowUp(bytes(after), bytes(query))

    def release(self, now: float) -> bool:
        """Send the pending Acks on their own (a session closing), one after another; False when
        none is pending.

        Ends with `AnswerReceived` (an empty answer) whatever the device says; a line that
        fails leaves the TID unresolved, as a missing Ack always did.
        """
        if self._exchange is not None:
            raise RuntimeError("a command is in progress on this link; wait for its event")
        self._drop_follow()
        if not self._pending_acks:
            return False
        tid = self._pending_acks.pop(0)
        limit = self.settings.packet_step()
        self._exchange = _Exchange(
            command=b"",
            answer_timeout=0.0,
            repeatable=True,
            limit=limit,
            give_up_at=now + limit,
            tid=tid,
            phase=_Phase.ACK,
            answer=b"",
            releasing=True,
        )
        self._fresh = False
        self._send(buffer.Ack(tid).encode(), now)
        return True

    def _deadlines(self) -> tuple[float | None, ...]:
        exchange = self._exchange
        if exchange is None:
            return ()
        request = exchange.poll_at if self._request is None else self._request.due
        early = exchange.give_up_at - exchange.limit if exchange.early else None  # at once
        return exchange.give_up_at, request, self._task_due(exchange), early

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
        # A command that cannot be queued or sent is refused now, not mid-exchange: the Add's
        # own checks, and the packet's length (AckAdd's DATA is one byte longer than Add's).
        # Checked by size, not by encoding a throwaway packet (a CRC over the command each time).
        add = buffer.Add(0, HOST_FLAGS, command).encode()
        if len(add) + 1 > MAX_DATA:
            raise FrameError(
                f"an ATOL packet carries at most {MAX_DATA} data bytes (14-bit length); this "
                f"command needs {len(add) + 1} with its AckAdd header: split the task"
            )
        limit = self.settings.exchange_limit(answer_timeout)
        follow = self._follow
        if follow is not None and follow.request is not None:
            if follow.in_order and repeatable and command == follow.command:
                self._resume_follow(follow, now, answer_timeout, limit)
                return
            self._drop_follow()
        elif follow is not None and command != follow.after:
            self._follow = None  # armed for another command
        if self._unresolved is None and self._leftovers:
            self._unresolved = self._leftovers.pop(0)
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
            exchange.owned = unresolved.owned  # else its Req's answer may not be ours
            self._fresh = False
            exchange.phase = _Phase.WAIT
            exchange.add_sent = True
            exchange.earlier_add = True
            if unresolved.confirmed:
                self._confirm(exchange, now)
            self._send(buffer.Req(exchange.tid).encode(), now)
            return
        if self._fresh and self._unresolved is None and self.settings.abort_on_open:
            exchange.phase = _Phase.ABORT
            self._send(buffer.Abort().encode(), now)
            return
        self._fresh = False
        self._after_abort(now)

    def _resume_follow(
        self, follow: _FollowUp, now: float, answer_timeout: float, limit: float
    ) -> None:
        """The follow-up query asked for right after its command: its Add already left, its
        replies so far are handled at once (`handle_timer`), the rest as any Add's."""
        assert follow.request is not None
        self._follow = None
        exchange = _Exchange(
            command=follow.command,
            answer_timeout=answer_timeout,
            repeatable=True,
            limit=limit,
            give_up_at=now + limit,
            tid=follow.tid,
            phase=_Phase.ADD,
            add_sent=True,
            owned=follow.owned,  # else its Add's own reply decides (`_add_reply`)
            acking=follow.acking,
            # The Add's reply before any F0 of its task (a quick task's F0 may overtake it on
            # the device): the reply also carries the AckAdd's acknowledgement status.
            early=sorted(follow.early, key=lambda packet: packet.is_async),
            follow_checked=True,
        )
        self._exchange = exchange
        self._request = follow.request
        self._fresh = False

    def _token(self, token: Token, now: float, events: list[Event]) -> None:
        if isinstance(token, Packet):
            self._packet(token, now, events)
        else:
            events.append(LineNoise(token))  # corrupt: our own timeout resends

    def handle_timer(self, now: float) -> list[Event]:
        events: list[Event] = []
        exchange = self._exchange
        if exchange is None:
            return events
        if exchange.early:
            self._replay_early(exchange, now, events)
            if self._exchange is not exchange:
                return events
        if now >= exchange.give_up_at:
            # The hard bound: no sequence of bytes keeps an exchange alive past it.
            limit = f"the exchange did not end within its bound of {exchange.limit:.0f} s"
            self._cut_off(events, ExchangeTimeout, limit, then="check it before repeating it")
            return events
        request = self._request
        if request is not None and now >= request.due:
            request.timeouts += 1
            self._resend(now, events)
            if self._exchange is not exchange:
                return events
        due = self._task_due(exchange)
        if due is not None and now >= due:
            # The task waited for (ours, or the earlier one we settle) ran out of time.
            ours = exchange.phase is _Phase.WAIT
            self._fail(
                events,
                AnswerTimeout if ours else TaskRefused,
                f"the register took the task (TID {exchange.tid:02X}) but did not finish it "
                f"within {exchange.answer_timeout:g} s; it may still be running -- the next "
                "command asks for it first; check the register before repeating this one"
                if ours
                else f"an earlier command (TID {exchange.settle_tid:02X}) is still running on "
                f"the register after {exchange.answer_timeout:g} s; this command was not sent "
                "-- wait and send it again",
                executed=ours,
                unresolved=exchange.tid if ours else None,
            )
            return events
        if self._request is None and exchange.poll_at is not None and now >= exchange.poll_at:
            exchange.poll_at = None
            self._send(buffer.Req(self._asked_tid(exchange)).encode(), now)
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
            self._send(buffer.Req(self._asked_tid(exchange)).encode(), now)
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
        self._cut_off(events, ConnectionLost, reason, add_sent=exchange.add_sent)
        return events

    # -- internals: sending -----------------------------------------------------------------------

    def _new_tid(self) -> int:
        """The next TID after the last one taken: the next known to be free (`_clean`) when any
        is -- a task of ours under it is then told from anyone else's (`_Exchange.owned`) --
        else simply the next; never the unresolved TID's nor the pending Ack's."""
        unresolved = None if self._unresolved is None else self._unresolved.tid
        following = None if self._follow is None else self._follow.tid
        left = {leftover.tid for leftover in self._leftovers}
        fallback: int | None = None
        tid = self._tid
        for _ in range(MAX_TID + 1):
            tid = 0 if tid >= MAX_TID else tid + 1
            if tid == unresolved or tid in self._pending_acks or tid == following or tid in left:
                continue
            if fallback is None:
                fallback = tid
                if not self._clean:
                    break
            if tid in self._clean:
                self._tid = tid
                return tid
        assert fallback is not None
        self._tid = fallback
        return fallback

    def _send(self, data: bytes, now: float) -> None:
        """A new request packet: the next ID."""
        self._packet_id = 0 if self._packet_id >= MAX_REQUEST_ID else self._packet_id + 1
        wire = encode_packet(self._packet_id, data, crc_over_escaped=self.settings.crc_over_escaped)
        self._request = _Request(self._packet_id, data, wire, now + self.settings.packet)
        self._out += wire

    def _add_or_probe(self, now: float) -> None:
        """The Add -- after a Req that finds its TID free when the command moves money and no
        TID is known free (`_clean`: a session's first commands): only a task under a TID known
        free when its Add left is ever taken for ours (`_Exchange.owned`), and a money-moving
        command must be able to find its own task again after a lost reply."""
        exchange = self._exchange
        assert exchange is not None
        if exchange.repeatable or exchange.owned or exchange.tid in self._clean:
            self._send_add(now)
            return
        exchange.phase = _Phase.PROBE
        self._send(buffer.Req(exchange.tid).encode(), now)

    def _probe_reply(self, reply: buffer.BufferReply, now: float, events: list[Event]) -> None:
        """B3: the TID is free, add the task under it.  Anything else: someone holds it."""
        exchange = self._exchange
        assert exchange is not None
        if isinstance(reply, buffer.NotFound):
            self._clean.add(exchange.tid)
            self._send_add(now)
            return
        self._try_another_tid(exchange, now, events)

    def _try_another_tid(self, exchange: _Exchange, now: float, events: list[Event]) -> None:
        """Someone holds this TID and ours was not taken: the next TID, within the limit."""
        exchange.tid_changes += 1
        if exchange.tid_changes > self.settings.max_tid_changes:
            self._fail(
                events,
                TaskRefused,
                "the register's buffer holds tasks under every TID tried (another host "
                "is using it?); the command was not executed -- retry later",
                executed=False,
            )
            return
        self._change_tid()
        self._add_or_probe(now)

    def _send_add(self, now: float) -> None:
        """The Add -- as AckAdd when an Ack is pending (module docstring, step 4)."""
        exchange = self._exchange
        assert exchange is not None
        exchange.phase = _Phase.ADD
        exchange.add_sent = True
        exchange.poll_at = None
        if exchange.tid in self._clean:
            self._clean.discard(exchange.tid)  # ours from now until its Ack is confirmed
            exchange.owned = True
        ack = next((tid for tid in self._pending_acks if tid != exchange.tid), None)
        if ack is not None and self._piggyback:
            if exchange.acking != ack:
                self._carry(ack)  # exchanges that carried this Ack (re-adds are one)
            exchange.acking = ack
            data = buffer.AckAdd(ack, HOST_FLAGS, exchange.tid, exchange.command).encode()
        else:
            exchange.acking = None
            data = buffer.Add(exchange.tid, HOST_FLAGS, exchange.command).encode()
        self._send(data, now)
        first = not exchange.follow_checked
        exchange.follow_checked = True
        follow = self._follow
        if follow is None or follow.request is not None:
            return
        if not first or exchange.command != follow.after or exchange.earlier_add:
            self._follow = None  # armed for another command's first Add: disarmed
            return
        self._send_follow(follow, exchange, now)

    def _carry(self, tid: int) -> None:
        self._ack_carried[tid] = self._ack_carried.get(tid, 0) + 1

    def _send_follow(self, follow: _FollowUp, exchange: _Exchange, now: float) -> None:
        """The follow-up's Add, in the same write as the command's (step 5), under the next
        TID (one known free first, `_new_tid`); whose task a state under it is, is decided as
        for any query's Add (`_Exchange.owned`)."""
        assert self._request is not None
        tid = self._new_tid()
        if tid == exchange.tid:
            self._follow = None
            return
        follow.owned = tid in self._clean
        self._clean.discard(tid)
        follow.tid = tid
        follow.after_packet = self._request.packet_id
        ack = next((t for t in self._pending_acks if t not in (exchange.acking, tid)), None)
        if ack is not None and self._piggyback:
            self._carry(ack)
            follow.acking = ack
            data = buffer.AckAdd(ack, HOST_FLAGS, tid, follow.command).encode()
        else:
            data = buffer.Add(tid, HOST_FLAGS, follow.command).encode()
        main = self._request
        self._send(data, now)
        follow.request, self._request = self._request, main

    def _drop_follow(self) -> None:
        """The follow-up will not be asked for (its command failed, or another command comes
        first): its task's slot is freed like any other -- its Ack deferred when it is known to
        have ended, else it is settled (Req, then Ack) by the next command -- after the task
        of a failed command, when one waits for that (`_leftovers`)."""
        follow, self._follow = self._follow, None
        if follow is None or follow.request is None:
            return
        taken = ended = finished = False
        for packet in follow.early:
            try:
                if packet.is_async:
                    reply = buffer.decode_buffer_reply(packet.data)
                elif follow.acking is not None:
                    reply = buffer.decode_ack_add_reply(packet.data).add
                else:
                    reply = buffer.decode_buffer_reply(packet.data)
            except CodecError:
                continue
            if isinstance(reply, buffer.AlreadyExists | buffer.Overflow | buffer.IllegalValue):
                return  # its one copy refused: not taken (a B2's task is someone else's)
            taken = taken or isinstance(reply, _TAKEN)  # our Add's own reply: the task is ours
            ended = ended or isinstance(reply, buffer.Result | buffer.Error)
            finished = finished or isinstance(reply, buffer.AsyncResult | buffer.AsyncError)
        if (ended or (taken and finished)) and self._piggyback:
            self._pending_acks.append(follow.tid)
            self._ack_carried[follow.tid] = 0
            return
        left = _Unresolved(follow.tid, follow.command, confirmed=False, resumable=False)
        if self._unresolved is None:
            self._unresolved = left
        else:
            self._leftovers.append(left)  # settled right after the unresolved one

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
        self._cut_off(
            events,
            NoReply,
            f"no reply to {tries} sends of a packet: check the cable or network, the port and "
            "baud rate, and that the register is on",
        )

    @staticmethod
    def _task_due(exchange: _Exchange) -> float | None:
        """When the task waited for runs out of time: ours (WAIT) or the one settled first."""
        return {_Phase.WAIT: exchange.answer_due, _Phase.SETTLE: exchange.settle_due}.get(
            exchange.phase
        )

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
            self._send(buffer.Req(exchange.settle_tid).encode(), now)
            return
        self._add_or_probe(now)

    # -- internals: receiving ---------------------------------------------------------------------

    def _replay_early(self, exchange: _Exchange, now: float, events: list[Event]) -> None:
        """A resumed follow-up: what the device said while its command ran (step 5), before
        anything that arrives now."""
        early, exchange.early = exchange.early, []
        for packet in early:
            self._packet(packet, now, events)
            if self._exchange is not exchange:
                return

    def _packet(self, packet: Packet, now: float, events: list[Event]) -> None:
        exchange = self._exchange
        if exchange is not None and exchange.early:
            self._replay_early(exchange, now, events)
            exchange = self._exchange
        follow = self._follow
        if follow is not None and follow.request is not None:
            if packet.id == follow.request.packet_id or (
                packet.is_async and packet.data[1:2] == bytes((follow.tid,))
            ):
                follow.early.append(packet)  # the follow-up's: handled when it is asked for
                return
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
        acked = request.data[0] == buffer.CommandCode.ACK_ADD
        if acked and packet.data == bytes((buffer.StatusCode.ILLEGAL_VALUE,)):
            # One status byte cannot answer AckAdd (two at least): a device that does not know
            # C5h refused the whole packet -- or a reply damaged past CRC-8 looks like that.
            # Plain Add and Ack from now on (the Acks still pending are sent plainly, one after
            # each task's own Ack: none is dropped, no slot leaks), and first a Req for our
            # task: B3 means the Add never arrived and it is added again; anything else is ours.
            self._piggyback = False
            self._request = None
            exchange.phase = _Phase.WAIT
            exchange.unknown_ack_add = True
            self._send(buffer.Req(exchange.tid).encode(), now)
            return
        try:
            if acked:
                both = buffer.decode_ack_add_reply(packet.data)
                reply = both.add
            else:
                reply = buffer.decode_buffer_reply(packet.data)
        except CodecError:
            # A reply that passed the CRC but is no reply: treat it as damaged; the timeout
            # sends the packet again and the device repeats its reply.
            events.append(LineNoise(packet))
            return
        if isinstance(reply, buffer.AsyncResult | buffer.AsyncError):
            events.append(LineNoise(packet))  # A6/A7 belong in packet F0 only
            return
        sends = request.sends
        if acked and exchange.acking is not None and exchange.acking in self._pending_acks:
            self._ack_status(exchange.acking, both.ack, sends)
        self._request = None
        phase = exchange.phase
        if (
            phase is _Phase.ADD
            and follow is not None
            and request.packet_id == follow.after_packet
            and sends == 1
            and isinstance(reply, _TAKEN)
        ):
            # The device took the command from the copy of its Add that left before the
            # follow-up's: the follow-up's task queues behind it (step 5).
            follow.in_order = True
        if phase is _Phase.ABORT:
            # A3, or "A2 TID": someone's task is running and will finish; ours queue behind it.
            # Either way the buffer holds no other task now: every TID but that one is free.
            self._fresh = False
            if isinstance(reply, buffer.Result | buffer.InProgress):
                self._clean = set(range(MAX_TID + 1))
                if isinstance(reply, buffer.InProgress) and reply.tid is not None:
                    self._clean.discard(reply.tid)
            self._after_abort(now)
        elif phase is _Phase.SETTLE:
            self._settle_reply(reply, now)
        elif phase is _Phase.PROBE:
            self._probe_reply(reply, now, events)
        elif phase is _Phase.ADD:
            self._add_reply(reply, sends, now, events)
        elif phase is _Phase.WAIT:
            self._req_reply(reply, now, events)
        else:
            # Any reply to Ack ends the task: A3/A4 freed it, B3 says it was already free.
            if isinstance(reply, buffer.Result | buffer.Error | buffer.NotFound):
                self._clean.add(exchange.tid)
            if (exchange.releasing or not self._piggyback) and self._pending_acks:
                # The next deferred Ack: the session closes, or the device takes no AckAdd.
                exchange.tid = self._pending_acks.pop(0)
                exchange.give_up_at = now + exchange.limit
                self._send(buffer.Ack(exchange.tid).encode(), now)
                return
            self._finish_ack(events, unresolved=False)

    def _async_result(self, packet: Packet, now: float, events: list[Event]) -> bool:
        """An F0 packet: the result of the task we wait for, or of the one we settle?"""
        exchange = self._exchange
        assert exchange is not None
        try:
            reply = buffer.decode_buffer_reply(packet.data)
        except CodecError:
            return False
        if not isinstance(reply, buffer.AsyncResult | buffer.AsyncError):
            return False
        if exchange.phase in (_Phase.ADD, _Phase.WAIT) and reply.tid == exchange.tid:
            if not exchange.owned:
                # Another session's task under this TID may have ended: not taken as ours; the
                # Add's (or Req's) own reply decides (`_ambiguous`).
                return False
            # A Req (or the Add) in flight is answered by this; its reply will be stale.
            self._request = None
            self._confirm(exchange, now)
            self._outcome(reply.data, now, events)
            return True
        if exchange.phase is _Phase.SETTLE and reply.tid == exchange.settle_tid:
            if not exchange.settle_ack:
                self._request = None
                exchange.poll_at = None
                exchange.settle_ack = True
                self._send(buffer.Ack(exchange.settle_tid).encode(), now)
            return True
        return False

    def _settle_reply(self, reply: buffer.BufferReply, now: float) -> None:
        exchange = self._exchange
        assert exchange is not None
        if exchange.settle_ack or isinstance(
            reply, buffer.NotFound | buffer.Overflow | buffer.IllegalValue
        ):
            # Acked (any reply ends it), or the device does not hold that TID: settled.
            if isinstance(reply, buffer.Result | buffer.Error | buffer.NotFound):
                self._clean.add(exchange.settle_tid)  # freed, or free already
            # The next follow-up's task left to settle (step 5), if any, then the Add.
            self._unresolved = self._leftovers.pop(0) if self._leftovers else None
            exchange.settle_ack = False
            self._after_abort(now)
        elif isinstance(reply, buffer.Pending | buffer.InProgress | buffer.Waiting):
            exchange.poll_at = now + self.settings.poll  # it still runs: wait for it
        else:
            exchange.settle_ack = True
            self._send(buffer.Ack(exchange.settle_tid).encode(), now)

    def _ack_status(self, tid: int, status: buffer.StatusCode, sends: int) -> None:
        """The acknowledgement half of an AckAdd's reply, about our pending Ack.

        A3/A4: the slot is free.  B3 says it was free already -- true once an earlier copy may
        have freed it (this packet sent again, or an earlier exchange carried the same Ack); on
        the Ack's very first carry it is an anomaly (a packet damaged past CRC-8 that acked
        another TID, or a register that lost power), so the Ack stays pending and the next Add
        carries it once more, when B3 is believed.  Anything else (B4, A1/A2): pending still.
        Never taken as proof of the Ack: the added task's result -- a damaged packet may run
        its command and ack another TID (CRC-8 lets about one damaged packet in 256 through).
        """
        if tid in self._pending_acks and (
            status in (buffer.StatusCode.RESULT, buffer.StatusCode.ERROR)
            or (
                status is buffer.StatusCode.NOT_FOUND
                and (sends > 1 or self._ack_carried.get(tid, 0) > 1)
            )
        ):
            self._clean.add(tid)
            self._pending_acks.remove(tid)
            self._ack_carried.pop(tid, None)

    def _confirm(self, exchange: _Exchange, now: float) -> None:
        if not exchange.add_confirmed:
            exchange.add_confirmed = True
            exchange.answer_due = now + exchange.answer_timeout

    def _add_reply(
        self, reply: buffer.BufferReply, sends: int, now: float, events: list[Event]
    ) -> None:
        exchange = self._exchange
        assert exchange is not None
        if isinstance(reply, buffer.AlreadyExists):
            if sends > 1 and not exchange.owned:
                # Our earlier copy arrived -- or the TID holds another session's task (an Ack
                # deferred by a session that was killed): nothing tells them apart.
                self._ambiguous(now, events)
                return
            if sends > 1:
                # Our earlier copy of this Add arrived and its reply was lost: ask for the task.
                self._confirm(exchange, now)
                exchange.phase = _Phase.WAIT
                self._send(buffer.Req(exchange.tid).encode(), now)
                return
            # The very first send was refused: someone else holds this TID.  Ours was not
            # taken; take another TID (never Req, or we would take a foreign task's result).
            self._try_another_tid(exchange, now, events)
            return
        if isinstance(reply, buffer.Overflow) and sends == 1 and not exchange.earlier_add:
            if not exchange.cleared_full_buffer and exchange.readds == 0:
                # A full buffer is mostly results nobody will Ack (hosts that crashed or were
                # cut off: no Abort on opening keeps another host's tasks safe).  Clear it once
                # and add ours again -- our Add was certainly not taken.
                exchange.cleared_full_buffer = True
                exchange.phase = _Phase.ABORT
                self._send(buffer.Abort().encode(), now)
                return
        if isinstance(reply, buffer.Overflow | buffer.IllegalValue):
            what = (
                "the register's task buffer is full (another host's tasks?)"
                if isinstance(reply, buffer.Overflow)
                else "the register refused the task as illegal (B4)"
            )
            # The refusal speaks for the copy of the Add it answers.  An Add sent more than once,
            # re-added (after B3 to our Req) or resumed may have had an earlier copy taken (the
            # refused copy, or that B3, may be damage that passed CRC-8), so only an Add sent
            # once is certainly not executed.
            earlier = sends > 1 or exchange.readds > 0 or exchange.earlier_add
            self._fail(
                events,
                TaskRefused,
                f"{what}; "
                + (
                    "an earlier copy of the task may have been taken -- sending the same "
                    "command again asks for it"
                    if earlier
                    else "the command was not executed and may be sent again"
                ),
                executed=earlier,
                unresolved=exchange.tid if earlier else None,
            )
            return
        if isinstance(reply, buffer.NotFound):
            # No defined reply to Add: what the device did is unknown; ask it next time.
            self._fail(
                events,
                TaskRefused,
                "the register answered the task's Add with B3 NotFound; its fate is unknown "
                "-- the next command asks for it; check the register before repeating it",
                executed=True,
                unresolved=exchange.tid,
            )
            return
        exchange.owned = True  # a task state to our Add: the device took it, the TID is ours
        self._confirm(exchange, now)
        self._task_state(reply, now, events)

    def _req_reply(self, reply: buffer.BufferReply, now: float, events: list[Event]) -> None:
        exchange = self._exchange
        assert exchange is not None
        if isinstance(reply, buffer.NotFound):
            self._clean.add(exchange.tid)  # no task under it: a re-add makes it ours
        if isinstance(reply, buffer.NotFound) and exchange.unknown_ack_add:
            exchange.unknown_ack_add = False  # the AckAdd was refused whole: add it plainly
            self._send_add(now)
            return
        if isinstance(reply, buffer.NotFound):
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
                TaskLost,
                f"the register no longer knows task {exchange.tid:02X}"
                + (
                    " after taking it (restarted? aborted by another host?)"
                    if exchange.add_confirmed
                    else f" after {exchange.readds} adds"
                )
                + "; it may have been executed -- check the register before repeating it",
                executed=True,
            )
            return
        if isinstance(reply, buffer.AlreadyExists | buffer.Overflow | buffer.IllegalValue):
            exchange.poll_at = now + self.settings.poll  # no defined Req reply: ask again
            return
        if not exchange.owned:
            self._ambiguous(now, events)  # a task is there: ours, or another session's?
            return
        self._confirm(exchange, now)
        self._task_state(reply, now, events)

    def _ambiguous(self, now: float, events: list[Event]) -> None:
        """The device holds a task under our TID that may not be ours: our Add was never seen
        taken and the TID was not known free when it left (a session killed with its last Ack
        deferred, a foreign host).  Its state is never taken for this command's outcome.  A
        query is added again under another TID (running it twice changes nothing); any other
        command fails "may have been executed", its TID settled by the next command (Req until
        it ends, then Ack) before the driver above judges by the register's state."""
        exchange = self._exchange
        assert exchange is not None
        if exchange.repeatable and exchange.tid_changes < self.settings.max_tid_changes:
            exchange.tid_changes += 1
            # The task there, ours or not, is settled by a later command (Req, then Ack): a
            # follow-up's own task is often it (an Add under a TID not known free).
            self._leftovers.append(
                _Unresolved(exchange.tid, exchange.command, False, resumable=False, owned=False)
            )
            self._change_tid()
            self._send_add(now)
            return
        self._fail(
            events,
            TaskLost,
            f"the register holds a task under TID {exchange.tid:02X} that cannot be told from "
            "another session's (this command's Add was never seen taken); it may have been "
            "executed -- check the register before repeating it",
            executed=True,
            unresolved=exchange.tid,
            resumable=False,
        )

    def _change_tid(self) -> None:
        """Take a new TID for the exchange's task (the old one is not ours, or not known to be)."""
        exchange = self._exchange
        assert exchange is not None
        exchange.tid = self._new_tid()
        exchange.owned = exchange.add_confirmed = False
        exchange.answer_due = math.inf

    def _task_state(self, reply: buffer.BufferReply, now: float, events: list[Event]) -> None:
        """A1..A5 about our task (to Add or Req)."""
        exchange = self._exchange
        assert exchange is not None
        if isinstance(reply, buffer.Result | buffer.Error):
            self._outcome(reply.data, now, events)
        elif isinstance(reply, buffer.Stopped):
            exchange.refusal = TaskRefused(
                f"the register did not run the task: its queue is stopped by failed task "
                f"{reply.tid:02X}; the command was not executed and may be sent again",
                command=exchange.command,
                maybe_executed=False,
            )
            self._outcome(b"", now, events)
        else:  # Pending, InProgress, Waiting
            exchange.phase = _Phase.WAIT
            exchange.poll_at = now + self.settings.poll

    def _outcome(self, answer: bytes, now: float, events: list[Event]) -> None:
        """The task ended: report it, its Ack deferred to the next Add (step 4) -- or, when an
        older Ack is still pending, free its slot now with a plain Ack, then report."""
        exchange = self._exchange
        assert exchange is not None
        exchange.answer = answer
        exchange.poll_at = None
        pending = self._pending_acks
        # Two may wait only when follow-ups may add a second task to a write (step 5).
        most = MAX_DEFERRED_ACKS if self.settings.follow_ups else 1
        if self._piggyback and (exchange.tid in pending or len(pending) < most):
            if exchange.tid not in pending:
                pending.append(exchange.tid)
            self._ack_carried[exchange.tid] = 0
            self._finish_ack(events, unresolved=False)
            return
        exchange.phase = _Phase.ACK
        self._send(buffer.Ack(exchange.tid).encode(), now)

    # -- internals: ending ------------------------------------------------------------------------

    def _finish(self, events: list[Event], event: Event) -> None:
        self._exchange = None
        self._request = None
        follow = self._follow
        if follow is not None and follow.request is not None and isinstance(event, CommandFailed):
            follow.in_order = False  # the command failed: the follow-up is not asked for
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
            self._finish(events, CommandFailed(exchange.command, exchange.refusal))
        else:
            self._finish(events, AnswerReceived(exchange.command, exchange.answer))

    def _fail(
        self,
        events: list[Event],
        error: type[LinkError],
        message: str,
        *,
        executed: bool,
        unresolved: int | None = None,
        resumable: bool = True,
    ) -> None:
        """End the exchange with ``error``; ``executed``: the device may have run the command."""
        exchange = self._exchange
        assert exchange is not None
        if unresolved is not None:
            self._unresolved = _Unresolved(
                unresolved,
                exchange.command,
                exchange.add_confirmed,
                resumable=resumable,
                owned=exchange.owned,
            )
        failure = error(message, command=exchange.command, maybe_executed=executed)
        self._finish(events, CommandFailed(exchange.command, failure))

    def _cut_off(
        self,
        events: list[Event],
        error: type[LinkError],
        cause: str,
        *,
        add_sent: bool = True,
        then: str = "the next command asks for it first; check the register before repeating "
        "this one",
    ) -> None:
        """End the exchange without the device: the known reply if only its Ack is missing,
        else ``error`` -- the task unresolved when a packet of its Add may have left."""
        exchange = self._exchange
        assert exchange is not None
        if exchange.phase is _Phase.ACK:
            self._finish_ack(events, unresolved=True)
            return
        written = exchange.phase in (_Phase.ADD, _Phase.WAIT) and add_sent
        consequence = f"; the register may have taken the command -- {then}"
        self._fail(
            events,
            error,
            cause + (consequence if written else "; the command was not sent"),
            executed=written,
            unresolved=exchange.tid if written else None,
        )
