"""An emulated Shtrih-M register (ШТРИХ-М-01Ф, or -02Ф: `models`) over the emulated FN.

`open_device` opens a state directory -- creating a registered register in it the first time -- and
returns the `ShtrihRegister` whose ``execute(payload) -> answer`` the TCP and pty shells serve.
"""

from __future__ import annotations

from .personality import ShtrihRegister

open_device = ShtrihRegister.open  # open (or create) the register kept in a state directory

__all__ = ["ShtrihRegister", "open_device"]
