"""An emulated ОИСМ (the state marking system, «Честный знак»): answers the FN's code checks and
takes its notifications, so every branch of a POS's marking logic can be tested.

A real OISM signs its answers with the ФПК and a real FN takes nothing else; the emulated FN
takes this one's plain blocks (`kkt.emulator.fn.marking_wire`, fact sheet ``ofd-cloud-marking.md``
§4.7).  The answer to a check is chosen per code or for all codes (`Answer`), default `VALID`:

============  ==========================================  =====================================
answer        the OISM's tags                              2106 in the FN (with a positive check)
============  ==========================================  =====================================
valid         2105 = 0, 2109 = 1 (planned status correct)  15 [М+]
wrong-status  2105 = 0, 2109 = 2 (wrong status / owner)    7 [М-]
withdrawn     2105 = 0, 2109 = 3 (circulation suspended)   7 [М-]
unknown       2105 = 2 (code not recognised), no 2109      3 [М]
offline       no answer at all (Shtrikh FF61 byte 0xFF)    3 [М] (the FN's check only)
corrupt       a valid answer with one CRC bit flipped      3 [М]; the FN refuses it: 20h, reason 5
============  ==========================================  =====================================

It also remembers the codes its notifications reported sold: checking such a code again for a
sale is answered "wrong status" unless an answer is set for that code -- what the real system
does with a code already out of circulation (inferred; no public source states it).  A code the FN
found forged (2004 = 1) is answered "wrong status" too, so its 2106 is 5 [М-] (fact sheet §4.7).

Notifications: `receive` answers a notification block with its receipt (2111 = 0, 2006 = 0);
`deliver` drains an FN's queue through it, as the register's OFD link would (BBh..BFh).
Not thread-safe: the register's command lock serialises its callers.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable

from ..fn.marking import SALE_RETURN, MarkingFn
from ..fn.marking_wire import (
    NotificationInfo,
    block_crc,
    notification_receipt,
    oism_answer,
    read_notification,
    read_request,
)

SALE_STATUSES = (1, 2)  # 2003: piece sold, measured goods in sale


class Answer(enum.Enum):
    """How the emulated OISM answers a code check."""

    VALID = "valid"
    WRONG_STATUS = "wrong-status"
    WITHDRAWN = "withdrawn"
    UNKNOWN = "unknown"
    OFFLINE = "offline"
    CORRUPT = "corrupt"  # damaged on the way: the FN's B6h refuses it (20h, reason 5 bad CRC)


# answer -> (2105, 2109)
_TAGS: dict[Answer, tuple[int, int | None]] = {
    Answer.VALID: (0, 1),
    Answer.WRONG_STATUS: (0, 2),
    Answer.WITHDRAWN: (0, 3),
    Answer.UNKNOWN: (2, None),
}


class OismError(ValueError):
    """A setting the OISM cannot take: the text says which values it takes."""


def answer_named(name: str) -> Answer:
    try:
        return Answer(name)
    except ValueError:
        names = ", ".join(a.value for a in Answer)
        raise OismError(f"unknown OISM answer {name!r}; use one of {names}") from None


class Oism:
    """One emulated OISM.  ``clock`` gives its answers' time (2114, 1012)."""

    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock
        self.default = Answer.VALID
        self.per_code: dict[bytes, Answer] = {}
        self.sold: set[bytes] = set()  # codes its notifications reported sold
        self.received: dict[int, NotificationInfo] = {}  # notifications, by their 2002
        self.requests = 0  # checks asked (answered or not)

    # -- settings (the control channel's "oism" action) -------------------------------------------

    def set(self, answer: Answer, code: bytes | None = None) -> None:
        """Answer checks of ``code`` (or of every code without its own answer) with ``answer``."""
        if code is None:
            self.default = answer
        else:
            self.per_code[code] = answer

    def reset(self) -> None:
        """Back to valid for every code; what it received stays."""
        self.default = Answer.VALID
        self.per_code.clear()

    def settings(self) -> dict[str, object]:
        return {
            "default": self.default.value,
            "codes": {
                code.decode("ascii", "replace"): a.value for code, a in self.per_code.items()
            },
            "requests": self.requests,
            "notifications": len(self.received),
            "sold": len(self.sold),
        }

    def answer_for(self, code: bytes, planned: int = 1, fn_result: int = 3) -> Answer:
        """The answer for a check of ``code``: its own, else "wrong status" for a code sold
        before (for a sale) or one the FN found forged (2004 = 1), else the default."""
        if code in self.per_code:
            return self.per_code[code]
        if code in self.sold and planned in SALE_STATUSES:
            return Answer.WRONG_STATUS
        if fn_result == 1 and self.default not in (Answer.OFFLINE, Answer.CORRUPT):
            return Answer.WRONG_STATUS  # 2106 = 5: the fact sheet's "crypto tail bad" (§4.7)
        return self.default

    # -- the wire ---------------------------------------------------------------------------------

    def answer(self, request: bytes) -> bytes | None:
        """The answer block to a B5h request block; None when the OISM is silent (offline).
        Raises `FnError` (20h) for a block that is not a request."""
        parsed = read_request(request)
        self.requests += 1
        chosen = self.answer_for(parsed.code, parsed.planned, parsed.result)
        if chosen is Answer.OFFLINE:
            return None
        request_code, status = _TAGS.get(chosen, _TAGS[Answer.VALID])
        block = oism_answer(parsed, request_code=request_code, status=status, when=self._clock())
        if chosen is Answer.CORRUPT:
            block = block[:2] + bytes((block[2] ^ 0x01,)) + block[3:]  # the CRC's low bit
        return block

    def receive(self, notification: bytes) -> bytes:
        """Take a notification block; its receipt (2111 = 0, 2006 = 0).  A notification received
        twice is receipted again, counted once."""
        info = read_notification(notification)
        self.received[info.number] = info
        if info.operation == SALE_RETURN:
            self.sold.difference_update(info.codes)  # back on the shelf: sellable again
        else:
            self.sold.update(info.codes)
        return notification_receipt(info.number, self._clock().replace(microsecond=0))

    def deliver(self, marking: MarkingFn, limit: int | None = None) -> int:
        """Send ``marking``'s queued notifications here (all, or ``limit``), as a register does:
        online through the FN's BBh-BFh, autonomous through its D3h-D6h export; how many the FN
        confirmed."""
        delivered = 0
        if marking.autonomous:
            marking.export_status(start=True)
        while marking.queue and (limit is None or delivered < limit):
            if marking.autonomous:
                size, number = marking.export_next()
                message = marking.read(0, size)
                self.receive(message)
                marking.export_confirm(number, block_crc(message))
            else:
                size = marking.start_reading()
                message = marking.read(0, size)
                marking.finish_reading()
                code, _all_positive = marking.take_receipt(self.receive(message))
                if code != 0:  # this OISM accepts every notification; kept for safety
                    break
            delivered += 1
        return delivered
