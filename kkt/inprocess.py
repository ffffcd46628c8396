"""The in-process transport: the driver talks to an emulated register in the same process.

The one place where the driver reaches into `kkt.emulator` (the emulator never imports the
driver).  Payloads go straight to the register's ``execute``: no bytes, no link, no timing -- the
fastest way to test an application against a register.
"""

from __future__ import annotations

import threading
from pathlib import Path

from kkt.emulator.shtrih import ShtrikhRegister, open_device


class InProcess:
    """A `Commander` over an emulated register opened from a state directory."""

    def __init__(self, state: Path, *, fiscal_only: bool = False) -> None:
        self.register: ShtrikhRegister = open_device(state, fiscal_only=fiscal_only)
        self._lock = threading.Lock()

    def exchange(self, payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes:
        with self._lock:
            return self.register.execute(payload)

    def close(self) -> None:
        self.register.close()
