"""``kkt status | info | fn | shift | report | sell … | cash | print | cut | datetime | doc(s) |
mark check``.

Each command asks the register through the driver's `Register` API and returns a JSON-ready
result (camelCase keys, as ATOL's JSON tasks and the FFD's JSON names have them) together with the
table a person sees.  The shapes are documented in the README ("The kkt command").
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import json
import sys
import textwrap
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from kkt.protocols.ffd import FnWarning, LifePhase
from kkt.protocols.ffd import find as tlv_find
from kkt.protocols.ffd import rows as tlv_rows
from kkt.protocols.ffd.marking import ItemCheck, PlannedStatus
from kkt.protocols.shtrih.models import LINE_WIDTHS as SHTRIH_WIDTHS
from kkt.render import RenderError
from rich.console import Console as RichConsole

from kkt import CorrectionBasis, Operation, Register
from kkt.errors import DeviceError, KktError, NotSupported, ReceiptRejected, WrongMode
from kkt.formats.atol_json import OPERATIONS, fiscal_params, receipt_from_atol
from kkt.journal import Journal
from kkt.ofd import OfdReceipt
from kkt.results import Document, FiscalResult

from .console import Output, grid, pairs, plural, show
from .render_cli import add_render_options, write_rendered
from .usage import UsageError

FNS_URL = "www.nalog.gov.ru"

# Characters per line (font 1) by (vendor, model number from FCh / A5h); a model not here: not
# known, and a fiscal-only model (АТОЛ 42ФС, 77) has no printer.  АТОЛ 30Ф (61) is unverified: no
# public source gives its width; 48 is what kkt.vendors.atol prints and the emulated printer holds.
# Shtrih's widths are the one table `kkt.protocols.shtrih.models` keeps for every layer.
LINE_WIDTH = {**{("shtrih", n): width for n, width in SHTRIH_WIDTHS.items()}, ("atol", 61): 48}

_PHASES = {
    0: "not configured",
    LifePhase.READY: "ready for registration",
    LifePhase.FISCAL: "fiscal mode",
    LifePhase.POST_FISCAL: "fiscal mode closed: sending the archive to the OFD",
    LifePhase.ARCHIVE: "archive only (replace the FN)",
}
_WARNINGS = {
    FnWarning.REPLACE_IN_3_DAYS: "replace the FN within 3 days",
    FnWarning.RESOURCE_ENDS_IN_30_DAYS: "FN resource ends within 30 days",
    FnWarning.MEMORY_90_PERCENT: "FN memory 90 % full",
    FnWarning.OFD_TIMEOUT: "OFD has not confirmed documents in time",
}
_RECEIPT_COMMANDS = {
    "sell": Operation.SELL,
    "return": Operation.SELL_RETURN,
    "buy": Operation.BUY,
    "buy-return": Operation.BUY_RETURN,
}
_CORRECTION_TYPES = {
    "sellCorrection": Operation.SELL,
    "sellReturnCorrection": Operation.SELL_RETURN,
    "buyCorrection": Operation.BUY,
    "buyReturnCorrection": Operation.BUY_RETURN,
}

# `kkt mark check --status` -> tag 2003.
_MARK_STATUSES = {
    "sold": PlannedStatus.PIECE_SOLD,
    "returned": PlannedStatus.PIECE_RETURNED,
    "sold-part": PlannedStatus.MEASURED_IN_SALE,
    "returned-part": PlannedStatus.MEASURED_RETURNED,
    "in-sale": PlannedStatus.PIECE_IN_SALE,
    "sold-measured": PlannedStatus.MEASURED_SOLD,
    "unchanged": PlannedStatus.UNCHANGED,
}
# Tag 2106's bits in words, bit 0 first.
_ITEM_CHECK_WORDS = (
    (ItemCheck.CODE_CHECKED, "the FN checked the code's crypto code"),
    (ItemCheck.CODE_POSITIVE, "the crypto code is valid"),
    (ItemCheck.STATUS_CHECKED, "ОИСМ checked the goods' status"),
    (ItemCheck.STATUS_CORRECT, "ОИСМ: the planned status is correct"),
    (ItemCheck.AUTONOMOUS, "checked by an autonomous register (no ОИСМ)"),
)
_GS_SPELLINGS = ("\\x1d", "\\x1D", "\\u001d", "<GS>", "<gs>", "^]", "{GS}")

# A command reports failure by raising (the exit code follows from the error): no status to return.
Command = Callable[[Register, argparse.Namespace, Output], None]


class MarkNotAccepted(KktError):
    """`kkt mark check`: a sale would not take the code (exit code 1); the check was printed."""


# -- parser -----------------------------------------------------------------------------------


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register the commands that talk to a register; ``common`` carries --url, --json ..."""

    def add(name: str, help_text: str, handler: Command) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name, help=help_text, description=help_text, parents=[common]
        )
        parser.set_defaults(handler=handler)
        return parser

    add("status", "mode, shift and its age, paper, cover, drawer, operator, clock", status)
    add("info", "model, serial, firmware, protocol, line width, FFD versions, RNM", info)
    add(
        "fn",
        "fiscal storage: phase, expiry, registrations, warnings, OFD queue, marking state",
        fn_info,
    )
    # `kkt mark check CODE`: `check` is a command of its own (its usage line reads
    # "kkt mark check [options] code"), so more marking commands can join it.
    marks: argparse.ArgumentParser = commands.add_parser(
        "mark",
        help="marked goods: `mark check CODE` asks whether a sale would take a code",
        description="Marked goods (маркировка).",
        parents=[common],
    )
    mark_actions = marks.add_subparsers(dest="action", required=True, metavar="ACTION")
    check_help = (
        "ask the FN and ОИСМ whether a sale would take the code (nothing is sold: the check is "
        "declined afterwards); exit 1 when it would not"
    )
    mark: argparse.ArgumentParser = mark_actions.add_parser(
        "check", help=check_help, description=check_help, parents=[common]
    )
    mark.set_defaults(handler=mark_command)
    mark.add_argument(
        "code",
        help="the code as scanned; write its GS separators as \\x1d, <GS> or ^] (or give - to "
        "read one line from stdin, as a scanner types it)",
    )
    mark.add_argument(
        "--status",
        choices=tuple(_MARK_STATUSES),
        default="sold",
        help="the planned status (tag 2003): sold (default), returned, sold-part, "
        "returned-part, in-sale, sold-measured, unchanged",
    )
    mark.add_argument(
        "--part", help="a part of one unit sold, NUMERATOR/DENOMINATOR (tags 1293/1294), e.g. 1/4"
    )
    mark.add_argument(
        "--offline-ok",
        action="store_true",
        help="count a check ОИСМ did not answer in time as accepted (as a sale allowed to)",
    )
    mark.add_argument(
        "--base64", action="store_true", help="CODE is the code in Base64 (as ATOL's JSON has it)"
    )
    shift = add("shift", "open or close (Z report) the shift", shift_command)
    shift.add_argument(
        "action",
        choices=("open", "close"),
        help="open: a new shift (its opening report); close: the Z report, ending it",
    )
    shift.add_argument("--cashier", help="the cashier's name (tag 1021)")
    report = add(
        "report", "print an X report (changes nothing) and show its figures", report_command
    )
    report.add_argument(
        "kind",
        choices=("x",),
        help="x: the X report, the open shift's figures so far (a Z report is `kkt shift close`)",
    )
    for name, operation in _RECEIPT_COMMANDS.items():
        receipt = add(
            name,
            f"fiscalize a {operation.name.lower().replace('_', ' ')} receipt from ATOL-style JSON",
            receipt_command,
        )
        receipt.add_argument("file", help="the receipt as ATOL JSON task, or - for stdin")
        receipt.add_argument(
            "--key", help="idempotency key: repeating it returns the first receipt"
        )
        receipt.add_argument(
            "--journal",
            type=Path,
            default=None,
            help="idempotency journal (default: ~/.local/state/kktkit/journal.sqlite with --key)",
        )
        receipt.add_argument(
            "--verify",
            action="store_true",
            help="read the document back after the sale and compare it with the receipt (a "
            "closing damaged on a serial line is reported, never 'fiscalized'; a few exchanges "
            "more)",
        )
        receipt.set_defaults(operation=operation)
    correction = add("correction", "a correction receipt from ATOL-style JSON", correction_command)
    correction.add_argument("file", help="the correction task as JSON, or - for stdin")
    correction.add_argument(
        "--verify",
        action="store_true",
        help="read the correction's document back and compare it with the correction made "
        "(type, sum, payments, 1173/1174: a closing damaged on a serial line is reported, never "
        "'fiscalized'; a few exchanges more)",
    )
    cash = add(
        "cash",
        "the cash in the drawer; `cash in|out SUM` puts cash in or takes it out",
        cash_command,
    )
    cash.add_argument(
        "direction",
        nargs="?",
        choices=("in", "out"),
        help="in: put SUM into the drawer; out: take it out (none: show the cash in it)",
    )
    cash.add_argument("sum", nargs="?", help="roubles, e.g. 1500 or 1500.50")
    printing = add("print", "print lines of text", print_command)
    printing.add_argument("text", nargs="+", help="text; each argument starts a line")
    add("cut", "cut the receipt tape", cut_command)
    add(
        "continue",
        "finish printing a document after paper ran out (load paper, close the cover first)",
        continue_command,
    )
    when = add("datetime", "the register's clock against this computer's", datetime_command)
    when.add_argument("action", nargs="?", choices=("set",), help="set it to this computer's")
    when.add_argument("--to", help="with set: this ISO date-time instead of now")
    doc = add("doc", "one fiscal document, its TLV decoded", doc_command)
    doc.add_argument(
        "number",
        type=_document_number,
        help="the fiscal document number (FD, tag 1040), from 1; `kkt fn` shows the last",
    )
    add_render_options(doc, "the document in its print form")
    docs = add("docs", "a range of fiscal documents as JSON lines, e.g. docs 1..50", docs_command)
    docs.add_argument("range", help="A..B (inclusive), A.. (to the last) or N")


# -- queries ----------------------------------------------------------------------------------


def status(register: Register, args: argparse.Namespace, out: Output) -> None:
    state = register.status()
    shift = register.shift_info()
    clock = register.clock()
    age = shift.age(clock) if clock else None
    data = {
        "mode": state.mode,
        "modeName": state.mode_name,
        "submode": state.submode,
        "shift": {
            "open": shift.open,
            "number": shift.number,
            "receipts": shift.receipts,
            "openedAt": shift.opened_at,
            "ageHours": round(age.total_seconds() / 3600, 2) if age is not None else None,
            "expired": shift.expired,
        },
        "paper": state.paper,
        "coverOpen": state.cover_open,
        "drawerOpen": state.drawer_open,
        "operator": state.operator,
        "dateTime": clock,
        "receiptItems": state.receipt_items,
    }

    if shift.open:
        shift_text = f"#{shift.number} open, {plural(shift.receipts, 'receipt')}"
        if age is not None:
            shift_text += f", {_hours(age)} old"
            if age < dt.timedelta(0):
                shift_text += " (the register's clock is before the shift's opening)"
        if shift.expired:
            shift_text += " — EXPIRED (over 24 h): close it with `kkt shift close`"
    else:
        shift_text = f"closed (last #{shift.number})"
    rows = [
        ("mode", f"{data['modeName']} ({data['mode']}.{state.submode})"),
        ("shift", shift_text),
        ("paper", "yes" if state.paper else "NO — load paper"),
        ("cover", "open" if state.cover_open else "closed"),
        ("drawer", "open" if state.drawer_open else "closed"),
        ("operator", state.operator),
        ("clock", clock),
    ]
    out.pairs(data, None, rows)


def info(register: Register, args: argparse.Namespace, out: Output) -> None:
    device = register.device_info()
    registration = register.registration()
    fn = register.fn_info()
    data = {
        "model": device.model,
        "modelName": device.name,
        "serial": device.serial,
        "firmware": device.firmware,
        "protocol": device.protocol,
        "lineWidth": LINE_WIDTH.get((register.vendor, device.model)),
        "ffdVersion": registration.ffd or None,
        "fnVersion": fn.version,
        "registrationNumber": registration.rnm,
        "userInn": registration.inn,
        "user": registration.user,
        "address": registration.address,
    }
    rows = [
        ("model", f"{device.name} (model {device.model})"),
        ("serial", device.serial),
        ("firmware", device.firmware),
        ("protocol", device.protocol),
        ("line width", data["lineWidth"]),
        ("FFD", data["ffdVersion"]),
        ("FN firmware", fn.version),
        ("RNM", registration.rnm),
        ("owner", f"{registration.user}, INN {registration.inn}"),
        ("address", registration.address),
    ]
    out.pairs(data, None, rows)


def fn_info(register: Register, args: argparse.Namespace, out: Output) -> None:
    fn = register.fn_info()
    ofd = register.ofd_status()  # its days count by the register's clock, as the FN's do
    clock = ofd.clock or register.clock() or dt.datetime.now()
    today = clock.date()
    days_left = (fn.expires - today).days if fn.expires else None
    first_when = ofd.first_when
    unsent: dict[str, Any] = {
        "count": ofd.unsent,
        "firstNumber": ofd.first_number,
        "firstDateTime": first_when,
        "daysUntilBlock": ofd.days_left,
        "blocked": ofd.blocked,
        "lastReceiptDateTime": ofd.last_receipt_when,
    }
    data = {
        "serial": fn.serial,
        "phase": fn.phase,
        "phaseName": (
            _PHASES.get(fn.phase, f"phase {fn.phase:#04x}") if fn.phase is not None else None
        ),
        "expires": fn.expires,
        "daysLeft": days_left,
        "registrationsLeft": fn.registrations_left,
        "version": fn.version,
        "warnings": [text for flag, text in _WARNINGS.items() if flag in fn.warnings],
        "lastDocument": fn.last_document,
        "unsent": unsent,
        "memoryAlmostFull": FnWarning.MEMORY_90_PERCENT in fn.warnings,
        "marking": None,
    }
    marking_lines = _marking_lines(register, data)

    queue = plural(unsent["count"], "document")
    if unsent["count"]:
        queue += f", oldest #{unsent['firstNumber']} of {show(first_when)}; " + (
            "receipts are BLOCKED until the OFD confirms it (`kkt ofd relay` sends the queue "
            "for a register without a network)"
            if ofd.blocked
            else f"{plural(unsent['daysUntilBlock'], 'day')} until receipts are blocked"
        )
    expiry = f"{show(fn.expires)} ({plural(days_left or 0, 'day')} left)" if fn.expires else "—"
    rows = [
        ("FN serial", fn.serial),
        ("phase", data["phaseName"]),
        ("expires", expiry),
        ("registrations left", fn.registrations_left),
        ("firmware", fn.version),
        ("last document", fn.last_document),
        ("unsent to OFD", queue),
        ("last OFD receipt", show(ofd.last_receipt_when) if ofd.last_receipt_when else "—"),
        ("warnings", data["warnings"] or "none"),
        *(("marking" if index == 0 else "", line) for index, line in enumerate(marking_lines)),
    ]
    out.pairs(data, None, rows)


def _marking_lines(register: Register, data: dict[str, Any]) -> list[str]:
    """The FN's marking state for `kkt fn` (into ``data["marking"]``), as lines for a person;
    a register that cannot say (ATOL: no public layout) says why instead of failing `kkt fn`."""
    try:
        state = register.marking_state()
    except (NotSupported, DeviceError) as error:
        return [f"not available: {error}"]
    data["marking"] = state.to_json()
    return state.describe()


def mark_command(register: Register, args: argparse.Namespace, out: Output) -> None:
    code = _mark_code(args.code, base64_given=args.base64)
    check = register.check_mark(
        code,
        _MARK_STATUSES[args.status],
        quantity=_part(args.part) if args.part else None,
        allow_offline=args.offline_ok,
    )
    item_check = check.item_check
    bits = (
        [f"{'yes' if flag in item_check else 'no '} {words}" for flag, words in _ITEM_CHECK_WORDS]
        if item_check is not None
        else ["none: the FN formed no result"]
    )
    data = check.to_json()
    data["itemCheckWords"] = bits
    verdict = "accepted" if check.accepted else "NOT accepted"
    title = f"{check.label} {check.short}: {verdict}"
    rows: list[tuple[str, Any]] = [
        ("code", check.short),
        ("planned status", f"{args.status} (tag 2003 = {int(check.planned_status)})"),
        ("code type", _enum_name(check.code_type, "tag 2100")),
        ("FN's check", _local_words(check)),
        ("result (2106)", "—" if item_check is None else f"{int(item_check)} {check.label}"),
        *(("" if index else "2106 bits", line) for index, line in enumerate(bits)),
        ("a sale would take it", check.accepted),
        ("why", check.explanation),
    ]
    out.pairs(data, title, rows)
    if not check.accepted:
        raise MarkNotAccepted(f"{check.label} {check.short} is not accepted: {check.explanation}")


def _mark_code(text: str, *, base64_given: bool) -> str:
    if text == "-":
        text = sys.stdin.readline().rstrip("\r\n")
    if base64_given:
        try:
            return base64.b64decode(text.strip(), validate=True).decode("ascii")
        except (binascii.Error, ValueError):
            raise UsageError(f"--base64: {text[:40]!r} is not a code in Base64") from None
    for spelling in _GS_SPELLINGS:
        text = text.replace(spelling, "\x1d")
    if not text:
        raise UsageError("mark check: give the code (or - to read it from stdin)")
    return text


def _part(text: str) -> tuple[int, int]:
    top, slash, bottom = text.partition("/")
    if slash and top.isdigit() and bottom.isdigit() and 0 < int(top) < int(bottom):
        return int(top), int(bottom)
    raise UsageError(f"--part {text}: give a part of one unit as N/D with 0 < N < D, e.g. 1/4")


def _local_words(check: Any) -> str:
    """Tag 2004 and, when the FN did not check the crypto code, B1h's reason."""
    local = int(check.local)
    words = {0: "not checked", 1: "checked: invalid", 3: "checked: valid"}.get(local, str(local))
    reason = int(check.local_reason)
    why = "" if reason == 0 else f"; reason: {_enum_name(check.local_reason)} ({reason})"
    return f"{words} (tag 2004 = {local}){why}"


def _enum_name(value: Any, tag: str = "") -> str:
    name = getattr(value, "name", None)
    words = (name or str(int(value))).lower().replace("_", " ") if value is not None else "—"
    return f"{words} ({tag} = {int(value)})" if tag and value is not None else words


# -- daily operations -------------------------------------------------------------------------


def shift_command(register: Register, args: argparse.Namespace, out: Output) -> None:
    try:
        if args.action == "open":
            result = register.open_shift(cashier=args.cashier)
            title = f"shift {result.shift_number} opened"
        else:
            result = register.close_shift(cashier=args.cashier)
            title = f"shift {result.shift_number} closed (Z report)"
    except WrongMode as refusal:
        # Say it in the terms of what was asked: "already open", not the table's generic text.
        shift = register.shift_info()
        if args.action == "open" and shift.open:
            said = (
                f"shift {shift.number} is already open ({plural(shift.receipts, 'receipt')}); "
                "close it first with `kkt shift close` if a new one is wanted"
            )
        elif args.action == "close" and not shift.open:
            said = f"no shift is open (the last one, {shift.number}, is closed)"
        else:
            raise
        raise WrongMode(said, code=refusal.code, vendor=refusal.vendor) from None
    _fiscal(register, result, out, title)


def report_command(register: Register, args: argparse.Namespace, out: Output) -> None:
    register.x_report()
    totals = register.shift_totals()
    data = {"report": "x", "printed": True, **totals.to_json()}
    shift = f"#{totals.shift_number} " + (
        f"open, {plural(totals.receipts, 'receipt')}" if totals.shift_open else "closed"
    )
    rows: list[tuple[str, Any]] = [
        ("shift", shift),
        ("cash in drawer", _rub(totals.cash_in_drawer)),
    ]
    names = {"sell": "sales", "sellReturn": "sale returns", "buy": "purchases",
             "buyReturn": "purchase returns"}  # fmt: skip
    counts = totals.receipts_by_operation or {}
    for key, kopecks in (totals.cash_by_operation or {}).items():
        receipts = f" ({plural(counts[key], 'receipt')})" if key in counts else ""
        rows.append((f"cash, {names[key]}", _rub(kopecks) + receipts))
    if totals.cash_in is not None:
        rows.append(("cash in", _rub(totals.cash_in)))
    if totals.cash_out is not None:
        rows.append(("cash out", _rub(totals.cash_out)))
    out.pairs(data, "X report printed", rows)


def receipt_command(register: Register, args: argparse.Namespace, out: Output) -> None:
    task = _read_json(args.file)
    _not_an_atol_online_request(task, args.file)
    _check_task_type(task, args.operation, args.file)
    receipt = receipt_from_atol(task, operation=args.operation)
    if args.key is not None and register.journal is None:
        register.journal = Journal(_journal_path(args.journal))
    register.verify = args.verify
    result = register.receipt(receipt, key=args.key)
    title = f"receipt {result.receipt_number} fiscalized"
    if result.verified:
        title += ", read back as sold"
    if result.replayed:
        title = (
            f"replayed: receipt {result.receipt_number} was fiscalized earlier under key "
            f"{args.key}; nothing was sent again"
        )
    _fiscal(register, result, out, title)


def _not_an_atol_online_request(task: dict[str, Any], source: str) -> None:
    """An ATOL Online request (``external_id`` and a ``receipt`` or ``correction``: the cloud
    API's body) is not a libfptr JSON task, whose fields `kkt sell` reads: say what it is and
    where it goes, instead of refusing its first field as unknown."""
    part = next((name for name in ("receipt", "correction") if name in task), None)
    if "external_id" not in task or part is None:
        return
    where = "standard input" if source == "-" else source
    raise UsageError(
        f"{where} is an ATOL Online request (external_id and {part}), the body `kkt cloud "
        "serve` takes: POST it to /possystem/v4/GROUP/sell (or the operation's path) there; "
        f'for `kkt sell`, write its "{part}" part as a libfptr JSON task (like '
        "examples/receipt.json: items of type position with amount and tax, payments with "
        "type and sum)"
    )


def _check_task_type(task: dict[str, Any], operation: Operation, source: str) -> None:
    """The file's ``type`` must be the command's: `kkt sell` of a "sellReturn" file is a mistake
    (which of the two was meant?), never a sale.  A file without ``type`` takes the command's."""
    kind = task.get("type")
    if kind is None:
        return
    wanted = next(name for name, op in OPERATIONS.items() if op is operation)
    if kind == wanted:
        return
    command = next(name for name, op in _RECEIPT_COMMANDS.items() if op is operation)
    file = "-" if source == "-" else "FILE"
    if isinstance(kind, str) and kind in OPERATIONS:
        meant = next(name for name, op in _RECEIPT_COMMANDS.items() if op is OPERATIONS[kind])
        raise UsageError(
            f'type: the file is a "{kind}" receipt and `kkt {command}` makes a "{wanted}" one; '
            f'run `kkt {meant} {file}` for a "{kind}", or set "type": "{wanted}" in the file'
        )
    raise UsageError(
        f'type: `kkt {command}` takes a "{wanted}" receipt (or a file without "type"), '
        f"got {json.dumps(kind, ensure_ascii=False)}"
    )


def correction_command(register: Register, args: argparse.Namespace, out: Output) -> None:
    task = _read_json(args.file)
    _not_an_atol_online_request(task, args.file)
    kind = task.get("type")
    if kind not in _CORRECTION_TYPES:
        raise ReceiptRejected(f"type: one of {', '.join(_CORRECTION_TYPES)}, got {kind!r}")
    payments = task.get("payments")
    if not isinstance(payments, list) or not payments:
        raise ReceiptRejected("payments: a list of {type, sum}; this register corrects cash only")
    total = 0
    for index, payment in enumerate(payments):
        if not isinstance(payment, dict) or payment.get("type") != "cash":
            raise ReceiptRejected(f"payments[{index}]: only cash corrections are supported")
        total += _kopecks(payment.get("sum"), f"payments[{index}].sum")
    register.verify = args.verify
    result = register.correction(_CORRECTION_TYPES[kind], total, basis=_correction_basis(task))
    title = "correction receipt fiscalized"
    if result.verified:
        title += ", read back as made"
    _fiscal(register, result, out, title)


_CORRECTION_KINDS = {"self": False, "instruction": True}  # ATOL's correctionType (tag 1173)
_BASE_DATE_FORMATS = ("%Y.%m.%d", "%Y-%m-%d", "%d.%m.%Y")


def _correction_basis(task: dict[str, Any]) -> CorrectionBasis:
    """ATOL's correction fields: correctionType, correctionBaseDate, correctionBaseNumber."""
    kind = task.get("correctionType", "self")
    if kind not in _CORRECTION_KINDS:
        raise ReceiptRejected(f"correctionType: self or instruction, got {kind!r}")
    when = task.get("correctionBaseDate")
    settled_on = None
    if when is not None:
        for form in _BASE_DATE_FORMATS:
            try:
                settled_on = dt.datetime.strptime(str(when), form).date()
                break
            except ValueError:
                continue
        else:
            raise ReceiptRejected(
                "correctionBaseDate: a date as YYYY.MM.DD (or YYYY-MM-DD, DD.MM.YYYY), "
                f"got {when!r}"
            )
    number = str(task.get("correctionBaseNumber") or "")
    return CorrectionBasis(_CORRECTION_KINDS[kind], settled_on, number)


def cash_command(register: Register, args: argparse.Namespace, out: Output) -> None:
    if args.direction is None:
        drawer = register.cash_in_drawer()
        out.result(
            {"cashInDrawer": drawer / 100},
            lambda c: c.print(f"cash in the drawer: {_rub(drawer)}"),
        )
        return
    if args.sum is None:
        raise UsageError(f"cash {args.direction}: give the SUM in roubles, e.g. `kkt cash "
                         f"{args.direction} 1500`")  # fmt: skip
    amount = _kopecks(args.sum, "SUM")
    if args.direction == "in":
        register.cash_in(amount)
    else:
        _cash_out(register, amount)
    data = {"direction": args.direction, "sum": amount / 100}
    out.result(data, lambda c: c.print(f"cash {args.direction}: {amount / 100:.2f} ₽"))


def _cash_out(register: Register, amount: int) -> None:
    """Take ``amount`` out; a refusal for want of cash says how much the drawer holds (the
    register's own text names only its error code)."""
    try:
        register.cash_out(amount)
    except DeviceError as refusal:
        try:
            drawer = register.cash_in_drawer()
        except KktError:
            raise refusal from None  # the refusal is the news; the drawer could not be read
        if amount <= drawer:
            raise
        advice = f"take at most {_rub(drawer)}" if drawer else "nothing can be taken out"
        raise DeviceError(
            f"{refusal}: the drawer holds {_rub(drawer)}, {_rub(amount)} asked for; "
            f"{advice} (`kkt cash` shows it)",
            code=refusal.code,
            vendor=refusal.vendor,
        ) from None


def print_command(register: Register, args: argparse.Namespace, out: Output) -> None:
    """The register cuts a line longer than its paper's (the driver sends it cut): so a long
    line is wrapped here, at spaces where it can be, and nothing given is lost -- and said."""
    width = LINE_WIDTH.get((register.vendor, register.device_info().model))
    given = "\n".join(args.text).splitlines() or [""]
    lines: list[str] = []
    wrapped = 0
    for line in given:
        if width is None or len(line) <= width:
            lines.append(line)
            continue
        wrapped += 1
        lines += textwrap.wrap(line, width, replace_whitespace=False, break_on_hyphens=False) or [
            line[:width]
        ]
    register.print_text("\n".join(lines))
    printed = f"{plural(len(lines), 'line')} printed"
    if wrapped:
        printed += (
            f" ({plural(wrapped, 'line')} longer than the register's {width} characters "
            f"wrapped, as the register would cut {'it' if wrapped == 1 else 'them'})"
        )
    elif width is None and any(len(line) > 48 for line in lines):
        printed += " (this model's line width is not known: a line longer than it is cut)"
    data = {"printed": len(lines), "wrapped": wrapped, "lineWidth": width}
    out.result(data, lambda c: c.print(printed))


def cut_command(register: Register, args: argparse.Namespace, out: Output) -> None:
    register.cut()
    out.result({"cut": True}, lambda c: c.print("cut"))


def continue_command(register: Register, args: argparse.Namespace, out: Output) -> None:
    register.continue_print()
    out.result({"continued": True}, lambda c: c.print("printing continued"))


def datetime_command(register: Register, args: argparse.Namespace, out: Output) -> None:
    if args.action == "set":
        target = _when(args.to) if args.to else dt.datetime.now().replace(microsecond=0)
        register.set_datetime(target)
    elif args.to:
        raise UsageError("--to goes with `kkt datetime set`")
    host = dt.datetime.now().replace(microsecond=0)
    clock = register.clock()
    drift = (clock - host).total_seconds() if clock else None
    data = {"register": clock, "host": host, "driftSeconds": drift}

    rows: list[tuple[str, Any]] = [("register", clock), ("this computer", host)]
    if drift is not None:
        advice = (
            ""
            if abs(drift) < 60
            else " — set it with `kkt datetime set` (this computer's clock) or "
            "`kkt datetime set --to ISO-TIME`"
        )
        rows.append(("drift", f"{drift:+.0f} s{advice}"))
    out.pairs(data, None, rows)


# -- the archive ------------------------------------------------------------------------------


def doc_command(register: Register, args: argparse.Namespace, out: Output) -> None:
    if args.width and not args.format:
        raise UsageError("--width sets the drawing's line: give --format txt|svg|png|html too")
    try:
        document = register.document(args.number)
    except DeviceError:
        newest = register.fn_info().last_document
        if args.number > newest:  # the FN's refusal (08h ...) says less than this
            raise UsageError(
                f"{args.number}: no such document yet: the FN's last document is {newest} "
                f"(`kkt docs 1..` lists them all)"
            ) from None
        raise
    if args.format:
        if out.as_json:
            raise UsageError("--format draws the document; --json prints its tags: choose one")
        width = args.width or LINE_WIDTH.get((register.vendor, register.device_info().model), 48)
        try:
            write_rendered(document, args, width)
        except RenderError as error:
            raise UsageError(str(error)) from None
        return
    data = document.to_json()
    try:
        receipt = register.ofd_receipt(args.number)
        data["ofdReceipt"] = receipt.to_json() if receipt else None
    except NotSupported:  # ATOL: whether the OFD acknowledged it cannot be asked
        receipt = None
    out.result(
        data, lambda console: _show_document(console, document, receipt, "ofdReceipt" in data)
    )


def docs_command(register: Register, args: argparse.Namespace, out: Output) -> None:
    """One JSON line per document, with or without --json (as the help and the README say).

    A range that runs past the FN's last document prints what exists and stops there, with a
    note on standard error (a script reading standard output sees JSON lines only)."""
    first, last = _parse_range(args.range, register)
    newest = register.fn_info().last_document
    if first > newest:
        raise UsageError(
            f"{args.range}: no such document yet: the FN's last document is {newest} "
            f"(`kkt docs 1..` lists them all)"
        )
    if last > newest:
        print(
            f"kkt docs: the FN's last document is {newest}; "
            f"{plural(last - newest, 'document')} after it {'does' if last - newest == 1 else 'do'}"
            " not exist (yet)",
            file=sys.stderr,
        )
        last = newest
    with out.progress(last - first + 1, f"documents {first}..{last}") as step:
        for number in range(first, last + 1):
            out.line(register.document(number).to_json())
            step()


def _show_document(
    console: RichConsole,
    document: Document,
    receipt: OfdReceipt | None = None,
    asked: bool = False,
) -> None:
    """``asked``: the FN was asked for the document's OFD receipt (Shtrih FF3C)."""
    if receipt is not None:
        ofd = f"acknowledged {show(receipt.when)}, operator sign {receipt.sign[:16].hex().upper()}"
    elif asked or document.ofd_confirmed:
        ofd = "acknowledged" if document.ofd_confirmed else "waiting for the OFD's receipt"
    else:
        ofd = "unknown (the register's protocol cannot say)"
    console.print(
        pairs(
            f"Document {document.number}: {document.type_name}",
            [
                ("date-time", _document_time(document)),
                ("fiscal sign", document.fiscal_sign),
                ("OFD", ofd),
            ],
        )
    )
    table = grid(
        None,
        ("tag", "name", "value"),
        ((tag, "  " * depth + name, value) for depth, tag, name, value in tlv_rows(document.tlv)),
    )
    console.print(table)


def _document_time(document: Document) -> dt.datetime | None:
    """The document's own date-time (tag 1012), which its table shows below the header; the
    archive record's (``document.when``) only when the TLV carries none."""
    body = document.tlv
    if len(body) == 1 and isinstance(body[0][1], list):
        body = body[0][1]  # the document's STLV wrapper (ATOL)
    when = tlv_find(body, 1012)
    return when if isinstance(when, dt.datetime) else document.when


# -- helpers ----------------------------------------------------------------------------------


def _fiscal(register: Register, result: FiscalResult, out: Output, title: str) -> None:
    try:
        rnm = register.registration().rnm
    except KktError:
        rnm = ""  # the document is fiscal whatever happens here: never fail the command now
    data = fiscal_params(result, registration_number=rnm, fns_url=FNS_URL)
    # --verify's outcome: true only when the document was read back and matched what was asked
    # (false without --verify, and for a shift's reports, which are not read back).
    data["verified"] = result.verified

    rows: list[tuple[str, Any]] = [
        ("FD number", result.document_number),
        ("fiscal sign", result.fiscal_sign),
        ("date-time", result.when),
        ("shift", result.shift_number),
    ]
    if result.operation:
        rows += [
            ("receipt in shift", result.receipt_number),
            ("total", f"{result.total / 100:.2f} ₽"),
            ("QR", result.qr),
        ]
    rows += [("FN", result.fn_number), ("RNM", rnm)]
    out.pairs(data, title, rows)


def _read_json(source: str) -> dict[str, Any]:
    where = "standard input" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read {where}: {error.strerror or error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"{where} is not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(
            f"{where}: expected a JSON object (an ATOL task), got {type(data).__name__}"
        )
    return data


def _kopecks(value: Any, where: str) -> int:
    """Roubles (a JSON number or a string like "1500.50") -> kopecks, never through a float."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UsageError(f"{where}: a sum of roubles, e.g. 1500.50")
    try:
        amount = Decimal(str(value)) * 100
    except InvalidOperation:
        raise UsageError(f"{where}: {value!r} is not a sum of roubles (e.g. 1500.50)") from None
    if amount != amount.to_integral_value() or amount < 0:
        raise UsageError(f"{where}: {value!r}: roubles with at most 2 decimals, not negative")
    return int(amount)


def _when(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text).replace(microsecond=0, tzinfo=None)
    except ValueError:
        raise UsageError(
            f"--to: {text!r} is not an ISO date-time like 2026-11-22T14:30:00"
        ) from None


def _document_number(text: str) -> int:
    """`kkt doc N`: a document number, checked before the register is asked (argparse says
    what is wrong, exit 2)."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a document number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(
            f"{text}: the FN numbers its documents from 1; nothing was sent (`kkt fn` shows the "
            "last, `kkt docs 1..` lists them all)"
        )
    return number


def _parse_range(text: str, register: Register) -> tuple[int, int]:
    head, dots, tail = text.partition("..")
    try:
        first = int(head)
        if not dots:
            last = first
        elif tail:
            last = int(tail)
        else:
            last = register.fn_info().last_document
    except ValueError:
        raise UsageError(f"{text!r} is not a range: write A..B, A.. or N") from None
    if first < 1 or last < first:
        raise UsageError(f"{text!r}: the range must run from 1 upwards, A <= B")
    return first, last


def _journal_path(given: Path | None) -> Path:
    if given is not None:
        return given
    base = Path.home() / ".local" / "state" / "kktkit"
    base.mkdir(parents=True, exist_ok=True)
    return base / "journal.sqlite"


def _rub(kopecks: int) -> str:
    return f"{kopecks / 100:.2f} ₽"


def _hours(age: dt.timedelta) -> str:
    """``2 h 05 min``; a negative age (the register's clock set back past the shift's opening)
    keeps its sign on the whole: -9 min is ``-0 h 09 min``, never floor division's -1 h 51."""
    minutes = int(age.total_seconds() / 60)  # toward zero, whichever the sign
    hours, rest = divmod(abs(minutes), 60)
    return f"{'-' if minutes < 0 else ''}{hours} h {rest:02d} min"
