"""Unit tests of the ATOL v3 task-buffer links, one end at a time, on scripted packets.

Each host test plays the register by hand: it reads the packets the link writes and feeds back
the replies a register would give.  Each device test plays the host.  Time is virtual: a ``now``
float that only moves forward, timers fired at ``get_timer()``.  Hypothesis checks that the way
a stream is cut into chunks changes nothing and that garbage never raises.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kkt.protocols.atol.buffer import (
    Abort,
    Ack,
    AckAdd,
    AckAddReply,
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
from kkt.protocols.atol.device import AtolDeviceLink
from kkt.protocols.atol.host import HOST_FLAGS, AtolHostLink
from kkt.protocols.atol.link import (
    AnswerTimeout,
    DeviceSettings,
    Event,
    ExchangeTimeout,
    HostSettings,
    NoReply,
    TaskLost,
    TaskReady,
    TaskRefused,
)
from kkt.protocols.atol.packet import ASYNC_ID, Packet, PacketDeframer, encode_packet
from kkt.protocols.atol.tasks import Task, TaskBuffer, TaskState, reply_is_error
from kkt.protocols.errors import CodecError
from kkt.protocols.line import AnswerReceived, CommandFailed, Junk, LineNoise

EVENT_TYPES = (AnswerReceived, CommandFailed, TaskReady, LineNoise)
CMD = b"\x00\x00\x80\x01"  # pwd 0000, a made-up code 80, one parameter
CMD2 = b"\x00\x00\x80\x02"
REPLY = b"\x55\x00\x00\x01"
# The flow these tests script opens with an Abort (off by default: see `HostSettings`).
SETTINGS = HostSettings(
    packet=0.5, packet_tries=3, poll=0.2, abort_on_open=True, piggyback_ack=False
)
# The same, each Ack riding on the next Add (AckAdd, C5h): the default.
PIGGYBACK = HostSettings(packet=0.5, packet_tries=3, poll=0.2, abort_on_open=True)


def packets(data: bytes) -> list[Packet]:
    tokens, rest = PacketDeframer().read_all(data)
    assert not rest and all(isinstance(t, Packet) for t in tokens), tokens
    return [t for t in tokens if isinstance(t, Packet)]


def reply(packet_id: int, status: BufferReply) -> bytes:
    return encode_packet(packet_id, status.encode())


class Host:
    """An `AtolHostLink` and a virtual clock; `sent` decodes what it wrote."""

    def __init__(self, settings: HostSettings = SETTINGS, first_tid: int = 0) -> None:
        # A fresh TaskBuffer on the other end: every TID is known free.
        self.link = AtolHostLink(settings, first_tid=first_tid, known_free=range(0xE0))
        self.now = 0.0
        self.events: list[Event] = []

    def send(self, command: bytes = CMD, *, timeout: float = 5.0, repeatable: bool = False) -> None:
        self.link.send_command(command, self.now, answer_timeout=timeout, repeatable=repeatable)

    def sent(self) -> list[tuple[int, object]]:
        """(packet id, decoded buffer command) for each packet written since the last call."""
        return [(p.id, decode_buffer_command(p.data)) for p in packets(self.link.data_to_send())]

    def one(self) -> tuple[int, object]:
        sent = self.sent()
        assert len(sent) == 1, sent
        return sent[0]

    def feed(self, data: bytes) -> list[Event]:
        events = self.link.receive_data(data, self.now)
        self.events += events
        return events

    def answer(self, status: BufferReply) -> list[Event]:
        """Reply to the packet the link wrote last (read with `one`)."""
        return self.feed(reply(self._last, status))

    def answer_both(self, ack: StatusCode, status: BufferReply) -> list[Event]:
        """Reply to the AckAdd the link wrote last: the Ack's status, then the Add's reply."""
        return self.feed(encode_packet(self._last, AckAddReply(ack, status).encode()))

    def expect(self, command: object) -> int:
        packet_id, sent = self.one()
        assert sent == command
        self._last = packet_id
        return packet_id

    def tick(self) -> list[Event]:
        """Jump to the next timer and fire it."""
        timer = self.link.get_timer()
        assert timer is not None
        self.now = max(self.now, timer)
        events = self.link.handle_timer(self.now)
        self.events += events
        return events

    _last = 0

    def outcome(self) -> AnswerReceived | CommandFailed:
        ends = [e for e in self.events if isinstance(e, AnswerReceived | CommandFailed)]
        assert len(ends) == 1, self.events
        self.events.clear()
        return ends[0]


def opened(host: Host) -> None:
    """The fresh link's Abort, answered."""
    host.expect(Abort())
    host.answer(Result())


# -- host: the happy paths -----------------------------------------------------------------------


def test_first_command_aborts_then_adds_then_acks_with_consecutive_packet_ids() -> None:
    host = Host()
    host.send()
    assert host.link.data_to_send() == bytes.fromhex("FE 01 00 00 C4") + bytes(
        (encode_packet(0, b"\xc4")[-1],)
    )
    host.feed(reply(0, Result()))
    assert host.expect(Add(0, HOST_FLAGS, CMD)) == 1
    host.answer(Result(REPLY))
    assert host.expect(Ack(0)) == 2
    assert not host.events
    host.answer(Result())
    assert host.outcome() == AnswerReceived(CMD, REPLY)
    assert not host.link.busy and host.link.get_timer() is None
    # The next command: no Abort, the next packet ID and the next TID.
    host.send(CMD2)
    assert host.expect(Add(1, HOST_FLAGS, CMD2)) == 3


def test_an_error_reply_is_an_answer_for_the_command_layer() -> None:
    host = Host()
    host.send()
    opened(host)
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.answer(Error(b"\x55\x8c\x00"))
    host.expect(Ack(0))
    host.answer(Error())
    assert host.outcome() == AnswerReceived(CMD, b"\x55\x8c\x00")


@pytest.mark.parametrize("status", [Pending(), InProgress(), Waiting()])
def test_a_queued_task_ends_with_an_async_packet_for_its_tid(status: BufferReply) -> None:
    host = Host()
    host.send()
    opened(host)
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.answer(status)
    assert not host.link.data_to_send()
    # Another task's F0 and an F0 that is no result are not ours.
    assert isinstance(
        host.feed(encode_packet(ASYNC_ID, AsyncResult(9, b"x").encode()))[0], LineNoise
    )
    assert isinstance(host.feed(encode_packet(ASYNC_ID, Pending().encode()))[0], LineNoise)
    host.feed(encode_packet(ASYNC_ID, AsyncError(0, b"\x55\x67\x00").encode()))
    host.expect(Ack(0))
    host.answer(Result())
    assert host.outcome() == AnswerReceived(CMD, b"\x55\x67\x00")


def test_a_queued_task_is_polled_with_req_until_it_ends() -> None:
    host = Host()
    host.send()
    opened(host)
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.answer(Pending())
    host.tick()  # the poll interval
    host.expect(Req(0))
    host.answer(InProgress())
    host.tick()
    host.expect(Req(0))
    host.answer(Result(REPLY))
    host.expect(Ack(0))
    host.answer(NotFound())  # "already free" (a repeated Ack): fine
    assert host.outcome() == AnswerReceived(CMD, REPLY)


def test_packet_ids_wrap_after_df_and_tids_too() -> None:
    """One packet per command (each Ack rides on the next Add): IDs and TIDs wrap together."""
    host = Host(HostSettings(abort_on_open=False))
    ids = []
    for number in range(0xE0 + 4):
        host.send()
        tid = number % 0xE0
        if number:
            ids.append(host.expect(AckAdd((number - 1) % 0xE0, HOST_FLAGS, tid, CMD)))
            host.answer_both(StatusCode.RESULT, Result(REPLY))
        else:
            ids.append(host.expect(Add(tid, HOST_FLAGS, CMD)))
            host.answer(Result(REPLY))
        assert host.outcome() == AnswerReceived(CMD, REPLY)
        assert host.link.pending_ack == tid
    assert ids[:0xE0] == list(range(0xE0)) and ids[0xE0:] == [0, 1, 2, 3]


def test_tids_start_where_asked_and_wrap_after_df() -> None:
    host = Host(HostSettings(abort_on_open=False, piggyback_ack=False), first_tid=0xDE)
    for tid in (0xDE, 0xDF, 0x00):
        host.send()
        host.expect(Add(tid, HOST_FLAGS, CMD))
        host.answer(Result(REPLY))
        host.expect(Ack(tid))
        host.answer(Result())
        host.outcome()
    with pytest.raises(ValueError, match="first_tid"):
        AtolHostLink(SETTINGS, first_tid=0xE0)


# -- host: the line --------------------------------------------------------------------------


def test_no_reply_resends_the_identical_packet_then_fails_as_not_sent() -> None:
    host = Host()
    host.send()
    first = host.link.data_to_send()
    for _ in range(SETTINGS.packet_tries - 1):
        assert not host.tick()
        assert host.link.data_to_send() == first
    events = host.tick()
    assert not host.link.data_to_send()
    (failed,) = events
    assert isinstance(failed, CommandFailed) and isinstance(failed.error, NoReply)
    assert not failed.error.maybe_executed  # only the Abort left
    assert "not sent" in str(failed.error)


def test_no_reply_to_the_add_may_have_executed_and_leaves_the_tid_unresolved() -> None:
    host = Host()
    host.send()
    opened(host)
    host.expect(Add(0, HOST_FLAGS, CMD))
    for _ in range(SETTINGS.packet_tries):
        host.tick()
    failed = host.outcome()
    assert isinstance(failed, CommandFailed) and failed.error.maybe_executed
    assert failed.error.command == CMD
    assert host.link.unresolved_tid == 0


def test_the_device_asks_for_a_repeat_with_an_empty_packet() -> None:
    host = Host()
    host.send()
    first = host.link.data_to_send()
    host.feed(encode_packet(0x55, b""))  # another ID: not ours
    assert not host.link.data_to_send()
    host.feed(encode_packet(0, b""))
    assert host.link.data_to_send() == first


def test_stale_and_corrupt_replies_are_ignored() -> None:
    host = Host()
    host.send()
    host.link.data_to_send()
    events = host.feed(reply(0x30, Result()) + b"\xfe\x01\x00\x00\xc4\x00" + b"junk")
    assert all(isinstance(e, LineNoise) for e in events) and len(events) == 3
    assert not host.link.data_to_send()
    host.feed(reply(0, Result()))  # the real one still counts
    assert host.sent()[0][1] == Add(0, HOST_FLAGS, CMD)


def test_a_late_reply_to_a_resent_packet_is_taken_once() -> None:
    host = Host()
    host.send()
    opened(host)
    packet_id = host.expect(Add(0, HOST_FLAGS, CMD))
    host.tick()
    assert host.one() == (packet_id, Add(0, HOST_FLAGS, CMD))
    host.answer(Result(REPLY))
    host.answer(Result(REPLY))  # the reply to the second copy: now stale
    assert host.expect(Ack(0)) == packet_id + 1


# -- host: buffer replies ----------------------------------------------------------------------


def test_already_exists_to_a_resent_add_means_the_first_copy_was_taken() -> None:
    host = Host()
    host.send()
    opened(host)
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.tick()
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.answer(AlreadyExists())
    host.expect(Req(0))
    host.answer(Result(REPLY))
    host.expect(Ack(0))
    host.answer(Result())
    assert host.outcome() == AnswerReceived(CMD, REPLY)


def test_already_exists_to_a_first_add_is_someone_elses_tid() -> None:
    host = Host()
    host.send()
    opened(host)
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.answer(AlreadyExists())
    host.expect(Add(1, HOST_FLAGS, CMD))  # never Req: that result is not ours
    host.answer(Result(REPLY))
    host.expect(Ack(1))
    host.answer(Result())
    assert host.outcome() == AnswerReceived(CMD, REPLY)


def test_tid_clashes_are_bounded() -> None:
    host = Host()
    host.send()
    opened(host)
    for tid in range(SETTINGS.max_tid_changes + 1):
        host.expect(Add(tid, HOST_FLAGS, CMD))
        host.answer(AlreadyExists())
    failed = host.outcome()
    assert isinstance(failed, CommandFailed) and isinstance(failed.error, TaskRefused)
    assert not failed.error.maybe_executed


def test_illegal_value_was_certainly_not_executed() -> None:
    host = Host()
    host.send()
    opened(host)
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.answer(IllegalValue())
    failed = host.outcome()
    assert isinstance(failed, CommandFailed) and isinstance(failed.error, TaskRefused)
    assert not failed.error.maybe_executed and host.link.unresolved_tid is None


def test_a_full_buffer_is_cleared_once_and_the_task_added_again() -> None:
    """Results nobody collects fill the buffer (no Abort on opening); the first B1 clears it."""
    host = Host()
    host.send()
    opened(host)
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.answer(Overflow())
    host.expect(Abort())
    host.answer(Result())
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.answer(Overflow())  # full again at once: give up, certainly not executed
    failed = host.outcome()
    assert isinstance(failed, CommandFailed) and isinstance(failed.error, TaskRefused)
    assert not failed.error.maybe_executed and host.link.unresolved_tid is None


def test_a_fresh_link_sends_no_abort_by_default() -> None:
    """An Abort would drop results another program on the register still has to collect."""
    host = Host(HostSettings(packet=0.5, packet_tries=3, poll=0.2))
    host.send()
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.answer(Result(REPLY))
    assert host.outcome() == AnswerReceived(CMD, REPLY)  # its Ack rides on the next Add


def test_a_refusal_of_a_resent_add_proves_nothing_about_the_first_copy() -> None:
    host = Host()
    host.send()
    opened(host)
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.tick()
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.answer(IllegalValue())
    failed = host.outcome()
    assert isinstance(failed, CommandFailed) and failed.error.maybe_executed
    assert host.link.unresolved_tid == 0


def test_stopped_is_acked_and_reported_as_not_executed() -> None:
    host = Host()
    host.send()
    opened(host)
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.answer(Stopped(0x33))
    host.expect(Ack(0))
    host.answer(Stopped(0x33))
    failed = host.outcome()
    assert isinstance(failed, CommandFailed) and isinstance(failed.error, TaskRefused)
    assert not failed.error.maybe_executed and "33" in str(failed.error)


def test_not_found_for_an_add_never_confirmed_adds_a_query_again() -> None:
    """Zzzzipper's rule (AtolTaskLayer.cpp): after a reconnect, Req; B3 -> Add again -- kept for
    queries only, which may run twice."""
    host = Host()
    host.send(repeatable=True)
    opened(host)
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.link.reconnected(host.now)  # the Add may or may not have arrived
    host.expect(Req(0))
    host.answer(NotFound())
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.answer(Result(REPLY))
    host.expect(Ack(0))
    host.answer(Result())
    assert host.outcome() == AnswerReceived(CMD, REPLY)


def test_not_found_never_adds_a_state_changing_command_again() -> None:
    """B3 cannot tell "never arrived" from "ran, and its result was wiped" (a restart, another
    host's Abort): a cash-in or a payment added again would run twice.  The caller decides."""
    host = Host()
    host.send()
    opened(host)
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.link.reconnected(host.now)
    host.expect(Req(0))
    host.answer(NotFound())
    failed = host.outcome()
    assert isinstance(failed, CommandFailed) and isinstance(failed.error, TaskLost)
    assert failed.error.maybe_executed
    assert host.sent() == []  # no Add again


def test_a_reconnect_asks_for_a_task_that_arrived() -> None:
    host = Host()
    host.send()
    opened(host)
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.link.reconnected(host.now)
    host.expect(Req(0))
    host.answer(Result(REPLY))
    host.expect(Ack(0))
    host.answer(Result())
    assert host.outcome() == AnswerReceived(CMD, REPLY)


@pytest.mark.parametrize("repeatable", [False, True])
def test_a_confirmed_task_the_device_forgot(repeatable: bool) -> None:
    host = Host()
    host.send(repeatable=repeatable)
    opened(host)
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.answer(Pending())
    host.tick()
    host.expect(Req(0))
    host.answer(NotFound())  # restarted, or another host aborted
    if repeatable:
        host.expect(Add(0, HOST_FLAGS, CMD))  # a query may simply run again
        return
    failed = host.outcome()
    assert isinstance(failed, CommandFailed) and isinstance(failed.error, TaskLost)
    assert failed.error.maybe_executed


def test_abort_naming_a_running_task_is_fine() -> None:
    host = Host()
    host.send()
    host.expect(Abort())
    host.answer(InProgress(0x42))
    host.expect(Add(0, HOST_FLAGS, CMD))


def test_abort_on_open_can_be_switched_off() -> None:
    host = Host(HostSettings(abort_on_open=False))
    host.send()
    host.expect(Add(0, HOST_FLAGS, CMD))


# -- host: unresolved tasks ----------------------------------------------------------------------


def _timed_out(host: Host) -> None:
    """A command whose task outlives its answer time: TID 0 unresolved."""
    host.send(timeout=1.0)
    opened(host)
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.answer(InProgress())
    while not host.events:
        host.tick()
        for packet_id, sent in host.sent():
            assert sent == Req(0)
            host.feed(reply(packet_id, InProgress()))
    failed = host.outcome()
    assert isinstance(failed, CommandFailed) and isinstance(failed.error, AnswerTimeout)
    assert failed.error.maybe_executed and host.link.unresolved_tid == 0


def test_the_next_command_settles_an_unresolved_tid_first() -> None:
    host = Host()
    _timed_out(host)
    host.send(CMD2)
    host.expect(Req(0))  # no Abort: that would clear the very task
    host.answer(InProgress())
    host.tick()
    host.expect(Req(0))
    host.answer(Result(REPLY))
    host.expect(Ack(0))
    host.answer(Result())
    assert host.link.unresolved_tid is None
    host.expect(Add(1, HOST_FLAGS, CMD2))


def test_settling_a_tid_the_device_does_not_hold() -> None:
    host = Host()
    _timed_out(host)
    host.send(CMD2)
    host.expect(Req(0))
    host.answer(NotFound())
    host.expect(Add(1, HOST_FLAGS, CMD2))


def test_an_earlier_task_still_running_fails_the_new_command_as_not_sent() -> None:
    host = Host()
    _timed_out(host)
    host.send(CMD2, timeout=1.0)
    host.expect(Req(0))
    host.answer(InProgress())
    while not host.events:
        host.tick()
        for packet_id, sent in host.sent():
            assert sent == Req(0)
            host.feed(reply(packet_id, InProgress()))
    failed = host.outcome()
    assert isinstance(failed, CommandFailed) and not failed.error.maybe_executed
    assert host.link.unresolved_tid == 0


def test_the_same_command_again_resumes_its_task() -> None:
    host = Host()
    _timed_out(host)
    host.send(CMD)  # the caller retries
    host.expect(Req(0))
    host.answer(Result(REPLY))
    host.expect(Ack(0))
    host.answer(Result())
    assert host.outcome() == AnswerReceived(CMD, REPLY)


def test_an_ack_without_reply_still_delivers_the_answer() -> None:
    host = Host()
    host.send()
    opened(host)
    host.expect(Add(0, HOST_FLAGS, CMD))
    host.answer(Result(REPLY))
    host.expect(Ack(0))
    for _ in range(SETTINGS.packet_tries):
        host.tick()
        host.link.data_to_send()
    assert host.outcome() == AnswerReceived(CMD, REPLY)
    # Not resumable (the caller has its answer): the same bytes are a new command.
    host.send(CMD)
    host.expect(Req(0))
    host.answer(NotFound())
    host.expect(Add(1, HOST_FLAGS, CMD))


def test_abandon_reports_whether_the_add_left() -> None:
    host = Host()
    host.send()
    host.link.data_to_send()
    (failed,) = host.link.abandon(host.now)
    assert isinstance(failed, CommandFailed) and not failed.error.maybe_executed
    host.send()
    opened(host)
    host.expect(Add(1, HOST_FLAGS, CMD))
    (failed,) = host.link.abandon(host.now)
    assert isinstance(failed, CommandFailed) and failed.error.maybe_executed
    assert host.link.unresolved_tid == 1


def test_bad_commands_and_busy_links_raise_before_sending() -> None:
    host = Host()
    with pytest.raises(CodecError):
        host.send(b"\x00\x00")
    assert not host.link.busy and not host.link.data_to_send()
    host.send()
    with pytest.raises(RuntimeError):
        host.send()


# -- host: the hard bound ------------------------------------------------------------------------

REPLIES = st.sampled_from(
    [
        None,  # silence
        b"",  # "repeat"
        Pending().encode(),
        InProgress().encode(),
        Waiting().encode(),
        Result(REPLY).encode(),
        AlreadyExists().encode(),
        NotFound().encode(),
        b"\xa3",
    ]
)


@settings(max_examples=150, deadline=None)
@given(script=st.lists(REPLIES, max_size=200), repeatable=st.booleans())
def test_no_device_behaviour_keeps_an_exchange_past_its_bound(
    script: list[bytes | None], repeatable: bool
) -> None:
    host = Host()
    host.send(timeout=2.0, repeatable=repeatable)
    limit = SETTINGS.exchange_limit(2.0)
    replies = iter(script)
    while True:
        for packet in packets(host.link.data_to_send()):
            data = next(replies, None)
            if data is not None:
                host.feed(encode_packet(packet.id, data))
        if any(isinstance(e, AnswerReceived | CommandFailed) for e in host.events):
            break
        host.tick()
        assert host.now <= limit
    outcome = host.outcome()
    assert host.now <= limit
    if isinstance(outcome, CommandFailed):
        assert isinstance(
            outcome.error, NoReply | AnswerTimeout | TaskLost | TaskRefused | ExchangeTimeout
        )


# -- device ----------------------------------------------------------------------------------------


class Device:
    """An `AtolDeviceLink` over a `TaskBuffer`, with a virtual clock."""

    def __init__(
        self,
        buffer: TaskBuffer | None = None,
        inline: float = 0.1,
        results: str = "inline",
        when_full: str = "refuse",
    ) -> None:
        self.buffer = buffer if buffer is not None else TaskBuffer(capacity=4, when_full=when_full)
        settings = DeviceSettings(inline=inline, byte=0.05, results=results)
        self.link = AtolDeviceLink(self.buffer, settings)
        self.now = 0.0

    def feed(self, packet_id: int, command: object) -> list[Event]:
        data = command.encode() if hasattr(command, "encode") else bytes(command)  # type: ignore[arg-type]
        return self.link.receive_data(encode_packet(packet_id, data), self.now)

    def replies(self) -> list[tuple[int, BufferReply | bytes]]:
        out: list[tuple[int, BufferReply | bytes]] = []
        for packet in packets(self.link.data_to_send()):
            out.append((packet.id, decode_buffer_reply(packet.data) if packet.data else b""))
        return out

    def run(self, reply: bytes = REPLY, *, failed: bool = False) -> None:
        task = self.buffer.next_task()
        assert task is not None
        ended = self.buffer.complete(task.tid, reply, failed=failed)
        assert ended is task
        self.link.task_finished(task, self.now)

    def run_started(self, task: Task, reply: bytes = REPLY) -> None:
        """End ``task``, taken from the buffer earlier."""
        ended = self.buffer.complete(task.tid, reply, failed=False)
        assert ended is task
        self.link.task_finished(task, self.now)

    def tick(self) -> list[Event]:
        timer = self.link.get_timer()
        assert timer is not None
        self.now = max(self.now, timer)
        return self.link.handle_timer(self.now)


def test_a_quick_task_is_answered_inline_with_the_packet_id() -> None:
    device = Device()
    assert device.feed(0x17, Add(5, HOST_FLAGS, CMD)) == [TaskReady(5, CMD)]
    assert device.replies() == []  # held for the inline window
    device.run()
    assert device.replies() == [(0x17, Result(REPLY))]
    assert device.link.get_timer() is None
    device.feed(0x18, Ack(5))
    assert device.replies() == [(0x18, Result())]
    assert len(device.buffer) == 0


def test_a_slow_task_answers_pending_then_sends_f0() -> None:
    device = Device()
    device.feed(1, Add(5, HOST_FLAGS, CMD))
    device.tick()
    assert device.replies() == [(1, Pending())]
    assert device.buffer.next_task() is not None
    device.feed(2, Req(5))
    assert device.replies() == [(2, InProgress())]
    task = device.buffer.get(5)
    assert task is not None and task.state is TaskState.IN_PROGRESS
    device.buffer.complete(5, b"\x55\x67\x00", failed=True)
    device.link.task_finished(task, device.now)
    assert device.replies() == [(ASYNC_ID, AsyncError(5, b"\x55\x67\x00"))]
    device.feed(3, Req(5))
    assert device.replies() == [(3, Error(b"\x55\x67\x00"))]


def test_async_results_answer_the_add_at_once_and_send_the_result_in_f0() -> None:
    """The default: A2 for a task that starts at once, A1 behind another, never the result;
    the result comes in F0 and stays for Req until Ack (atol4j, MultiMag need the F0)."""
    device = Device(results="async")
    assert device.feed(0x17, Add(5, HOST_FLAGS, CMD)) == [TaskReady(5, CMD)]
    device.feed(0x18, Add(6, HOST_FLAGS, CMD2))
    assert device.replies() == [(0x17, InProgress()), (0x18, Pending())]
    assert device.link.get_timer() is None  # nothing held back
    device.run()
    device.feed(0x19, Req(5))
    device.feed(0x1A, Req(5))  # read as often as asked, until the Ack
    device.feed(0x1B, Ack(5))
    assert device.replies() == [
        (ASYNC_ID, AsyncResult(5, REPLY)),
        (0x19, Result(REPLY)),
        (0x1A, Result(REPLY)),
        (0x1B, Result()),
    ]


def test_async_results_send_a_failure_as_a7() -> None:
    device = Device(results="async")
    device.feed(1, Add(5, HOST_FLAGS, CMD))
    device.run(b"\x55\x9c\x00", failed=True)
    device.feed(2, Req(5))
    assert device.replies() == [
        (1, InProgress()),
        (ASYNC_ID, AsyncError(5, b"\x55\x9c\x00")),
        (2, Error(b"\x55\x9c\x00")),
    ]


def test_a_host_that_never_acks_keeps_working_and_loses_no_result() -> None:
    """A full queue retires its oldest ended task: out of the queue, still answered to Req."""
    device = Device(results="async", when_full="retire")
    for tid in range(12):  # three times the capacity, never an Ack
        device.feed(tid, Add(tid, HOST_FLAGS, bytes((0, 0, tid))))
        device.run(bytes((0x55, 0, 0, tid)))
    assert len(device.buffer) == 4 and len(device.buffer.retired) == 8
    device.replies()
    for tid in range(12):
        device.feed(0x40 + tid, Req(tid))
    assert device.replies() == [(0x40 + tid, Result(bytes((0x55, 0, 0, tid)))) for tid in range(12)]


def test_a_full_queue_of_unfinished_tasks_refuses_before_running_anything() -> None:
    device = Device(results="async", when_full="retire")
    for tid in range(4):
        device.feed(tid, Add(tid, HOST_FLAGS, CMD))  # none ends: the executor is busy
    assert device.feed(9, Add(9, HOST_FLAGS, CMD)) == []  # no TaskReady: nothing will run
    assert device.replies()[-1] == (9, Overflow())
    assert device.buffer.get(9) is None


def test_refuse_when_full_answers_b1_while_results_wait_for_their_ack() -> None:
    device = Device(results="async", when_full="refuse")
    for tid in range(4):
        device.feed(tid, Add(tid, HOST_FLAGS, CMD))
        device.run()
    assert device.feed(9, Add(9, HOST_FLAGS, CMD)) == []
    assert device.replies()[-1] == (9, Overflow())
    device.feed(10, Ack(0))
    assert device.feed(11, Add(9, HOST_FLAGS, CMD)) == [TaskReady(9, CMD)]


def test_a_repeated_packet_gets_the_same_reply_and_runs_nothing() -> None:
    device = Device(inline=0)
    assert device.feed(1, Add(5, HOST_FLAGS, CMD)) == [TaskReady(5, CMD)]
    assert device.replies() == [(1, Pending())]
    assert device.feed(1, Add(5, HOST_FLAGS, CMD)) == []
    assert device.replies() == [(1, Pending())]
    assert device.feed(1, b"") == []  # the host's "repeat"
    assert device.replies() == [(1, Pending())]
    # The same Add under a new packet ID is a new request: the TID is taken.
    device.feed(2, Add(5, HOST_FLAGS, CMD))
    assert device.replies() == [(2, AlreadyExists())]
    assert len(device.buffer) == 1


def test_a_repeat_of_a_held_add_waits_for_the_reply() -> None:
    device = Device()
    device.feed(1, Add(5, HOST_FLAGS, CMD))
    assert device.feed(1, Add(5, HOST_FLAGS, CMD)) == []
    device.run()
    assert device.replies() == [(1, Result(REPLY))]


def test_a_new_packet_sends_the_held_reply_first() -> None:
    device = Device()
    device.feed(1, Add(5, HOST_FLAGS, CMD))
    device.feed(2, Req(5))
    assert device.replies() == [(1, Pending()), (2, Pending())]


def test_corrupt_packets_get_an_empty_packet_with_their_id() -> None:
    device = Device()
    good = encode_packet(0x21, Req(1).encode())
    events = device.link.receive_data(good[:-1] + bytes((good[-1] ^ 1,)), device.now)
    assert isinstance(events[0], LineNoise)
    assert device.link.data_to_send() == encode_packet(0x21, b"")
    # Cut short: after the byte timeout.
    device.link.receive_data(good[:4], device.now)
    assert not device.link.data_to_send()
    device.tick()
    assert device.link.data_to_send() == encode_packet(0x21, b"")
    # An ID that cannot be read: nothing to ask for.
    device.link.receive_data(b"\xfe\x01", device.now)
    device.tick()
    assert not device.link.data_to_send()


def test_buffer_refusals() -> None:
    device = Device(inline=0)
    for tid in range(4):
        device.feed(tid, Add(tid, HOST_FLAGS, CMD))
    assert device.replies() == [(tid, Pending()) for tid in range(4)]
    device.feed(10, Add(9, HOST_FLAGS, CMD))
    device.feed(11, Add(2, HOST_FLAGS, CMD))
    device.feed(12, Req(9))
    device.feed(13, Ack(9))
    device.feed(14, Add(8, TaskFlags.WAIT_ASYNC_DATA, CMD))  # no async data source here
    device.link.receive_data(encode_packet(15, b"\xc1\x80\x01" + CMD), device.now)  # undefined bit
    device.link.receive_data(encode_packet(16, b"\xc9"), device.now)  # no such command
    assert device.replies() == [
        (10, Overflow()),
        (11, AlreadyExists()),  # the TID check comes first
        (12, NotFound()),
        (13, NotFound()),
        (14, IllegalValue()),
        (15, IllegalValue()),
        (16, IllegalValue()),
    ]


def test_ack_frees_an_ended_task_only() -> None:
    device = Device(inline=0)
    device.feed(1, Add(5, HOST_FLAGS, CMD))
    device.feed(2, Ack(5))
    device.run()
    device.feed(3, Ack(5))
    device.feed(4, Ack(5))
    assert device.replies() == [
        (1, Pending()),
        (2, Pending()),
        (ASYNC_ID, AsyncResult(5, REPLY)),
        (3, Result()),
        (4, NotFound()),
    ]


def test_abort_drops_tasks_not_run_and_keeps_every_executed_result() -> None:
    device = Device(inline=0)
    device.feed(1, Add(5, HOST_FLAGS, CMD))
    device.run()  # executed, not yet acknowledged
    device.feed(2, Add(6, HOST_FLAGS, CMD))  # queued, never run
    device.feed(3, Abort())
    assert device.buffer.next_task() is None  # nothing pending after Abort
    assert len(device.buffer) == 0  # every slot is free
    device.replies()
    device.feed(4, Req(5))  # the executed task's result is not denied...
    device.feed(5, Req(6))  # ...the one never run is not found (the truth)
    assert device.replies() == [(4, Result(REPLY)), (5, NotFound())]
    device.feed(6, Add(7, HOST_FLAGS, CMD))
    task = device.buffer.next_task()
    assert task is not None
    device.feed(7, Abort())
    assert device.replies()[-1] == (7, InProgress(7))  # it cannot be stopped
    device.run_started(task)
    device.feed(8, Req(7))
    device.feed(9, Ack(7))
    device.feed(10, Ack(5))
    device.feed(11, Req(5))
    assert device.replies() == [
        (ASYNC_ID, AsyncResult(7, REPLY)),  # its F0 still goes to the host that added it
        (8, Result(REPLY)),
        (9, Result()),
        (10, Result()),  # Ack frees a result kept across the Abort
        (11, NotFound()),
    ]
    assert device.buffer.retired == [] and len(device.buffer) == 0


def test_an_add_under_a_retired_tid_replaces_its_result() -> None:
    device = Device(inline=0)
    device.feed(1, Add(5, HOST_FLAGS, CMD))
    device.run()
    device.feed(2, Abort())
    device.feed(3, Add(5, HOST_FLAGS, CMD2))  # a host that restarts its TIDs after Abort
    device.feed(4, Req(5))
    assert device.replies()[-2:] == [(3, Pending()), (4, Pending())]
    assert device.buffer.retired == []


def test_a_task_without_ignore_error_stops_the_queue_until_acked() -> None:
    buffer = TaskBuffer()
    flags = TaskFlags.NEED_RESULT
    assert buffer.add(1, flags, CMD) == Pending()
    assert buffer.add(2, flags, CMD) == Pending()
    task = buffer.next_task()
    assert task is not None
    buffer.complete(1, b"\x55\x01\x00", failed=True)
    assert buffer.request(2) == Stopped(1)
    assert buffer.add(3, flags, CMD) == Stopped(1)
    assert buffer.next_task() is None
    assert buffer.ack(1) == Error()
    assert buffer.add(4, flags, CMD) == Pending()
    assert buffer.ack(2) == Stopped(1)


def test_stop_on_error_is_selectable() -> None:
    buffer = TaskBuffer(stop_on_error=False)
    buffer.add(1, TaskFlags.NEED_RESULT, CMD)
    buffer.add(2, TaskFlags.NEED_RESULT, CMD)
    buffer.next_task()
    buffer.complete(1, b"\x55\x01\x00", failed=True)
    assert buffer.request(2) == Pending()


def test_without_need_result_the_slot_frees_itself() -> None:
    buffer = TaskBuffer()
    buffer.add(1, TaskFlags.IGNORE_ERROR, CMD)
    seen = []
    buffer.subscribe(seen.append)
    buffer.next_task()
    ended = buffer.complete(1, REPLY, failed=False)
    assert seen == [ended] and len(buffer) == 0 and buffer.request(1) == NotFound()


def test_power_cycle_forgets_everything() -> None:
    buffer = TaskBuffer()
    buffer.add(1, HOST_FLAGS, CMD)
    buffer.next_task()
    buffer.power_cycle()
    assert buffer.complete(1, REPLY, failed=False) is None
    assert len(buffer) == 0


def test_ack_add_replies_with_two_statuses() -> None:
    device = Device(inline=0)
    device.feed(1, Add(5, HOST_FLAGS, CMD))
    device.run()
    device.replies()
    device.feed(2, AckAdd(5, HOST_FLAGS, 6, CMD2))
    (packet,) = packets(device.link.data_to_send())
    assert packet.data == bytes((StatusCode.RESULT, StatusCode.PENDING))


def test_a_new_connection_finds_a_task_added_on_the_old_one() -> None:
    buffer = TaskBuffer()
    old = Device(buffer)
    old.feed(1, Add(5, HOST_FLAGS, CMD))
    task = buffer.next_task()
    assert task is not None
    new = Device(buffer)
    buffer.complete(5, REPLY, failed=False)
    new.link.task_finished(task, new.now)  # not its task: no F0 on the new connection
    assert new.replies() == []
    new.feed(9, Req(5))
    new.feed(10, Ack(5))
    assert new.replies() == [(9, Result(REPLY)), (10, Result())]


def test_device_power_cycle_forgets_the_last_reply() -> None:
    device = Device(inline=0)
    device.feed(1, Req(5))
    device.replies()
    device.link.power_cycle()
    device.feed(1, Req(5))
    assert device.replies() == [(1, NotFound())]


# -- reply_is_error ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "reply", "error"),
    [
        (b"\x00\x00\x80", b"\x55\x00\x00", False),
        (b"\x00\x00\x80", b"\x55\x8c\x00", True),
        (b"\x00\x00\x80", b"\x55", True),
        (b"\x00\x00\x80", b"", True),
        (b"\x00\x00\x3f", b"\x44" + bytes(29), False),
        (b"\x00\x00\x3f", b"\x55\x66\x00", True),
        (b"\x00\x00\xa5", b"\x00\x01\x01\x4c", False),
        (b"\x00\x00\xa5", b"\x8c", True),
        (b"\x00\x00\x74", b"\x4c\x01", False),
        (b"\x00\x00\x4d", b"\x4d\x00\x00\x00\x10\x00", False),
    ],
)
def test_reply_is_error(command: bytes, reply: bytes, error: bool) -> None:
    assert reply_is_error(command, reply) is error


# -- hypothesis: chunking and garbage --------------------------------------------------------------


def _device_stream() -> bytes:
    return b"".join(
        [
            encode_packet(1, Add(5, HOST_FLAGS, CMD).encode()),
            encode_packet(1, Add(5, HOST_FLAGS, CMD).encode()),
            b"noise",
            encode_packet(2, Req(5).encode()),
            encode_packet(3, Ack(5).encode())[:-1] + b"\x00",
            encode_packet(4, Abort().encode()),
            encode_packet(5, b"\xfd\xfe\xc3"),
        ]
    )


@st.composite
def cuts(draw: st.DrawFn, data: bytes) -> list[bytes]:
    points = sorted(draw(st.sets(st.integers(1, max(1, len(data) - 1)), max_size=12)))
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _merged(events: list[Event]) -> tuple[list[Event], bytes]:
    """Events with junk set apart: how junk splits depends on the chunks, nothing else does."""
    junk = b"".join(
        e.token.data for e in events if isinstance(e, LineNoise) and isinstance(e.token, Junk)
    )
    rest = [e for e in events if not (isinstance(e, LineNoise) and isinstance(e.token, Junk))]
    return rest, junk


@given(chunks=cuts(_device_stream()))
def test_device_chunking_changes_nothing(chunks: list[bytes]) -> None:
    whole = Device(inline=0)
    expected = whole.link.receive_data(_device_stream(), 0.0)
    expected_out = whole.link.data_to_send()
    cut = Device(inline=0)
    events: list[Event] = []
    for chunk in chunks:
        events += cut.link.receive_data(chunk, 0.0)
    assert _merged(events) == _merged(expected) and cut.link.data_to_send() == expected_out


def _host_stream() -> bytes:
    return b"".join(
        [
            reply(0, Result()),
            b"\x00junk",
            reply(1, Pending()),
            encode_packet(ASYNC_ID, AsyncResult(0, REPLY).encode()),
            reply(2, Result()),
        ]
    )


@given(chunks=cuts(_host_stream()))
def test_host_chunking_changes_nothing(chunks: list[bytes]) -> None:
    def run(parts: list[bytes]) -> tuple[list[Event], bytes]:
        link = AtolHostLink(SETTINGS)
        link.send_command(CMD, 0.0, answer_timeout=5.0, repeatable=False)
        out = link.data_to_send()
        events: list[Event] = []
        for part in parts:
            events += link.receive_data(part, 0.0)
            out += link.data_to_send()
        return events, out

    events, out = run(chunks)
    whole, whole_out = run([_host_stream()])
    assert _merged(events) == _merged(whole) and out == whole_out
    assert events[-1] == AnswerReceived(CMD, REPLY)


@settings(max_examples=200, deadline=None)
@given(data=st.lists(st.binary(max_size=40), max_size=20), busy=st.booleans())
def test_garbage_never_raises_and_yields_typed_events(data: list[bytes], busy: bool) -> None:
    host = AtolHostLink(SETTINGS)
    if busy:
        host.send_command(CMD, 0.0, answer_timeout=1.0, repeatable=True)
    device = AtolDeviceLink(TaskBuffer(capacity=2), DeviceSettings(inline=0))
    now = 0.0
    for chunk in data:
        now += 0.01
        for event in host.receive_data(chunk, now) + device.receive_data(chunk, now):
            assert isinstance(event, EVENT_TYPES)
        for link in (host, device):
            timer = link.get_timer()
            if timer is not None:
                now = max(now, timer)
                for event in link.handle_timer(now):
                    assert isinstance(event, EVENT_TYPES)
        host.data_to_send()
        device.data_to_send()


# -- an executed task's result and another host's Add under its TID ---------------------------


def _pump(host: Host, device: Device) -> None:
    """Carry packets both ways until neither end has anything to say."""
    while True:
        to_device = host.link.data_to_send()
        if to_device:
            device.link.receive_data(to_device, device.now)
        to_host = device.link.data_to_send()
        if to_host:
            host.feed(to_host)
        if not to_device and not to_host:
            return


def test_a_result_retired_by_another_hosts_abort_answers_req_with_that_hosts_next_task() -> None:
    """The link-level fact: a task is named only by its TID, so the host cannot tell its own
    result from another program's under the same TID.

    Host A's money-moving command runs; the connection drops before its F0.  Another program
    connects, Aborts (A's result is retired, not dropped) and adds its own task under the same
    TID -- a 1-in-224 meeting for one task, certain over a day beside a program that walks every
    TID.  Any host's Add under a TID replaces the retired result kept there, so A's Req on its
    next connection takes that program's result -- here a refusal -- for its executed command's.
    The ATOL protocol allows nothing better (no connection identity), so the driver's policy
    covers it: receipts and corrections are settled by the FN's archive (kkt/settle.py), cash in
    and cash out by the drawer (kkt/cash.py; tests/kkt/test_cash_settle.py, and this case end to
    end in tests/interop/test_cash_with_a_foreign_client.py).
    """
    buffer = TaskBuffer()
    host = Host(HostSettings(packet=0.5, packet_tries=3, poll=0.2), first_tid=0x42)
    first = Device(buffer, results="async")
    host.send(CMD)  # money-moving: not repeatable
    _pump(host, first)
    first.run(b"\x55\x00\x00")  # executed; its F0 is lost with the connection
    first.link.data_to_send()
    other = Device(buffer, results="async")
    other.feed(1, Abort())
    other.feed(2, Add(0x42, HOST_FLAGS, CMD2))
    other.run(b"\x55\x66\x00")  # the other program's task under the same TID, refused
    other.replies()
    second = Device(buffer, results="async")
    host.link.reconnected(host.now)
    _pump(host, second)
    assert host.outcome() == AnswerReceived(CMD, b"\x55\x66\x00")  # not its own: a refusal
