"""The vendor-neutral register: what every personality does the same way, whatever its protocol.

`RegisterModel` holds the FN, the settings, the clock, the printer, the receipt being built, the
lines a paper end interrupted and the operator at the keyboard, and offers the register's actions
as public methods: shifts, receipts, corrections, cash in and out, reports, printing, the clock.
A personality (`emulator.shtrih`, `emulator.atol`) decodes its protocol's commands, checks what
is its own business (passwords, modes) and calls these methods.

A method that cannot be carried out raises `Refusal` with a `Reason`; each personality translates
the reason into its protocol's error code.  Three other failures pass through unchanged, and a
personality maps them as well: `FnError` (the FN refused: nothing was written), the printer's
`PaperOut` (raised before anything fiscal happens), and `TlvError` for tags that do not parse.

Once the FN has formed a document, nothing fails any more: a paper end while printing it keeps the
unprinted lines for "continue printing", as a real register does.

The cash in the drawer is not stored: it is the FN's cash counters (which survive any crash with
the archive) plus the cash deposited and withdrawn (kept in the settings).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from kkt.protocols.ffd import (
    DocumentType,
    LifePhase,
    Payments,
    QrData,
    TlvList,
    WorkMode,
    qr_string,
)
from kkt.protocols.ffd.marking import item_check_label

from .clock import Clock
from .correction import BY_ORDER, basis_members, complete_correction, correction_kind
from .fn import FiscalStorage, FnCode, FnError, Formed, Registration, VatSums, Verification
from .fn.marking import CheckedCode
from .printer import CUT_LINE, PARTIAL_CUT_LINE, PaperOut, Printer
from .receipt import Item, ReceiptBuilder
from .settings import RegisterSettings

if TYPE_CHECKING:
    from .ofd.oism import Oism

SHIFT_LIMIT = dt.timedelta(hours=24)

KKT_VERSION = "1.0"  # tag 1188, the register's version as its reports name it
FNS_SITE = "www.nalog.gov.ru"  # tag 1060

OPERATOR, ADMIN, SYSADMIN = 1, 29, 30  # operator numbers: cashiers 1..28, then the two admins

OPERATION_NAMES = {1: "ПРИХОД", 2: "ВОЗВРАТ ПРИХОДА", 3: "РАСХОД", 4: "ВОЗВРАТ РАСХОДА"}


class Releasable(Protocol):
    """What holds the model's state directory (`kkt.emulator.state.StateLock`)."""

    def release(self) -> None: ...


class Reason(enum.Enum):
    """Why the register refuses, in no protocol's terms (each personality has its own codes)."""

    SHIFT_OPEN = "the shift is open"
    SHIFT_CLOSED = "no shift is open"
    SHIFT_EXPIRED = "the shift is over 24 hours old"
    RECEIPT_OPEN = "a receipt is open"
    NO_RECEIPT = "no receipt is open"
    WRONG_RECEIPT_TYPE = "the operation does not fit the open receipt's type"
    EMPTY_RECEIPT = "the receipt has no items"
    NEGATIVE_TOTAL = "the receipt total is negative"
    PAYMENT_SHORT = "payments are less than the total"
    NON_CASH_OVERPAID = "only cash can be overpaid"
    NEEDS_CONTACT = "a fiscal-only register needs the buyer's contact"
    NO_CASH = "not enough cash in the drawer"
    BAD_PARAMETER = "a parameter is out of range"
    NOT_SUPPORTED = "not supported by this emulator"
    PRINT_PENDING = "a document waits for continue-print"
    NO_PAPER = "no paper"
    WRONG_PASSWORD = "wrong password"
    NO_DOCUMENT = "no document is being formed"
    READ_ONLY = "the value cannot be changed"
    DATE_MISMATCH = "the date does not match the one being set"
    TAX_SYSTEM = "the tax system is not one the register is registered for"


class Refusal(Exception):
    """The register refuses: nothing was done.  ``text`` says what to do about it."""

    def __init__(self, reason: Reason, text: str = "") -> None:
        super().__init__(text or reason.value)
        self.reason = reason
        self.text = text or reason.value


@dataclass(frozen=True, slots=True)
class MarkCheck:
    """A marking code checked by the FN and, unless autonomous, by the OISM (Shtrikh FF61)."""

    result: int  # 2004
    reason: int  # why not checked (B1h)
    kind: int  # 2100
    online: int | None  # None autonomous; 0 answered; 0x20 the FN refused it; 0xFF no answer
    online_reason: int  # with 0x20: the B6h reason
    verdict: int  # 2106 as B2h would save it
    server_tags: bytes  # the OISM's TLVs


NO_ANSWER = 0xFF  # FF61's "the server did not answer in time"


@dataclass(frozen=True, slots=True)
class ReceiptClosed:
    """A receipt formed in the FN: its document, and the change given in cash."""

    formed: Formed
    change: int


def money(kopecks: int) -> str:
    return f"{kopecks // 100}.{kopecks % 100:02d}"


class RegisterModel:
    """One emulated register's state and actions.  Not thread-safe: the shells serialise calls."""

    def __init__(
        self, storage: FiscalStorage, settings: RegisterSettings, clock: Clock, *, fiscal_only: bool
    ) -> None:
        self.fn = storage
        self.settings = settings
        self.clock = clock
        self.fiscal_only = fiscal_only
        self.printer = Printer(present=not fiscal_only)
        self.receipt: ReceiptBuilder | None = None
        self.pending_print: list[str] = []  # lines a paper end interrupted: continue_print
        self.last_document: list[str] = []  # the last fiscal document's lines, for a copy
        self.operator = SYSADMIN  # who signs documents (tag 1021); the personality sets it
        self.owner: Releasable | None = None  # the state directory's lock, released by `close`
        # Marking: the emulated OISM the register asks (switched by the control channel), and the
        # code bound (FF67) to the next item added.
        from .ofd.oism import Oism  # here: the ofd package imports the shells, which import us

        self.oism: Oism = Oism(clock.now)
        self.oism.circulation.watch(storage.marking)  # it learns this FN's sales as formed
        self.pending_mark: bytes | None = None

    # -- state -------------------------------------------------------------------------------------

    @property
    def shift_open(self) -> bool:
        return self.fn.state.shift_open

    @property
    def shift_expired(self) -> bool:
        opened = self.fn.state.shift_opened_at
        return opened is not None and self.clock.now() - opened > SHIFT_LIMIT

    @property
    def phase(self) -> LifePhase:
        return self.fn.status().phase

    def cash_in_drawer(self) -> int:
        blocks = self.fn.state.total_counters.operations
        sales = blocks[0].cash + blocks[3].cash - blocks[1].cash - blocks[2].cash
        return self.settings.cash_in_total - self.settings.cash_out_total + sales

    def document_number(self) -> int:
        """Through number of printed documents: fiscal ones and cash in/out."""
        return self.fn.state.last_number + self.settings.cash_operations

    def cashier(self) -> str:
        return self.settings.operator_name(self.operator)

    def require_idle_printer(self) -> None:
        if self.pending_print:
            raise Refusal(Reason.PRINT_PENDING, "a document waits for continue-print")

    def require_shift_for_sale(self) -> None:
        if not self.shift_open:
            raise Refusal(Reason.SHIFT_CLOSED, "open a shift first")
        if self.shift_expired:
            raise Refusal(
                Reason.SHIFT_EXPIRED, "the shift is over 24 hours old: close it with a Z report"
            )

    def require_receipt(self) -> ReceiptBuilder:
        if self.receipt is None:
            raise Refusal(Reason.NO_RECEIPT, "no receipt is open")
        return self.receipt

    def require_no_receipt(self, text: str = "a receipt is open") -> None:
        if self.receipt is not None:
            raise Refusal(Reason.RECEIPT_OPEN, text)

    # -- shifts and reports ------------------------------------------------------------------------

    def open_shift(self, tags: TlvList) -> Formed:
        if self.shift_open:
            raise Refusal(Reason.SHIFT_OPEN, "the shift is already open")
        self.require_idle_printer()
        self.printer.check()
        # 1188/1189 (the register's version and FFD version): mandatory in the shift-open report
        # of FFD 1.05 and 1.2 (fact sheet §1.4)
        tags = self.with_cashier([*self.version_tags(), *tags])
        formed = self.fn.open_shift(tags)
        self.settings.start_shift()
        self._print_shift_report("ОТЧЕТ ОБ ОТКРЫТИИ СМЕНЫ", formed, ("КАССИР:", _signer(tags)))
        return formed

    def close_shift(self, tags: TlvList) -> Formed:
        self.require_no_receipt("a receipt is open: close or cancel it first")
        if not self.shift_open:
            raise Refusal(Reason.SHIFT_CLOSED, "the shift is not open")
        self.require_idle_printer()
        self.printer.check()
        receipts = self.fn.state.receipt_number
        # 1009/1187: mandatory in an FFD 1.2 shift-close report (fact sheet §1.4)
        formed = self.fn.close_shift(self.with_cashier(self.place_tags(tags)))
        self._print_shift_report(
            "ОТЧЕТ О ЗАКРЫТИИ СМЕНЫ",
            formed,
            ("ЧЕКОВ ЗА СМЕНУ:", str(receipts)),
            ("НАЛИЧНЫХ В КАССЕ:", money(self.cash_in_drawer())),
        )
        return formed

    def _print_shift_report(self, title: str, formed: Formed, *pairs: tuple[str, str]) -> None:
        p = self.printer
        self._print(
            [
                p.centered(self.settings.user_name),
                p.centered(title),
                p.pair("СМЕНА:", str(formed.shift_number)),
                *(p.pair(name, value) for name, value in pairs),
                *self._document_footer(formed.number, formed.fiscal_sign),
            ]
        )

    def x_report(self) -> None:
        """Print the shift's totals (no fiscal document; a paper end raises `PaperOut`)."""
        self.require_idle_printer()
        p = self.printer
        lines = [p.centered("X-ОТЧЕТ"), p.pair("СМЕНА:", str(self.fn.state.shift_number))]
        for number, block in enumerate(self.fn.state.shift_counters.operations, start=1):
            lines.append(p.pair(f"{OPERATION_NAMES[number]} ({block.count}):", money(block.total)))
        lines.append(p.pair("НАЛИЧНЫХ В КАССЕ:", money(self.cash_in_drawer())))
        self.printer.print_lines(lines)

    def state_report(self, tags: TlvList) -> Formed:
        """The FN's report on the current state of settlements (unsent documents)."""
        self.require_no_receipt()
        self.printer.check()
        formed = self.fn.state_report(tags)
        p = self.printer
        self._print(
            [
                p.centered("ОТЧЕТ О ТЕКУЩЕМ СОСТОЯНИИ РАСЧЕТОВ"),
                p.pair("НЕПЕРЕДАННЫХ ФД:", str(self.fn.ofd_queue().unsent)),
                *self._document_footer(formed.number, formed.fiscal_sign),
            ]
        )
        return formed

    def reregister(self, registration: Registration, reasons: int) -> Formed:
        """A re-registration report (1205 ``reasons``) with the register's own tags."""
        self.require_no_receipt()
        kkt = registration_tags(self.settings, registration, self.cashier())
        formed = self.fn.reregister(registration, reasons, kkt)
        self._print_registration("ОТЧЕТ ОБ ИЗМЕНЕНИИ ПАРАМЕТРОВ РЕГИСТРАЦИИ", formed)
        return formed

    def close_fn(self) -> Formed:
        """The FN-close report: after it the FN forms no more documents."""
        self.require_no_receipt()
        self.printer.check()
        # 1048, 1021, 1009, 1187: mandatory (1.2) or conditional (1.05), fact sheet §1.4
        kkt = self.with_cashier(self.place_tags([(1048, self.settings.user_name)]))
        formed = self.fn.close_fn(kkt)
        self._print_registration("ОТЧЕТ О ЗАКРЫТИИ ФН", formed)
        return formed

    def _print_registration(self, title: str, formed: Formed) -> None:
        p = self.printer
        self._print(
            [
                p.centered(self.settings.user_name),
                p.centered(title),
                *self._document_footer(formed.number, formed.fiscal_sign),
            ]
        )

    # -- receipts ----------------------------------------------------------------------------------

    def open_receipt(self, receipt_type: int) -> ReceiptBuilder:
        """Open a receipt: ``receipt_type`` 0 sale, 1 buy, 2 sale return, 3 buy return."""
        self.require_no_receipt("a receipt is already open")
        self.require_shift_for_sale()
        self.require_idle_printer()
        self.receipt = ReceiptBuilder(receipt_type)
        return self.receipt

    def receipt_for(self, receipt_type: int) -> ReceiptBuilder:
        """The open receipt, or a new one (registers whose item command opens the receipt)."""
        self.require_shift_for_sale()
        self.require_idle_printer()
        if self.receipt is None:
            self.receipt = ReceiptBuilder(receipt_type)
        elif self.receipt.receipt_type != receipt_type:
            raise Refusal(
                Reason.WRONG_RECEIPT_TYPE, "this operation does not fit the open receipt's type"
            )
        return self.receipt

    def add_item(self, item: Item) -> None:
        self.require_receipt().items.append(item)

    def add_receipt_tags(self, tags: TlvList) -> None:
        """Receipt-level tags (buyer contact 1008, cashier 1021, ...) for the open receipt."""
        self.require_receipt().tags += tags

    def add_item_tags(self, tags: TlvList) -> None:
        """Tags bound to the last item of the open receipt."""
        receipt = self.require_receipt()
        if not receipt.items:
            raise Refusal(
                Reason.BAD_PARAMETER, "item tags bind to the last item; add an item first"
            )
        receipt.items[-1].extra += tags

    def subtotal(self) -> int:
        return self.require_receipt().total

    def cancel_receipt(self) -> None:
        self.require_receipt()
        self.receipt = None
        self.pending_mark = None

    # -- marking codes -----------------------------------------------------------------------------

    def check_mark(
        self, code: bytes, planned: int, quantity: Decimal | None = None, measure: int | None = None
    ) -> MarkCheck:
        """Check ``code`` in the FN (B1h) and, unless autonomous, with the OISM (B5h, the network,
        B6h): what a register's one-command check does.  The code then waits for `decide_mark`."""
        self.require_shift_for_sale()
        marking = self.fn.marking
        local = marking.check(code)
        online: int | None = None
        reason = 0
        tags = b""
        if not marking.autonomous:
            try:
                request = marking.request(planned, quantity, measure)
            except FnError:
                marking.abandon()  # a request refused (2003 ...): the check is dropped whole
                raise
            answer = self.oism.answer(request)
            if answer is None:
                online = NO_ANSWER
            else:
                try:
                    marking.answer(answer)
                    online, tags = 0, answer[4:]
                except FnError as error:
                    if error.code is not FnCode.OFD_REPLY_REJECTED:
                        raise
                    online, reason = int(error.code), error.reason
        return MarkCheck(
            local.result, local.reason, local.kind, online, reason, marking.current_verdict(), tags
        )

    def decide_mark(self, accept: bool) -> int:
        """Save (accept) or drop the code `check_mark` checked; its 2106."""
        return self.fn.marking.decide(accept)

    def clear_marks(self) -> None:
        """Forget every checked code (refused while a receipt is open)."""
        self.fn.marking.clear(receipt_open=self.receipt is not None)
        self.pending_mark = None

    def bind_mark(self, code: bytes) -> CheckedCode:
        """Bind ``code`` to the next item added: it must be checked and accepted, and -- in a
        sale -- never sold before (the FN's B7h refusals, 3Eh)."""
        self.require_shift_for_sale()
        operation = self.receipt.operation if self.receipt is not None else 1
        entry = self.fn.marking.require_bindable(code, operation)
        self.pending_mark = code
        return entry

    def _mark_labels(self, receipt: ReceiptBuilder) -> list[str]:
        """What each item prints before its name: its 2106 as [М+] / [М-] / [М] when marked."""
        labels = []
        for item in receipt.items:
            entry = None if item.mark_code is None else self.fn.marking.state.find(item.mark_code)
            labels.append("" if entry is None else item_check_label(entry.verdict) + " ")
        return labels

    def take_mark(self, item: Item) -> Item:
        """``item`` with the code `bind_mark` bound, if any (then forgotten)."""
        if self.pending_mark is not None:
            item.mark_code, self.pending_mark = self.pending_mark, None
        return item

    def close_receipt(
        self,
        paid: Payments,
        rounding: int = 0,
        taxes: VatSums | None = None,
        tax_system: int = 0,
    ) -> ReceiptClosed:
        """Form the open receipt in the FN and print it; overpaid cash comes back as change.

        ``tax_system`` is one bit of tag 1055, or 0 for the lowest registered system.
        """
        receipt = self.require_receipt()
        if not receipt.items:
            raise Refusal(Reason.EMPTY_RECEIPT, "the receipt has no items")
        if not 0 <= rounding <= 99:
            raise Refusal(Reason.BAD_PARAMETER, "rounding is at most 99 kopecks")
        due = receipt.total - rounding
        if due < 0:
            raise Refusal(Reason.NEGATIVE_TOTAL, "the receipt total is negative")
        if paid.total < due:
            raise Refusal(
                Reason.PAYMENT_SHORT,
                f"payments {money(paid.total)} are less than the total {money(due)}",
            )
        change = paid.total - due
        if change > paid.cash:
            raise Refusal(
                Reason.NON_CASH_OVERPAID, "only cash can be overpaid (change is given in cash)"
            )
        tax_system = self.tax_system(tax_system)
        if self.fiscal_only and not receipt.has_tag(1008):
            raise Refusal(
                Reason.NEEDS_CONTACT,
                "a fiscal-only register sends the receipt electronically: "
                "give the buyer's phone or e-mail (tag 1008) first",
            )
        self.printer.check()
        payments = replace(paid, cash=paid.cash - change)
        tags = self.with_cashier(self.place_tags(self.mode_tags(receipt.tags)))
        tags = [*tags, (1055, tax_system), *receipt.items_tlv()]
        labels = self._mark_labels(receipt)  # read before the receipt clears the FN's table
        formed = self.fn.receipt(
            receipt.operation, due, payments, taxes or receipt.vat_sums(), tags
        )
        self.receipt = None
        self.pending_mark = None
        self._print_receipt(receipt, formed, due, paid, change, _signer(tags), labels)
        return ReceiptClosed(formed, change)

    def correction(
        self,
        operation: int,
        total: int,
        tags: TlvList,
        tax_system: int = 0,
        payments: Payments | None = None,
    ) -> Formed:
        """A correction receipt of ``operation`` (tag 1054) for ``total`` kopecks, paid as
        ``payments`` say (None: all in cash, what a command that carries only a sum means).

        ``tax_system`` is one bit of tag 1055, or 0 for the lowest registered system.
        """
        paid = Payments(cash=total) if payments is None else payments
        if paid.total != total:
            # A correction gives no change: its payments are its sum (tags 1031..1217 add up to
            # 1020), so a mismatch is a host's mistake, refused before anything is formed.
            raise Refusal(
                Reason.BAD_PARAMETER,
                f"the correction's payments {money(paid.total)} differ from its sum {money(total)}",
            )
        self.require_no_receipt()
        self.require_shift_for_sale()
        self.printer.check()
        registration = self.fn.state.registration
        assert registration is not None  # a shift is open: the FN is registered
        if correction_kind(tags) == BY_ORDER and not any(
            tag == 1179 for tag, _ in basis_members(tags)
        ):
            raise Refusal(
                Reason.BAD_PARAMETER,
                "a correction by order (1173 = 1) needs the order's number: send 1174 with 1179",
            )
        tags = self.with_cashier(self.place_tags(self.mode_tags(tags)))
        tags = complete_correction(tags, registration.ffd_version, self.clock.now(), total)
        tags.append((1055, self.tax_system(tax_system)))
        formed = self.fn.receipt(
            operation,
            total,
            paid,
            VatSums(no_vat=total),
            tags,
            correction=True,
        )
        p = self.printer
        lines = [
            p.centered("КАССОВЫЙ ЧЕК КОРРЕКЦИИ"),
            p.centered(OPERATION_NAMES[operation]),
            p.pair("ИТОГ", f"={money(total)}"),
        ]
        if paid.cash != total:  # a correction wholly in cash prints its sum alone, as before
            for name, amount in _payment_lines(paid):
                lines.append(p.pair(name, f"={money(amount)}"))
        self._print(
            [
                *lines,
                *self._document_footer(formed.number, formed.fiscal_sign),
                p.qr_code(self._formed_qr(formed, total, operation)),
            ]
        )
        return formed

    def tax_system(self, requested: int) -> int:
        registered = self.fn.state.registration.tax_systems if self.fn.state.registration else 0
        if requested == 0:  # not given: the lowest registered system
            return registered & -registered
        if requested & (requested - 1) or not requested & registered:
            raise Refusal(
                Reason.TAX_SYSTEM,
                f"tax system {requested:#x} is not one of the registered {registered:#x}",
            )
        return requested

    def place_tags(self, tags: TlvList) -> TlvList:
        present = {tag for tag, _ in tags}
        extra: TlvList = [
            (tag, value)
            for tag, value in ((1009, self.settings.address), (1187, self.settings.place))
            if tag not in present
        ]
        return [*extra, *tags]

    def mode_tags(self, tags: TlvList) -> TlvList:
        """``tags`` with the receipt tags the registered modes call for, unless given: the
        automat's number (1036) in automatic mode; the Internet flag (1108) and the sender's
        e-mail (1117) for an Internet-only register (fact sheet §1.4, §7.2)."""
        registration = self.fn.state.registration
        if registration is None:
            return tags
        mode = WorkMode(registration.work_mode)
        wanted: TlvList = []
        if WorkMode.AUTOMATIC in mode:
            wanted.append((1036, self.settings.machine_number))
        if WorkMode.INTERNET in mode:
            wanted += [(1108, 1), (1117, self.settings.sender_email)]
        present = {tag for tag, _ in tags}
        return [*(item for item in wanted if item[0] not in present), *tags]

    def version_tags(self) -> TlvList:
        registration = self.fn.state.registration
        ffd = registration.ffd_version if registration else self.fn.state.config.max_ffd
        return [(1188, KKT_VERSION), (1189, ffd)]

    def with_cashier(self, tags: TlvList) -> TlvList:
        if any(tag == 1021 for tag, _ in tags):
            return tags
        return [(1021, self.cashier()), *tags]

    def qr(self, number: int) -> str:
        """The QR string of receipt ``number`` (also what a fiscal-only register hands out)."""
        record = self.fn.record(number)
        if record.kind not in (DocumentType.RECEIPT, DocumentType.CORRECTION_RECEIPT):
            raise Refusal(Reason.BAD_PARAMETER, f"document {number} is not a receipt")
        return self._qr_of(record.when, record.total, number, record.fiscal_sign, record.operation)

    def _qr_of(self, when: dt.datetime, total: int, number: int, sign: int, operation: int) -> str:
        return qr_string(QrData(when, total, self.fn.serial, number, sign, operation))

    def _formed_qr(self, formed: Formed, total: int, operation: int) -> str:
        """The QR string of a receipt just formed -- from what forming it returned, without
        reading the archive back (the printout is on the closing command's critical path)."""
        return self._qr_of(formed.when, total, formed.number, formed.fiscal_sign, operation)

    # -- cash --------------------------------------------------------------------------------------

    def cash_in(self, amount: int) -> None:
        self._cash_operation(amount, deposit=True)

    def cash_out(self, amount: int) -> None:
        if amount > self.cash_in_drawer():
            raise Refusal(Reason.NO_CASH, "not enough cash in the drawer")
        self._cash_operation(amount, deposit=False)

    def _cash_operation(self, amount: int, *, deposit: bool) -> None:
        self.require_no_receipt()
        if not self.shift_open:
            raise Refusal(Reason.SHIFT_CLOSED, "open a shift first")
        self.require_idle_printer()
        self.printer.check()
        self.settings.cash_operation(amount, deposit=deposit)
        p = self.printer
        self.printer.print_lines(
            [
                p.centered("ВНЕСЕНИЕ" if deposit else "ВЫПЛАТА"),
                p.pair("СУММА", f"={money(amount)}"),
            ]
        )

    # -- printing ----------------------------------------------------------------------------------

    def print_lines(self, lines: list[str]) -> None:
        """Non-fiscal text: refused while a document waits; a paper end raises `PaperOut`."""
        self.require_idle_printer()
        self.printer.print_lines(lines)

    def cut(self, *, partial: bool) -> None:
        self.print_lines([PARTIAL_CUT_LINE if partial else CUT_LINE])

    def continue_print(self) -> None:
        """Print what a paper end interrupted (nothing to do when nothing waits)."""
        if self.pending_print:
            lines, self.pending_print = self.pending_print, []
            self._print(lines)
            if self.pending_print:
                raise Refusal(Reason.NO_PAPER, "paper ran out again")

    def repeat_document(self) -> bool:
        """Print the last fiscal document again (a copy: nothing fiscal happens); False when
        none was printed since power-up.  A paper end raises `PaperOut`."""
        if not self.last_document:
            return False
        self.require_idle_printer()
        self.printer.print_lines(self.last_document)
        return True

    # -- clock -------------------------------------------------------------------------------------

    def set_clock(self, when: dt.datetime) -> None:
        setter = getattr(self.clock, "set", None)
        if setter is None:
            raise Refusal(Reason.NOT_SUPPORTED, "this emulator's clock cannot be set")
        setter(when)
        self.settings.remember_clock(self.clock)

    # -- for the control channel -------------------------------------------------------------------

    def power_loss(self) -> None:
        """Power fails: what was being built is gone (the FN had formed nothing of it yet).

        The FN's archive and everything fiscalized stay; the open receipt and an interrupted
        print are lost, and the register comes back idle, as a real one does.
        """
        self.receipt = None
        self.pending_mark = None
        self.pending_print = []
        self.last_document = []
        self.fn.reset_exchange()  # the FN's exchange RAM too; its OFD queue is in the archive

    def status_text(self) -> dict[str, object]:
        """The state a tester reads through the control channel (the personality adds its
        modes and last error)."""
        fn_status = self.fn.status()
        return {
            "phase": int(fn_status.phase),
            "shift_open": fn_status.shift_open,
            "last_document": fn_status.last_number,
            "unsent": self.fn.ofd_queue().unsent,
            "now": self.clock.now().isoformat(),
            "paper": self.printer.paper,
            "cover_open": self.printer.cover_open,
            "marking": {
                "step": int((marking := self.fn.marking.status()).step),
                "checked": marking.saved,
                "notifications": marking.queued,
            },
        }

    def tape(self) -> list[str]:
        return list(self.printer.tape)

    def verify(self) -> Verification:
        """Recompute the FN archive: numbering, signs, counters."""
        return self.fn.verify()

    def close(self) -> None:
        self.fn.close()
        if self.owner is not None:
            self.owner.release()

    # -- internals ---------------------------------------------------------------------------------

    def _print(self, lines: list[str]) -> None:
        """Print a fiscal document's lines: a paper end keeps the rest for later, never fails."""
        self.last_document = lines
        try:
            self.printer.print_lines(lines)
        except PaperOut as exc:
            self.pending_print = exc.remaining or lines

    def _document_footer(self, number: int, sign: int) -> list[str]:
        p = self.printer
        return [
            p.pair("ФН:", self.fn.serial),
            p.pair("ФД:", str(number)),
            p.pair("ФП:", str(sign)),
        ]

    def _print_receipt(
        self,
        receipt: ReceiptBuilder,
        formed: Formed,
        due: int,
        paid: Payments,
        change: int,
        cashier: str,
        labels: list[str] | None = None,
    ) -> None:
        p = self.printer
        lines = [
            p.centered(self.settings.user_name),
            p.centered(self.settings.address),
            p.centered("КАССОВЫЙ ЧЕК"),
            p.centered(OPERATION_NAMES[receipt.operation]),
            p.pair(f"ЧЕК: {formed.receipt_number}", formed.when.strftime("%d.%m.%y %H:%M")),
        ]
        for index, item in enumerate(receipt.items):
            label = labels[index] if labels else ""
            lines.append((label + item.name)[: p.width])
            lines.append(
                p.pair(
                    f"  {item.quantity.normalize():f} x {money(item.price)}",
                    f"={money(item.amount)}",
                )
            )
        lines += [p.pair("ИТОГ", f"={money(due)}")]
        if paid.cash:
            lines.append(p.pair("НАЛИЧНЫМИ", f"={money(paid.cash)}"))
        if paid.electronic:
            lines.append(p.pair("БЕЗНАЛИЧНЫМИ", f"={money(paid.electronic)}"))
        if change:
            lines.append(p.pair("СДАЧА", f"={money(change)}"))
        lines += [
            p.pair("КАССИР:", cashier),
            *self._document_footer(formed.number, formed.fiscal_sign),
        ]
        lines.append(p.qr_code(self._formed_qr(formed, due, receipt.operation)))
        self._print(lines)


_PAYMENT_WORDS = (
    ("cash", "НАЛИЧНЫМИ"),
    ("electronic", "БЕЗНАЛИЧНЫМИ"),
    ("prepaid", "ПРЕДВАРИТЕЛЬНАЯ ОПЛАТА (АВАНС)"),
    ("credit", "ПОСЛЕДУЮЩАЯ ОПЛАТА (КРЕДИТ)"),
    ("other", "ИНАЯ ФОРМА ОПЛАТЫ"),
)


def _payment_lines(paid: Payments) -> list[tuple[str, int]]:
    """The payment kinds a document paid with, as the print form names them."""
    return [(word, getattr(paid, name)) for name, word in _PAYMENT_WORDS if getattr(paid, name)]


def registration_tags(
    settings: RegisterSettings, registration: Registration, cashier: str
) -> TlvList:
    """The register's own tags of a registration report: user, address, place, serial, cashier
    (1021, mandatory since FFD 1.05: fact sheet §1.4, yandex/ofd fiscalReport ``operator``), the
    register's version and FFD version (1188, 1189), and the conditional ones its modes call for:
    the OFD's name (1046) unless autonomous, the automat's number (1036) in automatic mode, the
    FNS site (1060) and the sender's e-mail (1117) for an Internet-only register."""
    mode = WorkMode(registration.work_mode)
    tags: TlvList = [
        (1048, settings.user_name),
        (1009, settings.address),
        (1187, settings.place),
        (1013, settings.serial),
        (1021, cashier),
        (1188, KKT_VERSION),
        (1189, registration.ffd_version),
    ]
    if not registration.autonomous:
        tags.append((1046, settings.ofd_name))
    if WorkMode.AUTOMATIC in mode:
        tags.append((1036, settings.machine_number))
    if WorkMode.INTERNET in mode:
        tags += [(1060, FNS_SITE), (1117, settings.sender_email)]
    return tags


def _signer(tags: TlvList) -> str:
    """The cashier a document names (tag 1021), as its printout shows it."""
    for tag, value in tags:
        if tag == 1021:
            return str(value)
    return ""
