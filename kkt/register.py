"""`Register`: one vocabulary for a fiscal register, whatever its vendor (Shtrikh-M today).

Receipts are fiscalized exactly once.  Nothing that moves money is re-sent blindly: when the
answer to the closing command is lost, the driver reads the fiscal storage's last document and
decides from it whether the receipt exists; an optional idempotency key (with a `Journal`) makes
a repeated call -- after a timeout, a crash, a restart -- return the first receipt's fiscal data.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from kkt.protocols.errors import CodecError, LinkError, ProtocolError
from kkt.protocols.ffd import QrData, encode_tlv, find, qr_string
from kkt.protocols.shtrih import classic, fn
from kkt.protocols.shtrih.errors import ShtrikhDeviceError
from kkt.protocols.shtrih.message import Answer, Request
from kkt.protocols.shtrih.modes import (
    EcrFlags,
    FnWarning,
    Mode,
    ModeState,
    OperationType,
    ReceiptType,
    TaxRate,
    TaxSystem,
    decode_mode,
)

from .archive import Document, Registration, read_document, read_registration, shift_opened_at
from .errors import (
    BadAnswer,
    CannotSend,
    DeviceError,
    KktError,
    NotFiscalized,
    OfdBlocked,
    OutcomeUnknown,
    TransportError,
    from_shtrih,
)
from .journal import Entry, Journal
from .receipt import Operation, Receipt, Vat, fingerprint_of

log = logging.getLogger(__name__)
AnswerT = TypeVar("AnswerT", bound=Answer)

_VAT_BITS = {
    Vat.VAT20: TaxRate.VAT20,
    Vat.VAT10: TaxRate.VAT10,
    Vat.VAT0: TaxRate.VAT0,
    Vat.NONE: TaxRate.NO_VAT,
    Vat.VAT120: TaxRate.VAT20_120,
    Vat.VAT110: TaxRate.VAT10_110,
}
_RECEIPT_TYPE = {
    Operation.SELL: ReceiptType.SALE,
    Operation.BUY: ReceiptType.BUY,
    Operation.SELL_RETURN: ReceiptType.SALE_RETURN,
    Operation.BUY_RETURN: ReceiptType.BUY_RETURN,
}


class Commander(Protocol):
    """Carries one command payload to the register and brings back its answer payload."""

    def exchange(self, payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Status:
    mode: ModeState
    submode: int
    shift_open: bool
    paper: bool
    cover_open: bool
    drawer_open: bool
    operator: int
    receipt_items: int


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    model: int
    name: str
    protocol: str
    serial: str
    firmware: str


@dataclass(frozen=True, slots=True)
class FnInfo:
    serial: str
    phase: int
    last_document: int
    expires: dt.date | None
    registrations_left: int | None
    version: str
    warnings: FnWarning
    unsent: int


@dataclass(frozen=True, slots=True)
class ShiftInfo:
    open: bool
    number: int  # the open shift's number, or the last closed one's
    receipts: int  # receipts in the open shift
    opened_at: dt.datetime | None  # from the shift-open report, to the minute
    expired: bool  # open for more than 24 hours: only a Z report is allowed

    def age(self, now: dt.datetime) -> dt.timedelta | None:
        return now - self.opened_at if self.open and self.opened_at else None


@dataclass(frozen=True, slots=True)
class FiscalResult:
    """A fiscal document, as an ATOL-style `fiscalParams` would name it."""

    document_number: int  # tag 1040
    fiscal_sign: int  # tag 1077, printed value
    fn_number: str  # tag 1041
    shift_number: int
    receipt_number: int  # in the shift, tag 1042 (0 for reports)
    when: dt.datetime | None  # to the minute, as the FN keeps it
    total: int  # kopecks
    operation: int  # tag 1054, 0 for reports
    qr: str  # tag 1196 content, '' for reports

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["when"] = self.when.isoformat() if self.when else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FiscalResult:
        when = dt.datetime.fromisoformat(data["when"]) if data["when"] else None
        return cls(**{**data, "when": when})


class Register:
    """A fiscal register.  Thread-safe: one command at a time.

    One writer per register: a register has one open receipt and one document-read cursor, shared
    by every connection to it, so two programs (or two `Register` objects) selling on the same
    register would fill or cancel each other's receipts.  Share one `Register` between threads
    instead; should another writer interfere anyway, the closing check notices that the document
    formed is not this receipt and says so (`OutcomeUnknown`) rather than report it as done.
    """

    def __init__(
        self, commander: Commander, *, password: int = 30, journal: Journal | None = None
    ) -> None:
        self._commander = commander
        self.password = password
        self.journal = journal
        self._lock = threading.RLock()
        self._fn_serial: str | None = None
        self._registration: Registration | None = None
        # True while this driver knows no receipt is open: only its own completed receipts or a
        # confirmed cancel set it; any other state-changing command clears it.  It spares one
        # status query per receipt in the common case.
        self._no_open_receipt = False
        self.query_tries = 5

    # -- plumbing ---------------------------------------------------------------------------------

    def raw(self, request: Request[AnswerT]) -> AnswerT:
        """Any typed Shtrikh request; refusals become the driver's `DeviceError` subclasses.

        Read-only requests (``REPEATABLE``) are tried again after a link failure -- asking twice
        changes nothing.  Anything else fails at once and the caller decides.
        """
        tries = self.query_tries if request.REPEATABLE else 1
        for attempt in range(1, tries + 1):
            try:
                return self._raw_once(request)
            except (TransportError, OutcomeUnknown, BadAnswer):
                if attempt == tries:
                    raise
                log.info("retrying %s after a link failure", type(request).__name__)
        raise AssertionError("unreachable")

    def _raw_once(self, request: Request[AnswerT]) -> AnswerT:
        with self._lock:
            try:
                encoded = request.encode()
            except CodecError as error:
                # construct prefixes its own path line ("Error in path ..."): keep the last one.
                reason = str(error).strip().splitlines()[-1]
                raise CannotSend(f"{type(request).__name__}: {reason}; nothing was sent") from None
            if not request.REPEATABLE:
                self._no_open_receipt = False
            try:
                payload = self._commander.exchange(
                    encoded, answer_timeout=request.TIMEOUT, resend=request.REPEATABLE
                )
            except LinkError as error:
                raise _link_failure(error) from error
            try:
                return request.decode_answer(payload)
            except ShtrikhDeviceError as error:
                raise self._refusal(error) from None
            except CodecError as error:
                if request.REPEATABLE:
                    raise BadAnswer(f"the register's answer makes no sense: {error}") from error
                raise OutcomeUnknown(
                    f"the answer to a money-moving command makes no sense ({error}); check the "
                    "register's last fiscal document before repeating it"
                ) from error

    def _refusal(self, error: ShtrikhDeviceError) -> DeviceError:
        refusal = from_shtrih(error)
        if error.code == 0x14:
            try:
                warnings = FnWarning(self.raw(fn.GetFnStatus(self.password)).warnings)
            except KktError:
                return refusal
            if FnWarning.OFD_TIMEOUT in warnings:
                return OfdBlocked(str(error), code=error.code, vendor="shtrih")
        return refusal

    def close(self) -> None:
        with self._lock:  # not under another thread's exchange or receipt
            self._commander.close()
            if self.journal is not None:
                self.journal.close()

    def __enter__(self) -> Register:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ----------------------------------------------------------------------------------

    def status(self) -> Status:
        s = self.raw(classic.GetShortStatus(self.password))
        flags = EcrFlags(s.flags)
        mode = decode_mode(s.mode)
        return Status(
            mode=mode,
            submode=s.submode,
            shift_open=mode.shift_open,
            paper=EcrFlags.RECEIPT_OPTICAL_SENSOR in flags,
            cover_open=EcrFlags.COVER_OPEN in flags,
            drawer_open=EcrFlags.DRAWER_OPEN in flags,
            operator=s.operator,
            receipt_items=s.operations_in_receipt,
        )

    def device_info(self) -> DeviceInfo:
        kind = self.raw(classic.GetDeviceType())
        long = self.raw(classic.GetLongStatus(self.password))
        serial = self.raw(classic.ReadTable(self.password, 18, 1, 1)).value.split(b"\0", 1)[0]
        return DeviceInfo(
            model=kind.model,
            name=kind.name,
            protocol=f"shtrih {kind.protocol_version}.{kind.protocol_subversion}",
            serial=serial.decode("cp1251", "replace") or str(long.serial_low),
            firmware=f"{long.firmware_version} build {long.firmware_build}",
        )

    def fn_status(self) -> FnInfo:
        status = self.raw(fn.GetFnStatus(self.password))
        expiry = self.raw(fn.GetFnExpiry(self.password))
        version = self.raw(fn.GetFnVersion(self.password))
        unsent = self.raw(fn.GetOfdExchangeStatus(self.password)).queue_count
        self._fn_serial = _checked_serial(status.fn_serial)
        return FnInfo(
            serial=status.fn_serial,
            phase=status.phase,
            last_document=status.last_document_number,
            expires=expiry.expires,
            registrations_left=expiry.registrations_left,
            version=version.version,
            warnings=FnWarning(status.warnings),
            unsent=unsent,
        )

    def fn_info(self) -> FnInfo:
        """The fiscal storage: serial, phase, expiry, registrations left, queue, warnings."""
        return self.fn_status()

    def find_document(self, number: int) -> fn.FoundDocument:
        """The archive's short record of document ``number`` (type, time, sign, short data)."""
        for _ in range(self.query_tries):
            found = self.raw(fn.FindDocument(self.password, number))
            if found.number == number:
                return found
            # An answer to another FF0A (a replay the line confused): never take it for this one.
            log.warning("asked for document %d, the answer is about %d", number, found.number)
        raise BadAnswer(f"the register keeps answering about another document than {number}")

    def document(self, number: int) -> Document:
        """Fiscal document ``number`` whole, its TLV decoded (FF3A/FF3B)."""
        with self._lock:
            return read_document(self, number)

    def registration(self) -> Registration:
        """INN, RNM, user, address and FFD version from the FN's registration report."""
        if self._registration is None:
            with self._lock:
                self._registration = read_registration(self)
        return self._registration

    def clock(self) -> dt.datetime | None:
        """The register's own date and time (None when it has no date set)."""
        long = self.raw(classic.GetLongStatus(self.password))
        return dt.datetime.combine(long.date, long.time) if long.date else None

    def shift_info(self) -> ShiftInfo:
        """Whether a shift is open, its number, receipts, when it began and whether it expired."""
        with self._lock:
            status = self.status()
            params = self.shift_state()
            opened = (
                shift_opened_at(self, params.shift_number, params.receipt_number)
                if params.shift_open
                else None
            )
            return ShiftInfo(
                open=params.shift_open,
                number=params.shift_number,
                receipts=params.receipt_number,
                opened_at=opened,
                expired=status.mode.mode is Mode.SHIFT_EXPIRED,
            )

    def shift_state(self) -> fn.ShiftParams:
        return self.raw(fn.GetShiftParams(self.password))

    # -- shifts and reports -----------------------------------------------------------------------

    def open_shift(self, cashier: str | None = None) -> FiscalResult:
        with self._lock:
            self.raw(fn.BeginOpenShift(self.password))
            if cashier:
                self.raw(fn.SendTlv(self.password, encode_tlv([(1021, cashier)])))
            opened = self.raw(fn.FnOpenShift(self.password))
            return self._report(opened.document_number, opened.fiscal_sign, opened.shift_number)

    def close_shift(self, cashier: str | None = None) -> FiscalResult:
        """Close the shift with its Z report."""
        with self._lock:
            self.raw(fn.BeginCloseShift(self.password))
            if cashier:
                self.raw(fn.SendTlv(self.password, encode_tlv([(1021, cashier)])))
            closed = self.raw(fn.FnCloseShift(self.password))
            return self._report(closed.document_number, closed.fiscal_sign, closed.shift_number)

    def x_report(self) -> None:
        self.raw(classic.XReport(self.password))

    def print_text(self, text: str) -> None:
        """Print lines of text (each cut to the register's line width)."""
        for line in text.splitlines() or [""]:
            self.raw(classic.PrintString(self.password, 0x02, line[:40]))

    def cut(self, *, partial: bool = False) -> None:
        self.raw(classic.Cut(self.password, partial))

    def continue_print(self) -> None:
        """Resume a document a paper end interrupted (after loading paper)."""
        self.raw(classic.ContinuePrint(self.password))

    def set_datetime(self, when: dt.datetime) -> None:
        self.raw(classic.SetTime(self.password, when.time().replace(microsecond=0)))
        self.raw(classic.SetDate(self.password, when.date()))
        self.raw(classic.ConfirmDate(self.password, when.date()))

    def ofd_status(self) -> fn.OfdExchangeStatus:
        return self.raw(fn.GetOfdExchangeStatus(self.password))

    def correction(self, operation: Operation, total: int, *, reason: str = "") -> FiscalResult:
        """A correction receipt (on the user's own initiative) for ``total`` kopecks in cash."""
        with self._lock:
            self.raw(fn.BeginCorrectionReceipt(self.password))
            tags: list[tuple[int, Any]] = [(1173, 0)]
            if reason:
                tags.append((1174, [(1179, reason[:32])]))
            self.raw(fn.SendTlv(self.password, encode_tlv(tags)))
            made = self.raw(
                fn.MakeCorrectionReceipt(self.password, total, OperationType(int(operation)))
            )
            return self._from_document(
                self.find_document(made.document_number), total, int(operation)
            )

    def cash_in(self, amount: int) -> None:
        self.raw(classic.CashIn(self.password, amount))

    def cash_out(self, amount: int) -> None:
        self.raw(classic.CashOut(self.password, amount))

    def _report(self, number: int, sign: int, shift: int) -> FiscalResult:
        found = self.find_document(number)
        return FiscalResult(number, sign, self._serial(), shift, 0, found.datetime, 0, 0, "")

    def _serial(self) -> str:
        if self._fn_serial is None:
            for attempt in range(1, self.query_tries + 1):
                try:
                    self._fn_serial = _checked_serial(
                        self.raw(fn.GetFnSerial(self.password)).serial
                    )
                    break
                except BadAnswer:
                    if attempt == self.query_tries:
                        raise
        assert self._fn_serial is not None
        return self._fn_serial

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
            before = self.raw(fn.GetFnStatus(self.password)).last_document_number
            if key is None:
                return self._fiscalize(receipt, before)
            assert self.journal is not None
            serial = self._serial()
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
            serial = self._serial()
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
        # A receipt left open by an earlier failure (of this single writer) is not fiscal: drop it,
        # or its items would join this receipt.
        if not self._no_open_receipt:
            self._cancel_open_receipt()
        try:
            self._open_once(_RECEIPT_TYPE[receipt.operation])
            tags: list[tuple[int, Any]] = []
            if receipt.cashier:
                tags.append((1021, receipt.cashier))
            if receipt.buyer_contact:
                tags.append((1008, receipt.buyer_contact))
            tags.extend(receipt.extra)
            if tags:
                self.raw(fn.SendTlv(self.password, encode_tlv(tags)))
            subtotal = 0
            for count, item in enumerate(receipt.items):
                operation = fn.OperationV2(
                    self.password,
                    OperationType(int(receipt.operation)),
                    Decimal(item.quantity),
                    item.price,
                    item.amount,
                    None,
                    _VAT_BITS[item.vat],
                    item.department,
                    item.payment_method,
                    item.payment_subject,
                    item.name,
                )
                self._add_once(operation, subtotal, item.total, count)
                subtotal += item.total
                item_tags: list[tuple[int, Any]] = list(item.extra)
                if item.measure is not None:
                    item_tags.insert(0, (2108, item.measure))
                if item_tags:
                    self.raw(fn.SendOperationTlv(self.password, encode_tlv(item_tags)))
            self._check_subtotal(receipt.total)
        except KktError:
            # Nothing is fiscal before the closing command: cancel what was begun and report.
            self._cancel_open_receipt()
            raise
        p = receipt.payments
        close = fn.CloseReceiptV2(
            self.password,
            (p.cash, p.electronic) + (0,) * 11 + (p.prepaid, p.credit, p.other),
            0,
            (0,) * 6,
            TaxSystem(int(receipt.tax_system)),
            "",
        )
        try:
            closed = self.raw(close)
        except DeviceError as refusal:
            # A refusal usually means nothing was done -- but a paper end during the fiscal
            # printout can come after the FN formed the document.  The FN's archive is the judge.
            if self._formed_since(before):
                log.warning("closing command refused (%s) yet the FN moved on; settling", refusal)
                return self._settle_safely(receipt, before, close)
            raise
        except (TransportError, OutcomeUnknown) as error:
            # Whatever the link concluded, the FN's archive is the judge of a closing command.
            log.warning("closing command failed on the link (%s); asking the FN", error)
            return self._settle_safely(receipt, before, close)
        result = self._formed(closed.document_number, closed.fiscal_sign, receipt)
        self._no_open_receipt = True  # closed by us, and nothing else sent since
        return result

    def _formed_since(self, before: int) -> bool:
        """Has the FN formed any document after ``before``?  (Unknown counts as yes.)"""
        try:
            return self.raw(fn.GetFnStatus(self.password)).last_document_number > before
        except KktError:
            return True

    def _formed(self, number: int, sign: int, receipt: Receipt) -> FiscalResult:
        """The fiscal data of a receipt the FN has just formed.  From here on nothing may say
        "failed": a caller that took a failure for "not fiscal" would sell it twice."""
        try:
            return self._result(number, sign, receipt)
        except OutcomeUnknown:
            raise
        except (KktError, ProtocolError) as error:
            raise OutcomeUnknown(
                f"the receipt IS fiscal: document {number}, fiscal sign {sign}; reading its "
                f"details failed ({error}).  Do not sell it again: call find_document({number}), "
                "or repeat the call with the same idempotency key to get its fiscal data"
            ) from error

    def _check_subtotal(self, total: int) -> None:
        """The register's open receipt must add up to ours before it is closed.

        Shtrikh frames carry an XOR checksum: two flipped bits in the same bit position of one
        frame pass it, and the register would execute an item with a damaged price or quantity.
        A soak at 1 % damaged bytes produced exactly that; one subtotal query per receipt keeps
        such a receipt from ever becoming fiscal.
        """
        subtotal = self.raw(classic.Subtotal(self.password)).subtotal
        if subtotal != total:
            raise NotFiscalized(
                f"the register's subtotal is {subtotal} kopecks, the receipt's {total} (a command "
                "damaged on the line?); the receipt was cancelled, nothing was charged: sell it "
                "again"
            )

    def _open_once(self, receipt_type: ReceiptType) -> None:
        """Open the receipt; after a failed exchange, the register's mode says whether it did."""
        for _ in range(3):
            try:
                self.raw(classic.OpenReceipt(self.password, receipt_type))
                return
            except (TransportError, OutcomeUnknown):
                if self.status().mode.mode is Mode.DOCUMENT_OPEN:
                    return
        raise TransportError("the register would not open the receipt; check the line")

    def _add_once(self, operation: fn.OperationV2, subtotal: int, amount: int, count: int) -> None:
        """Add one item exactly once: after a failed exchange the open receipt's item count and
        subtotal tell whether the register took it (the count, because a free item leaves the
        subtotal as it was; the subtotal, because the count alone cannot tell a damaged item)."""
        for _ in range(3):
            try:
                self.raw(operation)
                return
            except (TransportError, OutcomeUnknown):
                items = self.status().receipt_items
                now = self.raw(classic.Subtotal(self.password)).subtotal
                if (items, now) == (count + 1, subtotal + amount):
                    return  # taken; only its answer was lost
                if (items, now) != (count, subtotal):
                    raise NotFiscalized(
                        f"the open receipt holds {items} items for {now} kopecks, expected "
                        f"{count} for {subtotal} or {count + 1} for {subtotal + amount}; the "
                        "receipt was cancelled, nothing was charged"
                    ) from None
        raise TransportError("the register would not take the item; check the line")

    def _settle_safely(
        self, receipt: Receipt, before: int, close: fn.CloseReceiptV2
    ) -> FiscalResult:
        """`_settle`, where anything but "done" or `NotFiscalized` reads `OutcomeUnknown`."""
        try:
            return self._settle(receipt, before, close)
        except (NotFiscalized, OutcomeUnknown):
            raise
        except (KktError, ProtocolError) as failure:
            # Anything else here leaves the receipt's fate open: never let it read "failed".
            raise OutcomeUnknown(
                f"whether the receipt was fiscalized is unknown ({failure}): check the FN's "
                f"documents after number {before} before selling it again"
            ) from failure

    def _settle(self, receipt: Receipt, before: int, close: fn.CloseReceiptV2) -> FiscalResult:
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
                if self.status().mode.mode is Mode.DOCUMENT_OPEN:
                    # The FN formed nothing and the receipt is still open: closing it now is the
                    # first closing, not a repeat.
                    closed = self.raw(close)
                    return self._formed(closed.document_number, closed.fiscal_sign, receipt)
                raise NotFiscalized(
                    "the receipt was not fiscalized and is no longer open (was the register "
                    "restarted?); nothing was charged: sell it again"
                )
            except (TransportError, OutcomeUnknown):
                continue
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
        last = self.raw(fn.GetFnStatus(self.password)).last_document_number
        for number in range(last, before, -1):
            if exclude and number in exclude:
                continue
            found = self.find_document(number)
            details = found.details()
            if not isinstance(details, fn.ReceiptDetails):
                continue
            if (int(details.operation), details.total) != (operation, total):
                continue
            if fingerprint and self._document_fingerprint(number) not in (fingerprint, None):
                continue  # the same total, other items: another sale's receipt
            return self._from_document(found, total, operation)
        return None

    def _document_fingerprint(self, number: int) -> str | None:
        """`fingerprint_of` the document's own items; None when this register cannot say."""
        try:
            document = read_document(self, number)
        except DeviceError:
            return None  # no FF3A/FF3B on this model: the total has to do
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

    def _result(self, number: int, sign: int, receipt: Receipt) -> FiscalResult:
        found = self.find_document(number)
        details = found.details()
        expected = (int(receipt.operation), receipt.total)
        if not isinstance(details, fn.ReceiptDetails) or (
            (int(details.operation), details.total) != expected or found.fiscal_sign != sign
        ):
            # The document the closing answer named is not this receipt: another program opened,
            # filled or closed a receipt on this register meanwhile.  One writer per register.
            raise OutcomeUnknown(
                f"the FN's document {number} is not this receipt (it holds {details}); another "
                "program is using this register: check the FN's documents before selling again, "
                "and let one Register object (it is thread-safe) do all the register's work"
            )
        return self._from_document(found, receipt.total, int(receipt.operation))

    def _from_document(self, found: fn.FoundDocument, total: int, operation: int) -> FiscalResult:
        shift = self.shift_state()
        when = found.datetime
        qr = (
            qr_string(
                QrData(when, total, self._serial(), found.number, found.fiscal_sign, operation)
            )
            if when
            else ""
        )
        return FiscalResult(
            document_number=found.number,
            fiscal_sign=found.fiscal_sign,
            fn_number=self._serial(),
            shift_number=shift.shift_number,
            receipt_number=shift.receipt_number,
            when=when,
            total=total,
            operation=operation,
            qr=qr,
        )

    def _cancel_open_receipt(self) -> None:
        try:
            if self.status().mode.mode is Mode.DOCUMENT_OPEN:
                self.raw(classic.CancelReceipt(self.password))
            self._no_open_receipt = True
        except KktError as error:
            log.warning("could not cancel the open receipt: %s", error)


def _checked_serial(serial: str) -> str:
    """An FN serial is 16 digits; anything else is a damaged answer, never cached or printed."""
    if len(serial) != 16 or not serial.isdigit():
        raise BadAnswer(f"the FN serial {serial!r} is not 16 digits: a damaged answer")
    return serial


def _link_failure(error: LinkError) -> KktError:
    """The driver's error for a failed exchange: did the register perhaps do it?"""
    if error.maybe_executed:
        return OutcomeUnknown(str(error))
    return TransportError(str(error))
