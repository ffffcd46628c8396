"""What every personality does alike: one entry point over the register model, never raising.

A personality is a protocol's face of the vendor-neutral `RegisterModel`.  `Personality.execute`
takes one request block as the vendor's link delivers it and returns the reply block: it decodes
the request, runs its handler, and maps every way a command can fail to the vendor's error reply
through the vendor's tables -- the model's `Refusal` by its reason, the FN's `FnError` by its code,
the printer's `PaperOut`, a parameter that does not parse, a refusal of the personality's own
(`VendorRefusal`) -- and an internal failure (logged) to the vendor's "internal error" code, so no
client can crash the device.  A subclass provides the decoding, the handlers and the tables.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Self

from kkt.protocols.errors import CodecError
from kkt.protocols.ffd import LifePhase, TlvError

from .clock import Clock
from .fn import FiscalStorage, FnError, Verification
from .printer import PaperOut, Printer
from .register import Reason, Refusal, RegisterModel
from .settings import RegisterSettings
from .state import open_model

log = logging.getLogger(__name__)


class VendorRefusal(Exception):
    """A refusal only one personality makes, with that vendor's error ``code``."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


class Personality:
    """The skeleton of a personality (see the module docstring).  Not thread-safe: the shells
    serialise commands."""

    REFUSALS: ClassVar[dict[Reason, int]]  # the model's refusals as the vendor's codes
    BAD_PARAMETER: ClassVar[int]  # tags or fields of a decoded request that do not parse
    PARAMETER_ERRORS: ClassVar[tuple[type[Exception], ...]] = (CodecError, TlvError)
    INTERNAL: ClassVar[int]  # a failure of the emulator itself

    def __init__(self, model: RegisterModel) -> None:
        self.model = model
        # The model's parts, as the control channel, the tools and tests reach them.
        self.fn: FiscalStorage = model.fn
        self.settings: RegisterSettings = model.settings
        self.clock: Clock = model.clock
        self.printer: Printer = model.printer
        self.fiscal_only = model.fiscal_only
        self.last_error = ""

    @classmethod
    def open(
        cls,
        state: Path,
        *,
        fiscal_only: bool = False,
        ffd: str = "1.2",
        clock: Clock | None = None,
        inn: str | None = None,
    ) -> Self:
        """Open (or create) the emulated register kept in ``state`` (see `kkt.emulator.state`);
        ``inn`` is its user's INN when it is created (None: a test INN)."""
        return cls(open_model(state, fiscal_only=fiscal_only, ffd=ffd, clock=clock, inn=inn))

    # -- the one entry point ----------------------------------------------------------------------

    def execute(self, payload: bytes) -> bytes:
        payload = bytes(payload)
        code = self.code_of(payload)
        try:
            request = self.decode(payload)
        except VendorRefusal as refusal:
            return self.refuse(code, refusal.code, str(refusal))
        try:
            reply = self.handle(request)
        except VendorRefusal as refusal:
            return self.refuse(code, refusal.code, str(refusal))
        except Refusal as refusal:
            return self.refuse(code, self.REFUSALS[refusal.reason], str(refusal))
        except FnError as error:
            return self.refuse(code, self.fn_code(error), str(error))
        except PaperOut as exc:
            return self.refuse(code, self.paper_code(), str(exc))
        except self.PARAMETER_ERRORS as exc:
            return self.refuse(code, self.BAD_PARAMETER, str(exc))
        except Exception:
            log.exception("internal error executing %s", payload.hex(" "))
            return self.refuse(code, self.INTERNAL, "internal error (see the emulator's log)")
        self.last_error = ""
        return reply

    def refuse(self, code: int, error: int, reason: str) -> bytes:
        """The vendor's error reply to command ``code``; remembers ``reason`` for the status."""
        self.last_error = reason
        log.debug("refused %Xh with %02Xh: %s", code, error, reason)
        return self.error_reply(code, error)

    # -- what a vendor provides -------------------------------------------------------------------

    def code_of(self, payload: bytes) -> int:
        """The command code, for the error reply (raises nothing)."""
        raise NotImplementedError

    def decode(self, payload: bytes) -> Any:
        """The request; raises `VendorRefusal` for an unknown or malformed one."""
        raise NotImplementedError

    def handle(self, request: Any) -> bytes:
        """Run ``request``'s handler and encode its answer."""
        raise NotImplementedError

    def error_reply(self, code: int, error: int) -> bytes:
        raise NotImplementedError

    def quick(self, payload: bytes) -> bool:
        """A command that writes nothing to disk (the shells may run it on their event loop
        instead of the worker thread)."""
        raise NotImplementedError

    def fn_code(self, error: FnError) -> int:
        """The vendor's code for an FN refusal."""
        raise NotImplementedError

    def paper_code(self) -> int:
        """The vendor's code for a printer that cannot print."""
        raise NotImplementedError

    # -- for the control channel and the tools ----------------------------------------------------

    def mode_text(self) -> dict[str, int]:
        """The vendor's mode and submode, for `status_text`."""
        raise NotImplementedError

    def close(self) -> None:
        self.model.close()

    def verify(self) -> Verification:
        """Recompute the FN archive: numbering, signs, counters."""
        return self.model.verify()

    def qr(self, number: int) -> str:
        """The QR string of receipt ``number`` (also what a fiscal-only register hands out)."""
        return self.model.qr(number)

    def power_loss(self) -> None:
        """Power fails: what was being built is gone (the FN had formed nothing of it yet);
        a personality forgets its own half-done state too."""
        self.model.power_loss()

    def status_text(self) -> dict[str, object]:
        return {**self.mode_text(), **self.model.status_text(), "last_error": self.last_error}

    @property
    def phase(self) -> LifePhase:
        return self.model.phase

    def tape(self) -> list[str]:
        return self.model.tape()

    @property
    def line_width(self) -> int:
        """Characters a line on the emulated printer's tape."""
        return self.model.printer.width
