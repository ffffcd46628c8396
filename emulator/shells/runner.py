"""One emulated device shared by every connection: its commands run one at a time, off the loop.

``Emulated.execute`` is synchronous and may block (the fiscal storage fsyncs every document), so it
runs on one worker thread -- unless the device says a command cannot block (``quick``: a status
query touches no disk), which then runs on the loop itself and saves two thread hand-offs, most
of a query's time.  Meanwhile the event loop keeps serving the links: a host that asks
with ENQ during a long command hears ACK ("the answer is being prepared"), as from a real
register, and other connections get their NAKs and timeouts on time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from ..faults import Faults

T = TypeVar("T")


class Emulated(Protocol):
    """What a shell serves: one request payload (code + parameters) in, its answer payload out.

    Implementations are not thread-safe; `DeviceRunner` never calls them concurrently.
    """

    def execute(self, payload: bytes) -> bytes: ...


def _quick(device: Emulated, payload: bytes) -> bool:
    """The device's own ``quick(payload)`` if it has one: may this command run on the loop?"""
    quick = getattr(device, "quick", None)
    return bool(quick(payload)) if quick is not None else False


class DeviceRunner:
    """Serialises one device's commands under ``lock`` and runs them on one worker thread.

    Pass the same ``lock`` to every runner that serves the same device (a TCP server and a pty,
    say): the lock, not the thread, is what keeps their commands from interleaving.
    """

    def __init__(
        self, device: Emulated, lock: asyncio.Lock | None = None, faults: Faults | None = None
    ) -> None:
        self._device = device
        self._lock = lock if lock is not None else asyncio.Lock()
        self.faults = faults if faults is not None else Faults()
        # One worker: the device always sees the same thread, and a queue of one is all it needs.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kkt-device")
        # Called on the loop after each command the worker ran (a document may have been formed):
        # the register's OFD client wakes up on it instead of polling.
        self.after_command: list[Callable[[], None]] = []

    async def execute(self, payload: bytes) -> bytes:
        """The device's answer to ``payload``; raises whatever the device raised."""
        async with self._lock:
            if _quick(self._device, payload):
                return self._device.execute(payload)  # the lock still keeps commands apart
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._executor, self._device.execute, payload)
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                # A running command cannot be interrupted: keep the lock until the device is
                # done, or a command from another runner would overlap it.
                await asyncio.wait([future])
                raise
            finally:
                for hook in self.after_command:
                    hook()

    async def call(self, function: Callable[[], T]) -> T:
        """``function()`` run on the device's worker thread under the device's lock, between two
        commands: how the register's own parts (its OFD client) reach the device."""
        async with self._lock:
            future = asyncio.get_running_loop().run_in_executor(self._executor, function)
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                await asyncio.wait([future])  # as in `execute`: the lock outlives the call
                raise

    def execute_now(self, payload: bytes) -> bytes | None:
        """The answer at once, when the command is quick and no other command is running;
        None when it must go through `execute`.  Runs on the loop: nothing can interleave."""
        if self._lock.locked() or not _quick(self._device, payload):
            return None
        return self._device.execute(payload)

    def close(self) -> None:
        """Stop the worker thread (it waits for a command still running)."""
        self._executor.shutdown(wait=True)
