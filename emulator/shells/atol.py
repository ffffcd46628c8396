"""Serving an ATOL v3 device: the device's one task buffer runs the tasks of every connection.

An ATOL connection does not own its commands: they are tasks in the register's `TaskBuffer`,
shared by every connection of the device, and they run -- and their results wait for the host's
Ack -- whatever happens to the connection that added them.  So `AtolTasks` (one per device, kept
by the device's `Service`) holds the buffer and the one executor that runs its tasks in order
through `DeviceRunner.execute` (or `DeviceRunner.execute_now` for a quick one, answered in the
same step as its Add); the executor outlives the pump that started it, as the register's work
outlives a dropped TCP connection.  When a task ends, the pump of the connection that added it
sends the result (in an F0 packet by default, or inline: `AtolOptions`) -- if that connection
is still open.  A host on a new connection asks with Req: the result stays in the buffer.

Faults: ``lose_answers``/``lose_rate``/``drop_answers`` run the task and lose its reply packet (the
result stays in the buffer, as on a real register); ``hang_up`` runs it and then cuts the
connection before the reply.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

from kkt.protocols.atol.device import AtolDeviceLink
from kkt.protocols.atol.link import (
    ASYNC_RESULTS,
    RESULT_DELIVERIES,
    DeviceSettings,
    TaskReady,
)
from kkt.protocols.atol.tasks import (
    DEFAULT_CAPACITY,
    RETIRE_WHEN_FULL,
    WHEN_FULL,
    Task,
    TaskBuffer,
    reply_is_error,
)

from .pump import Pump
from .runner import DeviceRunner

log = logging.getLogger(__name__)

DEFAULT_PORT = 5555  # fact sheet §1.5
# On TCP a packet split across segments must survive the network's delays (as for Shtrih's TCP
# shell): a longer pause between bytes than a serial line allows.
TCP_SETTINGS = DeviceSettings(byte=0.25)


@dataclass(frozen=True, slots=True)
class AtolOptions:
    """How the served register's task buffer behaves (`kkt emulator serve --atol-*`).

    ``results``: ``"async"`` (A2 to the Add, the result in an F0 packet) or ``"inline"`` (a
    quick task's result in the Add's reply), `DeviceSettings.results`; ``capacity`` and
    ``when_full`` (``"retire"`` or ``"refuse"``): `TaskBuffer`.  Every choice keeps an executed
    task's result for ``Req`` until the host's Ack.
    """

    results: str = ASYNC_RESULTS
    capacity: int = DEFAULT_CAPACITY
    when_full: str = RETIRE_WHEN_FULL

    def __post_init__(self) -> None:
        if self.results not in RESULT_DELIVERIES:
            raise ValueError(
                f"results must be one of {', '.join(RESULT_DELIVERIES)}, got {self.results!r}"
            )
        if self.capacity < 1:
            raise ValueError(f"the buffer's capacity must be at least 1, got {self.capacity}")
        if self.when_full not in WHEN_FULL:
            raise ValueError(
                f"when_full must be one of {', '.join(WHEN_FULL)}, got {self.when_full!r}"
            )


def link_settings(
    settings: Any, *, network: bool, options: AtolOptions | None = None
) -> DeviceSettings:
    """``settings``, or the shell's default timing with ``options``' way of delivering results."""
    if settings is not None and not isinstance(settings, DeviceSettings):
        raise TypeError("an ATOL shell takes kkt.protocols.atol.link.DeviceSettings")
    if settings is not None:
        return settings
    base = TCP_SETTINGS if network else DeviceSettings()
    return replace(base, results=(options or AtolOptions()).results)


class AtolTasks:
    """The ATOL half of a device's pumps (`shells.pump.Vendor`): the device's task buffer and
    its executor."""

    def __init__(self, runner: DeviceRunner, options: AtolOptions | None = None) -> None:
        self.runner = runner
        self.options = options or AtolOptions()
        self.buffer = TaskBuffer(self.options.capacity, when_full=self.options.when_full)
        self.executor: asyncio.Task[None] | None = None  # while it runs
        self._pumps: dict[Any, Pump] = {}  # link -> the pump of its open connection
        self.buffer.subscribe(self._task_ended)

    def close(self) -> None:
        """The device is no longer served."""
        self.buffer.unsubscribe(self._task_ended)

    # -- pumps ----------------------------------------------------------------------------------

    def open(self, pump: Pump) -> AtolDeviceLink:
        link = AtolDeviceLink(self.buffer, pump.settings)
        self._pumps[link] = pump
        return link

    def closed(self, pump: Pump) -> None:
        self._pumps.pop(pump.link, None)

    def power_cycle(self, pump: Pump) -> None:
        """The buffer and this connection's packet memory are gone."""
        self.buffer.power_cycle()
        pump.link.power_cycle()

    def event(self, pump: Pump, event: Any) -> bool:
        if not isinstance(event, TaskReady):
            return False
        self._run_tasks(pump)
        return True

    # -- running tasks --------------------------------------------------------------------------

    def _run_tasks(self, pump: Pump) -> None:
        """A task was queued: run what is pending, quick ones at once, the rest on the executor."""
        if self.executor is not None and not self.executor.done():
            return  # it takes the next task when the current one ends
        first: Task | None = None
        while (task := self.buffer.next_task()) is not None:
            if pump.device_faults():
                first = task  # faults act between the work and the reply: not on the loop
                break
            try:
                reply = self.runner.execute_now(task.command)
            except Exception:
                self._device_failed(pump, task)
                return
            if reply is None:
                first = task
                break
            self._complete(task, reply)
        if first is not None:
            self.executor = pump.started = pump.loop.create_task(self._execute(pump, first))

    async def _execute(self, pump: Pump, first: Task) -> None:
        task: Task | None = first
        while task is not None:
            try:
                reply = await self.runner.execute(task.command)
            except Exception:
                self._device_failed(pump, task)
                return
            self._complete(task, reply)
            task = self.buffer.next_task()

    def _complete(self, task: Task, reply: bytes) -> None:
        """Record the result; the owner's pump hears of it through `_task_ended`."""
        self.buffer.complete(task.tid, reply, failed=reply_is_error(task.command, reply))

    def _device_failed(self, pump: Pump, task: Task) -> None:
        # A device bug: the register "reboots" and forgets its buffer; hosts hear B3 to their
        # Req and decide by their own rules (a task never confirmed is added again).
        log.exception("%s: the device failed on command %s", pump.name, task.command[:3].hex(" "))
        self.buffer.power_cycle()
        if not pump.closed:
            pump.step(pump.link.power_cycle)

    def _task_ended(self, task: Task) -> None:
        """A task of the buffer ended: if its connection is open, its pump sends the result."""
        pump = self._pumps.get(task.owner)
        if pump is None or pump.closed:
            return
        if pump.faults.take("hang_up"):
            # The work is done; the network drops before the reply.  The result stays.
            pump.fail("fault: task executed, then the line hung up")
            return
        lose = pump.faults.lose_this_answer() or pump.faults.take("drop_answers")
        if lose:
            log.debug("%s: fault: task %02X executed, its reply lost", pump.name, task.tid)
            pump.step(lambda: None)  # what is already on its way (the Add's reply) leaves
        now = pump.loop.time()
        pump.step(lambda: pump.link.task_finished(task, now), drop_output=lose)
