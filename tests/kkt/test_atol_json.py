"""ATOL's JSON task shape: tasks read into `Receipt`s, `FiscalResult`s answered as fiscalParams."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kkt import (
    FiscalResult,
    Item,
    Operation,
    Payments,
    Receipt,
    ReceiptRejected,
    TaxSystem,
    Vat,
)
from kkt.formats.atol_json import fiscal_params, receipt_from_atol
from kkt.receipt import MAX_SUM

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "receipt.json"

# The tables as the fact sheets spell them, written out here rather than read from the module, so
# a wrong entry there is caught instead of copied.
OPERATIONS = {
    "sell": Operation.SELL,
    "sellReturn": Operation.SELL_RETURN,
    "buy": Operation.BUY,
    "buyReturn": Operation.BUY_RETURN,
}
TAX_SYSTEMS = {
    "osn": TaxSystem.OSN,
    "usnIncome": TaxSystem.USN_INCOME,
    "usnIncomeOutcome": TaxSystem.USN_INCOME_OUTCOME,
    "envd": TaxSystem.ENVD,
    "esn": TaxSystem.ESN,
    "patent": TaxSystem.PATENT,
}
VATS = {
    "none": Vat.NONE,
    "vat0": Vat.VAT0,
    "vat10": Vat.VAT10,
    "vat20": Vat.VAT20,
    "vat110": Vat.VAT110,
    "vat120": Vat.VAT120,
}
PAYMENT_METHODS = {
    "fullPrepayment": 1,
    "prepayment": 2,
    "advance": 3,
    "fullPayment": 4,
    "partialPayment": 5,
    "credit": 6,
    "creditPayment": 7,
}
PAYMENT_OBJECTS = {
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
    "commodityWithoutMarking": 32,
}
PAYMENT_FIELDS = {
    "cash": "cash",
    "electronically": "electronic",
    "prepaid": "prepaid",
    "credit": "credit",
    "other": "other",
}
MEASURES = [0, 10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 70, 71, 72, 73, 80, 81, 82]


def task(**changes: Any) -> dict[str, Any]:
    """A small valid sell task: one position of 100.00 paid in cash."""
    base: dict[str, Any] = {
        "type": "sell",
        "items": [
            {
                "type": "position",
                "name": "Чай",
                "price": 100.00,
                "quantity": 1,
                "amount": 100.00,
                "tax": {"type": "vat20"},
            }
        ],
        "payments": [{"type": "cash", "sum": 100.00}],
    }
    base.update(changes)
    return base


def position(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = copy.deepcopy(task()["items"][0])
    item.update(changes)
    return item


def one_item(**changes: Any) -> Item:
    return receipt_from_atol(task(items=[position(**changes)])).items[0]


# -- the example file ------------------------------------------------------------------------------


EXPECTED_EXAMPLE = Receipt(
    items=(
        Item(
            "Кофе капучино 300 мл",
            19_900,
            Decimal(2),
            Vat.VAT20,
            payment_method=4,
            payment_subject=1,
            amount=39_800,
            measure=0,
        ),
        Item(
            "Круассан с миндалём",
            14_500,
            Decimal(1),
            Vat.VAT10,
            payment_method=4,
            payment_subject=1,
            amount=14_500,
            measure=0,
        ),
        Item(
            "Вода питьевая негазированная",
            7_000,
            Decimal("1.5"),
            Vat.NONE,
            payment_method=4,
            payment_subject=1,
            amount=10_500,
            measure=41,
        ),
    ),
    payments=Payments(cash=30_000, electronic=34_800),
    operation=Operation.SELL,
    tax_system=TaxSystem.OSN,
    cashier="Петрова А.",
    buyer_contact="+79990000000",
)


def test_the_example_file_is_the_expected_receipt() -> None:
    data = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert receipt_from_atol(data) == EXPECTED_EXAMPLE


def test_the_example_file_read_with_decimal_floats_is_the_same_receipt() -> None:
    data = json.loads(EXAMPLE.read_text(encoding="utf-8"), parse_float=Decimal)
    assert receipt_from_atol(data) == EXPECTED_EXAMPLE


def test_the_example_pays_its_total_exactly() -> None:
    assert EXPECTED_EXAMPLE.total == 64_800 == EXPECTED_EXAMPLE.payments.total


# -- the mapping tables ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "operation"), OPERATIONS.items())
def test_task_type_is_the_operation(name: str, operation: Operation) -> None:
    assert receipt_from_atol(task(type=name)).operation is operation


def test_a_task_without_type_is_a_sale() -> None:
    data = task()
    del data["type"]
    assert receipt_from_atol(data).operation is Operation.SELL


def test_an_explicit_operation_overrides_the_task_type() -> None:
    receipt = receipt_from_atol(task(type="sell"), operation=Operation.SELL_RETURN)
    assert receipt.operation is Operation.SELL_RETURN


@pytest.mark.parametrize(("name", "system"), TAX_SYSTEMS.items())
def test_taxation_type_is_the_tax_system(name: str, system: TaxSystem) -> None:
    assert receipt_from_atol(task(taxationType=name)).tax_system is system


def test_the_default_tax_system_is_osn() -> None:
    assert receipt_from_atol(task()).tax_system is TaxSystem.OSN


@pytest.mark.parametrize(("name", "vat"), VATS.items())
def test_tax_type_is_the_vat(name: str, vat: Vat) -> None:
    assert one_item(tax={"type": name}).vat is vat


@pytest.mark.parametrize(("name", "code"), PAYMENT_METHODS.items())
def test_payment_method_is_tag_1214(name: str, code: int) -> None:
    assert one_item(paymentMethod=name).payment_method == code


@pytest.mark.parametrize(("name", "code"), PAYMENT_OBJECTS.items())
def test_payment_object_is_tag_1212(name: str, code: int) -> None:
    assert one_item(paymentObject=name).payment_subject == code


def test_item_defaults_are_full_payment_commodity_department_1_no_measure() -> None:
    item = one_item()
    assert (item.payment_method, item.payment_subject, item.department, item.measure) == (
        4,
        1,
        1,
        None,
    )


@pytest.mark.parametrize("code", MEASURES)
def test_measurement_unit_is_tag_2108(code: int) -> None:
    assert one_item(measurementUnit=code).measure == code


def test_department_is_kept() -> None:
    assert one_item(department=7).department == 7


@pytest.mark.parametrize(("name", "field"), PAYMENT_FIELDS.items())
def test_payment_type_is_the_payments_field(name: str, field: str) -> None:
    receipt = receipt_from_atol(task(payments=[{"type": name, "sum": 100.00}]))
    assert receipt.payments == Payments(**{field: 10_000})


def test_repeated_payment_types_add_up() -> None:
    payments = [
        {"type": "electronically", "sum": 30.10},
        {"type": "cash", "sum": 20},
        {"type": "electronically", "sum": 49.90},
        {"type": "cash", "sum": 5},
    ]
    receipt = receipt_from_atol(task(payments=payments))
    assert receipt.payments == Payments(cash=2_500, electronic=8_000)
    assert receipt.change == 500


def test_operator_and_client() -> None:
    receipt = receipt_from_atol(
        task(
            operator={"name": "Иванов И.", "vatin": "123456789012"},
            clientInfo={"emailOrPhone": "shop@example.ru"},
        )
    )
    assert receipt.cashier == "Иванов И."
    assert receipt.extra == ((1203, "123456789012"),)
    assert receipt.buyer_contact == "shop@example.ru"


def test_print_only_items_are_skipped() -> None:
    items = [
        {"type": "text", "text": "Добро пожаловать"},
        position(name="Хлеб"),
        {"type": "barcode", "barcode": "123", "barcodeType": "EAN13"},
        {"type": "pictureFromMemory", "pictureNumber": 1},
        {"type": "pixels", "pixels": "AAAA", "width": 8},
    ]
    receipt = receipt_from_atol(task(items=items))
    assert [item.name for item in receipt.items] == ["Хлеб"]


def test_print_only_options_are_ignored() -> None:
    data = task(
        electronically=False,
        ignoreNonFiscalPrintErrors=True,
        preItems=[{"type": "text", "text": "до"}],
        postItems=[{"type": "text", "text": "после"}],
        customParameters={"a": 1},
        agentInfo=None,
        taxes=[],
    )
    assert receipt_from_atol(data) == receipt_from_atol(task())


def test_the_documented_fields_we_ignore_are_accepted_at_every_level() -> None:
    """ATOL's format documents them; they change paper, not the fiscal document."""
    data = task(
        items=[
            position(
                infoDiscountAmount=0,
                piece=True,
                additionalAttributePrint=False,
                userParam3="a",
                userParam4="b",
                userParam5="c",
                userParam6="d",
            )
        ],
        payments=[{"type": "cash", "sum": 1000, "printItems": [{"type": "text", "text": "x"}]}],
    )
    receipt_from_atol(data)


def test_numeric_strings_are_money_too() -> None:
    item = one_item(price="12.50", quantity="2", amount="25.00")
    assert (item.price, item.quantity, item.amount) == (1_250, Decimal(2), 2_500)


# -- money never loses a kopeck --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("roubles", "kopecks"),
    [
        (0.29, 29),  # int(0.29 * 100) == 28
        (0.57, 57),  # int(0.57 * 100) == 56
        (1.15, 115),  # 1.15 * 100 == 114.99999999999999
        (0.1 + 0.2, None),  # 0.30000000000000004: more than 2 decimals, refused
        (1234567.89, 123_456_789),
        (19.99, 1_999),
        (42949672.95, 4_294_967_295),
        (0, 0),
        (7, 700),
    ],
)
def test_roubles_become_exact_kopecks(roubles: float, kopecks: int | None) -> None:
    data = task(
        items=[position(price=roubles, amount=roubles)],
        payments=[{"type": "cash", "sum": roubles}],
        total=roubles,
    )
    if kopecks is None:
        with pytest.raises(ReceiptRejected, match=r"^items\[0\]\.price: "):
            receipt_from_atol(data)
        return
    receipt = receipt_from_atol(json.loads(json.dumps(data)))
    assert receipt.items[0].price == receipt.items[0].amount == kopecks
    assert receipt.payments.cash == receipt.total == kopecks


def test_fractional_quantity_times_price_stays_exact() -> None:
    item = one_item(price=0.1, quantity=3, amount=0.3)
    assert (item.price, item.amount, item.total) == (10, 30, 30)


# -- refusals name the path ------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], Any]


def _set_item(index: int, **changes: Any) -> Mutation:
    return lambda data: data["items"][index].update(changes)


REFUSALS: list[tuple[str, Mutation, str]] = [
    (
        "price with 3 decimals",
        _set_item(0, price=12.345),
        r"items[0].price: must be a number of roubles with at most 2 decimals, got 12.345",
    ),
    (
        "price string with 3 decimals",
        _set_item(0, price="12.345"),
        'items[0].price: must be a number of roubles with at most 2 decimals, got "12.345"',
    ),
    ("price as bool", _set_item(0, price=True), "items[0].price: must be a number"),
    ("quantity as bool", _set_item(0, quantity=True), "items[0].quantity: must be a number"),
    ("amount as bool", _set_item(0, amount=False), "items[0].amount: must be a number"),
    ("department as bool", _set_item(0, department=True), "items[0].department: must be a whole"),
    (
        "payment sum as bool",
        lambda d: d.update(payments=[{"type": "cash", "sum": True}]),
        "payments[0].sum: must be a number",
    ),
    ("price NaN", _set_item(0, price="NaN"), "items[0].price: must be a number"),
    ("price Infinity", _set_item(0, price=float("inf")), "items[0].price: must be a number"),
    ("price not numeric", _set_item(0, price="12,50"), "items[0].price: must be a number"),
    ("price as list", _set_item(0, price=[1]), "items[0].price: must be a number"),
    ("price missing", lambda d: d["items"][0].pop("price"), "items[0].price: required"),
    ("negative price", _set_item(0, price=-1, amount=-1), "items[0].price: must not be negative"),
    (
        "negative payment",
        lambda d: d["payments"].append({"type": "credit", "sum": -5}),
        "payments[1].sum: must not be negative",
    ),
    ("quantity 0", _set_item(0, quantity=0), "items[0].quantity: must be a number above 0"),
    (
        "quantity with 7 decimals",
        _set_item(0, quantity=0.0000001),
        "items[0].quantity: must be a number above 0 with at most 6 decimals",
    ),
    (
        "amount is not price x quantity",
        _set_item(0, amount=90.00),
        "items[0].amount: must equal price x quantity = 100.00, got 90.00",
    ),
    (
        "string measurementUnit",
        _set_item(0, measurementUnit="шт"),
        "items[0].measurementUnit: must be the FFD 1.2 measure code (tag 2108) as a number",
    ),
    (
        "unknown measure code",
        _set_item(0, measurementUnit=5),
        "items[0].measurementUnit: must be an FFD 1.2 measure code",
    ),
    ("unknown tax", _set_item(0, tax={"type": "vat18"}), 'items[0].tax.type: must be one of "'),
    ("tax as list", _set_item(0, tax={"type": ["vat20"]}), "items[0].tax.type: must be one of"),
    ("tax missing", lambda d: d["items"][0].pop("tax"), "items[0].tax: required"),
    ("tax not an object", _set_item(0, tax="vat20"), "items[0].tax: must be a JSON object"),
    ("tax sum", _set_item(0, tax={"type": "vat20", "sum": 16.67}), "items[0].tax.sum: not supp"),
    ("vat22", _set_item(0, tax={"type": "vat22"}), 'items[0].tax.type: "vat22" is not supported'),
    (
        "vat5",
        _set_item(0, tax={"type": "vat5"}),
        'items[0].tax.type: "vat5" is not supported yet by this register model',
    ),
    ("vat107", _set_item(0, tax={"type": "vat107"}), 'items[0].tax.type: "vat107" is not'),
    (
        "unknown paymentMethod",
        _set_item(0, paymentMethod="full"),
        'items[0].paymentMethod: must be one of "fullPrepayment"',
    ),
    (
        "numeric paymentMethod",
        _set_item(0, paymentMethod=4),
        "items[0].paymentMethod: must be one of",
    ),
    (
        "unknown paymentObject",
        _set_item(0, paymentObject="goods"),
        "items[0].paymentObject: must be one of",
    ),
    (
        "marked goods without a code",
        _set_item(0, paymentObject="commodityWithMarking"),
        'items[0].paymentObject: "commodityWithMarking" is marked goods: give the item\'s marking',
    ),
    (
        "payments not covering the total",
        lambda d: d.update(payments=[{"type": "cash", "sum": 99.99}]),
        "payments: the sums add up to 99.99, which does not cover the total 100.00",
    ),
    (
        "non-cash overpaid",
        lambda d: d.update(payments=[{"type": "electronically", "sum": 100.01}]),
        "payments: 100.01 paid for a total of 100.00; only cash can be overpaid",
    ),
    (
        "numeric payment type",
        lambda d: d.update(payments=[{"type": 0, "sum": 100}]),
        'payments[0].type: must be one of "cash", "electronically"',
    ),
    (
        "unknown payment type",
        lambda d: d.update(payments=[{"type": "card", "sum": 100}]),
        'payments[0].type: must be one of "cash"',
    ),
    ("payments missing", lambda d: d.pop("payments"), "payments: required"),
    ("payments not a list", lambda d: d.update(payments={"cash": 100}), "payments: must be a list"),
    ("payment not an object", lambda d: d.update(payments=[100]), "payments[0]: must be a JSON"),
    (
        "total mismatch",
        lambda d: d.update(total=100.01),
        "total: must equal the sum of the positions' amounts, 100.00, got 100.01",
    ),
    ("total not a number", lambda d: d.update(total="сто"), "total: must be a number of roubles"),
    (
        "marking code",
        _set_item(0, markingCode="010460406000600021N4N57RSCBUZTQ"),
        "items[0].markingCode: not supported yet: the driver cannot send the FFD 1.05 marking",
    ),
    ("imcParams, no imc", _set_item(0, imcParams={"imcType": "auto"}), "items[0].imcParams.imc"),
    ("item agentInfo", _set_item(0, agentInfo={"agents": ["another"]}), "items[0].agentInfo: not"),
    ("supplierInfo", _set_item(0, supplierInfo={"vatin": "1"}), "items[0].supplierInfo: not supp"),
    ("nomenclatureCode", _set_item(0, nomenclatureCode="AAA"), "items[0].nomenclatureCode: not"),
    ("task agentInfo", lambda d: d.update(agentInfo={"agents": ["x"]}), "agentInfo: not supported"),
    ("receipt taxes", lambda d: d.update(taxes=[{"type": "vat20", "sum": 1}]), "taxes: not supp"),
    ("internet sale", lambda d: d.update(internet=True), "internet: not supported yet"),
    ("buyer's name", lambda d: d.update(clientInfo={"name": "ООО"}), "clientInfo.name: not supp"),
    ("missing items", lambda d: d.pop("items"), "items: required"),
    ("items null", lambda d: d.update(items=None), "items: required"),
    ("items not a list", lambda d: d.update(items={"0": {}}), "items: must be a list"),
    ("items empty", lambda d: d.update(items=[]), "items: a receipt needs at least one"),
    (
        "only text items",
        lambda d: d.update(items=[{"type": "text", "text": "x"}]),
        'items: a receipt needs at least one {"type": "position"} item',
    ),
    ("item not an object", lambda d: d.update(items=["Чай"]), "items[0]: must be a JSON object"),
    (
        "unknown item type",
        _set_item(0, type="positon"),
        'items[0].type: must be one of "position", "text"',
    ),
    ("item type missing", lambda d: d["items"][0].pop("type"), "items[0].type: must be one of"),
    (
        "user attribute",
        lambda d: d["items"].append({"type": "userAttribute", "name": "a", "value": "b"}),
        'items[1].type: "userAttribute" is not supported yet',
    ),
    ("name missing", lambda d: d["items"][0].pop("name"), "items[0].name: required"),
    ("name blank", _set_item(0, name="  "), "items[0].name: must be a non-empty string"),
    ("name not text", _set_item(0, name=5), "items[0].name: must be a non-empty string, got 5"),
    ("name too long", _set_item(0, name="Ж" * 129), "items[0].name: must be at most 128"),
    ("name emoji", _set_item(0, name="Кофе ☕"), "items[0].name: must use only characters"),
    ("unknown type", lambda d: d.update(type="sellCorrection"), 'type: must be one of "sell"'),
    ("unknown taxation", lambda d: d.update(taxationType="usn"), 'taxationType: must be one of "'),
    ("operator not object", lambda d: d.update(operator="Иванов"), "operator: must be a JSON obj"),
    ("operator no name", lambda d: d.update(operator={}), "operator.name: required"),
    (
        "operator vatin",
        lambda d: d.update(operator={"name": "Иванов", "vatin": "12345"}),
        "operator.vatin: must be the cashier's INN, a string of 12 digits",
    ),
    (
        "contact not text",
        lambda d: d.update(clientInfo={"emailOrPhone": 79990000000}),
        "clientInfo.emailOrPhone: must be a non-empty string",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [pytest.param(mutate, message, id=name) for name, mutate, message in REFUSALS],
)
def test_refusals_name_the_json_path(mutate: Mutation, message: str) -> None:
    data = task()
    mutate(data)
    with pytest.raises(ReceiptRejected) as caught:
        receipt_from_atol(data)
    assert str(caught.value).startswith(message), str(caught.value)


def test_item_paths_count_print_items_too() -> None:
    data = task(items=[{"type": "text", "text": "x"}, position(price=1.001)])
    with pytest.raises(ReceiptRejected, match=r"^items\[1\]\.price: "):
        receipt_from_atol(data)


@pytest.mark.parametrize("value", [[task()], "{}", 42, None])
def test_a_task_must_be_an_object(value: Any) -> None:
    with pytest.raises(ReceiptRejected, match=r"^task: must be a JSON object, got "):
        receipt_from_atol(value)


def test_the_rejection_is_a_value_error_too() -> None:
    with pytest.raises(ValueError):
        receipt_from_atol(task(total=1))


# Issue 14, defect 9: a misspelled key was silently dropped (the item became a full payment).
@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            _set_item(0, paymentMetod="advance"),
            'items[0].paymentMetod: unknown field; did you mean "paymentMethod"?',
        ),
        (
            lambda d: d.update(taxationTyp="usnIncome"),
            'taxationTyp: unknown field; did you mean "taxationType"?',
        ),
        (lambda d: d.update(somethingNew={"a": 1}), "somethingNew: unknown field (allowed here: "),
        (_set_item(0, tax={"type": "vat20", "summ": 1}), "items[0].tax.summ: unknown field; did"),
        (
            lambda d: d.update(payments=[{"type": "cash", "sum": 700, "sume": 1}]),
            "payments[0].sume: unknown field",
        ),
        (
            lambda d: d.update(operator={"name": "Иванов", "vatinn": "1"}),
            'operator.vatinn: unknown field; did you mean "vatin"?',
        ),
        (
            lambda d: d.update(clientInfo={"emailOrPhon": "a@b.ru"}),
            'clientInfo.emailOrPhon: unknown field; did you mean "emailOrPhone"?',
        ),
    ],
)
def test_unknown_fields_are_refused_with_their_path(mutate: Mutation, message: str) -> None:
    data = task()
    mutate(data)
    with pytest.raises(ReceiptRejected) as refused:
        receipt_from_atol(data)
    assert message in str(refused.value)
    assert "(allowed here: " in str(refused.value)  # the names that may stand there


@pytest.mark.parametrize(
    "contact", ["buyer@example.org", "a.b+c@mail.example.ru", "+79990000000", "89990000000"]
)
def test_a_buyers_contact_is_an_email_or_a_phone(contact: str) -> None:
    assert receipt_from_atol(task(clientInfo={"emailOrPhone": contact})).buyer_contact == contact


@pytest.mark.parametrize(
    "contact",
    ["not-an-email", "a@b", "@example.ru", "a@@example.ru", "a@.ru", "+7999", "79990000000x"],
)
def test_a_contact_that_is_neither_is_refused(contact: str) -> None:
    with pytest.raises(ReceiptRejected, match=r"^clientInfo\.emailOrPhone: must be the buyer's"):
        receipt_from_atol(task(clientInfo={"emailOrPhone": contact}))


# -- round trip: our model -> ATOL's shape -> our model --------------------------------------------

_SERIAL_VATS = {vat: name for name, vat in VATS.items()}
_SERIAL_OPERATIONS = {operation: name for name, operation in OPERATIONS.items()}
_SERIAL_TAX_SYSTEMS = {system: name for name, system in TAX_SYSTEMS.items()}
_SERIAL_METHODS = {code: name for name, code in PAYMENT_METHODS.items()}
_SERIAL_OBJECTS = {code: name for name, code in reversed(PAYMENT_OBJECTS.items())}


def _roubles(kopecks: int) -> float:
    return kopecks / 100  # what a shop's JSON encoder writes


def to_atol(receipt: Receipt) -> dict[str, Any]:
    """The ATOL task a shop would write for ``receipt`` (test-local, the inverse of the reader)."""
    items = []
    for item in receipt.items:
        entry: dict[str, Any] = {
            "type": "position",
            "name": item.name,
            "price": _roubles(item.price),
            "quantity": float(item.quantity),
            "amount": _roubles(item.total),
            "tax": {"type": _SERIAL_VATS[item.vat]},
            "paymentMethod": _SERIAL_METHODS[item.payment_method],
            "paymentObject": _SERIAL_OBJECTS[item.payment_subject],
            "department": item.department,
        }
        if item.measure is not None:
            entry["measurementUnit"] = item.measure
        items.append(entry)
    payments = [
        {"type": name, "sum": _roubles(getattr(receipt.payments, field))}
        for name, field in PAYMENT_FIELDS.items()
        if getattr(receipt.payments, field)
    ]
    data: dict[str, Any] = {
        "type": _SERIAL_OPERATIONS[receipt.operation],
        "taxationType": _SERIAL_TAX_SYSTEMS[receipt.tax_system],
        "items": items,
        "payments": payments,
        "total": _roubles(receipt.total),
    }
    if receipt.cashier is not None:
        data["operator"] = {"name": receipt.cashier, **dict(_vatin(receipt))}
    if receipt.buyer_contact is not None:
        data["clientInfo"] = {"emailOrPhone": receipt.buyer_contact}
    return data


def _vatin(receipt: Receipt) -> list[tuple[str, object]]:
    return [("vatin", value) for tag, value in receipt.extra if tag == 1203]


_PRINTABLE = bytes(range(0x20, 0x100)).decode("cp1251", errors="ignore")
_names = st.text(_PRINTABLE, min_size=1, max_size=128).filter(lambda name: bool(name.strip()))
_quantities = st.builds(
    lambda units, places: Decimal(units).scaleb(-places),
    st.integers(1, 10**8),
    st.integers(0, 6),
).filter(lambda quantity: quantity <= 10_000)


@st.composite
def items(draw: st.DrawFn) -> Item:
    price = draw(st.integers(0, 10**8))
    quantity = draw(_quantities)
    return Item(
        name=draw(_names),
        price=price,
        quantity=quantity,
        vat=draw(st.sampled_from(list(Vat))),
        payment_method=draw(st.integers(1, 7)),
        payment_subject=draw(st.sampled_from(sorted(set(PAYMENT_OBJECTS.values())))),
        amount=Item("", price, quantity).total,
        department=draw(st.integers(0, 255)),
        measure=draw(st.none() | st.sampled_from(MEASURES)),
    )


@st.composite
def receipts(draw: st.DrawFn) -> Receipt:
    goods = tuple(draw(st.lists(items(), min_size=1, max_size=5)))
    total = sum(item.total for item in goods)
    # Non-cash parts first, each within what is left; cash pays the rest and maybe some change.
    left = total
    parts = {}
    for field in ("electronic", "prepaid", "credit", "other"):
        parts[field] = draw(st.integers(0, left))
        left -= parts[field]
    cash = left + draw(st.integers(0, 10**6))
    cashier = draw(st.none() | st.text(_PRINTABLE, min_size=1, max_size=64).filter(str.strip))
    vatin = draw(st.none() | st.from_regex(r"\A[0-9]{12}\Z")) if cashier else None
    return Receipt(
        items=goods,
        payments=Payments(cash=cash, **parts),
        operation=draw(st.sampled_from(list(Operation))),
        tax_system=draw(st.sampled_from(list(TAX_SYSTEMS.values()))),
        cashier=cashier,
        buyer_contact=draw(st.none() | st.emails().filter(lambda e: len(e) <= 64)),
        extra=((1203, vatin),) if vatin else (),
    )


@settings(max_examples=300, deadline=None)
@given(receipts())
def test_our_receipt_through_atol_json_text_comes_back_the_same(receipt: Receipt) -> None:
    receipt.validate()
    text = json.dumps(to_atol(receipt), ensure_ascii=False)
    assert receipt_from_atol(json.loads(text)) == receipt


@settings(max_examples=200, deadline=None)
@given(st.integers(0, MAX_SUM))  # every sum a register's 5-byte money field holds
def test_any_sum_in_roubles_comes_back_to_the_kopeck(kopecks: int) -> None:
    roubles = json.loads(json.dumps(kopecks / 100))
    data = task(
        items=[position(price=roubles, amount=roubles)],
        payments=[{"type": "cash", "sum": roubles}],
        total=roubles,
    )
    receipt = receipt_from_atol(data)
    assert receipt.total == receipt.payments.cash == kopecks


# -- fiscalParams ----------------------------------------------------------------------------------


def _result(**changes: Any) -> FiscalResult:
    values: dict[str, Any] = {
        "document_number": 1234,
        "fiscal_sign": 1494325660,
        "fn_number": "9999078900000961",
        "shift_number": 17,
        "receipt_number": 42,
        "when": dt.datetime(2026, 11, 22, 14, 5),
        "total": 64_800,
        "operation": 1,
        "qr": "t=20261122T1405&s=648.00&fn=9999078900000961&i=1234&fp=1494325660&n=1",
    }
    values.update(changes)
    return FiscalResult(**values)


def test_fiscal_params_of_a_receipt() -> None:
    params = fiscal_params(_result(), registration_number="0000000001002292")
    assert params == {
        "fiscalDocumentNumber": 1234,
        "fiscalDocumentSign": "1494325660",
        "fiscalDocumentDateTime": "2026-11-22T14:05:00",
        "fiscalReceiptNumber": 42,
        "shiftNumber": 17,
        "fnNumber": "9999078900000961",
        "registrationNumber": "0000000001002292",
        "fnsUrl": "www.nalog.gov.ru",
        "total": 648.0,
        "qr": "t=20261122T1405&s=648.00&fn=9999078900000961&i=1234&fp=1494325660&n=1",
        "replayed": False,
    }
    assert fiscal_params(_result(replayed=True))["replayed"] is True


def test_fiscal_params_total_shows_exact_roubles_in_json() -> None:
    text = json.dumps(fiscal_params(_result(total=123_456_789)))
    assert '"total": 1234567.89' in text
    assert json.dumps(fiscal_params(_result(total=29))).count('"total": 0.29') == 1


def test_fiscal_params_of_a_report_leave_out_total_and_receipt_number() -> None:
    report = _result(receipt_number=0, total=0, operation=0, qr="")
    params = fiscal_params(report, fns_url="www.nalog.ru")
    assert params == {
        "fiscalDocumentNumber": 1234,
        "fiscalDocumentSign": "1494325660",
        "fiscalDocumentDateTime": "2026-11-22T14:05:00",
        "shiftNumber": 17,
        "fnNumber": "9999078900000961",
        "registrationNumber": "",
        "fnsUrl": "www.nalog.ru",
        "qr": "",
        "replayed": False,
    }


def test_fiscal_params_without_a_time() -> None:
    assert fiscal_params(_result(when=None))["fiscalDocumentDateTime"] is None
