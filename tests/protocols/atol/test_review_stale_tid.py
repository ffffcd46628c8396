"""Review of issue 20 (branch review-sale): ATOL's deferred Ack leaves the last task of every
session un-Acked in the register's buffer until the next command -- for good when the process is
killed (or `release`'s lone Ack is lost).  A later session's TID sequence reaches that TID within
224 commands; should the first copy of that Add be lost on the line, the resend's B2
(AlreadyExists) is read as "our earlier copy arrived" and the host takes the OLD task's result
as this command's (`AtolHostLink`, AlreadyExists with ``sends > 1``).

FAILS on main at b19e3d8: the result of another session's task is given to this command.
"""

from __future__ import annotations

from kkt.protocols.atol.device import AtolDeviceLink
from kkt.protocols.atol.host import HOST_FLAGS, AtolHostLink
from kkt.protocols.atol.link import DeviceSettings, HostSettings, TaskReady
from kkt.protocols.atol.tasks import TaskBuffer
from kkt.protocols.line import AnswerReceived, CommandFailed

OLD_CMD = b"\x00\x00\x80\x01"
NEW_CMD = b"\x00\x00\x80\x02"
OLD_REPLY = b"\x55\x00\x00\x01"
NEW_REPLY = b"\x55\x00\x00\x02"
SETTINGS = HostSettings(packet=0.5, packet_tries=3, poll=0.2)


def test_a_killed_sessions_unacked_task_answers_a_later_command_whose_first_add_was_lost() -> None:
    buffer = TaskBuffer()
    device = AtolDeviceLink(buffer, DeviceSettings(results="inline", inline=1.0))
    # The previous process: task 05 ran, its result reported, its Ack deferred -- then killed.
    buffer.add(5, HOST_FLAGS, OLD_CMD, owner=object())
    task = buffer.next_task()
    assert task is not None and task.tid == 5
    buffer.complete(5, OLD_REPLY, failed=False)
    # This process: its TID sequence is at 05 (a random first TID, or 224 commands later).
    host = AtolHostLink(SETTINGS, first_tid=5)
    now = 0.0
    host.send_command(NEW_CMD, now, answer_timeout=5.0, repeatable=False)
    host.data_to_send()  # the first copy of Add(05) is lost on the line
    outcome = None
    for _ in range(50):
        timer = host.get_timer()
        if timer is not None:
            now = max(now, timer)
        events = list(host.handle_timer(now))
        for event in device.receive_data(host.data_to_send(), now):
            if isinstance(event, TaskReady):
                ready = buffer.next_task()
                assert ready is not None
                buffer.complete(ready.tid, NEW_REPLY, failed=False)
                device.task_finished(ready, now)
        events += host.receive_data(device.data_to_send(), now)
        ends = [e for e in events if isinstance(e, AnswerReceived | CommandFailed)]
        if ends:
            outcome = ends[0]
            break
    assert outcome is not None
    assert not (isinstance(outcome, AnswerReceived) and outcome.answer == OLD_REPLY), (
        "the killed session's result was given to this command"
    )
