"""The receipt a register is building: items, receipt-level tags, totals and tax sums.

Vendor-neutral: a personality adds items from its own commands and closes the receipt into the
FN with `ReceiptBuilder.items_tlv` and `vat_sums`.

Tax rates use the FFD 1.2 codes of tag 1199: 1 VAT 20 %, 2 VAT 10 %, 3 VAT 20/120, 4 VAT 10/110,
5 VAT 0 %, 6 no VAT.  The tax of an item is the amount times rate / (100 + rate), rounded half up
to the kopeck, as registers print it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from kkt.protocols.ffd import TlvList, Value

from .fn.counters import VatSums
from .fn.marking import code_tags

VAT20, VAT10, VAT20_120, VAT10_110, VAT0, NO_VAT = 1, 2, 3, 4, 5, 6
_RATE = {VAT20: 20, VAT10: 10, VAT20_120: 20, VAT10_110: 10, VAT0: 0, NO_VAT: 0}

RECEIPT_OPERATION = {0: 1, 1: 3, 2: 2, 3: 4}  # receipt type (sale, buy, returns) -> tag 1054


def item_tax(amount: int, vat: int) -> int:
    rate = _RATE[vat]
    if not rate:
        return 0
    return int((Decimal(amount) * rate / (100 + rate)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(slots=True)
class Item:
    name: str
    price: int  # kopecks
    quantity: Decimal
    amount: int  # kopecks
    vat: int  # 1199 code
    tax: int  # kopecks
    payment_method: int = 4  # 1214: full payment
    payment_subject: int = 1  # 1212: goods
    department: int = 1
    extra: TlvList = field(default_factory=list)  # tags bound to this item (FF4D)
    # A marked item's code (bound by FF67 / B7h): the FN checks it was checked and accepted and
    # writes 2106; the register adds 1163, 2115 and the measure 2108 unless the host sent them.
    mark_code: bytes | None = None
    measure: int = 0  # 2108: 0 pieces

    def tlv(self) -> tuple[int, Value]:
        body: TlvList = [
            (1030, self.name),
            (1079, self.price),
            (1023, self.quantity),
            (1043, self.amount),
            (1199, self.vat),
            (1200, self.tax),
            (1214, self.payment_method),
            (1212, self.payment_subject),
            *self.extra,
        ]
        if self.mark_code is not None:
            given = {tag for tag, _ in body}
            wanted = [(2108, self.measure), *code_tags(self.mark_code)]
            body += [(tag, value) for tag, value in wanted if tag not in given]
            body.append((2000, self.mark_code))  # the FN's B7h binding; it never reaches the FD
        return (1059, body)


@dataclass(slots=True)
class ReceiptBuilder:
    receipt_type: int  # 0 sale, 1 buy, 2 sale return, 3 buy return
    items: list[Item] = field(default_factory=list)
    tags: TlvList = field(default_factory=list)  # receipt-level tags (FF0C)

    @property
    def operation(self) -> int:
        return RECEIPT_OPERATION[self.receipt_type]

    @property
    def total(self) -> int:
        return sum(item.amount for item in self.items)

    def has_tag(self, tag: int) -> bool:
        return any(t == tag for t, _ in self.tags)

    def items_tlv(self) -> TlvList:
        return [item.tlv() for item in self.items]

    def vat_sums(self) -> VatSums:
        sums = dict.fromkeys(_RATE, 0)
        turnover0 = turnover_none = 0
        for item in self.items:
            sums[item.vat] += item.tax
            if item.vat == VAT0:
                turnover0 += item.amount
            elif item.vat == NO_VAT:
                turnover_none += item.amount
        return VatSums(
            vat20=sums[VAT20],
            vat10=sums[VAT10],
            vat0=turnover0,
            no_vat=turnover_none,
            vat20_120=sums[VAT20_120],
            vat10_110=sums[VAT10_110],
        )
