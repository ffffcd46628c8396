"""What both vendors' links share: the line's leftovers, the frame in progress, a link end.

Shtrih-M (``STX LEN CMD DATA LRC``) and ATOL v3 (``FE LEN0 LEN1 ID DATA CRC``) frame bytes
differently, but either deframer turns a noisy line into the same leftovers -- `BadFrame` and
`Junk` -- and keeps the frame in progress alike (`FrameReader`).  Every link end, host or device,
is a `LinkEnd`, used in the h11 pattern: feed received bytes with ``receive_data(data, now)`` and
timer expiries with ``handle_timer(now)`` (when ``now >= get_timer()``); both return the events
that happened, whatever a state did not expect as `LineNoise`; write out ``data_to_send()``.
``now`` is monotonic seconds; nothing here sleeps, reads a clock or does I/O.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from math import inf
from typing import Generic, TypeVar

from .errors import LinkError


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Bytes that started as a frame (Shtrih's STX, ATOL's FE) but are not a good one."""

    raw: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Junk:
    """Bytes outside any frame that are not control bytes."""

    data: bytes


@dataclass(frozen=True, slots=True)
class AnswerReceived:
    """Host: the answer to the current command -- Shtrih's answer frame (confirmed with ACK),
    ATOL's reply block (``55 err ext …``, an error reply included; its task's slot freed)."""

    command: bytes
    answer: bytes


@dataclass(frozen=True, slots=True)
class CommandFailed:
    """Host: the current command's exchange failed; ``error.maybe_executed`` says what is safe."""

    command: bytes
    error: LinkError


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LineNoise(Generic[T]):
    """Either end: a token that was not what the state expected (for traces and counters)."""

    token: T


class FrameReader(ABC, Generic[T]):
    """An incremental deframer: the wire bytes of the frame in progress, and what it yields.

    Feed it chunks of any size; `feed` returns the tokens completed so far and keeps a partial
    frame for the next call.  Time is not its business: a link that gives up on a partial frame
    after the byte timeout calls `drop_partial`.
    """

    __slots__ = ("_raw",)

    def __init__(self) -> None:
        self._raw = bytearray()  # wire bytes of the frame in progress, from its first byte

    @abstractmethod
    def feed(self, data: bytes) -> list[T]:
        """Take the next bytes from the line; return the tokens they complete, in order."""

    @property
    def has_partial(self) -> bool:
        """True while a frame has started but is not complete."""
        return bool(self._raw)

    @property
    def partial(self) -> bytes:
        """The wire bytes of the frame in progress (empty when none)."""
        return bytes(self._raw)

    def read_all(self, data: bytes) -> tuple[list[T], bytes]:
        """Tokenize a whole capture; return the tokens and any incomplete tail."""
        return self.feed(data), self.partial

    def drop_partial(self, reason: str = "byte timeout") -> BadFrame | None:
        """Forget a partial frame (the byte timeout expired) and say what was dropped."""
        if not self._raw:
            return None
        dropped = BadFrame(bytes(self._raw), f"{reason} after {len(self._raw)} bytes")
        self._reset()
        return dropped

    def _reset(self) -> None:
        self._raw.clear()


E = TypeVar("E")


class LinkEnd(ABC, Generic[T, E]):
    """One end of a link, reading tokens ``T`` and reporting events ``E``: the bytes it has to
    write, the byte timer of the frame it reads, and the h11-style calls built on them.

    ``byte`` is the byte timeout: a frame that stops arriving for that long is dropped
    (`_late_partial`); None for an end that never drops one (its own request timer resends).
    """

    def __init__(self, deframer: FrameReader[T], byte: float | None) -> None:
        self._out = bytearray()
        self._deframer = deframer
        self._byte = byte
        self._last_rx = 0.0

    def data_to_send(self) -> bytes:
        """Bytes to write to the line now (and forget)."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def get_timer(self) -> float | None:
        """The next instant `handle_timer` must be called, or None."""
        deadlines = (self._byte_deadline(), *self._deadlines())
        times = [t for t in deadlines if t is not None and t != inf]
        return min(times) if times else None

    def receive_data(self, data: bytes, now: float) -> list[E]:
        """Feed bytes read from the line; return the events they caused."""
        events: list[E] = []
        if data:
            self._last_rx = now
            for token in self._deframer.feed(data):
                self._token(token, now, events)
        return events

    @abstractmethod
    def _deadlines(self) -> tuple[float | None, ...]:
        """The end's own timers (None or ``inf``: not running), beside the byte timer."""

    @abstractmethod
    def _token(self, token: T, now: float, events: list[E]) -> None:
        """Act on one token read from the line."""

    def _byte_deadline(self) -> float | None:
        """When the frame in progress is given up, or None."""
        if self._byte is None or not self._deframer.has_partial:
            return None
        return self._last_rx + self._byte

    def _late_partial(self, now: float) -> BadFrame | None:
        """The frame in progress, dropped when its byte timer ran out by ``now``."""
        deadline = self._byte_deadline()
        if deadline is None or now < deadline:
            return None
        return self._deframer.drop_partial()
