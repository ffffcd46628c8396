"""Why a correction receipt is made: its kind (tag 1173) and basis (tag 1174).

The basis differs by FFD version (fact sheet ``fn-ffd-ofd.md`` §1.3-§1.4; yandex/ofd
``schemas/1.05/receiptCorrection.schema.json``; ATOL Online v4 ``correction_info``, fact sheet
``ofd-cloud-marking.md`` §2.3):

* FFD 1.05 and 1.1: 1174 holds 1177 (what the basis is), 1178 (its date) and 1179 (its number);
  the schema and ATOL Online both require all three.
* FFD 1.2: 1177 is gone; 1178 is the date of the settlement being corrected (required), 1179 the
  tax authority's order number (a correction by order has one; one on the user's own initiative
  may leave it out).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from kkt.protocols.ffd import TlvList

from .errors import ReceiptRejected

MAX_NUMBER_CHARS = 32  # tag 1179
MAX_NAME_CHARS = 256  # tag 1177 (yandex/ofd ``ofd/protocol.py``)
NO_NUMBER = "б/н"  # "without a number": what 1.05 asks 1179 for when there is none
_KIND_NAMES = ("самостоятельно", "по предписанию")


@dataclass(frozen=True, slots=True)
class CorrectionBasis:
    """Tag 1173 and the members of tag 1174 of a correction receipt.

    ``settled_on`` is the date of the settlement being corrected (1178); left out, it is the day
    the correction is made.  ``number`` is the order's (or the basis document's) number (1179): a
    correction ``by_order`` needs it.  ``name`` (1177) is sent in FFD 1.05/1.1 only; left out, it
    is the kind's name ("самостоятельно" / "по предписанию").
    """

    by_order: bool = False
    settled_on: dt.date | None = None
    number: str = ""
    name: str = ""

    def check(self) -> None:
        if self.by_order and not self.number:
            raise ReceiptRejected(
                "correction basis: a correction by order needs the order's number (tag 1179)"
            )
        if len(self.number) > MAX_NUMBER_CHARS:
            raise ReceiptRejected(
                f"correction basis: the number is {len(self.number)} characters, "
                f"tag 1179 takes at most {MAX_NUMBER_CHARS}"
            )
        if len(self.name) > MAX_NAME_CHARS:
            raise ReceiptRejected(
                f"correction basis: the name is {len(self.name)} characters, "
                f"tag 1177 takes at most {MAX_NAME_CHARS}"
            )

    def tags(self, ffd: str, today: dt.date) -> TlvList:
        """Tags 1173 and 1174 for a register registered in FFD version ``ffd`` ("1.05", "1.2")."""
        self.check()
        day = dt.datetime.combine(self.settled_on or today, dt.time())
        members: TlvList = []
        if ffd != "1.2":
            members.append((1177, self.name or _KIND_NAMES[self.by_order]))
        members.append((1178, day))
        if self.number or ffd != "1.2":
            members.append((1179, self.number or NO_NUMBER))
        return [(1173, int(self.by_order)), (1174, members)]


FINGERPRINT_PREFIX = "correction:"  # tells a correction's journal entry from a receipt's


def correction_fingerprint(operation: int, total: int, basis: CorrectionBasis) -> str:
    """What binds an idempotency key to one correction: its operation, sum and basis as given
    (the basis's date left out stays out: a repeat on the next day is the same correction)."""
    settled = basis.settled_on.isoformat() if basis.settled_on else ""
    canonical = "\x1f".join(
        (str(operation), str(total), str(int(basis.by_order)), settled, basis.number, basis.name)
    )
    return FINGERPRINT_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
