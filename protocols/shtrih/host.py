"""The host end of a Shtrih-M v1 link: `ShtrihHostLink`, the driver's side of the wire.

The link rule (`kkt.protocols.shtrih.link`): the two ends of a wire share only framing, so the
host and the device are two classes, each a `kkt.protocols.line.LinkEnd`.

Exactly-once rules
------------------
A command frame is written once, and written again only after the device has said, on a quiet
line, that it holds nothing (ENQ -> NAK, then ``quiet`` seconds with no further byte).  Anything
unexpected -- a timeout, junk, a NAK to the frame, a frame where an ACK belonged -- first waits for
the line to fall quiet (late bytes are discarded), then asks with ENQ:

* NAK, and the line stays quiet: the device never took the frame -> it is sent again (up to
  ``max_resend`` times) or, if resending is off, `NotDelivered` with ``maybe_executed=False``;
* ACK: the device has the command; its answer is read, never the command re-sent;
* silence ``max_enq`` times: `NoResponse` with ``maybe_executed=True``.

With ``EnqMode.AUTO`` (the default) ENQ goes out at the first command and after trouble, not before
every command -- except when the previous answer could pass for an answer to the new command (the
same code, as consecutive FF46 lines that each answer ``FF 46 00``, or a short ``FF <err>`` before
another FF command) -- unless the new command is an idempotent query identical to the previous one
(should the device replay its previous answer, that is an answer to the very same query a moment
older, which costs freshness, not money). Skipping ENQ trusts that the host's last ACK arrived. If
it did not, and the next frame is lost too, the device still holds the previous answer and replays
it on ENQ (`kkt.protocols.shtrih.device`); when that answer cannot belong to the new command, the
host recognises it as stale -- only when it is a byte-exact copy of the previous answer and no ACK
to the new frame was seen -- confirms and skips it, and asks again. Any other answer with a foreign
code fails the command with `OutcomeUnknown`: two bit errors in one bit position pass the XOR
checksum, and a damaged answer of ours must never be taken for a stale one (that would send the
command twice). ``EnqMode.ALWAYS`` syncs before every command.

While an answer is awaited, the host asks with ENQ after ``probe`` seconds of silence; the device
answers ACK ("being prepared") or replays an answer the line lost, which is then collected at once.

A second copy of an answer (`HELD`): the answer to a closing command (FF45) is NAKed instead of
ACKed, so the device keeps it pending; an empty payload then asks with a bare ENQ, the device
answers ACK and the same answer again, and the host ACKs that copy.  The driver compares the two
copies: two bit flips in one column pass the XOR checksum, but the same damage twice,
independently, does not happen (`kkt.vendors.shtrih.ShtrihDevice.close_receipt`).  The next
command frame drops an answer still held (the device takes a new frame as "the host moved on").

Asking ahead: an ENQ the next exchange will need goes out in the same write as the ACK (or the
NAK) that ends this one -- the held answer's ENQ always (unless the answer is a refusal), a
sync's ENQ when the caller says the next command repeats this one's code (``sync_after``,
consecutive FF46 lines).  The device's reply waits in the port while the caller reads the answer
and builds its next frame, and the next exchange starts with that ENQ outstanding: the same bytes
in the same order as a sync started then, without a turn of the line spent on the host.  Whatever
the next command turns out to be, it starts in SYNC with that ENQ out (a frame never goes out
while an ENQ is unanswered), so a wrong guess costs time, never safety.  Only an ENQ already
written can have a reply: bytes read while it is still queued are ordinary line noise.

What no host can see: a device that executes a command and then loses power forgets the answer
and answers NAK; the link reports that command as not taken.  Money-moving callers therefore pass
``resend=False`` and confirm against the fiscal storage (its last document) before repeating.
Protocol v1 has no sequence numbers, so the rules above assume the line delivers bytes in order
and no later than ``ack + quiet`` seconds after they were sent.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import LinkError
from ..line import AnswerReceived, BadFrame, CommandFailed, Junk, LineNoise
from .frame import ACK, ENQ, NAK, Control, ControlByte, Frame, Token, encode_frame
from .link import (
    AnswerLost,
    EnqMode,
    Event,
    HostSettings,
    LinkReady,
    NoResponse,
    NotDelivered,
    OutcomeUnknown,
    ShtrihLinkEnd,
    StaleAnswer,
)

# Commands whose answer the host leaves pending at the device (NAK, not ACK) for one replay: the
# closing command's answer carries the fiscal data the driver trusts without reading them back.
HELD = frozenset({b"\xff\x45"})


class _Host(enum.Enum):
    IDLE = "idle"
    SYNC = "sync"  # ENQ before the frame; NAK -> send
    SEND = "send"  # frame written, waiting for ACK
    ANSWER = "answer"  # ACK seen (or ENQ -> ACK): reading the answer
    RECOVER = "recover"  # trouble after the frame: ENQ to learn whether it was taken
    CONFIRM_IDLE = "confirm-idle"  # ENQ -> NAK seen in RECOVER; waiting for a quiet line


@dataclass(slots=True)
class _Exchange:
    """The host's current command."""

    command: bytes  # empty for a bare sync
    frame: bytes
    answer_timeout: float
    resend: bool
    synced: bool = False  # the device was seen idle (ENQ -> NAK) before this frame was written
    resends: int = 0
    enq_tries: int = 0
    busy_seen: bool = False  # ENQ was answered ACK during sync: the device had work of its own
    answer_naks: int = 0
    extensions: int = 0
    answer_due: float = 0.0  # when the command's answer timeout runs out
    frame_acked: bool = False  # the device ACKed the frame last written
    give_up_at: float = float("inf")  # the hard bound of `HostSettings.exchange_limit`
    limit: float = float("inf")  # that bound's length, for messages
    noisy_since: float | None = None  # an ENQ has waited since then for a quiet line
    replay: bool = False  # a bare ENQ for the held answer's second copy (empty payload)
    sync_after: bool = False  # ENQ with the final ACK: the next command repeats this code


class ShtrihHostLink(ShtrihLinkEnd):
    """The host end of a Shtrih-M v1 link.  See the module docstring for the rules."""

    def __init__(self, settings: HostSettings | None = None) -> None:
        self.settings = settings or HostSettings()
        super().__init__(self.settings.byte)
        self._host = _Host.IDLE
        self._exchange: _Exchange | None = None
        self._synced = False
        self._last_answer: bytes | None = None
        self._last_command: bytes | None = None  # the command ``_last_answer`` answered
        self._enq_at: float | None = None  # an ENQ waits for the line to fall quiet
        self._enq_outstanding = False
        self._held: bytes | None = None  # an answer NAKed on purpose: pending at the device
        # An ENQ asked ahead (`_ask_ahead`): queued with the last exchange's final ACK or NAK,
        # then written (handed to the caller by `data_to_send`).  Only a written one can have
        # a reply: bytes read while it is merely queued came before it.
        self._ahead_queued = False
        self._asked_ahead = False

    def _deadlines(self) -> tuple[float | None, ...]:
        give_up = self._exchange.give_up_at if self._exchange is not None else None
        return self._deadline, self._enq_at, give_up

    def data_to_send(self) -> bytes:
        if self._ahead_queued:
            self._ahead_queued, self._asked_ahead = False, True
        return super().data_to_send()

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        if data and self._enq_at is not None:
            self._last_rx = now
            self._enq_at = max(self._enq_at, now + self.settings.quiet)
            events: list[Event] = []
            if self._line_never_quiet(now, events):
                return events  # the exchange failed: what arrived is not read
        return super().receive_data(data, now)

    def handle_timer(self, now: float) -> list[Event]:
        events: list[Event] = []
        dropped = self._late_partial(now)
        if dropped is not None:
            self._token(dropped, now, events)
        if self._enq_at is not None and now >= self._enq_at:
            self._enq_at = None
            if self._exchange is not None:
                self._exchange.noisy_since = None  # the line fell quiet
            self._send_enq(now)
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            self._host_timeout(now, events)
        exchange = self._exchange
        if exchange is not None and now >= exchange.give_up_at:
            # A safety net: no sequence of bytes may keep an exchange alive past its bound.
            self._fail(
                events,
                NoResponse(
                    f"the exchange did not end within its bound of {exchange.limit:.0f} s; "
                    "check the line and the register before repeating the command",
                    command=exchange.command,
                    maybe_executed=self._host is not _Host.SYNC,
                ),
            )
        return events

    # -- API ------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A command (or sync) is in progress."""
        return self._host is not _Host.IDLE

    def send_command(
        self,
        payload: bytes,
        now: float,
        *,
        answer_timeout: float | None = None,
        resend: bool = True,
        idempotent: bool = False,
        sync_after: bool = False,
    ) -> None:
        """start one command.  Its outcome comes back as `AnswerReceived` or `CommandFailed`.

        ``resend=False`` forbids even the safe resend after a confirmed non-delivery: the command
        then fails with `NotDelivered` and the caller decides (useful for money-moving commands
        whose caller checks the fiscal storage first).  ``idempotent=True`` says executing the
        command twice changes nothing (a status query): AUTO mode then skips the ENQ it would
        send before the very same query again (byte for byte: "document 41" is not "document
        42").  Should the device replay its previous answer, the host takes it: an answer to the
        same query, a moment older -- a loss of freshness, never a wrong or second answer.
        ``sync_after=True``: the next command repeats this one's code, so its sync's ENQ goes
        out with this one's final ACK (asking ahead, see the module docstring).
        """
        if not payload and self._held is not None:
            self._replay(answer_timeout, now)  # otherwise an empty frame: `FrameError`
            return
        self._held = None  # the new frame drops an answer still pending at the device
        self._begin(payload, answer_timeout, resend, now)
        assert self._exchange is not None
        self._exchange.sync_after = sync_after
        if (
            not (self._asked_ahead or self._ahead_queued)  # its reply first: start in SYNC
            and self._synced
            and self.settings.enq_mode is EnqMode.AUTO
            and (
                (idempotent and payload == self._last_command)
                or not (self._last_answer and _answer_matches(payload, self._last_answer))
            )
        ):
            self._write_frame(now)
        else:
            self._start_sync(now)

    def _replay(self, answer_timeout: float | None, now: float) -> None:
        """The held answer's second copy: a bare ENQ, the device's ACK and the answer again.
        A device that no longer holds it says NAK: `AnswerLost`, the caller's "no copy"."""
        self._begin(None, answer_timeout, True, now)
        exchange = self._exchange
        assert exchange is not None
        exchange.replay = exchange.frame_acked = True
        exchange.answer_due = now + exchange.answer_timeout
        self._host = _Host.ANSWER
        self._send_enq(now)  # unless it went out with the NAK (`_ask_ahead`)

    def sync(self, now: float) -> None:
        """ENQ until the device holds no answer; ends with `LinkReady` or `CommandFailed`."""
        self._begin(None, None, False, now)
        self._start_sync(now)

    def forget_sync(self) -> None:
        """The next command starts with ENQ (call after reopening the port)."""
        self._synced = False
        self._ahead_queued = self._asked_ahead = False  # that ENQ went to the old port

    def _begin(
        self, command: bytes | None, answer_timeout: float | None, resend: bool, now: float
    ) -> None:
        """A new exchange for ``command`` (None: a bare sync), bounded by `exchange_limit`."""
        if self._host is not _Host.IDLE:
            raise RuntimeError("a command is already in progress on this link; wait for its event")
        timeout = self.settings.answer if answer_timeout is None else answer_timeout
        if command is None:
            exchange = _Exchange(b"", b"", timeout, resend)
        else:
            exchange = _Exchange(command, encode_frame(command), timeout, resend)
        exchange.limit = self.settings.exchange_limit(timeout)
        exchange.give_up_at = now + exchange.limit
        self._exchange = exchange

    # -- internals -------------------------------------------------------------------------

    def _start_sync(self, now: float) -> None:
        self._host = _Host.SYNC
        self._send_enq(now)

    def _send_enq(self, now: float) -> None:
        if self._asked_ahead or self._ahead_queued:
            # It is out already (or queued to go first), with the last exchange's final ACK or
            # NAK; its reply may be waiting in the port.  ``ack`` from now: at least its time.
            self._ahead_queued = self._asked_ahead = False
        else:
            self._out.append(ENQ)
        self._enq_outstanding = True
        self._deadline = now + self.settings.ack

    def _ask_ahead(self) -> None:
        """ENQ now, with the final ACK or NAK of the exchange just ended: the next exchange
        starts with it outstanding (`_send_enq`)."""
        self._out.append(ENQ)
        self._ahead_queued = True

    def _schedule_enq(self, now: float) -> None:
        """Send ENQ once nothing has arrived for ``quiet`` seconds."""
        self._deadline = None
        self._enq_outstanding = False
        self._enq_at = max(now, self._last_rx) + self.settings.quiet
        if self._exchange is not None and self._exchange.noisy_since is None:
            self._exchange.noisy_since = now

    def _line_never_quiet(self, now: float, events: list[Event]) -> bool:
        """Fail the exchange when bytes keep coming and the line never falls quiet for ENQ."""
        exchange = self._exchange
        if exchange is None or exchange.noisy_since is None:
            return False
        if now - exchange.noisy_since <= self.settings.noise_limit():
            return False
        written = self._host is not _Host.SYNC
        cause = (
            f"the line has not fallen quiet for {now - exchange.noisy_since:.1f} s: another "
            "device is talking on this port, or the baud rate is wrong"
        )
        self._fail(events, _no_response(cause, exchange.command, written=written))
        return True

    def _write_frame(self, now: float) -> None:
        exchange = self._exchange
        assert exchange is not None
        self._host = _Host.SEND
        exchange.frame_acked = False
        self._out += exchange.frame
        self._enq_outstanding = False
        self._deadline = now + self.settings.ack

    def _finish(self, events: list[Event], event: Event) -> None:
        self._host = _Host.IDLE
        self._exchange = None
        self._deadline = None
        self._enq_at = None
        self._enq_outstanding = False
        events.append(event)

    def _fail(self, events: list[Event], error: LinkError) -> None:
        self._synced = False
        exchange = self._exchange
        self._finish(events, CommandFailed(exchange.command if exchange else b"", error))

    def _taken_then_lost(self, events: list[Event], error: type[LinkError], cause: str) -> None:
        """The device has the command, but its outcome cannot be read: it may have run."""
        exchange = self._exchange
        assert exchange is not None
        self._fail(events, error(cause, command=exchange.command, maybe_executed=True))

    def _count_enq(self, events: list[Event]) -> bool:
        """Count one more ENQ round; on the last allowed one fail and return False."""
        exchange = self._exchange
        assert exchange is not None
        exchange.enq_tries += 1
        if exchange.enq_tries < self.settings.max_enq:
            return True
        written = self._host is not _Host.SYNC
        if not written and exchange.busy_seen:
            cause = (
                f"the register stayed busy with an earlier command through {exchange.enq_tries} "
                "ENQ rounds (it answers ACK but sends no answer); wait for it to finish"
            )
        else:
            cause = (
                f"no answer to ENQ after {exchange.enq_tries} tries: check the cable or network, "
                "the port and baud rate, and that the register is on"
            )
        self._fail(events, _no_response(cause, exchange.command, written=written))
        return False

    def _recover(self, now: float, events: list[Event]) -> None:
        """Trouble after the frame was written: ask, on a quiet line, whether it was taken."""
        exchange = self._exchange
        assert exchange is not None
        if self._host in (_Host.SEND, _Host.RECOVER, _Host.CONFIRM_IDLE):
            # The first trouble after writing the frame costs no ENQ try; every later one does.
            if self._host is not _Host.SEND and not self._count_enq(events):
                return
            self._host = _Host.RECOVER
        self._schedule_enq(now)

    def _host_timeout(self, now: float, events: list[Event]) -> None:
        state = self._host
        exchange = self._exchange
        if exchange is None:
            return
        if state is _Host.SYNC:
            if self._count_enq(events):
                self._schedule_enq(now)
        elif state in (_Host.SEND, _Host.RECOVER):
            self._recover(now, events)
        elif state is _Host.CONFIRM_IDLE:
            if self._deframer.has_partial:
                self._recover(now, events)  # a frame began after the NAK
            else:
                self._not_taken(now, events)
        elif state is _Host.ANSWER:
            if self._enq_outstanding:
                # ENQ asked "is the answer coming?" and got nothing back.
                if self._count_enq(events):
                    self._schedule_enq(now)
            elif now < exchange.answer_due:
                self._send_enq(now)  # a probe: is the answer still being prepared?
            else:
                # No answer within the command's time: ask whether it is still being prepared.
                exchange.extensions += 1
                if exchange.extensions > self.settings.max_enq:
                    self._taken_then_lost(
                        events,
                        AnswerLost,
                        "the register kept saying its answer is being prepared; it may be "
                        "printing or stuck -- check its state before repeating the command",
                    )
                else:
                    self._send_enq(now)

    def _answer_coming(self, now: float) -> None:
        """The device has the command (it ACKed): read its answer, within the command's time."""
        self._host = _Host.ANSWER
        self._enq_outstanding = False
        self._wait_answer(now, fresh=True)

    def _wait_answer(self, now: float, *, fresh: bool) -> None:
        """Wait for the answer; ``fresh`` starts the command's answer time over."""
        exchange = self._exchange
        assert exchange is not None
        if fresh:
            exchange.answer_due = now + exchange.answer_timeout
        self._deadline = min(exchange.answer_due, now + self.settings.probe)

    def _not_taken(self, now: float, events: list[Event]) -> None:
        """ENQ -> NAK on a quiet line after the frame was written: the device never took it."""
        exchange = self._exchange
        assert exchange is not None
        self._synced = True
        if exchange.resend and exchange.resends < self.settings.max_resend:
            exchange.resends += 1
            exchange.enq_tries = 0  # a new round: max_resend, not max_enq, bounds the resends
            exchange.synced = True
            self._write_frame(now)
            return
        self._fail(
            events,
            NotDelivered(
                "the register did not take the command"
                + (f" after {exchange.resends + 1} sends" if exchange.resend else "")
                + "; it was not executed and may be sent again (check the line if this repeats)",
                command=exchange.command,
                maybe_executed=False,
            ),
        )

    def _token(self, token: Token, now: float, events: list[Event]) -> None:
        state = self._host
        if isinstance(token, Control) and token.byte is ControlByte.FILLER:
            return  # network models send 0xFF after our ACK; skip it wherever it lands
        if state is _Host.IDLE:
            self._host_idle_token(token, events)
            return
        exchange = self._exchange
        assert exchange is not None
        if self._enq_at is not None and state is not _Host.ANSWER:
            # Waiting for a quiet line before asking: whatever arrives now is history.
            events.append(LineNoise(token))
            return
        if state is _Host.SYNC:
            self._host_sync_token(token, now, events)
        elif state is _Host.SEND:
            if isinstance(token, Control) and token.byte is ControlByte.ACK:
                exchange.frame_acked = True
                self._answer_coming(now)
            else:
                # A NAK, junk, or a frame where the ACK belonged: never resend on that alone.
                events.append(LineNoise(token))
                self._recover(now, events)
        elif state is _Host.RECOVER:
            # The answer to our ENQ: NAK -> wait for a quiet line; ACK -> read the answer.
            reply = token.byte if isinstance(token, Control) and self._enq_outstanding else None
            if reply is ControlByte.NAK:
                self._host = _Host.CONFIRM_IDLE
                self._enq_outstanding = False
                self._deadline = now + self.settings.quiet
            elif reply is ControlByte.ACK:
                self._answer_coming(now)
            else:
                events.append(LineNoise(token))
                self._recover(now, events)
        elif state is _Host.CONFIRM_IDLE:
            # Bytes after the NAK: it was not a clean "idle" (maybe part of a damaged frame).
            events.append(LineNoise(token))
            self._recover(now, events)
        elif state is _Host.ANSWER:
            self._host_answer_token(token, now, events)

    def _host_idle_token(self, token: Token, events: list[Event]) -> None:
        if self._asked_ahead:
            # The reply to the ENQ asked ahead, read between two exchanges.  NAK: the device is
            # idle and holds no answer, so none can be replayed for the next command -- it may
            # go straight.  Anything else: the next command syncs from the start.
            self._asked_ahead = False
            if isinstance(token, Control) and token.byte is ControlByte.NAK:
                self._synced = True
                self._last_answer = None
                return
            self._synced = False
        if isinstance(token, Frame) and token.payload == self._last_answer:
            # The device repeats the answer we already have (our ACK was lost): confirm it again.
            self._out.append(ACK)
        else:
            self._synced = False  # something we did not ask for: ENQ before the next command
        events.append(LineNoise(token))

    def _host_sync_token(self, token: Token, now: float, events: list[Event]) -> None:
        exchange = self._exchange
        assert exchange is not None
        if isinstance(token, Control) and self._enq_outstanding:
            if token.byte is ControlByte.NAK:
                self._synced = True
                if exchange.command:
                    exchange.synced = True
                    self._write_frame(now)
                else:
                    self._finish(events, LinkReady())
                return
            if token.byte is ControlByte.ACK:
                # The device holds an answer to something earlier: read it, confirm, ask again.
                exchange.busy_seen = True
                self._enq_outstanding = False
                self._deadline = now + exchange.answer_timeout
                return
        if isinstance(token, Frame) and not self._enq_outstanding:
            self._out.append(ACK)
            events.append(StaleAnswer(token.payload))
            self._schedule_enq(now)  # let any reply still in flight arrive first
            return
        events.append(LineNoise(token))
        if self._count_enq(events):
            self._schedule_enq(now)

    def _host_answer_token(self, token: Token, now: float, events: list[Event]) -> None:
        exchange = self._exchange
        assert exchange is not None
        if isinstance(token, Frame):
            self._enq_at = None
            self._host_answer_frame(token.payload, now, events)
            return
        if isinstance(token, Control):
            if token.byte is ControlByte.ACK and self._enq_outstanding:
                # "The answer is being prepared": keep waiting; past the command's time, wait
                # that time once more (counted in `_host_timeout`).
                self._enq_outstanding = False
                self._wait_answer(now, fresh=now >= exchange.answer_due)
                return
            if token.byte is ControlByte.NAK and self._enq_outstanding:
                self._taken_then_lost(
                    events,
                    AnswerLost,
                    "the register took the command but no longer holds its answer (was it "
                    "restarted?); check its state, e.g. the last fiscal document, before "
                    "repeating the command",
                )
                return
        events.append(LineNoise(token))
        if isinstance(token, BadFrame | Junk) and self._enq_at is None:
            # A damaged answer: NAK it and ask for the repeat once the line is quiet.
            exchange.answer_naks += 1
            if exchange.answer_naks > self.settings.max_enq:
                self._taken_then_lost(
                    events,
                    AnswerLost,
                    f"the answer arrived damaged {exchange.answer_naks} times; the command "
                    "was executed or is running -- check the line and the register's state",
                )
                return
            if isinstance(token, BadFrame):
                self._out.append(NAK)
            self._schedule_enq(now)
            self._deadline = now + exchange.answer_timeout

    def _host_answer_frame(self, answer: bytes, now: float, events: list[Event]) -> None:
        exchange = self._exchange
        assert exchange is not None
        if exchange.replay:
            # The held answer's second copy, byte for byte what the device still holds: the
            # caller compares it with the first.  Confirmed now; nothing is held any more.
            self._out.append(ACK)
            self._held = None
            self._synced = not self._enq_outstanding
            self._last_answer = answer
            self._finish(events, AnswerReceived(b"", answer))
            return
        held = exchange.command[:2] in HELD and _answer_matches(exchange.command, answer)
        if held:
            self._out.append(NAK)  # held for its second copy (`HELD`); not a damaged answer
            self._held = answer
        else:
            self._out.append(ACK)
        if not exchange.command:
            # A bare sync read a stale answer: confirmed, now ask again.
            events.append(StaleAnswer(answer))
            self._host = _Host.SYNC
            self._schedule_enq(now)
            return
        if not _answer_matches(exchange.command, answer):
            if not exchange.synced and not exchange.frame_acked and answer == self._last_answer:
                # No ENQ preceded our frame, no ACK to it was seen, and the device replays the
                # previous answer: it never took our frame (taking a frame drops the old
                # answer).  Only a byte-exact replay counts -- an answer merely carrying another
                # code may be ours, damaged in a way the XOR checksum cannot see.  Ask again.
                events.append(StaleAnswer(answer))
                self._host = _Host.RECOVER
                self._schedule_enq(now)
                return
            self._taken_then_lost(
                events,
                OutcomeUnknown,
                f"answer {answer[:2].hex(' ')} does not belong to command "
                f"{exchange.command[:2].hex(' ')} (a frame damaged past its checksum?); "
                "check the register's state before repeating the command",
            )
            return
        # If our ENQ crossed the answer on the line, the device will answer it (ACK and the same
        # answer again): the next command must sync first instead of taking that ACK for its own.
        self._synced = not self._enq_outstanding
        self._last_answer = answer
        self._last_command = exchange.command
        self._finish(events, AnswerReceived(exchange.command, answer))
        # The copy's ENQ (of an answer that is no refusal: only those are read twice), or the
        # next FF46's sync, goes out now.
        if ((held and answer[2:3] == b"\x00") or exchange.sync_after) and self._synced:
            self._ask_ahead()


def _no_response(cause: str, command: bytes, *, written: bool) -> NoResponse:
    """``cause``, and what it means for the command: perhaps executed once its frame went out."""
    consequence = (
        "; the command may have been executed -- check the register before repeating it"
        if written
        else "; the command was not sent"
    )
    return NoResponse(cause + consequence, command=command, maybe_executed=written)


def _answer_matches(command: bytes, answer: bytes) -> bool:
    """Does ``answer`` carry ``command``'s code?  ``FF <err>`` short answers match FF commands."""
    if not answer:
        return False
    if command[0] == 0xFF:
        if answer[0] != 0xFF or len(answer) < 2:
            return False
        return answer[1] == command[1] or len(answer) == 2
    return answer[0] == command[0]
