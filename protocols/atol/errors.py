"""ATOL error codes: the second byte of a ``55 err ext`` reply (the first of an A5h reply).

Source: fact sheet §2.5 (kurbatov/atol4j ``error-messages.properties``, MultiMag
``atolhlerror.php``, Zzzzipper ``AtolProtocol.h`` ``CommandError``), with a few more codes from
atol4j's table where a driver is likely to meet them.  The texts are ours: what happened, then
what to do.  ``ext`` (the extended error byte) refines a few codes, F6h above all, whose
numbering differs between atol4j and MultiMag; it is kept raw.
"""

from __future__ import annotations

from typing import Final

from ..errors import DeviceError

_CHECK_MODE = "enter the right mode first (56h; 48h leaves the current one)"
_SHIFT_Z = "close the shift with a Z report (mode 3, 5Ah), then continue"
_FN = "read the FN state (A4h) and call service if it persists"

ERRORS: Final[dict[int, str]] = {
    0x08: "bad price or sum: check the amount (kopecks, BCD) and its field size",
    0x0A: "bad quantity: send thousandths (1 piece = 1000) within the field",
    0x0B: "cash counter overflow: withdraw cash (4Fh) or close the shift",
    0x0C: "the last operation cannot be voided",
    0x0E: "the last operation cannot be repeated",
    0x13: "bad format: check the command's parameters against its layout",
    0x14: "bad length: the command has missing or extra bytes",
    0x15: "locked in date entry mode: confirm or set the date first",
    0x16: "the date must be confirmed before work can go on",
    0x1A: "the Z report was interrupted: repeat the Z report (5Ah)",
    0x1E: "entering the mode is blocked: leave the current mode (48h) or finish its document",
    0x20: "the register's date and time are earlier than the FN's: set the clock (EDh)",
    0x66: "command not allowed in this mode: " + _CHECK_MODE,
    0x67: "no paper: load paper, then repeat or continue the document",
    0x68: "no link with the receipt printer: check the printer and its cable",
    0x69: "printer mechanical error: open and close the cover, clear a jam",
    0x6A: "wrong receipt type for this operation: open a receipt of the right type (92h)",
    0x6C: "bad register number: check 91h's register",
    0x71: "non-cash payments exceed the receipt sum: lower the card payment",
    0x72: "payments are less than the receipt sum: add a payment before closing",
    0x7B: "bad discount or surcharge value: check its size and sign",
    0x7D: "bad section (department) number",
    0x7E: "bad payment type: use 1..5 (cash, electronic, prepaid, credit, other)",
    0x82: "an annulment receipt is open: close or cancel it (59h) first",
    0x86: "the sum tendered is less than the receipt sum: tender at least the total",
    0x87: "a return receipt is open: close or cancel it (59h) first",
    0x88: "the shift is longer than 24 hours: " + _SHIFT_Z,
    0x89: "a sale receipt is open: close or cancel it (59h) first",
    0x8A: "fiscal memory overflow: call service",
    0x8C: "wrong password: check the access password (2 bytes) or the mode password (56h)",
    0x8F: "the shift is already closed (repeated Z report): open a new shift",
    0x94: "bad date: send a valid DD MM YY",
    0x95: "bad time: send a valid hh mm ss",
    0x97: "change cannot be calculated: tender cash for the change",
    0x98: "not enough cash in the drawer for this payout",
    0x9A: "the receipt is closed, the operation is impossible: open a receipt (92h)",
    0x9B: "a receipt is open, the operation is impossible: close (4Ah) or cancel (59h) it",
    0x9C: "the shift is open, the operation is impossible: close it (Z report) first",
    0xA2: "bad shift number",
    0xA3: "bad report type: see 67h's list",
    0xA8: "the register is not fiscalized: register it with the FN first",
    0xAA: "no reports to print",
    0xD1: "print head overheat: wait for it to cool down, then repeat",
    0xD2: "FN exchange error (I2C): " + _FN,
    0xD3: "FN transfer format error: " + _FN,
    0xD4: "wrong FN state for this command: " + _FN,
    0xD5: "unrecoverable FN error: call service, the FN may need replacing",
    0xD6: "FN crypto-coprocessor error: call service",
    0xD7: "the FN's lifetime is over: replace the FN",
    0xD8: "the FN archive is full: replace the FN",
    0xD9: "wrong date or time sent to the FN: set the clock (EDh), not before the last document",
    0xDA: "the FN has no requested data: check the document number",
    0xE6: "not enough power for the operation: check the power supply",
    0xE7: "bad FN command parameters: check the values (INN, RNM, tags) sent",
    0xE8: "TLV data too large: send fewer or shorter tags",
    0xE9: "no transport connection (OFD): check the network link to the OFD",
    0xEA: "the FN crypto-coprocessor resource is exhausted: replace the FN",
    0xEB: "the FN storage for the OFD is exhausted: send the queued documents, then replace the FN",
    0xED: "the FN holds documents not sent to the OFD: restore the OFD link and send them",
    0xEE: "extended error: read register 55 (91h) for the details",
    0xF0: "the FN's shift is longer than 24 hours: " + _SHIFT_Z,
    0xF3: "too many positions in the receipt: close it and start another",
    0xF6: "error with an extended code (receipt too big, bad FFD version, internal error, "
    "read-only parameter): see the extended byte",
}

# Codes after which the same command can succeed without anyone doing anything.
RETRY_MAY_HELP: Final[frozenset[int]] = frozenset({0xD1, 0xE9})


def error_text(code: int) -> str:
    """The text of ``code``, or a generic one for a code the table lacks."""
    return ERRORS.get(code, f"unknown error {code:#04x}: see the ATOL protocol's error table")


class AtolDeviceError(DeviceError):
    """The register refused a command: ``code`` the error byte, ``ext`` the extended one.

    A refused command was not executed, so repeating it cannot fiscalize twice.
    """

    def __init__(self, code: int, ext: int, command: int) -> None:
        ext_text = f", extended {ext:#04x}" if ext else ""
        super().__init__(
            f"ATOL error {code:#04x}{ext_text} on command {command:02X}h: {error_text(code)}",
            code=code,
            command=command,
            retry_may_help=code in RETRY_MAY_HELP,
        )
        self.ext = ext


def device_error(command: int, code: int, ext: int = 0) -> AtolDeviceError:
    """The typed error for ``code`` (and ``ext``) refused by ``command``."""
    return AtolDeviceError(code, ext, command)
