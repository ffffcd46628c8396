"""Registration identifiers: INN check digits and the RNM (tag 1037) check digits.

Fact sheet ``fn-ffd-ofd.md`` §4.8.  An RNM is 16 digits: the 10-digit ordinal number in the FNS
register followed by 6 check digits -- the decimal value, zero-padded to 6, of CRC16-CCITT
(poly 0x1021, init 0xFFFF, MSB first, no final xor) over the ASCII string
``ordinal (zero-padded left to 10) ‖ INN (zero-padded left to 12) ‖ KKT serial (zero-padded left
to 20)`` (``adslbarxatov/KassArray`` ``GetFullRNM``).  A real FN refuses a registration whose RNM
does not check (03h → 09h).

Inputs may carry the FFD's right-hand space padding (1018 and 1037 as they travel in TLVs); it is
stripped before checking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import crcmod

from ..errors import CodecError

_crc16_ccitt: Callable[[bytes], int] = crcmod.mkCrcFun(
    0x11021, initCrc=0xFFFF, rev=False, xorOut=0x0000
)

_W10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_W11 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_W12 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


def _check_digit(digits: Sequence[int], weights: Sequence[int]) -> int:
    return sum(d * w for d, w in zip(digits, weights, strict=True)) % 11 % 10


def inn_is_valid(inn: str) -> bool:
    """True for a 10-digit (organisation) or 12-digit (individual) INN whose check digits match.

    Trailing spaces (the TLV padding) are ignored.  All zeros is the FFD's "no INN" marker and is
    not a valid INN, although its check digits happen to match.
    """
    if not isinstance(inn, str):
        return False
    text = inn.rstrip(" ")
    if not (text.isascii() and text.isdigit()) or len(text) not in (10, 12):
        return False
    if set(text) == {"0"}:
        return False
    d = [int(c) for c in text]
    if len(d) == 10:
        return _check_digit(d[:9], _W10) == d[9]
    return _check_digit(d[:10], _W11) == d[10] and _check_digit(d[:11], _W12) == d[11]


def _field(what: str, value: str, width: int, *, digits: bool) -> str:
    if not isinstance(value, str):
        raise CodecError(f"{what} must be a str, got {type(value).__name__}")
    text = value.strip(" ")
    ok = text.isascii() and (text.isdigit() if digits else text.isprintable())
    if not text or not ok or len(text) > width:
        kind = "digits" if digits else "ASCII characters"
        raise CodecError(f"{what} {value!r} must be 1..{width} {kind}")
    return text.rjust(width, "0")


def rnm_check_digits(ordinal: str, inn: str, kkt_serial: str) -> str:
    """The 6 check digits of an RNM whose first 10 digits are ``ordinal``."""
    source = (
        _field("RNM ordinal number", ordinal, 10, digits=True)
        + _field("INN", inn, 12, digits=True)
        + _field("KKT serial number", kkt_serial, 20, digits=False)
    )
    return f"{_crc16_ccitt(source.encode('ascii')):06d}"


def make_rnm(ordinal: str, inn: str, kkt_serial: str) -> str:
    """The full 16-digit RNM: the ordinal number (zero-padded to 10) and its check digits."""
    return _field("RNM ordinal number", ordinal, 10, digits=True) + rnm_check_digits(
        ordinal, inn, kkt_serial
    )


def rnm_is_valid(rnm: str, inn: str, kkt_serial: str) -> bool:
    """True when ``rnm`` (16 digits, or fewer zero-padded on the left; TLV spaces ignored) checks
    for this INN and KKT serial number."""
    if not isinstance(rnm, str):
        return False
    text = rnm.strip(" ")
    if not (text.isascii() and text.isdigit()) or not 7 <= len(text) <= 16:
        return False
    text = text.rjust(16, "0")
    try:
        return rnm_check_digits(text[:10], inn, kkt_serial) == text[10:]
    except CodecError:
        return False
