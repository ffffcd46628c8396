"""The ATOL `Device`: the driver's steps as ATOL commands (protocol 3.1, over the v3 task buffer).

ATOL works in modes: receipts, cash and the shift's opening in mode 1 (registration), the X report
in mode 2, the Z report in mode 3, each entered with 56h and a mode password and left with 48h.
The device enters the mode a step needs and leaves another one first -- asking the register (45h)
only when the mode is not already known: it is remembered from the last entry until a command
fails or the port is reopened, and a command refused 66h ("not in this mode") on a remembered
mode re-checks it and runs again once (66h: nothing was executed) -- a command that changes
anything only when the register was indeed out of the mode: 66h in the mode is no answer of
this command's, and its fate is unknown.

Exactly once: the v3 task buffer does most of the work -- a lost reply is fetched with ``Req(TID)``
(`kkt.transport.session.AtolSession`), so a step fails with `OutcomeUnknown` only when the buffer
itself could not say.  Then the open receipt decides, as on Shtrih: its state for the opening, its
sum for an item.  ATOL's 3Fh reports no item count, so a free item whose fate is unknown cannot be
judged and the receipt is cancelled (`NotFiscalized`) rather than guessed at.

Payments are registered with 99h before the closing 4Ah carries the last of them: a failed 99h
cancels the receipt (nothing is fiscal before 4Ah), and only 4Ah is ever settled by the FN.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any, TypeVar

from kkt.protocols.atol import commands as c
from kkt.protocols.atol.host import AtolHostLink
from kkt.protocols.atol.modes import Mode, PaymentType, ReceiptType, StatusFlags, split_mode
from kkt.protocols.errors import CodecError
from kkt.protocols.errors import DeviceError as ProtocolDeviceError
from kkt.protocols.ffd import DocumentType, FnWarning, Payments, TlvList, find
from kkt.protocols.ffd.view import strip_padding

from .. import errors, results
from ..errors import (
    BadAnswer,
    CannotSend,
    DeviceError,
    KktError,
    NotFiscalized,
    NotSupported,
    OutcomeUnknown,
    TransportError,
)
from ..receipt import VAT_CODES, Operation, Receipt
from ..transport.session import Commander
from .base import (
    CANCELLED,
    OFD_BLOCKED,
    Device,
    item_fate_unread,
    left_open,
    registration_mismatch,
)

log = logging.getLogger("kkt.register")

AnswerT = TypeVar("AnswerT", bound=c.Answer)

ACCESS_PASSWORD = 0  # the 2-byte password every command carries; devices ship with 0000
# EBh's tax byte: the FN's own codes of tag 1199 (1 VAT 20 %, 2 VAT 10 %, 3 VAT 20/120, 4 VAT
# 10/110, 5 VAT 0 %, 6 no VAT), as the one public encoder of this command writes them (Zzzzipper,
# FiscalStorage.h convertTaxRate2FN105).  libfptr10's API numbers (7 = VAT 20) are not wire codes:
# in tag 1199, 7 and 8 are VAT 5 % and 7 %.
TAX_TYPES = VAT_CODES
RECEIPT_TYPES = {
    Operation.SELL: ReceiptType.SELL,
    Operation.SELL_RETURN: ReceiptType.SELL_RETURN,
    Operation.BUY: ReceiptType.BUY,
    Operation.BUY_RETURN: ReceiptType.BUY_RETURN,
}
CORRECTION_TYPES = {  # 92h: libfptr's numbers (8 and 10 the returns', FFD 1.2 corrects them too)
    Operation.SELL: ReceiptType.SELL_CORRECTION,
    Operation.SELL_RETURN: ReceiptType.SELL_RETURN_CORRECTION,
    Operation.BUY: ReceiptType.BUY_CORRECTION,
    Operation.BUY_RETURN: ReceiptType.BUY_RETURN_CORRECTION,
}
MODE_NAMES: dict[int, str] = {
    Mode.SELECT: "select",
    Mode.REGISTRATION: "registration",
    Mode.X_REPORTS: "X reports",
    Mode.Z_REPORTS: "Z reports",
    Mode.PROGRAMMING: "programming",
    Mode.FN_ACCESS: "FN access",
    Mode.EKLZ_ACCESS: "EKLZ access",
    Mode.EXTRA: "extra",
}
ITEM_TRIES = 3  # sends of one item (EAh ... EBh) that failed on the line before the sale gives up
LINE_WIDTH = 48  # characters on ATOL's 80 mm printers (a longer line is wrapped by the device)
# ATOL carries the OFD's TCP stream inside its v3 transport ("EthernetOverTransport", libfptr's
# OfdChannel = PROTO), but no public source gives that framing (fact sheet ofd-cloud-marking.md
# §1.4): the relay is not guessed.
_NO_RELAY = (
    'ATOL registers relay to the OFD through their own driver\'s "EthernetOverTransport" '
    "channel, whose framing no public source describes, so this driver cannot carry the FN's "
    'messages: give the register its own network (its OFD settings, channel "none" in '
    "ATOL's driver), or on the emulator serve it with `kkt emulator serve --ofd HOST:PORT`"
)
OFD_BLOCK_DAYS = 30  # the FN refuses new documents once the oldest unsent waited this long
REPORT_X = 1  # 67h report type: the daily report without closing (X)
NOT_IN_THIS_MODE = 0x66  # "command not allowed in this mode" (fact sheet §2.5): nothing ran
# ATOL codes (fact sheet §2.5) -> the class callers catch.
REFUSALS: dict[int, type[DeviceError]] = {
    0x67: errors.PaperOut,
    0x68: errors.PaperOut,
    0x69: errors.PaperOut,
    0x88: errors.ShiftExpired,
    0xF0: errors.ShiftExpired,
    0x8C: errors.WrongPassword,
    0x1E: errors.WrongMode,
    0x66: errors.WrongMode,
    0x6A: errors.WrongMode,
    0x82: errors.WrongMode,
    0x87: errors.WrongMode,
    0x89: errors.WrongMode,
    0x9A: errors.WrongMode,
    0x9B: errors.WrongMode,
    0x9C: errors.WrongMode,
    # D4h: the FN's state refuses it, a shift closed (or open) where it must not be
    0xD4: errors.WrongMode,
    0xD7: errors.FnExhausted,
    0xD8: errors.FnExhausted,
    0xEB: errors.FnExhausted,
}

# The command that gets the user out of a refusal, where the protocol table names none.
_COMMANDS_OUT = {
    0x88: "`kkt shift close`",
    0xF0: "`kkt shift close`",
    0x9C: "`kkt shift close`",
    0x8F: "`kkt shift open`",
}


class AtolDevice(Device):
    """An ATOL register behind a `Commander` (an `AtolSession`, or the in-process emulator).

    ``password`` is the mode password (30 system administrator, 29 administrator, 1..28 the
    cashiers); the access password every command carries is ``access_password``.
    """

    vendor = "atol"
    REFUSALS = REFUSALS
    CORRECTION_PAYMENTS = frozenset({"cash", "electronic", "prepaid", "credit", "other"})  # 99h

    def __init__(
        self, commander: Commander, *, password: int = 30, access_password: int = ACCESS_PASSWORD
    ) -> None:
        super().__init__(commander, password=password)
        self.access_password = access_password
        # The mode the register is known to be in, so that `_enter` asks (45h) only when it is
        # not known: None after any failed or refused command and after a reconnect.  Another
        # program on the register (or its own restart) may still change it behind our back:
        # the first command after a mode taken on trust that is refused 66h ("not in this
        # mode", never executed) re-checks the mode and runs again, once (`raw`).
        self._mode: Mode | None = None
        self._mode_trusted = False  # the last `_enter` skipped its 45h
        self._mode_reconnects = 0

    def raw(self, request: c.Request[AnswerT], *, sync_after: bool = False) -> AnswerT:
        """Any typed ATOL request (`kkt.protocols.atol.commands`); see `Device.raw`.  ATOL's link
        has no sync to ask ahead (its packets carry IDs): ``sync_after`` changes nothing."""
        trusted, self._mode_trusted = self._mode_trusted, False
        wanted = self._mode
        try:
            answer: AnswerT = super().raw(request)
        except DeviceError as refusal:
            self._mode = None
            if not (trusted and wanted is not None and refusal.code == NOT_IN_THIS_MODE):
                raise
            current, _ = split_mode(self._ask(c.GetStateCode).mode)
            if current == wanted and not request.REPEATABLE:
                # Still in the mode: that 66h cannot be this command's answer -- another
                # program's task under our TID (it Aborts and reuses TIDs: a result of ours it
                # retired is replaced by its own).  Ours may have run: never run it again.
                self._mode = wanted
                raise OutcomeUnknown(
                    f"the register answered {type(request).__name__} 'not in this mode' (66h) "
                    f"while in mode {int(wanted)}: the answer was not this command's (another "
                    "program on the register?); it may have been executed -- check the register "
                    "before repeating it"
                ) from refusal
            log.info("the register left mode %d behind our back: entering it again", wanted)
            self._enter(wanted, current)
            self._mode_trusted = False
            answer = super().raw(request)
        except BaseException:
            self._mode = None  # a failed exchange: the register may have been restarted
            raise
        return answer

    def _refusal(self, error: ProtocolDeviceError) -> DeviceError:
        refusal = super()._refusal(error)
        try:
            if error.code == 0xD4 and error.command in (0x92, 0x49, 0x4F):
                # D4h ("wrong FN state") is what ATOL answers for a receipt or cash outside a
                # shift: its table (fact sheet §2.5) has no "shift closed" code.  Say which.
                if StatusFlags.SHIFT_OPEN not in StatusFlags(self._status().flags):
                    return errors.WrongMode(
                        "no shift is open (the register answered D4h, wrong FN state): open one "
                        "with `kkt shift open` (Register.open_shift()), then repeat",
                        code=error.code,
                        vendor=self.vendor,
                    )
            elif error.code in (0xEB, 0xED) and self._ofd_blocked():
                return errors.OfdBlocked(
                    f"ATOL error {error.code:#04x} on command {error.command:02X}h -- "
                    + OFD_BLOCKED,
                    code=error.code,
                    vendor=self.vendor,
                )
            elif isinstance(refusal, errors.PaperOut):
                cause = str(refusal)
                if error.code == 0x69 and StatusFlags.COVER_OPEN in StatusFlags(
                    self._status().flags
                ):
                    cause = "the printer's cover is open (ATOL error 0x69): close the cover"
                return errors.PaperOut(
                    f"{cause} (`kkt continue`, Register.continue_print(), finishes a document "
                    "the paper end interrupted)",
                    cause=cause,
                    code=error.code,
                    vendor=self.vendor,
                )
        except KktError:
            pass  # the plain refusal is still true
        command = _COMMANDS_OUT.get(error.code)
        if command:
            return type(refusal)(
                f"{refusal} -- {command}",
                code=error.code,
                vendor=self.vendor,
                retry_may_help=refusal.retry_may_help,
            )
        return refusal

    def _ofd_blocked(self) -> bool:
        """The oldest document unsent to the OFD waited 30 days or more (by the register's
        clock): the FN forms nothing new until the OFD confirms it."""
        queue = self.ofd_queue()
        now = self.clock()
        if not queue.unsent or queue.first_when is None or now is None:
            return False
        return now - queue.first_when >= dt.timedelta(days=OFD_BLOCK_DAYS)

    def _ask(self, request_type: type[c.Request[AnswerT]], *args: Any) -> AnswerT:
        return self.raw(request_type(self.access_password, *args))

    def _follow(self, command: c.Request[Any], query: c.Request[Any]) -> None:
        """Have ``query``'s Add written with ``command``'s, when the link can (the v3 task
        buffer, `AtolHostLink.follow`): asked for right after ``command``, it then costs no
        round trip of its own.  The buffer runs its tasks one after another in the order they
        were added -- "A1 Pending", a task waiting behind another (fact sheet §1.4, after
        atol4j, Zzzzipper and SAMSON; every client waits for a task's result in that order) --
        so the query answers the state ``command`` left; the link takes that answer only when
        the device took ``command`` from the packet written before the query's."""
        link = getattr(self.commander, "link", None)
        if isinstance(link, AtolHostLink) and not link.busy:
            try:
                link.follow(command.encode(), query.encode())
            except CodecError:
                return  # an optimisation only: the command itself reports what is wrong

    def _enter(self, mode: Mode, current: int | None = None) -> None:
        """Be in ``mode``: leave the current one (48h, twice from a sub-mode), then 56h -- no
        command at all when the register is known to be in it already (`raw`).  ``current``:
        the mode just read (45h), not asked again."""
        reconnects = getattr(self.commander, "reconnects", 0)
        if reconnects != self._mode_reconnects:
            self._mode_reconnects, self._mode = reconnects, None  # a new connection: ask again
        if self._mode == mode:
            self._mode_trusted = True
            return
        if current is None:
            current, _ = split_mode(self._ask(c.GetStateCode).mode)
        if current == mode:
            self._mode = mode
            return
        for _ in range(2):
            if current == Mode.SELECT:
                break
            self._ask(c.ExitMode)
            current, _ = split_mode(self._ask(c.GetStateCode).mode)
        self._ask(c.EnterMode, int(mode), self.password)
        self._mode = mode

    # -- queries ----------------------------------------------------------------------------------

    def _status(self) -> c.Status:
        return self._ask(c.GetStatus)

    def status(self) -> results.Status:
        s = self._status()
        flags = StatusFlags(s.flags)
        mode, submode = split_mode(s.mode)
        return results.Status(
            mode=mode,
            mode_name=MODE_NAMES.get(mode, f"mode {mode}"),
            submode=submode,
            shift_open=StatusFlags.SHIFT_OPEN in flags,
            # 3Fh has no "over 24 hours" flag: a sale in such a shift is refused with 88h
            # (`ShiftExpired`), which says what to do.
            shift_expired=False,
            receipt_open=s.receipt_state != 0,
            paper=StatusFlags.PAPER in flags,
            cover_open=StatusFlags.COVER_OPEN in flags,
            drawer_open=StatusFlags.DRAWER_OPEN in flags,
            operator=s.cashier,
            receipt_items=None,
        )

    def device_info(self) -> results.DeviceInfo:
        kind = self._ask(c.GetDeviceType)
        status = self._status()
        major, minor, _language, *build = kind.version
        return results.DeviceInfo(
            model=kind.model,
            name=kind.name,
            protocol=f"atol {kind.protocol}",
            serial=f"{status.serial:08d}",
            firmware=f"{major:x}.{minor:x} build {bytes(build).hex()}",
        )

    def fn_info(self) -> results.FnInfo:
        """A4h 31h, 32h, 20h and the last document, as public sources read them; the phase,
        warnings (30h) and the FN's firmware (33h) as the FN's own answers passed through --
        unverified (see `c.FnStatus`): a register that refuses them leaves those blank."""
        serial = self.fn_serial()
        validity = self._ask(c.GetFnValidity)
        queue = self.ofd_queue()
        phase: int | None = None
        warnings = FnWarning(0)
        try:
            status = self._ask(c.GetFnStatus)
            phase, warnings = status.phase, FnWarning(status.warnings)
        except errors.DeviceError as refusal:
            log.info("A4h 30h refused (%s): the FN's phase and warnings stay unknown", refusal)
        try:
            version = self._ask(c.GetFnVersion).version.strip()
        except errors.DeviceError as refusal:
            log.info("A4h 33h refused (%s): the FN's firmware stays unknown", refusal)
            version = ""
        return results.FnInfo(
            serial=serial,
            phase=phase,
            last_document=self.last_document(),
            expires=validity.expires,
            registrations_left=validity.registrations_left,
            version=version,
            warnings=warnings,
            unsent=queue.unsent,
        )

    def _read_fn_serial(self) -> str:
        return self._ask(c.GetFnSerial).serial.strip()

    def last_document(self) -> int:
        return self._ask(c.ReadLastDocument).number

    def shift(self) -> results.ShiftState:
        """A4h 10h passes the FN's 10h through: the open shift's receipts, but a closed shift's
        *documents* (fact sheet fn-ffd-ofd.md §4.6): a closed shift's receipts come from its Z."""
        state = self._ask(c.GetFnShift)
        if state.open:
            return results.ShiftState(True, state.number, state.receipts)
        return results.ShiftState(False, state.number, self._closed_shift_receipts(state.number))

    def _closed_shift_receipts(self, shift_number: int) -> int:
        """Tag 1118 (receipts in the shift) of shift ``shift_number``'s Z report, found among the
        last few documents (after a Z come at most OFD or state reports); 0 if none is found."""
        last = self.last_document()
        for number in range(last, max(0, last - 8), -1):
            kind, tlv = self._read_tlv(number)
            if kind == DocumentType.SHIFT_CLOSE and find(tlv, 1038) in (None, shift_number):
                receipts = find(tlv, 1118)
                return receipts if isinstance(receipts, int) else 0
        return 0

    def _read_tlv(self, number: int) -> tuple[int, TlvList]:
        """A4h 45h selects the document, 46h reads its TLV block by block."""

        def select() -> tuple[int, int]:
            size = self._ask(c.GetFnDocumentSize, number)
            return size.document_type, size.size

        return self._read_tlv_blocks(number, select, lambda: self._ask(c.GetFnDocumentData).data)

    def read_document(self, number: int) -> results.Document:
        kind, tlv = self._read_tlv(number)
        info = _document_info(number, kind, tlv)
        tlv = strip_padding(tlv)  # INN and RNM are stored space-padded
        return results.Document(number, kind, info.when, info.fiscal_sign, info.ofd_confirmed, tlv)

    def find_document(self, number: int) -> results.DocumentInfo:
        kind, tlv = self._read_tlv(number)
        return _document_info(number, kind, tlv)

    def brief_document(self, number: int) -> results.DocumentInfo:
        """The last document's record from 91h register 34h (one short answer: number, type,
        total, time, sign -- not the operation); any other document from its TLV (A4h 45h/46h:
        the only record ATOL keeps of it)."""
        record = self._formed().record
        if record is not None and record.number == number:
            return record
        return self.find_document(number)

    def clock(self) -> dt.datetime | None:
        return self._status().when

    def ofd_queue(self) -> results.OfdQueue:
        status = self._ask(c.GetFnOfdStatus)
        if not status.unsent:
            return results.OfdQueue(0, None, None)
        return results.OfdQueue(status.unsent, status.first_unsent, status.first_unsent_when)

    def ofd_read_message(self) -> bytes | None:
        raise NotSupported(_NO_RELAY)

    def ofd_write_answer(self, answer: bytes) -> None:
        raise NotSupported(_NO_RELAY)

    def cash_in_drawer(self) -> int:
        return self._ask(c.GetCashInDrawer).amount

    # -- documents and the printer ----------------------------------------------------------------

    def _formed(self, *, shift: bool = False) -> results.Formed:
        """The document the FN formed last (91h register 34h) -- and, for a shift report, the
        shift it belongs to (a receipt's shift comes with its fiscal data later)."""
        last = self._ask(c.ReadLastDocument)
        record = results.DocumentInfo(
            number=last.number,
            type=last.document_type,
            when=last.when,
            fiscal_sign=last.fiscal_sign,
            ofd_confirmed=False,
            total=last.total,
        )
        return results.Formed(
            last.number,
            last.fiscal_sign,
            self._ask(c.GetFnShift).number if shift else 0,
            record=record,
        )

    def _tags(self, tags: TlvList) -> None:
        for tag in tags:
            self._ask(c.WriteTlv, 0, self._tlv([tag]))

    def open_shift(self, cashier: str | None) -> results.Formed:
        self._enter(Mode.REGISTRATION)
        self._tags([(1021, cashier)] if cashier else [])
        self._ask(c.OpenShift, 0, "")
        return self._formed(shift=True)

    def close_shift(self, cashier: str | None) -> results.Formed:
        self._enter(Mode.Z_REPORTS)
        self._tags([(1021, cashier)] if cashier else [])
        self._ask(c.ZReport)
        return self._formed(shift=True)

    def x_report(self) -> None:
        self._enter(Mode.X_REPORTS)
        self._ask(c.Report, REPORT_X)

    def correction(
        self, operation: Operation, total: int, tags: TlvList, payments: Payments
    ) -> results.Formed:
        """92h (type 7 or 9), its tags, 99h for every payment kind but the last, which the
        closing 4Ah carries -- as a receipt is paid."""
        if operation not in CORRECTION_TYPES:
            raise CannotSend(f"a correction is a sale or a purchase, not {operation.name.lower()}")
        parts = _paid_parts(payments)
        self._enter(Mode.REGISTRATION)
        self._ask(c.OpenReceipt, 0, int(CORRECTION_TYPES[operation]))
        try:
            self._tags(tags)
            for kind, amount in parts[:-1]:
                self._ask(c.Payment, 0, int(kind), amount)
        except OutcomeUnknown as error:
            # 99h and E8h never close a correction: whatever they did, nothing is fiscal yet.
            why = self.cancel_open()
            failure = NotFiscalized(
                f"a step of the correction failed on the line ({error}); "
                + ("it was cancelled, " if why is None else "")
                + "nothing was recorded: make it again"
            )
            raise (failure if why is None else left_open(failure, why)) from error
        except KktError as failure:
            why = self.cancel_open()  # nothing is fiscal before 4Ah
            if why is not None:
                left_open(failure, why)
            raise
        # From here the FN may form the correction: whatever fails, `Register` asks the FN.
        kind, amount = parts[-1]
        self._ask(c.CloseReceipt, 0, int(kind), amount)
        return self._formed()

    def cash_in(self, amount: int) -> None:
        self._enter(Mode.REGISTRATION)
        self._ask(c.CashIn, 0, amount)

    def cash_out(self, amount: int) -> None:
        self._enter(Mode.REGISTRATION)
        self._ask(c.CashOut, 0, amount)

    def print_text(self, text: str) -> None:
        for line in text.splitlines() or [""]:
            self._ask(c.PrintLine, line[:LINE_WIDTH])

    def cut(self, *, partial: bool = False) -> None:
        self._ask(c.Cut, partial)

    def continue_print(self) -> None:
        # ATOL registers finish a document interrupted by a paper end on their own once paper is
        # loaded; there is nothing to send (libfptr's continuePrint is for its own document
        # queue).  Report a printer still without paper, as Shtrih's B0h would.
        if not self.status().paper:
            raise KktError(
                "the printer still has no paper: load paper, close the cover, then run "
                "`kkt continue` again"
            )

    def set_datetime(self, when: dt.datetime) -> None:
        self._ask(c.SetDateTime, when.replace(microsecond=0))

    # -- the receipt's steps ----------------------------------------------------------------------

    def receipt_open(self) -> bool:
        return self._status().receipt_state != 0

    def open_receipt_fits(self, receipt: Receipt | None) -> bool | None:
        """3Fh: its receipt state is the open receipt's type (`ReceiptType`), and its sum --
        ATOL counts no items -- must be 0: an empty receipt of this sale's type."""
        status = self._status()
        if status.receipt_state == 0:
            return None
        kind = None if receipt is None else int(RECEIPT_TYPES[receipt.operation])
        return status.receipt_sum == 0 and kind in (None, status.receipt_state)

    def open_receipt(self, receipt: Receipt) -> None:
        self._enter(Mode.REGISTRATION)
        receipt_type = int(RECEIPT_TYPES[receipt.operation])
        self._open_once(c.OpenReceipt(self.access_password, 0, receipt_type), receipt)
        tags: TlvList = [(1055, int(receipt.tax_system))]
        if receipt.cashier:
            tags.append((1021, receipt.cashier))
        if receipt.buyer_contact:
            tags.append((1008, receipt.buyer_contact))
        tags.extend(receipt.extra)  # type: ignore[arg-type]
        self._tags(tags)

    def add_item(self, receipt: Receipt, index: int, subtotal: int) -> None:
        item = receipt.items[index]
        thousandths = Decimal(item.quantity) * 1000
        if thousandths != thousandths.to_integral_value():
            raise CannotSend(f"ATOL takes quantities to 0.001, not {item.quantity}")
        item_tags: TlvList = item.tags  # type: ignore[assignment]
        self._begin_item(item_tags)
        end = c.EndItem(
            self.access_password,
            0,
            item.price,
            int(thousandths),
            item.total,
            TAX_TYPES[item.vat],
            0,  # the register computes the item's tax
            item.department,
            item.payment_subject,
            item.payment_method,
            0,
            0,
            item.name,
        )
        last = index == len(receipt.items) - 1
        where = f"item {index + 1} ({item.name!r})"
        for _ in range(ITEM_TRIES):
            try:
                if last:
                    # The subtotal check (`Register`) asks 3Fh right after the last item.
                    self._follow(end, c.GetStatus(self.access_password))
                self.raw(end)
                return
            except (TransportError, OutcomeUnknown) as lost:
                try:
                    now = self.subtotal()
                except (TransportError, BadAnswer) as unread:
                    raise item_fate_unread(where, lost, unread) from unread
                if now == subtotal + item.total and item.total:
                    return  # taken; only its reply was lost
                if now != subtotal or not item.total:
                    # 3Fh counts no items: a free item's fate cannot be told.
                    raise NotFiscalized(
                        f"{where}: its reply was lost, and the open receipt holds {now} kopecks, "
                        f"expected {subtotal} or {subtotal + item.total}"
                        + (" (a free item's fate cannot be told)" if not item.total else "")
                        + f"; {CANCELLED}: sell it again"
                    ) from None
                self._begin_item(item_tags)  # the item again, with its tags
        raise TransportError(
            f"the register would not take {where}: sent {ITEM_TRIES} times, the line failed it "
            f"each time; {CANCELLED}: sell it again when the line is sound"
        )

    def _begin_item(self, tags: TlvList) -> None:
        """EAh starts an item (sent again, it starts it afresh: its tags are gone), E8h its tags."""
        self._ask(c.BeginItem, 0, 1)
        self._tags(tags)

    def subtotal(self) -> int:
        return self._status().receipt_sum

    def pay(self, receipt: Receipt) -> None:
        """99h for every payment but the last kind, which the closing 4Ah carries."""
        for kind, amount in _payments(receipt)[:-1]:
            try:
                self._ask(c.Payment, 0, int(kind), amount)
            except OutcomeUnknown as error:
                # 99h never closes a receipt: whatever it did, nothing is fiscal yet, and the
                # receipt is cancelled on the way out.
                raise NotFiscalized(
                    f"a payment's reply was lost ({error}); {CANCELLED}: sell it again"
                ) from error

    def close_receipt(self, receipt: Receipt) -> results.Formed:
        kind, amount = _payments(receipt)[-1]
        close = c.CloseReceipt(self.access_password, 0, int(kind), amount)
        # The document's record (91h 34h) is read right after the closing: its Add goes with it.
        self._follow(close, c.ReadLastDocument(self.access_password))
        try:
            self.raw(close)
        except DeviceError as refusal:
            # E7h ("bad FN command parameters") does not say which: the registration does.
            cause = registration_mismatch(self, receipt) if refusal.code == 0xE7 else None
            if cause is None:
                raise
            raise DeviceError(
                f"the register refused the receipt (ATOL error {refusal.code:#04x}): {cause}; "
                "nothing was fiscalized, fix the receipt and sell it again",
                code=refusal.code,
                vendor=self.vendor,
            ) from None
        return self._formed()

    def cancel_receipt(self) -> None:
        if self.receipt_open():
            self._cancel()

    def _cancel(self) -> None:
        self._enter(Mode.REGISTRATION)
        self._ask(c.CancelReceipt)


def _payments(receipt: Receipt) -> list[tuple[PaymentType, int]]:
    return _paid_parts(receipt.payments)


def _paid_parts(p: Payments) -> list[tuple[PaymentType, int]]:
    paid = [
        (PaymentType.ELECTRONIC, p.electronic),
        (PaymentType.PREPAID, p.prepaid),
        (PaymentType.CREDIT, p.credit),
        (PaymentType.OTHER, p.other),
        (PaymentType.CASH, p.cash),  # last: only cash may exceed what is due (change)
    ]
    return [pair for pair in paid if pair[1]] or [(PaymentType.CASH, 0)]


def _document_info(number: int, kind: int, tlv: TlvList) -> results.DocumentInfo:
    """The short record of a document from its own tags (1040, 1012, 1077, 1054, 1020, 1038)."""
    body = tlv
    if len(tlv) == 1 and isinstance(tlv[0][1], list):
        body = tlv[0][1]  # the document's STLV wrapper
    found = find(body, 1040)
    if found is not None and found != number:
        raise BadAnswer(f"asked for document {number}, the FN sent document {found!r}")
    when = find(body, 1012)
    sign = find(body, 1077)
    operation = find(body, 1054)
    total = find(body, 1020)
    shift = find(body, 1038)
    return results.DocumentInfo(
        number=number,
        type=kind,
        when=when if isinstance(when, dt.datetime) else None,
        fiscal_sign=int.from_bytes(sign[-4:], "big") if isinstance(sign, bytes) else 0,
        ofd_confirmed=False,  # not in the document itself; ATOL's A4h has no cheap query for it
        operation=operation if isinstance(operation, int) else None,
        total=_kopecks(total),
        shift_number=shift if isinstance(shift, int) else None,
    )


def _kopecks(value: object) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return int(value * 100)
    return None
