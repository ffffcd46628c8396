"""The ATOL pump: one ATOL v3 device link on one byte stream, with `LinkPump`'s interface.

The link (`kkt.protocols.atol.link.AtolDeviceLink`) is sans-IO; this is its I/O half.  Unlike a
Shtrih link, an ATOL connection does not own its commands: they are tasks in the register's
`TaskBuffer`, shared by every connection of the device, and they run -- and their results wait
for the host's Ack -- whatever happens to the connection that added them.  So:

* every pump of one device works on the same buffer (``buffer=``; by default the one kept for
  the pump's `DeviceRunner`, which serves exactly one device);
* one executor per buffer runs its tasks in order through `DeviceRunner.execute` (or
  `DeviceRunner.execute_now` for a quick one, answered in the same step as its Add); it outlives
  the pump that started it, as the register's work outlives a dropped TCP connection;
* when a task ends, the pump of the connection that added it sends the result (inline, or in an
  F0 packet) -- if that connection is still open.  A host on a new connection asks with Req.

Faults act as in `LinkPump`: wire faults mangle bytes both ways and delay or split the writes;
``lose_answers``/``lose_rate``/``drop_answers`` run the task and lose its reply packet (the
result stays in the buffer, as on a real register); ``hang_up`` runs it and then cuts the
connection before the reply.  Nothing here raises into the shell.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable

from kkt.protocols.atol.device import AtolDeviceLink
from kkt.protocols.atol.link import DeviceSettings, Event, TaskReady
from kkt.protocols.atol.tasks import Task, TaskBuffer, reply_is_error

from .pump import StreamPump
from .runner import DeviceRunner

log = logging.getLogger(__name__)

# One buffer per device; a runner serves one device, so it names the device here.
_BUFFERS: weakref.WeakKeyDictionary[DeviceRunner, TaskBuffer] = weakref.WeakKeyDictionary()
# The executor working through each buffer, while it runs.
_EXECUTORS: weakref.WeakKeyDictionary[TaskBuffer, asyncio.Task[None]] = weakref.WeakKeyDictionary()


def shared_buffer(runner: DeviceRunner) -> TaskBuffer:
    """The task buffer of the device ``runner`` serves (made on first use)."""
    buffer = _BUFFERS.get(runner)
    if buffer is None:
        buffer = _BUFFERS[runner] = TaskBuffer()
    return buffer


class AtolPump(StreamPump):
    """Drives one `AtolDeviceLink` on the running event loop (see the module docstring)."""

    def __init__(
        self,
        runner: DeviceRunner,
        write: Callable[[bytes], None],
        settings: DeviceSettings,
        *,
        name: str,
        on_error: Callable[[], None] | None = None,
        buffer: TaskBuffer | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._runner = runner
        self._write = write
        self._name = name
        self._on_error = on_error
        self.buffer = buffer if buffer is not None else shared_buffer(runner)
        self._link = AtolDeviceLink(self.buffer, settings)
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None  # the executor this pump started
        self._closed = False
        self._faults = runner.faults
        self._write_at = 0.0  # delayed writes leave in order
        self._faults.attach(self.power_cycle)
        self.buffer.subscribe(self._task_ended)

    def power_cycle(self) -> None:
        """The device lost power: its buffer and this connection's packet memory are gone."""
        if self._closed:
            return

        def cycle() -> list[Event]:
            self.buffer.power_cycle()
            self._link.power_cycle()
            return []

        self._step(cycle)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The executor this pump started, while it runs (it outlives `close`; see
        `wait_closed`)."""
        task = self._task
        return task if task is not None and not task.done() else None

    def feed(self, data: bytes) -> None:
        """Bytes read from the line."""
        if not self._closed:
            data = self._faults.mangle(data)
            self._step(lambda: self._link.receive_data(data, self._loop.time()))

    def close(self) -> None:
        """Stop reacting.  Tasks keep running (they belong to the device); their results wait
        in the buffer for a host's Req on another connection."""
        self._closed = True
        self._cancel_timer()
        self._faults.detach(self.power_cycle)
        self.buffer.unsubscribe(self._task_ended)

    async def wait_closed(self) -> None:
        """Wait for the executor this pump started to run out of tasks."""
        if self._task is not None:
            await asyncio.wait([self._task])

    # -- internals ------------------------------------------------------------------------------

    def _step(self, step: Callable[[], list[Event]], *, drop_output: bool = False) -> None:
        """Run one link call, write what it produced, start tasks, re-arm the timer."""
        try:
            events = step()
            if drop_output:
                self._link.data_to_send()
            for event in events:
                if isinstance(event, TaskReady):
                    self._run_tasks()
                else:
                    log.debug("%s: %s", self._name, event)
            self._flush()
            self._arm()
        except Exception:
            self._fail("link failure")

    # -- running tasks --------------------------------------------------------------------------

    def _device_faults(self) -> bool:
        f = self._faults
        return bool(f.drop_answers or f.lose_answers or f.hang_up or f.lose_rate)

    def _run_tasks(self) -> None:
        """A task was queued: run what is pending, quick ones at once, the rest on the executor."""
        executor = _EXECUTORS.get(self.buffer)
        if executor is not None and not executor.done():
            return  # it takes the next task when the current one ends
        first: Task | None = None
        while (task := self.buffer.next_task()) is not None:
            if self._device_faults():
                first = task  # faults act between the work and the reply: not on the loop
                break
            try:
                reply = self._runner.execute_now(task.command)
            except Exception:
                self._device_failed(task)
                return
            if reply is None:
                first = task
                break
            self._complete(task, reply)
        if first is not None:
            self._task = self._loop.create_task(self._execute(first))
            _EXECUTORS[self.buffer] = self._task

    async def _execute(self, first: Task) -> None:
        task: Task | None = first
        while task is not None:
            try:
                reply = await self._runner.execute(task.command)
            except Exception:
                self._device_failed(task)
                return
            self._complete(task, reply)
            task = self.buffer.next_task()

    def _complete(self, task: Task, reply: bytes) -> None:
        """Record the result; the owner's pump hears of it through `_task_ended`."""
        self.buffer.complete(task.tid, reply, failed=reply_is_error(task.command, reply))

    def _device_failed(self, task: Task) -> None:
        # A device bug: the register "reboots" and forgets its buffer; hosts hear B3 to their
        # Req and decide by their own rules (a task never confirmed is added again).
        log.exception("%s: the device failed on command %s", self._name, task.command[:3].hex(" "))
        self.buffer.power_cycle()
        if not self._closed:

            def forget() -> list[Event]:
                self._link.power_cycle()
                return []

            self._step(forget)

    def _task_ended(self, task: Task) -> None:
        """A task of the buffer ended: if this connection added it, send the result."""
        if self._closed or task.owner is not self._link:
            return
        if self._faults.take("hang_up"):
            # The work is done; the network drops before the reply.  The result stays.
            self._fail("fault: task executed, then the line hung up")
            return
        lose = self._faults.lose_this_answer() or self._faults.take("drop_answers")
        if lose:
            log.debug("%s: fault: task %02X executed, its reply lost", self._name, task.tid)
        now = self._loop.time()

        def finished() -> list[Event]:
            self._link.task_finished(task, now)
            return []

        self._step(finished, drop_output=lose)
