"""Unit tests of the Shtrih-M link ends (`ShtrihHostLink`, `ShtrihDeviceLink`), one at a time.

Each test plays the other end of the wire by hand: it feeds the bytes a host (or a device) would
send and checks exactly what the link writes back and which events it reports.  Time is virtual:
`Side` keeps a ``now`` float that only moves forward, and timers are fired at ``get_timer()``.
A few tests at the end run a HOST link against a DEVICE link over an instant, scriptable line, and
hypothesis feeds both roles arbitrary bytes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kkt.protocols.errors import FrameError
from kkt.protocols.line import AnswerReceived, BadFrame, CommandFailed, LineNoise
from kkt.protocols.shtrih.device import ShtrihDeviceLink
from kkt.protocols.shtrih.frame import ACK, ENQ, FILLER, MAX_FRAME, NAK, encode_frame
from kkt.protocols.shtrih.host import ShtrihHostLink
from kkt.protocols.shtrih.link import (
    AnswerConfirmed,
    AnswerDropped,
    AnswerLost,
    CommandReceived,
    DeviceSettings,
    EnqMode,
    HostSettings,
    LinkReady,
    NoResponse,
    NotDelivered,
    OutcomeUnknown,
    StaleAnswer,
)

# -- fixtures and helpers ---------------------------------------------------------------------

EVENT_TYPES = (
    AnswerReceived,
    CommandFailed,
    LinkReady,
    StaleAnswer,
    CommandReceived,
    AnswerConfirmed,
    AnswerDropped,
    LineNoise,
)

B_ACK = bytes((ACK,))
B_NAK = bytes((NAK,))
B_ENQ = bytes((ENQ,))
B_FF = bytes((FILLER,))

CMD_A = b"\x10\x1e\x00\x00\x00"  # short status, password 30
ANS_A = b"\x10\x00\x1e\x02\x00"
CMD_B = b"\x11\x1e\x00\x00\x00"  # long status
ANS_B = b"\x11\x00\x1e\x07"
CMD_FF45 = b"\xff\x45\x1e\x00\x00\x00"
ANS_FF45 = b"\xff\x45\x00\x01\x02"
CMD_FF46 = b"\xff\x46\x1e\x00\x00\x00"
ANS_FF46 = b"\xff\x46\x00\x05"
SHORT_FF_ERR = b"\xff\x37"  # `FF <err>`: an FF command the device does not know

FAST = HostSettings(ack=0.1, byte=0.1, quiet=0.05, answer=0.5, probe=10.0, max_enq=3, max_resend=3)
DEV = DeviceSettings(byte=0.05, confirm=0.05)


def frame(payload: bytes) -> bytes:
    return encode_frame(payload)


def bad_lrc(payload: bytes) -> bytes:
    """A frame for ``payload`` whose checksum byte is wrong."""
    good = encode_frame(payload)
    return good[:-1] + bytes((good[-1] ^ 0x5A,))


@dataclass
class Side:
    """A link with a virtual clock: feed bytes, fire timers, collect what it writes."""

    link: ShtrihHostLink | ShtrihDeviceLink
    now: float = 0.0
    events: list[object] = field(default_factory=list)

    def feed(self, data: bytes, dt: float = 0.001) -> list[object]:
        self.now += dt
        events = self.link.receive_data(data, self.now)
        self.events += events
        return events

    def fire(self) -> list[object]:
        """Advance to the next timer and handle it (the timer must exist and lie ahead)."""
        when = self.link.get_timer()
        assert when is not None, "expected a pending timer"
        assert when >= self.now
        self.now = when
        events = self.link.handle_timer(when)
        self.events += events
        return events

    def out(self) -> bytes:
        return self.link.data_to_send()


def host(settings_: HostSettings = FAST) -> Side:
    return Side(ShtrihHostLink(settings_))


def device(settings_: DeviceSettings = DEV) -> Side:
    return Side(ShtrihDeviceLink(settings_))


def of_type(events: list[object], kind: type) -> list[object]:
    return [e for e in events if isinstance(e, kind)]


def synced_host(settings_: HostSettings = FAST) -> Side:
    """A host that completed CMD_A (ENQ -> NAK -> frame -> ACK + answer), so AUTO may skip ENQ."""
    h = host(settings_)
    h.link.send_command(CMD_A, h.now)
    assert h.out() == B_ENQ
    h.feed(B_NAK)
    assert h.out() == frame(CMD_A)
    events = h.feed(B_ACK + frame(ANS_A))
    assert events == [AnswerReceived(CMD_A, ANS_A)]
    assert h.out() == B_ACK
    return h


def executing_device() -> Side:
    """A device that took CMD_A and has not answered yet."""
    d = device()
    assert d.feed(frame(CMD_A)) == [CommandReceived(CMD_A)]
    assert d.out() == B_ACK
    return d


def answered_device() -> Side:
    """A device that wrote ANS_A for CMD_A and waits for the host's confirmation."""
    d = executing_device()
    d.link.send_answer(ANS_A, d.now)
    assert d.out() == frame(ANS_A)
    return d


# -- DEVICE role ------------------------------------------------------------------------------


class TestDeviceHandshake:
    def test_enq_while_idle_is_naked(self) -> None:
        """Idle device: ENQ -> NAK ("nothing pending")."""
        d = device()
        assert d.feed(B_ENQ) == []
        assert d.out() == B_NAK

    def test_good_frame_is_acked_and_reported(self) -> None:
        """A good frame -> ACK and CommandReceived with the payload."""
        d = device()
        assert d.feed(frame(CMD_A)) == [CommandReceived(CMD_A)]
        assert d.out() == B_ACK
        assert d.link.executing

    def test_enq_while_executing_is_acked(self) -> None:
        """Executing (no answer yet): ENQ -> ACK ("answer is being prepared"), nothing else."""
        d = executing_device()
        assert d.feed(B_ENQ) == []
        assert d.out() == B_ACK
        assert d.link.executing

    def test_bad_lrc_is_naked_and_not_taken(self) -> None:
        """A frame with a wrong checksum -> NAK and no CommandReceived; the device stays idle."""
        d = device()
        events = d.feed(bad_lrc(CMD_A))
        assert d.out() == B_NAK
        assert of_type(events, CommandReceived) == []
        assert not d.link.executing
        d.feed(B_ENQ)
        assert d.out() == B_NAK

    def test_zero_length_frame_is_naked(self) -> None:
        """``02 00`` (LEN 0) is not a frame -> NAK, nothing taken."""
        d = device()
        events = d.feed(b"\x02\x00")
        assert d.out() == B_NAK
        assert of_type(events, CommandReceived) == []

    def test_frame_while_executing_is_naked(self) -> None:
        """One command at a time: a second frame while executing -> NAK, no CommandReceived."""
        d = executing_device()
        events = d.feed(frame(CMD_B))
        assert d.out() == B_NAK
        assert of_type(events, CommandReceived) == []
        d.link.send_answer(ANS_A, d.now)  # still executing the first command
        assert d.out() == frame(ANS_A)

    def test_frame_split_into_chunks_within_byte_timeout_is_taken(self) -> None:
        """The byte timeout is per byte: a slow frame whose bytes each arrive in time is taken."""
        d = device()
        events: list[object] = []
        for byte in frame(CMD_A):
            next_at = d.now + 0.04  # < DEV.byte (0.05) after the previous byte
            timer = d.link.get_timer()
            if timer is not None and timer <= next_at:
                events += d.fire()
            d.now = next_at
            events += d.link.receive_data(bytes((byte,)), d.now)
        assert d.now > DEV.byte  # the whole frame took longer than one byte timeout
        assert events == [CommandReceived(CMD_A)]
        assert d.out() == B_ACK


class TestDeviceAnswer:
    def test_send_answer_writes_the_frame(self) -> None:
        """send_answer writes the answer frame and arms the confirmation timer."""
        d = executing_device()
        d.link.send_answer(ANS_A, d.now)
        assert d.out() == frame(ANS_A)
        assert d.link.get_timer() == pytest.approx(d.now + DEV.confirm)
        assert not d.link.executing

    def test_host_ack_confirms_and_returns_to_idle(self) -> None:
        """Host ACK -> AnswerConfirmed, nothing written, and the device is idle (ENQ -> NAK)."""
        d = answered_device()
        assert d.feed(B_ACK) == [AnswerConfirmed(ANS_A)]
        assert d.out() == b""
        assert d.link.get_timer() is None
        d.feed(B_ENQ)
        assert d.out() == B_NAK

    @pytest.mark.parametrize(("filler", "expected"), [(True, B_FF), (False, b"")])
    def test_filler_after_ack(self, filler: bool, expected: bytes) -> None:
        """filler_after_ack=True makes the device send one 0xFF after the host's ACK (only then)."""
        d = device(DeviceSettings(byte=0.05, confirm=0.05, filler_after_ack=filler))
        d.feed(frame(CMD_A))
        d.out()
        d.link.send_answer(ANS_A, d.now)
        d.out()
        assert d.feed(B_ACK) == [AnswerConfirmed(ANS_A)]
        assert d.out() == expected

    def test_host_nak_waits_for_enq_then_replays_until_acked(self) -> None:
        """Host NAK -> nothing resent; each ENQ -> ACK + the same answer; then ACK confirms."""
        d = answered_device()
        assert d.feed(B_NAK) == []
        assert d.out() == b""
        assert d.link.get_timer() is None  # nothing is resent on a timer either
        for _ in range(3):
            assert d.feed(B_ENQ) == []
            assert d.out() == B_ACK + frame(ANS_A)
        assert d.feed(B_ACK) == [AnswerConfirmed(ANS_A)]
        d.feed(B_ENQ)
        assert d.out() == B_NAK

    def test_confirm_timeout_keeps_answer_pending_and_late_ack_confirms(self) -> None:
        """No confirmation in time -> pending: ENQ still replays, and a late ACK still confirms."""
        d = answered_device()
        assert d.fire() == []
        assert d.out() == b""  # the timeout itself sends nothing
        assert d.link.get_timer() is None
        d.now += 5.0  # long after the confirmation timeout
        d.feed(B_ENQ)
        assert d.out() == B_ACK + frame(ANS_A)
        d.fire()  # the replay's own confirmation timeout
        d.now += 5.0
        assert d.feed(B_ACK) == [AnswerConfirmed(ANS_A)]
        d.feed(B_ENQ)
        assert d.out() == B_NAK

    def test_new_frame_while_answer_pending_drops_old_answer(self) -> None:
        """A new good frame with an answer pending -> AnswerDropped(old), ACK, CommandReceived."""
        d = answered_device()
        d.feed(B_NAK)
        events = d.feed(frame(CMD_B))
        assert events == [AnswerDropped(ANS_A), CommandReceived(CMD_B)]
        assert d.out() == B_ACK
        d.feed(B_ENQ)  # executing the new command, not replaying the old answer
        assert d.out() == B_ACK

    def test_new_frame_right_after_answer_drops_old_answer(self) -> None:
        """Same rule before the confirmation timeout (state answer-sent)."""
        d = answered_device()
        assert d.feed(frame(CMD_B)) == [AnswerDropped(ANS_A), CommandReceived(CMD_B)]
        assert d.out() == B_ACK


class TestDeviceLineNoise:
    def test_partial_frame_dropped_silently_on_byte_timeout(self) -> None:
        """STX LEN + a few bytes, then the byte timeout: dropped, no NAK; the next frame is ok."""
        d = device()
        partial = frame(CMD_A)[:4]
        assert of_type(d.feed(partial), CommandReceived) == []
        timer = d.link.get_timer()
        assert timer == pytest.approx(d.now + DEV.byte)
        events = d.fire()
        assert of_type(events, CommandReceived) == []
        assert [type(e.token) for e in of_type(events, LineNoise)] == [BadFrame]
        assert d.out() == b""
        assert d.link.get_timer() is None
        assert d.feed(frame(CMD_B)) == [CommandReceived(CMD_B)]
        assert d.out() == B_ACK

    def test_stray_filler_and_junk_ignored_while_idle(self) -> None:
        """0xFF and non-control junk while idle -> nothing written, nothing taken."""
        d = device()
        events = d.feed(b"\xff\xff\x41\x42\xff\x00")
        assert d.out() == b""
        assert of_type(events, CommandReceived) == []
        assert events and all(isinstance(e, LineNoise) for e in events)
        d.feed(B_ENQ)  # still idle
        assert d.out() == B_NAK

    def test_power_cycle_forgets_pending_answer(self) -> None:
        """power_cycle() drops the pending answer: ENQ -> NAK afterwards, no replay."""
        d = answered_device()
        d.feed(B_NAK)
        d.link.power_cycle()
        assert d.link.get_timer() is None
        d.feed(B_ENQ)
        assert d.out() == B_NAK

    def test_power_cycle_forgets_command_being_executed(self) -> None:
        """power_cycle() while executing: no answer can be sent any more, ENQ -> NAK."""
        d = executing_device()
        d.link.power_cycle()
        assert not d.link.executing
        with pytest.raises(RuntimeError):
            d.link.send_answer(ANS_A, d.now)
        d.feed(B_ENQ)
        assert d.out() == B_NAK


class TestDeviceMisuse:
    def test_send_answer_when_idle_raises(self) -> None:
        """send_answer without a command being executed -> RuntimeError."""
        d = device()
        with pytest.raises(RuntimeError):
            d.link.send_answer(ANS_A, 0.0)

    def test_send_answer_twice_raises(self) -> None:
        """The second send_answer for one command -> RuntimeError (the first one was written)."""
        d = answered_device()
        with pytest.raises(RuntimeError):
            d.link.send_answer(ANS_B, d.now)
        assert d.out() == b""

    def test_host_calls_on_device_link_raise(self) -> None:
        """send_command and sync are host calls: the device class has neither (the roles were
        a runtime check, RuntimeError, before the ends became two classes)."""
        d = device()
        with pytest.raises(AttributeError):
            d.link.send_command(CMD_A, 0.0)  # type: ignore[union-attr]
        with pytest.raises(AttributeError):
            d.link.sync(0.0)  # type: ignore[union-attr]
        assert d.out() == b""

    def test_device_call_on_host_link_raises(self) -> None:
        """send_answer is a device call: the host class has none."""
        h = host()
        with pytest.raises(AttributeError):
            h.link.send_answer(ANS_A, 0.0)  # type: ignore[union-attr]


# -- HOST role: the normal exchange -----------------------------------------------------------


class TestHostExchange:
    def test_first_command_starts_with_enq(self) -> None:
        """The first command syncs: only ENQ is written, not the frame."""
        h = host()
        h.link.send_command(CMD_A, 0.0)
        assert h.out() == B_ENQ
        assert h.link.busy

    def test_nak_to_enq_writes_the_frame(self) -> None:
        """ENQ -> NAK: the device is idle, the frame goes out at once."""
        h = host()
        h.link.send_command(CMD_A, 0.0)
        h.out()
        assert h.feed(B_NAK) == []
        assert h.out() == frame(CMD_A)

    def test_ack_and_answer_give_answer_received(self) -> None:
        """ACK + answer frame -> host ACKs the answer and reports AnswerReceived; then idle."""
        h = host()
        h.link.send_command(CMD_A, 0.0)
        h.out()
        h.feed(B_NAK)
        h.out()
        assert h.feed(B_ACK) == []
        assert h.out() == b""
        assert h.feed(frame(ANS_A)) == [AnswerReceived(CMD_A, ANS_A)]
        assert h.out() == B_ACK
        assert not h.link.busy
        assert h.link.get_timer() is None

    def test_auto_mode_next_command_with_other_code_skips_enq(self) -> None:
        """EnqMode.AUTO: after a good exchange a command with another code is written directly."""
        h = synced_host()
        h.link.send_command(CMD_B, h.now)
        assert h.out() == frame(CMD_B)
        assert h.feed(B_ACK + frame(ANS_B)) == [AnswerReceived(CMD_B, ANS_B)]

    def test_auto_mode_same_code_as_previous_starts_with_enq(self) -> None:
        """EnqMode.AUTO: the same code as the previous command -> ENQ first."""
        h = synced_host()
        h.link.send_command(CMD_A, h.now)
        assert h.out() == B_ENQ
        h.feed(B_NAK)
        assert h.out() == frame(CMD_A)

    def test_auto_mode_same_code_idempotent_query_is_written_directly(self) -> None:
        """A repeated status query needs no ENQ guard: the caller marks it idempotent."""
        h = synced_host()
        h.link.send_command(CMD_A, h.now, idempotent=True)
        assert h.out() == frame(CMD_A)
        assert h.feed(B_ACK + frame(ANS_A)) == [AnswerReceived(CMD_A, ANS_A)]

    def test_an_idempotent_query_with_other_parameters_keeps_the_enq_guard(self) -> None:
        """FF0A for document 42 after FF0A for 41: the same code, another question -- a replay of
        the old answer would be a wrong answer, so ENQ goes first (review finding)."""
        h = host()
        first, second = (
            b"\xff\x0a\x1e\x00\x00\x00\x29\x00\x00\x00",
            b"\xff\x0a\x1e\x00\x00\x00\x2a\x00\x00\x00",
        )
        h.link.send_command(first, 0.0, idempotent=True)
        h.out()
        h.feed(B_NAK)
        h.out()
        h.feed(B_ACK + frame(b"\xff\x0a\x00\x03"))
        h.out()
        h.link.send_command(second, h.now, idempotent=True)
        assert h.out() == B_ENQ
        # the identical query again may skip it:
        h.feed(B_NAK)
        h.out()
        h.feed(B_ACK + frame(b"\xff\x0a\x00\x04"))
        h.out()
        h.link.send_command(second, h.now, idempotent=True)
        assert h.out() == frame(second)

    def test_idempotent_query_after_a_lost_ack_and_a_lost_frame_takes_the_replay(self) -> None:
        """The host's ACK to the last answer and the next identical query's frame are both lost:
        ENQ brings back the device's copy of the previous answer -- an answer to the very same
        query, a moment older -- and the host takes it.  Harmless for a query, which is why only
        idempotent commands may skip the ENQ guard; the link is then in step again."""
        h = synced_host()  # its ACK to ANS_A is taken as lost: the device still holds ANS_A
        h.link.send_command(CMD_A, h.now, idempotent=True)
        assert h.out() == frame(CMD_A)  # ... and this frame never arrives
        h.fire()  # no ACK to the frame: wait for a quiet line
        h.fire()
        assert h.out() == B_ENQ
        assert h.feed(B_ACK + frame(ANS_A)) == [AnswerReceived(CMD_A, ANS_A)]
        assert h.out() == B_ACK and not h.link.busy
        h.link.send_command(CMD_B, h.now)  # the device is idle: the next command goes straight
        assert h.out() == frame(CMD_B)
        assert h.feed(B_ACK + frame(ANS_B)) == [AnswerReceived(CMD_B, ANS_B)]

    def test_auto_mode_same_ff_code_starts_with_enq(self) -> None:
        """FF46 then FF46: equal two-byte codes -> ENQ first; FF46 then FF45 -> direct."""
        h = host()
        h.link.send_command(CMD_FF46, 0.0)
        h.out()
        h.feed(B_NAK)
        h.out()
        h.feed(B_ACK + frame(ANS_FF46))
        h.out()
        h.link.send_command(CMD_FF46, h.now)
        assert h.out() == B_ENQ
        h.feed(B_NAK)
        h.out()
        assert h.feed(B_ACK + frame(ANS_FF46)) == [AnswerReceived(CMD_FF46, ANS_FF46)]
        h.out()
        h.link.send_command(CMD_FF45, h.now)
        assert h.out() == frame(CMD_FF45)

    def test_always_mode_every_command_starts_with_enq(self) -> None:
        """EnqMode.ALWAYS: ENQ before every command, whatever its code."""
        always = HostSettings(ack=0.1, byte=0.1, quiet=0.05, answer=0.5, enq_mode=EnqMode.ALWAYS)
        h = host(always)
        for command, answer in [(CMD_A, ANS_A), (CMD_B, ANS_B), (CMD_A, ANS_A)]:
            h.link.send_command(command, h.now)
            assert h.out() == B_ENQ
            h.feed(B_NAK)
            assert h.out() == frame(command)
            assert h.feed(B_ACK + frame(answer)) == [AnswerReceived(command, answer)]
            assert h.out() == B_ACK

    def test_forget_sync_makes_next_command_start_with_enq(self) -> None:
        """forget_sync() (port reopened): the next command syncs even with a new code."""
        h = synced_host()
        h.link.forget_sync()
        h.link.send_command(CMD_B, h.now)
        assert h.out() == B_ENQ

    def test_filler_bytes_are_skipped(self) -> None:
        """0xFF before the ACK, inside the control phase and after the answer changes nothing."""
        h = host()
        h.link.send_command(CMD_A, 0.0)
        h.out()
        assert h.feed(B_FF + B_NAK) == []
        assert h.out() == frame(CMD_A)
        assert h.feed(B_FF + B_FF + B_ACK + B_FF) == []
        assert h.out() == b""
        assert h.feed(frame(ANS_A) + B_FF) == [AnswerReceived(CMD_A, ANS_A)]
        assert h.out() == B_ACK
        assert h.feed(B_FF) == []  # the network models' filler after our ACK
        h.link.send_command(CMD_B, h.now)
        assert h.out() == frame(CMD_B)  # the filler did not cost the sync

    def test_short_ff_error_answer_is_accepted(self) -> None:
        """``FF <err>`` (payload FF 37) answers an FF46 command: AnswerReceived."""
        h = host()
        h.link.send_command(CMD_FF46, 0.0)
        h.out()
        h.feed(B_NAK)
        h.out()
        assert h.feed(B_ACK + frame(SHORT_FF_ERR)) == [AnswerReceived(CMD_FF46, SHORT_FF_ERR)]
        assert h.out() == B_ACK

    @pytest.mark.parametrize("payload", [b"", bytes(256)], ids=["empty", "256-bytes"])
    def test_unencodable_command_raises_and_leaves_link_idle(self, payload: bytes) -> None:
        """A payload no frame can carry -> FrameError at once; nothing written, still idle."""
        h = host()
        with pytest.raises(FrameError):
            h.link.send_command(payload, 0.0)
        assert h.out() == b""
        assert not h.link.busy
        h.link.send_command(CMD_A, 0.0)  # the link is still usable
        assert h.out() == B_ENQ

    def test_send_command_while_busy_raises(self) -> None:
        """One command at a time: send_command (or sync) while busy -> RuntimeError."""
        h = host()
        h.link.send_command(CMD_A, 0.0)
        with pytest.raises(RuntimeError):
            h.link.send_command(CMD_B, 0.0)
        with pytest.raises(RuntimeError):
            h.link.sync(0.0)
        assert h.out() == B_ENQ  # only the first command's ENQ


# -- HOST role: recovery ----------------------------------------------------------------------


def host_after_frame(settings_: HostSettings = FAST, *, resend: bool = True) -> Side:
    """A host that synced (ENQ -> NAK) and wrote CMD_A; waits for its ACK."""
    h = host(settings_)
    h.link.send_command(CMD_A, 0.0, resend=resend)
    assert h.out() == B_ENQ
    h.feed(B_NAK)
    assert h.out() == frame(CMD_A)
    return h


class TestHostRecovery:
    def test_bad_lrc_answer_nak_then_enq_then_repeat(self) -> None:
        """Damaged answer -> NAK at once, ENQ after the quiet period; ACK + repeat -> answer."""
        h = host_after_frame()
        h.feed(B_ACK)
        events = h.feed(bad_lrc(ANS_A))
        assert of_type(events, AnswerReceived) == []
        assert h.out() == B_NAK
        received_at = h.now
        assert h.fire() == []
        assert h.now == pytest.approx(received_at + FAST.quiet)
        assert h.out() == B_ENQ
        assert h.feed(B_ACK) == []
        assert h.feed(frame(ANS_A)) == [AnswerReceived(CMD_A, ANS_A)]
        assert h.out() == B_ACK

    def test_no_ack_then_enq_not_frame_then_nak_quiet_resends(self) -> None:
        """No ACK within ``ack`` -> ENQ after quiet (no resend); NAK + quiet line -> resend."""
        h = host_after_frame()
        written_at = h.now
        assert h.fire() == []  # the ACK timeout
        assert h.now == pytest.approx(written_at + FAST.ack)
        assert h.out() == b""  # nothing at once: wait for a quiet line
        h.fire()
        assert h.out() == B_ENQ
        assert h.feed(B_NAK) == []
        assert h.out() == b""  # not yet: the line must stay quiet first
        nak_at = h.now
        assert h.fire() == []
        assert h.now == pytest.approx(nak_at + FAST.quiet)
        assert h.out() == frame(CMD_A)
        assert h.feed(B_ACK + frame(ANS_A)) == [AnswerReceived(CMD_A, ANS_A)]

    def test_no_ack_resend_false_gives_not_delivered(self) -> None:
        """resend=False: the same confirmed non-delivery -> CommandFailed(NotDelivered, safe)."""
        h = host_after_frame(resend=False)
        h.fire()
        h.fire()
        assert h.out() == B_ENQ
        h.feed(B_NAK)
        events = h.fire()
        assert h.out() == b""
        assert len(events) == 1
        failed = events[0]
        assert isinstance(failed, CommandFailed)
        assert failed.command == CMD_A
        assert isinstance(failed.error, NotDelivered)
        assert failed.error.maybe_executed is False
        assert not h.link.busy

    def test_byte_after_nak_prevents_resend(self) -> None:
        """ENQ -> NAK followed by more bytes is not a clean 'idle': ask again, do not resend."""
        h = host_after_frame()
        h.fire()
        h.fire()
        assert h.out() == B_ENQ
        h.feed(B_NAK)
        h.feed(b"\x02\x05")  # a frame begins after the NAK
        for _ in range(4):
            h.fire()
            if not h.link.busy:
                break
            data = h.out()
            assert frame(CMD_A) not in data
            if data == B_ENQ:
                break
        else:
            pytest.fail("the host never asked again")
        assert data == B_ENQ

    def test_no_ack_then_enq_ack_reads_answer_without_resend(self) -> None:
        """Lost ACK: ENQ -> ACK means the device has the command: read the answer, no resend."""
        h = host_after_frame()
        written = [frame(CMD_A)]
        h.fire()
        h.fire()
        written.append(h.out())
        assert written[-1] == B_ENQ
        h.feed(B_ACK)
        assert h.feed(frame(ANS_A)) == [AnswerReceived(CMD_A, ANS_A)]
        written.append(h.out())
        assert written[-1] == B_ACK
        assert b"".join(written).count(frame(CMD_A)) == 1

    def test_nak_to_frame_is_not_followed_by_immediate_resend(self) -> None:
        """NAK straight to the frame: no resend; the host waits for quiet, then sends ENQ."""
        h = host_after_frame()
        h.feed(B_NAK)
        nak_at = h.now
        assert h.out() == b""
        h.fire()
        assert h.now == pytest.approx(nak_at + FAST.quiet)
        assert h.out() == B_ENQ

    def test_late_bytes_push_the_enq_back(self) -> None:
        """While waiting for quiet, every byte restarts the quiet period (it is discarded)."""
        h = host_after_frame()
        h.feed(B_NAK)
        h.feed(b"\x41", dt=0.03)
        last_at = h.now
        h.fire()
        assert h.now == pytest.approx(last_at + FAST.quiet)
        assert h.out() == B_ENQ

    def test_silent_device_at_sync_fails_not_executed(self) -> None:
        """No reply to any of max_enq ENQs before the frame -> NoResponse, maybe_executed False."""
        h = host()
        h.link.send_command(CMD_A, 0.0)
        written = h.out()
        events: list[object] = []
        for _ in range(50):
            if not h.link.busy:
                break
            events += h.fire()
            written += h.out()
        assert written == B_ENQ * FAST.max_enq
        assert len(events) == 1
        failed = events[0]
        assert isinstance(failed, CommandFailed)
        assert isinstance(failed.error, NoResponse)
        assert failed.error.maybe_executed is False
        assert h.link.get_timer() is None

    def test_busy_device_at_sync_says_so(self) -> None:
        """ENQ keeps getting ACK and no answer comes: NoResponse that says the register is busy."""
        h = host()
        h.link.send_command(CMD_A, 0.0)
        written = h.out()
        events: list[object] = []
        for _ in range(100):
            if not h.link.busy:
                break
            if written.endswith(B_ENQ):
                events += h.feed(B_ACK)
            events += h.fire()
            written = h.out()
        assert frame(CMD_A) not in written
        failed = of_type(events, CommandFailed)
        assert len(failed) == 1
        assert isinstance(failed[0].error, NoResponse)
        assert failed[0].error.maybe_executed is False
        assert "busy" in str(failed[0].error)

    def test_silent_device_after_frame_fails_maybe_executed(self) -> None:
        """Silence after the frame was written -> NoResponse with maybe_executed True."""
        h = host_after_frame()
        written = b""
        events: list[object] = []
        for _ in range(50):
            if not h.link.busy:
                break
            events += h.fire()
            written += h.out()
        assert frame(CMD_A) not in written  # never resent without an ENQ -> NAK
        assert written == B_ENQ * FAST.max_enq  # every allowed ENQ try is used
        assert len(events) == 1
        failed = events[0]
        assert isinstance(failed, CommandFailed)
        assert isinstance(failed.error, NoResponse)
        assert failed.error.maybe_executed is True

    def test_answer_timeout_enq_ack_waits_nak_fails_answer_lost(self) -> None:
        """No answer in time -> ENQ; ACK -> wait again; then NAK -> AnswerLost(maybe_executed)."""
        h = host_after_frame()
        h.feed(B_ACK)
        acked_at = h.now
        assert h.fire() == []
        assert h.now == pytest.approx(acked_at + FAST.answer)
        assert h.out() == B_ENQ
        assert h.feed(B_ACK) == []  # "being prepared"
        ack2_at = h.now
        assert h.out() == b""
        assert h.fire() == []
        assert h.now == pytest.approx(ack2_at + FAST.answer)  # waited a full answer time again
        assert h.out() == B_ENQ
        events = h.feed(B_NAK)
        assert len(events) == 1
        failed = events[0]
        assert isinstance(failed, CommandFailed)
        assert isinstance(failed.error, AnswerLost)
        assert failed.error.maybe_executed is True
        assert h.out() == b""  # never resent
        assert not h.link.busy

    def test_per_command_answer_timeout_is_used(self) -> None:
        """send_command(answer_timeout=...) overrides HostSettings.answer."""
        h = host()
        h.link.send_command(CMD_A, 0.0, answer_timeout=2.0)
        h.out()
        h.feed(B_NAK)
        h.out()
        h.feed(B_ACK)
        acked_at = h.now
        h.fire()
        assert h.now == pytest.approx(acked_at + 2.0)
        assert h.out() == B_ENQ

    def test_probe_asks_early_without_spending_the_answer_time(self) -> None:
        """Silence after the ACK: ENQ after ``probe``; ACK (preparing) -> wait on, same deadline."""
        probing = dataclasses.replace(FAST, probe=0.1, answer=0.5)
        h = host_after_frame(probing)
        h.feed(B_ACK)
        acked_at = h.now
        assert h.fire() == []
        assert h.now == pytest.approx(acked_at + 0.1)
        assert h.out() == B_ENQ
        h.feed(B_ACK)  # still preparing
        h.fire()
        assert h.out() == B_ENQ  # probes again ...
        h.feed(B_ACK)
        for _ in range(10):
            if h.now >= acked_at + 0.5:
                break
            h.fire()
            if h.out() == B_ENQ:
                h.feed(B_ACK)
        events = h.feed(frame(ANS_A))
        assert of_type(events, AnswerReceived) == [AnswerReceived(CMD_A, ANS_A)]

    def test_probe_collects_an_answer_lost_on_the_line(self) -> None:
        """The answer frame never arrived: the probe's ENQ gets ACK + the replayed answer."""
        probing = dataclasses.replace(FAST, probe=0.1, answer=30.0)
        h = host_after_frame(probing)
        h.feed(B_ACK)
        h.fire()
        assert h.out() == B_ENQ
        assert h.now < 0.5  # not the 30 s answer time
        events = h.feed(B_ACK + frame(ANS_A))
        assert of_type(events, AnswerReceived) == [AnswerReceived(CMD_A, ANS_A)]
        assert h.out() == B_ACK

    def test_stale_answer_after_lost_frame_is_skipped_then_resent(self) -> None:
        """AUTO: our last ACK and the next frame were lost; the device replays the old answer.

        The host sees another command's code -> StaleAnswer, ACKs it, asks with ENQ; NAK and a
        quiet line -> the frame is sent again and its own answer is taken.
        """
        h = synced_host()  # its ACK to ANS_A is "lost": the device still holds ANS_A
        h.link.send_command(CMD_B, h.now)
        assert h.out() == frame(CMD_B)  # written directly, and lost
        h.fire()
        h.fire()
        assert h.out() == B_ENQ
        events = h.feed(B_ACK + frame(ANS_A))
        assert StaleAnswer(ANS_A) in events
        assert of_type(events, AnswerReceived) == []
        assert h.out() == B_ACK
        h.fire()
        assert h.out() == B_ENQ
        h.feed(B_NAK)
        assert h.out() == b""
        h.fire()
        assert h.out() == frame(CMD_B)
        assert h.feed(B_ACK + frame(ANS_B)) == [AnswerReceived(CMD_B, ANS_B)]

    def test_foreign_answer_after_synced_frame_is_outcome_unknown(self) -> None:
        """ENQ -> NAK preceded the frame, yet the answer has another code: OutcomeUnknown."""
        h = host_after_frame()
        events = h.feed(B_ACK + frame(ANS_B))
        assert h.out() == B_ACK  # confirmed, so the device does not replay it
        assert len(events) == 1
        failed = events[0]
        assert isinstance(failed, CommandFailed)
        assert isinstance(failed.error, OutcomeUnknown)
        assert failed.error.maybe_executed is True
        h.link.send_command(CMD_B, h.now)  # after trouble the next command syncs
        assert h.out() == B_ENQ

    def test_unsolicited_bytes_while_idle_make_next_command_sync(self) -> None:
        """Bytes nobody asked for while idle -> the next command (new code) starts with ENQ."""
        h = synced_host()
        assert of_type(h.feed(B_ACK), LineNoise)
        assert h.out() == b""
        h.link.send_command(CMD_B, h.now)
        assert h.out() == B_ENQ

    def test_replay_of_last_answer_while_idle_is_confirmed_again(self) -> None:
        """The device repeats the answer we already took (our ACK lost): the host ACKs again."""
        h = synced_host()
        events = h.feed(frame(ANS_A))
        assert of_type(events, AnswerReceived) == []
        assert h.out() == B_ACK

    def test_crossed_enq_makes_next_command_sync(self) -> None:
        """The answer crossed our ENQ (sent at the answer timeout): next command syncs first."""
        h = host_after_frame()
        h.feed(B_ACK)
        h.fire()
        assert h.out() == B_ENQ
        assert h.feed(frame(ANS_A)) == [AnswerReceived(CMD_A, ANS_A)]
        assert h.out() == B_ACK
        h.link.send_command(CMD_B, h.now)  # a new code, but the device may replay ANS_A
        assert h.out() == B_ENQ


class TestHostSync:
    def test_sync_nak_gives_link_ready(self) -> None:
        """sync(): ENQ -> NAK -> LinkReady; nothing else written."""
        h = host()
        h.link.sync(0.0)
        assert h.out() == B_ENQ
        assert h.feed(B_NAK) == [LinkReady()]
        assert h.out() == b""
        assert not h.link.busy

    def test_sync_drains_a_stale_answer(self) -> None:
        """sync(): ENQ -> ACK + old answer -> host ACK + StaleAnswer; ENQ again -> NAK -> ready."""
        h = host()
        h.link.sync(0.0)
        assert h.out() == B_ENQ
        assert h.feed(B_ACK) == []
        assert h.feed(frame(ANS_A)) == [StaleAnswer(ANS_A)]
        assert h.out() == B_ACK
        h.fire()
        assert h.out() == B_ENQ
        assert h.feed(B_NAK) == [LinkReady()]
        h.link.send_command(CMD_B, h.now)  # synced: no ENQ needed
        assert h.out() == frame(CMD_B)

    def test_command_sync_drains_stale_answer_then_writes_frame(self) -> None:
        """A command's ENQ finds an old answer: it is confirmed and skipped, then the frame."""
        h = host()
        h.link.send_command(CMD_B, 0.0)
        h.out()
        assert h.feed(B_ACK + frame(ANS_A)) == [StaleAnswer(ANS_A)]
        assert h.out() == B_ACK
        h.fire()
        assert h.out() == B_ENQ
        h.feed(B_NAK)
        assert h.out() == frame(CMD_B)


def ff46_answered(sync_after: bool) -> Side:
    """A host whose FF46 was answered (after ENQ -> NAK); ``sync_after`` as the caller said."""
    h = host()
    h.link.send_command(CMD_FF46, 0.0, sync_after=sync_after)
    assert h.out() == B_ENQ
    h.feed(B_NAK)
    assert h.out() == frame(CMD_FF46)
    assert h.feed(B_ACK + frame(ANS_FF46)) == [AnswerReceived(CMD_FF46, ANS_FF46)]
    return h


class TestHostAskAhead:
    """The next exchange's ENQ written with this one's final ACK or NAK (`sync_after`, HELD)."""

    def test_sync_after_writes_the_next_syncs_enq_with_the_ack(self) -> None:
        h = ff46_answered(sync_after=True)
        assert h.out() == B_ACK + B_ENQ  # one write
        h.link.send_command(CMD_FF46, h.now)
        assert h.out() == b""  # the ENQ is out already: wait for its reply
        assert h.link.busy and h.link.get_timer() is not None
        h.feed(B_NAK)
        assert h.out() == frame(CMD_FF46)
        assert h.feed(B_ACK + frame(ANS_FF46)) == [AnswerReceived(CMD_FF46, ANS_FF46)]

    def test_without_sync_after_the_ack_goes_alone(self) -> None:
        h = ff46_answered(sync_after=False)
        assert h.out() == B_ACK
        h.link.send_command(CMD_FF46, h.now)
        assert h.out() == B_ENQ

    def test_a_wrong_guess_still_waits_for_the_reply_before_the_frame(self) -> None:
        """The caller said FF46 would follow, and another command came: its frame never goes out
        while that ENQ is unanswered (the reply would be taken for the frame's ACK or NAK)."""
        h = ff46_answered(sync_after=True)
        assert h.out() == B_ACK + B_ENQ
        h.link.send_command(CMD_FF45, h.now)
        assert h.out() == b""
        h.feed(B_NAK)
        assert h.out() == frame(CMD_FF45)

    def test_the_reply_waiting_in_the_port_after_a_long_pause_is_taken(self) -> None:
        """The caller took longer than ``ack`` before its next command: the NAK has been in the
        port all along and is read before the timer matters."""
        h = ff46_answered(sync_after=True)
        h.out()
        h.now += 10 * FAST.ack
        h.link.send_command(CMD_FF46, h.now)
        assert h.out() == b""
        h.feed(B_NAK)
        assert h.out() == frame(CMD_FF46)

    def test_no_reply_to_the_enq_asked_ahead_is_asked_again(self) -> None:
        """The ENQ (or its NAK) was lost: the sync times out and asks again, as any sync."""
        h = ff46_answered(sync_after=True)
        h.out()
        h.link.send_command(CMD_FF46, h.now)
        assert h.out() == b""
        h.fire()  # no reply within ``ack``
        h.fire()  # a quiet line
        assert h.out() == B_ENQ
        h.feed(B_NAK)
        assert h.out() == frame(CMD_FF46)

    def test_our_ack_lost_the_enq_asked_ahead_brings_the_old_answer_back(self) -> None:
        """The device never had our ACK: it answers the ENQ with ACK and the old answer, which
        is confirmed and skipped (`StaleAnswer`), then the device is asked again -- no frame
        goes out before it says NAK, so the old answer is never taken for the new FF46's."""
        h = ff46_answered(sync_after=True)
        assert h.out() == B_ACK + B_ENQ
        h.link.send_command(CMD_FF46, h.now)
        assert h.feed(B_ACK) == []
        assert h.feed(frame(ANS_FF46)) == [StaleAnswer(ANS_FF46)]
        assert h.out() == B_ACK
        h.fire()
        assert h.out() == B_ENQ
        h.feed(B_NAK)
        assert h.out() == frame(CMD_FF46)

    def test_a_nak_read_between_exchanges_lets_the_next_frame_go_straight(self) -> None:
        """The reply to the ENQ asked ahead, read while no exchange runs (a caller that reads
        the port itself): NAK says the device holds nothing, so even the same code may go."""
        h = ff46_answered(sync_after=True)
        h.out()
        assert h.feed(B_NAK) == []
        h.link.send_command(CMD_FF46, h.now)
        assert h.out() == frame(CMD_FF46)

    def test_an_ack_read_between_exchanges_makes_the_next_command_sync(self) -> None:
        h = ff46_answered(sync_after=True)
        h.out()
        h.feed(B_ACK)
        h.link.send_command(CMD_B, h.now)
        assert h.out() == B_ENQ

    def test_forget_sync_drops_the_enq_asked_ahead(self) -> None:
        """A reopened port: the ENQ went down the old one, so the next command asks anew."""
        h = ff46_answered(sync_after=True)
        h.out()
        h.link.forget_sync()
        h.link.send_command(CMD_FF46, h.now)
        assert h.out() == B_ENQ

    def test_the_held_answers_copy_is_asked_with_the_nak(self) -> None:
        """FF45's answer is NAKed and the copy's ENQ leaves in the same write; the replay then
        writes nothing and takes the device's ACK and copy."""
        h = synced_host()
        h.link.send_command(CMD_FF45, h.now)
        assert h.out() == frame(CMD_FF45)
        assert h.feed(B_ACK + frame(ANS_FF45)) == [AnswerReceived(CMD_FF45, ANS_FF45)]
        assert h.out() == B_NAK + B_ENQ
        h.link.send_command(b"", h.now)
        assert h.out() == b""
        assert h.feed(B_ACK + frame(ANS_FF45)) == [AnswerReceived(b"", ANS_FF45)]
        assert h.out() == B_ACK and not h.link.busy

    def test_a_refusal_held_is_not_asked_for_again(self) -> None:
        """A refused closing (``FF 45 <err>``) is not read twice: no ENQ with its NAK, and the
        next frame goes straight out (it drops the answer the device holds)."""
        h = synced_host()
        h.link.send_command(CMD_FF45, h.now)
        h.out()
        refused = b"\xff\x45\x4e"
        assert h.feed(B_ACK + frame(refused)) == [AnswerReceived(CMD_FF45, refused)]
        assert h.out() == B_NAK
        h.link.send_command(CMD_A, h.now)
        assert h.out() == frame(CMD_A)

    def test_a_new_command_instead_of_the_copy_drains_it_first(self) -> None:
        """The caller did not ask for the copy: the device's ACK and copy answer the ENQ that
        went with the NAK; they are confirmed and skipped before the new frame goes out."""
        h = synced_host()
        h.link.send_command(CMD_FF45, h.now)
        h.out()
        h.feed(B_ACK + frame(ANS_FF45))
        assert h.out() == B_NAK + B_ENQ
        h.link.send_command(CMD_B, h.now)
        assert h.out() == b""
        assert h.feed(B_ACK + frame(ANS_FF45)) == [StaleAnswer(ANS_FF45)]
        assert h.out() == B_ACK
        h.fire()
        assert h.out() == B_ENQ
        h.feed(B_NAK)
        assert h.out() == frame(CMD_B)

    def test_against_a_device_items_and_a_closing_with_its_copy(self) -> None:
        """Three FF46 (the first two asking ahead) and FF45 with its copy, against the device
        link: every command taken once, every ENQ answered before a frame follows it."""
        h, d, port = host(), device(), bytearray()
        answers = {CMD_FF46[:2]: ANS_FF46, CMD_FF45[:2]: ANS_FF45}
        for sync_after in (True, True, False):
            h.link.send_command(CMD_FF46, h.now, sync_after=sync_after)
            converse(h, d, lambda command: answers[command[:2]], port=port)
            assert h.events[-1] == AnswerReceived(CMD_FF46, ANS_FF46)
            assert port == (B_NAK if sync_after else b"")  # the reply, for the next exchange
        h.link.send_command(CMD_FF45, h.now)
        converse(h, d, lambda command: answers[command[:2]], port=port)
        assert h.events[-1] == AnswerReceived(CMD_FF45, ANS_FF45)
        assert port == B_ACK + frame(ANS_FF45)  # the copy, waiting
        h.link.send_command(b"", h.now)
        converse(h, d, lambda command: answers[command[:2]], port=port)
        assert h.events[-1] == AnswerReceived(b"", ANS_FF45)
        taken = of_type(d.events, CommandReceived)
        assert taken == [CommandReceived(CMD_FF46)] * 3 + [CommandReceived(CMD_FF45)]
        assert not of_type(h.events, StaleAnswer)


# -- HOST against DEVICE over an instant line -------------------------------------------------


Answers = Callable[[bytes], bytes]


def converse(
    h: Side,
    d: Side,
    answer_for: Answers,
    *,
    drop: Callable[[bytes], bool] = lambda data: False,
    limit: int = 500,
    port: bytearray | None = None,
) -> None:
    """Run both links on one clock until the host is idle; ``drop`` loses host writes.  With a
    ``port``, what the device writes waits there while the host is idle, as in a real port
    (a session reads only during an exchange), for the next call."""
    now = max(h.now, d.now)
    for _ in range(limit):
        moved = False
        data = h.out()
        if data:
            moved = True
            if not drop(data):
                for event in d.link.receive_data(data, now):
                    d.events.append(event)
                    if isinstance(event, CommandReceived):
                        d.link.send_answer(answer_for(event.command), now)
        data = d.out()
        if port is not None:
            port += data
            data = b""
            if h.link.busy and port:
                data = bytes(port)
                port.clear()
        if data:
            moved = True
            h.events += h.link.receive_data(data, now)
        if moved:
            continue
        if not h.link.busy:
            break
        timers = [t for t in (h.link.get_timer(), d.link.get_timer()) if t is not None]
        assert timers, "a busy host must have a timer"
        now = max(now, min(timers))
        for side in (h, d):
            timer = side.link.get_timer()
            if timer is not None and timer <= now:
                side.events += side.link.handle_timer(now)
    else:
        pytest.fail("the exchange did not finish")
    h.now = d.now = now


def drop_first(predicate: Callable[[bytes], bool]) -> Callable[[bytes], bool]:
    """Lose the first host write matching ``predicate``, deliver everything else."""
    state = {"dropped": False}

    def drop(data: bytes) -> bool:
        if not state["dropped"] and predicate(data):
            state["dropped"] = True
            return True
        return False

    return drop


class TestHostAgainstDevice:
    def test_clean_line_sequence(self) -> None:
        """Over a clean line every command, including repeated FF46, gets its own answer once."""
        answers = {CMD_A: ANS_A, CMD_B: ANS_B, CMD_FF46: ANS_FF46}
        h, d = host(), device()
        sequence = [CMD_A, CMD_B, CMD_FF46, CMD_FF46, CMD_A]
        for command in sequence:
            h.events.clear()
            h.link.send_command(command, h.now)
            converse(h, d, answers.__getitem__)
            assert of_type(h.events, AnswerReceived) == [AnswerReceived(command, answers[command])]
        assert of_type(d.events, CommandReceived) == [CommandReceived(c) for c in sequence]

    def test_replayed_short_ff_answer_is_not_taken_for_another_ff_command(self) -> None:
        """FF45 -> `FF 37`, host ACK lost; FF46 frame lost: FF46 must still reach the device."""
        answers = {CMD_FF45: SHORT_FF_ERR, CMD_FF46: ANS_FF46}
        h, d = host(), device()
        h.link.send_command(CMD_FF45, 0.0)
        converse(h, d, answers.__getitem__, drop=lambda data: data == B_ACK)  # lose the ACK
        assert of_type(h.events, AnswerReceived) == [AnswerReceived(CMD_FF45, SHORT_FF_ERR)]
        h.events.clear()
        h.link.send_command(CMD_FF46, h.now)
        converse(h, d, answers.__getitem__, drop=drop_first(lambda data: data[:1] == b"\x02"))
        assert CommandReceived(CMD_FF46) in d.events
        assert of_type(h.events, AnswerReceived) == [AnswerReceived(CMD_FF46, ANS_FF46)]


# -- retry budget -----------------------------------------------------------------------------


def test_lost_frames_are_resent_max_resend_times_then_not_delivered() -> None:
    """Every frame lost, every ENQ answered NAK: 1 + max_resend frames, then NotDelivered."""
    budget = HostSettings(ack=0.1, byte=0.1, quiet=0.05, answer=0.5, max_enq=3, max_resend=5)
    h = host_after_frame(budget)
    frames = 1
    for _ in range(100):
        if not h.link.busy:
            break
        h.fire()
        data = h.out()
        if data == B_ENQ:
            h.feed(B_NAK)
        elif data == frame(CMD_A):
            frames += 1
    failed = of_type(h.events, CommandFailed)
    assert len(failed) == 1
    assert isinstance(failed[0].error, NotDelivered), failed[0].error
    assert failed[0].error.maybe_executed is False
    assert frames == 1 + budget.max_resend


# -- properties: arbitrary input never breaks a link ------------------------------------------


MEANINGFUL = [
    B_ACK,
    B_NAK,
    B_ENQ,
    B_FF,
    b"\x02",
    b"\x02\x00",
    frame(ANS_A),
    frame(ANS_B),
    frame(SHORT_FF_ERR),
    frame(CMD_A),
    bad_lrc(ANS_A),
    frame(ANS_A)[:3],
]

chunks = st.lists(
    st.tuples(
        st.one_of(st.binary(max_size=300), st.sampled_from(MEANINGFUL)),
        st.floats(min_value=0.0, max_value=0.3, allow_nan=False),
        st.booleans(),
    ),
    max_size=40,
)


def _check(link: ShtrihHostLink | ShtrihDeviceLink, events: list[object]) -> None:
    for event in events:
        assert isinstance(event, EVENT_TYPES), event
    assert len(link._deframer.partial) < MAX_FRAME


def _fire_until(link: ShtrihHostLink | ShtrihDeviceLink, now: float) -> None:
    """Handle every timer due by ``now``; each must move the next timer strictly later."""
    for _ in range(10_000):
        timer = link.get_timer()
        if timer is None or timer > now:
            return
        _check(link, link.handle_timer(timer))
        following = link.get_timer()
        assert following is None or following > timer, "timer re-armed at the same instant"
    pytest.fail("timers never settled")


@settings(max_examples=200, deadline=None)
@given(chunks=chunks)
def test_host_survives_arbitrary_input(chunks: list[tuple[bytes, float, bool]]) -> None:
    """HOST: any bytes in any chunks -> no exception, only link events, a busy host keeps a
    timer, the partial frame stays under 258 bytes, and a silent line then ends the exchange."""
    link = ShtrihHostLink(FAST)
    now = 0.0
    link.send_command(CMD_A, now)
    commands = [CMD_B, CMD_FF46, CMD_A]
    for index, (data, gap, start_next) in enumerate(chunks):
        now += gap
        _fire_until(link, now)
        if not link.busy and start_next:
            link.send_command(commands[index % len(commands)], now)
        _check(link, link.receive_data(data, now))
        link.data_to_send()
        if link.busy:
            assert link.get_timer() is not None
    _fire_until(link, math.inf)
    assert not link.busy


@settings(max_examples=200, deadline=None)
@given(chunks=chunks)
def test_device_survives_arbitrary_input(chunks: list[tuple[bytes, float, bool]]) -> None:
    """DEVICE: any bytes in any chunks (answering when executing) -> no exception, only link
    events, and the partial frame stays under 258 bytes."""
    link = ShtrihDeviceLink(DEV)
    now = 0.0
    for data, gap, answer in chunks:
        now += gap
        _fire_until(link, now)
        if answer and link.executing:
            link.send_answer(ANS_A, now)
        _check(link, link.receive_data(data, now))
        link.data_to_send()
    _fire_until(link, math.inf)
    assert link.get_timer() is None


def test_a_device_that_never_stops_talking_fails_the_exchange_in_bounded_time() -> None:
    """A scale or a wrong baud rate sends bytes without pause: the quiet period before ENQ never
    comes, so after `noise_limit` the host fails with a NoResponse that names the cause."""
    h = host_after_frame()
    started = h.now
    failed: list[object] = []
    for _ in range(10_000):
        failed = of_type(h.feed(b"\x41", dt=FAST.quiet / 2), CommandFailed)
        if failed:
            break
    assert len(failed) == 1
    error = failed[0].error  # type: ignore[attr-defined]
    assert isinstance(error, NoResponse)
    assert "not fallen quiet" in str(error)
    assert error.maybe_executed is True  # the frame was written before the chatter began
    assert FAST.noise_limit() < h.now - started <= FAST.noise_limit() + FAST.quiet
    assert not h.link.busy


@settings(max_examples=200, deadline=None)
@given(chunks=chunks)
def test_no_input_keeps_an_exchange_past_its_hard_bound(
    chunks: list[tuple[bytes, float, bool]],
) -> None:
    """Whatever arrives, when, and however often it repeats, every exchange ends (answer or
    typed failure) no later than `HostSettings.exchange_limit` after it began."""
    link = ShtrihHostLink(FAST)
    now = started = 0.0
    link.send_command(CMD_A, now)
    bound = FAST.exchange_limit(FAST.answer)
    for data, gap, _ in chunks * 20:  # the same adversary, again and again
        if not link.busy:
            assert now - started <= bound + gap
            link.send_command(CMD_B, now)
            started = now
        now += gap
        _fire_until(link, now)
        if link.busy:
            _check(link, link.receive_data(data, now))
            link.data_to_send()
        assert not link.busy or now - started <= bound
    _fire_until(link, math.inf)
    assert not link.busy
