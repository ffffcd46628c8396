"""The in-process transport: the driver talks to an emulated register in the same process.

The one place where the driver reaches into `kkt.emulator` (the emulator never imports the
driver).  Payloads go straight to the register's ``execute``: no bytes, no link, no timing -- the
fastest way to test an application against a register.  Like a session, it takes no lock: the
`kkt.Register` above runs one command at a time.

The state directory is this process's while it is open: when another process serves it (``kkt
emulator serve``) or has it open, opening fails with `kkt.errors.PortBusy` naming that process and
the URL it serves on, before anything in the directory is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kkt.errors import PortBusy


class InProcess:
    """A `Commander` over an emulated register opened from a state directory.

    ``protocol`` picks the personality: Shtrih payloads (code, parameters) or ATOL command
    blocks (access password, code, parameters) -- the same register and FN either way.
    """

    def __init__(self, state: Path, *, fiscal_only: bool = False, protocol: str = "shtrih") -> None:
        from kkt.emulator.state import StateBusy

        self.register: Any
        try:
            if protocol == "atol":
                from kkt.emulator.atol import open_device as open_atol

                self.register = open_atol(state, fiscal_only=fiscal_only)
            else:
                from kkt.emulator.shtrih import open_device

                self.register = open_device(state, fiscal_only=fiscal_only)
        except StateBusy as busy:
            raise PortBusy(str(busy)) from None

    def exchange(self, payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes:
        answer: bytes = self.register.execute(payload)
        return answer

    def close(self) -> None:
        self.register.close()
