"""`Register`: one vocabulary for a fiscal register, whatever its vendor (Shtrih-M, ATOL).

Receipts are fiscalized exactly once.  Nothing that moves money is re-sent blindly: when the
answer to the closing command is lost, the driver reads the fiscal storage's last document and
decides from it whether the receipt exists; an optional idempotency key (with a `Journal`) makes
a repeated call -- after a timeout, a crash, a restart -- return the first receipt's fiscal data.

What differs between vendors lives in a `Device` (`kkt.shtrih_device`, `kkt.atol_device`); the
rules here are the same for all.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import replace
from decimal import Decimal
from typing import Any

from kkt.protocols.errors import ProtocolError
from kkt.protocols.ffd import QrData, find, qr_string

from .archive import Document, Registration, read_registration, shift_opened_at
from .commander import Commander
from .device import Device
from .errors import (
    BadAnswer,
    CannotSend,
    DeviceError,
    KktError,
    NotFiscalized,
    OutcomeUnknown,
    TransportError,
)
from .journal import Entry, Journal
from .receipt import Operation, Receipt, fingerprint_of
from .results import (
    DeviceInfo,
    DocumentInfo,
    DocumentType,
    FiscalResult,
    FnInfo,
    Formed,
    OfdQueue,
    ShiftInfo,
    ShiftState,
    Status,
)

log = logging.getLogger(__name__)


class Register:
    """A fiscal register.  Thread-safe: one command at a time.

    One writer per register: a register has one open receipt and one document-read cursor, shared
    by every connection to it, so two programs (or two `Register` objects) selling on the same
    register would fill or cancel each other's receipts.  Share one `Register` between threads
    instead; should another writer interfere anyway, the closing check notices that the document
    formed is not this receipt and says so (`OutcomeUnknown`) rather than report it as done.

    ``device`` is a vendor's `Device`; a bare `Commander` means a Shtrih-M register.
    """

    def __init__(
        self,
        device: Device | Commander,
        *,
        password: int = 30,
        journal: Journal | None = None,
    ) -> None:
        self._lock = threading.RLock()
        if not hasattr(device, "vendor"):
            from .shtrih_device import ShtrihDevice

            device = ShtrihDevice(device, password=password, lock=self._lock)
        self.device: Device = device  # type: ignore[assignment]
        self.journal = journal
        self._registration: Registration | None = None

    @property
    def vendor(self) -> str:
        return self.device.vendor

    @property
    def password(self) -> int:
        return self.device.password

    # -- plumbing ---------------------------------------------------------------------------------

    def raw(self, request: Any) -> Any:
        """Any typed request of the register's own protocol (`kkt.protocols.shtrih` or
        `kkt.protocols.atol`); refusals become the driver's `DeviceError` subclasses.

        Read-only requests are tried again after a link failure -- asking twice changes nothing.
        Anything else fails at once and the caller decides.
        """
        with self._lock:
            return self.device.raw(request)

    def close(self) -> None:
        with self._lock:  # not under another thread's exchange or receipt
            self.device.close()
            if self.journal is not None:
                self.journal.close()

    def __enter__(self) -> Register:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ----------------------------------------------------------------------------------

    def status(self) -> Status:
        with self._lock:
            return self.device.status()

    def device_info(self) -> DeviceInfo:
        with self._lock:
            return self.device.device_info()

    def fn_status(self) -> FnInfo:
        """The fiscal storage: serial, phase, expiry, registrations left, queue, warnings."""
        with self._lock:
            return self.device.fn_info()

    def fn_info(self) -> FnInfo:
        """The fiscal storage: serial, phase, expiry, registrations left, queue, warnings."""
        return self.fn_status()

    def find_document(self, number: int) -> DocumentInfo:
        """The archive's short record of document ``number`` (type, time, sign, total)."""
        with self._lock:
            return self.device.find_document(number)

    def document(self, number: int) -> Document:
        """Fiscal document ``number`` whole, its TLV decoded."""
        with self._lock:
            return self.device.read_document(number)

    def registration(self) -> Registration:
        """INN, RNM, user, address and FFD version from the FN's registration report."""
        if self._registration is None:
            with self._lock:
                self._registration = read_registration(self.device)
        return self._registration

    def clock(self) -> dt.datetime | None:
        """The register's own date and time (None when it has no date set)."""
        with self._lock:
            return self.device.clock()

    def shift_info(self) -> ShiftInfo:
        """Whether a shift is open, its number, receipts, when it began and whether it expired."""
        with self._lock:
            status = self.device.status()
            state = self.device.shift()
            opened = (
                shift_opened_at(self.device, state.number, state.receipts) if state.open else None
            )
            return ShiftInfo(
                open=state.open,
                number=state.number,
                receipts=state.receipts,
                opened_at=opened,
                expired=status.shift_expired,
            )

    def shift_state(self) -> ShiftState:
        with self._lock:
            return self.device.shift()

    def ofd_status(self) -> OfdQueue:
        """How many documents wait for the OFD, and since when."""
        with self._lock:
            return self.device.ofd_queue()

    # -- shifts and reports -----------------------------------------------------------------------

    def open_shift(self, cashier: str | None = None) -> FiscalResult:
        with self._lock:
            return self._report(self.device.open_shift(cashier))

    def close_shift(self, cashier: str | None = None) -> FiscalResult:
        """Close the shift with its Z report."""
        with self._lock:
            return self._report(self.device.close_shift(cashier))

    def x_report(self) -> None:
        with self._lock:
            self.device.x_report()

    def print_text(self, text: str) -> None:
        """Print lines of text (each cut to the register's line width)."""
        with self._lock:
            self.device.print_text(text)

    def cut(self, *, partial: bool = False) -> None:
        with self._lock:
            self.device.cut(partial)

    def continue_print(self) -> None:
        """Resume a document a paper end interrupted (after loading paper)."""
        with self._lock:
            self.device.continue_print()

    def set_datetime(self, when: dt.datetime) -> None:
        with self._lock:
            self.device.set_datetime(when)

    def correction(self, operation: Operation, total: int, *, reason: str = "") -> FiscalResult:
        """A correction receipt (on the user's own initiative) for ``total`` kopecks in cash.

        Settled like a receipt: when its command fails in a way that leaves its fate open, the
        FN's archive says whether the correction exists.
        """
        with self._lock:
            before = self.device.last_document()
            try:
                made = self.device.correction(operation, total, reason)
            except (CannotSend, NotFiscalized):
                raise
            except DeviceError:
                if not self._formed_since(before):
                    raise
                return self._settle_correction(before, operation, total)
            except (KktError, ProtocolError):
                return self._settle_correction(before, operation, total)
            try:
                found = self.device.find_document(made.number)
                return self._from_document(found, total, int(operation))
            except (KktError, ProtocolError) as error:
                raise OutcomeUnknown(
                    f"the correction IS fiscal: document {made.number}, fiscal sign "
                    f"{made.fiscal_sign}; reading its details failed ({error})"
                ) from error

    def _settle_correction(self, before: int, operation: Operation, total: int) -> FiscalResult:
        try:
            last = self.device.last_document()
            for number in range(last, before, -1):
                found = self.device.find_document(number)
                if found.type == DocumentType.CORRECTION_RECEIPT and (
                    found.operation,
                    found.total,
                ) == (int(operation), total):
                    return self._from_document(found, total, int(operation))
            self._cancel_open_receipt()
        except (KktError, ProtocolError) as error:
            raise OutcomeUnknown(
                f"whether the correction was fiscalized is unknown ({error}): check the FN's "
                f"documents after number {before} before making it again"
            ) from error
        raise NotFiscalized(
            "the correction was not fiscalized; nothing was recorded: make it again"
        )

    def cash_in(self, amount: int) -> None:
        with self._lock:
            self.device.cash_in(amount)

    def cash_out(self, amount: int) -> None:
        with self._lock:
            self.device.cash_out(amount)

    def _report(self, formed: Formed) -> FiscalResult:
        found = formed.record or self.device.find_document(formed.number)
        return FiscalResult(
            formed.number,
            formed.fiscal_sign,
            self.device.fn_serial(),
            formed.shift_number,
            0,
            found.when,
            0,
            0,
            "",
        )

    # -- receipts ---------------------------------------------------------------------------------

    def sell(self, receipt: Receipt, *, key: str | None = None) -> FiscalResult:
        return self.receipt(replace(receipt, operation=Operation.SELL), key=key)

    def sell_return(self, receipt: Receipt, *, key: str | None = None) -> FiscalResult:
        return self.receipt(replace(receipt, operation=Operation.SELL_RETURN), key=key)

    def buy(self, receipt: Receipt, *, key: str | None = None) -> FiscalResult:
        return self.receipt(replace(receipt, operation=Operation.BUY), key=key)

    def buy_return(self, receipt: Receipt, *, key: str | None = None) -> FiscalResult:
        return self.receipt(replace(receipt, operation=Operation.BUY_RETURN), key=key)

    def receipt(self, receipt: Receipt, *, key: str | None = None) -> FiscalResult:
        """Fiscalize ``receipt`` exactly once (its ``operation`` says sell, return, buy ...)."""
        receipt.validate()
        if key is not None and self.journal is None:
            raise KktError("an idempotency key needs a journal: connect(..., journal=PATH)")
        with self._lock:
            if key is not None:
                assert self.journal is not None
                entry = self.journal.get(key)
                if entry is not None and entry.state == "done" and entry.result:
                    return FiscalResult.from_json(entry.result)
                if entry is not None:
                    found = self._settle_pending(entry)
                    if found is not None:
                        self.journal.done(key, found.to_json())
                        return found
                    self._cancel_open_receipt()
            before = self.device.last_document()
            if key is None:
                return self._fiscalize(receipt, before)
            assert self.journal is not None
            serial = self.device.fn_serial()
            self.journal.begin(
                key, before, int(receipt.operation), receipt.total, serial, receipt.fingerprint()
            )
            try:
                result = self._fiscalize(receipt, before)
            except OutcomeUnknown:
                raise  # stays pending: the next call with this key asks the FN
            except KktError:
                # Certainly not fiscal (refused, or failed before the closing command took):
                # the key is free again, and no later document can be mistaken for it.
                self.journal.forget(key)
                raise
            self.journal.done(key, result.to_json())
            return result

    def _settle_pending(self, entry: Entry) -> FiscalResult | None:
        """A key left pending by a crash or an unknown outcome: the FN it began in decides.

        Documents other keys already own are not candidates, whatever their total.  Any doubt
        -- another FN, a line too bad to read the archive -- is `OutcomeUnknown`, never a plain
        failure: that receipt may well be fiscal.
        """
        assert self.journal is not None
        try:
            serial = self.device.fn_serial()
            if entry.fn and entry.fn != serial:
                raise OutcomeUnknown(
                    f"receipt {entry.key!r} began in FN {entry.fn}, and this register holds FN "
                    f"{serial}: settle it on that register (or read that FN's documents after "
                    f"number {entry.before})"
                )
            return self._find_formed(
                entry.before,
                entry.operation,
                entry.total,
                exclude=self.journal.claimed(entry.before, serial),
                fingerprint=entry.fingerprint,
            )
        except OutcomeUnknown:
            raise
        except (KktError, ProtocolError) as error:
            raise OutcomeUnknown(
                f"receipt {entry.key!r} may be fiscal and its FN could not be read ({error}); "
                "try again when the register answers"
            ) from error

    def _fiscalize(self, receipt: Receipt, before: int) -> FiscalResult:
        device = self.device
        # A receipt left open by an earlier failure (of this single writer) is not fiscal: drop it,
        # or its items would join this receipt.
        if not device.no_open_receipt:
            self._cancel_open_receipt()
        try:
            device.open_receipt(receipt)
            subtotal = 0
            for index, item in enumerate(receipt.items):
                device.add_item(receipt, index, subtotal)
                subtotal += item.total
            self._check_subtotal(receipt.total)
            device.pay(receipt)
        except OutcomeUnknown as unknown:
            # A step before the closing command may or may not have been taken -- but nothing is
            # fiscal before the closing command, whatever it was: the receipt is certainly not.
            self._cancel_open_receipt()
            raise NotFiscalized(
                f"a step of the receipt failed on the link ({unknown}); the receipt was "
                "cancelled, nothing was charged: sell it again"
            ) from unknown
        except KktError:
            # Nothing is fiscal before the closing command: cancel what was begun and report.
            self._cancel_open_receipt()
            raise
        try:
            formed = device.close_receipt(receipt)
        except CannotSend:
            self._cancel_open_receipt()  # nothing was sent: the receipt is not fiscal
            raise
        except DeviceError as refusal:
            # A refusal usually means nothing was done -- but a paper end during the fiscal
            # printout can come after the FN formed the document.  The FN's archive is the judge.
            if self._formed_since(before):
                log.warning("closing command refused (%s) yet the FN moved on; settling", refusal)
                return self._settle_safely(receipt, before)
            raise
        except (KktError, ProtocolError) as error:
            # Whatever failed -- the link, an answer that makes no sense, a query after the
            # closing command (ATOL reads the document formed separately) -- the FN's archive
            # is the judge of a closing command that may have gone out.
            log.warning("closing command failed (%s); asking the FN", error)
            return self._settle_safely(receipt, before)
        result = self._formed(formed, receipt)
        device.no_open_receipt = True  # closed by us, and nothing else sent since
        return result

    def _formed_since(self, before: int) -> bool:
        """Has the FN formed any document after ``before``?  (Unknown counts as yes.)"""
        try:
            return self.device.last_document() > before
        except KktError:
            return True

    def _formed(self, formed: Formed, receipt: Receipt) -> FiscalResult:
        """The fiscal data of a receipt the FN has just formed.  From here on nothing may say
        "failed": a caller that took a failure for "not fiscal" would sell it twice."""
        try:
            return self._result(formed, receipt)
        except OutcomeUnknown:
            raise
        except (KktError, ProtocolError) as error:
            raise OutcomeUnknown(
                f"the receipt IS fiscal: document {formed.number}, fiscal sign "
                f"{formed.fiscal_sign}; reading its details failed ({error}).  Do not sell it "
                f"again: call find_document({formed.number}), or repeat the call with the same "
                "idempotency key to get its fiscal data"
            ) from error

    def _check_subtotal(self, total: int) -> None:
        """The register's open receipt must add up to ours before it is closed.

        Shtrih frames carry an XOR checksum: two flipped bits in the same bit position of one
        frame pass it, and the register would execute an item with a damaged price or quantity.
        A soak at 1 % damaged bytes produced exactly that; one subtotal query per receipt keeps
        such a receipt from ever becoming fiscal (on every vendor: it costs one query).
        """
        subtotal = self.device.subtotal()
        if subtotal != total:
            raise NotFiscalized(
                f"the register's subtotal is {subtotal} kopecks, the receipt's {total} (a command "
                "damaged on the line?); the receipt was cancelled, nothing was charged: sell it "
                "again"
            )

    def _settle_safely(self, receipt: Receipt, before: int) -> FiscalResult:
        """`_settle`, where anything but "done" or `NotFiscalized` reads `OutcomeUnknown`."""
        try:
            return self._settle(receipt, before)
        except (NotFiscalized, OutcomeUnknown):
            raise
        except (KktError, ProtocolError) as failure:
            # Anything else here leaves the receipt's fate open: never let it read "failed".
            raise OutcomeUnknown(
                f"whether the receipt was fiscalized is unknown ({failure}): check the FN's "
                f"documents after number {before} before selling it again"
            ) from failure

    def _settle(self, receipt: Receipt, before: int) -> FiscalResult:
        """The closing command's fate is unknown: the FN's archive decides."""
        for _ in range(3):
            try:
                found = self._find_formed(
                    before,
                    int(receipt.operation),
                    receipt.total,
                    fingerprint=receipt.fingerprint(),
                )
                if found is not None:
                    return found
                if self.device.receipt_open():
                    # The FN formed nothing and a receipt is still open: closing it now is the
                    # first closing, not a repeat -- if it is ours.  A receipt some failure left
                    # open earlier would be closed with this receipt's payments (and the change
                    # given back): a fiscal document nobody sold.
                    if self.device.subtotal() != receipt.total:
                        self._cancel_open_receipt()
                        raise NotFiscalized(
                            "the receipt was not fiscalized, and the receipt open on the register "
                            "is not this one (it was cancelled); nothing was charged: sell it again"
                        )
                    return self._formed(self.device.close_receipt(receipt), receipt)
                moved = self.device.last_document() != before
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

    def _find_formed(
        self,
        before: int,
        operation: int,
        total: int,
        *,
        exclude: set[int] | None = None,
        fingerprint: str = "",
    ) -> FiscalResult | None:
        """The newest receipt after document ``before`` with this operation and total -- and,
        given a ``fingerprint``, these very items (read from the document's tags)."""
        last = self.device.last_document()
        for number in range(last, before, -1):
            if exclude and number in exclude:
                continue
            # A damaged answer can pass the line's checksum (Shtrih's XOR passes two flips in
            # one bit column): a document that does not read as this receipt is read again, and
            # only two equal readings say "another receipt".  A match is confirmed by the FN's
            # own numbers (the document's number, sign and total agree across two commands).
            found = self.device.find_document(number)
            if not found.is_receipt or (found.operation, found.total) != (operation, total):
                if self.device.find_document(number) != found:
                    raise BadAnswer(f"document {number} reads differently each time")
                continue
            if fingerprint:
                theirs = self._document_fingerprint(number)
                if theirs not in (fingerprint, None):
                    if self._document_fingerprint(number) != theirs:
                        raise BadAnswer(f"document {number}'s items read differently each time")
                    continue  # the same total, other items: another sale's receipt
            return self._from_document(found, total, operation)
        return None

    def _document_fingerprint(self, number: int) -> str | None:
        """`fingerprint_of` the document's own items; None when this register cannot say."""
        try:
            document = self.device.read_document(number)
        except DeviceError:
            return None  # the model cannot read documents whole: the total has to do
        items = []
        for tag, value in document.tlv:
            if tag == 1059 and isinstance(value, list):
                fields = dict(value)
                quantity = fields.get(1023)
                items.append(
                    (
                        str(fields.get(1030, "")),
                        int(fields.get(1079, 0)),  # type: ignore[arg-type]
                        quantity if isinstance(quantity, Decimal) else Decimal(0),
                        int(fields.get(1043, 0)),  # type: ignore[arg-type]
                    )
                )
        operation = find(document.tlv, 1054)
        return fingerprint_of(int(operation) if isinstance(operation, int) else 0, items)

    def _result(self, formed: Formed, receipt: Receipt) -> FiscalResult:
        found = formed.record or self.device.find_document(formed.number)
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
        return self._from_document(found, receipt.total, int(receipt.operation))

    def _from_document(self, found: DocumentInfo, total: int, operation: int) -> FiscalResult:
        shift = self.device.shift()
        serial = self.device.fn_serial()
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

    def _cancel_open_receipt(self) -> None:
        try:
            self.device.cancel_receipt()
            self.device.no_open_receipt = True
        except KktError as error:
            log.warning("could not cancel the open receipt: %s", error)


# Kept importable from here: they were defined in this module before vendors had devices.
__all__ = [
    "BadAnswer",
    "DeviceInfo",
    "FiscalResult",
    "FnInfo",
    "OfdQueue",
    "Register",
    "ShiftInfo",
    "ShiftState",
    "Status",
]
