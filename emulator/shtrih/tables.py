"""The Shtrih tables this register keeps: 1 (its own settings), 2 (operators), 18 (fiscal data).

Table 1 and the operators' passwords and names are stored in the state directory's settings;
table 18 is read from the settings and the FN's registration.
"""

from __future__ import annotations

from ..register import RegisterModel

NAME_SIZE = 64  # table 2, field 2
READ_ONLY, BAD_FIELD = 0x7A, 0x33  # Shtrih error codes of a write that cannot be done


def read_table(model: RegisterModel, table: int, row: int, field_: int) -> bytes | None:
    """A field's value, or None when this register has no such field."""
    settings = model.settings
    if table == 1 and row == 1:
        return bytes.fromhex(settings.table1.get(f"{row}/{field_}", "00"))
    if table == 2 and 1 <= row <= 30:
        if field_ == 1:
            return settings.password(row).to_bytes(4, "little")
        if field_ == 2:
            name = settings.operator_name(row).encode("cp1251")
            return name[:NAME_SIZE].ljust(NAME_SIZE, b"\x00")
        return None
    if table == 18 and row == 1:
        registration = model.fn.state.registration
        values = {
            1: settings.serial,
            2: registration.inn if registration else "",
            3: registration.rnm if registration else "",
            4: model.fn.serial,
            7: settings.user_name,
            9: settings.address,
            14: settings.place,
        }
        value = values.get(field_)
        return None if value is None else value.encode("cp1251")
    return None


def write_table(model: RegisterModel, table: int, row: int, field_: int, value: bytes) -> int:
    """Store a table field; return 0, or the Shtrih error code when it cannot be set."""
    settings = model.settings
    if table == 1 and row == 1 and 1 <= field_ <= 100:
        settings.table1[f"{row}/{field_}"] = value.hex()
    elif table == 2 and 1 <= row <= 30 and field_ == 1 and 1 <= len(value) <= 4:
        settings.passwords[str(row)] = int.from_bytes(value, "little")
    elif table == 2 and 1 <= row <= 30 and field_ == 2:
        settings.names[str(row)] = value.split(b"\x00", 1)[0].decode("cp1251", "replace")
    elif table == 18:
        return READ_ONLY  # registration data: only a re-registration changes it
    else:
        return BAD_FIELD
    settings.save()
    return 0
