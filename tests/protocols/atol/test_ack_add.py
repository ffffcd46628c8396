"""The host's deferred Ack (AckAdd, C5h), byte by byte: each Ack rides on the next command's Add.

Wire vectors are written out in full; their CRC bytes were computed with a bitwise CRC-8 (poly
0x31, init 0xFF, over ID + DATA) independent of `kkt.protocols.atol.packet`, which `_crc` below
repeats so that a wrong table there cannot make these tests agree with it.  The AckAdd layouts are
MultiMag's (``atolbuffer.php`` ``ackAdd``): request ``C5 ackTID flags addTID command…``, reply
``ackStatus addStatus [data]``.
"""

from __future__ import annotations

from kkt.protocols.atol.buffer import (
    Ack,
    AckAdd,
    AckAddReply,
    Add,
    AsyncResult,
    BufferReply,
    InProgress,
    NotFound,
    Pending,
    Req,
    Result,
    StatusCode,
    decode_buffer_command,
)
from kkt.protocols.atol.device import AtolDeviceLink
from kkt.protocols.atol.host import HOST_FLAGS, AtolHostLink
from kkt.protocols.atol.link import DeviceSettings, HostSettings, NoReply, TaskReady
from kkt.protocols.atol.packet import ASYNC_ID, Packet, PacketDeframer, encode_packet
from kkt.protocols.atol.tasks import TaskBuffer
from kkt.protocols.line import AnswerReceived, CommandFailed

CMD = b"\x00\x00\x80\x01"
CMD2 = b"\x00\x00\x80\x02"
CMD3 = b"\x00\x00\x80\x03"
REPLY = b"\x55\x00\x00\x01"
REPLY2 = b"\x55\x00\x00\x02"
# One deferred Ack at most: without follow-ups (`AtolHostLink.follow`) no write adds two tasks.
SETTINGS = HostSettings(packet=0.5, packet_tries=3, poll=0.2, follow_ups=False)


def _crc(packet_id: int, data: bytes) -> int:
    crc = 0xFF
    for byte in bytes((packet_id,)) + data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def wire(packet_id: int, data_hex: str, crc: int) -> bytes:
    """A whole packet (no byte of these needs escaping), its CRC checked independently."""
    data = bytes.fromhex(data_hex)
    assert _crc(packet_id, data) == crc
    return bytes((0xFE, len(data) & 0x7F, len(data) >> 7, packet_id)) + data + bytes((crc,))


class Host:
    def __init__(self, settings: HostSettings = SETTINGS, first_tid: int = 0) -> None:
        # A fresh TaskBuffer on the other end: every TID is known free.
        self.link = AtolHostLink(settings, first_tid=first_tid, known_free=range(0xE0))
        self.now = 0.0
        self.events: list[object] = []

    def send(self, command: bytes, *, repeatable: bool = False) -> bytes:
        self.link.send_command(command, self.now, answer_timeout=5.0, repeatable=repeatable)
        return self.link.data_to_send()

    def start(self, command: bytes) -> None:
        """Start a command; what it writes is read with `sent`."""
        self.link.send_command(command, self.now, answer_timeout=5.0, repeatable=False)

    def feed(self, data: bytes) -> None:
        self.events += self.link.receive_data(data, self.now)

    def tick(self) -> None:
        timer = self.link.get_timer()
        assert timer is not None
        self.now = max(self.now, timer)
        self.events += self.link.handle_timer(self.now)

    def sent(self) -> list[tuple[int, object]]:
        tokens, rest = PacketDeframer().read_all(self.link.data_to_send())
        assert not rest
        return [(t.id, decode_buffer_command(t.data)) for t in tokens if isinstance(t, Packet)]

    def outcome(self) -> AnswerReceived | CommandFailed:
        ends = [e for e in self.events if isinstance(e, AnswerReceived | CommandFailed)]
        assert len(ends) == 1, self.events
        self.events.clear()
        return ends[0]


def both(packet_id: int, ack: StatusCode, add: BufferReply) -> bytes:
    return encode_packet(packet_id, AckAddReply(ack, add).encode())


def first_done(host: Host) -> None:
    """The first command: a plain Add (nothing to acknowledge yet), its result inline."""
    assert host.send(CMD) == wire(0x00, "C1 03 00 00 00 80 01", 0x5B)
    host.feed(encode_packet(0, Result(REPLY).encode()))
    assert host.outcome() == AnswerReceived(CMD, REPLY)
    assert not host.link.data_to_send(), "no Ack of its own"
    assert host.link.pending_ack == 0 and not host.link.busy


def test_the_next_add_carries_the_ack_and_a_command_costs_one_packet() -> None:
    host = Host()
    first_done(host)
    # Packet 01: AckAdd(ack 00, flags 03, add 01, command).
    assert host.send(CMD2) == wire(0x01, "C5 00 03 01 00 00 80 02", 0x74)
    # The reply: the Ack's status (A3: freed), then the Add's (A2: running).
    host.feed(wire(0x01, "A3 A2", 0x41))
    assert not host.events and not host.link.data_to_send()
    assert host.link.pending_ack is None, "the device has seen the Ack"
    # The result comes in F0; no Ack follows -- it waits for the next command.
    host.feed(wire(ASYNC_ID, "A6 01 55 00 00 02", 0xCA))
    assert host.outcome() == AnswerReceived(CMD2, REPLY2)
    assert not host.link.data_to_send()
    assert host.link.pending_ack == 1


def test_not_found_on_the_acks_first_carry_keeps_it_pending_once() -> None:
    """B3 to an Ack never sent before is an anomaly (a packet damaged past CRC-8 acked another
    TID): the next Add carries the Ack again, and then B3 is believed."""
    host = Host()
    first_done(host)
    host.start(CMD2)
    assert host.sent() == [(1, AckAdd(0, HOST_FLAGS, 1, CMD2))]
    host.feed(both(1, StatusCode.NOT_FOUND, Result(REPLY2)))
    # The Ack of 00 is still pending, so task 01 is acknowledged at once by itself.
    assert host.sent() == [(2, Ack(1))]
    host.feed(encode_packet(2, Result().encode()))
    assert host.outcome() == AnswerReceived(CMD2, REPLY2)
    assert host.link.pending_ack == 0
    host.start(CMD3)
    assert host.sent() == [(3, AckAdd(0, HOST_FLAGS, 2, CMD3))]
    host.feed(both(3, StatusCode.NOT_FOUND, Result(REPLY)))
    assert host.outcome() == AnswerReceived(CMD3, REPLY)
    assert host.link.pending_ack == 2, "B3 on the second carry is believed"


def test_a_resent_ackadd_answered_not_found_is_believed() -> None:
    host = Host()
    first_done(host)
    host.send(CMD2)
    host.tick()  # sent again: the first copy may have freed it
    host.link.data_to_send()
    host.feed(both(1, StatusCode.NOT_FOUND, Result(REPLY2)))
    assert host.outcome() == AnswerReceived(CMD2, REPLY2)
    assert host.link.pending_ack == 1 and not host.link.data_to_send()


def test_a_lost_ackadd_reply_resends_the_identical_packet() -> None:
    host = Host()
    first_done(host)
    first = host.send(CMD2)
    host.tick()  # no reply within the packet timeout
    assert host.link.data_to_send() == first
    host.feed(both(1, StatusCode.RESULT, Result(REPLY2)))
    assert host.outcome() == AnswerReceived(CMD2, REPLY2)
    assert host.link.pending_ack == 1


def test_already_exists_to_a_resent_ackadd_asks_for_the_task() -> None:
    """The first copy arrived (Ack done, task taken); the second gets B3 for the Ack, B2 for
    the Add -- a device without a reply cache: the host asks with Req, never adds again."""
    host = Host()
    first_done(host)
    host.send(CMD2)
    host.tick()
    host.link.data_to_send()
    host.feed(encode_packet(1, bytes((StatusCode.NOT_FOUND, StatusCode.ALREADY_EXISTS))))
    assert host.link.pending_ack is None
    assert host.sent() == [(2, Req(1))]
    host.feed(encode_packet(2, Result(REPLY2).encode()))
    assert host.outcome() == AnswerReceived(CMD2, REPLY2)
    assert host.link.pending_ack == 1


def test_a_result_without_the_ackadds_reply_is_no_proof_of_the_ack() -> None:
    """The reply to the AckAdd is lost and the task's F0 arrives: the task ran, but a packet
    damaged past CRC-8 may have acked another TID -- the older Ack stays pending and the task
    that ended is acknowledged by itself."""
    host = Host()
    first_done(host)
    host.send(CMD2)
    host.feed(encode_packet(ASYNC_ID, AsyncResult(1, REPLY2).encode()))
    assert host.sent() == [(2, Ack(1))]
    host.feed(encode_packet(2, Result().encode()))
    assert host.outcome() == AnswerReceived(CMD2, REPLY2)
    assert host.link.pending_ack == 0


def test_after_a_reconnect_an_unseen_ack_is_kept_and_the_new_result_acked_at_once() -> None:
    """The AckAdd may not have arrived: Req for the task; the older Ack stays pending, so the
    task that ended now is acknowledged by a plain Ack -- never more than one deferred."""
    host = Host()
    first_done(host)
    host.start(CMD2)
    assert host.sent() == [(1, AckAdd(0, HOST_FLAGS, 1, CMD2))]  # lost with the old port
    host.link.reconnected(host.now)
    assert host.sent() == [(2, Req(1))]
    for _ in range(SETTINGS.packet_tries):
        host.tick()  # the line stays dead
    failed = host.outcome()
    assert isinstance(failed, CommandFailed) and failed.error.maybe_executed
    assert host.link.pending_ack == 0 and host.link.unresolved_tid == 1
    host.link.data_to_send()
    # The caller retries the same bytes: resumed (Req), the older Ack still pending.
    host.start(CMD2)
    assert host.sent() == [(3, Req(1))]
    host.feed(encode_packet(3, Result(REPLY2).encode()))
    assert host.sent() == [(4, Ack(1))]
    host.feed(encode_packet(4, Result().encode()))
    assert host.outcome() == AnswerReceived(CMD2, REPLY2)
    assert host.link.pending_ack == 0
    host.start(CMD3)
    assert host.sent() == [(5, AckAdd(0, HOST_FLAGS, 2, CMD3))]


def test_a_device_that_does_not_know_ackadd_gets_plain_add_and_ack() -> None:
    host = Host()
    first_done(host)
    host.send(CMD2)
    host.feed(encode_packet(1, bytes((StatusCode.ILLEGAL_VALUE,))))  # a lone B4: unknown C5h
    # Was it really refused whole (or a damaged reply)?  Req says: B3, not there.
    assert host.sent() == [(2, Req(1))]
    host.feed(encode_packet(2, NotFound().encode()))
    assert host.sent() == [(3, Add(1, HOST_FLAGS, CMD2))]
    host.feed(encode_packet(3, Result(REPLY2).encode()))
    assert host.sent() == [(4, Ack(1))]
    host.feed(encode_packet(4, Result().encode()))
    # The Ack still pending (00's) is sent plainly too, never dropped: no slot leaks.
    assert host.sent() == [(5, Ack(0))]
    host.feed(encode_packet(5, Result().encode()))
    assert host.outcome() == AnswerReceived(CMD2, REPLY2)
    assert host.link.pending_ack is None
    host.start(CMD3)
    assert host.sent() == [(6, Add(2, HOST_FLAGS, CMD3))]


def test_a_lone_b4_that_was_a_damaged_reply_finds_the_task_and_never_adds_it_again() -> None:
    host = Host()
    first_done(host)
    host.send(CMD2)
    host.feed(encode_packet(1, bytes((StatusCode.ILLEGAL_VALUE,))))
    assert host.sent() == [(2, Req(1))]
    host.feed(encode_packet(2, Result(REPLY2).encode()))  # it was there: the AckAdd ran
    assert host.sent() == [(3, Ack(1))]
    host.feed(encode_packet(3, Result().encode()))
    assert host.sent() == [(4, Ack(0))]  # acked twice at worst: B3, never a result
    host.feed(encode_packet(4, NotFound().encode()))
    assert host.outcome() == AnswerReceived(CMD2, REPLY2)


def test_release_sends_the_pending_ack_alone() -> None:
    host = Host()
    assert host.link.release(host.now) is False
    first_done(host)
    assert host.link.release(host.now) is True
    assert host.link.data_to_send() == wire(0x01, "C2 00", _crc(1, bytes.fromhex("C2 00")))
    host.feed(encode_packet(1, Result().encode()))
    assert host.outcome() == AnswerReceived(b"", b"")
    assert host.link.pending_ack is None and host.link.unresolved_tid is None


def test_a_release_without_reply_leaves_the_tid_to_settle() -> None:
    host = Host()
    first_done(host)
    host.link.release(host.now)
    for _ in range(SETTINGS.packet_tries):
        host.tick()
    assert host.outcome() == AnswerReceived(b"", b"")
    assert host.link.unresolved_tid == 0
    host.link.data_to_send()
    host.start(CMD2)
    assert host.sent() == [(2, Req(0))]  # settled first, as any missing Ack


def test_a_new_tid_never_takes_the_pending_acks() -> None:
    host = Host(first_tid=0xDF)
    host.send(CMD)
    host.feed(encode_packet(0, Result(REPLY).encode()))
    host.outcome()
    host.start(CMD2)
    assert host.sent() == [(1, AckAdd(0xDF, HOST_FLAGS, 0, CMD2))]


def test_no_reply_to_an_ackadd_fails_as_not_sent_and_keeps_the_ack() -> None:
    host = Host()
    first_done(host)
    host.send(CMD2)
    host.link.data_to_send()
    for _ in range(SETTINGS.packet_tries):
        host.tick()
    failed = host.outcome()
    assert isinstance(failed, CommandFailed) and isinstance(failed.error, NoReply)
    assert host.link.pending_ack == 0


# -- the device end: the emulator answers AckAdd as MultiMag reads it --------------------------


def test_the_device_answers_ackadd_with_the_acks_status_then_the_adds() -> None:
    buffer = TaskBuffer()
    device = AtolDeviceLink(buffer, DeviceSettings())
    events = device.receive_data(encode_packet(0, Add(0, HOST_FLAGS, CMD).encode()), 0.0)
    assert [e for e in events if isinstance(e, TaskReady)] == [TaskReady(0, CMD)]
    assert device.data_to_send() == encode_packet(0, InProgress().encode())
    task = buffer.next_task()
    assert task is not None
    buffer.complete(0, REPLY, failed=False)
    device.task_finished(task, 0.0)
    assert device.data_to_send() == encode_packet(ASYNC_ID, AsyncResult(0, REPLY).encode())
    packet = wire(0x01, "C5 00 03 01 00 00 80 02", 0x74)
    events = device.receive_data(packet, 0.1)
    assert [e for e in events if isinstance(e, TaskReady)] == [TaskReady(1, CMD2)]
    assert device.data_to_send() == wire(0x01, "A3 A2", 0x41)
    assert buffer.get(0) is None, "task 00 freed by the Ack"
    # The identical packet again: the same reply, nothing acknowledged or added twice.
    assert device.receive_data(packet, 0.2) == []
    assert device.data_to_send() == wire(0x01, "A3 A2", 0x41)
    # An unknown acknowledged TID does not stop the Add: B3, then the Add's own status.
    device.receive_data(encode_packet(2, AckAdd(0x55, HOST_FLAGS, 2, CMD3).encode()), 0.3)
    assert device.data_to_send() == both(2, StatusCode.NOT_FOUND, Pending())
    assert [t.tid for t in buffer.tasks] == [1, 2]


def test_host_and_device_sell_a_run_of_commands_one_packet_each() -> None:
    """The two ends together (inline results): every command one request packet (but the first
    two, below), one buffer slot in use at the end (the last result, its Ack pending), none
    after `release`."""
    buffer = TaskBuffer()
    device = AtolDeviceLink(buffer, DeviceSettings(results="inline", inline=1.0))
    host = AtolHostLink(SETTINGS)
    requests = 0
    for number in range(10):
        command = bytes((0, 0, 0x80, number))
        host.send_command(command, 0.0, answer_timeout=5.0, repeatable=False)
        outcome = None
        while outcome is None:
            out = host.data_to_send()
            requests += len(PacketDeframer().read_all(out)[0])
            for event in device.receive_data(out, 0.0):
                if isinstance(event, TaskReady):
                    task = buffer.next_task()
                    assert task is not None
                    buffer.complete(task.tid, b"\x55\x00\x00" + bytes((number,)), failed=False)
                    device.task_finished(task, 0.0)
            for event in host.receive_data(device.data_to_send(), 0.0):
                if isinstance(event, AnswerReceived):
                    outcome = event
        assert outcome.answer == b"\x55\x00\x00" + bytes((number,))
    # A fresh link knows no TID free: its first two money-moving commands ask for their TID
    # first (Req, B3); from the third on, each takes a TID an earlier AckAdd freed.
    assert requests == 10 + 2
    assert len(buffer) == 1
    assert host.release(0.0)
    device.receive_data(host.data_to_send(), 0.0)
    host.receive_data(device.data_to_send(), 0.0)
    assert len(buffer) == 0 and buffer.retired == []


def test_a_trace_tells_the_acks_state_from_the_adds_reply() -> None:
    from kkt.tools.describe import AtolReader

    reader = AtolReader()
    (sent,) = reader.feed(wire(0x01, "C5 00 03 01 00 00 80 02", 0x74))
    assert sent.startswith("packet 01 host: Ack TID 00 + Add TID 01 flags=0x03")
    (answered,) = reader.feed(wire(0x01, "A3 A2", 0x41))
    assert answered == (
        "packet 01 device: Ack TID 00: result (acknowledged: its slot is free); "
        "Add InProgress (TID 01)"
    )


def test_the_pending_ack_of_a_device_without_ackadd_is_sent_plainly_not_dropped() -> None:
    """A sibling of the stale-TID hole: a pending Ack dropped when the device turns out not to
    know C5h would leave our result under TID 00 un-Acked in its buffer.  It is sent plainly
    after the task's own Ack instead, and 00 is free again only once the device says so."""
    host = Host()
    first_done(host)
    host.send(CMD2)
    host.feed(encode_packet(1, bytes((StatusCode.ILLEGAL_VALUE,))))  # a lone B4: unknown C5h
    assert host.sent() == [(2, Req(1))]
    host.feed(encode_packet(2, NotFound().encode()))
    assert host.sent() == [(3, Add(1, HOST_FLAGS, CMD2))]
    host.feed(encode_packet(3, Result(REPLY2).encode()))
    assert host.sent() == [(4, Ack(1))]
    host.feed(encode_packet(4, Result().encode()))
    assert host.sent() == [(5, Ack(0))]
    host.feed(encode_packet(5, Result().encode()))
    assert host.outcome() == AnswerReceived(CMD2, REPLY2)
    assert host.link.pending_ack is None and host.link.unresolved_tid is None
