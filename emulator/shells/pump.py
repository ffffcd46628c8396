"""The pump: one device link on one byte stream, whatever the protocol.

A link (`ShtrihDeviceLink`, `AtolDeviceLink`) is sans-IO; the pump is its I/O half.
A shell hands over every chunk it reads (`Pump.feed`) and a function that writes bytes; the pump
gives the link the loop's monotonic time, writes what the link produced (through the wire
faults), keeps one loop timer at the link's next deadline and gives up a link that failed.  What
a protocol does with a taken command is its `Vendor`'s business (`shells.shtrih`: the connection
runs its command; `shells.atol`: the device's task buffer runs it, whatever the connection).
Nothing here raises into the shell: a failure of this link is logged and reported through
``on_error``.

Given a `LinkTrace`, the pump reports its link's life to it: ``open`` and ``close``, and every
chunk ``in`` (as the device received it) and ``out`` (as it left) -- raw bytes: decoding them is
the tracer's business (``kkt emulator serve -v`` decodes them with `kkt.tools.describe`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal, Protocol

from .runner import DeviceRunner

log = logging.getLogger(__name__)


TraceEvent = Literal["open", "in", "out", "close"]


class LinkTrace(Protocol):
    """Told about one link's life: ``open``, bytes ``in`` and ``out``, ``close`` (no bytes)."""

    def __call__(self, event: TraceEvent, data: bytes) -> None: ...


# Makes the trace of each new link, given its name ("tcp 127.0.0.1:40122", "pty /dev/pts/3").
TraceFactory = Callable[[str], LinkTrace]


class Vendor(Protocol):
    """A protocol's half of every pump of one device."""

    def open(self, pump: Pump) -> Any:
        """The new link of ``pump``'s stream (with ``data_to_send``, ``get_timer``,
        ``handle_timer``, ``receive_data`` and ``power_cycle``)."""

    def closed(self, pump: Pump) -> None:
        """``pump`` stopped reacting."""

    def event(self, pump: Pump, event: Any) -> bool:
        """Act on one of the link's events; False when it only needs logging."""

    def power_cycle(self, pump: Pump) -> None:
        """The device lost power: forget what it forgets (the link's memory at least)."""


class Pump:
    """Drives one device link on the running event loop (see the module docstring)."""

    def __init__(
        self,
        vendor: Vendor,
        runner: DeviceRunner,
        write: Callable[[bytes], None],
        settings: Any,
        *,
        name: str,
        on_error: Callable[[], None] | None = None,
        trace: LinkTrace | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.runner = runner
        self.faults = runner.faults
        self.settings = settings  # the link's timing, for the vendor's `open`
        self.name = name
        self.closed = False
        # What this pump started that may outlive it: its command, or the executor of the tasks.
        self.started: asyncio.Task[None] | None = None
        self._vendor = vendor
        self._write = write
        self._on_error = on_error
        self._timer: asyncio.TimerHandle | None = None
        self._write_at = 0.0  # delayed writes leave in order
        self._trace = trace
        self._traced("open", b"")
        self.link = vendor.open(self)
        self.faults.attach(self.power_cycle)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """What this pump started, while it runs (it outlives `close`; see `wait_closed`)."""
        task = self.started
        return task if task is not None and not task.done() else None

    def feed(self, data: bytes) -> None:
        """Bytes read from the line."""
        if not self.closed:
            data = self.faults.mangle(data)
            self._traced("in", data)
            self.step(lambda: self.link.receive_data(data, self.loop.time()))

    def power_cycle(self) -> None:
        """The device lost power: the link forgets what was in flight."""
        if not self.closed:
            self.step(lambda: self._vendor.power_cycle(self))

    def close(self) -> None:
        """Stop reacting.  What the device is running finishes (a register cannot be stopped
        mid-document); its answer reaches this line no more."""
        if not self.closed:
            self._traced("close", b"")
        self.closed = True
        self._cancel_timer()
        self.faults.detach(self.power_cycle)
        self._vendor.closed(self)

    async def wait_closed(self) -> None:
        """Wait for what this pump started to finish."""
        if self.started is not None:
            await asyncio.wait([self.started])

    def step(self, call: Callable[[], Any], *, drop_output: bool = False) -> None:
        """Run one link call (its events, or None), write what it produced -- nothing when
        ``drop_output`` (the line lost it) -- hand the events to the vendor, re-arm the timer."""
        try:
            events = call() or []
            if drop_output:
                self.link.data_to_send()
            for event in events:
                if not self._vendor.event(self, event):
                    log.debug("%s: %s", self.name, event)
            self._flush()
            self._arm()
        except Exception:
            self.fail("link failure")

    def fail(self, what: str) -> None:
        """Give up this link (the shell drops the connection or starts a new link)."""
        log.debug("%s: %s; giving up this link", self.name, what, exc_info=True)
        self.close()
        if self._on_error is not None:
            self._on_error()

    def device_faults(self) -> bool:
        """A device fault is pending: those act between the work and its answer."""
        f = self.faults
        return bool(f.drop_answers or f.lose_answers or f.hang_up or f.lose_rate)

    # -- internals ------------------------------------------------------------------------------

    def _flush(self) -> None:
        data = self.faults.mangle(self.link.data_to_send())
        if not data:
            return
        self._traced("out", data)
        if not (self.faults.delay or self.faults.split):
            self._write(data)
            return
        chunks = [data[i : i + 1] for i in range(len(data))] if self.faults.split else [data]
        for chunk in chunks:
            self._write_at = max(self._write_at, self.loop.time()) + self.faults.delay
            self.loop.call_at(self._write_at, self._write_late, chunk)

    def _traced(self, event: TraceEvent, data: bytes) -> None:
        if self._trace is None or (not data and event in ("in", "out")):
            return
        try:
            self._trace(event, data)
        except Exception:  # a trace must never take the link down
            log.warning(
                "%s: the trace failed; tracing stops for this link", self.name, exc_info=True
            )
            self._trace = None

    def _write_late(self, chunk: bytes) -> None:
        if not self.closed:
            self._write(chunk)

    def _arm(self) -> None:
        deadline = self.link.get_timer()
        if self._timer is not None and deadline == self._timer.when():
            return
        self._cancel_timer()
        if deadline is not None and not self.closed:
            self._timer = self.loop.call_at(deadline, self._fire, deadline)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self, deadline: float) -> None:
        self._timer = None
        # The loop may run a timer a clock tick early; the link must see its deadline reached,
        # or it would hand back the same deadline and the loop would spin until it passes.
        now = max(self.loop.time(), deadline)
        self.step(lambda: self.link.handle_timer(now))
