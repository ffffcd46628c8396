"""An emulated ATOL register (АТОЛ 30Ф, or АТОЛ 42ФС when fiscal-only) over the emulated FN.

`open_device` opens a state directory (the format of `kkt.emulator.state`, which either
personality serves) and returns the `AtolRegister` whose ``execute(command) -> reply`` takes the
block an ATOL v3 ``Add`` carries.
"""

from __future__ import annotations

from .personality import AtolRegister

open_device = AtolRegister.open  # open (or create) the register kept in a state directory

__all__ = ["AtolRegister", "open_device"]
