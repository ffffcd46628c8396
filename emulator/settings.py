"""What a register keeps besides its FN: identity, operators, cash movements, the clock's offset,
and the fields of its vendor's tables (kept as the personality writes them).

Stored as one JSON file in the state directory, replaced atomically (write, fsync, rename) whenever
it changes.  Nothing a receipt changes lives here -- receipts move only the FN's archive, so a
receipt costs one fsync -- the cash in the drawer is derived from the FN's counters plus the cash
deposited and withdrawn recorded here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_NAMES = {29: "Администратор", 30: "Системный администратор"}


@dataclass
class RegisterSettings:
    path: Path | None = None  # None: not persisted (tests)
    serial: str = "0012345678"  # table 18 field 1; the RNM check covers it
    user_name: str = 'ООО "Эмулятор ККТ"'
    address: str = "г. Москва, ул. Тестовая, д. 1"
    place: str = "Эмулятор kktkit"
    # Conditional tags of the FFD (fact sheet fn-ffd-ofd.md §1.4): the OFD's name (1046) in the
    # registration of a register that sends to an OFD, the automat's number (1036) for automatic
    # mode, the sender's e-mail (1117) for receipts sent electronically.
    ofd_name: str = 'ООО "Тестовый ОФД"'
    machine_number: str = "1"
    sender_email: str = "kkt@example.org"
    # The register's own link to its OFD (Shtrih table 19: server, port, timeout; table 21 field
    # 2: exchange mode).  ofd_host None: no network of its own -- a driver relays (FF30-FF33);
    # ofd_via_driver: the mode "through the driver" (table 21 field 2 = 0) is set.
    ofd_host: str | None = None
    ofd_port: int | None = None
    ofd_timeout: int = 5  # seconds; JavaPOS's table dump shows «Тайм-аут опроса офд» = 5
    ofd_via_driver: bool = False
    passwords: dict[str, int] = field(default_factory=dict)  # operator -> password, when changed
    names: dict[str, str] = field(default_factory=dict)  # operator -> name, when changed
    table1: dict[str, str] = field(default_factory=dict)  # "row/field" -> hex value
    cash_in_total: int = 0
    cash_out_total: int = 0
    shift_cash_in: int = 0
    shift_cash_out: int = 0
    cash_operations: int = 0
    clock_offset: float = 0.0  # seconds, for a SystemClock that was set or advanced
    extra: dict[str, Any] = field(default_factory=dict)

    # -- persistence -------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> RegisterSettings:
        if not path.exists():
            settings = cls(path=path)
            settings.save()
            return settings
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(path=path, **data)

    def save(self) -> None:
        if self.path is None:
            return
        data = asdict(self)
        del data["path"]
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)

    # -- operators --------------------------------------------------------------------------------

    def password(self, operator: int) -> int:
        return self.passwords.get(str(operator), operator)

    def operator_name(self, operator: int) -> str:
        return self.names.get(str(operator), _NAMES.get(operator, f"Кассир {operator}"))

    # -- cash -------------------------------------------------------------------------------------

    def cash_operation(self, amount: int, *, deposit: bool) -> None:
        if deposit:
            self.cash_in_total += amount
            self.shift_cash_in += amount
        else:
            self.cash_out_total += amount
            self.shift_cash_out += amount
        self.cash_operations += 1
        self.save()

    def start_shift(self) -> None:
        self.shift_cash_in = self.shift_cash_out = 0
        self.save()

    def remember_clock(self, clock: object) -> None:
        offset = getattr(clock, "offset", None)
        if isinstance(offset, dt.timedelta):
            self.clock_offset = offset.total_seconds()
            self.save()
