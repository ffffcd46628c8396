"""What the soaks share: the receipt they sell, how they read the FN's receipts, their log tally
and loopback timing, and how they report a broken invariant."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter, defaultdict
from collections.abc import Iterator
from decimal import Decimal

from kkt.emulator.shtrih import ShtrihRegister
from kkt.protocols.shtrih.link import DeviceSettings, HostSettings

from kkt import Item, Payments, Receipt, Vat

# Loopback timing: the emulator reacts in microseconds, so the link's timeouts can be short (the
# device's byte timeout below the host's ACK timeout, as on a real line).
SOAK_HOST = HostSettings(ack=0.12, byte=0.1, quiet=0.04, probe=0.15, answer=5.0)
SOAK_DEVICE = DeviceSettings(byte=0.06, confirm=0.15, filler_after_ack=True)

RECEIPT_KIND = 3  # FFD document type of a receipt


def receipt_for(total: int) -> Receipt:
    return Receipt((Item("Товар", total, Decimal(1), Vat.VAT20),), Payments(cash=total))


def receipts_by_total(device: ShtrihRegister) -> dict[int, list[tuple[int, int]]]:
    """The FN's receipts: total -> [(document number, fiscal sign), ...]."""
    found: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for record in device.fn._store.records():
        if record.kind == RECEIPT_KIND:
            found[record.total].append((record.number, record.fiscal_sign))
    return found


def first_few(problems: list[str], limit: int = 5) -> str:
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more


def fail_if(soak: str, problems: list[str]) -> None:
    if problems:
        raise AssertionError(f"soak {soak}: {first_few(problems)}")


class LogTally(logging.Handler):
    """Counts the project's warnings and keeps its first errors (an emulator's internal errors
    are logged, not raised: this is where a soak sees them)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.levels: Counter[str] = Counter()
        self.errors: list[str] = []
        self.error_count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.levels[record.levelname] += 1
        if record.levelno >= logging.ERROR:
            self.error_count += 1
            if len(self.errors) < 5:
                cause = ""
                if record.exc_info and record.exc_info[1] is not None:
                    error = record.exc_info[1]
                    cause = f" ({type(error).__name__}: {error})"
                self.errors.append(f"{record.name}: {record.getMessage()}{cause}")


@contextlib.contextmanager
def tally_logs() -> Iterator[LogTally]:
    """Collect the ``kkt`` loggers' warnings instead of printing them in the middle of the
    figures (a soak provokes thousands on purpose)."""
    logger = logging.getLogger("kkt")
    tally = LogTally()
    propagate = logger.propagate
    logger.addHandler(tally)
    logger.propagate = False
    try:
        yield tally
    finally:
        logger.removeHandler(tally)
        logger.propagate = propagate


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error)[:160]}"


def counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counter.most_common())
