"""ATOL Online v4 and v5 request bodies as pydantic models, with ATOL's documented limits.

Sources (facts only): ATOL Online v4.6 Tables 2-3 and v5 field names from public clients, as the
fact sheet ``ofd-cloud-marking.md`` §2.2, §2.3 and §2.7 records them.

Rules:

* Numbers arrive as `Decimal` (the body is parsed with ``parse_float=Decimal``) or `int`; a JSON
  string or boolean where ATOL wants a number is refused, never coerced: a client that sends
  ``"price": "10"`` has a bug it should hear about.
* Money has at most 2 decimals and is at most 42 949 672.95 (the register's 4-byte field);
  quantities at most 3 decimals and 99 999.999.
* A field ATOL does not define is refused by its path (``extra="forbid"``): a misspelled optional
  field must not quietly vanish from a fiscal document.
* Marking (v5, FFD 1.2): ``mark_code`` holds exactly one code kind; ``mark_quantity`` is a part of
  one unit (numerator < denominator); ``mark_processing_mode`` is "0"; ``planned_status`` (tag
  2003, seen in one client only) a code of it.  Which kinds the driver can sell, and the Base64 of
  ``gs1m``, are the conversion's business (`kkt.cloud.atol.convert`).  ``sectoral_item_props`` and
  ``wholesale`` are refused by name: the driver cannot send tag 1260 or the ОСУ mode.
* Cross-field rules (``sum`` = ``price`` x ``quantity``, ``total`` against the items) live in
  `checks`, run once the shapes are valid, so every failure is still named by its path.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

MAX_MONEY = Decimal("42949672.95")  # ATOL's limit: the registers' 4-byte money fields
MAX_QUANTITY = Decimal("99999.999")  # 5 integer + 3 fraction digits
SUM_TOLERANCE = Decimal("0.01")  # sum vs price x quantity: one kopeck of rounding
TOTAL_TOLERANCE = Decimal("0.99")  # "total may be rounded by up to 99 kopecks" (A4 Table 2)

_TIMESTAMP = re.compile(r"[0-9]{2}\.[0-9]{2}\.[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_DATE = re.compile(r"[0-9]{2}\.[0-9]{2}\.[0-9]{4}")
# ATOL's callback_url mask, rewritten without its nested quantifier ``([-.\w]*[…])*``, which
# backtracks exponentially on a long non-matching host; this form accepts the same strings.
_CALLBACK_URL = re.compile(
    r"http(s?)://[0-9a-zA-Zа-яА-Я](?:[-.\w]*[0-9a-zA-Zа-яА-Я])?(?::(?:0-9)*)*(/?)"
    r"([a-zA-Z0-9а-яА-Я\-.?,'/\\+&=%$#_]*)?"
)
_INN = re.compile(r"[0-9]{10}|[0-9]{12}")

# Tag 2108 (v5 ``measure``): 0 pieces, 10-12 mass, 20-22 length, 30-32 area, 40-42 volume,
# 50-51 energy, 70-73 time, 80-83 data, 255 other.
MEASURES = frozenset(
    {0, 10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 70, 71, 72, 73, 80, 81, 82, 83, 255}
)
# Tag 1212 as a v5 integer: 1..27 and 30..33 (28, 29 are not defined).
PAYMENT_OBJECTS_V5 = frozenset({*range(1, 28), 30, 31, 32, 33})
MARKED_PAYMENT_OBJECTS_V5 = frozenset({31, 33})  # "with marking": need a mark_code
PLANNED_STATUSES = frozenset({1, 2, 3, 4, 5, 6, 255})  # tag 2003

MARKING_REFUSAL = "not supported yet: the driver cannot send it; send the item without it"


# -- field types ---------------------------------------------------------------------------------


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        raise ValueError(f"must be a number, got {_show(value)}")
    # A float only arrives from a body parsed without parse_float=Decimal (a stored one read back
    # by someone else); its shortest repr is the decimal the client wrote.
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise ValueError("must be a finite number")
    return number


def _places(number: Decimal) -> int:
    exponent = number.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _money(value: Any) -> Decimal:
    number = _decimal(value)
    if number < 0:
        raise ValueError(f"must not be negative, got {number}")
    if _places(number) > 2:
        raise ValueError(f"must have at most 2 decimals (kopecks), got {number}")
    if number > MAX_MONEY:
        raise ValueError(f"must be at most {MAX_MONEY}, got {number}")
    return number


def _quantity(value: Any) -> Decimal:
    number = _decimal(value)
    if number <= 0:
        raise ValueError(f"must be more than 0, got {number}")
    if _places(number) > 3:
        raise ValueError(f"must have at most 3 decimals, got {number}")
    if number > MAX_QUANTITY:
        raise ValueError(f"must be at most {MAX_QUANTITY}, got {number}")
    return number


def _timestamp(value: str) -> str:
    if not _TIMESTAMP.fullmatch(value):
        raise ValueError(f"must be dd.mm.yyyy HH:MM:SS, got {value!r}")
    try:
        datetime.strptime(value, "%d.%m.%Y %H:%M:%S")
    except ValueError:
        raise ValueError(f"is not a real date and time: {value!r}") from None
    return value


def _date(value: str) -> str:
    if not _DATE.fullmatch(value):
        raise ValueError(f"must be dd.mm.yyyy, got {value!r}")
    try:
        datetime.strptime(value, "%d.%m.%Y")
    except ValueError:
        raise ValueError(f"is not a real date: {value!r}") from None
    return value


def _callback_url(value: str) -> str:
    if value == "":
        return value  # ATOL's own reports echo "" for "no callback"; clients send it back
    if not _CALLBACK_URL.fullmatch(value):
        raise ValueError(f"must be an http:// or https:// URL matching ATOL's mask, got {value!r}")
    return value


def _inn(value: str) -> str:
    if not _INN.fullmatch(value):
        raise ValueError(f"must be an INN: 10 or 12 digits, got {value!r}")
    return value


def _measure(value: int) -> int:
    if value not in MEASURES:
        raise ValueError(f"must be a tag 2108 code ({', '.join(map(str, sorted(MEASURES)))})")
    return value


def _payment_object_v5(value: int) -> int:
    if value not in PAYMENT_OBJECTS_V5:
        raise ValueError(f"must be 1..27 or 30..33 (tag 1212), got {value}")
    return value


def _planned_status(value: int) -> int:
    if value not in PLANNED_STATUSES:
        raise ValueError(
            f"must be a tag 2003 code ({', '.join(map(str, sorted(PLANNED_STATUSES)))})"
        )
    return value


def _refuse_marking(value: Any) -> Any:
    if value is not None:
        raise ValueError(MARKING_REFUSAL)
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# JSON strings (never a number coerced to one) of at most N characters.
Str2 = Annotated[str, StringConstraints(strict=True, max_length=2)]
Str3 = Annotated[str, StringConstraints(strict=True, max_length=3)]
Str16 = Annotated[str, StringConstraints(strict=True, max_length=16)]
Str19 = Annotated[str, StringConstraints(strict=True, max_length=19)]
Str20 = Annotated[str, StringConstraints(strict=True, max_length=20)]
Str24 = Annotated[str, StringConstraints(strict=True, max_length=24)]
Str32 = Annotated[str, StringConstraints(strict=True, max_length=32)]
Str38 = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=38)]
Str200 = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=200)]
Str64 = Annotated[str, StringConstraints(strict=True, max_length=64)]
Str239 = Annotated[str, StringConstraints(strict=True, max_length=239)]
Str256 = Annotated[str, StringConstraints(strict=True, max_length=256)]
Name128 = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=128)]

Money = Annotated[Decimal, BeforeValidator(_money)]
Quantity = Annotated[Decimal, BeforeValidator(_quantity)]
Int = Annotated[int, Field(strict=True)]
Timestamp = Annotated[str, Field(strict=True), AfterValidator(_timestamp)]
DateText = Annotated[str, Field(strict=True), AfterValidator(_date)]
Inn = Annotated[str, Field(strict=True), AfterValidator(_inn)]
CallbackUrl = Annotated[
    str, StringConstraints(strict=True, max_length=256), AfterValidator(_callback_url)
]
Marking = Annotated[Any, AfterValidator(_refuse_marking)]
Phones = Annotated[list[Str19], Field(max_length=10)]

Sno = Literal["osn", "usn_income", "usn_income_outcome", "envd", "esn", "patent"]
PaymentMethod = Literal[
    "full_prepayment",
    "prepayment",
    "advance",
    "full_payment",
    "partial_payment",
    "credit",
    "credit_payment",
]
PaymentObjectV4 = Literal[
    "commodity",
    "excise",
    "job",
    "service",
    "gambling_bet",
    "gambling_prize",
    "lottery",
    "lottery_prize",
    "intellectual_activity",
    "payment",
    "agent_commission",
    "composite",
    "another",
    "property_right",
    "non-operating_gain",
    "insurance_premium",
    "sales_tax",
    "resort_fee",
]
VatV4 = Literal["none", "vat0", "vat10", "vat18", "vat110", "vat118", "vat20", "vat120"]
VatV5 = Literal[
    "none",
    "vat0",
    "vat5",
    "vat7",
    "vat10",
    "vat20",
    "vat22",
    "vat105",
    "vat107",
    "vat110",
    "vat120",
    "vat122",
]
AgentType = Literal[
    "bank_paying_agent",
    "bank_paying_subagent",
    "paying_agent",
    "paying_subagent",
    "attorney",
    "commission_agent",
    "another",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- parts shared by v4 and v5 -------------------------------------------------------------------


class Service(_Model):
    callback_url: CallbackUrl | None = None


class PayingAgent(_Model):
    operation: Str24 | None = None  # 1044
    phones: Phones | None = None  # 1073


class PhonesOnly(_Model):
    phones: Phones | None = None  # 1074


class MoneyTransferOperator(_Model):
    phones: Phones | None = None  # 1075
    name: Str64 | None = None  # 1026
    address: Str256 | None = None  # 1005
    inn: Inn | None = None  # 1016


class AgentInfo(_Model):
    type: AgentType | None = None  # 1057
    paying_agent: PayingAgent | None = None
    receive_payments_operator: PhonesOnly | None = None
    money_transfer_operator: MoneyTransferOperator | None = None


class SupplierInfo(_Model):
    phones: Phones | None = None  # 1171
    name: Str239 | None = None  # 1225
    inn: Inn | None = None  # 1226


class Payment(_Model):
    type: Int = Field(ge=0, le=9)
    sum: Money


class AdditionalUserProps(_Model):
    name: Str64  # 1085
    value: Str256  # 1086


class ClientV4(_Model):
    email: Str64 | None = None
    phone: Str64 | None = None


class ClientV5(ClientV4):
    name: Str256 | None = None  # 1227
    inn: Inn | None = None  # 1228
    birthdate: DateText | None = None  # 1243
    citizenship: Str3 | None = None  # 1244
    document_code: Str2 | None = None  # 1245
    document_data: Str64 | None = None  # 1246
    address: Str256 | None = None  # 1254


class CompanyV4(_Model):
    email: Str64  # 1117
    sno: Sno | None = None  # 1055
    inn: Inn  # 1018
    payment_address: Str256  # 1187


class CompanyV5(CompanyV4):
    location: Str256 | None = None  # 1009


class CorrectionCompany(_Model):
    email: Str64 | None = None
    sno: Sno | None = None
    inn: Inn
    payment_address: Str256


class CorrectionCompanyV5(CorrectionCompany):
    location: Str256 | None = None


class VatV4Item(_Model):
    type: VatV4
    sum: Money | None = None


class VatV5Item(_Model):
    type: VatV5
    sum: Money | None = None


# -- items ---------------------------------------------------------------------------------------


class ItemV4(_Model):
    name: Name128  # 1030
    price: Money  # 1079
    quantity: Quantity  # 1023
    sum: Money  # 1043
    measurement_unit: Str16 | None = None  # 1197
    payment_method: PaymentMethod  # 1214
    payment_object: PaymentObjectV4  # 1212
    vat: VatV4Item  # 1199
    agent_info: AgentInfo | None = None
    supplier_info: SupplierInfo | None = None
    user_data: Str64 | None = None  # 1191
    # in later v4 documents and SDKs, not in 4.6:
    nomenclature_code: Str32 | None = None  # 1162
    excise: Money | None = None  # 1229
    country_code: Str3 | None = None  # 1230
    declaration_number: Str32 | None = None  # 1231


class MarkCode(_Model):
    """``mark_code``: exactly one kind, as tag 1163 names them (fact sheet §2.7; ILI
    ``MarkCode.cs``, PLT ``MarkCodeTypes``).  ``gs1m`` is the whole КМ in Base64."""

    unknown: Str32 | None = None  # 1300
    ean8: Str32 | None = None  # 1301
    ean13: Str32 | None = None  # 1302
    itf14: Str32 | None = None  # 1303
    gs10: Str38 | None = None  # 1304
    gs1m: Str200 | None = None  # 1305
    short: Str38 | None = None  # 1306
    fur: Str20 | None = None  # 1307
    egais20: Str38 | None = None  # 1308
    egais30: Str38 | None = None  # 1309

    @model_validator(mode="after")
    def _exactly_one(self) -> MarkCode:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            kinds = ", ".join(type(self).model_fields)
            raise ValueError(f"must hold exactly one code kind ({kinds}), got {len(given)}")
        return self


class MarkQuantity(_Model):
    """``mark_quantity``: the part of one marked unit sold (tags 1291: 1293 / 1294)."""

    numerator: Annotated[Int, Field(ge=1, le=10**16 - 1)]
    denominator: Annotated[Int, Field(ge=2, le=10**16 - 1)]

    @model_validator(mode="after")
    def _below_one(self) -> MarkQuantity:
        if self.numerator >= self.denominator:
            raise ValueError(
                f"numerator {self.numerator} must be below denominator {self.denominator} "
                "(a part of one unit)"
            )
        return self


class ItemV5(_Model):
    name: Name128
    price: Money
    quantity: Quantity
    sum: Money
    measure: Annotated[Int, AfterValidator(_measure)] | None = None  # 2108
    payment_method: PaymentMethod
    payment_object: Annotated[Int, AfterValidator(_payment_object_v5)]
    vat: VatV5Item
    agent_info: AgentInfo | None = None
    supplier_info: SupplierInfo | None = None
    user_data: Str64 | None = None
    excise: Money | None = None
    country_code: Str3 | None = None
    declaration_number: Str32 | None = None
    # marking (FFD 1.2)
    mark_code: MarkCode | None = None  # 1163 / 2000
    mark_quantity: MarkQuantity | None = None  # 1291
    mark_processing_mode: Literal["0"] | None = None  # 2102: "0", the only mode
    planned_status: Annotated[Int, AfterValidator(_planned_status)] | None = None  # 2003
    sectoral_item_props: Marking = None  # 1260: refused
    wholesale: Marking = None  # ОСУ: refused


# -- receipts ------------------------------------------------------------------------------------


class ReceiptV4(_Model):
    client: ClientV4
    company: CompanyV4
    agent_info: AgentInfo | None = None
    supplier_info: SupplierInfo | None = None
    items: Annotated[list[ItemV4], Field(min_length=1, max_length=100)]
    payments: Annotated[list[Payment], Field(min_length=1, max_length=10)]
    vats: Annotated[list[VatV4Item], Field(min_length=1, max_length=6)] | None = None
    total: Money  # 1020
    additional_check_props: Str16 | None = None  # 1192
    cashier: Str64 | None = None  # 1021
    additional_user_props: AdditionalUserProps | None = None  # 1084


class OperatingCheckProps(_Model):
    name: Str64  # 1271
    value: Str64  # 1272
    timestamp: Timestamp  # 1273


class SectoralCheckProps(_Model):
    federal_id: Str3  # 1262
    date: DateText  # 1263
    number: Str32  # 1264
    value: Str256  # 1265


class CashlessPayment(_Model):
    sum: Money  # 1082
    method: Int = Field(ge=0, le=9)  # 1236
    id: Str256  # 1237
    additional_info: Str256 | None = None  # 1238


class ReceiptV5(_Model):
    client: ClientV5
    company: CompanyV5
    agent_info: AgentInfo | None = None
    supplier_info: SupplierInfo | None = None
    items: Annotated[list[ItemV5], Field(min_length=1, max_length=100)]
    payments: Annotated[list[Payment], Field(min_length=1, max_length=10)]
    vats: Annotated[list[VatV5Item], Field(min_length=1, max_length=6)] | None = None
    total: Money
    additional_check_props: Str16 | None = None
    cashier: Str64 | None = None
    cashier_inn: Inn | None = None  # 1203
    additional_user_props: AdditionalUserProps | None = None
    operating_check_props: OperatingCheckProps | None = None  # 1270
    sectoral_check_props: Annotated[list[SectoralCheckProps], Field(max_length=10)] | None = None
    device_number: Str20 | None = None  # 1036
    internet: Annotated[bool, Field(strict=True)] | None = None  # 1125
    timezone: Int | None = Field(default=None, ge=1, le=11)  # 1011
    cashless_payments: Annotated[list[CashlessPayment], Field(max_length=10)] | None = None


# -- corrections ---------------------------------------------------------------------------------


class CorrectionInfoV4(_Model):
    type: Literal["self", "instruction"]  # 1173
    base_date: DateText  # 1178
    base_number: Str32  # 1179
    base_name: Str256  # 1177


class CorrectionInfoV5(_Model):
    type: Literal["self", "instruction"]
    base_date: DateText
    base_number: Str32 | None = None


class CorrectionV4(_Model):
    company: CorrectionCompany
    correction_info: CorrectionInfoV4
    payments: Annotated[list[Payment], Field(min_length=1, max_length=10)]
    vats: Annotated[list[VatV4Item], Field(min_length=1, max_length=6)]
    cashier: Str64 | None = None


class CorrectionV5(_Model):
    client: ClientV5 | None = None
    company: CorrectionCompanyV5
    correction_info: CorrectionInfoV5
    items: Annotated[list[ItemV5], Field(min_length=1, max_length=100)]
    payments: Annotated[list[Payment], Field(min_length=1, max_length=10)]
    vats: Annotated[list[VatV5Item], Field(min_length=1, max_length=6)] | None = None
    total: Money
    cashier: Str64 | None = None
    cashier_inn: Inn | None = None


# -- whole requests ------------------------------------------------------------------------------


class _Request(_Model):
    external_id: Name128
    timestamp: Timestamp
    service: Service | None = None


class SellV4(_Request):
    receipt: ReceiptV4


class CorrectionRequestV4(_Request):
    correction: CorrectionV4


class SellV5(_Request):
    receipt: ReceiptV5
    ism_optional: Annotated[bool, Field(strict=True)] | None = None  # marking only


class CorrectionRequestV5(_Request):
    correction: CorrectionV5


Request = SellV4 | CorrectionRequestV4 | SellV5 | CorrectionRequestV5


def request_model(api: int, operation: str) -> type[Request]:
    """The model for ``operation`` on API v``api`` (the operation is known to be valid)."""
    correction = operation.endswith("_correction")
    if api == 4:
        return CorrectionRequestV4 if correction else SellV4
    return CorrectionRequestV5 if correction else SellV5
