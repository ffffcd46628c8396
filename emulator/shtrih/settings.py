"""What a Shtrih register keeps besides its FN: tables, cash movements, the clock's offset.

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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..register import RegisterModel

_NAMES = {29: "Администратор", 30: "Системный администратор"}
NAME_SIZE = 64  # table 2, field 2


@dataclass
class RegisterSettings:
    path: Path | None = None  # None: not persisted (tests)
    serial: str = "0012345678"  # table 18 field 1; the RNM check covers it
    user_name: str = 'ООО "Эмулятор ККТ"'
    address: str = "г. Москва, ул. Тестовая, д. 1"
    place: str = "Эмулятор kktkit"
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

    # -- tables (1, 2 and 18) ---------------------------------------------------------------------

    def read_table(
        self, table: int, row: int, field_: int, register: RegisterModel
    ) -> bytes | None:
        if table == 1 and row == 1:
            return bytes.fromhex(self.table1.get(f"{row}/{field_}", "00"))
        if table == 2 and 1 <= row <= 30:
            if field_ == 1:
                return self.password(row).to_bytes(4, "little")
            if field_ == 2:
                return (
                    self.operator_name(row).encode("cp1251")[:NAME_SIZE].ljust(NAME_SIZE, b"\x00")
                )
            return None
        if table == 18 and row == 1:
            registration = register.fn.state.registration
            values = {
                1: self.serial,
                2: registration.inn if registration else "",
                3: registration.rnm if registration else "",
                4: register.fn.serial,
                7: self.user_name,
                9: self.address,
                14: self.place,
            }
            value = values.get(field_)
            return None if value is None else value.encode("cp1251")
        return None

    def write_table(self, table: int, row: int, field_: int, value: bytes) -> int:
        """Store a table field; return 0, or the Shtrih error code when it cannot be set."""
        if table == 1 and row == 1 and 1 <= field_ <= 100:
            self.table1[f"{row}/{field_}"] = value.hex()
        elif table == 2 and 1 <= row <= 30 and field_ == 1 and 1 <= len(value) <= 4:
            self.passwords[str(row)] = int.from_bytes(value, "little")
        elif table == 2 and 1 <= row <= 30 and field_ == 2:
            self.names[str(row)] = value.split(b"\x00", 1)[0].decode("cp1251", "replace")
        elif table == 18:
            return 0x7A  # registration data: only a re-registration changes it
        else:
            return 0x33
        self.save()
        return 0
