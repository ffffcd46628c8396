"""Registration data that passes the FN's checks, for tests of the emulated FN."""

from __future__ import annotations

import datetime as dt

from kkt.emulator.fn import Registration
from kkt.protocols.ffd import make_rnm

START = dt.datetime(2026, 11, 2, 9, 0, 0)
INN = "7707083893"  # a real legal-entity INN with valid check digits
OFD_INN = "7728168971"
KKT_SERIAL = "0012345678"


def registration(**changes: object) -> Registration:
    values: dict[str, object] = {
        "inn": INN,
        "rnm": make_rnm("0000000001", INN, KKT_SERIAL),
        "kkt_serial": KKT_SERIAL,
        "tax_systems": 1,
        "work_mode": 0,
        "ofd_inn": OFD_INN,
        "ffd_version": 4,
    }
    values.update(changes)
    return Registration(**values)  # type: ignore[arg-type]
