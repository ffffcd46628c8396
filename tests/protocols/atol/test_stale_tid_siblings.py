"""Siblings of the stale-TID hole (test_review_stale_tid.py): every path on which the host could
take a task another session left in the buffer -- an Ack deferred by a session that was killed
-- for the outcome of its own command.  A task's state is ours only when the TID was known free
as our Add left (`AtolHostLink._clean`) or the device answered our Add with the task's state.

The killed session is simulated in the buffer: its task under TID 05 ran (or runs) and was never
Acked.  The new link starts at TID 05, so its first task meets it.
"""

from __future__ import annotations

from collections.abc import Callable

from kkt.protocols.atol import buffer as b
from kkt.protocols.atol.device import AtolDeviceLink
from kkt.protocols.atol.host import HOST_FLAGS, AtolHostLink
from kkt.protocols.atol.link import DeviceSettings, HostSettings, TaskLost, TaskReady
from kkt.protocols.atol.packet import Packet, PacketDeframer
from kkt.protocols.atol.tasks import TaskBuffer
from kkt.protocols.line import AnswerReceived, CommandFailed

OLD_CMD = b"\x00\x00\x80\x01"
NEW_CMD = b"\x00\x00\x80\x02"
OLD_REPLY = b"\x55\x00\x00\x01"
NEW_REPLY = b"\x55\x00\x00\x02"
SETTINGS = HostSettings(packet=0.5, packet_tries=3, poll=0.2)
STALE = 5


class Rig:
    """A host link and a device (inline results) over one buffer; ``drop`` decides, for each
    host write (its decoded buffer commands), whether the line loses it."""

    def __init__(self, *, running: bool = False) -> None:
        self.buffer = TaskBuffer()
        self.device = AtolDeviceLink(self.buffer, DeviceSettings(results="inline", inline=1.0))
        # The killed session's task: added on this same line (a serial port outlives the host
        # process), run, its result reported -- its Ack deferred for good.
        self.buffer.add(STALE, HOST_FLAGS, OLD_CMD, owner=self.device)
        stale = self.buffer.next_task()
        assert stale is not None
        self.stale = stale
        if not running:
            self.buffer.complete(STALE, OLD_REPLY, failed=False)
        self.host = AtolHostLink(SETTINGS, first_tid=STALE)
        self.now = 0.0
        self.sent: list[b.BufferCommand] = []
        self.ran: list[int] = []  # TIDs of the new session's tasks the device executed

    def commands(self, data: bytes) -> list[b.BufferCommand]:
        tokens, _ = PacketDeframer().read_all(data)
        return [b.decode_buffer_command(t.data) for t in tokens if isinstance(t, Packet)]

    def run(
        self,
        command: bytes,
        *,
        repeatable: bool,
        drop: Callable[[list[b.BufferCommand]], bool] = lambda _: False,
        before_reply: Callable[[Rig], None] = lambda _: None,
    ) -> AnswerReceived | CommandFailed:
        self.host.send_command(command, self.now, answer_timeout=5.0, repeatable=repeatable)
        for _ in range(60):
            out = self.host.data_to_send()
            if not out:
                # Nothing to write: time passes to the host's next timer.
                timer = self.host.get_timer()
                assert timer is not None
                self.now = max(self.now, timer)
                events = self.host.handle_timer(self.now)
            else:
                sent = self.commands(out)
                self.sent += sent
                if not drop(sent):
                    for event in self.device.receive_data(out, self.now):
                        if isinstance(event, TaskReady):
                            task = self.buffer.next_task()
                            if task is not None:
                                self.ran.append(task.tid)
                                self.buffer.complete(task.tid, NEW_REPLY, failed=False)
                                self.device.task_finished(task, self.now)
                before_reply(self)
                events = self.host.receive_data(self.device.data_to_send(), self.now)
            ends = [e for e in events if isinstance(e, AnswerReceived | CommandFailed)]
            if ends:
                return ends[0]
        raise AssertionError("the exchange never ended")


def first_copy_lost() -> Callable[[list[b.BufferCommand]], bool]:
    """Lose the first packet that carries an Add (or AckAdd), and nothing else."""
    lost = []

    def drop(sent: list[b.BufferCommand]) -> bool:
        if not lost and any(isinstance(c, b.Add | b.AckAdd) for c in sent):
            lost.append(True)
            return True
        return False

    return drop


def not_the_old(outcome: AnswerReceived | CommandFailed) -> None:
    assert not (isinstance(outcome, AnswerReceived) and outcome.answer == OLD_REPLY), (
        "the killed session's result was given to this command"
    )


def test_a_query_whose_first_add_was_lost_is_added_again_under_another_tid() -> None:
    """B2 to the resent Add of a query: not taken as ours; the query runs under a new TID."""
    rig = Rig()
    outcome = rig.run(NEW_CMD, repeatable=True, drop=first_copy_lost())
    assert outcome == AnswerReceived(NEW_CMD, NEW_REPLY)
    assert rig.ran and STALE not in rig.ran


def test_a_money_command_on_a_fresh_link_asks_for_its_tid_first_and_skips_a_held_one() -> None:
    """No TID is known free on a fresh link: a money-moving command's Req finds 05 held (the
    stale result) and takes 06, found free (B3), where its own task is then told apart."""
    rig = Rig()
    outcome = rig.run(NEW_CMD, repeatable=False)
    assert outcome == AnswerReceived(NEW_CMD, NEW_REPLY)
    assert rig.sent[:3] == [b.Req(STALE), b.Req(STALE + 1), b.Add(STALE + 1, HOST_FLAGS, NEW_CMD)]
    assert rig.ran == [STALE + 1]


def test_a_money_command_in_a_free_tid_still_recovers_its_own_lost_reply() -> None:
    """The TID probed free (B3): the first Add lost, the resend's B2 is ours -- a Req fetches the
    command's own result, and it ran once."""
    rig = Rig()
    rig.buffer.ack(STALE)  # nothing stale this time
    outcome = rig.run(NEW_CMD, repeatable=False, drop=first_copy_lost())
    assert outcome == AnswerReceived(NEW_CMD, NEW_REPLY)
    assert rig.ran == [STALE]


def test_a_reconnect_mid_add_never_takes_the_stale_state_for_a_query() -> None:
    """The port reopened with the Add unanswered: Req(05) finds a result -- not ours for sure, so
    the query is added again under another TID."""
    rig = Rig()

    def reconnect_once(sent: list[b.BufferCommand]) -> bool:
        if any(isinstance(c, b.Add) for c in sent) and not getattr(rig, "reopened", False):
            rig.reopened = True  # type: ignore[attr-defined]
            rig.host.reconnected(rig.now)
            return True
        return False

    outcome = rig.run(NEW_CMD, repeatable=True, drop=reconnect_once)
    not_the_old(outcome)
    assert outcome == AnswerReceived(NEW_CMD, NEW_REPLY)


def test_a_stale_tasks_late_f0_is_not_our_result() -> None:
    """The killed session's task still runs; our query's Add under its TID is answered B2 and
    that reply is lost; the old task ends and the device announces it (F0, A6 05): not ours."""
    rig = Rig(running=True)
    state = {"step": 0}

    def lose_reply_then_finish(r: Rig) -> None:
        if state["step"] == 0 and any(isinstance(c, b.Add) for c in r.sent):
            state["step"] = 1
            r.device.data_to_send()  # the B2 is lost on the line
            r.buffer.complete(STALE, OLD_REPLY, failed=False)
            r.device.task_finished(r.stale, r.now)  # F0 A6 05 OLD

    outcome = rig.run(NEW_CMD, repeatable=True, before_reply=lose_reply_then_finish)
    not_the_old(outcome)
    assert outcome == AnswerReceived(NEW_CMD, NEW_REPLY)


def test_resuming_a_command_never_seen_taken_under_a_held_tid_is_not_answered_by_it() -> None:
    """A money command that never got a reply under a TID not known free fails; the same bytes
    again resume it -- and a state found under that TID is not taken for its outcome."""
    rig = Rig()
    rig.host = AtolHostLink(SETTINGS, first_tid=STALE)
    # Make the link take TID 05 without the probe: a query, every packet of which is lost.
    first = rig.run(NEW_CMD, repeatable=True, drop=lambda sent: True)
    assert isinstance(first, CommandFailed)
    outcome = rig.run(NEW_CMD, repeatable=True)
    not_the_old(outcome)
    assert outcome == AnswerReceived(NEW_CMD, NEW_REPLY)


def test_a_money_command_whose_tid_cannot_be_told_apart_fails_maybe_executed() -> None:
    """The defence behind the probe: a money command's task under a TID that is not known to be
    ours is never answered by what the TID holds; it fails "may have been executed" and the
    next command settles the TID (Req, Ack) before anything else."""
    rig = Rig()
    # A query's task under 05 never answered (every packet lost), then the same bytes again as
    # a money-moving command are a resumption of it (same command bytes).
    first = rig.run(NEW_CMD, repeatable=True, drop=lambda sent: True)
    assert isinstance(first, CommandFailed)
    outcome = rig.run(NEW_CMD, repeatable=False)
    not_the_old(outcome)
    assert isinstance(outcome, CommandFailed) and isinstance(outcome.error, TaskLost)
    assert outcome.error.maybe_executed
    assert rig.host.unresolved_tid == STALE
    rig.sent.clear()
    after = rig.run(b"\x00\x00\x80\x03", repeatable=True)
    assert isinstance(after, AnswerReceived)
    assert rig.sent[:2] == [b.Req(STALE), b.Ack(STALE)], "the TID is settled first"


def test_a_follow_up_refused_under_a_held_tid_is_never_settled_as_ours() -> None:
    """A follow-up's Add (`AtolHostLink.follow`) goes out under 05, the killed session's TID,
    and is refused B2: it was never taken.  Not asked for (another command comes first), it is
    not settled either -- no Req, no Ack of 05: that result is not ours to free."""
    query = b"\x00\x00\x3f"
    rig = Rig()
    rig.host = AtolHostLink(SETTINGS, first_tid=STALE - 1)
    rig.host.follow(NEW_CMD, query)
    assert rig.run(NEW_CMD, repeatable=True) == AnswerReceived(NEW_CMD, NEW_REPLY)
    assert b.Add(STALE, HOST_FLAGS, query) in rig.sent, "the follow-up went out under 05"
    rig.sent.clear()
    assert rig.run(NEW_CMD, repeatable=True) == AnswerReceived(NEW_CMD, NEW_REPLY)
    assert all(not isinstance(sent, b.Req | b.Ack) or sent.tid != STALE for sent in rig.sent), (
        rig.sent
    )
    assert all(getattr(sent, "ack_tid", None) != STALE for sent in rig.sent), rig.sent
    assert rig.buffer.get(STALE) is rig.stale, "the killed session's result is still there"
