"""The state directory of an emulated register: the format every personality serves.

A directory holds the FN's archive (``fn.sqlite``) and the register's settings (``register.json``);
it belongs to no protocol, so one directory may be served by either personality, one at a time.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

from kkt.protocols.ffd import LifePhase, WorkMode, inn_is_valid, make_rnm

from .clock import Clock, SystemClock
from .fn import FiscalStorage, FnConfig, Registration, SqliteStore
from .register import RegisterModel
from .settings import RegisterSettings

FFD_CODES = {"1.05": 2, "1.2": 4}


def _with_check_digit(prefix: str) -> str:
    """A synthetic 10-digit INN: the prefix and the check digit that makes it valid."""
    for digit in "0123456789":
        if inn_is_valid(prefix + digit):
            return prefix + digit
    raise ValueError(f"no check digit fits {prefix}")


TEST_INN = _with_check_digit("770100000")  # test-only INNs: valid check digits, nobody's
TEST_OFD_INN = _with_check_digit("770200000")


def open_model(
    state: Path,
    *,
    fiscal_only: bool = False,
    ffd: str = "1.2",
    clock: Clock | None = None,
) -> RegisterModel:
    """The vendor-neutral register kept in the directory ``state``.

    A new directory starts as a registered register: test INN and RNM, FN in fiscal mode, shift
    closed.  Reopening one continues it; ``fiscal_only`` and ``ffd`` only matter the first time.
    """
    if ffd not in FFD_CODES:
        raise ValueError(f"FFD version must be one of {', '.join(FFD_CODES)}, not {ffd!r}")
    state.mkdir(parents=True, exist_ok=True)
    settings = RegisterSettings.load(state / "register.json")
    first_time = "fiscal_only" not in settings.extra
    if first_time:
        settings.extra["fiscal_only"] = fiscal_only
        settings.save()
    fiscal_only = bool(settings.extra["fiscal_only"])
    if clock is None:
        clock = SystemClock(dt.timedelta(seconds=settings.clock_offset))
    if "fn_serial" not in settings.extra:
        # Each new emulated FN gets its own serial in the test range, so a farm of emulators
        # looks like a farm (journals and OFDs tell FNs apart by serial); an FN created before
        # serials were drawn keeps the one it has.
        fresh = not (state / "fn.sqlite").exists()
        default = FnConfig().serial
        settings.extra["fn_serial"] = (
            default[:8] + f"{secrets.randbelow(10**8):08d}" if fresh else default
        )
        settings.save()
    config = FnConfig(serial=str(settings.extra["fn_serial"]))
    storage = FiscalStorage(SqliteStore(state / "fn.sqlite"), clock, config=config)
    if storage.status().phase is LifePhase.READY:
        mode = WorkMode.INTERNET | WorkMode.AUTOMATIC if fiscal_only else WorkMode(0)
        storage.register(
            Registration(
                inn=TEST_INN,
                rnm=make_rnm("0000000001", TEST_INN, settings.serial),
                kkt_serial=settings.serial,
                tax_systems=0x03,  # ОСН and УСН доход
                work_mode=int(mode),
                ofd_inn=TEST_OFD_INN,
                ffd_version=FFD_CODES[ffd],
            ),
            [
                (1048, settings.user_name),
                (1009, settings.address),
                (1187, settings.place),
                (1013, settings.serial),
                (1188, "1.0"),
                (1189, FFD_CODES[ffd]),
            ],
        )
    return RegisterModel(storage, settings, clock, fiscal_only=fiscal_only)
