"""ATOL v3: the register's task buffer (`TaskBuffer`), shared by every connection of a device.

The buffer belongs to the register, not to a connection (`kkt.protocols.atol.link`): a host that
reconnects finds its task with ``Req(TID)`` on the new connection, and a task runs once however
many times its Add arrived.  An executed task's result is never denied: it answers ``Req`` until
the host's Ack, a new Add under its TID, or a power loss (`TaskBuffer`).  The I/O half runs the
tasks: `next_task` takes the next one, `complete` reports it (judged by `reply_is_error`) and
tells the watchers -- the owner's link (`kkt.protocols.atol.device.AtolDeviceLink.task_finished`)
among them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from . import buffer


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
    flags: buffer.TaskFlags
    command: bytes
    owner: object | None = None
    state: TaskState = TaskState.PENDING
    reply: bytes = b""
    stopped_by: int = 0  # STOPPED: the failed task that stopped the queue

    @property
    def ended(self) -> bool:
        return self.state in _ENDED

    def status(self) -> buffer.BufferReply:
        """The reply to ``Req`` about this task."""
        state = self.state
        if state is TaskState.PENDING:
            return buffer.Pending()
        if state is TaskState.IN_PROGRESS:
            return buffer.InProgress()
        if state is TaskState.DONE:
            return buffer.Result(self.reply)
        if state is TaskState.FAILED:
            return buffer.Error(self.reply)
        return buffer.Stopped(self.stopped_by)

    def async_status(self) -> buffer.AsyncResult | buffer.AsyncError:
        """The packet F0 announcing the end of this task."""
        if self.state is TaskState.DONE:
            return buffer.AsyncResult(self.tid, self.reply)
        return buffer.AsyncError(self.tid, self.reply)


DEFAULT_CAPACITY = 16
# Full buffer: retire the oldest ended task to make room (a host that never Acks keeps working),
# or refuse the Add with B1 (the other reading).  Either way nothing is executed and then denied.
RETIRE_WHEN_FULL = "retire"
REFUSE_WHEN_FULL = "refuse"
WHEN_FULL = (RETIRE_WHEN_FULL, REFUSE_WHEN_FULL)


class TaskBuffer:
    """The register's task buffer, shared by every connection of one device.

    Tasks run one at a time in the order they were added.  A task without NeedResult frees its
    slot when it ends.  A task with NeedResult keeps its result until the host's ``Ack``, and an
    executed task's result is never simply dropped: it answers ``Req`` (A3/A4 with the reply)
    until the host acknowledges it, a new Add takes its TID, or the register loses power.

    The queue holds ``capacity`` tasks.  The slots of ended tasks are given back without denying
    anything: such a task is *retired* -- out of the queue, its result still answered to ``Req``
    and freed by ``Ack`` -- when ``Abort`` clears the buffer, and (``when_full="retire"``, the
    default) when an Add finds the queue full; B1 then only when every slot holds a task not yet
    ended.  ``when_full="refuse"`` answers B1 to an Add while the queue is full, before anything
    runs.  Sources (fact sheet §1.4): none of the public clients (atol4j, MultiMag, Zzzzipper,
    Cyberplat's TerminalClient, SAMSON) states a capacity or an eviction rule, and two of them
    (MultiMag, Zzzzipper) never send Ack -- they rely on ``Abort`` on every connection -- so
    results a host never acknowledges must not stop the register; no capacity is published for
    any model, 16 is this emulator's [?].  A retired result is replaced when a new Add reuses its
    TID: hosts wrap their TIDs (00..DF; Zzzzipper 01..DE), so a host that never Acks reuses one
    only after a whole cycle of its own tasks.

    A task without IgnoreError that fails stops the queue: the tasks waiting behind it, and
    those added while it stays in the queue, report ``A5 TID`` (its TID) and are not run.  The
    sheet marks that rule [?] (§1.4, "presumably"); ``stop_on_error=False`` selects the other
    reading (the flag changes nothing).
    """

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        *,
        stop_on_error: bool = True,
        when_full: str = RETIRE_WHEN_FULL,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if when_full not in WHEN_FULL:
            raise ValueError(f"when_full must be one of {', '.join(WHEN_FULL)}, got {when_full!r}")
        self.capacity = capacity
        self.stop_on_error = stop_on_error
        self.when_full = when_full
        self._tasks: dict[int, Task] = {}  # the queue; insertion order is the queue order
        self._retired: dict[int, Task] = {}  # ended tasks out of the queue, kept for Req/Ack
        self._stopped_by: int | None = None
        self._watchers: list[Callable[[Task], None]] = []

    def __len__(self) -> int:
        """Tasks in the queue (retired results not counted: they take no slot)."""
        return len(self._tasks)

    @property
    def tasks(self) -> list[Task]:
        return list(self._tasks.values())

    @property
    def retired(self) -> list[Task]:
        """Ended tasks out of the queue whose results still answer Req."""
        return list(self._retired.values())

    def get(self, tid: int) -> Task | None:
        """The task under ``tid``: in the queue, else retired; None when neither holds it."""
        return self._tasks.get(tid) or self._retired.get(tid)

    def starts_now(self, tid: int) -> bool:
        """Will the executor take task ``tid`` next, at once (nothing runs, nothing before it)?"""
        for task in self._tasks.values():
            if task.state is TaskState.IN_PROGRESS:
                return False
            if task.state is TaskState.PENDING:
                return task.tid == tid
        return False

    def subscribe(self, watcher: Callable[[Task], None]) -> None:
        """Call ``watcher(task)`` whenever a task ends (`complete`); the I/O halves use it to
        tell the owner's link."""
        self._watchers.append(watcher)

    def unsubscribe(self, watcher: Callable[[Task], None]) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    # -- host commands ----------------------------------------------------------------------------

    def add(
        self, tid: int, flags: buffer.TaskFlags, command: bytes, *, owner: object | None = None
    ) -> buffer.BufferReply:
        """``Add``: A1 queued (A5 when the queue is stopped), or B1/B2/B4."""
        if int(flags) & ~int(buffer.TaskFlags.NEED_RESULT | buffer.TaskFlags.IGNORE_ERROR):
            # WaitAsyncData (or an undefined bit): this device has no source of async data.
            return buffer.IllegalValue()
        if len(command) < buffer.MIN_COMMAND_SIZE:
            return buffer.IllegalValue()
        if tid in self._tasks:
            return buffer.AlreadyExists()  # checked before the capacity: a repeat is never "full"
        if len(self._tasks) >= self.capacity and not self._make_room():
            return buffer.Overflow()
        self._retired.pop(tid, None)  # the TID is taken again: its old result is gone
        task = Task(tid, buffer.TaskFlags(flags), bytes(command), owner)
        self._tasks[tid] = task
        if self._stopped_by is not None:
            task.state = TaskState.STOPPED
            task.stopped_by = self._stopped_by
        return task.status()

    def request(self, tid: int) -> buffer.BufferReply:
        """``Req``: the task's state and kept reply (retired ones too), or B3."""
        task = self.get(tid)
        return buffer.NotFound() if task is None else task.status()

    def ack(self, tid: int) -> buffer.BufferReply:
        """``Ack``: free an ended task (its status byte); B3 for an unknown TID.

        A task that has not ended is not freed: its state (A1/A2) is the reply.
        """
        task = self.get(tid)
        if task is None:
            return buffer.NotFound()
        if not task.ended:
            return task.status()
        if self._retired.get(tid) is task:
            del self._retired[tid]
        else:
            self._remove(tid)
        status = task.status()
        if isinstance(status, buffer.Result):
            return buffer.Result()
        if isinstance(status, buffer.Error):
            return buffer.Error()
        return status

    def abort(self) -> buffer.BufferReply:
        """``Abort``: clear the queue; ``A2 TID`` when a task is executing (it cannot be stopped).

        Tasks not yet run are dropped (never executed: B3 to a Req is the truth).  Ended tasks
        are retired, not dropped: the host that added one may still ask for its result (another
        program's Abort must not make an executed receipt deniable).  The executing task stays
        in the queue and keeps its result as asked (fact sheet §1.4 after SAMSON: "A2 TID").
        """
        running: Task | None = None
        for task in self._tasks.values():
            if task.state is TaskState.IN_PROGRESS:
                running = task
            elif task.state in (TaskState.DONE, TaskState.FAILED):
                self._retired[task.tid] = task
        self._tasks.clear()
        self._stopped_by = None
        if running is None:
            return buffer.Result()
        self._tasks[running.tid] = running
        return buffer.InProgress(running.tid)

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
        """The executor finished task ``tid``; None when the buffer no longer holds it (the
        register lost power in between).  Watchers hear of it."""
        task = self._tasks.get(tid)
        if task is None or task.state is not TaskState.IN_PROGRESS:
            return None
        task.reply = bytes(reply)
        task.state = TaskState.FAILED if failed else TaskState.DONE
        if failed and self.stop_on_error and not task.flags & buffer.TaskFlags.IGNORE_ERROR:
            self._stopped_by = tid
            for other in self._tasks.values():
                if other.state is TaskState.PENDING:
                    other.state = TaskState.STOPPED
                    other.stopped_by = tid
        if not task.flags & buffer.TaskFlags.NEED_RESULT:
            self._remove(tid)
        for watcher in list(self._watchers):
            watcher(task)
        return task

    def power_cycle(self) -> None:
        """The register lost power: the buffer is gone."""
        self._tasks.clear()
        self._retired.clear()
        self._stopped_by = None

    def _make_room(self) -> bool:
        """Retire the oldest ended task of a full queue (``when_full="retire"``)."""
        if self.when_full != RETIRE_WHEN_FULL:
            return False
        oldest = next((t for t in self._tasks.values() if t.ended), None)
        if oldest is None:
            return False  # every slot holds a task not yet ended
        self._remove(oldest.tid)
        self._retired[oldest.tid] = oldest
        return True

    def _remove(self, tid: int) -> None:
        del self._tasks[tid]
        if self._stopped_by == tid:
            self._stopped_by = None  # the failed task left: the queue runs again


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
