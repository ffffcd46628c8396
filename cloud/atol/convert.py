"""An ATOL Online request body to our vocabulary: bytes -> a validated `Order` -> a `kkt.Receipt`
or the arguments of a correction.

Choices where ATOL's documents leave room (fact sheet ``ofd-cloud-marking.md`` §2):

* A body that is not UTF-8 JSON is code 40 BadRequest ("malformed HTTP": there are no fields to
  name); JSON that is not an object, or an object that breaks a rule, is code 32
  IncomingValidationException with every failing field's path.
* Payment types 0 cash, 1 electronic, 2 prepaid, 3 credit, 4 other.  5..9 ("extended", meaning
  undocumented) are refused: guessing which FN counter they add to would misreport the shift.
* ``vat18``/``vat118`` are refused (18 % ended on 01.02.2019); v5's 5 %, 7 % and 22 % rates are
  refused until the driver's `kkt.Vat` carries them.
* VAT sums (``items[].vat.sum``, ``vats[]``) are checked for format and then left out: the register
  computes tags 1102-1107 and 1200 from the items itself.
* Fields whose tags the driver cannot send yet (agents, suppliers, nomenclature/excise/customs,
  sectoral and operating props, cashless payment details, time zone, device number) are refused
  by path, never dropped from a fiscal document.
* ``total`` may differ from the items' sum by up to 0.99 (ATOL lets a shop round it); the register
  takes the items' sum, so the payments must cover that sum.
* Marking (v5): ``mark_code.gs1m`` (Base64 of the whole code) or ``mark_code.short`` (the code
  as text) becomes `kkt.Item.mark_code`, which the sale checks with the FN and ОИСМ; the other
  kinds are product codes (tag 1163) the driver cannot send alone, refused by path.  A marked
  item has quantity 1 (ATOL's rule; a part goes in ``mark_quantity``); payment objects 31/33
  need a ``mark_code``.  v4's ``nomenclature_code`` (FFD 1.05 tag 1162) stays refused.
* Corrections: the driver's correction is a total with payments and a basis (1173/1174); the
  tax system, VAT sums, cashier and (v5) items are not carried -- `CorrectionArgs.dropped` names
  what was left out so the caller can log it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from kkt.protocols.ffd.marking import GS, MarkingCodeError, PlannedStatus, parse_mark_code
from pydantic import ValidationError

import kkt
from kkt.receipt import MAX_NAME_BYTES, contact_problem

from ..model import OPERATIONS_V4, OPERATIONS_V5, Order
from . import schema
from .errors import ApiError

KOPECK = Decimal("0.01")

OPERATIONS: dict[str, kkt.Operation] = {
    "sell": kkt.Operation.SELL,
    "sell_refund": kkt.Operation.SELL_RETURN,
    "buy": kkt.Operation.BUY,
    "buy_refund": kkt.Operation.BUY_RETURN,
    "sell_correction": kkt.Operation.SELL,
    "buy_correction": kkt.Operation.BUY,
    "sell_refund_correction": kkt.Operation.SELL_RETURN,
    "buy_refund_correction": kkt.Operation.BUY_RETURN,
}
TAX_SYSTEMS: dict[str, kkt.TaxSystem] = {
    "osn": kkt.TaxSystem.OSN,
    "usn_income": kkt.TaxSystem.USN_INCOME,
    "usn_income_outcome": kkt.TaxSystem.USN_INCOME_OUTCOME,
    "envd": kkt.TaxSystem.ENVD,
    "esn": kkt.TaxSystem.ESN,
    "patent": kkt.TaxSystem.PATENT,
}
VATS: dict[str, kkt.Vat] = {vat.value: vat for vat in kkt.Vat}
VATS_ABOLISHED = frozenset({"vat18", "vat118"})
PAYMENT_METHODS: dict[str, int] = {  # tag 1214
    "full_prepayment": 1,
    "prepayment": 2,
    "advance": 3,
    "full_payment": 4,
    "partial_payment": 5,
    "credit": 6,
    "credit_payment": 7,
}
PAYMENT_OBJECTS_V4: dict[str, int] = {  # tag 1212 (FFD 1.05 names as ATOL spells them)
    "commodity": 1,
    "excise": 2,
    "job": 3,
    "service": 4,
    "gambling_bet": 5,
    "gambling_prize": 6,
    "lottery": 7,
    "lottery_prize": 8,
    "intellectual_activity": 9,
    "payment": 10,
    "agent_commission": 11,
    "composite": 12,
    "another": 13,
    "property_right": 14,
    "non-operating_gain": 15,
    "insurance_premium": 16,
    "sales_tax": 17,
    "resort_fee": 18,
}
PAYMENT_FIELDS = ("cash", "electronic", "prepaid", "credit", "other")  # ATOL types 0..4
NOT_SUPPORTED = "is not supported by this service yet"


@dataclass(frozen=True, slots=True)
class CorrectionArgs:
    """What `kkt.Register.correction` takes for one correction request.

    ``dropped`` names the request's fields the driver's correction cannot carry (their paths).
    """

    operation: kkt.Operation
    total: int  # kopecks
    payments: kkt.Payments
    basis: kkt.CorrectionBasis
    dropped: tuple[str, ...] = ()


# -- bytes -> Order ------------------------------------------------------------------------------


def to_order(api: int, operation: str, group: str, raw: bytes) -> Order:
    """Validate one request body; raise `ApiError` (31, 40 or 32 with every problem's path)."""
    return to_order_converted(api, operation, group, raw)[0]


def to_order_converted(
    api: int, operation: str, group: str, raw: bytes
) -> tuple[Order, kkt.Receipt | CorrectionArgs | None]:
    """`to_order`, and what the register gets for it: the receipt `order_receipt` would make
    (or the correction's arguments, `order_correction`; None where neither would make one) --
    validating made it already, and a worker that is handed it need not validate and convert
    the body a second time."""
    allowed = OPERATIONS_V4 if api == 4 else OPERATIONS_V5
    if api not in (4, 5):
        raise ApiError.bad_request(f"API version {api} is not served: use v4 or v5")
    if operation not in allowed:
        raise ApiError.incoming_operation_not_supported(operation, allowed)
    body = load_body(raw)
    model = _validate(api, operation, body)
    problems: list[str] = []
    made = _convert(api, operation, model, problems, None)
    if problems:
        raise ApiError.incoming_validation_exception(problems)
    document = model.correction if _is_correction(model) else model.receipt  # type: ignore[union-attr]
    callback = model.service.callback_url if model.service else None
    order = Order(
        api=api,
        group=group,
        operation=operation,
        external_id=model.external_id,
        body=body,
        fingerprint=fingerprint(body, api, operation),
        callback_url=callback or None,
        inn=document.company.inn,
    )
    return order, made


def order_receipt(order: Order, *, tax_system: kkt.TaxSystem | None = None) -> kkt.Receipt:
    """The receipt of a validated sell/buy/refund `Order`.

    ``tax_system`` is used when the request leaves ``company.sno`` out (ATOL allows that for a
    company with one tax system): pass the register's registered one.  Without either it is OSN;
    the driver refuses a receipt whose tax system the register is not registered for (tag
    1062), so a guess can fail the receipt with a clear reason but never misreport it.
    """
    model = _validate(order.api, order.operation, order.body)
    if _is_correction(model):
        raise ValueError(f"{order.operation} is a correction: use order_correction")
    problems: list[str] = []
    made = _convert(order.api, order.operation, model, problems, tax_system)
    if problems or not isinstance(made, kkt.Receipt):
        raise ApiError.incoming_validation_exception(problems)
    return made


def order_correction(order: Order) -> CorrectionArgs:
    """The correction arguments of a validated ``*_correction`` `Order`."""
    model = _validate(order.api, order.operation, order.body)
    if not _is_correction(model):
        raise ValueError(f"{order.operation} is not a correction: use order_receipt")
    problems: list[str] = []
    made = _convert(order.api, order.operation, model, problems, None)
    if problems or not isinstance(made, CorrectionArgs):
        raise ApiError.incoming_validation_exception(problems)
    return made


# -- the body as JSON ----------------------------------------------------------------------------


def load_body(raw: bytes) -> dict[str, Any]:
    """Bytes -> a JSON object with exact numbers (`Decimal`), or `ApiError` 40/32."""
    try:
        text = raw.decode("utf-8-sig")  # a BOM some Windows clients send is not content
    except UnicodeDecodeError as error:
        raise ApiError.bad_request(f"the body is not UTF-8 text ({error.reason})") from None
    try:
        body = json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        raise ApiError.bad_request(f"the body is not JSON: {_short(str(error))}") from None
    if not isinstance(body, dict):
        raise ApiError.incoming_validation_exception(
            [f"(body): must be a JSON object, got {type(body).__name__}"]
        )
    return body


def body_json(body: Any) -> str:
    """``body`` as JSON text with its `Decimal` numbers written exactly as numbers (what storage
    keeps; `load_body` reads it back to an equal body)."""
    if isinstance(body, dict):
        return (
            "{"
            + ",".join(
                f"{json.dumps(str(k), ensure_ascii=False)}:{body_json(v)}" for k, v in body.items()
            )
            + "}"
        )
    if isinstance(body, list):
        return "[" + ",".join(body_json(v) for v in body) + "]"
    if isinstance(body, Decimal):
        return str(body)
    return json.dumps(body, ensure_ascii=False)


def fingerprint(body: dict[str, Any], api: int, operation: str) -> str:
    """sha256 hex of what identifies a request: its API version, its operation and the canonical
    body without its top-level ``timestamp`` (a client's retry regenerates it): sorted keys,
    compact, numbers as their decimal text.

    The operation is part of it because shops reuse the order number as ``external_id``: a full
    refund has exactly the sale's body, and must be refused as a changed request (409, code 33),
    never answered with the sale's uuid as if it had been registered."""
    rest = {key: value for key, value in body.items() if key != "timestamp"}
    canonical = json.dumps(
        {"api": api, "operation": operation, "body": rest},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _short(text: str) -> str:
    return text if len(text) <= 120 else text[:117] + "..."


# -- validation ----------------------------------------------------------------------------------


def _validate(api: int, operation: str, body: dict[str, Any]) -> schema.Request:
    try:
        return schema.request_model(api, operation).model_validate(body)
    except ValidationError as error:
        raise ApiError.incoming_validation_exception(problems_of(error)) from None


def problems_of(error: ValidationError) -> list[str]:
    """Pydantic's errors as ``path: what is wrong`` lines, in the body's own words."""
    lines = []
    for item in error.errors(include_url=False):
        path = _path(item["loc"])
        lines.append(f"{path}: {_message(item)}")
    return lines


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.startswith(("function-", "union[")) or "[" in part:
            continue  # pydantic's own validator names, not the body's
        else:
            text += f".{part}" if text else part
    return text or "(body)"


def _message(item: Any) -> str:
    kind = item["type"]
    ctx = item.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field ATOL defines here (check the spelling)"
    if kind == "value_error":
        return str(ctx.get("error", item["msg"]))
    if kind == "string_type":
        return f"must be a string, got {_shown(item.get('input'))}"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in ("too_short", "too_long"):
        return f"must have {_bounds(ctx)}, got {ctx.get('actual_length')}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be an object, got {_shown(item.get('input'))}"
    if kind == "list_type":
        return f"must be an array, got {_shown(item.get('input'))}"
    if kind in ("int_type", "int_from_float", "int_parsing"):
        return f"must be a whole number, got {_shown(item.get('input'))}"
    if kind == "bool_type":
        return f"must be true or false, got {_shown(item.get('input'))}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {_shown(item.get('input'))}"
    if kind in ("greater_than_equal", "less_than_equal"):
        return f"{item['msg'].lower()}, got {_shown(item.get('input'))}"
    return str(item["msg"])


def _bounds(ctx: dict[str, Any]) -> str:
    low, high = ctx.get("min_length"), ctx.get("max_length")
    bound, limit = ("at least", low) if low is not None else ("at most", high)
    return f"{bound} {limit} {'entry' if limit == 1 else 'entries'}"


def _shown(value: Any) -> str:
    text = repr(value)
    if isinstance(value, Decimal):
        text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_correction(model: schema.Request) -> bool:
    return isinstance(model, schema.CorrectionRequestV4 | schema.CorrectionRequestV5)


# -- model -> receipt / correction ---------------------------------------------------------------


def _convert(
    api: int,
    operation: str,
    model: schema.Request,
    problems: list[str],
    tax_system: kkt.TaxSystem | None,
) -> kkt.Receipt | CorrectionArgs | None:
    """Build what the register gets, appending every problem (``path: text``) to ``problems``."""
    add: Callable[[str, str], None] = lambda path, text: problems.append(f"{path}: {text}")  # noqa: E731
    if isinstance(model, schema.CorrectionRequestV4 | schema.CorrectionRequestV5):
        return _correction(operation, model, add)
    receipt = model.receipt
    listed: list[schema.ItemV4 | schema.ItemV5] = list(receipt.items)
    items = tuple(_item(f"receipt.items[{i}]", item, add) for i, item in enumerate(listed))
    _check_total("receipt", receipt.items, receipt.total, add)
    payments = _payments("receipt.payments", receipt.payments, add)
    vats: list[schema.VatV4Item | schema.VatV5Item] = list(receipt.vats or ())
    for index, vat in enumerate(vats):
        _vat(f"receipt.vats[{index}].type", vat.type, add)  # checked, then left to the register
    _refuse_present(receipt, "receipt", ("agent_info", "supplier_info"), add)
    if isinstance(receipt, schema.ReceiptV5):
        _refuse_present(
            receipt,
            "receipt",
            (
                "operating_check_props",
                "sectoral_check_props",
                "cashless_payments",
                "device_number",
                "timezone",
            ),
            add,
        )
    contact = _buyer_contact("receipt.client", receipt.client, add)
    extra = _receipt_extra(receipt)
    sno = receipt.company.sno
    if problems:
        return None
    made = kkt.Receipt(
        items=tuple(item for item in items if item is not None),
        payments=payments,
        operation=OPERATIONS[operation],
        tax_system=TAX_SYSTEMS[sno] if sno else (tax_system or kkt.TaxSystem.OSN),
        cashier=receipt.cashier or None,
        buyer_contact=contact,
        extra=extra,
    )
    try:
        made.validate()
    except kkt.ReceiptRejected as error:
        add("receipt", str(error))
        return None
    return made


def _item(
    path: str, item: schema.ItemV4 | schema.ItemV5, add: Callable[[str, str], None]
) -> kkt.Item | None:
    expected = (item.price * item.quantity).quantize(KOPECK, rounding=ROUND_HALF_UP)
    if expected > schema.MAX_MONEY:
        add(f"{path}.price", f"price x quantity = {expected} is over {schema.MAX_MONEY}")
    elif abs(item.sum - expected) > schema.SUM_TOLERANCE:
        add(f"{path}.sum", f"{item.sum} differs from price x quantity = {expected}")
    try:
        size = len(item.name.encode("cp1251"))
    except UnicodeEncodeError:
        add(f"{path}.name", "has characters a register cannot print (cp1251)")
    else:
        if size > MAX_NAME_BYTES:
            add(f"{path}.name", f"is {size} bytes in the register's code page; at most 128")
    vat = _vat(f"{path}.vat.type", item.vat.type, add)
    _refuse_present(item, path, ("agent_info", "supplier_info", "excise", "country_code"), add)
    _refuse_present(item, path, ("declaration_number",), add)
    extra: list[tuple[int, object]] = []
    measure: int | None = None
    if isinstance(item, schema.ItemV4):
        _refuse_present(item, path, ("nomenclature_code",), add)
        subject = PAYMENT_OBJECTS_V4[item.payment_object]
        if item.measurement_unit:
            extra.append((1197, item.measurement_unit))
    else:
        subject = item.payment_object
        measure = item.measure
        _refuse_present(item, path, ("sectoral_item_props", "wholesale"), add)
    marking = _marking(path, item, add) if isinstance(item, schema.ItemV5) else None
    if item.user_data:
        extra.append((1191, item.user_data))
    if vat is None:
        return None
    return kkt.Item(
        name=item.name,
        price=_kopecks(item.price),
        quantity=item.quantity,
        vat=vat,
        payment_method=PAYMENT_METHODS[item.payment_method],
        payment_subject=subject,  # 1 / 2 with a mark_code: 33 / 31 (`kkt.Item` applies it)
        amount=_kopecks(item.sum),
        measure=measure,
        extra=tuple(extra),
        mark_code=marking.code if marking else None,
        planned_status=marking.planned_status if marking else None,
        mark_quantity=marking.fraction if marking else None,
    )


@dataclass(frozen=True, slots=True)
class Marking:
    """What a v5 item's marking fields put into `kkt.Item`."""

    code: str  # as scanned, GS as "\x1d"
    planned_status: PlannedStatus | None
    fraction: tuple[int, int] | None


def _marking(path: str, item: schema.ItemV5, add: Callable[[str, str], None]) -> Marking | None:
    """The item's marking code, checked (problems go to ``add``); None when it has none."""
    mark = item.mark_code
    if mark is None:
        if item.payment_object in schema.MARKED_PAYMENT_OBJECTS_V5:
            add(
                f"{path}.payment_object",
                f"{item.payment_object} is marked goods: give the item's mark_code too "
                '(e.g. {"gs1m": "<the code in Base64>"})',
            )
        for name in ("mark_quantity", "mark_processing_mode", "planned_status"):
            if getattr(item, name) is not None:
                add(f"{path}.{name}", "is for marked goods: give mark_code too")
        return None
    if item.quantity != 1:
        # ATOL: "quantity must be 1 when mark_code is sent"; a part goes in mark_quantity.
        add(
            f"{path}.quantity",
            f"must be 1 for a marked item (a part: mark_quantity), got {item.quantity}",
        )
    code: str | None = None
    if mark.gs1m is not None:
        code = _gs1m(f"{path}.mark_code.gs1m", mark.gs1m, add)
    elif mark.short is not None:
        code = _short_code(f"{path}.mark_code.short", mark.short, add)
    else:
        kind = next(name for name in type(mark).model_fields if getattr(mark, name) is not None)
        add(
            f"{path}.mark_code.{kind}",
            f"{NOT_SUPPORTED}: the driver sells marked goods by the code the FN checks "
            "(gs1m, the whole code in Base64, or short); it cannot send a product code "
            "(tag 1163) on its own",
        )
    if code is None:
        return None
    status = PlannedStatus(item.planned_status) if item.planned_status is not None else None
    part = item.mark_quantity
    return Marking(code, status, (part.numerator, part.denominator) if part else None)


def _gs1m(path: str, text: str, add: Callable[[str, str], None]) -> str | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        add(path, "must be the whole marking code (GS characters included) in Base64")
        return None
    if not raw or any(byte != GS and not 0x20 <= byte < 0x7F for byte in raw):
        add(path, f"decodes to {raw[:40]!r}, not a marking code (printable ASCII with GS)")
        return None
    return _short_code(path, raw.decode("ascii"), add)


def _short_code(path: str, code: str, add: Callable[[str, str], None]) -> str | None:
    try:
        parse_mark_code(code)
    except MarkingCodeError as error:
        add(path, str(error))
        return None
    return code


def _vat(path: str, name: str, add: Callable[[str, str], None]) -> kkt.Vat | None:
    if name in VATS_ABOLISHED:
        add(path, f"{name} (18 %) is refused since 01.02.2019: use vat20 or vat120")
        return None
    vat = VATS.get(name)
    if vat is None:
        add(path, f"{name} {NOT_SUPPORTED} (the register's tax table has no such rate)")
    return vat


def _check_total(
    path: str, items: list[Any], total: Decimal, add: Callable[[str, str], None]
) -> None:
    items_sum = sum((item.sum for item in items), Decimal(0))
    if abs(items_sum - total) > schema.TOTAL_TOLERANCE:
        add(
            f"{path}.total",
            f"{total} differs from the items' sum {items_sum} by more than "
            f"{schema.TOTAL_TOLERANCE}",
        )


def _payments(
    path: str, payments: list[schema.Payment], add: Callable[[str, str], None]
) -> kkt.Payments:
    kopecks = dict.fromkeys(PAYMENT_FIELDS, 0)
    for index, payment in enumerate(payments):
        if payment.type >= len(PAYMENT_FIELDS):
            add(
                f"{path}[{index}].type",
                f"{payment.type} (ATOL's extended types 5..9) {NOT_SUPPORTED}: use 0 cash, "
                "1 electronic, 2 prepaid, 3 credit or 4 other",
            )
            continue
        kopecks[PAYMENT_FIELDS[payment.type]] += _kopecks(payment.sum)
    return kkt.Payments(**kopecks)


def _buyer_contact(
    path: str, client: schema.ClientV4 | None, add: Callable[[str, str], None]
) -> str | None:
    """Tag 1008: the e-mail when both are given (ATOL: "e-mail only"), else the phone."""
    if client is None:
        add(path, "is required: a cloud receipt goes to the buyer's e-mail or phone")
        return None
    if client.email:
        field, contact = "email", client.email
    elif client.phone:
        field, contact = "phone", _phone(client.phone)
    else:
        add(path, "needs email or phone (tag 1008): a cloud receipt is sent to the buyer")
        return None
    problem = contact_problem(contact)
    if problem:
        add(f"{path}.{field}", f"{problem}, got {contact!r}")
    return contact


def _phone(phone: str) -> str:
    """ATOL lets "+7" be left out: 10 digits get it, 11 starting with 7 get the "+"."""
    if re.fullmatch(r"[0-9]{10}", phone):
        return "+7" + phone
    if re.fullmatch(r"7[0-9]{10}", phone):
        return "+" + phone
    return phone


def _receipt_extra(receipt: schema.ReceiptV4 | schema.ReceiptV5) -> tuple[tuple[int, object], ...]:
    company = receipt.company
    extra: list[tuple[int, object]] = [(1117, company.email), (1187, company.payment_address)]
    if receipt.additional_check_props:
        extra.append((1192, receipt.additional_check_props))
    if receipt.additional_user_props:
        props = receipt.additional_user_props
        extra.append((1084, [(1085, props.name), (1086, props.value)]))
    if isinstance(receipt, schema.ReceiptV5):
        if receipt.company.location:
            extra.append((1009, receipt.company.location))
        if receipt.cashier_inn:
            extra.append((1203, receipt.cashier_inn))
        if receipt.internet:
            extra.append((1125, b"\x01"))  # FFD 1.2 "settlement on the Internet": a byte 1
        buyer = _buyer_details(receipt.client)
        if buyer:
            extra.append((1256, buyer))
    return tuple(extra)


def _buyer_details(client: schema.ClientV5) -> list[tuple[int, object]]:
    """FFD 1.2 tag 1256 (the buyer): name 1227, INN 1228 and the identity document's fields."""
    fields = (
        (1227, client.name),
        (1228, client.inn),
        (1243, client.birthdate),
        (1244, client.citizenship),
        (1245, client.document_code),
        (1246, client.document_data),
        (1254, client.address),
    )
    return [(tag, value) for tag, value in fields if value]


def _refuse_present(
    model: Any, path: str, names: tuple[str, ...], add: Callable[[str, str], None]
) -> None:
    for name in names:
        if getattr(model, name) is not None:
            add(f"{path}.{name}", f"{NOT_SUPPORTED}: the driver cannot send its tags")


def _correction(
    operation: str,
    model: schema.CorrectionRequestV4 | schema.CorrectionRequestV5,
    add: Callable[[str, str], None],
) -> CorrectionArgs | None:
    correction = model.correction
    payments = _payments("correction.payments", correction.payments, add)
    info = correction.correction_info
    dropped = ["correction.company.sno", "correction.cashier", "correction.vats"]
    if isinstance(correction, schema.CorrectionV5):
        for index, item in enumerate(correction.items):
            _item(f"correction.items[{index}]", item, add)  # checked, then not carried
            if item.mark_code is not None:  # never dropped: a marked item is refused here
                add(
                    f"correction.items[{index}].mark_code",
                    f"{NOT_SUPPORTED} in a correction: the driver's correction carries no items",
                )
        _check_total("correction", correction.items, correction.total, add)
        total = _kopecks(correction.total)
        if payments.total != total:
            add(
                "correction.payments",
                f"add up to {_roubles(payments.total)}, the total is {correction.total}",
            )
        dropped += ["correction.items", "correction.client", "correction.cashier_inn"]
        name = ""
    else:
        total = payments.total
        name = correction.correction_info.base_name
    vats: list[schema.VatV4Item | schema.VatV5Item] = list(correction.vats or ())
    for index, vat in enumerate(vats):
        _vat(f"correction.vats[{index}].type", vat.type, add)
    basis = kkt.CorrectionBasis(
        by_order=info.type == "instruction",
        settled_on=_day(info.base_date),
        number=info.base_number or "",
        name=name,
    )
    try:
        basis.check()
    except kkt.ReceiptRejected as error:
        add("correction.correction_info", str(error))
    if total <= 0:
        add("correction.payments", "a correction needs a total above 0")
    present = [path for path in dropped if _present(model, path)]
    return CorrectionArgs(OPERATIONS[operation], total, payments, basis, tuple(present))


def _present(model: Any, path: str) -> bool:
    value: Any = model
    for part in path.split("."):
        value = getattr(value, part, None)
    return value is not None


def _day(text: str) -> date:
    return datetime.strptime(text, "%d.%m.%Y").date()


def _kopecks(roubles: Decimal) -> int:
    return int(roubles * 100)  # exact: the schema allows at most 2 decimals


def _roubles(kopecks: int) -> str:
    return f"{kopecks // 100}.{kopecks % 100:02d}"
