"""ACCEPTANCE: an ATOL host and device over a seeded bad line; every command runs exactly once.

`AtolHostLink` talks to `AtolDeviceLink` (over a `TaskBuffer` and a fake executor that records
every command it runs) through `support.line` in virtual time: bytes are dropped and corrupted in
both directions, and the device loses whole reply packets after executing (its result stays in
the buffer).  The caller retries a failed command with the same bytes -- the link then resumes
the task instead of adding it again -- and resends only what the device refused.

Commands and replies carry a CRC-32 seal: CRC-8 lets about one damaged packet in 256 through,
and the executor must refuse (not run) a command damaged past it, as a register refuses a
garbled one.  At the end every command ran once, each reply the host took was its own, and the
buffer is empty: every slot was freed by an Ack (most of them riding on the next command's
Add as AckAdd, the last one sent alone by `AtolHostLink.release`).
"""

from __future__ import annotations

import random
import struct
import zlib
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kkt.protocols.atol.device import AtolDeviceLink
from kkt.protocols.atol.host import AtolHostLink
from kkt.protocols.atol.link import DeviceSettings, Event, HostSettings, TaskReady
from kkt.protocols.atol.packet import ASYNC_ID, Packet, PacketDeframer
from kkt.protocols.atol.tasks import Task, TaskBuffer, reply_is_error
from kkt.protocols.line import AnswerReceived, CommandFailed
from support.line import LineFaults, SimulatedChannel

PWD = b"\x00\x00"
SELL = 0x80  # a made-up code: its reply carries the command's number
QUERY = PWD + b"\x3f"  # status: answers 44 ...; run at the end to settle what is left
REFUSED = b"\x55\x01\x00"  # the executor's answer to a command damaged past CRC-8


def _seal(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _unseal(data: bytes) -> bytes | None:
    body, crc = data[:-4], data[-4:]
    if len(data) < 5 or struct.pack("<I", zlib.crc32(body)) != crc:
        return None
    return body


def _command(number: int, filler: bytes) -> bytes:
    return PWD + bytes((SELL,)) + _seal(struct.pack("<I", number) + filler)


@dataclass
class Executor:
    """The register's CPU: runs the buffer's tasks one at a time, each after a random delay."""

    buffer: TaskBuffer
    rng: random.Random
    lose: float  # probability the reply packet of an executed task is lost
    slow: float = 0.05  # probability a task outlives the inline window (A1, then F0)
    executions: Counter[int] = field(default_factory=Counter)
    running: tuple[float, Task] | None = None
    last: int = -1  # the number of the last command run: what QUERY answers
    lost_replies: int = 0

    def due(self) -> float | None:
        return self.running[0] if self.running else None

    def start(self, now: float) -> None:
        if self.running is None:
            task = self.buffer.next_task()
            if task is not None:
                delay = self.rng.uniform(0.2, 0.4) if self.rng.random() < self.slow else 0.001
                self.running = (now + delay, task)

    def finish(self, device: AtolDeviceLink, now: float) -> None:
        assert self.running is not None
        _, task = self.running
        self.running = None
        body = _unseal(task.command[3:]) if task.command[:3] == PWD + bytes((SELL,)) else None
        if task.command == QUERY:
            reply = b"\x44" + _seal(struct.pack("<i", self.last))
        elif body is None:
            reply = REFUSED
        else:
            (number,) = struct.unpack("<I", body[:4])
            self.executions[number] += 1
            self.last = number
            reply = b"\x55\x00\x00" + _seal(struct.pack("<I", number))
        ended = self.buffer.complete(task.tid, reply, failed=reply_is_error(task.command, reply))
        assert ended is task
        device.task_finished(task, now)
        if self.rng.random() < self.lose:
            device.data_to_send()  # executed; its reply packet never reaches the line
            self.lost_replies += 1
        self.start(now)


@dataclass
class Rig:
    host: AtolHostLink
    device: AtolDeviceLink
    buffer: TaskBuffer
    executor: Executor
    up: SimulatedChannel
    down: SimulatedChannel
    now: float = 0.0
    steps: int = 0

    def run(self, command: bytes, *, repeatable: bool = False) -> AnswerReceived | CommandFailed:
        self.host.send_command(command, self.now, answer_timeout=1.0, repeatable=repeatable)
        return self.wait()

    def wait(self) -> AnswerReceived | CommandFailed:
        """Run the line until the command in flight ends."""
        while True:
            for event in self.step():
                if isinstance(event, AnswerReceived | CommandFailed):
                    self._flush()
                    return event

    def step(self) -> list[Event]:
        """Advance to the next scheduled instant; return the host's events."""
        self._flush()
        times = [
            t
            for t in (
                self.host.get_timer(),
                self.device.get_timer(),
                self.up.next_time(),
                self.down.next_time(),
                self.executor.due(),
            )
            if t is not None
        ]
        assert times, "the link stalled: nothing scheduled and no outcome"
        self.now = max(self.now, min(times))
        self.steps += 1
        assert self.steps < 2_000_000, "the simulation does not converge"
        self._device_events(self.device.receive_data(self.up.take(self.now), self.now))
        events = self.host.receive_data(self.down.take(self.now), self.now)
        timer = self.host.get_timer()
        if timer is not None and timer <= self.now:
            events += self.host.handle_timer(self.now)
        timer = self.device.get_timer()
        if timer is not None and timer <= self.now:
            self._device_events(self.device.handle_timer(self.now))
        due = self.executor.due()
        if due is not None and due <= self.now:
            self.executor.finish(self.device, self.now)
        return events

    def settle(self) -> None:
        """Let the line drain and the executor go idle (what is in flight arrives or is lost)."""
        for _ in range(100_000):
            self._flush()
            times = [
                t
                for t in (self.up.next_time(), self.down.next_time(), self.executor.due())
                if t is not None
            ]
            if not times:
                return
            self.now = max(self.now, min(times))
            self._device_events(self.device.receive_data(self.up.take(self.now), self.now))
            self.host.receive_data(self.down.take(self.now), self.now)
            due = self.executor.due()
            if due is not None and due <= self.now:
                self.executor.finish(self.device, self.now)
        raise AssertionError("the line never drained")

    def _device_events(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, TaskReady):
                self.executor.start(self.now)

    def _flush(self) -> None:
        self.up.send(self.host.data_to_send(), self.now)
        self.down.send(self.device.data_to_send(), self.now)


def _rig(seed: int, rate: float, results: str = "async") -> Rig:
    # ``rate`` splits into dropped and corrupted bytes, and as many executed tasks lose their
    # reply packet.  Packets are ~10-30 bytes, so 10 % means most round trips need a resend.
    faults = LineFaults(
        drop=rate / 4,
        corrupt=rate / 4,
        latency=0.001,
        jitter=0.004,
        stall=0.002,
        stall_time=0.05,
        byte_time=0.000087,
    )
    buffer = TaskBuffer(capacity=8)
    return Rig(
        host=AtolHostLink(HostSettings(packet=0.05, packet_tries=6, poll=0.05)),
        device=AtolDeviceLink(buffer, DeviceSettings(inline=0.01, byte=0.02, results=results)),
        buffer=buffer,
        executor=Executor(buffer, random.Random(seed + 1), lose=rate),
        up=SimulatedChannel(random.Random(seed + 2), faults),
        down=SimulatedChannel(random.Random(seed + 3), faults),
    )


def _sell_all(rig: Rig, count: int, rng: random.Random) -> Counter[str]:
    """Every command until it gets its own reply; a failure is retried with the same bytes."""
    stats: Counter[str] = Counter()
    for number in range(count):
        command = _command(number, bytes(rng.randrange(256) for _ in range(rng.randrange(0, 24))))
        for _attempt in range(50):
            outcome = rig.run(command)
            if isinstance(outcome, CommandFailed):
                stats[type(outcome.error).__name__] += 1
                if not outcome.error.maybe_executed:
                    assert rig.executor.executions[number] == 0, f"{outcome.error!r} yet executed"
                continue  # the same bytes again: the link resumes the task if it has one
            if outcome.answer == REFUSED:
                # The command was damaged past CRC-8 on the way and refused: not run, send again.
                assert rig.executor.executions[number] == 0, "refused yet executed"
                stats["refused"] += 1
                continue
            body = _unseal(outcome.answer[3:])
            if body is None:
                # The reply passed CRC-8 damaged: the host cannot know, the rig can (its seal).
                stats["reply-damaged-past-crc"] += 1
                assert rig.executor.executions[number] == 1
                break
            assert outcome.answer[:3] == b"\x55\x00\x00"
            assert struct.unpack("<I", body[:4])[0] == number, "the reply of another command"
            assert rig.executor.executions[number] == 1, "a reply for a command not run once"
            stats["answered"] += 1
            break
        else:
            raise AssertionError(f"command {number} never completed: {stats}")
    return stats


@pytest.mark.parametrize("results", ["async", "inline"])
@pytest.mark.parametrize("rate", [0.0, 0.01, 0.05, 0.10])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_command_runs_exactly_once_and_every_slot_is_freed(
    seed: int, rate: float, results: str
) -> None:
    rig = _rig(seed * 100 + int(rate * 100), rate, results)
    count = 300
    stats = _sell_all(rig, count, random.Random(seed))
    # A last query settles what the last command may have left (an Ack whose reply was lost);
    # `release` then sends the Ack the next Add would have carried (the session's close).
    while True:
        if not isinstance(rig.run(QUERY, repeatable=True), AnswerReceived):
            continue
        if rig.host.release(rig.now):
            rig.wait()
        if rig.host.pending_ack is None and rig.host.unresolved_tid is None:
            break
    rig.settle()

    executions = rig.executor.executions
    print(
        f"\nseed {seed}, rate {rate:.0%}: {count} commands, {dict(stats)}; bytes dropped "
        f"{rig.up.dropped}+{rig.down.dropped}, corrupted {rig.up.corrupted}+{rig.down.corrupted}"
        f" (host->device + device->host); replies lost after execution "
        f"{rig.executor.lost_replies}; executions {sum(executions.values())}"
    )
    assert sorted(executions) == list(range(count)), stats
    assert set(executions.values()) == {1}, "a command ran twice"
    assert stats["answered"] + stats["reply-damaged-past-crc"] == count
    assert len(rig.buffer) == 0, f"slots leaked: {rig.buffer.tasks}"
    assert rig.buffer.retired == [], "every result was collected and acknowledged"
    if rate:
        assert rig.up.dropped + rig.down.dropped > 0
        assert rig.up.corrupted + rig.down.corrupted > 0
        assert rig.executor.lost_replies > 0
    else:
        assert stats == Counter(answered=count)


def test_a_new_connection_finds_the_result_of_a_task_added_on_the_old_one() -> None:
    """Mid-task the connection drops; the host's Req on a new link over the same buffer finds
    the result, and nothing runs twice."""
    rig = _rig(7, 0.0)
    rig.executor.slow = 1.0  # every task outlives the inline window: A1 now, the result later
    rig.host.send_command(_command(1, b""), rig.now, answer_timeout=5.0, repeatable=False)
    while not rig.buffer.tasks:
        assert not rig.step()
    assert rig.executor.running is not None, "the task is running"
    # The connection dies: what was on the line is lost.  A new device link, the same buffer.
    rig.up.take(float("inf"))
    rig.down.take(float("inf"))
    old = rig.device
    rig.device = AtolDeviceLink(rig.buffer, DeviceSettings(inline=0.01, byte=0.02))
    rig.host.reconnected(rig.now)
    outcome = rig.wait()
    assert isinstance(outcome, AnswerReceived)
    body = _unseal(outcome.answer[3:])
    assert body is not None and struct.unpack("<I", body[:4])[0] == 1
    assert rig.executor.executions == Counter({1: 1})
    assert len(rig.buffer) == 1 and rig.host.pending_ack == 0, "its Ack waits for the next Add"
    assert rig.host.release(rig.now)
    assert isinstance(rig.wait(), AnswerReceived)
    assert len(rig.buffer) == 0
    tokens, _ = PacketDeframer().read_all(old.data_to_send())
    left = [token.id for token in tokens if isinstance(token, Packet)]
    assert ASYNC_ID not in left, "the old link, not told of the task's end, sent no F0"


@settings(max_examples=15, deadline=None, derandomize=True)  # the same examples every run
@given(
    seed=st.integers(0, 2**32 - 1),
    rate=st.sampled_from([0.02, 0.05, 0.1]),
    results=st.sampled_from(["async", "inline"]),
    piggyback=st.booleans(),
)
def test_any_seed_keeps_exactly_once_with_acks_deferred_or_not(
    seed: int, rate: float, results: str, piggyback: bool
) -> None:
    """Hypothesis picks the line's luck: 30 commands, each run once with its own reply, and no
    slot left once the last Ack went out -- with each Ack riding on the next Add, or not."""
    rig = _rig(seed, rate, results)
    rig.host = AtolHostLink(
        HostSettings(packet=0.05, packet_tries=6, poll=0.05, piggyback_ack=piggyback)
    )
    count = 30
    _sell_all(rig, count, random.Random(seed))
    while True:
        if not isinstance(rig.run(QUERY, repeatable=True), AnswerReceived):
            continue
        if rig.host.release(rig.now):
            rig.wait()
        if rig.host.pending_ack is None and rig.host.unresolved_tid is None:
            break
    rig.settle()
    assert sorted(rig.executor.executions) == list(range(count))
    assert set(rig.executor.executions.values()) == {1}, "a command ran twice"
    assert len(rig.buffer) == 0 and rig.buffer.retired == []


def _sell_all_followed(rig: Rig, count: int, rng: random.Random) -> Counter[str]:
    """`_sell_all` with each command followed by QUERY (`AtolHostLink.follow`): the query's Add
    written with the command's, asked for once the command has its own reply.  Whatever the
    line did, the query's answer the host takes says the command ran before it."""
    stats: Counter[str] = Counter()
    for number in range(count):
        command = _command(number, bytes(rng.randrange(256) for _ in range(rng.randrange(0, 24))))
        for _attempt in range(50):
            rig.host.follow(command, QUERY)
            outcome = rig.run(command)
            if isinstance(outcome, CommandFailed):
                stats[type(outcome.error).__name__] += 1
                continue
            if outcome.answer == REFUSED:
                stats["refused"] += 1
                continue
            body = _unseal(outcome.answer[3:])
            if body is None or struct.unpack("<I", body[:4])[0] != number:
                stats["reply-damaged-past-crc"] += 1
            break
        else:
            raise AssertionError(f"command {number} never completed: {stats}")
        assert rig.executor.executions[number] == 1, "a command not run once"
        tid = rig.host._tid  # the last TID taken: a query added anew takes another
        for _attempt in range(50):
            answer = rig.run(QUERY, repeatable=True)
            if isinstance(answer, AnswerReceived):
                break
        else:
            raise AssertionError(f"the query after {number} never completed: {stats}")
        seen = _unseal(answer.answer[1:])
        if seen is None:
            stats["query-damaged-past-crc"] += 1
            continue
        assert struct.unpack("<i", seen)[0] == number, "a query answer from before its command"
        stats["followed" if rig.host._tid == tid else "added"] += 1
    return stats


@pytest.mark.parametrize("results", ["async", "inline"])
@pytest.mark.parametrize("rate", [0.0, 0.01, 0.05, 0.10])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_follow_ups_keep_exactly_once_order_and_free_every_slot(
    seed: int, rate: float, results: str
) -> None:
    rig = _rig(seed * 100 + int(rate * 100), rate, results)
    count = 200
    stats = _sell_all_followed(rig, count, random.Random(seed))
    while True:
        if not isinstance(rig.run(QUERY, repeatable=True), AnswerReceived):
            continue
        if rig.host.release(rig.now):
            rig.wait()
        if rig.host.pending_ack is None and rig.host.unresolved_tid is None:
            break
    rig.settle()
    print(f"\nseed {seed}, rate {rate:.0%}: {dict(stats)}")
    executions = rig.executor.executions
    assert sorted(executions) == list(range(count)), stats
    assert set(executions.values()) == {1}, "a command ran twice"
    assert len(rig.buffer) == 0, f"slots leaked: {rig.buffer.tasks}"
    assert rig.buffer.retired == [], "every result was collected and acknowledged"
    # A follow-up is given up whenever its command's Add was sent again (the line's stalls
    # outlast the packet timeout even at rate 0): the query is then added anew, after it.
    assert stats["followed"] > (0.9 if not rate else 0.05) * count, stats
    assert stats["followed"] + stats["added"] + stats["query-damaged-past-crc"] == count
