"""Faults an emulated device can be told to suffer, at run time, through its control channel.

Wire faults act on the bytes of every link (both directions): lost bytes, flipped bits, a delay
before each chunk the device writes, chunks split into single bytes.  Device faults act on
commands: ``drop_answers`` loses the next answer frames on the line (the device keeps them and
replays them on ENQ, as a real one does); ``lose_answers`` executes the next commands and then
forgets their answers, as a register whose power flickers after the work is done; ``hang_up``
executes the next commands and then cuts the connection before the answer (a network drop, a
reboot; on a pty the link starts afresh).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FIELDS = (
    "drop",
    "corrupt",
    "delay",
    "split",
    "drop_answers",
    "lose_answers",
    "lose_rate",
    "hang_up",
    "seed",
)


@dataclass
class Faults:
    drop: float = 0.0
    corrupt: float = 0.0
    delay: float = 0.0
    split: bool = False
    drop_answers: int = 0
    lose_answers: int = 0
    lose_rate: float = 0.0  # probability any command's answer is forgotten after it ran
    hang_up: int = 0  # the next N commands run, then the connection is cut before the answer
    seed: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _links: set[Any] = field(default_factory=set, repr=False)  # live links, for a power loss

    def configure(self, **changes: Any) -> None:
        for name, value in changes.items():
            if name.startswith("_") or not hasattr(self, name):
                raise ValueError(f"unknown fault {name!r}")
            setattr(self, name, value)
        if "seed" in changes:
            self._rng.seed(self.seed)

    def settings(self) -> dict[str, Any]:
        """The public fault settings, for reports."""
        return {name: getattr(self, name) for name in FIELDS}

    def clear(self) -> None:
        self.configure(
            drop=0.0,
            corrupt=0.0,
            delay=0.0,
            split=False,
            drop_answers=0,
            lose_answers=0,
            lose_rate=0.0,
            hang_up=0,
        )

    def mangle(self, data: bytes) -> bytes:
        """Drop and corrupt bytes as configured (no-op when no wire fault is set)."""
        if not (self.drop or self.corrupt):
            return data
        out = bytearray()
        for byte in data:
            if self._rng.random() < self.drop:
                continue
            if self._rng.random() < self.corrupt:
                byte ^= 1 << self._rng.randrange(8)
            out.append(byte)
        return bytes(out)

    def lose_this_answer(self) -> bool:
        """Should the device forget the answer it just produced?"""
        if self.take("lose_answers"):
            return True
        return self.lose_rate > 0 and self._rng.random() < self.lose_rate

    def take(self, name: str) -> bool:
        """Consume one of the counted device faults (``drop_answers``, ``lose_answers``,
        ``hang_up``)."""
        left = getattr(self, name)
        if left <= 0:
            return False
        setattr(self, name, left - 1)
        return True

    # -- links, for a power loss ------------------------------------------------------------------

    def attach(self, power_cycle: Callable[[], None]) -> None:
        self._links.add(power_cycle)

    def detach(self, power_cycle: Callable[[], None]) -> None:
        self._links.discard(power_cycle)

    def power_cycle_links(self) -> int:
        for power_cycle in list(self._links):
            power_cycle()
        return len(self._links)
