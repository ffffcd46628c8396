"""Put a hand between a `Register` and its line: every exchange passes through a function.

``tap(register, through)`` replaces the register's commander; ``through(payload, send)`` sees
each command payload and returns its answer, usually ``send(payload)`` (the real exchange) --
or a damaged payload sent, a damaged answer returned, a `LinkError` raised, something done on
another connection first.  ``untap(register)`` puts the real commander back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Send = Callable[[bytes], bytes]
Through = Callable[[bytes, Send], bytes]


class Tap:
    def __init__(self, inner: Any, through: Through) -> None:
        self.inner = inner
        self.through = through

    def exchange(self, payload: bytes, **kwargs: Any) -> bytes:
        def send(data: bytes) -> bytes:
            answer: bytes = self.inner.exchange(data, **kwargs)
            return answer

        return self.through(payload, send)

    def close(self) -> None:
        self.inner.close()


def tap(register: Any, through: Through) -> Tap:
    wrapper = Tap(register.device.commander, through)
    register.device.commander = wrapper
    return wrapper


def untap(register: Any) -> None:
    if isinstance(register.device.commander, Tap):
        register.device.commander = register.device.commander.inner
