"""ATOL's JSON task shape: a shop's `sell` task in, ATOL's ``fiscalParams`` out.

Shops that already build JSON tasks for ATOL's official driver (``processJson``) hand the same
object to `receipt_from_atol` and get our `Receipt`; `fiscal_params` turns a `FiscalResult` back
into the ``fiscalParams`` answer they already parse.  (The format knows the receipt, never the
other way round: `Receipt` has no ``from_json``, so the vocabulary does not import one format.)

Reading rules:

* Money arrives as roubles (JSON numbers, or numeric strings) and becomes int kopecks through
  `Decimal`, never through float arithmetic; more than 2 decimals is an error, not a rounding.
* Only ``{"type": "position"}`` items become `Item`s.  Print-only items (``text``, ``barcode``,
  ``pictureFromMemory``, ``pixels``) and print-only options (``preItems``, ``postItems``,
  ``electronically``, ``ignoreNonFiscalPrintErrors`` ...) are skipped: they change paper, not the
  fiscal document.
* A field that would put data into the fiscal document which this driver cannot send yet
  (agents, suppliers, FFD 1.05 marking, receipt-level VAT sums ...) is refused, never dropped.
* Marked goods (FFD 1.2) come as a position's ``imcParams`` (see `_read_imc_params`): the code
  becomes `Item.mark_code`, and the sale checks it with the FN and ОИСМ before the item goes in.
* A key the format does not know is refused with its path, the names allowed there and, when one
  is close, "did you mean": a misspelled ``"paymentMetod"`` must not quietly become the default.
  The keys ATOL's format documents that change only paper or the driver's own behaviour are
  accepted and ignored; each level lists them (``IGNORED_TASK_KEYS`` ...).
* Every refusal is `ReceiptRejected`; its message starts with the JSON path of the bad field
  (``items[2].price``, indexes from 0 as in the JSON) and says what is expected.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from kkt.protocols.ffd import Payments
from kkt.protocols.ffd.marking import (
    GS,
    MarkCodeType,
    MarkingCodeError,
    PlannedStatus,
    parse_mark_code,
)

from ..errors import ReceiptRejected
from ..receipt import (
    MAX_CONTACT_CHARS,
    MAX_NAME_BYTES,
    Item,
    Operation,
    Receipt,
    TaxSystem,
    Vat,
    contact_problem,
)
from ..results import FiscalResult

T = TypeVar("T")

# -- tables: ATOL's strings -> our values ----------------------------------------------------------

OPERATIONS: Mapping[str, Operation] = {
    "sell": Operation.SELL,
    "sellReturn": Operation.SELL_RETURN,
    "buy": Operation.BUY,
    "buyReturn": Operation.BUY_RETURN,
}

TAX_SYSTEMS: Mapping[str, TaxSystem] = {
    "osn": TaxSystem.OSN,
    "usnIncome": TaxSystem.USN_INCOME,
    "usnIncomeOutcome": TaxSystem.USN_INCOME_OUTCOME,
    "envd": TaxSystem.ENVD,  # only older ATOL builds still send it
    "esn": TaxSystem.ESN,
    "patent": TaxSystem.PATENT,
}

VATS: Mapping[str, Vat] = {vat.value: vat for vat in Vat}

# Rates ATOL knows (5 %, 7 % and the 22 % of 2026) that `Vat` and the register's tax table do not
# carry yet: refused by name, so the shop learns it is a gap here, not a typo on its side.
VATS_NOT_SUPPORTED = frozenset({"vat5", "vat7", "vat105", "vat107", "vat22", "vat122"})

PAYMENT_METHODS: Mapping[str, int] = {  # tag 1214
    "fullPrepayment": 1,
    "prepayment": 2,
    "advance": 3,
    "fullPayment": 4,
    "partialPayment": 5,
    "credit": 6,
    "creditPayment": 7,
}

# Tag 1212.  The fact sheet's table (fn-ffd-ofd.md) reads code 12 as FFD 1.2's "выплата" (payout);
# FFD 1.05 called the same code "составной предмет расчета".  We follow the FFD 1.2 reading: ATOL's
# current name for 12 is "pay" and "composite" is its older alias, so both map to 12.  Codes 14-17
# carry ATOL's names plus the plainer English spellings some shops use.
PAYMENT_OBJECTS: Mapping[str, int] = {
    "commodity": 1,
    "excise": 2,
    "job": 3,
    "service": 4,
    "gamblingBet": 5,
    "gamblingPrize": 6,
    "lottery": 7,
    "lotteryPrize": 8,
    "intellectualActivity": 9,
    "payment": 10,
    "agentCommission": 11,
    "pay": 12,
    "composite": 12,
    "another": 13,
    "proprietaryLaw": 14,
    "propertyRight": 14,
    "nonOperatingIncome": 15,
    "nonOperatingGain": 15,
    "otherContributions": 16,
    "insuranceContributions": 16,
    "insurancePremium": 16,
    "merchantTax": 17,
    "salesTax": 17,
    "resortFee": 18,
    "deposit": 19,
    "consumption": 20,
    "soleProprietorCPIContributions": 21,
    "cpiContributions": 22,
    "soleProprietorCMIContributions": 23,
    "cmiContributions": 24,
    "csiContributions": 25,
    "casinoPayment": 26,
    "fundsIssuance": 27,
    "exciseWithoutMarking": 30,
    "exciseWithMarking": 31,
    "commodityWithoutMarking": 32,
    "commodityWithMarking": 33,
}

# Marked goods cannot be sold without their marking code: these need ``imcParams``.
PAYMENT_OBJECTS_NEEDING_MARKING = frozenset({"exciseWithMarking", "commodityWithMarking"})

# Tag 2108 (FFD 1.2 measure of quantity): 0 pieces, 10-12 mass, 20-22 length, 30-32 area,
# 40-42 volume, 50-51 energy, 70-73 time, 80-83 data, 255 other.
MEASURES = frozenset(
    {0, 10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 70, 71, 72, 73, 80, 81, 82, 83, 255}
)

# ATOL's payment type -> the `Payments` field it adds to.  ATOL's driver takes strings only (the
# fact sheet: "strings, not numbers"; the numbers 0..4 are ATOL Online's), so numbers are refused.
# ATOL's names for the tag 2108 codes (DTO10's JSON-task ``ITEM_UNITS`` table; the libfptr
# ``LIBFPTR_IU_*`` constants are the 2108 codes themselves).  ATOL's driver takes them in a
# position's ``measurementUnit`` (FFD 1.2) and in ``imcParams.itemUnits``.
ITEM_UNITS: Mapping[str, int] = {
    "piece": 0,
    "gram": 10,
    "kilogram": 11,
    "ton": 12,
    "centimeter": 20,
    "decimeter": 21,
    "meter": 22,
    "squareCentimeter": 30,
    "squareDecimeter": 31,
    "squareMeter": 32,
    "milliliter": 40,
    "liter": 41,
    "cubicMeter": 42,
    "kilowattHour": 50,
    "gkal": 51,
    "day": 70,
    "hour": 71,
    "minute": 72,
    "second": 73,
    "kilobyte": 80,
    "megabyte": 81,
    "gigabyte": 82,
    "terabyte": 83,
    "otherUnits": 255,
}

PAYMENT_KINDS: Mapping[str, str] = {
    "cash": "cash",
    "electronically": "electronic",
    "prepaid": "prepaid",
    "credit": "credit",
    "other": "other",
}

PRINT_ONLY_ITEM_TYPES = ("text", "barcode", "pictureFromMemory", "pixels")

# Keys that put data into the fiscal document which the driver cannot send yet.  Present with a
# value that means "nothing" (null, false, empty), they are harmless and let through.
UNSUPPORTED_TASK_KEYS: Mapping[str, str] = {
    "agentInfo": "agent data (tag 1057)",
    "supplierInfo": "supplier data (tag 1224)",
    "companyInfo": "the seller's block (tags 1117, 1018)",
    "operationInfo": "the operational attribute (tag 1270)",
    "industryInfo": "industry attributes (tag 1261)",
    "taxes": "receipt-level VAT sums (tags 1102-1107): leave them out, the register computes them",
    "paymentsPlace": "the place of settlement (tag 1187)",
    "paymentsAddress": "the address of settlement (tag 1009)",
    "machineNumber": "the automat number (tag 1036)",
    "internet": "the Internet-sale flag",
    "salesNotice": "marking notifications",
}

UNSUPPORTED_POSITION_KEYS: Mapping[str, str] = {
    "agentInfo": "agent data (tags 1222, 1223)",
    "supplierInfo": "supplier data (tags 1224, 1226)",
    "markingCode": (
        "the FFD 1.05 marking code (tag 1162); for FFD 1.2 marked goods give imcParams.imc instead"
    ),
    "nomenclatureCode": "the product code (tag 1162)",
    "additionalAttribute": "the item's additional attribute (tag 1191)",
    "exciseSum": "the excise sum (tag 1229)",
    "countryCode": "the country of origin (tag 1230)",
    "customsDeclaration": "the customs declaration (tag 1231)",
    "industryInfo": "industry attributes (tag 1260)",
}

UNSUPPORTED_CLIENT_KEYS: Mapping[str, str] = {
    key: "the buyer's details (tag 1256)"
    for key in (
        "name",
        "vatin",
        "birthDate",
        "citizenship",
        "identityDocumentCode",
        "identityDocumentData",
        "address",
    )
}

UNSUPPORTED_PRINT_ITEM_TYPES: Mapping[str, str] = {
    "userAttribute": "the user attribute (tag 1084)",
    "additionalAttribute": "the receipt's additional attribute (tag 1192)",
}

# Keys ATOL's format documents (atol-protocol.md §3.3) that we accept and deliberately ignore:
# they change paper or the official driver's own behaviour, not the fiscal document.
IGNORED_TASK_KEYS = frozenset(
    {
        "electronically",  # no paper (this driver prints what the register prints)
        "ignoreNonFiscalPrintErrors",
        "preItems",  # print items before the receipt
        "postItems",  # ... and after it
        "customParameters",  # the official driver's scripting parameters
    }
)
IGNORED_POSITION_KEYS = frozenset(
    {
        "infoDiscountAmount",  # printed information about a discount already in the price
        "piece",
        "additionalAttributePrint",
        "userParam3",
        "userParam4",
        "userParam5",
        "userParam6",
    }
)
IGNORED_PAYMENT_KEYS = frozenset({"printItems"})

# The keys each level reads; with the unsupported and ignored ones, every key allowed there.
TASK_KEYS = frozenset(
    {
        "type",
        "taxationType",
        "operator",
        "clientInfo",
        "items",
        "payments",
        "total",
        "validateMarkingCodes",
    }
)
POSITION_KEYS = frozenset(
    {
        "type",
        "name",
        "price",
        "quantity",
        "amount",
        "tax",
        "paymentMethod",
        "paymentObject",
        "department",
        "measurementUnit",
        "imcParams",
    }
)
TAX_KEYS = frozenset({"type", "sum"})
PAYMENT_KEYS = frozenset({"type", "sum"})
OPERATOR_KEYS = frozenset({"name", "vatin"})
CLIENT_KEYS = frozenset({"emailOrPhone"})

MAX_OPERATOR_CHARS = 64  # tag 1021
ITEM_AMOUNT_TOLERANCE = 1  # kopecks, as `Receipt.validate` allows for price x quantity rounding

KOPECK = Decimal("0.01")
QUANTITY_STEP = Decimal("0.000001")


# -- public API ------------------------------------------------------------------------------------


def receipt_from_atol(task: Mapping[str, Any], operation: Operation | None = None) -> Receipt:
    """Our `Receipt` for an ATOL fiscal receipt task (``sell``, ``sellReturn``, ``buy``,
    ``buyReturn``), checked: `ReceiptRejected` names the JSON path of whatever is wrong.

    ``operation``, when given, overrides the task's ``type`` (a shop may reuse one task shape for
    a sale and its return).
    """
    task = _object(task, "task")
    _refuse_unknown(task, "", TASK_KEYS, UNSUPPORTED_TASK_KEYS, IGNORED_TASK_KEYS)
    _refuse_unsupported(task, "", UNSUPPORTED_TASK_KEYS)
    # An explicit operation wins, but a task's own "type" is still checked: a typo there
    # ("sel") or a task of another kind ("sellCorrection") must not pass unnoticed.
    task_operation = _optional(task, "type", OPERATIONS, Operation.SELL)
    # ATOL's driver checks codes inside the receipt when this is true and trusts an earlier
    # check when false; this driver always checks a code inside the sale (the exactly-once rules
    # cover the check), so either value leads to the same receipt.
    _optional(task, "validateMarkingCodes", _boolean, False)
    tax_system = _optional(task, "taxationType", TAX_SYSTEMS, TaxSystem.OSN)
    cashier, cashier_extra = _read_operator(task.get("operator"))
    items = _read_items(task.get("items", _MISSING))
    payments = _read_payments(task.get("payments", _MISSING))
    receipt = Receipt(
        items=items,
        payments=payments,
        operation=task_operation if operation is None else operation,
        tax_system=tax_system,
        cashier=cashier,
        buyer_contact=_read_buyer_contact(task.get("clientInfo")),
        extra=cashier_extra,
    )
    if task.get("total") is not None:
        _check_total(task["total"], receipt)
    _check_payments_cover(receipt)
    receipt.validate()  # the model's own rules, a backstop behind the path-named checks above
    return receipt


def fiscal_params(
    result: FiscalResult, *, registration_number: str = "", fns_url: str = "www.nalog.gov.ru"
) -> dict[str, Any]:
    """ATOL's ``fiscalParams`` for a fiscal document, plus ``qr`` (our addition: tag 1196's text).

    The FN keeps no time zone, so ``fiscalDocumentDateTime`` is the register's wall clock without
    an offset (``"2026-11-22T14:05:00"``), or None when the document carries no time.  ``total``
    is ``kopecks / 100`` as a float: one correctly rounded division, so the JSON text shows the
    exact roubles (``499.5``, ``1234567.89``) for any sum below 10**15 kopecks.  Reports
    (operation 0) leave out ``total`` and ``fiscalReceiptNumber``, as ATOL's driver does.
    ``replayed`` (ours too) is true when the call sent nothing: the document was fiscalized earlier
    under the same idempotency key.
    """
    params: dict[str, Any] = {
        "fiscalDocumentNumber": result.document_number,
        "fiscalDocumentSign": str(result.fiscal_sign),
        "fiscalDocumentDateTime": (
            result.when.isoformat(timespec="seconds") if result.when is not None else None
        ),
        "shiftNumber": result.shift_number,
        "fnNumber": result.fn_number,
        "registrationNumber": registration_number,
        "fnsUrl": fns_url,
        "qr": result.qr,
        "replayed": result.replayed,
    }
    if result.operation != 0:
        params["fiscalReceiptNumber"] = result.receipt_number
        params["total"] = result.total / 100
    return params


# -- parts of the task -----------------------------------------------------------------------------


def _read_operator(value: Any) -> tuple[str | None, tuple[tuple[int, object], ...]]:
    """The cashier's name (tag 1021) and, as receipt extras, the cashier's INN (tag 1203)."""
    if value is None:
        return None, ()
    operator = _object(value, "operator")
    _refuse_unknown(operator, "operator.", OPERATOR_KEYS)
    name = _text(operator.get("name", _MISSING), "operator.name", MAX_OPERATOR_CHARS)
    vatin = operator.get("vatin")
    if vatin is None or vatin == "":
        return name, ()
    if not isinstance(vatin, str) or not (vatin.isascii() and vatin.isdigit() and len(vatin) == 12):
        raise _rejected("operator.vatin", "must be the cashier's INN, a string of 12 digits", vatin)
    return name, ((1203, vatin),)


def _read_buyer_contact(value: Any) -> str | None:
    if value is None:
        return None
    client = _object(value, "clientInfo")
    _refuse_unknown(client, "clientInfo.", CLIENT_KEYS, UNSUPPORTED_CLIENT_KEYS)
    _refuse_unsupported(client, "clientInfo.", UNSUPPORTED_CLIENT_KEYS)
    contact = client.get("emailOrPhone")
    if contact is None or contact == "":
        return None
    text = _text(contact, "clientInfo.emailOrPhone", MAX_CONTACT_CHARS)
    problem = contact_problem(text)
    if problem:
        raise _rejected("clientInfo.emailOrPhone", problem, text)
    return text


def _read_items(value: Any) -> tuple[Item, ...]:
    if value is _MISSING or value is None:
        raise ReceiptRejected("items: required, a list with at least one position")
    if not isinstance(value, list | tuple):
        raise _rejected("items", "must be a list of items", value)
    positions = []
    for index, entry in enumerate(value):
        path = f"items[{index}]"
        item = _object(entry, path)
        kind = item.get("type", _MISSING)
        if kind == "position":
            positions.append(_read_position(item, path))
        elif isinstance(kind, str) and kind in UNSUPPORTED_PRINT_ITEM_TYPES:
            raise ReceiptRejected(
                f"{path}.type: {_show(kind)} is not supported yet: the driver cannot send "
                f"{UNSUPPORTED_PRINT_ITEM_TYPES[kind]}"
            )
        elif not (isinstance(kind, str) and kind in PRINT_ONLY_ITEM_TYPES):
            expected = _names(("position", *PRINT_ONLY_ITEM_TYPES))
            raise _rejected(f"{path}.type", f"must be one of {expected}", kind)
    if not positions:
        raise ReceiptRejected('items: a receipt needs at least one {"type": "position"} item')
    return tuple(positions)


def _read_position(position: Mapping[str, Any], path: str) -> Item:
    _refuse_unknown(
        position, f"{path}.", POSITION_KEYS, UNSUPPORTED_POSITION_KEYS, IGNORED_POSITION_KEYS
    )
    _refuse_unsupported(position, f"{path}.", UNSUPPORTED_POSITION_KEYS)
    name = _item_name(position.get("name", _MISSING), f"{path}.name")
    price = _kopecks(position.get("price", _MISSING), f"{path}.price")
    quantity = _quantity(position.get("quantity", _MISSING), f"{path}.quantity")
    amount = _kopecks(position.get("amount", _MISSING), f"{path}.amount")
    _check_amount(amount, price, quantity, f"{path}.amount")
    measure = _optional(position, "measurementUnit", _measure, None, path)
    marking = None
    if position.get("imcParams") is not None:
        marking = _read_imc_params(position["imcParams"], f"{path}.imcParams", quantity, measure)
        measure = marking.measure
    subject = position.get("paymentObject")
    if marking is None and isinstance(subject, str) and subject in PAYMENT_OBJECTS_NEEDING_MARKING:
        raise ReceiptRejected(
            f"{path}.paymentObject: {_show(subject)} is marked goods: give the item's marking "
            f'code too, as "imcParams": {{"imc": "<the code in Base64>"}}'
        )
    return Item(
        name=name,
        price=price,
        quantity=quantity,
        vat=_read_vat(position.get("tax", _MISSING), f"{path}.tax"),
        payment_method=_optional(
            position, "paymentMethod", PAYMENT_METHODS, PAYMENT_METHODS["fullPayment"], path
        ),
        # "commodity" (the default) / "excise" with imcParams become 33 / 31, as
        # "commodityWithMarking" / "exciseWithMarking" are: `Item` applies the rule
        # (`kkt.receipt.MARKED_PAYMENT_SUBJECTS`), the same for every way a receipt comes in.
        payment_subject=_optional(
            position, "paymentObject", _payment_object, PAYMENT_OBJECTS["commodity"], path
        ),
        amount=amount,
        department=_optional(position, "department", _department, 1, path),
        measure=measure,
        mark_code=marking.code if marking else None,
        planned_status=marking.planned_status if marking else None,
        mark_quantity=marking.fraction if marking else None,
    )


def _read_vat(value: Any, path: str) -> Vat:
    if value is _MISSING:
        raise ReceiptRejected(f'{path}: required, e.g. {{"type": "vat20"}} or {{"type": "none"}}')
    tax = _object(value, path)
    _refuse_unknown(tax, f"{path}.", TAX_KEYS)
    if tax.get("sum") is not None:
        raise ReceiptRejected(
            f"{path}.sum: not supported yet: the driver cannot send the item's VAT sum "
            "(tag 1200); leave it out, the register computes it"
        )
    kind = tax.get("type", _MISSING)
    if isinstance(kind, str) and kind in VATS_NOT_SUPPORTED:
        raise ReceiptRejected(
            f"{path}.type: {_show(kind)} is not supported yet by this register model and driver; "
            f"supported: {_names(VATS)}"
        )
    return _choice(kind, f"{path}.type", VATS)


def _payment_object(value: Any, path: str) -> int:
    return _choice(value, path, PAYMENT_OBJECTS)


def _department(value: Any, path: str) -> int:
    return _whole(value, path, 0, 255)


def _measure(value: Any, path: str) -> int:
    if isinstance(value, str):
        if value in ITEM_UNITS:
            return ITEM_UNITS[value]
        raise ReceiptRejected(
            f"{path}: must be the FFD 1.2 measure code (tag 2108) as a number, e.g. 0 for pieces "
            'or 11 for kilograms, or ATOL\'s name for it ("piece", "kilogram" ...); text units '
            f"(FFD 1.05) are not supported, got {_show(value)}"
        )
    code = _whole(value, path, 0, 255)
    if code not in MEASURES:
        raise _rejected(path, f"must be an FFD 1.2 measure code, one of {sorted(MEASURES)}", value)
    return code


def _read_payments(value: Any) -> Payments:
    if value is _MISSING or value is None:
        raise ReceiptRejected('payments: required, a list like [{"type": "cash", "sum": 100.00}]')
    if not isinstance(value, list | tuple):
        raise _rejected("payments", "must be a list of payments", value)
    sums = dict.fromkeys(PAYMENT_KINDS.values(), 0)
    for index, entry in enumerate(value):
        path = f"payments[{index}]"
        payment = _object(entry, path)
        _refuse_unknown(payment, f"{path}.", PAYMENT_KEYS, IGNORED_PAYMENT_KEYS)
        field = _choice(payment.get("type", _MISSING), f"{path}.type", PAYMENT_KINDS)
        sums[field] += _kopecks(payment.get("sum", _MISSING), f"{path}.sum")
    return Payments(**sums)


def _check_amount(amount: int, price: int, quantity: Decimal, path: str) -> None:
    computed = Item("", price, quantity).total
    if abs(amount - computed) > ITEM_AMOUNT_TOLERANCE:
        raise ReceiptRejected(
            f"{path}: must equal price x quantity = {_roubles(computed)}, got {_roubles(amount)}; "
            "discounts (an amount below price x quantity) are not supported yet: "
            "give the discounted price instead"
        )


def _check_total(value: Any, receipt: Receipt) -> None:
    total = _kopecks(value, "total")
    if total != receipt.total:
        raise ReceiptRejected(
            f"total: must equal the sum of the positions' amounts, {_roubles(receipt.total)}, "
            f"got {_roubles(total)}"
        )


def _check_payments_cover(receipt: Receipt) -> None:
    paid = receipt.payments.total
    if paid < receipt.total:
        raise ReceiptRejected(
            f"payments: the sums add up to {_roubles(paid)}, which does not cover the total "
            f"{_roubles(receipt.total)}"
        )
    if receipt.change > receipt.payments.cash:
        raise ReceiptRejected(
            f"payments: {_roubles(paid)} paid for a total of {_roubles(receipt.total)}; only cash "
            "can be overpaid, since change is given in cash"
        )


def _refuse_unsupported(data: Mapping[str, Any], prefix: str, keys: Mapping[str, str]) -> None:
    for key, what in keys.items():
        if _means_something(data.get(key)):
            raise ReceiptRejected(
                f"{prefix}{key}: not supported yet: the driver cannot send {what}; "
                "remove it or fiscalize this receipt another way"
            )


def _refuse_unknown(data: Mapping[str, Any], prefix: str, *allowed_sets: Iterable[str]) -> None:
    """Refuse the first key not in any of ``allowed_sets``: its path, the allowed names and the
    closest one when it looks like a misspelling."""
    allowed = sorted({name for names in allowed_sets for name in names})
    # The UNSUPPORTED_* names are known (a meaningful value is refused with its reason), but a
    # list of what may be written here must not offer them: they are named apart.
    refused = sorted({name for names in allowed_sets if _unsupported(names) for name in names})
    for key in data:
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.75)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        usable = [name for name in allowed if name not in refused]
        unsupported = f"; known but not supported yet: {_names(refused)}" if refused else ""
        raise ReceiptRejected(
            f"{prefix}{key}: unknown field{hint} (allowed here: {_names(usable)}{unsupported}); "
            "fix or remove it"
        )


def _unsupported(names: Iterable[str]) -> bool:
    """Whether ``names`` is one of the UNSUPPORTED_* tables (known, refused with a reason)."""
    tables = (UNSUPPORTED_TASK_KEYS, UNSUPPORTED_POSITION_KEYS, UNSUPPORTED_CLIENT_KEYS,
              UNSUPPORTED_PRINT_ITEM_TYPES, UNSUPPORTED_IMC_KEYS)  # fmt: skip
    return any(names is table for table in tables)


def _means_something(value: Any) -> bool:
    return value is not None and value is not False and value != "" and value != {} and value != []


# -- marking (FFD 1.2): a position's imcParams ----------------------------------------------------
#
# Field names and values as ATOL's own JSON-task scripts in DTO10 spell them (``validators.js``
# validatePositionItem, ``utils.js`` MARKING_CODE_TYPES_1_2 / MARKING_ESTIMATED_STATUS /
# ITEM_UNITS, and the position executor that hands them to libfptr; code-search index ids
# 21623530803, 21520726042, 21140569689, repository not named by the index), with the libfptr
# constants from its Python binding (id 44426917481: LIBFPTR_MES_* are the tag 2003 codes,
# LIBFPTR_IU_* the tag 2108 codes, LIBFPTR_MCT12_* the tag 2100 codes).  A real POS that sends
# them: papyrussolution/OpenPapyrus (its ATOL DTO10 JSON export, id 2433598032), the golden
# example in tests/formats/test_atol_json_marking.py.
#
# Readings chosen:
# * ``imc`` is the code in Base64 (ATOL's scripts decode it; OpenPapyrus encodes it).  ATOL's
#   script falls back to the raw text when the decoding fails; we refuse instead: a raw code
#   that happens to be valid Base64 would silently become another code, so the shop must choose.
# * ``itemInfoCheckResult`` (the 2106 bits of an earlier check) is checked for shape and not
#   used: the FN writes tag 2106 into the receipt from its own check, which the sale runs.
# * ``itemQuantity`` / ``itemUnits`` repeat the position's quantity (1023) and measure (2108) for
#   the ОИСМ request; a value that disagrees with the position is refused, not overridden.
# * ``imcBarcode`` (the product identifier) cannot be carried yet: refused.

IMC_KEYS = frozenset(
    {
        "imc",
        "imcType",
        "itemEstimatedStatus",
        "itemQuantity",
        "itemUnits",
        "imcModeProcessing",
        "itemFractionalAmount",
        "itemInfoCheckResult",
    }
)
UNSUPPORTED_IMC_KEYS: Mapping[str, str] = {
    "imcBarcode": "the product identifier of a marked item (imcBarcode)",
}

# ``imcType`` -> the code type (tag 2100) it declares; None: "auto", the driver decides.
IMC_TYPES: Mapping[str, MarkCodeType | None] = {
    "auto": None,
    "imcUnrecognized": MarkCodeType.UNKNOWN,
    "imcShort": MarkCodeType.SHORT,
    "imcFmVerifyCode88": MarkCodeType.CRYPTO_88,
    "imcVerifyCode44": MarkCodeType.CRYPTO_44_UNCHECKABLE,
    "imcFmVerifyCode44": MarkCodeType.CRYPTO_44,
    "imcVerifyCode4": MarkCodeType.CRYPTO_4_UNCHECKABLE,
}
# Whether a 44-character crypto tail is checkable depends on the FN's key table, which the code
# alone cannot tell (protocols/ffd/marking.py): the two 44 types count as one when comparing.
_SAME_TYPE = {MarkCodeType.CRYPTO_44_UNCHECKABLE: MarkCodeType.CRYPTO_44}

ESTIMATED_STATUSES: Mapping[str, PlannedStatus] = {
    "itemPieceSold": PlannedStatus.PIECE_SOLD,
    "itemDryForSale": PlannedStatus.MEASURED_IN_SALE,
    "itemPieceReturn": PlannedStatus.PIECE_RETURNED,
    "itemDryReturn": PlannedStatus.MEASURED_RETURNED,
    "itemStatusUnchanged": PlannedStatus.UNCHANGED,
}

CHECK_RESULT_KEYS = (  # 2106 bits 0..4, in ATOL's order
    "imcCheckFlag",
    "imcCheckResult",
    "imcStatusInfo",
    "imcEstimatedStatusCorrect",
    "ecrStandAloneFlag",
)

MAX_FRACTION_PART = 10**16 - 1  # tags 1293/1294: VLN of at most 8 bytes, well past any real part


@dataclass(frozen=True, slots=True)
class Marking:
    """What a position's ``imcParams`` puts into `Item`."""

    code: str  # as scanned, GS as "\x1d"
    planned_status: PlannedStatus | None
    fraction: tuple[int, int] | None
    measure: int | None


def _read_imc_params(value: Any, path: str, quantity: Decimal, measure: int | None) -> Marking:
    params = _object(value, path)
    _refuse_unknown(params, f"{path}.", IMC_KEYS, UNSUPPORTED_IMC_KEYS)
    _refuse_unsupported(params, f"{path}.", UNSUPPORTED_IMC_KEYS)
    code = _imc(params.get("imc", _MISSING), f"{path}.imc")
    declared = _optional(params, "imcType", IMC_TYPES, None, path)
    if declared is not None:
        found = parse_mark_code(code).type
        if _SAME_TYPE.get(found, found) != _SAME_TYPE.get(declared, declared):
            raise ReceiptRejected(
                f"{path}.imcType: declares {_type_name(declared)}, but the code is "
                f'{_type_name(found)}; send "auto" or the code\'s own type'
            )
    status = _optional(params, "itemEstimatedStatus", _estimated_status, None, path)
    mode = params.get("imcModeProcessing")
    if mode is not None and (isinstance(mode, bool) or mode != 0):
        raise _rejected(f"{path}.imcModeProcessing", "must be 0 (tag 2102: the only mode)", mode)
    item_quantity = params.get("itemQuantity")
    if item_quantity is not None:
        if _quantity(item_quantity, f"{path}.itemQuantity") != quantity:
            raise _rejected(
                f"{path}.itemQuantity",
                f"must equal the position's quantity {quantity}",
                item_quantity,
            )
    units = _optional(params, "itemUnits", _measure, None, path)
    if units is not None and measure is not None and units != measure:
        raise _rejected(
            f"{path}.itemUnits",
            f"must agree with the position's measurementUnit ({measure})",
            units,
        )
    fraction = _optional(params, "itemFractionalAmount", _fraction, None, path)
    check = params.get("itemInfoCheckResult")
    if check is not None:
        _check_result(check, f"{path}.itemInfoCheckResult")
    return Marking(code, status, fraction, measure if measure is not None else units)


def _imc(value: Any, path: str) -> str:
    """The code as scanned from ``imc``: Base64 that decodes to a printable ASCII code."""
    if value is _MISSING or value is None or value == "":
        raise ReceiptRejected(f"{path}: required, the marking code as scanned, in Base64")
    if not isinstance(value, str):
        raise _rejected(path, "must be the marking code as scanned, in Base64 (a string)", value)
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _rejected(
            path,
            "must be the marking code in Base64 (ATOL's JSON format); this is not Base64 -- "
            "encode the scanned code, GS characters included",
            value,
        ) from None
    if not raw or any(byte != GS and not 0x20 <= byte < 0x7F for byte in raw):
        raise ReceiptRejected(
            f"{path}: the Base64 decodes to {raw[:40]!r}, not a marking code (printable ASCII "
            "with GS separators); encode the code exactly as the scanner gave it"
        )
    code = raw.decode("ascii")
    try:
        parse_mark_code(code)
    except MarkingCodeError as error:
        raise ReceiptRejected(f"{path}: {error}") from None
    return code


def _type_name(kind: MarkCodeType) -> str:
    names = [name for name, value in IMC_TYPES.items() if value is kind]
    return f'"{names[0]}" (tag 2100 = {int(kind)})'


def _estimated_status(value: Any, path: str) -> PlannedStatus:
    # ATOL's driver takes the name or the number (parseMarkingEstimatedStatus); the numbers are
    # the tag 2003 codes (LIBFPTR_MES_*), which OpenPapyrus sends.
    if isinstance(value, int) and not isinstance(value, bool):
        if value in PlannedStatus._value2member_map_:
            return PlannedStatus(value)
        expected = ", ".join(str(int(status)) for status in PlannedStatus)
        raise _rejected(path, f"must be a tag 2003 code ({expected}) or a name", value)
    return _choice(value, path, ESTIMATED_STATUSES)


def _fraction(value: Any, path: str) -> tuple[int, int]:
    """``"1/4"``: the part of one marked unit sold (tag 1291: 1293 numerator, 1294 denominator)."""
    expected = 'a fraction of one unit below 1, "numerator/denominator" like "1/4"'
    if not isinstance(value, str):
        raise _rejected(path, f"must be {expected}", value)
    top, slash, bottom = value.strip().partition("/")
    if not (slash and top.isascii() and top.isdigit() and bottom.isascii() and bottom.isdigit()):
        raise _rejected(path, f"must be {expected}", value)
    numerator, denominator = int(top), int(bottom)
    if not 1 <= numerator < denominator <= MAX_FRACTION_PART:
        raise _rejected(path, f"must be {expected} (1 <= numerator < denominator)", value)
    return numerator, denominator


def _check_result(value: Any, path: str) -> None:
    result = _object(value, path)
    _refuse_unknown(result, f"{path}.", CHECK_RESULT_KEYS)
    for key in CHECK_RESULT_KEYS:
        if not isinstance(result.get(key), bool):
            raise _rejected(f"{path}.{key}", "required, true or false", result.get(key, _MISSING))


def _boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _rejected(path, "must be true or false", value)
    return value


# -- values ----------------------------------------------------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _optional(
    data: Mapping[str, Any],
    key: str,
    read: Callable[[Any, str], T] | Mapping[str, T],
    default: T,
    parent: str = "",
) -> T:
    """``read(value, path)`` -- or the value looked up in the ``read`` table -- for a key that may
    be absent or null (then ``default``)."""
    value = data.get(key)
    if value is None:
        return default
    path = f"{parent}.{key}" if parent else key
    return _choice(value, path, read) if isinstance(read, Mapping) else read(value, path)


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _rejected(path, "must be a JSON object", value)
    return value


def _text(value: Any, path: str, max_chars: int) -> str:
    if value is _MISSING:
        raise ReceiptRejected(f"{path}: required, a string")
    if not isinstance(value, str) or not value.strip():
        raise _rejected(path, "must be a non-empty string", value)
    if len(value) > max_chars:
        raise _rejected(path, f"must be at most {max_chars} characters", value)
    return value


def _item_name(value: Any, path: str) -> str:
    name = _text(value, path, MAX_NAME_BYTES)
    try:
        size = len(name.encode("cp1251"))
    except UnicodeEncodeError:
        raise _rejected(
            path, "must use only characters a register can print (cp1251)", name
        ) from None
    if size > MAX_NAME_BYTES:
        raise _rejected(path, f"must be at most {MAX_NAME_BYTES} bytes in cp1251", name)
    return name


def _choice(value: Any, path: str, table: Mapping[str, T]) -> T:
    if isinstance(value, str) and value in table:
        return table[value]
    expected = _names(table)
    if value is _MISSING:
        raise ReceiptRejected(f"{path}: required, one of {expected}")
    raise _rejected(path, f"must be one of {expected}", value)


def _whole(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _rejected(path, f"must be a whole number {low}..{high}", value)
    return value


def _decimal(value: Any) -> Decimal | None:
    """The exact decimal a JSON number or numeric string spells; None for anything else.

    A float is read through ``str``: its shortest repr is the literal the JSON text carried
    (0.29 stays 0.29, not 0.28999999999999998002...).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(value.strip() if isinstance(value, str) else str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _kopecks(value: Any, path: str) -> int:
    expected = "a number of roubles with at most 2 decimals"
    if value is _MISSING:
        raise ReceiptRejected(f"{path}: required, {expected}")
    roubles = _decimal(value)
    if roubles is None or not _has_places(roubles, KOPECK):
        raise _rejected(path, f"must be {expected}", value)
    if roubles < 0:
        raise _rejected(path, "must not be negative", value)
    return int(roubles * 100)


def _quantity(value: Any, path: str) -> Decimal:
    expected = "a number above 0 with at most 6 decimals"
    if value is _MISSING:
        raise ReceiptRejected(f"{path}: required, {expected}")
    quantity = _decimal(value)
    if quantity is None or not _has_places(quantity, QUANTITY_STEP) or quantity <= 0:
        raise _rejected(path, f"must be {expected}", value)
    return quantity


def _has_places(number: Decimal, step: Decimal) -> bool:
    try:
        return number == number.quantize(step)
    except InvalidOperation:  # too many digits to hold at this step: far beyond any real sum
        return False


def _names(names: Iterable[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _roubles(kopecks: int) -> str:
    return f"{Decimal(kopecks) / 100:.2f}"


def _show(value: Any) -> str:
    """The offending value as JSON text, cut short: what the shop sees in its own task."""
    if value is _MISSING:
        return "nothing"
    if isinstance(value, Decimal):
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def _rejected(path: str, expected: str, value: Any) -> ReceiptRejected:
    return ReceiptRejected(f"{path}: {expected}, got {_show(value)}")
