"""Archive records of fiscal documents and their fiscal signs.

The short record is what the FN keeps for five years and what FF0A / FNS 40h return: document type,
date-time (YY MM DD HH MM), number, then type-specific data (receipt: operation and total; shift
reports: shift number; registration: INN, RNM, tax systems, work mode ...).

**The real fiscal-sign algorithm is not public**: it runs in the FN's certified crypto coprocessor
(fact sheet ``fn-ffd-ofd.md`` §3).  This emulator signs the short record -- which, by the FFD, is
exactly what the sign protects -- with HMAC-SHA256 under a secret kept per emulated FN, and takes
the first four bytes, big-endian, as the sign (at most 10 decimal digits, as printed).  Signs are
therefore stable, verifiable (`verify_sign`) and useless outside the emulator, which is the point.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from kkt.protocols.ffd import Payments

from .counters import NO_PAYMENTS, NO_VAT, VatSums


@dataclass(frozen=True, slots=True)
class ArchiveRecord:
    """One fiscal document as the archive keeps it."""

    number: int  # tag 1040
    kind: int  # FFD document type: 1, 11, 2, 21, 3, 31, 5, 6
    when: dt.datetime  # tag 1012, to the minute (the FN's 5-byte date-time)
    fiscal_sign: int  # tag 1077's printed value
    shift: int  # the shift the document belongs to (0 before the first one)
    data: bytes  # type-specific part of the short record
    tlv: bytes  # the whole document as an STLV
    operation: int = 0  # tag 1054 for receipts and corrections
    total: int = 0  # tag 1020, kopecks
    payments: Payments = NO_PAYMENTS
    vat: VatSums = NO_VAT
    correction: bool = False

    @property
    def short_record(self) -> bytes:
        return short_record(self.kind, self.when, self.number, self.data)


def short_record(kind: int, when: dt.datetime, number: int, data: bytes) -> bytes:
    stamp = bytes((when.year - 2000, when.month, when.day, when.hour, when.minute))
    return bytes((kind,)) + stamp + number.to_bytes(4, "little") + data


def compute_sign(secret: bytes, fn_serial: str, record: bytes) -> int:
    digest = hmac.new(secret, fn_serial.encode("ascii") + record, hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big")


def verify_sign(secret: bytes, fn_serial: str, record: ArchiveRecord) -> bool:
    return hmac.compare_digest(
        compute_sign(secret, fn_serial, record.short_record).to_bytes(4, "big"),
        record.fiscal_sign.to_bytes(4, "big"),
    )
