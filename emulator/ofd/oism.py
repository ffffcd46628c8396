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

**Sold codes.**  What it knows of the units' circulation is a `Circulation`: a code sold is
withdrawn from circulation, and checking it again for a sale (2003 = 1 or 2) is answered "wrong
status" (2109 = 2, 2106 = 7 [М-]) unless an answer is set for that code -- what the real system
answers for a unit a sale withdrew (the planned status "sold" is not correct for it; inferred
from the 2109 table, fact sheet §4.5: no public source shows such an answer).  A sale return gives
the code back.  The emulated OISM learns a sale **when the receipt is formed** in an FN it watches
(`Circulation.watch`; each register's OISM watches its own FN), not when the notification is
delivered: the real OISM learns from the notification, but an emulated register often runs with
no OFD link at all (``emulator:`` URLs, one process per command) or delivers seconds later, and a
shop testing against the emulator must meet "sold before" on the second sale every time, not
depending on whether a notification happened to go out.  Notifications it receives teach it too
(a code no watched FN formed), so an OFD's OISM still learns from them.  Registers of one pool
(`kkt.cloud.emulated`) share one `Circulation`: a code sold on one is withdrawn for all -- one
national system, as the real one is.

What it does not know: a sale not yet formed.  Two registers that check one code before either
forms its receipt both hear "valid" and both sell it -- the real system has the same window (it
learns a sale only afterwards); the FN then refuses only a code *it* sold.  And after a restart it
knows the sales from each FN's store, which keeps sales per FN: a code sold on one register and
returned on another reads as sold again until a register sells or returns it anew.

A code the FN found forged (2004 = 1) is answered "wrong status" too, so its 2106 is 5 [М-] (fact
sheet §4.7).  A code the FN cannot identify (2100 = 0: not a GS1 or short code, "hello") is
answered "unknown" (2105 = 2, code not recognised: the real system knows no such code) unless an
answer is set for that code, or the OISM is set "offline" / "corrupt" for all codes (those are the
network's doing, whatever the code).

Notifications: `receive` answers a notification block with its receipt (2111 = 0, 2006 = 0);
`deliver` drains an FN's queue through it, as the register's OFD link would (BBh..BFh).
Not thread-safe: the register's command lock serialises its callers.
"""

from __future__ import annotations

import datetime as dt
import enum
import threading
from collections.abc import Callable, Iterable

from ..fn.marking import SALE, SALE_RETURN, MarkingFn, MarkingWrite, parse_code
from ..fn.marking_wire import (
    NotificationInfo,
    block_crc,
    notification_receipt,
    oism_answer,
    read_notification,
    read_request,
)

SALE_STATUSES = (1, 2)  # 2003: piece sold, measured goods in sale
NOT_IDENTIFIED = 0  # 2100: a code the FN could not identify (not GS1, not short)


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


class Circulation:
    """What the OISM knows of marked units' circulation: which codes a sale withdrew.

    Two sources (module docstring): the receipts formed in the FNs it watches, which decide, and
    the notifications it received, which teach only a code no watched FN formed a receipt for --
    a notification arrives after its receipt, so it must not undo a later return.  Thread-safe:
    the registers of one pool run on threads of their own and share one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._formed: dict[bytes, bool] = {}  # code -> withdrawn (True: sold; False: returned)
        self._reported: set[bytes] = set()  # codes notifications reported sold
        self._watched: list[MarkingFn] = []

    def watch(self, marking: MarkingFn) -> None:
        """Learn every sale and sale return ``marking`` (an FN) forms from now on, and the codes
        its store says it sold before (a sale learnt since, here, is newer and stays)."""
        with self._lock:
            if any(m is marking for m in self._watched):
                return
            self._watched.append(marking)
            for code in marking.sold_codes():
                self._formed.setdefault(code, True)
        marking.listeners.append(self._formed_write)

    def watched(self) -> list[MarkingFn]:
        """The FNs it watches."""
        with self._lock:
            return list(self._watched)

    def release(self) -> None:
        """Stop watching every FN (an OISM moving to a shared `Circulation`)."""
        with self._lock:
            watched, self._watched = self._watched, []
        for marking in watched:
            marking.listeners[:] = [f for f in marking.listeners if f != self._formed_write]

    def _formed_write(self, write: MarkingWrite) -> None:
        """A receipt stored in a watched FN: its sold codes withdrawn, its returned ones back."""
        if write.sold or write.returned:
            with self._lock:
                self._formed.update((code, True) for code, _fd in write.sold)
                self._formed.update((code, False) for code in write.returned)

    def reported(self, codes: Iterable[bytes], *, sold: bool) -> None:
        """A notification received: ``codes`` sold (or, ``sold=False``, returned)."""
        with self._lock:
            if sold:
                self._reported.update(codes)
            else:
                self._reported.difference_update(codes)

    def withdrawn(self, code: bytes) -> bool:
        """Is ``code`` out of circulation by a sale?"""
        with self._lock:
            known = self._formed.get(code)
            return known if known is not None else code in self._reported

    def __len__(self) -> int:
        """How many codes are withdrawn."""
        with self._lock:
            formed = {code for code, sold in self._formed.items() if sold}
            return len(formed | (self._reported - self._formed.keys()))


class Oism:
    """One emulated OISM.  ``clock`` gives its answers' time (2114, 1012); ``circulation`` what it
    knows of sold codes (a new one of its own by default; a pool's registers share one)."""

    def __init__(
        self, clock: Callable[[], dt.datetime], circulation: Circulation | None = None
    ) -> None:
        self._clock = clock
        self.default = Answer.VALID
        self.per_code: dict[bytes, Answer] = {}
        self.circulation = circulation if circulation is not None else Circulation()
        self.received: dict[int, NotificationInfo] = {}  # notifications, by their 2002
        self.requests = 0  # checks asked (answered or not)

    def share(self, circulation: Circulation) -> None:
        """Know what ``circulation`` knows from now on (the registers of one pool share one):
        the FNs this OISM watched are watched there."""
        if circulation is self.circulation:
            return
        old, self.circulation = self.circulation, circulation
        watched = old.watched()
        old.release()
        for marking in watched:
            circulation.watch(marking)

    # -- settings (the control channel's "oism" action) -------------------------------------------

    def set(self, answer: Answer, code: bytes | None = None) -> None:
        """Answer checks of ``code`` (or of every code without its own answer) with ``answer``."""
        if code is None:
            self.default = answer
        else:
            self.per_code[code] = answer

    def reset(self) -> None:
        """Back to the default answers (valid; unknown for a code the FN cannot identify; wrong
        status for a code sold); what it received and what it knows of sold codes stay."""
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
            "sold": len(self.circulation),
        }

    def answer_for(
        self, code: bytes, planned: int = 1, fn_result: int = 3, kind: int | None = None
    ) -> Answer:
        """The answer for a check of ``code`` (``kind``: its 2100 as the FN identified it; None:
        identified here): its own; else offline / corrupt when set for all codes (the network's
        doing); else "unknown" for a code not identified, "wrong status" for a code sold before
        (for a sale) or one the FN found forged (2004 = 1); else the default."""
        if code in self.per_code:
            return self.per_code[code]
        if self.default in (Answer.OFFLINE, Answer.CORRUPT):
            return self.default
        if kind is None:
            kind = parse_code(code).kind
        if kind == NOT_IDENTIFIED:
            return Answer.UNKNOWN
        if planned in SALE_STATUSES and self.circulation.withdrawn(code):
            return Answer.WRONG_STATUS
        if fn_result == 1:
            return Answer.WRONG_STATUS  # 2106 = 5: the fact sheet's "crypto tail bad" (§4.7)
        return self.default

    # -- the wire ---------------------------------------------------------------------------------

    def answer(self, request: bytes) -> bytes | None:
        """The answer block to a B5h request block; None when the OISM is silent (offline).
        Raises `FnError` (20h) for a block that is not a request."""
        parsed = read_request(request)
        self.requests += 1
        chosen = self.answer_for(parsed.code, parsed.planned, parsed.result, parsed.kind)
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
        if info.operation == SALE:
            self.circulation.reported(info.codes, sold=True)
        elif info.operation == SALE_RETURN:  # back on the shelf: sellable again
            self.circulation.reported(info.codes, sold=False)
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
