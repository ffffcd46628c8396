"""Packed BCD as ATOL puts it on the wire: two decimal digits a byte, most significant byte first.

Every ATOL number in the command layer (passwords, sums in kopecks, quantities x1000, counters,
dates) is packed BCD in big-endian order: ``1234`` in two bytes is ``12 34``.  atol4j
(``Command.encode`` / ``Result.decode``), MultiMag (``intToBCD``) and Zzzzipper (``LEUbcd*``,
big-endian despite the name) agree (fact sheet §2.1).
"""

from __future__ import annotations

from ..errors import CodecError


def bcd_max(size: int) -> int:
    """The largest value ``size`` BCD bytes hold (``10 ** (2 * size) - 1``)."""
    return int(10 ** (2 * size)) - 1


def encode_bcd(value: int, size: int) -> bytes:
    """``value`` as ``size`` bytes of packed BCD, most significant byte first.

    Raises `CodecError` when ``value`` is negative or needs more than ``2 * size`` digits.
    """
    if size < 1:
        raise CodecError(f"a BCD field is at least one byte, got size {size}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise CodecError(f"a BCD field holds an int, got {value!r}")
    if value < 0:
        raise CodecError(f"BCD cannot hold the negative number {value}; send its magnitude")
    if value > bcd_max(size):
        raise CodecError(
            f"{value} does not fit {size} BCD byte{'s' if size > 1 else ''} "
            f"(at most {bcd_max(size)}); split the amount or check its unit"
        )
    digits = f"{value:0{2 * size}d}"
    return bytes.fromhex(digits)


def decode_bcd(data: bytes) -> int:
    """Packed BCD bytes (most significant first) as an int; `CodecError` on a nibble above 9."""
    text = bytes(data).hex()
    if not text.isdigit():
        raise CodecError(
            f"{bytes(data).hex(' ')} is not packed BCD (a nibble is above 9); "
            "the field is binary or the reply is misaligned"
        )
    return int(text)


__all__ = ["bcd_max", "decode_bcd", "encode_bcd"]
