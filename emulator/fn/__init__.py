"""The emulated fiscal storage (ФН): `FiscalStorage` over a `MemoryStore` or a `SqliteStore`."""

from .archive import ArchiveRecord, compute_sign, verify_sign
from .counters import CorrectionCounters, Counters, OperationCounters, VatSums
from .errors import FnCode, FnError
from .exchange import ExchangeStatus, OfdReceipt
from .model import FiscalStorage, FnStatus, Formed, OfdQueue, Verification
from .state import (
    KEY_LIFE_13_MONTHS,
    KEY_LIFE_15_MONTHS,
    KEY_LIFE_36_MONTHS,
    FnConfig,
    FnState,
    Registration,
)
from .storage import FnStore, MemoryStore, SqliteStore

__all__ = [
    "KEY_LIFE_13_MONTHS",
    "KEY_LIFE_15_MONTHS",
    "KEY_LIFE_36_MONTHS",
    "ArchiveRecord",
    "CorrectionCounters",
    "Counters",
    "ExchangeStatus",
    "FiscalStorage",
    "FnCode",
    "FnConfig",
    "FnError",
    "FnState",
    "FnStatus",
    "FnStore",
    "Formed",
    "MemoryStore",
    "OfdQueue",
    "OfdReceipt",
    "OperationCounters",
    "Registration",
    "SqliteStore",
    "VatSums",
    "Verification",
    "compute_sign",
    "verify_sign",
]
