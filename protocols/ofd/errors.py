"""The OFD wire codec's errors: each names what was wrong and what to do about it."""

from __future__ import annotations

from ..errors import CodecError


class OfdWireError(CodecError):
    """Bytes on the OFD link (session header, container, document message, operator receipt) that
    cannot be built or parsed.  Subclasses name the cause."""


class BadMagic(OfdWireError):
    """The session does not start with the signature ``2A 08 41 0A``: not the OFD protocol."""


class BadVersion(OfdWireError):
    """An S-protocol, P-protocol or container format version this codec does not know."""


class BadLength(OfdWireError):
    """A length field disagrees with the bytes present (truncated, trailing, over the limit)."""


class BadCrc(OfdWireError):
    """A CRC16-CCITT (session or container) does not match its bytes: the data was damaged."""

    def __init__(self, message: str, *, expected: int, found: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.found = found


class BadContainer(OfdWireError):
    """A container header field is malformed (container type, FN number BCD, FD number)."""


class BadMessage(OfdWireError):
    """The container's body is not the document message or operator receipt it should be."""


class BadSignature(OfdWireError):
    """A document's MAC (standing for the ФПС) or an operator sign (ФПО) does not verify."""
