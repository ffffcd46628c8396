"""ATOL lower level v3 (the task buffer): what its two ends share -- events, errors, settings.

The link rule, one for both vendors: a host class (`kkt.protocols.atol.host.AtolHostLink`) and
a device class (`kkt.protocols.atol.device.AtolDeviceLink`), because the two ends share only
framing (`packet`).  ATOL's device end is built around the register's task buffer
(`kkt.protocols.atol.tasks.TaskBuffer`), which every connection of a device shares -- a host that
reconnects finds its task with ``Req(TID)`` -- so it cannot be a role of the host's class.  The
exactly-once rules are the classes' modules' docstrings.  Both ends are
`kkt.protocols.line.LinkEnd`s, driven in the h11 pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import LinkError
from ..line import AnswerReceived, CommandFailed, LineNoise
from .packet import MAX_DATA, Token

# -- errors -------------------------------------------------------------------------------------


class NoReply(LinkError):
    """The register answered none of the sends of a packet: cable, port, power or address."""


class AnswerTimeout(LinkError):
    """The register took the task but did not finish it within the command's answer time."""


class TaskRefused(LinkError):
    """The register's buffer refused the task (full, illegal value, queue stopped, TID clash)."""


class TaskLost(LinkError):
    """The register no longer knows a task it had taken (restarted, or another host aborted)."""


class ExchangeTimeout(LinkError):
    """The exchange reached its hard bound (`HostSettings.exchange_limit`)."""


class ConnectionLost(LinkError):
    """The byte stream went away under the exchange and was not restored."""


# -- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskReady:
    """Device: a task was queued in the buffer; run the next one (`TaskBuffer.next_task`)."""

    tid: int
    command: bytes


Event = AnswerReceived | CommandFailed | TaskReady | LineNoise[Token]


# -- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostSettings:
    """Timeouts (seconds) and tries of the host.

    ``packet`` and ``packet_tries`` follow SAMSON's ``AtolV3Transport`` (0.5 s per reply, the
    identical packet resent up to four times; fact sheet §1.3).  ``poll`` is how often a taken
    task is asked about with ``Req`` when no asynchronous result arrives.  ``max_readd`` bounds
    the re-adds after B3, ``max_tid_changes`` the new TIDs after a B2 to a first send (a TID
    someone else holds).  ``abort_on_open`` (off by default) clears the buffer with an Abort
    before the first command: it would also drop the results another program on the same register
    still has to collect (a status tool beside the till), and a lost result makes a command's
    fate unknown.  Without it, results nobody collects fill the buffer in time; the first B1 to
    an Add clears it once instead.
    """

    packet: float = 0.5
    packet_tries: int = 5
    poll: float = 0.5
    max_readd: int = 3
    max_tid_changes: int = 3
    abort_on_open: bool = False
    crc_over_escaped: bool = False
    piggyback_ack: bool = True
    follow_ups: bool = True  # a query may go out in the same write as its command (host step 5)

    def packet_step(self) -> float:
        """The longest one request packet can take: every send and its reply timeout."""
        return self.packet * self.packet_tries

    def exchange_limit(self, answer_timeout: float) -> float:
        """The longest one command can last, whatever the line does: a hard bound.

        Waits: the unresolved task of an earlier command (up to ``answer_timeout``) and ours (the
        same).  Packets: Abort, the settling Req and Ack, each Add (the first, the re-adds and
        the TID changes) with one Req, a probing Req per TID tried, and the final Ack -- each
        at most `packet_step`.
        """
        adds = 1 + self.max_readd + self.max_tid_changes
        packets = 4 + 2 * adds + 1 + self.max_tid_changes
        return 2 * (answer_timeout + self.poll) + packets * self.packet_step()


# How a device hands a task's result to the host that added it (`DeviceSettings.results`).
ASYNC_RESULTS = "async"
INLINE_RESULTS = "inline"
RESULT_DELIVERIES = (ASYNC_RESULTS, INLINE_RESULTS)


@dataclass(frozen=True, slots=True)
class DeviceSettings:
    """Device-side timing, and how results reach the host.

    ``results``: ``"async"`` (the default) answers an Add with the task's state at once -- A2
    when it starts at once, A1 when it waits behind another task -- and sends the result in an
    F0 packet (A6/A7 TID data) when the task ends; ``"inline"`` holds the Add's reply up to
    ``inline`` seconds and, when the task ends by then, answers A3/A4 with the result and sends
    no F0 (a slower task: A1/A2, then F0).  Either way the result stays for ``Req`` until the
    host's Ack.  Why async is the default: atol4j (``TransportProtocolV3.processMessage``
    completes a command only from an F0 packet; a synchronous reply's data is dropped) and
    MultiMag (``atol.php``: every request waits for F0 and fails "Нет данных этой команды"
    without it) never read a result inline, and both were written against real registers;
    Zzzzipper's ``AtolTaskLayer`` and Cyberplat's ``Atol3FRBase`` (AlexObukhoff/TerminalClient)
    take either A3 or A2-then-F0, and the latter fails on A1 to an Add -- hence A2 for a task
    that starts at once.  ``inline`` keeps the reading of Zzzzipper's unit test (A3 to the Add).

    ``byte``: a packet that stops arriving is dropped after this silence, and an empty packet
    with its ID asks the host to repeat it.
    """

    inline: float = 0.1
    byte: float = 0.1
    crc_over_escaped: bool = False
    max_data: int = MAX_DATA
    results: str = ASYNC_RESULTS

    def __post_init__(self) -> None:
        if self.results not in RESULT_DELIVERIES:
            raise ValueError(
                f"results must be one of {', '.join(RESULT_DELIVERIES)}, got {self.results!r}"
            )
