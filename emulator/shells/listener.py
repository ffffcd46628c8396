"""What every shell's server has in common: close, wait, ``async with``, and its pumps."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from .pump import Pump

# write, name, on_error -> a pump on that stream
PumpFactory = Callable[[Callable[[bytes], None], str, Callable[[], None] | None], Pump]


class Listener:
    """Base of the shells' servers: ``async with server:`` closes it and waits on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    async def wait_closed(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()
