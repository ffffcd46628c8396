"""`Device`: what `Register` needs from one vendor's protocol, and what every vendor does alike.

A device turns the vendor-neutral steps of the driver (open a shift, add an item, close the
receipt, read a document ...) into its protocol's commands and its answers into `kkt.results`.
`Register` keeps what is the same for every vendor: the exactly-once rules, the journal, the
checks before and after the closing command.

The receipt steps carry their exactly-once promise *here*, because how a vendor can tell whether a
step was taken after a failed exchange differs: Shtrih asks the open receipt's item count and
subtotal, ATOL fetches the task's result from its buffer (``Req``).  Every method raises only the
driver's errors (`kkt.errors`).

What every vendor shares lives here too: one typed command over a `Commander` with the driver's
rules for retries, refusals and damaged answers; the cached FN serial; reading a document's TLV in
blocks; the registration report and the shift's start, read from the archive.  A device takes no
lock: `Register` runs one command at a time.
"""

from __future__ import annotations

import datetime as dt
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from kkt.protocols.errors import CodecError, LinkError, ProtocolError
from kkt.protocols.errors import DeviceError as ProtocolDeviceError
from kkt.protocols.ffd import (
    DocumentType,
    Payments,
    TlvError,
    TlvList,
    decode_tlv,
    encode_tlv,
    find,
)
from kkt.protocols.ffd.marking import ItemCheck, PlannedStatus

from ..errors import (
    BadAnswer,
    CannotSend,
    DeviceError,
    KktError,
    NotFiscalized,
    NotSupported,
    OutcomeUnknown,
    TransportError,
    WrongProtocol,
)
from ..marking import MarkCheck, MarkingState
from ..ofd import OfdReceipt
from ..receipt import Operation, Receipt
from ..results import (
    DeviceInfo,
    Document,
    DocumentInfo,
    FnInfo,
    Formed,
    OfdQueue,
    Registration,
    ShiftState,
    ShiftTotals,
    Status,
)
from ..transport.session import Commander
from ..transport.session import WrongProtocol as SessionWrongProtocol

log = logging.getLogger("kkt.register")
E = TypeVar("E", bound=KktError)

READ_TRIES = 5  # readings of a whole document before its failure is the caller's
# Block reads in one reading that failed on the line before the document is selected again: each
# may or may not have moved the register's cursor, and the reading goes on (`_read_tlv_blocks`).
BLOCK_MISSES = 12


@dataclass(frozen=True, slots=True)
class Closed(Formed):
    """A closing command's answer that says more than `Formed`: the document's time (to the
    minute, as the FN keeps it) and the change the register gave -- None where the answer does
    not carry them (Shtrih's FF45 answers them in its long form only)."""

    when: dt.datetime | None = None
    change: int | None = None
    # Two copies of the answer agreed byte for byte (Shtrih: the ENQ replay of FF45's answer):
    # only a confirmed answer stands for the document's record (`kkt.settle._from_answer`).
    confirmed: bool = False


@dataclass(frozen=True, slots=True)
class LastSale:
    """What this session knows of the FN right after its own receipt: the receipt's document
    (the FN's last), its time, the shift and the receipt's number in it.

    `Device.carried` keeps it while nothing else has happened on the register since, so the next
    receipt need not ask the FN's last document number, the shift's numbers, nor read its own
    document back (`kkt.register`).  ``reconnects``: the link's count of reopened ports when it
    was taken -- after a reconnect another program may have used the register meanwhile.
    """

    document: int
    when: dt.datetime | None
    shift_number: int
    receipt_number: int  # tag 1042 of that receipt: the shift's receipts so far
    reconnects: int


_FFD_VERSIONS = {1: "1.0", 2: "1.05", 3: "1.1", 4: "1.2"}  # tag 1209 values

# What a sale that failed before its closing command says of its receipt: the driver cancels it
# on the way out.  Messages written before that cancel say it with these very words, so that a
# cancel that does not get through can take them back (`left_open`).
NOT_CHARGED = "nothing was charged"
CANCELLED = f"the receipt was cancelled, {NOT_CHARGED}"


def item_fate_unread(where: str, lost: Exception, unread: Exception) -> TransportError:
    """An item command the line failed, and then the question whether the register took it:
    the sale stops (the caller cancels the receipt) -- one text for both vendors."""
    return TransportError(
        f"{where}: the line failed it ({lost}), and then the question whether the register "
        f"took it ({unread}); {CANCELLED}: sell it again when the line is sound"
    )


# Cancels of a receipt a failure left open, when the line fails them (`Device.cancel_open`).
CANCEL_TRIES = 3
OPEN_TRIES = 3  # sends of the command opening a receipt that failed on the line (`_open_once`)
_NEXT_SALE = "the next sale cancels it first; `kkt status` shows it."


def left_open(error: E, why: str) -> E:
    """``error`` -- the same object, so the caller's ``except`` clauses stay as they are --
    saying that a receipt is left open on the register (``why``, from `Device.cancel_open`) and
    marked ``left_open``.  Its claim that the receipt was cancelled (`CANCELLED`) is taken
    back."""
    message = str(error).replace(CANCELLED, NOT_CHARGED).rstrip(". ")
    opened = f"{why}: {_NEXT_SALE}"
    if NOT_CHARGED in message or "nothing was recorded" in message:
        opened = opened[0].upper() + opened[1:]
    else:
        opened = f"Nothing was charged, but {opened}"
    error.args = (f"{message}. {opened}",)
    error.left_open = True
    return error


class Device(ABC):
    """A register behind a `Commander` (a link session, or the in-process emulator); a subclass
    speaks one vendor's protocol.

    Typed requests carry ``REPEATABLE`` (read-only: asking twice changes nothing), ``TIMEOUT``,
    ``encode()`` and ``decode_answer()``, on every vendor's protocol core.
    """

    vendor: ClassVar[str]  # "shtrih", "atol"
    # The driver's error class for each of the vendor's refusal codes (`DeviceError` otherwise).
    REFUSALS: ClassVar[dict[int, type[DeviceError]]]
    # The `Payments` fields the vendor's correction commands carry (others are refused first).
    CORRECTION_PAYMENTS: ClassVar[frozenset[str]] = frozenset({"cash"})
    # Whether the driver can check and sell marked goods on this vendor's registers.
    MARKING: ClassVar[bool] = False

    def __init__(self, commander: Commander, *, password: int = 30) -> None:
        self.commander = commander
        self.password = password
        # True while this driver knows no receipt is open: only its own completed receipts or a
        # confirmed cancel set it; any other state-changing command clears it.  It spares one
        # status query per receipt in the common case.
        self.no_open_receipt = False
        self.query_tries = 5
        self._fn_serial: str | None = None
        # What this session's last receipt left the FN at (`LastSale`), or None: set by the
        # register after a receipt it closed and verified, dropped by `_raw_once` on anything
        # else (see `last_sale`).
        self.carried: LastSale | None = None

    # -- one command ------------------------------------------------------------------------------

    def raw(self, request: Any, *, sync_after: bool = False) -> Any:
        """Any typed request of the register's own protocol (`kkt.protocols.shtrih` or
        `kkt.protocols.atol`); refusals become the driver's `DeviceError` subclasses.

        Read-only requests are tried again after a link failure -- asking twice changes nothing.
        Anything else fails at once and the caller decides.  ``sync_after``: the next request
        repeats this one's command code (a link that guards a repeated code may start guarding
        now, `kkt.transport.session.LinkSession.asks_ahead`).
        """
        tries = self.query_tries if request.REPEATABLE else 1
        for attempt in range(1, tries + 1):
            try:
                return self._raw_once(request, sync_after)
            except (TransportError, OutcomeUnknown, BadAnswer):
                if attempt == tries:
                    raise
                log.info("retrying %s after a link failure", type(request).__name__)
        raise AssertionError("unreachable")

    def last_sale(self) -> LastSale | None:
        """`carried`, while it still tells the FN's state: the register did nothing since this
        session's last receipt but answer queries, on the same connection.

        The rule, for every vendor: a number carried from the last receipt replaces asking the
        FN only while nothing could have formed a document since.  Only this session's commands
        can (one writer per register: `kkt.register.Register`), and of them only state-changing
        ones -- a shift opened or closed, a correction, a report, cash in or out, the clock set,
        a raw command, the OFD's answer written, printing: every request not marked
        ``REPEATABLE`` drops it (`_raw_once`), whatever it was, before it is sent.  So does any
        exchange that failed -- a refusal, a damaged or lost answer, an unknown outcome -- and a
        reopened port (another program may have used the register while we were away).  Reads
        keep it: a read-only request forms nothing.  The register sets it again only after a
        receipt it closed itself and whose answer agreed with what it expected.
        """
        carried = self.carried
        if carried is not None and carried.reconnects != self._reconnects():
            self.carried = carried = None
        return carried

    def _reconnects(self) -> int:
        """How many times the link reopened its port (0 for a commander that never does)."""
        count = getattr(self.commander, "reconnects", 0)
        return count if isinstance(count, int) else 0

    def carry(self, document: int, when: dt.datetime | None, shift: int, receipt: int) -> None:
        """Remember the FN's state after this session's own receipt (`last_sale`)."""
        self.carried = LastSale(document, when, shift, receipt, self._reconnects())

    def _raw_once(self, request: Any, sync_after: bool = False) -> Any:
        if not request.REPEATABLE:
            self.carried = None  # before it is sent: it may form a document (`last_sale`)
        try:
            return self._raw_exchange(request, sync_after)
        except BaseException:
            self.carried = None  # any trouble: the FN is asked again (`last_sale`)
            raise

    def _raw_exchange(self, request: Any, sync_after: bool = False) -> Any:
        try:
            encoded = request.encode()
        except CodecError as error:
            # construct prefixes its own path line ("Error in path ..."): keep the last one.
            reason = str(error).strip().splitlines()[-1]
            raise CannotSend(f"{type(request).__name__}: {reason}; nothing was sent") from None
        if not request.REPEATABLE:
            self.no_open_receipt = False
        try:
            # ``sync_after`` only to a commander that says it takes it (`LinkSession.asks_ahead`),
            # asked each time: a caller may wrap ``commander`` after connecting, and others (the
            # in-process emulator, a wrapper) are called as the `Commander` protocol says.
            asks = sync_after and bool(getattr(self.commander, "asks_ahead", False))
            ahead = {"sync_after": True} if asks else {}
            payload = self.commander.exchange(
                encoded, answer_timeout=request.TIMEOUT, resend=request.REPEATABLE, **ahead
            )
        except SessionWrongProtocol as error:
            raise WrongProtocol(str(error)) from error
        except LinkError as error:
            # Did the register perhaps do it?
            if error.maybe_executed:
                raise OutcomeUnknown(str(error)) from error
            raise TransportError(str(error)) from error
        except ProtocolError as error:
            # Raised before anything went out (a command too long for any frame or packet).
            raise CannotSend(f"{type(request).__name__}: {error}; nothing was sent") from None
        try:
            answer = request.decode_answer(payload)
        except ProtocolDeviceError as error:
            log.debug("%r refused: %s", request, error)
            raise self._refusal(error) from None
        except CodecError as error:
            if request.REPEATABLE:
                raise BadAnswer(f"the register's answer makes no sense: {error}") from error
            raise OutcomeUnknown(
                f"the answer to a state-changing command makes no sense ({error}); check the "
                "register's last fiscal document before repeating it"
            ) from error
        log.debug("%r -> %r", request, answer)
        return answer

    def _refusal(self, error: ProtocolDeviceError) -> DeviceError:
        """The driver's error for the device's refusal."""
        cls = self.REFUSALS.get(error.code, DeviceError)
        return cls(
            str(error), code=error.code, vendor=self.vendor, retry_may_help=error.retry_may_help
        )

    def close(self) -> None:
        self.commander.close()

    # -- shared readings --------------------------------------------------------------------------

    def fn_serial(self) -> str:
        """The FN's 16-digit serial, asked once (a damaged answer is asked again, never kept)."""
        if self._fn_serial is None:
            for attempt in range(1, self.query_tries + 1):
                try:
                    self._fn_serial = checked_serial(self._read_fn_serial())
                    break
                except BadAnswer:
                    if attempt == self.query_tries:
                        raise
        assert self._fn_serial is not None
        return self._fn_serial

    def _read_tlv_blocks(
        self, number: int, select: Callable[[], tuple[int, int]], next_block: Callable[[], bytes]
    ) -> tuple[int, TlvList]:
        """A document's TLV, read in blocks: ``select()`` picks document ``number`` and says its
        (type, size), ``next_block()`` gives the next piece (one top-level TLV a block, on both
        vendors) and moves a cursor in the register.

        A block read that fails on the line may have moved the cursor or not (the command not
        taken; or done, and its answer lost -- no host can tell the two apart).  The reading goes
        on either way: had the cursor moved, a block is missing, the blocks read end short of
        ``size``, and the register refuses a read past the document's end (or gives nothing) --
        then the document is selected and read again whole, ``READ_TRIES`` readings at most.
        A document is returned only when its blocks add up to ``size`` with none missing.
        Before, any failure started the reading over: a receipt's twenty-odd blocks then rarely
        crossed a line that damages one byte in a hundred."""
        for attempt in range(1, READ_TRIES + 1):
            try:
                kind, size = select()
                data = self._read_blocks(number, size, next_block)
                break
            except (TransportError, OutcomeUnknown, BadAnswer):
                if attempt == READ_TRIES:
                    raise
                log.info(
                    "document %d: reading it again (%d of %d)", number, attempt + 1, READ_TRIES
                )
        try:
            return kind, decode_tlv(bytes(data[:size]))
        except (CodecError, TlvError) as error:
            raise BadAnswer(f"document {number}: its TLV does not decode ({error})") from error

    @staticmethod
    def _read_blocks(number: int, size: int, next_block: Callable[[], bytes]) -> bytearray:
        """The blocks of a selected document up to ``size`` bytes (see `_read_tlv_blocks`)."""
        data = bytearray()
        misses = 0
        while len(data) < size:
            try:
                block = next_block()
            except (TransportError, OutcomeUnknown):
                misses += 1
                if misses > BLOCK_MISSES:
                    raise
                continue  # the cursor moved or not: the document's end will tell
            except DeviceError as refusal:
                if not misses:
                    raise  # a refusal of its own, not the end reached early
                raise BadAnswer(
                    f"document {number}: the register has no more of it after {len(data)} of "
                    f"{size} bytes ({refusal}): a block was lost on the line"
                ) from refusal
            if not block:
                raise BadAnswer(f"document {number}: the FN sent an empty TLV block")
            data += block
        return data

    @staticmethod
    def _tlv(tags: Any) -> bytes:
        """Tags as TLV bytes; a tag the FFD does not allow (too long, wrong type): `CannotSend`."""
        try:
            return encode_tlv(tags)
        except TlvError as error:
            raise CannotSend(f"{error}; nothing was sent") from None

    def _open_once(self, request: Any, receipt: Receipt | None = None) -> None:
        """Open the receipt; after a failed exchange, the register's state says whether it did.

        A receipt found open then is taken for the one this command opened only when it is as
        that command leaves it (`open_receipt_fits`); any other -- another program's, or one an
        earlier failure left -- is never filled and closed as ours: `NotFiscalized` (the caller
        cancels it), before anything of this sale went into it.
        """
        for _ in range(OPEN_TRIES):
            try:
                self.raw(request)
                return
            except (TransportError, OutcomeUnknown):
                fits = self.open_receipt_fits(receipt)
                if fits is None:
                    continue  # none open: the command was not executed
                if fits:
                    return
                raise NotFiscalized(
                    "the receipt open on the register is not this sale's (another program's, "
                    "or one an earlier failure left); nothing of this sale went into it; "
                    f"{CANCELLED}: sell it again, and let one program use the register"
                ) from None
        raise TransportError(
            f"the register would not open the receipt: sent {OPEN_TRIES} times, the line failed "
            f"it each time; no receipt was opened, {NOT_CHARGED}: sell it again when the line is "
            "sound"
        )

    def open_receipt_fits(self, receipt: Receipt | None) -> bool | None:
        """None when no receipt is open; else whether the open one is as opening ``receipt``
        leaves it -- empty (and, where the register says it, of ``receipt``'s type).  An empty
        receipt of that type is the most anyone can prove: it holds nothing of anybody's."""
        status = self.status()
        if not status.receipt_open:
            return None
        return status.receipt_items in (0, None)

    def registration(self) -> Registration:
        """INN, RNM, user, address and FFD version from the FN's registration report.

        That is the report an FN starts with (its document 1): a later re-registration in the same
        FN changes the address or the OFD, not the RNM or the owner's INN (those need a new
        registration), so document 1 answers this without walking an archive of a million
        documents.
        """
        number = 1
        tlv = self.read_document(number).tlv

        def text(tag: int) -> str:
            value = find(tlv, tag)
            return value.strip() if isinstance(value, str) else ""

        version = find(tlv, 1209)
        return Registration(
            document_number=number,
            inn=text(1018),
            rnm=text(1037),
            user=text(1048),
            address=text(1009),
            ffd=_FFD_VERSIONS.get(version, str(version)) if isinstance(version, int) else "",
            place=text(1187),
            fns_site=text(1060),
        )

    def shift_opened_at(self, shift_number: int, receipts: int) -> dt.datetime | None:
        """When the open shift began: its shift-open report sits about ``receipts`` documents back.

        A shift holds its receipts plus a few other documents (state reports, corrections), so the
        search starts there and walks back a bounded number of documents.
        """
        last = self.last_document()
        start = max(1, last - receipts)
        for number in range(start, max(0, start - 64), -1):
            found = self.find_document(number)
            if found.type == DocumentType.SHIFT_OPEN and found.shift_number == shift_number:
                return found.when
        return None

    # -- what a vendor provides: queries ----------------------------------------------------------

    @abstractmethod
    def _read_fn_serial(self) -> str: ...

    @abstractmethod
    def status(self) -> Status: ...

    @abstractmethod
    def device_info(self) -> DeviceInfo: ...

    @abstractmethod
    def fn_info(self) -> FnInfo:
        """The fiscal storage: serial, phase, expiry, registrations left, queue, warnings."""

    @abstractmethod
    def last_document(self) -> int: ...

    @abstractmethod
    def shift(self) -> ShiftState: ...

    @abstractmethod
    def find_document(self, number: int) -> DocumentInfo:
        """The archive's short record of document ``number`` (type, time, sign, total) -- never
        another's (`BadAnswer`)."""

    def brief_document(self, number: int) -> DocumentInfo:
        """Document ``number``'s record from the shortest answers the register has, for settling
        a receipt over a bad line (a long answer rarely survives one).  Its ``operation`` may be
        None where no short answer names it.  Shtrih's FF0A record is short already."""
        return self.find_document(number)

    @abstractmethod
    def read_document(self, number: int) -> Document:
        """Fiscal document ``number`` whole, its TLV decoded (`DeviceError` where the model
        cannot)."""

    @abstractmethod
    def clock(self) -> dt.datetime | None:
        """The register's own date and time (None when it has no date set)."""

    @abstractmethod
    def ofd_queue(self) -> OfdQueue:
        """How many documents wait for the OFD, and since when."""

    def ofd_receipt(self, number: int) -> OfdReceipt | None:
        """The OFD's receipt for document ``number`` as the FN keeps it (FN 41h), None when the
        FN holds none (not acknowledged yet); `NotSupported` where the protocol has no such
        query."""
        raise NotSupported(
            f"the {self.vendor} protocol has no public query for a document's OFD receipt"
        )

    def ofd_read_message(self) -> bytes | None:
        """The message waiting for the OFD, whole (session header and container), or None when
        none waits; reading it again before its answer is written gives it again."""
        raise NotSupported(f"the {self.vendor} driver cannot relay the FN's messages")

    def ofd_write_answer(self, answer: bytes) -> None:
        """Hand the OFD's answer (session header and container) to the register, which passes
        the receipt to the FN (`OfdReceiptRefused`-worthy refusals raise `DeviceError`)."""
        raise NotSupported(f"the {self.vendor} driver cannot relay the FN's messages")

    @abstractmethod
    def cash_in_drawer(self) -> int:
        """The cash in the drawer as the register counts it, kopecks (a query: nothing prints)."""

    def shift_totals(self) -> ShiftTotals:
        """The shift's figures an X report prints: shift, receipts, cash in the drawer -- and
        whatever more the vendor's registers say (a query: nothing prints)."""
        state = self.shift()
        return ShiftTotals(state.open, state.number, state.receipts, self.cash_in_drawer())

    # -- documents and the printer ----------------------------------------------------------------

    @abstractmethod
    def open_shift(self, cashier: str | None) -> Formed: ...

    @abstractmethod
    def close_shift(self, cashier: str | None) -> Formed: ...

    @abstractmethod
    def x_report(self) -> None: ...

    @abstractmethod
    def correction(
        self, operation: Operation, total: int, tags: TlvList, payments: Payments
    ) -> Formed:
        """A correction receipt for ``total`` paid as ``payments`` (which add up to it, in kinds
        `CORRECTION_PAYMENTS` names); ``tags`` are its 1173 and 1174 (`CorrectionBasis.tags`)."""

    @abstractmethod
    def cash_in(self, amount: int) -> None: ...

    @abstractmethod
    def cash_out(self, amount: int) -> None: ...

    @abstractmethod
    def print_text(self, text: str) -> None:
        """Print lines of text (each cut to the register's line width)."""

    @abstractmethod
    def cut(self, *, partial: bool = False) -> None: ...

    @abstractmethod
    def continue_print(self) -> None:
        """Resume a document a paper end interrupted (after loading paper)."""

    @abstractmethod
    def set_datetime(self, when: dt.datetime) -> None: ...

    # -- the receipt's steps ----------------------------------------------------------------------

    @abstractmethod
    def receipt_open(self) -> bool:
        """Is a receipt open on the register now?"""

    @abstractmethod
    def open_receipt(self, receipt: Receipt) -> None:
        """Open it (with its receipt-level tags) exactly once, or raise."""

    @abstractmethod
    def add_item(self, receipt: Receipt, index: int, subtotal: int) -> None:
        """Add ``receipt.items[index]`` exactly once (``subtotal`` is the receipt's sum before
        it), or raise `NotFiscalized` when the open receipt no longer adds up."""

    @abstractmethod
    def subtotal(self) -> int:
        """The open receipt's sum as the register counts it."""

    @abstractmethod
    def pay(self, receipt: Receipt) -> None:
        """Whatever the closing command does not carry of the payments (before it)."""

    @abstractmethod
    def close_receipt(self, receipt: Receipt) -> Formed:
        """One attempt at the closing command: the FN forms the document."""

    @abstractmethod
    def cancel_receipt(self) -> None:
        """Cancel the open receipt, if one is open."""

    def cancel_open(self) -> str | None:
        """Cancel the receipt open on the register, if any (a failure before its closing
        command, or an earlier one, left it): None when none is left open, else a clause saying
        one is ("a receipt is left open on the register (its cancel did not get through the
        line)"), for the caller's error (`left_open`; the next sale cancels it first).

        A cancel that failed on the line is tried again (`CANCEL_TRIES` in all): a receipt is
        not fiscal before its closing command, cancelling one moves no money, and each try asks
        whether one is open before it cancels -- a try after a cancel that was done, its answer
        lost, finds none and sends nothing."""
        known_open = False  # the register said a receipt is open, and no cancel may have run
        for attempt in range(1, CANCEL_TRIES + 1):
            try:
                if self.receipt_open():
                    known_open = True
                    self.cancel_receipt()
                self.no_open_receipt = True
                return None
            except OutcomeUnknown as error:
                known_open = False  # the cancel may have run: the next try asks again
                failure: KktError = error
            except (TransportError, BadAnswer) as error:
                failure = error
            except KktError as refusal:
                log.warning("the register refused to cancel the open receipt (%s)", refusal)
                return (
                    "a receipt is left open on the register (the register refused its cancel: "
                    f"{refusal})"
                )
            if attempt < CANCEL_TRIES:
                log.info("cancelling the open receipt failed on the line (%s); again", failure)
        log.warning(
            "a receipt may be left open on the register: its cancel failed on the line %d times "
            "(%s)",
            CANCEL_TRIES,
            failure,
        )
        held = "is" if known_open else "may be"
        return (
            f"a receipt {held} left open on the register (its cancel did not get through the line)"
        )

    # -- marked goods -----------------------------------------------------------------------------
    #
    # The default is a refusal naming its cause: a vendor whose marking commands the driver
    # cannot send never sells a marked item without its check (`MARKING` False).  `add_item`
    # binds a marked item's code (accepted before the receipt opened) to the item.

    def unsupported_marking(self, *, state: bool = False) -> NotSupported:
        """Why this vendor's driver cannot check or sell marked goods (``state``: why it cannot
        read the FN's marking state -- a readout, where nothing was to be sent)."""
        cause = _NO_MARKING.get(self.vendor, "its marking commands are not implemented")
        if state:
            return NotSupported(
                f"the {self.vendor} driver cannot read the FN's marking state: {cause}"
            )
        return NotSupported(
            f"the {self.vendor} driver cannot check or sell marked goods: {cause}, so the driver "
            "cannot have the FN check a code, and never sells a marked item unchecked; nothing "
            "was sent. Sell marked goods on a Shtrih-M register (or through the vendor's own "
            "driver)."
        )

    def check_mark(
        self, code: str, planned: PlannedStatus, tlv: TlvList, *, allow_offline: bool = False
    ) -> MarkCheck:
        """Check ``code`` with the FN and ОИСМ (``tlv``: `kkt.marking.check_tlv`); the FN then
        waits for `decide_mark`.  Exactly once: a check whose exchange failed is found out from
        the FN's marking state and any check it left pending rejected before asking again."""
        raise self.unsupported_marking()

    def decide_mark(self, accept: bool) -> ItemCheck | None:
        """Accept (save in the FN: 2106, or None when its answer was lost) or reject the code
        checked last; exactly once, settled by the FN's marking state after a failed exchange."""
        raise self.unsupported_marking()

    def clear_marks(self) -> None:
        """Forget every checked code (none may be open in a receipt)."""
        raise self.unsupported_marking()

    def marking_state(self) -> MarkingState:
        """The FN's marking state (`kkt.marking.MarkingState`)."""
        raise self.unsupported_marking(state=True)


# Why a vendor's registers cannot check codes through this driver (`Device.unsupported_marking`).
_NO_MARKING = {
    # Fact sheet ofd-cloud-marking.md §4.4 and §5, gap 3 (the project's notes, not shipped).
    "atol": "ATOL's protocol-3.1 marking commands have no public byte layout (their bytes are "
    "not public, only the JSON task names of ATOL's own driver, libfptr)",
}


def checked_serial(serial: str) -> str:
    """An FN serial is 16 digits; anything else is a damaged answer, never cached or printed."""
    if len(serial) != 16 or not serial.isdigit():
        raise BadAnswer(f"the FN serial {serial!r} is not 16 digits: a damaged answer")
    return serial


# What gets a register blocked by its OFD backlog going again (every vendor says it).
OFD_BLOCKED = (
    "the FN holds documents the OFD has not confirmed for over 30 days, so it forms no new "
    "ones: restore the register's link to the OFD and let it send the queue (`kkt fn` shows it); "
    "a register with no network of its own sends it through this computer with `kkt ofd relay "
    "--ofd HOST:PORT`; on the emulator, `kkt emulator ctl --state DIR ofd deliver` delivers it"
)
_INTERNET_1290 = 1 << 5  # tag 1290 bit 5: "Internet only" (FFD 1.2; 1108 before)
_TAX_NAMES = {1: "osn", 2: "usnIncome", 4: "usnIncomeOutcome", 8: "envd", 16: "esn", 32: "patent"}


def registration_mismatch(device: Device, receipt: Receipt) -> str | None:
    """Why the register's registration refuses ``receipt``, read after a refusal whose code alone
    cannot say (Shtrih 33h "incorrect parameters", ATOL E7h "bad FN parameters"): a receipt
    without the buyer's contact on an Internet-only register, or a tax system it is not
    registered for.  None when the registration (document 1) shows neither, or cannot be read.
    """
    try:
        tlv = device.read_document(1).tlv
    except (KktError, ProtocolError):
        return None
    problems = []
    conditions = find(tlv, 1290)
    internet = find(tlv, 1108) == 1 or (
        isinstance(conditions, int) and bool(conditions & _INTERNET_1290)
    )
    has_contact = bool(receipt.buyer_contact) or any(tag == 1008 for tag, _ in receipt.extra)
    if internet and not has_contact:
        problems.append(
            "the register is registered for Internet sales only (no printed receipt), so the "
            "receipt needs the buyer's phone or e-mail: clientInfo.emailOrPhone in the JSON, "
            "Receipt.buyer_contact in Python (tag 1008)"
        )
    registered = find(tlv, 1062)
    if isinstance(registered, int) and registered and not int(receipt.tax_system) & registered:
        names = ", ".join(name for bit, name in _TAX_NAMES.items() if registered & bit)
        wanted = _TAX_NAMES.get(int(receipt.tax_system), f"{int(receipt.tax_system):#x}")
        problems.append(
            f"the receipt's tax system {wanted} (taxationType, tag 1055) is not one the register "
            f"is registered for ({names}): use one of those"
        )
    return "; ".join(problems) or None
