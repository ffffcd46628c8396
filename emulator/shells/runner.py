"""One emulated device shared by every connection: its commands run one at a time, off the loop.

``Device.execute`` is synchronous and may block (the fiscal storage fsyncs every document), so it
runs on one worker thread.  Meanwhile the event loop keeps serving the links: a host that asks
with ENQ during a long command hears ACK ("the answer is being prepared"), as from a real
register, and other connections get their NAKs and timeouts on time.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from ..faults import Faults


class Device(Protocol):
    """What a shell serves: one request payload (code + parameters) in, its answer payload out.

    Implementations are not thread-safe; `DeviceRunner` never calls them concurrently.
    """

    def execute(self, payload: bytes) -> bytes: ...


class DeviceRunner:
    """Serialises one device's commands under ``lock`` and runs them on one worker thread.

    Pass the same ``lock`` to every runner that serves the same device (a TCP server and a pty,
    say): the lock, not the thread, is what keeps their commands from interleaving.
    """

    def __init__(
        self, device: Device, lock: asyncio.Lock | None = None, faults: Faults | None = None
    ) -> None:
        self._device = device
        self._lock = lock if lock is not None else asyncio.Lock()
        self.faults = faults if faults is not None else Faults()
        # One worker: the device always sees the same thread, and a queue of one is all it needs.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kkt-device")

    async def execute(self, payload: bytes) -> bytes:
        """The device's answer to ``payload``; raises whatever the device raised."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._executor, self._device.execute, payload)
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                # A running command cannot be interrupted: keep the lock until the device is
                # done, or a command from another runner would overlap it.
                await asyncio.wait([future])
                raise

    def close(self) -> None:
        """Stop the worker thread (it waits for a command still running)."""
        self._executor.shutdown(wait=True)
