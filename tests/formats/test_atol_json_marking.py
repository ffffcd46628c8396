"""ATOL's JSON task: a position's marking fields (``imcParams``, FFD 1.2) read into `Item`.

Golden inputs:

* OPENPAPYRUS -- the position shape papyrussolution/OpenPapyrus builds for ATOL's DTO10 JSON task
  (its ATOL export: ``imcType`` "auto", ``imc`` the code in Base64, ``itemEstimatedStatus`` as a
  number, ``imcModeProcessing`` 0, ``itemInfoCheckResult`` five booleans, ``itemQuantity`` 1,
  ``itemUnits`` "piece").
* The code is the libfptr sample code of the fact sheet ``ofd-cloud-marking.md`` §4.6; its Base64
  is the ``gs1m`` value of the sheet's ATOL Online v5 example (§2.8), written out here.
* Names of ``imcType`` / ``itemEstimatedStatus`` / ``itemUnits`` values: ATOL's DTO10 JSON-task
  scripts (``utils.js`` MARKING_CODE_TYPES_1_2, MARKING_ESTIMATED_STATUS, ITEM_UNITS), written
  out here rather than read from the module under test.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from kkt.protocols.ffd.marking import PlannedStatus

from kkt import ReceiptRejected
from kkt.formats.atol_json import receipt_from_atol

CODE = "014494550435306821QXYXSALGLMYQQ\x1d91EE06\x1d92YWCXbmK6SN8vvwoxZFk7WAY9WoJNMGGr6Cgtiuja04c="
CODE_BASE64 = (
    "MDE0NDk0NTUwNDM1MzA2ODIxUVhZWFNBTEdMTVlRUR05MUVFMDYdOTJZV0NYYm1LNlNOOHZ2d294WkZrN1dBWTlXb0pOTUdH"
    "cjZDZ3RpdWphMDRjPQ=="
)
SHORT_CODE = "04606203103348a3=EfODAB=UpGbL"  # tobacco pack, type 1 (fr_drv_ng issue #145)

OPENPAPYRUS = {
    "imcType": "auto",
    "imc": CODE_BASE64,
    "itemEstimatedStatus": 1,
    "imcModeProcessing": 0,
    "itemInfoCheckResult": {
        "imcCheckFlag": True,
        "imcCheckResult": True,
        "imcStatusInfo": True,
        "imcEstimatedStatusCorrect": True,
        "ecrStandAloneFlag": False,
    },
    "itemQuantity": 1,
    "itemUnits": "piece",
}

ESTIMATED_STATUSES = {
    "itemPieceSold": PlannedStatus.PIECE_SOLD,
    "itemDryForSale": PlannedStatus.MEASURED_IN_SALE,
    "itemPieceReturn": PlannedStatus.PIECE_RETURNED,
    "itemDryReturn": PlannedStatus.MEASURED_RETURNED,
    "itemStatusUnchanged": PlannedStatus.UNCHANGED,
}
ITEM_UNITS = {
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


def b64(text: str) -> str:
    return base64.b64encode(text.encode("ascii")).decode("ascii")


def task(**position: Any) -> dict[str, Any]:
    item = {
        "type": "position",
        "name": "Молоко 3,2% 930 мл",
        "price": 109.99,
        "quantity": 1,
        "amount": 109.99,
        "tax": {"type": "vat10"},
        "paymentObject": "commodityWithMarking",
        "imcParams": copy.deepcopy(OPENPAPYRUS),
    }
    item.update(position)
    return {
        "type": "sell",
        "items": [item, {"type": "text", "text": "спасибо"}],
        "payments": [{"type": "cash", "sum": 110}],
    }


def imc(**params: Any) -> dict[str, Any]:
    merged = {**copy.deepcopy(OPENPAPYRUS), **params}
    return {key: value for key, value in merged.items() if value is not None}


def test_the_golden_base64_is_the_code() -> None:
    assert base64.b64decode(CODE_BASE64).decode("ascii") == CODE


def test_openpapyrus_position_becomes_a_marked_item() -> None:
    item = receipt_from_atol(task()).items[0]
    assert item.mark_code == CODE
    assert item.planned_status is PlannedStatus.PIECE_SOLD
    assert item.mark_quantity is None
    assert item.measure == 0  # itemUnits "piece"
    assert item.payment_subject == 33  # commodityWithMarking


def test_excise_with_marking_and_only_imc() -> None:
    item = receipt_from_atol(
        task(paymentObject="exciseWithMarking", imcParams={"imc": CODE_BASE64})
    )
    assert (item.items[0].payment_subject, item.items[0].mark_code) == (31, CODE)
    assert item.items[0].planned_status is None  # derived from the operation by the sale
    assert item.items[0].measure is None


@pytest.mark.parametrize(("name", "status"), ESTIMATED_STATUSES.items())
def test_estimated_status_names(name: str, status: PlannedStatus) -> None:
    item = receipt_from_atol(task(imcParams=imc(itemEstimatedStatus=name))).items[0]
    assert item.planned_status is status


@pytest.mark.parametrize("status", list(PlannedStatus))
def test_estimated_status_numbers_are_tag_2003(status: PlannedStatus) -> None:
    item = receipt_from_atol(task(imcParams=imc(itemEstimatedStatus=int(status)))).items[0]
    assert item.planned_status is status


@pytest.mark.parametrize(("name", "code"), ITEM_UNITS.items())
def test_item_units_and_measurement_unit_names(name: str, code: int) -> None:
    assert receipt_from_atol(task(imcParams=imc(itemUnits=name))).items[0].measure == code
    assert (
        receipt_from_atol(task(measurementUnit=name, imcParams=imc(itemUnits=None)))
        .items[0]
        .measure
        == code
    )


def test_fractional_amount_is_tags_1293_1294() -> None:
    item = receipt_from_atol(task(imcParams=imc(itemFractionalAmount="1/4"))).items[0]
    assert item.mark_quantity == (1, 4)


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("imcFmVerifyCode44", CODE),
        ("imcVerifyCode44", CODE),  # checkable or not depends on the FN's keys: same family
        ("imcShort", SHORT_CODE),
        ("auto", SHORT_CODE),
    ],
)
def test_declared_type_that_fits(kind: str, code: str) -> None:
    item = receipt_from_atol(task(imcParams=imc(imcType=kind, imc=b64(code)))).items[0]
    assert item.mark_code == code


def test_validate_marking_codes_is_accepted() -> None:
    for flag in (True, False):
        data = task()
        data["validateMarkingCodes"] = flag
        assert receipt_from_atol(data).items[0].mark_code == CODE


REFUSALS = [
    ("imc missing", imc(imc=None), "items[0].imcParams.imc: required"),
    ("imc not a string", imc(imc=42), "items[0].imcParams.imc: must be the marking code"),
    (
        "imc not base64",
        imc(imc="0104606203103348\x1d21abc"),
        "items[0].imcParams.imc: must be the marking code in Base64",
    ),
    ("imc raw short code", imc(imc=SHORT_CODE), "items[0].imcParams.imc: must be the marking code"),
    (
        "imc decodes to binary",
        imc(imc=base64.b64encode(b"\x00\xff\x10").decode()),
        "items[0].imcParams.imc: the Base64 decodes to",
    ),
    (
        "imc malformed GS1",
        imc(imc=b64("0104606203103348\x1d91EE06")),
        "items[0].imcParams.imc: ",
    ),
    ("unknown imcType", imc(imcType="datamatrix"), "items[0].imcParams.imcType: must be one of"),
    (
        "imcType disagrees",
        imc(imcType="imcShort"),
        'items[0].imcParams.imcType: declares "imcShort" (tag 2100 = 1), but the code is',
    ),
    (
        "unknown estimated status",
        imc(itemEstimatedStatus="sold"),
        "items[0].imcParams.itemEstimatedStatus: must be one of",
    ),
    (
        "estimated status number",
        imc(itemEstimatedStatus=7),
        "items[0].imcParams.itemEstimatedStatus: must be a tag 2003 code",
    ),
    (
        "fraction is one",
        imc(itemFractionalAmount="4/4"),
        "items[0].imcParams.itemFractionalAmount: must be a fraction of one unit below 1",
    ),
    (
        "fraction above one",
        imc(itemFractionalAmount="5/4"),
        "items[0].imcParams.itemFractionalAmount: must be",
    ),
    (
        "fraction zero",
        imc(itemFractionalAmount="0/4"),
        "items[0].imcParams.itemFractionalAmount: must be",
    ),
    (
        "fraction as number",
        imc(itemFractionalAmount=0.25),
        "items[0].imcParams.itemFractionalAmount: must be",
    ),
    (
        "fraction with junk",
        imc(itemFractionalAmount="1/4&"),
        "items[0].imcParams.itemFractionalAmount: must be",
    ),
    ("mode 1", imc(imcModeProcessing=1), "items[0].imcParams.imcModeProcessing: must be 0"),
    (
        "itemQuantity disagrees",
        imc(itemQuantity=2),
        "items[0].imcParams.itemQuantity: must equal the position's quantity 1",
    ),
    ("itemUnits unknown", imc(itemUnits="шт"), "items[0].imcParams.itemUnits: must be the FFD 1.2"),
    (
        "product id",
        imc(imcBarcode=b64("04606203103348")),
        "items[0].imcParams.imcBarcode: not supported yet",
    ),
    (
        "check result not boolean",
        imc(itemInfoCheckResult={"imcCheckFlag": 1}),
        "items[0].imcParams.itemInfoCheckResult.imcCheckFlag: required, true or false",
    ),
    (
        "unknown key",
        imc(imcTyp="auto"),
        'items[0].imcParams.imcTyp: unknown field; did you mean "imcType"',
    ),
    ("not an object", "auto", "items[0].imcParams: must be a JSON object"),
]


@pytest.mark.parametrize(
    ("params", "message"),
    [pytest.param(params, message, id=name) for name, params, message in REFUSALS],
)
def test_refusals_name_the_path(params: Any, message: str) -> None:
    with pytest.raises(ReceiptRejected) as caught:
        receipt_from_atol(task(imcParams=params))
    assert str(caught.value).startswith(message), str(caught.value)


def test_units_must_agree_with_the_position() -> None:
    with pytest.raises(ReceiptRejected, match=r"^items\[0\]\.imcParams\.itemUnits: must agree"):
        receipt_from_atol(task(measurementUnit=11))


def test_marked_payment_object_without_a_code() -> None:
    data = task()
    del data["items"][0]["imcParams"]
    with pytest.raises(ReceiptRejected, match=r'^items\[0\]\.paymentObject: "commodityWith'):
        receipt_from_atol(data)


def test_validate_marking_codes_must_be_boolean() -> None:
    data = task()
    data["validateMarkingCodes"] = "yes"
    with pytest.raises(ReceiptRejected, match=r"^validateMarkingCodes: must be true or false"):
        receipt_from_atol(data)


def test_ffd_105_marking_code_stays_refused() -> None:
    with pytest.raises(ReceiptRejected, match=r"^items\[0\]\.markingCode: not supported yet"):
        receipt_from_atol(task(markingCode={"mark": CODE_BASE64, "type": "other"}))
