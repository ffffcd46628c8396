"""The vendor-neutral receipt: what a shop sells, checked before a byte is sent.

Money is `int` kopecks; quantities are `Decimal` (up to 6 decimals, as FF46 carries them).
``validate`` refuses, with `ReceiptRejected`, whatever a register would refuse halfway through --
an empty receipt, payments that do not cover the total, change from a non-cash payment, a name
the register cannot print -- so a receipt never fails with half of it sent.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from kkt.protocols.ffd import Payments

from .errors import ReceiptRejected


class Vat(enum.Enum):
    """VAT rate of an item (tag 1199)."""

    VAT20 = "vat20"
    VAT10 = "vat10"
    VAT0 = "vat0"
    NONE = "none"
    VAT120 = "vat120"  # 20/120, for prepayments
    VAT110 = "vat110"  # 10/110


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


@dataclass(frozen=True, slots=True)
class Item:
    name: str
    price: int  # kopecks per unit
    quantity: Decimal = Decimal(1)
    vat: Vat = Vat.NONE
    payment_method: int = 4  # tag 1214: 4 = full payment
    payment_subject: int = 1  # tag 1212: 1 = goods
    amount: int | None = None  # kopecks; None: price x quantity, rounded half up
    department: int = 1
    measure: int | None = None  # tag 2108 (FFD 1.2): 0 pieces, 11 kg, 41 l ...
    extra: tuple[tuple[int, object], ...] = ()  # more item tags (1162, 1222, 1224 ...)

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

    def validate(self) -> None:
        """Raise `ReceiptRejected` saying what to fix; return when the receipt can be sent."""
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
