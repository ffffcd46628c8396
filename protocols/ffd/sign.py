"""The fiscal sign of a document (ФПД) as tag 1077 carries it.

Fact sheet ``fn-ffd-ofd.md`` §3: tag 1077 is 6 bytes; the printed (and QR) value is the big-endian
uint32 of bytes 2..5; bytes 0..1 are service bytes.  Real samples begin ``21 04`` and ``31 04``
(S4 ``yandex/ofd`` tests); what those service bytes mean is not public, so this module writes
``00 00`` unless told otherwise and ignores them when reading.  The FN's own command answers carry
the same sign as a uint32 *little*-endian -- that is the FN protocol's business, not this one's.
"""

from __future__ import annotations

from .tlv import TlvError

FISCAL_SIGN_TAG = 1077
FISCAL_SIGN_SIZE = 6
_MAX_SIGN = 0xFFFFFFFF


def fiscal_sign_tlv(sign: int, service: bytes = b"\x00\x00") -> bytes:
    """The 6-byte value of tag 1077: ``service`` (2 bytes) then ``sign`` as a big-endian uint32."""
    if isinstance(sign, bool) or not isinstance(sign, int) or not 0 <= sign <= _MAX_SIGN:
        raise TlvError(
            f"tag 1077: fiscal sign {sign!r} is not an integer 0..{_MAX_SIGN}", tag=FISCAL_SIGN_TAG
        )
    if not isinstance(service, bytes) or len(service) != 2:
        raise TlvError(
            f"tag 1077: service part must be exactly 2 bytes, got {service!r}",
            tag=FISCAL_SIGN_TAG,
        )
    return service + sign.to_bytes(4, "big")


def fiscal_sign_from_tlv(value: bytes) -> int:
    """The fiscal sign (as printed) from a 6-byte tag-1077 value: big-endian bytes 2..5."""
    if not isinstance(value, bytes) or len(value) != FISCAL_SIGN_SIZE:
        size = len(value) if isinstance(value, bytes) else type(value).__name__
        raise TlvError(
            f"tag 1077: a fiscal sign value is exactly 6 bytes, got {size}", tag=FISCAL_SIGN_TAG
        )
    return int.from_bytes(value[2:6], "big")
