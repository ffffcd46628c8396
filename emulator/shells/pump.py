"""The link pump: one Shtrih device link on one byte stream, shared by the TCP and pty shells.

The link (`kkt.protocols.shtrih.device.ShtrihDeviceLink`) is sans-IO; this is its I/O half.  A shell
hands over every chunk it reads (`LinkPump.feed`) and a function that writes bytes; the pump gives
the link the loop's monotonic time, arms one loop timer at the link's next deadline, runs each
taken command on the shared `DeviceRunner` and hands the answer back to the link.  Nothing here
raises into the shell: a failure of this link is logged and reported through ``on_error``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from kkt.protocols.shtrih.device import ShtrihDeviceLink
from kkt.protocols.shtrih.link import CommandReceived, DeviceSettings, Event

from ..faults import Faults
from .runner import DeviceRunner

log = logging.getLogger(__name__)


def link_settings(
    settings: DeviceSettings | None, default: DeviceSettings, *, filler_after_ack: bool
) -> DeviceSettings:
    """``settings`` (or the shell's default) for timing; ``filler_after_ack`` always decides."""
    return dataclasses.replace(settings or default, filler_after_ack=filler_after_ack)


class StreamPump:
    """What every protocol's pump does alike: write the link's bytes (through the wire faults),
    keep one loop timer at the link's next deadline, and give up a link that failed.

    A subclass sets ``_link`` (anything with ``data_to_send``, ``get_timer``, ``handle_timer``),
    ``_loop``, ``_write``, ``_name``, ``_on_error``, ``_faults``, ``_timer``, ``_write_at`` and
    ``_closed``, and provides ``_step`` and ``close``.
    """

    _link: Any
    _loop: asyncio.AbstractEventLoop
    _write: Callable[[bytes], None]
    _name: str
    _on_error: Callable[[], None] | None
    _faults: Faults
    _timer: asyncio.TimerHandle | None
    _write_at: float
    _closed: bool

    def _step(self, step: Callable[[], list[Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _fail(self, what: str) -> None:
        log.debug("%s: %s; giving up this link", self._name, what, exc_info=True)
        self.close()
        if self._on_error is not None:
            self._on_error()

    def _flush(self) -> None:
        data = self._faults.mangle(self._link.data_to_send())
        if not data:
            return
        if not (self._faults.delay or self._faults.split):
            self._write(data)
            return
        chunks = [data[i : i + 1] for i in range(len(data))] if self._faults.split else [data]
        for chunk in chunks:
            self._write_at = max(self._write_at, self._loop.time()) + self._faults.delay
            self._loop.call_at(self._write_at, self._write_late, chunk)

    def _write_late(self, chunk: bytes) -> None:
        if not self._closed:
            self._write(chunk)

    def _arm(self) -> None:
        deadline = self._link.get_timer()
        if self._timer is not None and deadline == self._timer.when():
            return
        self._cancel_timer()
        if deadline is not None and not self._closed:
            self._timer = self._loop.call_at(deadline, self._fire, deadline)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self, deadline: float) -> None:
        self._timer = None
        # The loop may run a timer a clock tick early; the link must see its deadline reached,
        # or it would hand back the same deadline and the loop would spin until it passes.
        now = max(self._loop.time(), deadline)
        self._step(lambda: self._link.handle_timer(now))


class LinkPump(StreamPump):
    """Drives one `ShtrihDeviceLink` on the running event loop."""

    def __init__(
        self,
        runner: DeviceRunner,
        write: Callable[[bytes], None],
        settings: DeviceSettings,
        *,
        name: str,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._runner = runner
        self._write = write
        self._name = name
        self._on_error = on_error
        self._link = ShtrihDeviceLink(settings)
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._faults = runner.faults
        self._write_at = 0.0  # delayed writes leave in order
        self._faults.attach(self.power_cycle)

    def power_cycle(self) -> None:
        """The device lost power: the link forgets the command and answer in flight."""
        if self._closed:
            return

        def cycle() -> list[Event]:
            self._link.power_cycle()
            return []

        self._step(cycle)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The command being executed, if any (it outlives `close`; see `wait_closed`)."""
        return self._task

    def feed(self, data: bytes) -> None:
        """Bytes read from the line."""
        if not self._closed:
            data = self._faults.mangle(data)
            self._step(lambda: self._link.receive_data(data, self._loop.time()))

    def close(self) -> None:
        """Stop reacting.  A command already running finishes (the device cannot be stopped
        mid-document, nor can a real register); its answer is dropped."""
        self._closed = True
        self._cancel_timer()
        self._faults.detach(self.power_cycle)

    async def wait_closed(self) -> None:
        """Wait for the command that was running at `close` to finish."""
        if self._task is not None:
            await asyncio.wait([self._task])

    # -- internals ------------------------------------------------------------------------------

    def _step(self, step: Callable[[], list[Event]]) -> None:
        """Run one link call, write what it produced, start commands, re-arm the timer."""
        try:
            events = step()
            for event in events:
                if isinstance(event, CommandReceived):
                    if self._answer_now(event.command):
                        continue
                    # The link takes one command at a time (it NAKs frames while executing), so
                    # at most one of these tasks is alive per pump.
                    self._task = self._loop.create_task(self._execute(event.command))
                else:
                    log.debug("%s: %s", self._name, event)
            self._flush()
            self._arm()
        except Exception:
            self._fail("link failure")

    def _answer_now(self, command: bytes) -> bool:
        """A quick query answered in this very step: its answer leaves in the same write as the
        ACK to its frame (a register answering at once looks the same on the wire).  Not while a
        device fault is pending: those act between the ACK and the answer."""
        f = self._faults
        if f.drop_answers or f.lose_answers or f.hang_up or f.lose_rate:
            return False
        try:
            answer = self._runner.execute_now(command)
        except Exception:
            log.exception("%s: the device failed on command %s", self._name, command[:2].hex(" "))
            self._link.power_cycle()
            return True
        if answer is None:
            return False
        try:
            self._link.send_answer(answer, self._loop.time())
        except Exception:
            log.exception("%s: the device gave an answer no frame can carry", self._name)
            self._link.power_cycle()
        return True

    async def _execute(self, command: bytes) -> None:
        try:
            answer = await self._runner.execute(command)
        except Exception:
            # A device bug.  The register "reboots": it forgets the command, so the host's ENQ
            # gets NAK and its driver reports the outcome as unknown instead of hanging.
            log.exception("%s: the device failed on command %s", self._name, command[:2].hex(" "))
            if not self._closed:
                self._link.power_cycle()
                self._arm()
            return
        if self._closed:
            log.debug("%s: answer %s dropped, the line is gone", self._name, answer[:2].hex(" "))
            return
        if self._faults.take("hang_up"):
            # The work is done; the network drops (or the register reboots) before the answer.
            self._link.power_cycle()
            self._fail("fault: command executed, then the line hung up")
            return
        if self._faults.lose_this_answer():
            log.debug("%s: fault: command executed, answer forgotten", self._name)
            self._link.power_cycle()
            self._arm()
            return
        try:
            self._link.send_answer(answer, self._loop.time())
        except Exception:
            log.exception("%s: the device gave an answer no frame can carry", self._name)
            self._link.power_cycle()
        if self._faults.take("drop_answers"):
            log.debug("%s: fault: answer frame lost on the line", self._name)
            self._link.data_to_send()
        self._step(lambda: [])
