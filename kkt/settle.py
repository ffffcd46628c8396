"""What happened to a receipt (or a correction) whose command failed: the FN's archive decides.

Nothing that moves money is re-sent blindly.  When the answer to the closing command is lost,
refused after the FN moved on, or makes no sense, these functions read the fiscal storage's
documents after the last one known before the receipt and say: here is its fiscal data, or it was
certainly not fiscalized (`NotFiscalized`), or nobody can tell yet (`OutcomeUnknown`) -- never a
plain failure for a receipt that may be fiscal.  The same search settles an idempotency key a crash
left pending (`settle_pending`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

from kkt.protocols.errors import ProtocolError
from kkt.protocols.ffd import DocumentType, QrData, find, qr_string

from .errors import BadAnswer, DeviceError, KktError, NotFiscalized, OutcomeUnknown, TransportError
from .journal import Entry, JournalStore
from .receipt import Operation, Receipt, fingerprint_of, items_fingerprint
from .results import DocumentInfo, FiscalResult, Formed
from .vendors.base import CANCELLED, Closed, Device, LastSale, left_open

log = logging.getLogger("kkt.register")
T = TypeVar("T")

# Reads that failed on the line are tried again inside one call -- at most this many times, and
# not after this many seconds -- so that a call settles when the line lets a few answers through.
SETTLE_TRIES = 8
SETTLE_SECONDS = 30.0
_LINE_FAILURES = (TransportError, OutcomeUnknown, BadAnswer)


class DamagedClosing(OutcomeUnknown):
    """The FN holds this receipt with other sums than sent: its closing command was damaged on
    the line past the checksum.  Fiscal: never sold again (not a line failure to retry)."""


SHIFT_SPAN = dt.timedelta(hours=24)  # a shift's documents lie within 24 h of its start (54-FZ)


def cancel_open_receipt(device: Device) -> str | None:
    """Cancel the receipt open on the register, if any: None when none is left open, else why
    one is (`Device.cancel_open`) -- for the caller's error to say (`left_open`).  Never raises
    the driver's errors: the caller is reporting a failure already, and a cancel that failed
    (a device wrapper refusing every call, as the cloud's once its lease is gone) is one more
    reason a receipt may be left open."""
    try:
        return device.cancel_open()
    except KktError as error:
        log.warning("the open receipt could not be cancelled (%s)", error)
        return f"a receipt may be left open on the register (its cancel failed: {error})"


def formed_since(device: Device, before: int) -> bool:
    """Has the FN formed any document after ``before``?  (Unknown counts as yes.)"""
    try:
        return device.last_document() > before
    except KktError:
        return True


def receipt_result(
    device: Device, formed: Formed, receipt: Receipt, carried: LastSale | None = None
) -> FiscalResult:
    """The fiscal data of a receipt the FN has just formed.  From here on nothing may say
    "failed": a caller that took a failure for "not fiscal" would sell it twice.

    ``carried``: the FN's state after this session's previous receipt, when nothing happened on
    the register since (`Device.last_sale`); the closing answer then says all (`_from_answer`).
    """
    expected_change = receipt.payments.total - receipt.total
    if isinstance(formed, Closed) and formed.change not in (None, expected_change):
        # The register gave back what this receipt's payments do not leave: either the answer
        # was damaged on the line, or the closing command the register executed was (Shtrih's
        # XOR checksum passes two flips in one bit column of FF45's payments or rounding).  The
        # FN's document tells which.
        _check_payments(device, formed, receipt, expected_change)
    try:
        if carried is not None:
            quick = _from_answer(device, formed, receipt, carried)
            if quick is not None:
                return quick
        return _result(device, formed, receipt)
    except OutcomeUnknown:
        raise
    except (KktError, ProtocolError) as error:
        raise OutcomeUnknown(
            f"the receipt IS fiscal: document {formed.number}, fiscal sign "
            f"{formed.fiscal_sign}; reading its details failed ({error}).  Do not sell it "
            f"again: call find_document({formed.number}), or repeat the call with the same "
            "idempotency key to get its fiscal data"
        ) from error


# The payments as the FN records them, by `Payments` field.
PAYMENT_TAGS = {"cash": 1031, "electronic": 1081, "prepaid": 1215, "credit": 1216, "other": 1217}


def net_payments(paid: dict[str, int], total: int) -> dict[str, int]:
    """Payments as the FN records them: the change (always given from the cash) taken off it."""
    net = dict(paid)
    net["cash"] = net.get("cash", 0) - (sum(paid.values()) - total)
    return net


def _held_payments(device: Device, number: int) -> dict[str, int]:
    tags = dict(device.read_document(number).tlv)
    held: dict[str, int] = {}
    for name, tag in PAYMENT_TAGS.items():
        value = tags.get(tag, 0)
        if not isinstance(value, int):
            raise BadAnswer(f"document {number}'s tag {tag} reads {value!r}, not a sum")
        held[name] = value
    return held


def _raise_if_paid_otherwise(device: Device, number: int, sold: dict[str, int]) -> None:
    """Document ``number`` holds our items and total: its payments must be ``sold`` too (net of
    change).  Other payments mean its closing command was damaged on the line past the checksum
    (Shtrih's XOR passes two flips in one bit column): fiscal, never "done", never sold again."""
    try:
        held = _held_payments(device, number)
    except (*_LINE_FAILURES, ProtocolError) as failure:
        # A line that spoils long answers cannot carry the document (issue 14): the FN's short
        # record, with our items and total, decides as before; the payments go unchecked.
        log.info(
            "document %s's payments could not be read back over the line (%s); its record, with "
            "this receipt's items and total, decides",
            number,
            failure,
        )
        return
    if held != sold:
        raise DamagedClosing(
            f"the receipt IS fiscal: document {number} holds its items and total, but payments "
            f"{held!r} where {sold!r} were sold (the closing command was damaged on the line "
            "past its checksum).  Do not sell it again: correct that document (a correction "
            "receipt)"
        )


def _check_payments(device: Device, formed: Closed, receipt: Receipt, change: int) -> None:
    """Raise `OutcomeUnknown` unless document ``formed.number`` holds this receipt's total and
    payments (the change taken from the cash), read from the FN (a damaged reading is read
    again by `read_document`; one that fails is the caller's `OutcomeUnknown`)."""
    try:
        tags = dict(device.read_document(formed.number).tlv)
        paid = {name: getattr(receipt.payments, name) for name in PAYMENT_TAGS}
        paid["cash"] -= change
        held = {name: tags.get(tag, 0) for name, tag in PAYMENT_TAGS.items()}
        if tags.get(1020) != receipt.total:
            return  # another total: not this receipt as sent, which `_result` says
        if held == paid:
            return  # only the answer was damaged: the document is as sold
        found = f"payments {held!r}"
    except (KktError, ProtocolError) as error:
        found = f"unreadable ({error})"
    raise OutcomeUnknown(
        f"the receipt IS fiscal: document {formed.number}, fiscal sign {formed.fiscal_sign}; "
        f"but the register gave {formed.change} kopecks of change where this receipt leaves "
        f"{change}, and the document reads {found}: the closing command was damaged on the "
        f"line.  Do not sell it again: check document {formed.number} and correct it"
    )


def _from_answer(
    device: Device, formed: Formed, receipt: Receipt, carried: LastSale
) -> FiscalResult | None:
    """The receipt's fiscal data from the closing answer alone -- no document read back, no
    shift query -- or None when the answer does not say enough or says something unexpected
    (then the FN is asked, `_result`).

    Trusted only when everything it can be checked against agrees: its document is the very next
    one after this session's previous receipt (nothing else formed one since: `carried`), the
    change is what this receipt's payments less its total leave (so the register closed this
    total: another writer's receipt, or an item damaged past the checksum, changes it), and its
    time lies within the 24 hours after the previous receipt (the shift's span).  The shift and
    the receipt's number in it follow from the previous receipt's.  A fiscal sign or time
    damaged past the line's checksum (Shtrih's XOR passes two flips in one bit column) is what
    none of that covers: Shtrih's answer is trusted only when a second copy of it agreed byte
    for byte (`Closed.confirmed`; copies that differ send the receipt to `settle_receipt`).
    """
    found = formed.record  # read from the FN with the closing command (ATOL): verified below
    if found is None and isinstance(formed, Closed):
        if not formed.confirmed or formed.change != receipt.payments.total - receipt.total:
            return None
        if formed.when is None:  # a short answer (older Shtrih firmware): the FN's record says
            found = device.find_document(formed.number)
    if found is not None:
        when = found.when
        if not found.is_receipt or (found.number, found.fiscal_sign) != (
            formed.number,
            formed.fiscal_sign,
        ):
            return None
        if (found.operation not in (None, int(receipt.operation))) or found.total != receipt.total:
            return None
    elif isinstance(formed, Closed):
        when = formed.when
    else:
        return None
    if formed.number != carried.document + 1 or when is None:
        return None
    if carried.when is not None and not carried.when <= when <= carried.when + SHIFT_SPAN:
        return None
    total, operation, serial = receipt.total, int(receipt.operation), device.fn_serial()
    return FiscalResult(
        document_number=formed.number,
        fiscal_sign=formed.fiscal_sign,
        fn_number=serial,
        shift_number=carried.shift_number,
        receipt_number=carried.receipt_number + 1,
        when=when,
        total=total,
        operation=operation,
        qr=qr_string(QrData(when, total, serial, formed.number, formed.fiscal_sign, operation)),
    )


def _result(device: Device, formed: Formed, receipt: Receipt) -> FiscalResult:
    found = formed.record or device.find_document(formed.number)
    # A brief record may not name the operation (ATOL's 91h 34h): its type, total and sign
    # still tell another writer's document from ours.
    operation = int(receipt.operation) if found.operation is None else found.operation
    if (
        not found.is_receipt
        or found.number != formed.number
        or (operation, found.total) != (int(receipt.operation), receipt.total)
        or found.fiscal_sign != formed.fiscal_sign
    ):
        # The document the closing answer named is not this receipt: another program opened,
        # filled or closed a receipt on this register meanwhile.  One writer per register.
        raise OutcomeUnknown(
            f"the FN's document {formed.number} is not this receipt (it holds {found}); "
            "another program is using this register: check the FN's documents before "
            "selling again, and let one Register object (it is thread-safe) do all the "
            "register's work"
        )
    return fiscal_result(device, found, receipt.total, int(receipt.operation))


def fiscal_result(device: Device, found: DocumentInfo, total: int, operation: int) -> FiscalResult:
    """A receipt's fiscal data from its document's record, the shift's and the FN's numbers."""
    shift = device.shift()
    serial = device.fn_serial()
    when = found.when
    qr = (
        qr_string(QrData(when, total, serial, found.number, found.fiscal_sign, operation))
        if when
        else ""
    )
    return FiscalResult(
        document_number=found.number,
        fiscal_sign=found.fiscal_sign,
        fn_number=serial,
        shift_number=shift.number,
        receipt_number=shift.receipts,
        when=when,
        total=total,
        operation=operation,
        qr=qr,
    )


def settle_receipt(device: Device, receipt: Receipt, before: int) -> FiscalResult:
    """The closing command's fate is unknown: the FN's archive decides.  Anything but "done" or
    `NotFiscalized` reads `OutcomeUnknown`."""
    try:
        return _settle(device, receipt, before)
    except (NotFiscalized, OutcomeUnknown):
        raise
    except (KktError, ProtocolError) as failure:
        # Anything else here leaves the receipt's fate open: never let it read "failed".
        raise OutcomeUnknown(
            f"whether the receipt was fiscalized is unknown ({failure}): check the FN's "
            f"documents after number {before} before selling it again"
        ) from failure


def _settle(device: Device, receipt: Receipt, before: int) -> FiscalResult:
    deadline = time.monotonic() + SETTLE_SECONDS
    for attempt in range(1, SETTLE_TRIES + 1):
        if attempt > 1 and time.monotonic() > deadline:
            break
        try:
            # Our receipt still open, with our total: the closing command did not run, so no
            # document after ``before`` is ours, whatever formed one.  Asked first, because
            # ``before`` may be stale: carried from this session's previous receipt, it misses
            # a document another writer formed in the idle time, and such a receipt with our
            # items would pass every check below (one writer per register is the rule; this is
            # what keeps its breach from making our sale "done" with their document while ours
            # stays open).  Closing it now is the first closing.
            open_now = device.receipt_open()
            if open_now and device.subtotal() == receipt.total:
                return _close_in_settling(device, receipt)
            found = find_formed(
                device,
                before,
                int(receipt.operation),
                receipt.total,
                fingerprint=receipt.fingerprint(),
                contested=False,  # ``before`` is this call's own, read just before the receipt
            )
            if found is not None:
                # The closing's answer was lost: nothing vouches for its payments but the FN.
                paid = {name: getattr(receipt.payments, name) for name in PAYMENT_TAGS}
                _raise_if_paid_otherwise(
                    device, found.document_number, net_payments(paid, receipt.total)
                )
                return found
            if open_now:
                # The FN formed nothing, and the receipt open is not this one (its total is
                # another's): a receipt some failure left open earlier, or another program's.
                # Closing it with this receipt's payments would make a fiscal document nobody
                # sold.
                why = cancel_open_receipt(device)
                if why is None:
                    raise NotFiscalized(
                        "the receipt was not fiscalized, and the receipt open on the register "
                        "was not this one (it was cancelled); nothing was charged: sell it again"
                    )
                raise left_open(
                    NotFiscalized(
                        "the receipt was not fiscalized, and the receipt open on the register "
                        "is not this one; nothing was charged: sell it again"
                    ),
                    why,
                )
            moved = device.last_document() != before
        except DamagedClosing:
            raise  # fiscal, with other sums: reading again changes nothing
        except (TransportError, OutcomeUnknown, BadAnswer):
            continue
        if moved:
            # The FN moved on, yet no document read as this receipt: a damaged answer can
            # pass a checksum and misread one.  That is never "not fiscal".
            raise OutcomeUnknown(
                f"the FN formed documents after number {before}, and none reads as this "
                "receipt: check them before selling it again"
            )
        raise NotFiscalized(
            "the receipt was not fiscalized and is no longer open (was the register "
            "restarted?); nothing was charged: sell it again"
        )
    raise OutcomeUnknown(
        "the register does not answer; whether the receipt was fiscalized is unknown: check "
        f"the FN's documents after number {before} before selling it again"
    )


def _close_in_settling(device: Device, receipt: Receipt) -> FiscalResult:
    """Close our receipt, found still open while settling: its first closing.  A refusal with
    the FN unmoved leaves nothing fiscal -- the receipt is cancelled, never left open for the
    next sale to find (`NotFiscalized`); one after the FN moved is judged by its archive."""
    last = device.last_document()
    try:
        formed = device.close_receipt(receipt)
    except DeviceError as refusal:
        if formed_since(device, last):
            raise OutcomeUnknown(
                f"the closing command was refused ({refusal}) yet the FN formed a document: "
                f"check the FN's documents after number {last} before selling it again"
            ) from refusal
        why = cancel_open_receipt(device)
        failure = NotFiscalized(
            f"the register refused to close the receipt ({refusal}); {CANCELLED}: sell it again"
        )
        raise (failure if why is None else left_open(failure, why)) from refusal
    return receipt_result(device, formed, receipt)


def settle_pending(
    device: Device, journal: JournalStore, entry: Entry, receipt: Receipt | None = None
) -> FiscalResult | None:
    """A key left pending by a crash or an unknown outcome: the FN it began in decides.

    Documents other keys already own are not candidates, whatever their total.  Given the key's
    own ``receipt`` (the caller repeating it), a document after ``before`` with its operation,
    total and every item's price, quantity and amount in order, but other item names or kinds,
    is this sale's with an item command damaged on the line past its checksum: `DamagedClosing`,
    never "not formed" (which would sell it again).  Any doubt
    -- another FN, a line too bad to read the archive -- is `OutcomeUnknown`, never a plain
    failure: that receipt may well be fiscal.  Reads the line spoils are tried again
    (`SETTLE_TRIES`, `SETTLE_SECONDS`) before the doubt is reported.
    """
    deadline = time.monotonic() + SETTLE_SECONDS
    try:
        serial = _patiently(device.fn_serial, deadline)
        if not entry.fn or entry.fn == serial:

            def find() -> FiscalResult | None:
                found = find_formed(
                    device,
                    entry.before,
                    entry.operation,
                    entry.total,
                    exclude=journal.claimed(entry.before, serial),
                    upto=journal.next_begun(entry.before, serial),
                    fingerprint=items_fingerprint(entry.fingerprint),
                    # A document after ``before`` with this total may be another sale's --
                    # one sold without a key, or another pending key's -- and only its items
                    # tell: whoever else sold since, no short record may decide.
                    contested=True,
                    shape=shape_of(receipt) if receipt is not None else "",
                )
                if found is not None and entry.payments:
                    paid = {
                        name: int(value)
                        for name, value in (part.split("=") for part in entry.payments.split(","))
                    }
                    _raise_if_paid_otherwise(
                        device, found.document_number, net_payments(paid, entry.total)
                    )
                return found

            return _patiently(find, deadline)
    except DamagedClosing:
        raise
    except (KktError, ProtocolError) as error:
        raise OutcomeUnknown(
            f"receipt {entry.key!r} may be fiscal and its FN could not be read ({error}); "
            "try again when the register answers"
        ) from error
    raise OutcomeUnknown(
        f"receipt {entry.key!r} began in FN {entry.fn}, and this register holds FN "
        f"{serial}: settle it on that register (or read that FN's documents after "
        f"number {entry.before})"
    )


def settle_correction(
    device: Device,
    before: int,
    operation: Operation,
    total: int,
    *,
    exclude: set[int] | None = None,
    upto: int | None = None,
) -> FiscalResult:
    """A correction's command failed leaving its fate open: the FN's archive decides.

    ``exclude``: documents other idempotency keys own; ``upto``: the last document that may be
    this correction's (a later key began after it ended) -- as `settle_pending` for receipts.
    """
    try:
        last = device.last_document()
        if upto is not None:
            last = min(last, upto)
        for number in range(last, before, -1):
            if exclude and number in exclude:
                continue
            found = device.find_document(number)
            if found.type == DocumentType.CORRECTION_RECEIPT and (
                found.operation,
                found.total,
            ) == (int(operation), total):
                return fiscal_result(device, found, total, int(operation))
        why = cancel_open_receipt(device)
    except (KktError, ProtocolError) as error:
        raise OutcomeUnknown(
            f"whether the correction was fiscalized is unknown ({error}): check the FN's "
            f"documents after number {before} before making it again"
        ) from error
    failure = NotFiscalized(
        "the correction was not fiscalized; nothing was recorded: make it again"
    )
    raise failure if why is None else left_open(failure, why)


def _patiently(read: Callable[[], T], deadline: float) -> T:
    """``read()``, tried again after a failure on the line (`SETTLE_TRIES` times at most, not
    after ``deadline``); reads only: nothing here may change the register's state."""
    for attempt in range(1, SETTLE_TRIES + 1):
        try:
            return read()
        except DamagedClosing:
            raise
        except _LINE_FAILURES as failure:
            if attempt == SETTLE_TRIES or time.monotonic() > deadline:
                raise
            log.info("settling: a read failed on the line (%s); reading again", failure)
    raise AssertionError("unreachable")


def find_formed(
    device: Device,
    before: int,
    operation: int,
    total: int,
    *,
    exclude: set[int] | None = None,
    fingerprint: str = "",
    contested: bool = True,
    upto: int | None = None,
    shape: str = "",
) -> FiscalResult | None:
    """The newest receipt after document ``before`` with this operation and total -- and,
    given a ``fingerprint``, these very items.  Given the items' ``shape`` too (`shape_of`), a
    document whose items differ from ours only in their names raises `DamagedClosing`.

    Short answers first (`Device.brief_document`: Shtrih's FF0A record, ATOL's 91h 34h for the
    last document): a long one rarely survives a bad line.  They decide alone when exactly one
    document after ``before`` (and not in ``exclude``) may be this receipt and it cannot be
    another sale's (``contested=False``: the caller took ``before`` under the register's lock --
    from the FN, or carried from its own previous receipt with nothing done since -- and the FN
    formed at most one document after it: one writer per register, so that one is this
    receipt); the items are still read once, if the line lets them through, and two equal
    readings of other items say "another receipt".  Otherwise the documents' own items are read
    whole (``fingerprint``) to choose.
    """
    last = device.last_document()
    if last > before + 1:
        # More than one document since ``before``: something besides this receipt formed one
        # (another writer, or ``before`` was carried from an earlier receipt and went stale), so
        # no short record may decide alone.
        contested = True
    if upto is not None:
        last = min(last, upto)  # documents after a later key began are not this receipt's
    candidates: list[DocumentInfo] = []
    rounded: list[DocumentInfo] = []  # receipts up to 99 kopecks short of ours: see below
    for number in range(last, before, -1):
        if exclude and number in exclude:
            continue
        # A damaged answer can pass the line's checksum (Shtrih's XOR passes two flips in
        # one bit column): a document that does not read as this receipt is read again, and
        # only two equal readings say "another receipt".  A match is confirmed by the FN's
        # own numbers (the document's number, sign and total agree across two commands).
        found = device.brief_document(number)
        if not _may_be(found, operation, total):
            if device.brief_document(number) != found:
                raise BadAnswer(f"document {number} reads differently each time")
            if _may_be_rounded(found, operation, total):
                rounded.append(found)
            continue
        candidates.append(found)
    if not candidates:
        _raise_if_rounded(device, rounded, total, fingerprint)
        return None
    if len(candidates) == 1 and not contested:
        found = candidates[0]
        if fingerprint and _not_these_items(device, found.number, fingerprint):
            return None  # two equal readings of other items: another sale's receipt
        return fiscal_result(device, found, total, operation)
    # Short answers cannot decide: the whole records, and the items, choose (newest first).
    for found in candidates:
        if found.operation is None:  # the short record did not name it
            found = device.find_document(found.number)
            if not _may_be(found, operation, total) or found.operation is None:
                if device.find_document(found.number) != found:
                    raise BadAnswer(f"document {found.number} reads differently each time")
                continue
        if fingerprint:
            theirs = _document_fingerprint(device, found.number)
            if theirs not in (fingerprint, None):
                if _document_fingerprint(device, found.number) != theirs:
                    raise BadAnswer(f"document {found.number}'s items read differently each time")
                if shape and _document_fingerprint(device, found.number, names=False) == shape:
                    raise _items_damaged(found.number)
                continue  # the same total, other items: another sale's receipt
        return fiscal_result(device, found, total, operation)
    _raise_if_rounded(device, rounded, total, fingerprint)
    return None


def _raise_if_rounded(
    device: Device, rounded: list[DocumentInfo], total: int, fingerprint: str
) -> None:
    """The same damage in the command: Shtrih's closing command (FF45) carries a rounding
    (0-99 kopecks off the total), and two flips in one bit column of its frame pass the
    checksum -- the register then closes THIS receipt for less.  Its items say it is ours:
    fiscal, never "not found" (a caller would sell it again) -- whatever else has our total."""
    for found in rounded:
        if fingerprint and _document_fingerprint(device, found.number) == fingerprint:
            raise DamagedClosing(
                f"the receipt IS fiscal: document {found.number} holds its items, but "
                f"for {found.total} kopecks, not {total} (the closing command was "
                "damaged on the line past its checksum).  Do not sell it again: correct "
                "that document (a correction receipt)"
            )


def _may_be(found: DocumentInfo, operation: int, total: int) -> bool:
    """May the record be a receipt with this operation and total (an unnamed operation may)?"""
    return found.is_receipt and found.total == total and found.operation in (operation, None)


def _may_be_rounded(found: DocumentInfo, operation: int, total: int) -> bool:
    """May the record be this receipt closed with a rounding (up to 99 kopecks less)?"""
    return (
        found.is_receipt
        and found.operation in (operation, None)
        and found.total is not None
        and total - 99 <= found.total < total
    )


def _not_these_items(device: Device, number: int, fingerprint: str) -> bool:
    """Do two equal readings of document ``number``'s items say they are not these?  Asked
    where the short record decides already: a line too bad for the long reading says no."""
    try:
        theirs = _document_fingerprint(device, number)
        if theirs in (fingerprint, None):
            return False
        return _document_fingerprint(device, number) == theirs
    except _LINE_FAILURES as failure:
        log.info("settling: document %d's items could not be read (%s)", number, failure)
        return False


def shape_of(receipt: Receipt) -> str:
    """`fingerprint_of` the receipt's items without their names: what a damaged item name (or
    kind, department, tax byte -- nothing the subtotal check sees) leaves of them."""
    return fingerprint_of(
        int(receipt.operation),
        [("", item.price, item.quantity, item.total) for item in receipt.items],
    )


def _items_damaged(number: int) -> DamagedClosing:
    return DamagedClosing(
        f"the receipt IS fiscal: document {number} holds its operation, total and every item's "
        "price, quantity and amount, but other item names (an item command was damaged on the "
        "line past its checksum).  Do not sell it again: correct that document (a correction "
        "receipt)"
    )


def _document_fingerprint(device: Device, number: int, *, names: bool = True) -> str | None:
    """`fingerprint_of` the document's own items (without their names: `shape_of`); None when
    this register cannot say."""
    try:
        document = device.read_document(number)
    except DeviceError:
        return None  # the model cannot read documents whole: the total has to do
    items = []
    for tag, value in document.tlv:
        if tag == 1059 and isinstance(value, list):
            fields = dict(value)
            quantity = fields.get(1023)
            items.append(
                (
                    str(fields.get(1030, "")) if names else "",
                    int(fields.get(1079, 0)),  # type: ignore[arg-type]
                    quantity if isinstance(quantity, Decimal) else Decimal(0),
                    int(fields.get(1043, 0)),  # type: ignore[arg-type]
                )
            )
    operation = find(document.tlv, 1054)
    return fingerprint_of(int(operation) if isinstance(operation, int) else 0, items)
