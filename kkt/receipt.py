"""The vendor-neutral receipt: what a shop sells, checked before a byte is sent.

Money is `int` kopecks; quantities are `Decimal` (up to 6 decimals, as FF46 carries them).
``validate`` refuses, with `ReceiptRejected`, whatever a register would refuse halfway through --
an empty receipt, payments that do not cover the total, change from a non-cash payment, a name
the register cannot print -- so a receipt never fails with half of it sent.
"""

from __future__ import annotations

import difflib
import enum
import hashlib
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from kkt.protocols.ffd import Payments
from kkt.protocols.ffd.marking import MarkingCodeError, PlannedStatus, parse_mark_code

from .errors import ReceiptRejected


class Vat(enum.Enum):
    """VAT rate of an item (tag 1199)."""

    VAT20 = "vat20"
    VAT10 = "vat10"
    VAT0 = "vat0"
    NONE = "none"
    VAT120 = "vat120"  # 20/120, for prepayments
    VAT110 = "vat110"  # 10/110


# Tag 1199: the FN's codes of the VAT rates (FFD Table 8), one table for every layer that writes
# the tag (ATOL's EBh tax byte, a receipt's composed print form).
VAT_CODES = {
    Vat.VAT20: 1,
    Vat.VAT10: 2,
    Vat.VAT120: 3,
    Vat.VAT110: 4,
    Vat.VAT0: 5,
    Vat.NONE: 6,
}


class Operation(enum.IntEnum):
    """Tag 1054."""

    SELL = 1
    SELL_RETURN = 2
    BUY = 3
    BUY_RETURN = 4


class TaxSystem(enum.IntFlag):
    """Tag 1055 (one bit per receipt)."""

    OSN = 1
    USN_INCOME = 2
    USN_INCOME_OUTCOME = 4
    ENVD = 8
    ESN = 16
    PATENT = 32


MAX_NAME_BYTES = 128  # FF46 carries at most 128 bytes of name
MAX_SUM = 2**40 - 1  # kopecks: the registers' 5-byte money fields
MAX_CONTACT_CHARS = 64  # tag 1008

# Tag 1008 carries the buyer's e-mail or phone.  An e-mail: one "@", something before it, a
# domain with a dot inside; a phone: +7 or 8 and its 10 digits (the form FFD 1.05/1.2 give).
_EMAIL = re.compile(r"[^@\s]+@[^@\s.][^@\s]*\.[^@\s.]+")
_PHONE = re.compile(r"(\+7|8)[0-9]{10}")


def contact_problem(contact: str) -> str | None:
    """Why ``contact`` cannot be tag 1008 (the buyer's e-mail or phone); None when it can."""
    if len(contact) > MAX_CONTACT_CHARS:
        return f"must be at most {MAX_CONTACT_CHARS} characters"
    if _EMAIL.fullmatch(contact) or _PHONE.fullmatch(contact):
        return None
    return (
        "must be the buyer's e-mail (name@example.ru) or phone (+7 or 8 and 10 digits, "
        "e.g. +79990000000)"
    )


# Tag 1212 of an item with a marking code (FFD 1.2).  The fact sheet (fn-ffd-ofd.md, tag 1212)
# lists 30-33 for marked goods: 30 АТНМ / 31 АТМ excise goods without / with a marking code, 32
# ТНМ / 33 ТМ goods without / with one; ATOL's JSON-task names agree (its driver's JSON helper
# script and a TypeScript enum in the public index: exciseWithoutMarking 30, exciseWithMarking 31,
# commodityWithoutMarking 32, commodityWithMarking 33).  Our reading: "with a marking code" is an
# item that carries its code (tag 2000 / 1163), so such an item given as plain goods (1) goes out
# as 33 and as excise goods (2) as 31.  A caller's 30-33 is kept, and so is any other kind (work,
# service, payment ...): what a code on those means is the caller's to answer for, and the FN's
# and OFD's format checks judge it -- we neither guess another kind nor refuse it.
MARKED_PAYMENT_SUBJECTS: dict[int, int] = {1: 33, 2: 31}


@dataclass(frozen=True, slots=True)
class Item:
    name: str
    price: int  # kopecks per unit
    quantity: Decimal = Decimal(1)
    vat: Vat = Vat.NONE
    payment_method: int = 4  # tag 1214: 4 = full payment
    payment_subject: int = 1  # tag 1212: 1 = goods (33 / 31 with a mark_code: see above)
    amount: int | None = None  # kopecks; None: price x quantity, rounded half up
    department: int = 1
    measure: int | None = None  # tag 2108 (FFD 1.2): 0 pieces, 11 kg, 41 l ...
    extra: tuple[tuple[int, object], ...] = ()  # more item tags (1162, 1222, 1224 ...)
    # Marked goods (FFD 1.2): the code as the scanner gave it, GS1's group separator as "\x1d";
    # the sale checks it with the FN and ОИСМ first, and only an accepted code reaches the receipt.
    mark_code: str | None = None
    planned_status: PlannedStatus | None = None  # tag 2003; None: derived from the operation
    mark_quantity: tuple[int, int] | None = None  # tags 1293/1294: a part of one marked unit

    @property
    def marked(self) -> bool:
        return self.mark_code is not None

    def __post_init__(self) -> None:
        # A whole quantity may be given as an int (Item("Кофе", 19_900, 2)): it is exact.
        quantity: object = self.quantity
        if isinstance(quantity, int) and not isinstance(quantity, bool):
            object.__setattr__(self, "quantity", Decimal(quantity))
        # A scanner may send GS1's FNC1 as a leading GS: the same unit either way, so one
        # spelling -- the one the FN compares and stores -- from here on (two spellings would
        # pass as two units).
        code: object = self.mark_code
        if isinstance(code, str) and code.startswith("\x1d"):
            object.__setattr__(self, "mark_code", code.lstrip("\x1d"))
        # Goods with a marking code are 1212 = 33 (excise: 31), not 1 / 2 (MARKED_PAYMENT_SUBJECTS).
        subject: object = self.payment_subject
        if code is not None and type(subject) is int and subject in MARKED_PAYMENT_SUBJECTS:
            object.__setattr__(self, "payment_subject", MARKED_PAYMENT_SUBJECTS[subject])

    @property
    def total(self) -> int:
        if self.amount is not None:
            return self.amount
        return int((self.quantity * self.price).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    @property
    def tags(self) -> list[tuple[int, object]]:
        """The item's own tags beyond what the item command carries: 2108 first, then `extra`."""
        return [(2108, self.measure), *self.extra] if self.measure is not None else [*self.extra]


@dataclass(frozen=True, slots=True)
class Receipt:
    items: tuple[Item, ...]
    payments: Payments
    operation: Operation = Operation.SELL
    tax_system: TaxSystem = TaxSystem.OSN
    cashier: str | None = None
    buyer_contact: str | None = None  # tag 1008: phone or e-mail
    extra: tuple[tuple[int, object], ...] = field(default_factory=tuple)  # receipt-level TLV

    @property
    def total(self) -> int:
        return sum(item.total for item in self.items)

    @property
    def change(self) -> int:
        return self.payments.total - self.total

    def fingerprint(self) -> str:
        """What identifies this receipt's content in the fiscal storage: its operation and each
        item's name, price, quantity and amount, in order (see `fingerprint_of`)."""
        return fingerprint_of(
            int(self.operation),
            [(item.name, item.price, item.quantity, item.total) for item in self.items],
        )

    def key_fingerprint(self) -> str:
        """What an idempotency key is bound to: `fingerprint` and, for a receipt of marked goods,
        a hash of its codes after a ":" -- another unit's code is another receipt, though the
        FN's document is found by the items alone (`items_fingerprint` takes that part back)."""
        codes = [(n, item.mark_code) for n, item in enumerate(self.items) if item.mark_code]
        if not codes:
            return self.fingerprint()
        text = "\x1e".join(f"{n}\x1f{code}" for n, code in codes)
        return f"{self.fingerprint()}:{hashlib.sha256(text.encode('ascii')).hexdigest()[:16]}"

    def validate(self) -> None:
        """Raise `ReceiptRejected` saying what to fix; return when the receipt can be sent.

        Types first (``items[0].price: must be an int number of kopecks ...``), so a float or a
        string where the model wants kopecks or a `Vat` is refused by its field's path before
        anything is sent, never a bare `TypeError` from inside a sale.
        """
        _check_types(self)
        if not self.items:
            raise ReceiptRejected("a receipt needs at least one item")
        for number, item in enumerate(self.items, start=1):
            where = f"item {number} ({item.name!r})"
            if not item.name.strip():
                raise ReceiptRejected(f"item {number} has no name")
            try:
                size = len(item.name.encode("cp1251"))
            except UnicodeEncodeError:
                raise ReceiptRejected(
                    f"{where}: the name has characters a register cannot print"
                ) from None
            if size > MAX_NAME_BYTES:
                raise ReceiptRejected(
                    f"{where}: the name is {size} bytes; at most {MAX_NAME_BYTES}"
                )
            if (
                item.price < 0
                or item.quantity <= 0
                or (item.amount is not None and item.amount < 0)
            ):
                raise ReceiptRejected(f"{where}: price and amount must be >= 0, quantity > 0")
            if max(item.price, item.total) > MAX_SUM:
                raise ReceiptRejected(
                    f"{where}: over {MAX_SUM} kopecks, more than a register holds"
                )
            if item.quantity != item.quantity.quantize(Decimal("0.000001")):
                raise ReceiptRejected(f"{where}: quantity has more than 6 decimals")
            computed = Item(item.name, item.price, item.quantity).total
            if item.amount is not None and abs(item.amount - computed) > 1:
                raise ReceiptRejected(
                    f"{where}: amount {item.amount} differs from price x quantity = "
                    f"{computed} kopecks"
                )
            if not 1 <= item.payment_method <= 7:
                raise ReceiptRejected(f"{where}: payment method (tag 1214) must be 1..7")
        p = self.payments
        if min(p.cash, p.electronic, p.prepaid, p.credit, p.other) < 0:
            raise ReceiptRejected("payments must not be negative")
        if p.total < self.total:
            raise ReceiptRejected(f"payments {p.total} kopecks do not cover the total {self.total}")
        if self.change > p.cash:
            raise ReceiptRejected("only cash can be overpaid: change is given in cash")
        if bin(int(self.tax_system)).count("1") != 1:
            raise ReceiptRejected("a receipt has exactly one tax system (tag 1055)")
        if self.buyer_contact is not None:
            problem = contact_problem(self.buyer_contact)
            if problem:
                raise ReceiptRejected(f"buyer_contact: {problem}, got {self.buyer_contact!r}")


# -- types: what each field must be, said with its path ----------------------------------------


def _check_types(receipt: Receipt) -> None:
    if not isinstance(receipt.items, tuple | list):
        raise _wrong("items", "a tuple of Item", receipt.items)
    for index, item in enumerate(receipt.items):
        path = f"items[{index}]"
        if not isinstance(item, Item):
            raise _wrong(path, 'an Item, e.g. Item("Кофе", 19900, vat=Vat.VAT20)', item)
        if not isinstance(item.name, str):
            raise _wrong(f"{path}.name", "a str", item.name)
        _kopecks(item.price, f"{path}.price")
        if item.amount is not None:
            _kopecks(item.amount, f"{path}.amount")
        if not isinstance(item.quantity, Decimal) or not item.quantity.is_finite():
            raise _wrong(
                f"{path}.quantity",
                'a Decimal (or an int), e.g. Decimal("1.5"): a float is not exact',
                item.quantity,
            )
        _vat(item.vat, f"{path}.vat")
        for name in ("payment_method", "payment_subject", "department"):
            _whole(getattr(item, name), f"{path}.{name}")
        if item.measure is not None:
            _whole(item.measure, f"{path}.measure")
        _check_marking(item, path)
    if not isinstance(receipt.payments, Payments):
        raise _wrong("payments", "a Payments, e.g. Payments(cash=19900)", receipt.payments)
    for name in ("cash", "electronic", "prepaid", "credit", "other"):
        _kopecks(getattr(receipt.payments, name), f"payments.{name}")
    if not isinstance(receipt.operation, Operation):
        raise _wrong("operation", _members(Operation), receipt.operation)
    if not isinstance(receipt.tax_system, TaxSystem):
        raise _wrong("tax_system", _members(TaxSystem), receipt.tax_system)
    for name in ("cashier", "buyer_contact"):
        if getattr(receipt, name) is not None and not isinstance(getattr(receipt, name), str):
            raise _wrong(name, "a str or None", getattr(receipt, name))


def is_unit_part(value: object) -> bool:
    """Is ``value`` a part of one marked unit, (numerator, denominator) with 1 <= n < d
    (tags 1293/1294)?"""
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in value)
        and 1 <= value[0] < value[1]
    )


def _check_marking(item: Item, path: str) -> None:
    if item.mark_code is None:
        for name in ("planned_status", "mark_quantity"):
            if getattr(item, name) is not None:
                raise ReceiptRejected(f"{path}.{name}: is for marked goods; give mark_code too")
        return
    if not isinstance(item.mark_code, str):
        raise _wrong(
            f"{path}.mark_code", 'the code as scanned, a str (GS as "\\x1d")', item.mark_code
        )
    try:
        parse_mark_code(item.mark_code)
    except MarkingCodeError as error:
        raise ReceiptRejected(f"{path}.mark_code: {error}") from None
    if item.planned_status is not None and not isinstance(item.planned_status, PlannedStatus):
        raise _wrong(f"{path}.planned_status", _members(PlannedStatus), item.planned_status)
    part = item.mark_quantity
    if part is not None and not is_unit_part(part):
        raise _wrong(
            f"{path}.mark_quantity",
            "(numerator, denominator) of a part of one unit, 1 <= numerator < denominator",
            part,
        )


def _kopecks(value: object, path: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        return
    example = ""
    if isinstance(value, float | Decimal) and not isinstance(value, bool):
        try:
            example = f", e.g. {int(Decimal(str(value)) * 100)} for {Decimal(str(value)):.2f}"
        except (ArithmeticError, ValueError):
            example = ""
    raise ReceiptRejected(
        f"{path}: must be an int number of kopecks{example or ', e.g. 19900 for 199.00'}, "
        f"got {value!r}"
    )


def _whole(value: object, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(path, "an int", value)


def _vat(value: object, path: str) -> None:
    """A `Vat` member, nothing else.  Its value strings ("vat20") are ATOL JSON's spelling and are
    read by `kkt.formats.atol_json`; here a string is refused with the member to write instead, so
    the model keeps one spelling (mypy checks it, and equal receipts compare and hash equal)."""
    if isinstance(value, Vat):
        return
    hint = ""
    if isinstance(value, str):
        by_text = {vat.value: vat for vat in Vat} | {vat.name.lower(): vat for vat in Vat}
        close = difflib.get_close_matches(value.lower(), by_text, n=1)
        if close:
            hint = f"; did you mean Vat.{by_text[close[0]].name}?"
    raise ReceiptRejected(f"{path}: must be one of {_members(Vat)}, got {value!r}{hint}")


def _members(kind: type[enum.Enum]) -> str:
    return ", ".join(f"{kind.__name__}.{member.name}" for member in kind)


def _wrong(path: str, expected: str, value: object) -> ReceiptRejected:
    return ReceiptRejected(f"{path}: must be {expected}, got {value!r}")


def items_fingerprint(stored: str) -> str:
    """The items' part of a journal's fingerprint (`Receipt.key_fingerprint`)."""
    return stored.split(":", 1)[0]


def fingerprint_of(operation: int, items: list[tuple[str, int, Decimal, int]]) -> str:
    """A short hash of (operation, [(name, price, quantity, amount)]) -- the same whether computed
    from a `Receipt` or read back from a fiscal document's tags 1054 and 1059 (1030, 1079, 1023,
    1043), so a receipt left in doubt is matched by its content, not its total alone."""
    canonical = [str(operation)]
    for name, price, quantity, amount in items:
        canonical.append(
            f"{name}\x1f{price}\x1f{quantity.quantize(Decimal('0.000001'))}\x1f{amount}"
        )
    return hashlib.sha256("\x1e".join(canonical).encode("utf-8")).hexdigest()[:32]
