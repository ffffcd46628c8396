"""A simulated serial line in virtual time: drops, corrupts and delays bytes, keeps their order."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class LineFaults:
    drop: float = 0.0  # probability a byte is lost
    corrupt: float = 0.0  # probability a byte has one bit flipped
    latency: float = 0.001  # fixed delay of every byte, seconds
    jitter: float = 0.0  # extra random delay, uniform 0..jitter
    stall: float = 0.0  # probability the line stalls before a byte ...
    stall_time: float = 0.0  # ... for up to this long (every later byte waits too)
    byte_time: float = 0.0  # time on the wire per byte (115200 baud: 87 us)


class SimulatedChannel:
    """One direction of a line: bytes go in at `send` and come out, in order, at `take`."""

    def __init__(self, rng: random.Random, faults: LineFaults) -> None:
        self._rng = rng
        self._faults = faults
        self._queue: deque[tuple[float, int]] = deque()
        self._last = 0.0
        self.sent = self.dropped = self.corrupted = 0

    def send(self, data: bytes, now: float) -> None:
        rng, faults = self._rng, self._faults
        for byte in data:
            self.sent += 1
            if rng.random() < faults.drop:
                self.dropped += 1
                continue
            if rng.random() < faults.corrupt:
                self.corrupted += 1
                byte ^= 1 << rng.randrange(8)
            at = now + faults.latency + rng.uniform(0.0, faults.jitter)
            if rng.random() < faults.stall:
                at += rng.uniform(0.0, faults.stall_time)
            at = max(at, self._last + faults.byte_time)
            self._last = at
            self._queue.append((at, byte))

    def next_time(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def take(self, now: float) -> bytes:
        out = bytearray()
        queue = self._queue
        while queue and queue[0][0] <= now:
            out.append(queue.popleft()[1])
        return bytes(out)
