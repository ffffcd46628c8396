"""An asyncio service run on a background thread's own event loop, for a host in the same process
(tests, benchmarks, ``kkt demo``): what `ServiceThread` and the emulated OFD's `OfdThread` share.

``with`` starts the thread and waits until the service is ready (or re-raises why it could not
start); leaving it stops the service and joins the thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, Self


class LoopThread:
    """A subclass writes `_serve`: start the service, call `_ready.set()`, await
    `_stop.wait()`, and close the service on the way out."""

    what = "the service"  # named in "... did not start"

    def __init__(self, *, name: str) -> None:
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name=name)

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{self.what} did not start")
        if self._failure is not None:
            self._thread.join()
            raise self._start_failure(self._failure)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def run_on_loop(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        """Run ``coroutine`` on the service's loop from another thread; its result."""
        assert self._loop is not None, "start the service first"
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _start_failure(self, failure: BaseException) -> BaseException:
        """What `__enter__` raises when the service failed to start."""
        return failure

    async def _serve(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to `__enter__`
            self._failure = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self._serve()
