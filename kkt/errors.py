"""The driver's error taxonomy, one for every vendor.

* `TransportError` -- the link itself: nothing answers, the port is busy or gone.
* `ProtocolError` -- bytes that make no sense (from `kkt.protocols`, re-exported).
* `DeviceError` -- the register refused; ``code`` keeps the vendor's code, and subclasses name the
  cases callers handle: `PaperOut`, `ShiftExpired`, `WrongMode`, `WrongPassword`, `FnExhausted`,
  `OfdBlocked`.
* `OutcomeUnknown` -- the register may or may not have done it; never repeat blindly.

Every message says what to do next.
"""

from __future__ import annotations

from kkt.protocols.errors import DeviceError as _ProtocolDeviceError
from kkt.protocols.errors import LinkError, ProtocolError


class KktError(Exception):
    """Base of the driver's own errors."""


class TransportError(KktError):
    """No usable link to the register (port missing or busy, nothing answering)."""


class PortBusy(TransportError):
    """Another process holds the port."""


class OutcomeUnknown(KktError):
    """A command may have been executed; the driver could not find out.

    ``maybe_executed`` is always True here.  Check the register (its last fiscal document) before
    repeating anything that moves money.
    """

    maybe_executed = True


class NotFiscalized(KktError):
    """The receipt was certainly not fiscalized -- its closing command failed and the fiscal
    storage formed no document, or the driver cancelled it before closing because the register's
    subtotal disagreed -- so nothing was charged, and the receipt may be sold again."""


class BadAnswer(KktError):
    """The register's answer could not be understood (a device or line problem); nothing changed
    that a status query could not repeat."""


class CannotSend(KktError, ValueError):
    """A value does not fit the command's fields (a negative number, text the register cannot
    print, a sum too large): nothing was sent."""


class ReceiptRejected(KktError, ValueError):
    """The receipt is invalid as given; nothing was sent."""


class DeviceError(KktError):
    """The register refused.  ``code`` is the vendor's error code, ``vendor`` says whose."""

    def __init__(
        self, message: str, *, code: int, vendor: str = "shtrih", retry_may_help: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.vendor = vendor
        self.retry_may_help = retry_may_help


class PaperOut(DeviceError):
    """No paper or the cover is open: load paper, close the cover, then continue printing."""


class ShiftExpired(DeviceError):
    """The shift is over 24 hours old: close it (Z report) and open a new one."""


class WrongMode(DeviceError):
    """The register is not in a state for this command (shift closed or open, receipt open ...)."""


class WrongPassword(DeviceError):
    """The operator or administrator password is wrong."""


class FnExhausted(DeviceError):
    """The fiscal storage is full, expired or out of registrations: replace it."""


class OfdBlocked(DeviceError):
    """Documents have waited for the OFD too long (30 days): restore the OFD link first."""


# Shtrih codes (FN codes 01h-3Fh pass through) -> the class callers catch.
_SHTRIH_CLASSES: dict[int, type[DeviceError]] = {
    0x6B: PaperOut,
    0x6C: PaperOut,
    0x58: PaperOut,
    0x4E: ShiftExpired,
    0x16: ShiftExpired,
    0x4F: WrongPassword,
    0x02: WrongMode,
    0x3C: WrongMode,
    0x3D: WrongMode,
    0x4A: WrongMode,
    0x55: WrongMode,
    0x72: WrongMode,
    0x73: WrongMode,
    0x06: FnExhausted,
    0x12: FnExhausted,
    0x05: FnExhausted,
    0x14: FnExhausted,  # or the OFD backlog: `Register` tells them apart by the FN's flags
    0x15: OfdBlocked,
}


def from_shtrih(error: _ProtocolDeviceError) -> DeviceError:
    """The driver's error for a Shtrih refusal (the protocol core's `ShtrihDeviceError`)."""
    cls = _SHTRIH_CLASSES.get(error.code, DeviceError)
    return cls(str(error), code=error.code, vendor="shtrih", retry_may_help=error.retry_may_help)


# ATOL codes (fact sheet §2.5) -> the class callers catch.
_ATOL_CLASSES: dict[int, type[DeviceError]] = {
    0x67: PaperOut,
    0x68: PaperOut,
    0x69: PaperOut,
    0x88: ShiftExpired,
    0xF0: ShiftExpired,
    0x8C: WrongPassword,
    0x1E: WrongMode,
    0x66: WrongMode,
    0x6A: WrongMode,
    0x82: WrongMode,
    0x87: WrongMode,
    0x89: WrongMode,
    0x9A: WrongMode,
    0x9B: WrongMode,
    0x9C: WrongMode,
    0xD4: WrongMode,  # the FN's state refuses it: a shift closed (or open) where it must not be
    0xD7: FnExhausted,
    0xD8: FnExhausted,
    0xEB: FnExhausted,
}


def from_atol(error: _ProtocolDeviceError) -> DeviceError:
    """The driver's error for an ATOL refusal (the protocol core's `AtolDeviceError`)."""
    cls = _ATOL_CLASSES.get(error.code, DeviceError)
    return cls(str(error), code=error.code, vendor="atol", retry_may_help=error.retry_may_help)


__all__ = [
    "BadAnswer",
    "CannotSend",
    "DeviceError",
    "FnExhausted",
    "KktError",
    "LinkError",
    "OfdBlocked",
    "OutcomeUnknown",
    "PaperOut",
    "PortBusy",
    "ProtocolError",
    "ReceiptRejected",
    "ShiftExpired",
    "TransportError",
    "WrongMode",
    "WrongPassword",
    "from_atol",
    "from_shtrih",
]
