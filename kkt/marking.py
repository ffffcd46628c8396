"""Marked goods (FFD 1.2, «Честный знак»): what the driver tells about a code's check and about
the FN's marking state, in one vocabulary for every vendor.

* `MarkCheck` -- one code checked by the FN and ОИСМ (Shtrih FF61): the FN's local check (tag
  2004 and its reason), the code's type (2100), the online part, the 2106 byte, and whether a
  sale takes the code (`MarkCheck.accepted`) with the reason in words.
* `MarkingState` -- the FN's marking state (Shtrih FF70 = FN B0h, with FF68 = BAh when the FN
  answers it): where the check sequence stands, codes saved, notifications waiting for ОИСМ.
* `planned_status` -- tag 2003 for an item of a receipt when the caller named none.

The acceptance rule is JavaPOS's (``SMFiscalPrinterImpl.checkItemCode``; fact sheet
``ofd-cloud-marking.md`` §4.3): a code is refused when a check that was made came out negative
(`ItemCheck.negative`: the crypto code, or ОИСМ on the planned status).  One rule is ours: a code
ОИСМ could not be asked about (it did not answer in time, FF61 byte FFh, or the FN refused its
answer, 20h) is refused too unless the caller allows selling without ОИСМ (``allow_offline``) --
a sale must never pass a check that did not happen without somebody having said so.  An
autonomous register (no online block at all) never asks ОИСМ: its code stands on the FN's check.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kkt.protocols.ffd import TlvList
from kkt.protocols.ffd.marking import (
    AnswerRefusal,
    ItemCheck,
    LocalCheck,
    LocalCheckReason,
    MarkCodeType,
    MarkingCodeError,
    PlannedStatus,
    parse_mark_code,
)
from kkt.protocols.shtrih.marking import OnlineCheck

from .errors import BadMarkCode
from .receipt import Item, Operation

# What the FN's local-check reason byte means for the reader (B1h, fact sheet §4.2).
_LOCAL_REASONS = {
    LocalCheckReason.CHECKED: "the FN checked the crypto code",
    LocalCheckReason.TYPE_NOT_CHECKABLE: "this type of code carries no crypto code the FN checks",
    LocalCheckReason.NO_KEY: "the FN holds no key for this code's key id (AI 91): update the "
    "FN's marking keys (АС ОКП)",
    LocalCheckReason.AI_91_92_MISSING: "the code's AI 91/92 are missing or malformed",
    LocalCheckReason.OTHER: "the FN did not check it (other reason)",
}
_REFUSALS = {
    AnswerRefusal.BAD_SIGN: "its signature is wrong",
    AnswerRefusal.BAD_FORMAT: "its format is wrong",
    AnswerRefusal.BAD_REQUEST_NUMBER: "it answers another request",
    AnswerRefusal.BAD_FN_NUMBER: "it names another FN",
    AnswerRefusal.BAD_CRC: "its CRC is wrong",
    AnswerRefusal.BAD_LENGTH: "its length is wrong",
}


def short_code(code: str) -> str:
    """A code's short form for messages and logs: ``01`` GTIN ``21`` serial for a GS1 code, the
    first 24 characters otherwise (the crypto tail identifies nothing and fills a line)."""
    try:
        mark = parse_mark_code(code)
    except MarkingCodeError:
        mark = None
    if mark is not None and mark.product_code is not None:
        return mark.product_code
    text = code.replace("\x1d", "<GS>")
    return text if len(text) <= 24 else text[:24] + "..."


def checked_code(code: object, path: str = "code") -> bytes:
    """``code`` (a str as scanned, GS as "\\x1d") as the bytes the FN takes; `BadMarkCode`
    saying what is wrong otherwise (nothing is sent)."""
    if not isinstance(code, str):
        raise BadMarkCode(
            f'{path}: must be the code as scanned, a str (GS as "\\x1d"), got {code!r}'
        )
    try:
        return parse_mark_code(code).raw
    except MarkingCodeError as error:
        raise BadMarkCode(f"{path}: {error}") from None


def planned_status(item: Item, operation: Operation) -> PlannedStatus:
    """Tag 2003 for ``item`` in a receipt of ``operation``: the item's own, else derived.

    A sale sells the item (1 piece sold; 2 "measured, in sale" for a part of a unit, tags
    1293/1294, or goods by weight or measure), a sale return returns it (3; 4 "part
    returned"); a purchase and its return leave the goods' status unchanged (255) -- the
    shop is not the one putting them out of circulation (our reading: the fact sheet names no
    status for them).
    """
    if item.planned_status is not None:
        return item.planned_status
    # Measured: a part of a unit (1293/1294), goods weighed or measured out (2108 other than
    # 0 pieces), or a quantity that is not whole (fact sheet §4.3, JavaPOS: 2 for weight).
    part = (
        item.mark_quantity is not None
        or (item.measure is not None and item.measure != 0)
        or item.quantity != item.quantity.to_integral_value()
    )
    if operation is Operation.SELL:
        return PlannedStatus.MEASURED_IN_SALE if part else PlannedStatus.PIECE_SOLD
    if operation is Operation.SELL_RETURN:
        return PlannedStatus.MEASURED_RETURNED if part else PlannedStatus.PIECE_RETURNED
    return PlannedStatus.UNCHANGED


def check_tlv(
    planned: PlannedStatus,
    part: tuple[int, int] | None = None,
    quantity: Decimal = Decimal(1),
    measure: int | None = None,
) -> TlvList:
    """The TLVs FF61 carries after the code: for measured goods or a part of a unit, 2108 (the
    measure; 0 pieces), 1023 (the quantity) and 1291 {1293, 1294} (the part); nothing for a
    whole piece (fact sheet §4.3: "for partial sale 2108 + 1023", JavaPOS adds 1291)."""
    measured = planned in (
        PlannedStatus.MEASURED_IN_SALE,
        PlannedStatus.MEASURED_RETURNED,
        PlannedStatus.MEASURED_SOLD,
    )
    if part is None and not measured:
        return []
    tags: TlvList = [(2108, measure or 0), (1023, quantity)]
    if part is not None:
        tags.append((1291, [(1293, part[0]), (1294, part[1])]))
    return tags


def _enum(kind: Any, value: int) -> Any:
    try:
        return kind(value)
    except ValueError:
        return value


@dataclass(frozen=True, slots=True)
class MarkCheck:
    """One code's check (Shtrih FF61): the FN's, then ОИСМ's.

    ``local`` is tag 2004 (checked, positive), ``local_reason`` why the FN did (not) check the
    crypto code, ``code_type`` tag 2100 -- each an enum, or the bare number a newer FN sent.
    ``online`` is the online part as the register answered it (None: an autonomous register,
    which asks no ОИСМ); ``item_check`` tag 2106 (None when the FN formed none).  ``accepted``
    says whether a sale takes the code (module docstring), ``explanation`` why, in words.
    """

    code: str
    planned_status: PlannedStatus
    local: LocalCheck
    local_reason: LocalCheckReason | int
    code_type: MarkCodeType | int
    online: OnlineCheck | None
    item_check: ItemCheck | None
    accepted: bool
    explanation: str

    @classmethod
    def judge(
        cls,
        code: str,
        planned: PlannedStatus,
        local: LocalCheck,
        reason: int,
        code_type: int,
        online: OnlineCheck | None,
        *,
        allow_offline: bool = False,
    ) -> MarkCheck:
        """The check as the register answered it, with the sale's verdict on it."""
        local_check = LocalCheck(local)
        item_check: ItemCheck | None
        if online is None:  # autonomous: 2106 from the FN's check alone, bit 4 set
            item_check = ItemCheck(int(local_check) & 3) | ItemCheck.AUTONOMOUS
        elif online.timed_out:
            item_check = ItemCheck(online.result & 0x1F)
        else:
            item_check = online.item_check  # None when the FN refused ОИСМ's answer
        words: list[str] = []
        accepted = True
        local_bad = LocalCheck.CHECKED in local_check and LocalCheck.POSITIVE not in local_check
        if local_bad or (item_check is not None and item_check.negative):
            accepted = False
            if local_bad or (
                item_check is not None
                and ItemCheck.CODE_CHECKED in item_check
                and ItemCheck.CODE_POSITIVE not in item_check
            ):
                words.append(
                    "the FN found the code's crypto code invalid (a forged or misread code)"
                )
            else:
                words.append(
                    f"ОИСМ says the goods may not be {_planned_words(planned)} (withdrawn from "
                    "circulation, another owner, or a wrong planned status)"
                )
            words.append("do not sell this item; scan the code again or set the item aside")
        elif online is not None and online.timed_out:
            words.append("ОИСМ did not answer in time")
            accepted = allow_offline
            words.append(
                "sold without ОИСМ's answer as allowed"
                if accepted
                else "check the register's network and try again (or allow selling offline)"
            )
        elif online is not None and online.fn_code != 0:
            refusal = online.refusal
            why = (
                _REFUSALS.get(refusal, f"reason {refusal}")
                if isinstance(refusal, AnswerRefusal)
                else f"reason {refusal}"
            )
            words.append(f"the FN refused ОИСМ's answer ({why})")
            accepted = allow_offline
            words.append(
                "sold on the FN's check alone as allowed" if accepted else "check the code again"
            )
        else:
            words.append(_LOCAL_REASONS.get(_enum(LocalCheckReason, reason), f"reason {reason}"))
            if online is None:
                words.append("an autonomous register: ОИСМ is not asked")
            elif item_check is not None and ItemCheck.STATUS_CHECKED not in item_check:
                if _request_code(online.tlv) == CODE_NOT_RECOGNISED:
                    words.append(
                        "ОИСМ does not know this code (tag 2105 = 2, not recognised): check that "
                        "the whole code was scanned"
                    )
                else:
                    words.append("ОИСМ answered without checking the goods' status (unknown code?)")
            elif item_check is not None:
                words.append("ОИСМ confirmed the planned status")
        label = item_check.label if item_check is not None else "[М]"
        verdict = "accepted" if accepted else "rejected"
        text = f"{verdict} {label}: " + "; ".join(words)
        return cls(
            code,
            planned,
            local_check,
            _enum(LocalCheckReason, reason),
            _enum(MarkCodeType, code_type),
            online,
            item_check,
            accepted,
            text,
        )

    @property
    def short(self) -> str:
        """The code's short form (`short_code`)."""
        return short_code(self.code)

    @property
    def label(self) -> str:
        """What the receipt prints before the item: [М+], [М-] or [М]."""
        return self.item_check.label if self.item_check is not None else "[М]"

    def to_json(self) -> dict[str, Any]:
        online = self.online
        return {
            "code": self.code,
            "short": self.short,
            "plannedStatus": int(self.planned_status),
            "local": int(self.local),
            "localReason": int(self.local_reason),
            "codeType": int(self.code_type),
            "online": None
            if online is None
            else {"fnCode": online.fn_code, "result": online.result, "tlv": online.tlv.hex()},
            "itemCheck": None if self.item_check is None else int(self.item_check),
            "label": self.label,
            "accepted": self.accepted,
            "explanation": self.explanation,
        }


CODE_NOT_RECOGNISED = 2  # tag 2105: ОИСМ does not know the code (fact sheet §4.5)


def _request_code(tlv: bytes) -> int | None:
    """Tag 2105 among ОИСМ's TLVs (a one-byte value), or None: absent, or the TLVs do not parse
    (they only add words here, so a damaged list is no error)."""
    offset = 0
    while offset + 4 <= len(tlv):
        tag = int.from_bytes(tlv[offset : offset + 2], "little")
        size = int.from_bytes(tlv[offset + 2 : offset + 4], "little")
        value = tlv[offset + 4 : offset + 4 + size]
        if len(value) != size:
            return None
        if tag == 2105:
            return value[0] if size == 1 else None
        offset += 4 + size
    return None


def _planned_words(planned: PlannedStatus) -> str:
    return {
        PlannedStatus.PIECE_SOLD: "sold",
        PlannedStatus.MEASURED_IN_SALE: "sold in part",
        PlannedStatus.PIECE_RETURNED: "returned",
        PlannedStatus.MEASURED_RETURNED: "returned in part",
    }.get(planned, f"given status {int(planned)}")


_STEPS = {
    0: "the table of checked codes is full: sell them or clear it",
    1: "no code is being checked",
    2: "a code is being checked (after the FN's local check)",
    3: "a code is being checked (request to ОИСМ built)",
    4: "a code is being checked (ОИСМ's answer taken), waiting for accept or reject",
}
_STORE = {
    0: "under 50 % full",
    1: "50-80 % full",
    2: "80-90 % full",
    3: "over 90 % full: send the notifications to ОИСМ",
    4: "full: the FN sells no marked goods until the notifications are sent",
}


@dataclass(frozen=True, slots=True)
class MarkingState:
    """The FN's marking state (Shtrih FF70 = FN B0h; the notification part FF68 = BAh).

    ``check_state``: 0 table full, 1 idle, 2-4 a code between check and decision (a stale one
    the next check clears); ``saved`` codes checked and accepted, waiting for a receipt;
    ``store_warning`` 0..4 (<50 %, 50-80, 80-90, >90 %, full); ``queued`` notifications ОИСМ has
    not confirmed.  ``exchange_state`` (0 idle, 1 reading, 2 waiting for ОИСМ's receipt),
    ``first_queued`` (its 2002 number), ``first_queued_at`` and ``store_percent`` come from BAh:
    None where the FN does not answer it (an autonomous FN exports notifications instead).
    """

    check_state: int
    notification_state: int  # 0 none, 1 being formed, 2 blocked: the store is full
    permitted: int  # B-commands the FN takes now (bits: B1h B2h B3h B5h B6h B7h/1 B7h/2 B7h/3)
    saved: int
    codes_in_notification: int
    store_warning: int
    queued: int
    exchange_state: int | None = None
    first_queued: int | None = None
    first_queued_at: Any = None  # datetime.datetime | None
    store_percent: int | None = None

    @property
    def pending_check(self) -> bool:
        """A code is between the FN's check and the decision on it."""
        return self.check_state in (2, 3, 4)

    def describe(self) -> list[str]:
        """Plain-language lines, one fact each."""
        lines = [f"check: {_STEPS.get(self.check_state, f'state {self.check_state}')}"]
        lines.append(f"codes checked and accepted, waiting for a receipt: {self.saved}")
        queued = f"notifications waiting for ОИСМ: {self.queued}"
        if self.first_queued:
            when = f" of {self.first_queued_at:%Y-%m-%d %H:%M}" if self.first_queued_at else ""
            queued += f" (the first: number {self.first_queued}{when})"
        lines.append(queued)
        store = _STORE.get(self.store_warning, f"warning {self.store_warning}")
        percent = f" ({self.store_percent} %)" if self.store_percent is not None else ""
        lines.append(f"notification store: {store}{percent}")
        if self.notification_state == 2:
            lines.append("notifications blocked: the store is full; send them to ОИСМ")
        if self.exchange_state == 1:
            lines.append("a notification is being read for ОИСМ")
        elif self.exchange_state == 2:
            lines.append("a notification was sent; ОИСМ's receipt is awaited")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "checkState": self.check_state,
            "notificationState": self.notification_state,
            "permitted": self.permitted,
            "saved": self.saved,
            "codesInNotification": self.codes_in_notification,
            "storeWarning": self.store_warning,
            "queued": self.queued,
            "exchangeState": self.exchange_state,
            "firstQueued": self.first_queued,
            "firstQueuedAt": self.first_queued_at.isoformat() if self.first_queued_at else None,
            "storePercent": self.store_percent,
            "describe": self.describe(),
        }


__all__ = [
    "MarkCheck",
    "MarkingState",
    "check_tlv",
    "checked_code",
    "planned_status",
    "short_code",
]
