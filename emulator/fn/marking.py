"""The emulated FN's marking codes: the checked-codes table, the B-command sequence, the sale
bound to a checked code and the notification queue (FNP §4.10-4.12; fact sheet
``ofd-cloud-marking.md`` §4.1, §4.2, §4.5-4.7).

The sequence, per code::

    B1h check locally ─► B5h build the OISM request ─► B6h take the OISM's answer ─► B2h decide
                   └───────────────(autonomous / no answer)──────────────────────────┘

B1h needs an idle sequence (else 33h) and room in the table (35h at 128 codes); B2h(1) saves the
code with its 2106 result; B3h clears the table (02h with the shift closed or a receipt open).
A receipt binds its marked items to saved codes (B7h, here done when the receipt is formed: a code
not in the table, or sold before, is refused with 3Eh); the formed receipt clears the table, marks
its codes sold and queues one notification (FD 82) with one STLV 2007 per marked item -- all in the
transaction that stores the receipt, so a crash leaves either all of it or none.  A cancelled
receipt changes nothing here.  The FN keeps every code it sold: a sale (1054 = 1) refuses one sold
before even after a new check and accept ("a code is sold once"); a sale return (1054 = 2) gives it
back.  Every formed receipt clears the table, marked or not (FNP §4.10.7.2).  The sequence
itself (a code between B1h and B2h) lives in RAM, as a real FN's does: power lost mid-check
forgets that code, never the table.

**The crypto check.**  The FN's check of the crypto code (AI 92) with the key named by AI 91 is not
public (it runs inside the FN's КС).  This emulator decides it by a documented, deterministic rule:

* only types 2 and 4 (a 91 key id and an 88- or 44-character 92 code) are checkable; other types
  answer 2004 = 0 with reason 1 (type 1, 3, 5) or 4 (not identified), a GS1 code whose AI 91/92
  do not parse reason 3;
* the key id ``UNKNOWN_KEY_ID`` ("0000") is a key the FN does not have: 2004 = 0, reason 2;
* a 92 code that begins with ``BAD_CRYPTO_PREFIX`` ("BAD") fails the check: 2004 = 1 (negative);
* any other checkable code passes: 2004 = 3.

The wire blocks B5h gives and B6h / BFh take are `marking_wire`'s.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from kkt.protocols.ffd import TAGS, TlvList, Value, encode_tlv_item
from kkt.protocols.ffd.marking import MarkingCodeError, control_code, parse_mark_code

from .errors import FnCode, FnError
from .marking_wire import (
    BAD_FORMAT,
    BAD_REQUEST_NUMBER,
    block_crc,
    seal,
    tlv_bytes,
    tlv_int,
    tlv_time,
    u,
    unseal,
    verdict,
)

if TYPE_CHECKING:
    from ..clock import Clock
    from .state import FnState


class MarkingStore(Protocol):
    """What the marking state needs of the FN's store (`FnStore` is one): a protocol here, so
    the store can import this module's types without the two importing each other."""

    def save(self, state: FnState, *, marking: MarkingWrite | None = None) -> None: ...

    def load_marking(self) -> MarkingState | None: ...

    def notifications(self) -> list[Notification]: ...

    def sold_in(self, code: bytes) -> int | None: ...

    def sold_codes(self) -> list[bytes]: ...


MAX_CHECKED = 128  # codes the FN keeps checked and accepted (FNP §4.10.7.2; 35h past it)
NOTIFICATION_CAPACITY = 1000  # notifications the store holds before 34h (the FN's size: not public)
UNKNOWN_KEY_ID = "0000"  # an AI 91 key id the emulated FN has no key for (reason 2)
BAD_CRYPTO_PREFIX = "BAD"  # an AI 92 crypto code starting so fails the FN's check (2004 = 1)
GS = 0x1D

# 2004 results and the reasons that come with them (B1h; FFD12 enums)
NOT_CHECKED, NEGATIVE, POSITIVE = 0, 1, 3
REASON_CHECKED, REASON_TYPE, REASON_NO_KEY, REASON_AI, REASON_OTHER = 0, 1, 2, 3, 4

SALE, SALE_RETURN = 1, 2  # tag 1054 values the sold-codes rule acts on


class Step(enum.IntEnum):
    """B0h byte 0: where the check sequence stands."""

    TABLE_FULL = 0
    IDLE = 1
    CHECKED = 2  # after B1h
    REQUESTED = 3  # after B5h
    ANSWERED = 4  # after B6h


# B0h permitted-command flags: b0 B1h, b1 B2h, b2 B3h, b3 B5h, b4 B6h, b5-b7 B7h(1/2/3)
_B1, _B2, _B3, _B5, _B6, _B7 = 0x01, 0x02, 0x04, 0x08, 0x10, 0xE0


# -- code formats (the protocol core's КМ model, `kkt.protocols.ffd.marking`) ---------------


@dataclass(frozen=True, slots=True)
class ParsedCode:
    """What the FN reads off a КМ: its 2100 type and, for GS1 codes, the AI fields."""

    code: bytes
    kind: int  # 2100: 0 not identified, 1 short, 2 88-char crypto, 3 44 not checkable, 4, 5
    product_code: str = ""  # 01 GTIN 21 serial: tag 1305
    key_id: str = ""  # AI 91
    crypto: str = ""  # AI 92 (or 93)
    malformed_ai: bool = False  # a GS1 code whose AI 91/92 do not parse


def parse_code(code: bytes) -> ParsedCode:
    """The 2100 type and AI fields of ``code`` (`parse_mark_code`); a code that does not parse
    is type 0, as the FN takes it.  Never raises."""
    try:
        mark = parse_mark_code(code)
    except MarkingCodeError as exc:
        return ParsedCode(code, 0, malformed_ai="AI 9" in str(exc))
    return ParsedCode(
        code, int(mark.type), mark.product_code or "", mark.key_id or "", mark.crypto or ""
    )


def local_check(parsed: ParsedCode) -> tuple[int, int]:
    """2004 and its reason for ``parsed`` under the emulator's crypto rule (module docstring)."""
    if parsed.kind not in (2, 4):
        if parsed.kind == 0:
            return NOT_CHECKED, REASON_AI if parsed.malformed_ai else REASON_OTHER
        return NOT_CHECKED, REASON_TYPE
    if parsed.key_id == UNKNOWN_KEY_ID:
        return NOT_CHECKED, REASON_NO_KEY
    if parsed.crypto.startswith(BAD_CRYPTO_PREFIX):
        return NEGATIVE, REASON_CHECKED
    return POSITIVE, REASON_CHECKED


# -- state ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckedCode:
    """A code checked and accepted (B2h(1)): one row of the FN's table."""

    code: bytes
    kind: int  # 2100
    result: int  # 2004
    planned: int  # 2003
    verdict: int  # 2106
    measure: int | None = None  # 2108
    quantity: str | None = None  # 1023 as a decimal string

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code.hex(),
            "kind": self.kind,
            "result": self.result,
            "planned": self.planned,
            "verdict": self.verdict,
            "measure": self.measure,
            "quantity": self.quantity,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckedCode:
        return cls(**{**data, "code": bytes.fromhex(data["code"])})


@dataclass(frozen=True, slots=True)
class MarkingState:
    """What the FN keeps of marking across power loss (the store writes it)."""

    codes: tuple[CheckedCode, ...] = ()
    request_number: int = 0  # the last 2001
    notification_number: int = 0  # the last 2002

    def find(self, code: bytes) -> CheckedCode | None:
        return next((c for c in self.codes if c.code == code), None)

    def to_json(self) -> str:
        return json.dumps(
            {
                "codes": [c.to_json() for c in self.codes],
                "request_number": self.request_number,
                "notification_number": self.notification_number,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> MarkingState:
        data = json.loads(text)
        return cls(
            tuple(CheckedCode.from_json(c) for c in data["codes"]),
            data["request_number"],
            data["notification_number"],
        )


@dataclass(frozen=True, slots=True)
class Notification:
    """A queued notification (FD 82) for the OISM: its number, the receipt it reports, its block."""

    number: int
    fd: int
    when: dt.datetime
    message: bytes


@dataclass(frozen=True, slots=True)
class MarkingWrite:
    """What one step changes in the store, written atomically (with a document, if any)."""

    state: MarkingState
    notification: Notification | None = None
    sold: tuple[tuple[bytes, int], ...] = ()  # (code, FD) sold by a receipt
    returned: tuple[bytes, ...] = ()  # codes a sale return gives back
    confirmed: int | None = None  # notification number the OISM confirmed


@dataclass(frozen=True, slots=True)
class LocalResult:
    """B1h's answer."""

    result: int  # 2004
    reason: int
    kind: int  # 2100


@dataclass(frozen=True, slots=True)
class OnlineResult:
    """B6h's answer: 2106 and the OISM's tags (2109 / 2105 may be None when absent)."""

    verdict: int
    status: int | None  # 2109
    request_code: int | None  # 2105
    tags: dict[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MarkingStatus:
    """B0h (Shtrikh FF70)."""

    step: Step
    notification_state: int  # 0 none, 1 being formed, 2 blocked: store full
    permitted: int  # flags b0 B1h ... b5-b7 B7h
    saved: int  # codes in the table
    in_notification: int  # codes a receipt would report
    store_warning: int  # 0 <50 %, 1 50-80 %, 2 80-90 %, 3 >90 %, 4 full
    queued: int  # notifications not confirmed

    def encode(self) -> bytes:
        return bytes(
            (
                self.step,
                self.notification_state,
                self.permitted,
                self.saved,
                self.in_notification,
                self.store_warning,
            )
        ) + self.queued.to_bytes(2, "little")


@dataclass(frozen=True, slots=True)
class NotificationStatus:
    """BAh (Shtrikh FF68): 0 idle, 1 reading, 2 awaiting the receipt; the queue."""

    state: int
    queued: int
    number: int  # the first queued notification's 2002 (0: none)
    when: dt.datetime | None  # its time
    percent_full: int


@dataclass(slots=True)
class _Pending:
    """A code between B1h and B2h: RAM only."""

    parsed: ParsedCode
    result: int
    reason: int
    planned: int = 0
    measure: int | None = None
    quantity: Decimal | None = None
    request: bytes | None = None
    request_number: int = 0
    online: OnlineResult | None = None


class MarkingFn:
    """The marking part of one emulated FN.  Not thread-safe: the register serialises calls.

    ``fn_state`` reads the FN's current state (shift, registration, serial); every persistent
    change goes through ``store.save(fn_state(), marking=...)``.
    """

    def __init__(self, store: MarkingStore, clock: Clock, fn_state: Callable[[], FnState]) -> None:
        self._store = store
        self._clock = clock
        self._fn_state = fn_state
        self.state = store.load_marking() or MarkingState()
        self._queue: list[Notification] = list(store.notifications())
        self._pending: _Pending | None = None
        self._reading: Notification | None = None  # BBh began (or D4h chose)
        self._awaiting = 0  # BEh: the notification whose receipt is awaited
        self._exported = 0  # D3h(1) .. : notifications handed out this session
        # Told of every write the store took (`committed`): the emulated OISM learns the FN's
        # sales and sale returns so (`kkt.emulator.ofd.oism.Circulation`).
        self.listeners: list[Callable[[MarkingWrite], None]] = []

    # -- queries ---------------------------------------------------------------------------------

    @property
    def queue(self) -> tuple[Notification, ...]:
        return tuple(self._queue)

    def step(self) -> Step:
        if self._pending is not None:
            return (
                Step.ANSWERED
                if self._pending.online
                else (Step.REQUESTED if self._pending.request else Step.CHECKED)
            )
        return Step.TABLE_FULL if len(self.state.codes) >= MAX_CHECKED else Step.IDLE

    def status(self) -> MarkingStatus:
        """B0h."""
        step = self.step()
        permitted = {
            Step.TABLE_FULL: _B3 | _B7,
            Step.IDLE: _B1 | _B3 | (_B7 if self.state.codes else 0),
            Step.CHECKED: _B2 | _B3 | _B5,
            Step.REQUESTED: _B2 | _B3 | _B5 | _B6,
            Step.ANSWERED: _B2 | _B3,
        }[step]
        full = len(self._queue) * 100 // NOTIFICATION_CAPACITY
        warning = 4 if full >= 100 else 3 if full > 90 else 2 if full >= 80 else int(full >= 50)
        return MarkingStatus(
            step,
            2 if warning == 4 else 0,
            permitted,
            len(self.state.codes),
            len(self.state.codes),
            warning,
            len(self._queue),
        )

    @property
    def autonomous(self) -> bool:
        """An autonomous FN: no OISM requests; notifications leave by D3h-D6h export."""
        return self._registration_autonomous()

    def sold_in(self, code: bytes) -> int | None:
        """The receipt (FD number) that sold ``code``, or None."""
        return self._store.sold_in(code)

    def sold_codes(self) -> list[bytes]:
        """Every code this FN sold and no sale return gave back."""
        return self._store.sold_codes()

    # -- the check sequence (B1h, B5h, B6h, B2h, B3h) --------------------------------------------

    def check(self, code: bytes) -> LocalResult:
        """B1h: check ``code`` locally (the FN derives its type and AI offsets itself)."""
        self._require_marking()
        if not 1 <= len(code) <= 255:
            raise FnError(FnCode.BAD_PARAMETER, f"a marking code is 1..255 bytes, not {len(code)}")
        step = self.step()
        if step is Step.TABLE_FULL:
            raise FnError(
                FnCode.MARKING_TABLE_FULL,
                f"{MAX_CHECKED} codes are checked and saved: sell them or clear the table (B3h)",
            )
        if step is not Step.IDLE:
            raise FnError(
                FnCode.MARKING_SEQUENCE,
                "a code is being checked: decide on it (B2h) or clear (B3h) first",
            )
        parsed = parse_code(code)
        result, reason = local_check(parsed)
        self._pending = _Pending(parsed, result, reason)
        return LocalResult(result, reason, parsed.kind)

    def request(
        self, planned: int, quantity: Decimal | None = None, measure: int | None = None
    ) -> bytes:
        """B5h: the OISM request for the code B1h checked (planned status 2003 is required)."""
        pending = self._require_step(Step.CHECKED, Step.REQUESTED, what="B5h follows B1h")
        if self._registration_autonomous():
            raise FnError(FnCode.WRONG_STATE, "an autonomous FN sends no OISM requests")
        if pending.request is not None:
            return pending.request  # asked again: the same request (no new number)
        if planned not in (1, 2, 3, 4, 5, 6, 255):
            raise FnError(
                FnCode.MARKING_DATA_MISSING, f"2003 planned status {planned} is not valid"
            )
        s = self._fn_state()
        assert s.registration is not None
        number = self.state.request_number + 1
        body = (
            tlv_int(2001, number, 4)
            + tlv_bytes(1018, s.registration.inn.ljust(12).encode("ascii"))
            + tlv_time(2114, self._clock.now())
            + tlv_bytes(1041, s.config.serial.encode("ascii"))
            + tlv_int(2004, pending.result, 1)
            + tlv_int(2003, planned, 1)
        )
        if quantity is not None:
            body += encode_tlv_item(1023, quantity)
        if measure is not None:
            body += tlv_int(2108, measure, 1)
        body += (
            tlv_int(2100, pending.parsed.kind, 1)
            + tlv_bytes(2000, pending.parsed.code)
            + tlv_int(2102, 0, 1)
        )
        block = seal(body)
        # The request number is durable at once: a power loss never hands the OISM a number twice.
        self._save(MarkingWrite(replace(self.state, request_number=number)))
        pending.planned, pending.quantity, pending.measure = planned, quantity, measure
        pending.request, pending.request_number = block, number
        return block

    def answer(self, block: bytes) -> OnlineResult:
        """B6h: the OISM's answer to the request B5h built; its 2106."""
        pending = self._require_step(Step.REQUESTED, what="B6h follows B5h")
        data = unseal(block)
        if u(data, 2001) != pending.request_number:
            raise FnError(
                FnCode.OFD_REPLY_REJECTED,
                f"the answer is for request {u(data, 2001)}, not {pending.request_number}",
                reason=BAD_REQUEST_NUMBER,
            )
        request_code = u(data, 2105)
        if request_code is None:
            raise FnError(FnCode.OFD_REPLY_REJECTED, "the answer lacks 2105", reason=BAD_FORMAT)
        status = u(data, 2109)
        value = verdict(pending.result, status, request_code == 0, autonomous=False)
        pending.online = OnlineResult(value, status, request_code, data)
        return pending.online

    def current_verdict(self) -> int:
        """The 2106 that B2h would give the code being checked now."""
        pending = self._require_step(
            Step.CHECKED, Step.REQUESTED, Step.ANSWERED, what="a code is checked (B1h) first"
        )
        if pending.online is not None:
            return pending.online.verdict
        return verdict(pending.result, None, False, autonomous=self._registration_autonomous())

    def decide(self, accept: bool, *, planned: int | None = None) -> int:
        """B2h: save (``accept``) or drop the code being checked; its 2106.  After B1h alone, or
        after B5h without an answer (the OISM was silent), the 2106 holds the FN's check only;
        ``planned`` is the 2003 kept when no request named one (default: 1, a piece sold)."""
        pending = self._require_step(
            Step.CHECKED, Step.REQUESTED, Step.ANSWERED, what="B2h follows B1h"
        )
        value = self.current_verdict()
        if not accept:
            self._pending = None
            return value
        if len(self.state.codes) >= MAX_CHECKED and self.state.find(pending.parsed.code) is None:
            raise FnError(FnCode.MARKING_TABLE_FULL, f"{MAX_CHECKED} codes are saved already")
        entry = CheckedCode(
            pending.parsed.code,
            pending.parsed.kind,
            pending.result,
            pending.planned or planned or 1,
            value,
            pending.measure,
            None if pending.quantity is None else str(pending.quantity),
        )
        codes = (*(c for c in self.state.codes if c.code != entry.code), entry)
        self._save(MarkingWrite(replace(self.state, codes=codes)))
        self._pending = None
        return value

    def clear(self, *, receipt_open: bool = False) -> None:
        """B3h: forget every checked code and the one being checked."""
        self._require_marking()
        if receipt_open:
            raise FnError(FnCode.WRONG_STATE, "a receipt is open: close or cancel it first")
        if self.state.codes:
            self._save(MarkingWrite(replace(self.state, codes=())))
        self._pending = None

    def abandon(self) -> None:
        """Drop the code being checked, if any (a register whose check failed half-way)."""
        self._pending = None

    def reset(self) -> None:
        """Power lost: the code being checked and any reading are forgotten (RAM)."""
        self._pending = None
        self._reading = None
        self._awaiting = 0

    # -- the sale (B7h) ---------------------------------------------------------------------------

    def require_bindable(self, code: bytes, operation: int = SALE) -> CheckedCode:
        """B7h's refusals before a receipt is formed: the code must be checked and accepted, and
        a sale may not sell a code sold before (3Eh)."""
        entry = self.state.find(code)
        if entry is None:
            raise FnError(
                FnCode.MARKING_NOT_CHECKED,
                "this marking code was not checked and accepted (B1h .. B2h(1)): check it first",
            )
        if operation == SALE:
            fd = self._store.sold_in(code)
            if fd is not None:
                raise FnError(
                    FnCode.MARKING_NOT_CHECKED,
                    f"this marking code was sold in document {fd}; it cannot be sold again",
                )
        return entry

    def bind_receipt(
        self,
        operation: int,
        tlv: Sequence[tuple[int, Value]],
        when: dt.datetime,
        fd: int,
    ) -> tuple[list[tuple[int, Value]], MarkingWrite | None]:
        """The receipt's TLV with each marked item (a 1059 carrying the code as 2000) bound: 2000
        taken out, 2106 put in; the notification, the sold codes and the cleared table to store
        with the receipt.  None when the table is empty and nothing is marked."""
        out: list[tuple[int, Value]] = []
        items: list[tuple[CheckedCode, list[tuple[int, Value]]]] = []
        seen: set[bytes] = set()
        for tag, value in tlv:
            if tag != 1059 or not isinstance(value, list):
                out.append((tag, value))
                continue
            body = list(value)
            if any(t == 2106 for t, _ in body):
                raise FnError(
                    FnCode.FORBIDDEN_TAG,
                    "tag 2106 is the FN's result of a code's check; bind the code (2000) instead",
                )
            codes = [v for t, v in body if t == 2000]
            if not codes:
                out.append((tag, body))
                continue
            if len(codes) > 1:
                raise FnError(FnCode.DUPLICATE_TAG, "an item carries one marking code")
            code = codes[0] if isinstance(codes[0], bytes) else str(codes[0]).encode("ascii")
            if code in seen:
                raise FnError(FnCode.MARKING_NOT_CHECKED, "one marking code is bound to two items")
            seen.add(code)
            entry = self.require_bindable(code, operation)
            body = [(t, v) for t, v in body if t != 2000] + [(2106, entry.verdict)]
            items.append((entry, body))
            out.append((tag, body))
        if not items:
            if not self.state.codes:
                return out, None
            return out, MarkingWrite(replace(self.state, codes=()))
        if len(self._queue) >= NOTIFICATION_CAPACITY:
            raise FnError(
                FnCode.MARKING_STORE_FULL,
                "the notification store is full: send the notifications to the OISM",
            )
        number = self.state.notification_number + 1
        notification = Notification(
            number, fd, when, self._notification(number, operation, when, items, tlv)
        )
        bound = tuple((entry.code, fd) for entry, _ in items)
        state = replace(self.state, codes=(), notification_number=number)
        if operation == SALE_RETURN:
            return out, MarkingWrite(state, notification, returned=tuple(c for c, _ in bound))
        sold = bound if operation == SALE else ()
        return out, MarkingWrite(state, notification, sold=sold)

    def _notification(
        self,
        number: int,
        operation: int,
        when: dt.datetime,
        items: list[tuple[CheckedCode, list[tuple[int, Value]]]],
        tlv: Sequence[tuple[int, Value]],
    ) -> bytes:
        """FD 82: 2002, 1012, 1041, 1018, 1054, 2116, then one 2007 per marked item."""
        s = self._fn_state()
        assert s.registration is not None
        body = (
            tlv_int(2002, number, 4)
            + tlv_time(1012, when)
            + tlv_bytes(1041, s.config.serial.encode("ascii"))
            + tlv_bytes(1018, s.registration.inn.ljust(12).encode("ascii"))
            + tlv_int(1054, operation, 1)
            + tlv_int(2116, 1, 1)  # b0: a receipt
        )
        for tag, value in tlv:
            if tag in (1009, 1055):
                body += encode_tlv_item(tag, value)
        copied = (1023, 2108, 1030, 1079, 1043, 1199, 1200, 1214, 2115)
        for entry, item in items:
            inner = (
                tlv_bytes(2000, entry.code)
                + tlv_int(2100, entry.kind, 1)
                + tlv_int(2110, entry.planned, 1)
                + tlv_int(2106, entry.verdict, 1)
            )
            for tag, value in item:
                if tag in copied:
                    inner += _item_tag(tag, value)
            body += tlv_bytes(2007, inner)
        return seal(body)

    def committed(self, write: MarkingWrite) -> None:
        """The store took ``write`` (with its document): the FN's RAM follows."""
        self.state = write.state
        if write.notification is not None:
            self._queue.append(write.notification)
        if write.confirmed is not None:
            self._queue = [n for n in self._queue if n.number != write.confirmed]
        for listener in self.listeners:
            listener(write)

    # -- notifications online (BAh-BFh) -----------------------------------------------------------

    def notification_status(self) -> NotificationStatus:
        """BAh."""
        self._require_online()
        first = self._queue[0] if self._queue else None
        state = 1 if self._reading else 2 if self._awaiting else 0
        return NotificationStatus(
            state,
            len(self._queue),
            first.number if first else 0,
            first.when if first else None,
            min(100, len(self._queue) * 100 // NOTIFICATION_CAPACITY),
        )

    def start_reading(self) -> int:
        """BBh: begin reading the first queued notification; its length."""
        self._require_online()
        if not self._queue:
            raise FnError(FnCode.NO_DATA, "no notification is queued")
        self._reading = self._queue[0]
        self._awaiting = 0
        return len(self._reading.message)

    def read(self, offset: int, size: int) -> bytes:
        """BCh / D5h: ``size`` bytes of the notification being read, from ``offset``."""
        if self._reading is None:
            raise FnError(FnCode.WRONG_STATE, "no notification is being read: start with BBh/D4h")
        message = self._reading.message
        if not 0 <= offset <= len(message) or size < 0:
            raise FnError(FnCode.BAD_PARAMETER, f"offset {offset} is past {len(message)} bytes")
        return message[offset : offset + size]

    def cancel_reading(self) -> None:
        """BDh."""
        self._reading = None

    def finish_reading(self) -> None:
        """BEh: read whole; its receipt is awaited."""
        if self._reading is None:
            raise FnError(FnCode.WRONG_STATE, "no notification is being read: start with BBh")
        self._awaiting, self._reading = self._reading.number, None

    def take_receipt(self, block: bytes) -> tuple[int, int]:
        """BFh: the OISM's receipt of the first queued notification; (2111, 2006).  2111 = 0
        confirms it, durably, and the queue moves on."""
        self._require_online()
        data = unseal(block)
        number, code = u(data, 2002), u(data, 2111)
        if code is None:
            raise FnError(FnCode.OFD_REPLY_REJECTED, "the receipt lacks 2111", reason=BAD_FORMAT)
        if not self._queue or number != self._queue[0].number:
            raise FnError(
                FnCode.OFD_REPLY_REJECTED,
                f"the receipt is for notification {number}, the queue starts at "
                f"{self._queue[0].number if self._queue else 'nothing'}",
                reason=BAD_REQUEST_NUMBER,
            )
        if code == 0:
            self._save(MarkingWrite(self.state, confirmed=number))
        self._awaiting = 0
        return code, u(data, 2006) or 0

    # -- notifications autonomous (D3h-D6h) -------------------------------------------------------

    def export_status(self, *, start: bool = False) -> tuple[int, int, int, int]:
        """D3h: (unconfirmed, first number, handed out this session, current number); ``start``
        begins a new export session."""
        self._require_autonomous()
        if start:
            self._exported = 0
            self._reading = None
        first = self._queue[0].number if self._queue else 0
        current = self._reading.number if self._reading else 0
        return len(self._queue), first, self._exported, current

    def export_next(self, *, following: bool = False) -> tuple[int, int]:
        """D4h: (length, number) of the current notification, or of the next (``following``)."""
        self._require_autonomous()
        if not self._queue:
            raise FnError(FnCode.NO_DATA, "no notification is queued")
        if self._reading is None or not following:
            chosen = self._reading if self._reading in self._queue else self._queue[0]
        else:
            later = [n for n in self._queue if n.number > self._reading.number]
            if not later:
                raise FnError(FnCode.NO_DATA, "no more notifications")
            chosen = later[0]
        if chosen is not self._reading:
            self._exported += 1
        self._reading = chosen
        return len(chosen.message), chosen.number

    def export_confirm(self, number: int, crc: int) -> tuple[int, int]:
        """D6h(1): the notification ``number`` (with its CRC) reached the OISM; (unconfirmed,
        first number) after it."""
        self._require_autonomous()
        found = next((n for n in self._queue if n.number == number), None)
        if found is None or block_crc(found.message) != crc:
            raise FnError(
                FnCode.BAD_PARAMETER, f"no queued notification {number} with CRC {crc:04X}h"
            )
        self._save(MarkingWrite(self.state, confirmed=number))
        if self._reading is found:
            self._reading = None
        return len(self._queue), self._queue[0].number if self._queue else 0

    # -- internals --------------------------------------------------------------------------------

    def _save(self, write: MarkingWrite) -> None:
        self._store.save(self._fn_state(), marking=write)
        self.committed(write)

    def _registration_autonomous(self) -> bool:
        r = self._fn_state().registration
        return bool(r and r.autonomous)

    def _require_marking(self) -> None:
        s = self._fn_state()
        if s.registration is None or s.registration.ffd_version < 4:
            raise FnError(FnCode.MARKING_OFF, "marking codes need an FN registered for FFD 1.2")
        if not s.shift_open:
            raise FnError(FnCode.WRONG_STATE, "open a shift first")

    def _require_step(self, *steps: Step, what: str) -> _Pending:
        self._require_marking()
        if self._pending is None or self.step() not in steps:
            raise FnError(FnCode.MARKING_SEQUENCE, f"out of sequence: {what}")
        return self._pending

    def _require_online(self) -> None:
        if self._registration_autonomous():
            raise FnError(FnCode.WRONG_STATE, "an autonomous FN exports notifications (D3h-D6h)")

    def _require_autonomous(self) -> None:
        if not self._registration_autonomous():
            raise FnError(FnCode.WRONG_STATE, "D3h-D6h are for an autonomous FN; use BAh-BFh")


def _item_tag(tag: int, value: Value) -> bytes:
    """One item tag copied into 2007, encoded as the receipt encodes it (raw when the codec does
    not know the tag yet)."""
    if tag in TAGS or not isinstance(value, bytes):
        return encode_tlv_item(tag, value)
    return tlv_bytes(tag, value)


def code_tags(code: bytes) -> TlvList:
    """The item tags a register adds for a marked item: 1163 with the product code (1305 GS1.М
    for a GS1 code, else 1300 КТ Н with the code as text) and 2115."""
    parsed = parse_code(code)
    product = parsed.product_code or code.decode("ascii", "replace")[:32]
    sub = 1305 if parsed.product_code else 1300
    return [(1163, [(sub, _text(sub, product))]), (2115, _text(2115, control_code(code)))]


def _text(tag: int, text: str) -> Value:
    """A string value as the codec takes it now: str for a tag it knows, bytes until then."""
    return text if tag in TAGS else text.encode("ascii")
