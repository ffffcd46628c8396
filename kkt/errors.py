"""The driver's error taxonomy, one for every vendor.

* `TransportError` -- the link itself: nothing answers, the port is busy or gone.
* `ProtocolError` -- bytes that make no sense (from `kkt.protocols`, re-exported).
* `DeviceError` -- the register refused; ``code`` keeps the vendor's code, and subclasses name the
  cases callers handle: `PaperOut`, `ShiftExpired`, `WrongMode`, `WrongPassword`, `FnExhausted`,
  `OfdBlocked` (each vendor's table of codes is beside its device, `kkt.vendors`).
* `OutcomeUnknown` -- the register may or may not have done it; never repeat blindly.
* `CashNotMoved` -- a cash in or out answered success, but the drawer did not move: not done.
* `KeyConflict` -- an idempotency key already belongs to another receipt or another register:
  nothing was sent.

Every message says what to do next.
"""

from __future__ import annotations

from typing import Any

from kkt.protocols.errors import ProtocolError as ProtocolError  # one of the driver's errors too


class KktError(Exception):
    """Base of the driver's own errors.

    ``left_open`` is True when a sale failed before its receipt became fiscal and the driver's
    cancel of that receipt did not get through (the line failed, or the register refused it):
    nothing was charged, but a receipt is left open on the register -- the next sale cancels it
    first, and `Register.status` (``receipt_open``) shows it.  The message says so too.
    """

    left_open: bool = False


class TransportError(KktError):
    """No usable link to the register (port missing or busy, nothing answering)."""


class PortBusy(TransportError):
    """Another process holds the port."""


class WrongProtocol(TransportError):
    """The device speaks the other vendor's protocol: nothing was executed.  Connect with the
    protocol the message names, or ``protocol="auto"``."""


class OutcomeUnknown(KktError):
    """A command may have been executed; the driver could not find out.

    ``maybe_executed`` is always True here.  Check the register (its last fiscal document) before
    repeating anything that moves money.
    """

    maybe_executed = True


class KeyConflict(KktError):
    """An idempotency key is already bound to another receipt (operation, items, payments) or to
    another register (FN serial): nothing was sent, and the key's own receipt was not returned.

    ``key`` is the key, ``fn`` the FN serial it is bound to ('' where an old journal did not
    record it).  ``pending`` is True when that receipt's fate is still open (a crash mid-sale):
    it may be fiscal in FN ``fn`` -- settle it there, by repeating the same call with the same key
    on the register holding that FN, before selling it anywhere else.
    """

    def __init__(self, message: str, *, key: str, fn: str = "", pending: bool = False) -> None:
        super().__init__(message)
        self.key = key
        self.fn = fn
        self.pending = pending


class ClockRefused(KktError, ValueError):
    """The register's clock may not be set there: the FN would refuse every document after it
    (dated before its last one, or outside the open shift's 24 hours).  Nothing was sent."""


class NotFiscalized(KktError):
    """The receipt was certainly not fiscalized -- its closing command failed and the fiscal
    storage formed no document, or the driver cancelled it before closing because the register's
    subtotal disagreed -- so nothing was charged, and the receipt may be sold again."""


class CashNotMoved(KktError):
    """The register answered a cash in or cash out with success, yet the cash in its drawer did
    not move: the answer was not this command's (on ATOL, another program's task under the same
    task ID), and nothing was put in or taken out -- the operation may be repeated."""


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
    """No paper or the cover is open: load paper, close the cover, then continue printing.

    ``cause`` is what is wrong and how to fix it, without the way on (`kkt continue` for a
    document the paper end interrupted; a receipt that was not fiscalized is sold again)."""

    def __init__(self, message: str, *, cause: str = "", **details: Any) -> None:
        super().__init__(message, **details)
        self.cause = cause or message


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


# -- the OFD (kkt.ofd) ---------------------------------------------------------------------------


class OfdError(KktError):
    """The exchange between the FN and the OFD (оператор фискальных данных) stopped.  Nothing was
    lost: a document stays in the FN's queue until its receipt is written."""


class OfdUnreachable(OfdError, TransportError):
    """The OFD at ``address`` (host:port) did not answer, or answered something else than an OFD
    session: check the address and the network, then run the exchange again."""

    def __init__(self, message: str, *, address: str) -> None:
        super().__init__(message)
        self.address = address


class OfdRefused(OfdError):
    """The OFD answered document ``document`` with a non-zero 1022 code (FFD Table 34: 11 content
    not recognised, 14 format-logic control failed)."""

    def __init__(self, message: str, *, code: int, document: int | None) -> None:
        super().__init__(message)
        self.code = code
        self.document = document


class OfdReceiptRefused(OfdError, DeviceError):
    """The register (its FN) refused the OFD's answer (FN 26h: bad sign, format, FD or FN number,
    CRC, OFD INN); ``code`` is the register's error code."""


class NotSupported(KktError):
    """The register's protocol has no public way to do this; the message says what to do
    instead."""


class BadOfdAddress(KktError, ValueError):
    """The OFD address is not HOST:PORT: nothing was sent."""


# -- marked goods (kkt.marking) ------------------------------------------------------------------


class BadMarkCode(KktError, ValueError):
    """A marking code is malformed as given (not as the scanner sent it, a broken GS1 field):
    nothing was sent.  Scan it again, keeping the GS (0x1d) bytes."""


class MarkRejected(KktError):
    """A marked item's code may not be sold: the FN's check or ОИСМ's answer was negative (tag
    2106), ОИСМ could not be asked, or the FN refuses to bind it.  Raised before anything fiscal
    was sent -- the receipt was not opened, or was cancelled -- so nothing was charged.

    ``item`` is the item's index in ``Receipt.items`` (0-based, as Python counts; the message
    names it 1-based, "item 1" for ``item == 0``), ``code`` the code's short form (GTIN and
    serial), ``item_check`` the 2106 byte (None when the FN formed none), ``reason`` why in
    words and what to do.
    """

    def __init__(
        self, message: str, *, item: int, code: str, item_check: int | None, reason: str
    ) -> None:
        super().__init__(message)
        self.item = item
        self.code = code
        self.item_check = item_check
        self.reason = reason


class MarkAlreadySold(MarkRejected):
    """The FN refuses to bind the code (Shtrih A5h: it holds no accepted check of it) after the
    code was checked and accepted again: it sold that code before (a code is sold once; a sale
    return gives it back).  The receipt was cancelled, nothing was charged.  When this is a
    retried sale, its first attempt is the fiscal one: look it up, do not sell it again."""
