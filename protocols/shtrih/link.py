"""The Shtrih-M link (protocol v1): what its two ends share -- events, errors, settings.

The link rule, one for both vendors: a host class (`kkt.protocols.shtrih.host.ShtrihHostLink`,
the driver's) and a device class (`kkt.protocols.shtrih.device.ShtrihDeviceLink`, the
emulator's), because the two ends share only framing (`frame`, `ShtrihLinkEnd`).  Their
exactly-once rules are their modules' docstrings: the host writes a frame again only after a
quiet ENQ -> NAK; the device keeps its last answer and replays it on ENQ until it is ACKed.
Both are `kkt.protocols.line.LinkEnd`s, driven in the h11 pattern.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import LinkError
from ..line import AnswerReceived, CommandFailed, LineNoise, LinkEnd
from .frame import Deframer, Token


class EnqMode(enum.Enum):
    AUTO = "auto"  # ENQ at the first command and after trouble
    ALWAYS = "always"  # ENQ before every command


# -- errors -------------------------------------------------------------------------------------


class NoResponse(LinkError):
    """The device did not answer ENQ: cable, power, port, baud rate or address is wrong."""


class NotDelivered(LinkError):
    """The device reported, on a quiet line, that it did not take the frame."""


class AnswerLost(LinkError):
    """The device took the command but its answer could not be read back."""


class OutcomeUnknown(LinkError):
    """The answer read back does not belong to the command: what the device did is unknown."""


# -- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkReady:
    """Host: a `sync` finished -- the device answered ENQ with NAK and holds no answer."""


@dataclass(frozen=True, slots=True)
class StaleAnswer:
    """Host: an answer to an earlier command was confirmed and thrown away."""

    answer: bytes


@dataclass(frozen=True, slots=True)
class CommandReceived:
    """Device: a command frame was taken (and ACKed); execute it, then ``send_answer``."""

    command: bytes


@dataclass(frozen=True, slots=True)
class AnswerConfirmed:
    """Device: the host ACKed the answer."""

    answer: bytes


@dataclass(frozen=True, slots=True)
class AnswerDropped:
    """Device: the host sent a new command without confirming the previous answer."""

    answer: bytes


Event = (
    AnswerReceived
    | CommandFailed
    | LinkReady
    | StaleAnswer
    | CommandReceived
    | AnswerConfirmed
    | AnswerDropped
    | LineNoise[Token]
)


# -- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostSettings:
    """Timeouts (seconds) and retry limits of the host.

    Defaults follow the official drivers (fact sheet §1.6): 10 ENQ tries and 10 resends as the
    1.17 appendix recommends.  ``answer`` is only the fallback; callers pass the per-command
    answer timeout.  ``quiet`` must exceed the line's worst delivery jitter.
    """

    ack: float = 1.0
    byte: float = 1.0
    answer: float = 30.0
    quiet: float = 0.15
    # While an answer is awaited, ask with ENQ after this much silence ("still preparing?"): an
    # answer lost on the line is then collected in about this time, not the command's timeout.
    probe: float = 1.0
    max_enq: int = 10
    max_resend: int = 10
    enq_mode: EnqMode = EnqMode.AUTO

    def noise_limit(self) -> float:
        """How long the host waits for a line that never falls quiet before it gives up."""
        return self.max_enq * (self.ack + self.quiet)

    def exchange_limit(self, answer_timeout: float | None = None) -> float:
        """The longest one exchange can last, whatever the line does: a hard bound.

        Each send of the frame may cost ``max_enq`` ENQ rounds of ``ack + quiet + byte``; the
        answer may take its timeout, and a register that keeps saying "still preparing" (ENQ ->
        ACK) gets the whole timeout again up to ``max_enq`` times before the host gives up.
        """
        answer = self.answer if answer_timeout is None else answer_timeout
        round_trip = self.ack + self.quiet + self.byte
        sends = self.max_resend + 2  # the first send, the resends and the opening sync
        waits = answer * (self.max_enq + 1)
        return waits + self.max_enq * (sends * round_trip + self.probe + self.ack)


@dataclass(frozen=True, slots=True)
class DeviceSettings:
    """Device-side timing.  50 ms is the documented default byte timeout (1.17)."""

    byte: float = 0.05
    confirm: float = 0.05
    filler_after_ack: bool = False


class ShtrihLinkEnd(LinkEnd[Token, Event]):
    """What both ends keep: a deframer that takes a bad frame whole, as a register reads LEN+1
    bytes before it NAKs (``rescan=False``), the byte timer, and one deadline of their own."""

    def __init__(self, byte: float) -> None:
        super().__init__(Deframer(rescan=False), byte)
        self._deadline: float | None = None
