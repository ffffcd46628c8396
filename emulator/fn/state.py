"""The small, persistent state of an emulated FN (everything but the archive itself)."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from kkt.protocols.ffd import LifePhase, WorkMode

from .counters import Counters

# Key life in days by FN model (FN passports via adslbarxatov/KassArray, fact sheet §4.7).
KEY_LIFE_13_MONTHS = 410
KEY_LIFE_15_MONTHS = 470
KEY_LIFE_36_MONTHS = 1110


@dataclass(frozen=True, slots=True)
class FnConfig:
    """What kind of FN is emulated.  Fixed when the FN is created."""

    serial: str = "9999078900000001"  # 16 digits; 99990789... is the test-FN range (МГМ)
    key_life_days: int = KEY_LIFE_15_MONTHS
    archive_capacity: int = 250_000  # documents the 5-year archive holds
    max_registrations: int = 30  # registration + re-registration reports
    ofd_block_days: int = 30  # oldest unsent document older than this: new documents refused
    # Tag 1053's FFD text says "более двух дней" (unverified elsewhere): the flag rises after 2 days
    ofd_warning_days: int = 2
    version: str = "kktkit-fn 1.2"  # 33h: firmware string, type 0 = опытный образец (like an МГМ)
    max_ffd: int = 4  # 1209 code: 4 = FFD 1.2

    def __post_init__(self) -> None:
        if len(self.serial) != 16 or not self.serial.isdigit():
            raise ValueError(f"FN serial must be 16 digits, got {self.serial!r}")
        if self.archive_capacity < 2 or self.key_life_days < 1:
            raise ValueError("archive capacity must be >= 2 documents and key life >= 1 day")


@dataclass(frozen=True, slots=True)
class Registration:
    """Registration parameters (FNS 03h/A3h)."""

    inn: str  # 10 or 12 digits
    rnm: str  # 16 digits with check digits (tag 1037)
    kkt_serial: str  # the register's serial (1013): the RNM check covers it
    tax_systems: int  # 1062 bitmask: 1 ОСН, 2 УСН доход, 4 УСН д-р, 8 ЕНВД, 16 ЕСХН, 32 ПСН
    work_mode: int = 0  # `WorkMode` bits
    extended_flags: int = 0  # FFD 1.2: excise, gambling, lottery, printer in automat, marking ...
    ofd_inn: str = "000000000000"
    ffd_version: int = 4  # 1209: 2 = 1.05, 3 = 1.1, 4 = 1.2

    @property
    def autonomous(self) -> bool:
        return bool(self.work_mode & WorkMode.AUTONOMOUS)


@dataclass(frozen=True, slots=True)
class FnState:
    config: FnConfig
    secret: bytes  # per-FN key of the emulated fiscal sign
    phase: LifePhase = LifePhase.READY
    registration: Registration | None = None
    registrations_done: int = 0
    activated: dt.datetime | None = None
    last_number: int = 0
    last_when: dt.datetime | None = None
    shift_open: bool = False
    shift_number: int = 0
    shift_opened_at: dt.datetime | None = None
    receipt_number: int = 0  # receipts (and corrections) in the current shift, tag 1042
    shift_documents: int = 0  # fiscal documents in the current shift, tag 1111
    shift_counters: Counters = field(default_factory=Counters)
    total_counters: Counters = field(default_factory=Counters)
    first_unsent: int = 0  # 0: the OFD queue is empty
    first_unsent_when: dt.datetime | None = None

    @property
    def expires(self) -> dt.date | None:
        if self.activated is None:
            return None
        return self.activated.date() + dt.timedelta(days=self.config.key_life_days)

    @property
    def unsent_count(self) -> int:
        return self.last_number - self.first_unsent + 1 if self.first_unsent else 0

    def evolve(self, **changes: Any) -> FnState:
        return replace(self, **changes)

    # -- persistence ------------------------------------------------------------------------------

    def to_json(self, *, counters: bool = True) -> dict[str, Any]:
        """The state as JSON-ready data; ``counters=False`` leaves out what the archive implies."""
        data = {name: _dump(getattr(self, name)) for name in _FIELDS}
        if counters:
            data["shift_counters"] = self.shift_counters.to_json()
            data["total_counters"] = self.total_counters.to_json()
        return data

    @classmethod
    def from_json(
        cls, data: dict[str, Any], counters: tuple[Counters, Counters] | None = None
    ) -> FnState:
        """Inverse of `to_json`; ``counters`` (shift, total) when they were left out."""
        if counters is None:
            counters = (
                Counters.from_json(data["shift_counters"]),
                Counters.from_json(data["total_counters"]),
            )
        values = {
            name: data[name] if data[name] is None or name not in _LOAD else _LOAD[name](data[name])
            for name in _FIELDS
        }
        return cls(**values, shift_counters=counters[0], total_counters=counters[1])


# Every field but the counters, in their order; a value is stored as `_dump` writes it and read
# back by its `_LOAD` entry (the others are JSON values already).
_FIELDS = tuple(f.name for f in fields(FnState) if not f.name.endswith("_counters"))
_LOAD: dict[str, Callable[[Any], Any]] = {
    "config": lambda value: FnConfig(**value),
    "secret": bytes.fromhex,
    "phase": LifePhase,
    "registration": lambda value: Registration(**value),
    **dict.fromkeys(
        ("activated", "last_when", "shift_opened_at", "first_unsent_when"),
        dt.datetime.fromisoformat,
    ),
}


def _dump(value: Any) -> Any:
    if isinstance(value, FnConfig | Registration):
        return _as_dict(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return int(value) if isinstance(value, LifePhase) else value


@functools.lru_cache(maxsize=16)
def _as_dict(value: FnConfig | Registration) -> dict[str, Any]:
    # Written with every document but almost never changed: convert each value once.
    return asdict(value)
