"""The ATOL personality's tables: every code it answers with, its identity, its receipt types and
taxes, and the commands quick enough for the shells' event loop (fact sheet §2.4, §2.5).
"""

from __future__ import annotations

from kkt.protocols.atol.modes import Mode, PaymentType, ReceiptType

from ..fn import FnCode
from ..receipt import NO_VAT, VAT0, VAT10, VAT10_110, VAT20, VAT20_120
from ..register import ADMIN, OPERATOR, SYSADMIN, Reason

# -- every ATOL code this personality answers with (fact sheet §2.5) -----------------------------

# The register model's refusals.
ATOL_CODES: dict[Reason, int] = {
    Reason.SHIFT_OPEN: 0x9C,
    # ATOL's table has no "shift closed" code: the FN refuses a document outside a shift, and
    # that is "wrong FN state" (D4h).
    Reason.SHIFT_CLOSED: 0xD4,
    Reason.SHIFT_EXPIRED: 0x88,
    Reason.RECEIPT_OPEN: 0x9B,
    Reason.NO_RECEIPT: 0x9A,
    Reason.WRONG_RECEIPT_TYPE: 0x6A,
    Reason.EMPTY_RECEIPT: 0x08,  # the receipt's sum is wrong: it has none
    Reason.NEGATIVE_TOTAL: 0x08,
    Reason.PAYMENT_SHORT: 0x72,
    Reason.NON_CASH_OVERPAID: 0x71,
    Reason.NEEDS_CONTACT: 0xE7,  # the FN's data is incomplete: tag 1008 is missing
    Reason.NO_CASH: 0x98,
    Reason.BAD_PARAMETER: 0x13,
    Reason.NOT_SUPPORTED: 0x7A,  # "this model cannot execute the command"
    Reason.PRINT_PENDING: 0x67,  # the printer still waits for paper to finish a document
    Reason.NO_PAPER: 0x67,
    Reason.WRONG_PASSWORD: 0x8C,
    Reason.NO_DOCUMENT: 0x9A,
    Reason.READ_ONLY: 0x7A,
    Reason.DATE_MISMATCH: 0x94,
    # The FN refuses it (its 19h, "does not match the registration"): ATOL answers the FN's
    # parameter refusals with E7h, "bad FN command parameters" (fact sheet §2.5; FN_CODES below).
    Reason.TAX_SYSTEM: 0xE7,
}

# The FN's refusals (FNS result codes) as ATOL's Dxh/Exh codes for the same conditions.
FN_CODES: dict[FnCode, int] = {
    FnCode.UNKNOWN_COMMAND: 0xD3,
    FnCode.WRONG_STATE: 0xD4,
    FnCode.FN_FAILURE: 0xD5,
    FnCode.LIFE_PHASE: 0xD4,
    FnCode.BAD_DATETIME: 0xD9,
    FnCode.NO_DATA: 0xDA,
    FnCode.BAD_PARAMETER: 0xE7,
    FnCode.WRONG_FFD_MODE: 0xE7,
    FnCode.FORBIDDEN_TAG: 0xE7,
    FnCode.DUPLICATE_TAG: 0xE7,
    FnCode.MISSING_DATA: 0xE7,
    FnCode.TLV_TOO_BIG: 0xE8,
    FnCode.RESOURCE_EXHAUSTED: 0xEA,
    FnCode.STORAGE_LIMITED: 0xEB,
    FnCode.SHIFT_EXPIRED: 0xF0,
    FnCode.OFD_REPLY_REJECTED: 0xEC,
}

# What only this personality refuses.
BAD_SUM = 0x08
BAD_TLV = 0xE7  # tags that do not parse: "bad FN command parameters"
MALFORMED = 0x14  # bad length: missing or extra bytes, or a field that does not decode
UNKNOWN_COMMAND = 0x66
WRONG_MODE = 0x66
MODE_BLOCKED = 0x1E  # 56h while in another mode
BAD_PAYMENT_TYPE = 0x7E
BAD_REPORT_TYPE = 0xA3
BAD_REGISTER = 0x6C
NOT_FISCAL = 0xA8
NO_PAPER = 0x67
PRINTER_MECHANICS = 0x69  # the cover is open


# -- identity -------------------------------------------------------------------------------------

MODEL_PRINTED, NAME_PRINTED = 61, "АТОЛ 30Ф"  # libfptr model ids (fact sheet §2.4)
MODEL_FISCAL_ONLY, NAME_FISCAL_ONLY = 77, "АТОЛ 42ФС"
PROTOCOL, DEVICE_TYPE = 1, 1  # as in the fact sheet's real A5h dump
DEVICE_MODE = 0x1000  # the dump's two mode bytes, 10 00
VERSION = bytes((0x03, 0x00, 0x00, 0x00, 0x01))  # major, minor, language, build (BCD2)
FIRMWARE = 0x0300

# Who may enter each mode: the lowest operator number, as Shtrih's X/Z need an administrator.
MODE_LEVEL = {
    Mode.REGISTRATION: OPERATOR,
    Mode.X_REPORTS: OPERATOR,
    Mode.Z_REPORTS: ADMIN,
    Mode.PROGRAMMING: SYSADMIN,
    Mode.FN_ACCESS: SYSADMIN,
    Mode.EKLZ_ACCESS: SYSADMIN,
}

# 92h receipt type -> the model's receipt type (0 sale, 1 buy, 2 sale return, 3 buy return)
RECEIPT_TYPES = {
    ReceiptType.SELL: 0,
    ReceiptType.SELL_RETURN: 2,
    ReceiptType.BUY: 1,
    ReceiptType.BUY_RETURN: 3,
}
ATOL_RECEIPT_TYPE = {model: int(atol) for atol, model in RECEIPT_TYPES.items()}
# Correction receipt types -> their operation (tag 1054).
CORRECTION_OPERATIONS = {
    ReceiptType.SELL_CORRECTION: 1,
    ReceiptType.SELL_RETURN_CORRECTION: 2,
    ReceiptType.BUY_CORRECTION: 3,
    ReceiptType.BUY_RETURN_CORRECTION: 4,
}
# E6h/EBh tax byte: the FN's tag-1199 codes, as the one public encoder writes them (Zzzzipper
# FiscalStorage.h); 0 takes the department's tax, which is none on this register.  7 and 8 are
# VAT 5 % and 7 % in tag 1199 (not libfptr's API numbers for VAT 20): not emulated, refused.
TAXES = {
    0: NO_VAT,
    1: VAT20,
    2: VAT10,
    3: VAT20_120,
    4: VAT10_110,
    5: VAT0,
    6: NO_VAT,
}
REPORT_X = 1
MAX_SUM = 10**10 - 1  # sums are BCD5 on the wire (3Fh's receipt sum, 99h's answer)
PAYMENT_TYPES = frozenset(int(kind) for kind in PaymentType)

# Commands that write nothing to disk, cheap enough to answer on the shells' event loop (see the
# Shtrih personality's QUICK_CODES): queries, modes and the receipt's steps that live in memory
# until 4Ah closes it.
QUICK_CODES = frozenset(
    {0x3F, 0x45, 0xA5, 0x91, 0xA4, 0x47, 0x4D}
    | {0x56, 0x48}
    | {0x92, 0xE6, 0xEA, 0xEB, 0xE8, 0x99, 0x59}
)
