"""An emulated ATOL register (АТОЛ 30Ф, or АТОЛ 42ФС when fiscal-only) over the emulated FN.

`open_device` opens a state directory -- the same format the Shtrih personality keeps, so one
directory can be served by either personality (one at a time) -- and returns the `AtolRegister`
whose ``execute(command) -> reply`` takes the block an ATOL v3 ``Add`` carries.
"""

from __future__ import annotations

from pathlib import Path

from ..clock import Clock
from ..register import Refusal
from ..shtrih import open_model
from .register import ATOL_CODES, FN_CODES, AtolRefusal, AtolRegister


def open_device(
    state: Path,
    *,
    fiscal_only: bool = False,
    ffd: str = "1.2",
    clock: Clock | None = None,
) -> AtolRegister:
    """Open (or create) the emulated register kept in the directory ``state``.

    A new directory starts as a registered register with its shift closed (see
    `kkt.emulator.shtrih.open_device`); ``fiscal_only`` and ``ffd`` only matter the first time.
    """
    return AtolRegister(open_model(state, fiscal_only=fiscal_only, ffd=ffd, clock=clock))


__all__ = ["ATOL_CODES", "FN_CODES", "AtolRefusal", "AtolRegister", "Refusal", "open_device"]
