"""FN counters in the layout of command 36h (FFD 1.1/1.2) and of the TLV blocks 1194/1157.

Per operation type (приход, возврат прихода, расход, возврат расхода): a count and 12 sums -- total,
cash, electronic, prepayment, credit, counter-provision, VAT 20 %, VAT 10 %, sum at 0 %, sum without
VAT, VAT 20/120, VAT 10/110.  A correction block: the count of all corrections and, per operation
type, a count and a sum.

Reading chosen: correction receipts are counted in the operation blocks too (tag 1135 counts
"чеки и чеки коррекции" of that type) and, in addition, in the correction block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kkt.protocols.ffd import Payments

SUM_FIELDS = (
    "total",
    "cash",
    "electronic",
    "prepaid",
    "credit",
    "counter",
    "vat20",
    "vat10",
    "vat0",
    "no_vat",
    "vat20_120",
    "vat10_110",
)

OPERATIONS = (1, 2, 3, 4)  # tag 1054


@dataclass(frozen=True, slots=True)
class VatSums:
    """Tax sums of a receipt, kopecks (tags 1102-1107)."""

    vat20: int = 0
    vat10: int = 0
    vat0: int = 0  # turnover at 0 %
    no_vat: int = 0  # turnover without VAT
    vat20_120: int = 0
    vat10_110: int = 0


NO_PAYMENTS = Payments()
NO_VAT = VatSums()


@dataclass(frozen=True, slots=True)
class OperationCounters:
    count: int = 0
    total: int = 0
    cash: int = 0
    electronic: int = 0
    prepaid: int = 0
    credit: int = 0
    counter: int = 0
    vat20: int = 0
    vat10: int = 0
    vat0: int = 0
    no_vat: int = 0
    vat20_120: int = 0
    vat10_110: int = 0

    def add(self, total: int, payments: Payments, vat: VatSums) -> OperationCounters:
        p, v = payments, vat
        return OperationCounters(
            self.count + 1,
            self.total + total,
            self.cash + p.cash,
            self.electronic + p.electronic,
            self.prepaid + p.prepaid,
            self.credit + p.credit,
            self.counter + p.other,
            self.vat20 + v.vat20,
            self.vat10 + v.vat10,
            self.vat0 + v.vat0,
            self.no_vat + v.no_vat,
            self.vat20_120 + v.vat20_120,
            self.vat10_110 + v.vat10_110,
        )


@dataclass(frozen=True, slots=True)
class CorrectionCounters:
    count: int = 0
    counts: tuple[int, int, int, int] = (0, 0, 0, 0)
    sums: tuple[int, int, int, int] = (0, 0, 0, 0)

    def add(self, operation: int, total: int) -> CorrectionCounters:
        i = operation - 1
        counts = list(self.counts)
        sums = list(self.sums)
        counts[i] += 1
        sums[i] += total
        return CorrectionCounters(self.count + 1, _four(counts), _four(sums))


@dataclass(frozen=True, slots=True)
class Counters:
    """One counter set: for a shift (36h with 0) or for the whole FN (36h with 1)."""

    operations: tuple[OperationCounters, ...] = field(
        default_factory=lambda: tuple(OperationCounters() for _ in OPERATIONS)
    )
    corrections: CorrectionCounters = field(default_factory=CorrectionCounters)

    def add_receipt(
        self, operation: int, total: int, payments: Payments, vat: VatSums, *, correction: bool
    ) -> Counters:
        blocks = list(self.operations)
        blocks[operation - 1] = blocks[operation - 1].add(total, payments, vat)
        corrections = self.corrections.add(operation, total) if correction else self.corrections
        return Counters(tuple(blocks), corrections)

    @property
    def operation_count(self) -> int:
        return sum(block.count for block in self.operations)

    def to_json(self) -> dict[str, Any]:
        return {
            "operations": [
                [getattr(b, n) for n in ("count", *SUM_FIELDS)] for b in self.operations
            ],
            "corrections": [
                self.corrections.count,
                list(self.corrections.counts),
                list(self.corrections.sums),
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Counters:
        blocks = tuple(OperationCounters(*row) for row in data["operations"])
        count, counts, sums = data["corrections"]
        return cls(blocks, CorrectionCounters(count, _four(counts), _four(sums)))


def _four(values: list[int]) -> tuple[int, int, int, int]:
    a, b, c, d = values
    return (a, b, c, d)
