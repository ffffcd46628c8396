"""The Shtrih tables this register keeps: 1 (its own settings), 2 (operators), 18 (fiscal data),
19 (the OFD's server) and 21 (the exchange mode).

Table 1 and the operators' passwords and names are stored in the state directory's settings;
table 18 is read from the settings and the FN's registration.  Tables 19 and 21 are the settings'
``ofd_host``, ``ofd_port``, ``ofd_timeout`` and ``ofd_via_driver`` (fact sheet
``ofd-cloud-marking.md`` §1.3: table 19 fields 1 server (64 characters), 2 port, 3 timeout in
seconds; table 21 field 2 «Режим обмена с ОФД», 1 through the register, 0 through the driver).
The widths of the numeric fields are not in the fact sheet [?]: the port is read as 2 bytes
(a TCP port's size) and the timeout and mode as 1, little-endian as every Shtrih number; a write
of 1 to 4 bytes is accepted.
"""

from __future__ import annotations

from ..register import RegisterModel

NAME_SIZE = 64  # table 2, field 2
HOST_SIZE = 64  # table 19, field 1
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
    if table == 19 and row == 1:
        if field_ == 1:
            return (settings.ofd_host or "").encode("cp1251")[:HOST_SIZE].ljust(HOST_SIZE, b"\x00")
        if field_ == 2:
            return (settings.ofd_port or 0).to_bytes(2, "little")
        if field_ == 3:
            return min(settings.ofd_timeout, 0xFF).to_bytes(1, "little")
        return None
    if table == 21 and row == 1 and field_ == 2:
        return bytes((0 if settings.ofd_via_driver else 1,))
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
    elif table == 19 and row == 1 and field_ == 1:
        host = value.split(b"\x00", 1)[0].decode("cp1251", "replace").strip()
        settings.ofd_host = host or None
    elif table == 19 and row == 1 and field_ in (2, 3) and 1 <= len(value) <= 4:
        number = int.from_bytes(value, "little")
        if field_ == 2:
            if number > 0xFFFF:
                return BAD_FIELD
            settings.ofd_port = number or None
        else:
            settings.ofd_timeout = number
    elif table == 21 and row == 1 and field_ == 2 and 1 <= len(value) <= 4:
        mode = int.from_bytes(value, "little")
        if mode not in (0, 1):
            return BAD_FIELD
        settings.ofd_via_driver = mode == 0
    else:
        return BAD_FIELD
    settings.save()
    return 0
