"""ATOL's "external" code page: CP866 with four characters moved.

ATOL prints and reports text in CP866 except that ``№`` takes 0x24 (CP866's ``$``), ``$`` takes
0xFC (CP866's ``№``), ``€`` takes 0xF2 (CP866's ``Є``) and ``■`` takes 0xFF (CP866's no-break
space) -- kurbatov/atol4j ``charset/ExternalCharsetEncoder.java`` (fact sheet §2.1; the UWP C# and
Delphi code do the same).  ``Є`` and the no-break space therefore have no byte.

Every byte decodes to a character, so `decode_text` never fails.  One byte is ambiguous: CP866
already draws ``■`` at 0xFE, so after the move both 0xFE and 0xFF read as ``■``; `encode_text`
writes 0xFF, atol4j's byte.  For every other byte ``encode_text(decode_text(b)) == b``.
"""

from __future__ import annotations

from typing import Final

from .. import fields
from ..errors import CodecError

# The four bytes whose characters differ from CP866 (atol4j ExternalCharsetEncoder).
SWAPS: Final[dict[int, str]] = {0x24: "№", 0xFC: "$", 0xF2: "€", 0xFF: "■"}

_DECODE: Final[str] = "".join(
    SWAPS.get(byte, bytes((byte,)).decode("cp866")) for byte in range(256)
)
# Built in byte order, so the later 0xFF wins for "■" over CP866's own 0xFE.
_ENCODE: Final[dict[str, int]] = {char: byte for byte, char in enumerate(_DECODE)}


def encode_text(text: str) -> bytes:
    """``text`` in ATOL's external code page; `CodecError` names a character it has no byte for."""
    try:
        return bytes(_ENCODE[char] for char in text)
    except KeyError:
        for position, char in enumerate(text):
            if char not in _ENCODE:
                raise CodecError(
                    f"character {char!r} (U+{ord(char):04X}) at position {position} has no byte "
                    "in ATOL's code page (CP866 with №, $, €, ■ moved); replace it"
                ) from None
        raise  # pragma: no cover - the loop always finds the character


def decode_text(data: bytes) -> str:
    """Bytes in ATOL's external code page as text (every byte has a character)."""
    return "".join(_DECODE[byte] for byte in bytes(data))


def can_encode(char: str) -> bool:
    """Whether ``char`` has a byte in the code page."""
    return char in _ENCODE


class _External(fields.Codepage):
    """The code page as the shared text fields use it."""

    def encode(self, text: str) -> bytes:
        return encode_text(text)

    def decode(self, data: bytes) -> str:
        return decode_text(data)


EXTERNAL: Final = _External("ATOL external (CP866 with №, $, €, ■ moved)")


class FixedText(fields.FixedText):
    """Text in ``size`` bytes, zero-padded; trailing zeros are dropped when read."""

    def __init__(self, size: int) -> None:
        super().__init__(size, EXTERNAL, nul="pad")


class TailText(fields.TailText):
    """Text running to the end of the block; trailing zeros are dropped when read (MultiMag sends
    ``9A flags 00`` for an empty shift text)."""

    def __init__(self) -> None:
        super().__init__(None, EXTERNAL, nul="pad")
