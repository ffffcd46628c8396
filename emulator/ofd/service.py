"""One emulated OFD served: its state directory (owned by one process), TCP listener and control
channel.  `OfdThread` runs one on a background thread's event loop, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..shells.loop_thread import LoopThread
from ..state import TEST_OFD_INN, StateBusy, StateLock
from .control import SOCKET_NAME, OfdControls, serve_control
from .server import OfdServer
from .store import OfdStore


class OfdStateBusy(Exception):
    """The OFD's state directory is held by another process: nothing in it was touched."""

    def __init__(self, busy: StateBusy) -> None:
        owner = busy.owner
        super().__init__(
            f"the OFD state {busy.state} is in use by {owner}: one state has one owner; "
            f"stop it with `kkt ofd stop --state {busy.state}` or use another --state"
        )
        self.owner = owner


class OfdService:
    """An emulated OFD on the running loop: `start` takes the state and listens; `close` ends."""

    def __init__(
        self,
        state: Path,
        *,
        ofd_inn: str = TEST_OFD_INN,
        clock: Callable[[], dt.datetime] = dt.datetime.now,
    ) -> None:
        self.state = state
        self.ofd_inn = ofd_inn
        self.clock = clock
        self.server: OfdServer | None = None
        self.controls: OfdControls | None = None
        self._lock: StateLock | None = None
        self._store: OfdStore | None = None
        self._control: asyncio.Server | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, command: str = "") -> None:
        """Own the state, open the store, listen on TCP and on the control socket; raises
        `OfdStateBusy` or `OSError` (nothing is left open then)."""
        self.state.mkdir(parents=True, exist_ok=True)
        try:
            self._lock = StateLock.acquire(self.state, command=command or None)
        except StateBusy as busy:
            raise OfdStateBusy(busy) from None
        try:
            self._store = OfdStore(self.state)
            self.server = OfdServer(self._store, ofd_inn=self.ofd_inn, clock=self.clock)
            await self.server.start(host, port)
            self.controls = OfdControls(self.server)
            self._control = await serve_control(self.state, self.controls)
            self._lock.announce(
                command=command or None, serving=True, urls=(self.address,), protocol="ofd"
            )
        except BaseException:
            await self.close()
            raise

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"{self.server.host}:{self.server.port}"

    async def close(self) -> None:
        if self._control is not None:
            self._control.close()
            await self._control.wait_closed()
            (self.state / SOCKET_NAME).unlink(missing_ok=True)
            self._control = None
        if self.server is not None:
            await self.server.close()
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


class OfdThread(LoopThread):
    """An `OfdService` on 127.0.0.1 (a free port: `port`) run by a background thread; ``with``
    starts it and stops it (thread joined).  `control` sends a control request from any thread."""

    what = "the emulated OFD"

    def __init__(self, state: Path, *, ofd_inn: str = TEST_OFD_INN) -> None:
        super().__init__(name="kkt-ofd")
        self.service = OfdService(state, ofd_inn=ofd_inn)
        self.port = 0

    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one control request (as `kkt ofd ctl` would send it) on the OFD's loop."""
        assert self.service.controls is not None
        answer: dict[str, Any] = self.run_on_loop(self.service.controls.handle(request), 10)
        return answer

    async def _serve(self) -> None:
        assert self._stop is not None
        await self.service.start()
        try:
            assert self.service.server is not None
            self.port = self.service.server.port
            self._ready.set()
            await self._stop.wait()
        finally:
            await self.service.close()
