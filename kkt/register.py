"""`Register`: one vocabulary for a fiscal register, whatever its vendor (Shtrih-M, ATOL).

Receipts are fiscalized exactly once.  Nothing that moves money is re-sent blindly: when the
answer to the closing command is lost, the driver reads the fiscal storage's last document and
decides from it whether the receipt exists (`kkt.settle`); an optional idempotency key (with a
`Journal`) makes a repeated call -- after a timeout, a crash, a restart -- return the first
receipt's fiscal data (marked ``replayed``).  A key is bound to its register's FN and to its
receipt (operation, items, payments): used again for another receipt or on another register it is
a `KeyConflict`, and nothing is sent.

What differs between vendors lives in a `Device` (`kkt.vendors`); the rules here are the same for
all.  A command the device answers alone runs as the device's own method under the register's one
lock (`_OnDevice`); what is left here is policy.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from kkt.protocols.errors import ProtocolError
from kkt.protocols.ffd import Payments, TlvList, find
from kkt.protocols.ffd.marking import ItemCheck, PlannedStatus, item_check_label

from . import ofd
from .cash import move_cash
from .correction import (
    FINGERPRINT_PREFIX,
    MAX_NUMBER_CHARS,
    CorrectionBasis,
    correction_fingerprint,
)
from .errors import (
    BadAnswer,
    BadMarkCode,
    CannotSend,
    ClockRefused,
    DeviceError,
    KeyConflict,
    KktError,
    MarkAlreadySold,
    MarkRejected,
    NotFiscalized,
    OutcomeUnknown,
    PaperOut,
    ReceiptRejected,
    TransportError,
)
from .journal import Entry, JournalStore
from .marking import MarkCheck, MarkingState, check_tlv, checked_code, planned_status
from .ofd import OfdExchangeResult, OfdStatus
from .receipt import Operation, Receipt, is_unit_part, items_fingerprint
from .results import DAMAGED, FiscalResult, Formed, MarkedItem, Registration, ShiftInfo
from .settle import (
    DamagedClosing,
    cancel_open_receipt,
    fiscal_result,
    formed_since,
    receipt_result,
    settle_correction,
    settle_pending,
    settle_receipt,
)
from .vendors.base import CANCELLED, NOT_CHARGED, Device, LastSale, left_open
from .verify import Expected, check_document, expect_correction, expect_receipt

log = logging.getLogger(__name__)
# Sales of a receipt whose code the FN refused to bind (A5h) before that is `MarkAlreadySold`:
# at 1 % damaged bytes about one FF61 or FF67 in 30 passes the XOR checksum damaged, and the
# FN then holds a check of another code; three in a row leave about one refusal in 30,000 that
# is damage and not a code sold before.
BIND_TRIES = 3
SHIFT_HOURS = dt.timedelta(hours=24)  # a shift's documents fall within 24 h of its start (54-FZ)
P = ParamSpec("P")
R = TypeVar("R")
E = TypeVar("E", bound=KktError)


_OPERATION_WORDS = {
    Operation.SELL: "a sale",
    Operation.SELL_RETURN: "a sale return",
    Operation.BUY: "a purchase",
    Operation.BUY_RETURN: "a purchase return",
}


def _paid(receipt: Receipt) -> str:
    """The receipt's payments as the journal keeps them: "cash=70000,electronic=0,..."."""
    payments = receipt.payments
    return ",".join(f"{part.name}={getattr(payments, part.name)}" for part in fields(payments))


def _net(paid: str, total: int) -> str:
    """``paid`` ("cash=70000,...") as the FN records it: the change (always given from cash) taken
    off the cash, so the cash tendered -- which no fiscal document keeps -- binds nothing."""
    if not paid:
        return paid
    parts = {name: int(value) for name, value in (p.split("=") for p in paid.split(","))}
    parts["cash"] -= sum(parts.values()) - total
    return ",".join(f"{name}={value}" for name, value in parts.items())


def _payments_text(payments: Payments) -> str:
    """Payments as the journal keeps them: "cash=70000,electronic=0,..."."""
    return ",".join(f"{part.name}={getattr(payments, part.name)}" for part in fields(payments))


def _correction_conflict(
    entry: Entry,
    operation: Operation,
    total: int,
    fingerprint: str,
    payments: Payments,
    serial: str,
) -> KeyConflict | None:
    """Why ``entry``'s key cannot serve this correction on FN ``serial``, or None: a key is
    bound to its FN and to its correction (operation, sum, basis, payments)."""
    key = entry.key
    pending = entry.state != "done" or not entry.result
    number = entry.result.get("document_number") if entry.result else None
    used = "a correction not settled yet" if pending else f"document {number}"
    new_key = "nothing was sent; give this correction a new key"
    if entry.fn and entry.fn != serial:
        why = (
            f"key {key!r} belongs to {used} in FN {entry.fn}, and this register holds FN "
            f"{serial}: {new_key}"
            + (f" (settle it on the register holding FN {entry.fn} first)" if pending else "")
        )
        return KeyConflict(why, key=key, fn=entry.fn, pending=pending)
    if not entry.fingerprint.startswith(FINGERPRINT_PREFIX):
        differs = f"which is {_operation(entry.operation)}, not a correction"
    elif entry.fingerprint != fingerprint:
        differs = (
            f"a correction of {entry.total} kopecks ({_operation(entry.operation)}) with "
            "another operation, sum or basis than this one"
        )
    elif entry.payments and entry.payments != _payments_text(payments):
        differs = f"a correction paid otherwise ({entry.payments})"
    else:
        return None
    return KeyConflict(
        f"key {key!r} was used for {used}, {differs}: {new_key}",
        key=key,
        fn=entry.fn or serial,
        pending=pending,
    )


def _operation(value: int) -> str:
    try:
        return _OPERATION_WORDS[Operation(value)]
    except ValueError:
        return f"operation {value}"


def _key_conflict(entry: Entry, receipt: Receipt, serial: str) -> KeyConflict | None:
    """Why ``entry``'s key cannot serve ``receipt`` on the register holding FN ``serial``, or None.

    A key is bound to the FN it began in and to its receipt's operation, items and payments.
    What an old journal did not record ('') is not held against the key: its FN is then read from
    the stored result, its items are compared by total.
    """
    key = entry.key
    pending = entry.state != "done" or not entry.result
    fn = entry.fn or (str(entry.result.get("fn_number", "")) if entry.result else "")
    number = entry.result.get("document_number") if entry.result else None
    new_key = "nothing was sent; give this receipt a new key"
    if fn and fn != serial:
        if pending:
            why = (
                f"key {key!r} belongs to a receipt begun in FN {fn} whose outcome is still "
                f"unknown (it may be fiscal there), and this register holds FN {serial}: nothing "
                f"was sent.  Settle it on the register holding FN {fn} (the same receipt with key "
                f"{key!r} there) before selling it anywhere; a new receipt here needs a new key"
            )
        else:
            why = (
                f"key {key!r} was used for document {number} in FN {fn}, and this register "
                f"holds FN {serial}: {new_key}"
            )
        return KeyConflict(why, key=key, fn=fn, pending=pending)
    what = _operation(entry.operation)
    if entry.fingerprint.startswith(FINGERPRINT_PREFIX):
        differs = f"a correction ({what}); this is a receipt"
    elif entry.operation != int(receipt.operation):
        differs = f"{what}; this receipt is {_operation(int(receipt.operation))}"
    elif entry.fingerprint and items_fingerprint(entry.fingerprint) != receipt.fingerprint():
        differs = f"{what} of other items than this receipt's"
    elif entry.fingerprint and entry.fingerprint != receipt.key_fingerprint():
        differs = f"{what} of other marking codes (other units) than this receipt's"
    elif not entry.fingerprint and entry.total != receipt.total:
        differs = f"{what} of {entry.total} kopecks; this receipt is of {receipt.total}"
    elif entry.payments and _net(entry.payments, entry.total) != _net(
        _paid(receipt), receipt.total
    ):
        differs = f"{what} paid otherwise ({entry.payments}) than this receipt"
    else:
        return None
    if pending:
        why = (
            f"key {key!r} belongs to a receipt not settled yet, {differs} (repeat that receipt "
            f"with this key to settle it): {new_key}"
        )
    else:
        why = f"key {key!r} was used for document {number}, {differs}: {new_key}"
    return KeyConflict(why, key=key, fn=fn, pending=pending)


class _OnDevice(Generic[P, R]):
    """A `Register` method that is its device's own: the same name, signature and docstring as
    the `Device` method it is made from, run under the register's lock."""

    def __init__(self, method: Callable[Concatenate[Device, P], R]) -> None:
        self.name = method.__name__
        self.__doc__ = method.__doc__
        signature = inspect.signature(method)  # for help(): the method's own, ``self`` left out
        self.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])

    @overload
    def __get__(self, register: None, owner: type[Register]) -> Self: ...

    @overload
    def __get__(self, register: Register, owner: type[Register]) -> Callable[P, R]: ...

    def __get__(self, register: Register | None, owner: type[Register]) -> Self | Callable[P, R]:
        if register is None:
            return self
        method: Callable[P, R] = getattr(register.device, self.name)
        lock = register._lock

        def locked(*args: P.args, **kwargs: P.kwargs) -> R:
            with lock:
                return method(*args, **kwargs)

        locked.__name__, locked.__doc__ = self.name, self.__doc__
        locked.__signature__ = self.__signature__  # type: ignore[attr-defined]
        return locked


class Register:
    """A fiscal register.  Thread-safe: one command at a time.

    One writer per register: a register has one open receipt and one document-read cursor, shared
    by every connection to it, so two programs (or two `Register` objects) selling on the same
    register would fill or cancel each other's receipts.  Share one `Register` between threads
    instead; should another writer interfere anyway, the closing check notices that the document
    formed is not this receipt and says so (`OutcomeUnknown`) rather than report it as done.

    ``device`` is a vendor's `Device` (`kkt.vendors.shtrih.ShtrihDevice`,
    `kkt.vendors.atol.AtolDevice`).
    """

    def __init__(
        self, device: Device, *, journal: JournalStore | None = None, verify: bool = False
    ) -> None:
        self._lock = threading.RLock()  # the one lock of a command: device and link take none
        self.device = device
        self.journal = journal
        # Read each receipt's (and correction's) document back (`kkt.verify`, `_verified`).
        self.verify = verify
        self._registration: Registration | None = None

    @property
    def vendor(self) -> str:
        return self.device.vendor

    @property
    def password(self) -> int:
        return self.device.password

    # -- plumbing ---------------------------------------------------------------------------------

    raw = _OnDevice(Device.raw)

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

    status = _OnDevice(Device.status)
    device_info = _OnDevice(Device.device_info)
    fn_info = _OnDevice(Device.fn_info)
    find_document = _OnDevice(Device.find_document)
    document = _OnDevice(Device.read_document)
    clock = _OnDevice(Device.clock)
    shift_state = _OnDevice(Device.shift)
    ofd_receipt = _OnDevice(Device.ofd_receipt)
    cash_in_drawer = _OnDevice(Device.cash_in_drawer)
    shift_totals = _OnDevice(Device.shift_totals)

    # -- the printer, the cash drawer, the clock --------------------------------------------------

    x_report = _OnDevice(Device.x_report)
    print_text = _OnDevice(Device.print_text)
    cut = _OnDevice(Device.cut)
    continue_print = _OnDevice(Device.continue_print)

    def cash_in(self, amount: int) -> None:
        """Put ``amount`` kopecks into the cash drawer: done when the drawer moved by it, whatever
        the answer said (`kkt.cash`); `CashNotMoved` or the command's error when it did not move,
        `OutcomeUnknown` otherwise.  Never sent twice."""
        with self._lock:
            move_cash(self.device, amount, deposit=True)

    def cash_out(self, amount: int) -> None:
        """Take ``amount`` kopecks out of the cash drawer, settled by the drawer as `cash_in`."""
        with self._lock:
            move_cash(self.device, amount, deposit=False)

    def set_datetime(self, when: dt.datetime) -> None:
        """Set the register's clock -- unless the FN would refuse every document after it.

        The FN refuses a document dated before its last one, and one dated more than 24 hours
        after the open shift began (07h, 16h: fact sheet fn-ffd-ofd.md §4.6); a register accepts
        such a clock and then refuses every sale.  So the last document's time is read first,
        and with a shift open its start: a time outside them is `ClockRefused`, nothing is sent.
        The FN keeps those times to the minute.
        """
        with self._lock:
            last = self.device.last_document()
            latest = self.device.find_document(last).when if last else None
            log.debug("clock to %s? the FN's last document %d is of %s", when, last, latest)
            if latest is not None and when < latest:
                raise ClockRefused(
                    f"cannot set the clock to {when:%Y-%m-%d %H:%M:%S}: the FN's last document "
                    f"({last}) is dated {latest:%Y-%m-%d %H:%M}, and the FN refuses documents "
                    "dated earlier; set a time after it (`kkt datetime set --to "
                    f"{latest:%Y-%m-%dT%H:%M}` or later; without --to it takes this computer's "
                    "clock)"
                )
            state = self.device.shift()
            if state.open:
                opened = self.device.shift_opened_at(state.number, state.receipts)
                log.debug("shift %d is open since %s", state.number, opened)
                if opened is not None and not opened <= when < opened + SHIFT_HOURS:
                    raise ClockRefused(
                        f"cannot set the clock to {when:%Y-%m-%d %H:%M:%S} with shift "
                        f"{state.number} open: it began {opened:%Y-%m-%d %H:%M} and the FN "
                        f"takes its documents until {opened + SHIFT_HOURS:%Y-%m-%d %H:%M} only; "
                        "close the shift first (`kkt shift close`), or set a time inside it"
                    )
            self.device.set_datetime(when)

    # -- the OFD ----------------------------------------------------------------------------------

    def ofd_status(self) -> OfdStatus:
        """Unsent documents, the oldest one's number and date, the OFD's last receipt's time, and
        the days left before the FN's 30-day block -- counted by the register's clock."""
        with self._lock:
            return ofd.status(self.device)

    def ofd_exchange(
        self, ofd_url: str, *, limit: int | None = None, timeout: float = ofd.OFD_TIMEOUT
    ) -> OfdExchangeResult:
        """Relay the FN's messages to the OFD at ``ofd_url`` (HOST:PORT) and its receipts back,
        for a register with no network of its own, until none waits or ``limit`` were sent.

        Safe to interrupt anywhere: a document stays in the FN's queue until its receipt is
        written, and is read and sent again (the OFD keeps it once).  The register's lock is held
        per step, not across the OFD's answer, so sales go on meanwhile (`kkt.ofd`).  Raises
        `OfdUnreachable`, `OfdRefused` (the OFD's 1022 code), `OfdReceiptRefused` (the FN's), or
        `NotSupported` (ATOL: no public protocol for it).
        """
        return ofd.relay(self._lock, self.device, ofd_url, limit=limit, timeout=timeout)

    def registration(self) -> Registration:
        """INN, RNM, user, address and FFD version from the FN's registration report."""
        if self._registration is None:
            with self._lock:
                self._registration = self.device.registration()
        return self._registration

    def shift_info(self) -> ShiftInfo:
        """Whether a shift is open, its number, receipts, when it began and whether it expired."""
        with self._lock:
            status = self.device.status()
            state = self.device.shift()
            opened = (
                self.device.shift_opened_at(state.number, state.receipts) if state.open else None
            )
            return ShiftInfo(
                open=state.open,
                number=state.number,
                receipts=state.receipts,
                opened_at=opened,
                expired=status.shift_expired,
            )

    # -- shifts and reports -----------------------------------------------------------------------

    def open_shift(self, cashier: str | None = None) -> FiscalResult:
        with self._lock:
            return self._report(self.device.open_shift(cashier))

    def close_shift(self, cashier: str | None = None) -> FiscalResult:
        """Close the shift with its Z report."""
        with self._lock:
            return self._report(self.device.close_shift(cashier))

    def correction(
        self,
        operation: Operation,
        total: int,
        *,
        reason: str = "",
        basis: CorrectionBasis | None = None,
        payments: Payments | None = None,
        key: str | None = None,
    ) -> FiscalResult:
        """A correction receipt for ``total`` kopecks, paid as ``payments`` say (None: in cash).

        ``basis`` gives its kind and basis (tags 1173/1174: by order or not, the date of the
        settlement corrected, the order's number); without it, the correction is on the user's
        own initiative for a settlement of today, and ``reason`` (cut to 32 characters) is its
        basis number.  The tags follow the FFD version of the register's registration.
        ``payments`` must add up to ``total`` (a correction gives no change) in kinds the
        vendor's correction command carries; anything else is `ReceiptRejected`, nothing sent.

        Settled like a receipt: when its command fails in a way that leaves its fate open, the
        FN's archive says whether the correction exists.  With ``key`` (and a journal) it is
        made exactly once as `receipt` is: a key done returns its result ``replayed``, a key a
        crash left pending is settled from the FN first, a key bound to another correction,
        receipt or register raises `KeyConflict` before anything is sent.

        A register that verifies reads the correction's document back as it does a receipt's
        (`kkt.verify`: type, operation, total, payments, tax system, 1173 and 1174 as sent):
        one that differs raises `DamagedClosing` (journalled under ``key``: every later call
        with the key raises it again), one that cannot be read `OutcomeUnknown` (the key stays
        pending); ``verified=True`` when it reads back as made.
        """
        if basis is None:
            basis = CorrectionBasis(number=reason[:MAX_NUMBER_CHARS])
        basis.check()  # bad input is refused before anything is read or sent
        paid = self._correction_payments(operation, total, payments)
        if key is not None and self.journal is None:
            raise KktError("an idempotency key needs a journal: connect(..., journal=PATH)")
        tags = basis.tags(self.registration().ffd, dt.date.today())
        # Its tax system is not compared: the driver names none (FF36, ATOL: the register's
        # choice; FF4A: the lowest registered), and the registration's own list (1062) is
        # not at hand after a re-registration (`Device.registration` reads the first report).
        made = expect_correction(operation, total, paid, tags)
        with self._lock:
            if key is None:
                before = self.device.last_document()
                return self._verified(self._correct(operation, total, tags, paid, before), made)
            assert self.journal is not None
            fingerprint = correction_fingerprint(int(operation), total, basis)
            serial = self.device.fn_serial()
            entry = self.journal.get(key)
            if entry is not None:
                conflict = _correction_conflict(entry, operation, total, fingerprint, paid, serial)
                if conflict is not None:
                    raise conflict
                if entry.state == "done" and entry.result:
                    if entry.result.get(DAMAGED):
                        # Read back damaged when it was made: the verdict stands, whoever asks.
                        raise DamagedClosing(str(entry.result[DAMAGED]))
                    return replace(FiscalResult.from_json(entry.result), replayed=True)
                found = self._settle_pending_correction(entry, operation, total, serial)
                if found is not None:
                    # Formed by an earlier call, perhaps on another day: a basis date left to
                    # "today" was that day's, and only the FN knows it.
                    undated = replace(made, sent=_undated(tags, basis))
                    found = self._verified(found, undated, key)
                    self.journal.done(key, found.to_json())
                    return replace(found, replayed=True)
            before = self.device.last_document()
            self.journal.begin(
                key, before, int(operation), total, serial, fingerprint, _payments_text(paid)
            )
            try:
                result = self._verified(
                    self._correct(operation, total, tags, paid, before), made, key
                )
            except OutcomeUnknown:
                # Stays pending: the next call with this key asks the FN (one read back
                # damaged is journalled so by `_verified`: every later call raises again).
                raise
            except KktError:
                self.journal.forget(key)  # certainly not fiscal: the key is free again
                raise
            self.journal.done(key, result.to_json())
            return result

    def _correction_payments(
        self, operation: Operation, total: int, payments: Payments | None
    ) -> Payments:
        """``payments`` checked against ``total`` and the vendor (None: all in cash)."""
        if not isinstance(operation, Operation):
            raise ReceiptRejected(
                f"operation: must be one of {', '.join(f'Operation.{o.name}' for o in Operation)}"
                f", got {operation!r}"
            )
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ReceiptRejected(
                f"total: must be an int number of kopecks >= 0, e.g. 12300 for 123.00, "
                f"got {total!r}"
            )
        if payments is None:
            return Payments(cash=total)
        if not isinstance(payments, Payments):
            raise ReceiptRejected(
                f"payments: must be a Payments, e.g. Payments(electronic={total}), got {payments!r}"
            )
        for part in fields(payments):
            amount = getattr(payments, part.name)
            if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
                raise ReceiptRejected(
                    f"payments.{part.name}: must be an int number of kopecks >= 0, got {amount!r}"
                )
        if payments.total != total:
            raise ReceiptRejected(
                f"payments add up to {payments.total} kopecks, the correction is of {total}: a "
                "correction gives no change, its payments must equal its total"
            )
        carried = self.device.CORRECTION_PAYMENTS
        refused = [
            p.name for p in fields(payments) if getattr(payments, p.name) and p.name not in carried
        ]
        if refused:
            raise ReceiptRejected(
                f"payments.{refused[0]}: the {self.vendor} correction command carries only "
                f"{', '.join(sorted(carried))}; pay the correction so, or use another register"
            )
        return payments

    def _settle_pending_correction(
        self, entry: Entry, operation: Operation, total: int, serial: str
    ) -> FiscalResult | None:
        """A correction key left pending: its document in the FN, or None when it certainly was
        not made (the key is then free); `OutcomeUnknown` while nobody can tell."""
        assert self.journal is not None
        try:
            return settle_correction(
                self.device,
                entry.before,
                operation,
                total,
                exclude=self.journal.claimed(entry.before, serial),
                upto=self.journal.next_begun(entry.before, serial),
            )
        except NotFiscalized:
            self.journal.forget(entry.key)
            return None

    def _correct(
        self, operation: Operation, total: int, tags: TlvList, paid: Payments, before: int
    ) -> FiscalResult:
        device = self.device
        try:
            made = device.correction(operation, total, tags, paid)
        except (CannotSend, NotFiscalized):
            raise
        except DeviceError:
            if not formed_since(device, before):
                raise
            return settle_correction(device, before, operation, total)
        except (KktError, ProtocolError):
            return settle_correction(device, before, operation, total)
        if made.number <= before:
            # "Formed", yet the FN's last document is not new: the answer is not this
            # command's (an ATOL task ID another program reused), as for a sale.
            log.warning(
                "correction answer names document %d, not after %d; settling", made.number, before
            )
            return settle_correction(device, before, operation, total)
        try:
            found = device.find_document(made.number)
            return fiscal_result(device, found, total, int(operation))
        except (KktError, ProtocolError) as error:
            raise OutcomeUnknown(
                f"the correction IS fiscal: document {made.number}, fiscal sign "
                f"{made.fiscal_sign}; reading its details failed ({error})"
            ) from error

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

    def sell(
        self, receipt: Receipt, *, key: str | None = None, allow_offline_marks: bool = False
    ) -> FiscalResult:
        return self.receipt(
            replace(receipt, operation=Operation.SELL),
            key=key,
            allow_offline_marks=allow_offline_marks,
        )

    def sell_return(
        self, receipt: Receipt, *, key: str | None = None, allow_offline_marks: bool = False
    ) -> FiscalResult:
        return self.receipt(
            replace(receipt, operation=Operation.SELL_RETURN),
            key=key,
            allow_offline_marks=allow_offline_marks,
        )

    def buy(
        self, receipt: Receipt, *, key: str | None = None, allow_offline_marks: bool = False
    ) -> FiscalResult:
        return self.receipt(
            replace(receipt, operation=Operation.BUY),
            key=key,
            allow_offline_marks=allow_offline_marks,
        )

    def buy_return(
        self, receipt: Receipt, *, key: str | None = None, allow_offline_marks: bool = False
    ) -> FiscalResult:
        return self.receipt(
            replace(receipt, operation=Operation.BUY_RETURN),
            key=key,
            allow_offline_marks=allow_offline_marks,
        )

    def receipt(
        self, receipt: Receipt, *, key: str | None = None, allow_offline_marks: bool = False
    ) -> FiscalResult:
        """Fiscalize ``receipt`` exactly once (its ``operation`` says sell, return, buy ...).

        With ``key``: a key already done returns its receipt's fiscal data with ``replayed=True``
        (nothing is sent); a key left pending by a crash is settled from the FN first.  A key
        bound to another receipt or to another register's FN raises `KeyConflict` before anything
        is sent.

        Marked items (``Item.mark_code``): before the receipt opens, each code is checked by the
        FN and ОИСМ (`check_mark`'s rule; ``allow_offline_marks`` takes a code ОИСМ could not be
        asked about) and accepted; a code not taken raises `MarkRejected` -- nothing fiscal was
        sent, the FN keeps no result of this sale's checks.  Each code is bound to its item in
        the receipt; the FN refusing a code sold before is `MarkAlreadySold` (the receipt
        cancelled).  The result's ``marks`` carry each marked item's 2106.  A vendor whose
        marking commands the driver cannot send raises `NotSupported` before anything is sent.

        A sale that fails before its closing command is not fiscal, and its receipt is
        cancelled.  When that cancel does not get through (the line, or the register refusing
        it), the error -- of the class it would be anyway -- has ``left_open=True`` and says that
        a receipt is left open on the register: nothing was charged, the next sale cancels it
        first (and, while it cannot, fails `NotFiscalized` with nothing of it sent).
        """
        receipt.validate()
        marked = any(item.marked for item in receipt.items)
        _one_item_a_code(receipt)
        if marked and not self.device.MARKING:
            # Never sold with the code dropped: a marked item unchecked by the FN is a violation.
            raise self.device.unsupported_marking()
        if key is not None and self.journal is None:
            raise KktError("an idempotency key needs a journal: connect(..., journal=PATH)")
        with self._lock:
            if key is not None:
                assert self.journal is not None
                entry = self.journal.get(key)
                if entry is not None:
                    # Bound to its register and its receipt: anything else is a conflict, raised
                    # before anything is sent (and before a pending key is settled anywhere).
                    serial = self.device.fn_serial()
                    conflict = _key_conflict(entry, receipt, serial)
                    if conflict is not None and conflict.pending and entry.fn in ("", serial):
                        # Its receipt may be fiscal here: the FN decides before anyone is told
                        # to sell under a new key (OutcomeUnknown: nobody can tell yet).
                        found = settle_pending(self.device, self.journal, entry)
                        if found is not None:
                            self.journal.done(key, found.to_json())
                            raise KeyConflict(
                                f"key {key!r} IS fiscal: document {found.document_number} "
                                f"(fiscal sign {found.fiscal_sign}), another receipt than this "
                                "one; do not sell that sale again",
                                key=key,
                                fn=serial,
                            )
                    if conflict is not None:
                        raise conflict
                if entry is not None and entry.state == "done" and entry.result:
                    if entry.result.get(DAMAGED):
                        # Read back damaged when it was sold: the verdict stands, whoever asks.
                        raise DamagedClosing(str(entry.result[DAMAGED]))
                    return replace(FiscalResult.from_json(entry.result), replayed=True)
                if entry is not None:
                    found = settle_pending(self.device, self.journal, entry, receipt)
                    if found is not None:
                        # Formed by an earlier call: its codes are sold, never checked again.
                        found = replace(found, marks=self._marks_of(found, receipt))
                        found = self._verified(found, receipt, key)
                        self.journal.done(key, found.to_json())
                        return replace(found, replayed=True)
                    cancel_open_receipt(self.device)
            # Marked goods: every code checked and accepted before anything fiscal is sent (a
            # rejected one raises `MarkRejected` here, the FN left clean).
            marks = self._accept_marks(receipt, allow_offline_marks) if marked else ()
            # The FN's last document before this receipt: carried from this session's previous
            # receipt while nothing else happened on the register since (`Device.last_sale`
            # says when that holds), asked of the FN otherwise.
            carried = self.device.last_sale()
            before = carried.document if carried is not None else self.device.last_document()
            if key is None:
                return self._verified(
                    self._fiscalize_marked(receipt, before, carried, marks, allow_offline_marks),
                    receipt,
                )
            assert self.journal is not None
            serial = self.device.fn_serial()
            self.journal.begin(
                key,
                before,
                int(receipt.operation),
                receipt.total,
                serial,
                receipt.key_fingerprint(),
                _paid(receipt),
            )
            try:
                result = self._verified(
                    self._fiscalize_marked(receipt, before, carried, marks, allow_offline_marks),
                    receipt,
                    key,
                )
            except OutcomeUnknown:
                # Stays pending: the next call with this key asks the FN (a document that read
                # back damaged is journalled so by `_verified`: every later call raises again).
                raise
            except KktError:
                # Certainly not fiscal (refused, or failed before the closing command took):
                # the key is free again, and no later document can be mistaken for it.
                self.journal.forget(key)
                raise
            self.journal.done(key, result.to_json())
            return result

    def _verified(
        self, result: FiscalResult, sold: Receipt | Expected, key: str | None = None
    ) -> FiscalResult:
        """``result``, its document read back and compared with ``sold`` (a receipt, or a
        correction's `kkt.verify.Expected`) when this register verifies
        (`kkt.verify.check_document`), ``verified=True``.  A document that differs
        raises `DamagedClosing` -- under a ``key`` journalled done with that verdict, so every
        later call with the key raises it again, verifying or not, and nothing sells it twice.
        One that cannot be read raises `OutcomeUnknown`: asked to verify, the driver says done
        only of what it read back (a key stays pending; its retry reads again)."""
        if not self.verify:
            return result
        expected = sold if isinstance(sold, Expected) else expect_receipt(sold)
        try:
            check_document(self.device, result, expected)
        except DamagedClosing as damaged:
            if key is not None and self.journal is not None:
                self.journal.done(key, {**result.to_json(), DAMAGED: str(damaged)})
            raise
        except (KktError, ProtocolError) as failure:
            again = "sell" if expected.noun == "receipt" else "make"
            raise OutcomeUnknown(
                f"the {expected.noun} IS fiscal: document {result.document_number} (fiscal "
                f"sign {result.fiscal_sign}), but it could not be read back to verify it "
                f"({failure}).  Do not {again} it again: repeat the call with the same key, or "
                f"read document {result.document_number} (kkt doc {result.document_number})"
            ) from failure
        return replace(result, verified=True)

    # -- marked goods -----------------------------------------------------------------------------

    def check_mark(
        self,
        code: str,
        planned_status: PlannedStatus = PlannedStatus.PIECE_SOLD,
        *,
        quantity: tuple[int, int] | None = None,
        allow_offline: bool = False,
    ) -> MarkCheck:
        """Check ``code`` (as scanned, GS as "\\x1d") with the FN and ОИСМ as a sale would, and
        sell nothing: the result is rejected in the FN right after (FF61, then FF69 reject), so
        the FN keeps nothing of it.  ``quantity``: (numerator, denominator) of a part of one
        unit (tags 1293/1294).  `MarkCheck.accepted` says whether a sale would take it;
        ``allow_offline`` takes a code ОИСМ could not be asked about.  `BadMarkCode` for a code
        that does not parse (nothing sent), `NotSupported` on a vendor the driver cannot check
        codes on."""
        checked_code(code)
        if not isinstance(planned_status, PlannedStatus):
            raise BadMarkCode(
                f"planned_status: must be a PlannedStatus, e.g. PlannedStatus.PIECE_SOLD, got "
                f"{planned_status!r}"
            )
        if quantity is not None and not is_unit_part(quantity):
            raise BadMarkCode(
                f"quantity: must be (numerator, denominator) of a part of one unit, "
                f"1 <= numerator < denominator, got {quantity!r}"
            )
        if not self.device.MARKING:
            raise self.device.unsupported_marking()
        tlv = check_tlv(planned_status, quantity)
        with self._lock:
            check = self.device.check_mark(code, planned_status, tlv, allow_offline=allow_offline)
            self.device.decide_mark(False)
            return check

    def marking_state(self) -> MarkingState:
        """The FN's marking state: the check sequence, codes accepted and waiting for a receipt,
        notifications waiting for ОИСМ (`MarkingState.describe` says it in words)."""
        if not self.device.MARKING:
            raise self.device.unsupported_marking(state=True)
        with self._lock:
            return self.device.marking_state()

    def _accept_marks(self, receipt: Receipt, allow_offline: bool) -> tuple[MarkedItem, ...]:
        """Check and accept each marked item's code in the FN before the receipt opens.

        A code not taken is rejected in the FN, the codes this sale accepted before it are
        cleared, and `MarkRejected` says which item and why -- before anything fiscal is sent.
        The marking commands form no document and open no receipt, so what the session knew of
        the FN before them (`Device.last_sale`, no receipt open) still holds after them.
        """
        device = self.device
        if not device.no_open_receipt:
            _cancel_stale(device)  # FF69 CLEAR is refused while a receipt is open
        carried, no_open = device.carried, device.no_open_receipt
        accepted: list[MarkedItem] = []
        try:
            for index, item in enumerate(receipt.items):
                if item.mark_code is None:
                    continue
                planned = planned_status(item, receipt.operation)
                tlv = check_tlv(planned, item.mark_quantity, item.quantity, item.measure)
                check = device.check_mark(item.mark_code, planned, tlv, allow_offline=allow_offline)
                if not check.accepted:
                    device.decide_mark(False)
                    if accepted:
                        device.clear_marks()
                    value = None if check.item_check is None else int(check.item_check)
                    shown = "none" if value is None else f"{value} {check.label}"
                    raise MarkRejected(
                        f"item {index + 1} ({item.name!r}), code {check.short}: "
                        f"{check.explanation} (tag 2106: {shown}); nothing was sent to the FN's "
                        "receipt, nothing charged: sell the receipt without this item",
                        item=index,
                        code=check.short,
                        item_check=value,
                        reason=check.explanation,
                    )
                saved = device.decide_mark(True)
                if saved is not None and (
                    saved.negative or (check.item_check is not None and saved != check.item_check)
                ):
                    # The FN saved another verdict than the answer judged (an answer damaged
                    # past the checksum): the FN's own 2106 decides.
                    device.clear_marks()
                    raise MarkRejected(
                        f"item {index + 1} ({item.name!r}), code {check.short}: the FN saved "
                        f"tag 2106 {int(saved)} ({item_check_label(int(saved))}), not the "
                        f"{check.label} its check answered; nothing was sent to the FN's "
                        "receipt, nothing charged: check the code again",
                        item=index,
                        code=check.short,
                        item_check=int(saved),
                        reason="the FN's saved check disagrees with its answer",
                    )
                if saved is None:  # FF69's answer lost: the check's 2106 (the FN saved it)
                    saved = check.item_check or ItemCheck(int(check.local) & 3)
                accepted.append(MarkedItem(index, item.mark_code, int(saved)))
        except MarkRejected:
            raise
        except OutcomeUnknown as unknown:
            # Only marking commands were sent: they form no document and open no receipt, so
            # whatever they did, nothing is fiscal (the caller may sell again).
            if accepted:
                _quietly(device.clear_marks)
            raise NotFiscalized(
                f"checking the marking codes failed on the line ({unknown}); no receipt was "
                "opened, nothing was charged: sell it again"
            ) from unknown
        except KktError:
            if accepted:
                _quietly(device.clear_marks)
            raise
        if device.carried is None and carried is not None:
            device.carried = carried  # reconnects still checked by `last_sale`
        device.no_open_receipt = no_open
        return tuple(accepted)

    def _fiscalize_marked(
        self,
        receipt: Receipt,
        before: int,
        carried: LastSale | None,
        marks: tuple[MarkedItem, ...],
        allow_offline: bool = False,
    ) -> FiscalResult:
        """`_fiscalize`, the result carrying ``marks``; a sale certainly not fiscal clears the
        codes it accepted, so the FN keeps nothing of it.

        The FN's refusal to bind a code (`MarkAlreadySold`, A5h) says it holds no accepted check
        of that code: sold before -- or the check the FN saved was of another code, FF61 damaged
        on the line past Shtrih's XOR checksum (a soak at 1 % damaged bytes met it).  The
        receipt is cancelled by then, nothing fiscal, so the codes are checked again and the
        receipt sold again (`BIND_TRIES` in all); a code really sold is refused every time, and
        the last refusal is raised."""
        if not marks:
            return self._fiscalize(receipt, before, carried)
        for attempt in range(1, BIND_TRIES + 1):
            try:
                result = self._fiscalize(receipt, before, carried)
                break
            except OutcomeUnknown:
                raise
            except MarkAlreadySold:
                _quietly(self.device.clear_marks)
                if attempt == BIND_TRIES:
                    raise
                log.info(
                    "the FN would not bind a code it had accepted (its check damaged on the "
                    "line?); the receipt was cancelled, the codes are checked again (%d of %d)",
                    attempt + 1,
                    BIND_TRIES,
                )
                marks = self._accept_marks(receipt, allow_offline)
                carried = None  # nothing formed since ``before``: the FN is asked afresh
            except KktError:
                _quietly(self.device.clear_marks)
                raise
        return replace(result, marks=marks)

    def _marks_of(self, found: FiscalResult, receipt: Receipt) -> tuple[MarkedItem, ...]:
        """The marked items of a receipt found in the FN after a crash, with the 2106 its
        document holds (best effort: () when the document cannot be read)."""
        codes = [(i, item.mark_code) for i, item in enumerate(receipt.items) if item.mark_code]
        if not codes:
            return ()
        try:
            document = self.device.read_document(found.document_number)
        except (KktError, ProtocolError) as error:
            log.warning(
                "document %d could not be read for its marks (%s): the result names none",
                found.document_number,
                error,
            )
            return ()
        items = [body for tag, body in _body(document.tlv) if tag == 1059]
        marks = []
        for index, code in codes:
            body = items[index] if index < len(items) else []
            value = find(body, 2106) if isinstance(body, list) else None
            if isinstance(value, int):
                marks.append(MarkedItem(index, code, value))
        return tuple(marks)

    def _fiscalize(
        self, receipt: Receipt, before: int, carried: LastSale | None = None
    ) -> FiscalResult:
        """Sell ``receipt``, the FN's last document being ``before``; ``carried``: the FN's
        state after this session's previous receipt when nothing happened since (`before` is
        then its document), which lets the closing answer stand for the document's record."""
        device = self.device
        # A receipt left open by an earlier failure (of this single writer) is not fiscal: drop it,
        # or its items would join this receipt.
        if not device.no_open_receipt:
            _cancel_stale(device)
        step = "opening the receipt"  # what a failure below failed, for its message
        try:
            device.open_receipt(receipt)
            subtotal = 0
            for index, item in enumerate(receipt.items):
                step = f"item {index + 1} ({item.name!r})"
                device.add_item(receipt, index, subtotal)
                subtotal += item.total
            step = "the subtotal check"
            self._check_subtotal(receipt.total)
            step = "the payments"
            device.pay(receipt)
        except OutcomeUnknown as unknown:
            # A step before the closing command may or may not have been taken -- but nothing is
            # fiscal before the closing command, whatever it was: the receipt is certainly not.
            raise _cancelled(
                device,
                NotFiscalized(
                    f"{step}: the line failed it ({unknown}); {CANCELLED}: sell it again"
                ),
            ) from unknown
        except KktError as failure:
            # Nothing is fiscal before the closing command: cancel what was begun and report --
            # that a receipt is left open, when the cancel does not get through.
            said = _cancelled(device, _not_fiscal(failure, step))
            if said is failure:
                raise  # the same error, saying whether a receipt is left open
            raise said from failure
        try:
            formed = device.close_receipt(receipt)
        except CannotSend as refused:
            _cancelled(device, refused)  # nothing was sent: the receipt is not fiscal
            raise
        except DeviceError as refusal:
            # A refusal usually means nothing was done -- but a paper end during the fiscal
            # printout can come after the FN formed the document.  The FN's archive is the judge.
            if formed_since(device, before):
                log.warning(
                    "the register refused the closing command (%s), yet the FN formed a "
                    "document since: the FN's archive says whether it is this receipt",
                    refusal,
                )
                return settle_receipt(device, receipt, before)
            # Nothing was fiscalized: the receipt is cancelled, never left open for the next
            # sale (or another program) to find, fill or close -- or, when the cancel does not
            # get through, the caller is told that one is left open (``left_open``).
            said = _cancelled(device, _not_fiscal(refusal, "the closing command"))
            if said is refusal:
                raise
            raise said from refusal
        except (KktError, ProtocolError) as error:
            # Whatever failed -- the link, an answer that makes no sense, a query after the
            # closing command (ATOL reads the document formed separately) -- the FN's archive
            # is the judge of a closing command that may have gone out.  Not a warning: the
            # caller gets the FN's verdict (the receipt, `NotFiscalized` or `OutcomeUnknown`).
            log.info(
                "the closing command's answer did not come through the line (%s); asking the FN "
                "whether the receipt is formed",
                error,
            )
            settled = settle_receipt(device, receipt, before)
            log.info("the FN says the receipt is formed: document %d", settled.document_number)
            return settled
        if formed.number <= before:
            # "Closed", yet the FN's last document is not new: the answer is not this command's
            # (an ATOL task ID another session left un-Acked, a replayed answer).  The FN decides.
            log.warning(
                "the closing answer names document %d, not one after %d: not this command's "
                "answer (another program on the register?); asking the FN",
                formed.number,
                before,
            )
            return settle_receipt(device, receipt, before)
        result = receipt_result(device, formed, receipt, carried)
        device.no_open_receipt = True  # closed by us, and nothing else sent since
        # The next receipt starts from this one's numbers (until anything else happens).  Only
        # here: a receipt settled after trouble leaves the next one to ask the FN afresh.
        device.carry(
            result.document_number, result.when, result.shift_number, result.receipt_number
        )
        return result

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
                f"damaged on the line?); {CANCELLED}: sell it again"
            )


def _undated(tags: TlvList, basis: CorrectionBasis) -> TlvList:
    """A correction's 1173/1174 as ``basis`` fixes them: without its own date, 1178 was the day
    the correction was made -- not known to a later call -- and is left out."""
    if basis.settled_on is not None:
        return tags
    return [
        (tag, [m for m in value if m[0] != 1178] if isinstance(value, list) else value)
        for tag, value in tags
    ]


def _one_item_a_code(receipt: Receipt) -> None:
    """A code is one unit of goods: two items with the same code are refused before anything is
    sent (the FN would refuse the receipt only at its closing command)."""
    seen: dict[str, int] = {}
    for index, item in enumerate(receipt.items):
        if item.mark_code is None:
            continue
        if item.mark_code in seen:
            first = seen[item.mark_code]
            raise ReceiptRejected(
                f"items[{index}].mark_code: the same code as items[{first}].mark_code (item "
                f"{index + 1}, {item.name!r}, and item {first + 1}, "
                f"{receipt.items[first].name!r}); a marking code stands for one unit of goods: "
                "scan each unit's own code"
            )
        seen[item.mark_code] = index


def _body(tlv: TlvList) -> TlvList:
    """A document's tags: the body of its one STLV (the document type's tag), or ``tlv`` itself."""
    if len(tlv) == 1 and isinstance(tlv[0][1], list):
        return tlv[0][1]
    return tlv


def _quietly(step: Callable[[], None]) -> None:
    """A clean-up step that must not hide the failure being reported."""
    try:
        step()
    except (KktError, ProtocolError) as error:
        log.warning("clean-up step failed: %s", error)


def _cancel_stale(device: Device) -> None:
    """Cancel a receipt an earlier failure (or another program) may have left open, before this
    sale sends anything: one that stays open is `NotFiscalized`, ``left_open`` -- this sale is
    not put into it, nor on top of it."""
    why = cancel_open_receipt(device)
    if why is not None:
        raise left_open(
            NotFiscalized(
                "the sale was not begun: a receipt an earlier failure left open had to be "
                "cancelled first; nothing of this sale was sent, nothing was charged: sell it "
                "again when the line is sound"
            ),
            why,
        )


def _cancelled(device: Device, failure: E) -> E:
    """Cancel the receipt ``failure`` interrupted before its closing command (nothing fiscal):
    ``failure`` itself, saying that a receipt is left open when the cancel did not get through
    (`left_open`)."""
    why = cancel_open_receipt(device)
    return failure if why is None else left_open(failure, why)


def _not_fiscal(failure: KktError, step: str) -> KktError:
    """A failure before the FN formed the receipt, said as what it means for this receipt (which
    is cancelled next): a paper end there interrupted no document (`kkt continue` would finish
    nothing) -- the receipt is sold again once the printer is ready; a line that failed
    ``step`` ("item 2 ('Чай')") is told with the step and the receipt's fate."""
    if isinstance(failure, PaperOut):
        return PaperOut(
            f"{failure.cause}; the receipt was not fiscalized ({CANCELLED}): sell it again",
            cause=failure.cause,
            code=failure.code,
            vendor=failure.vendor,
        )
    if isinstance(failure, TransportError | BadAnswer) and NOT_CHARGED not in str(failure):
        failure.args = (f"{step}: {failure}; {CANCELLED}: sell it again when the line is sound",)
    return failure
