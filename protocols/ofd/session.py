"""The session ("S-level") header that frames every message between a register and its OFD.

Thirty bytes (fact sheets ``fn-ffd-ofd.md`` §5.2 and ``ofd-cloud-marking.md`` §1.5), integers
little-endian::

    0  4  signature 2A 08 41 0A          8 16  FN number, ASCII (space-padded)
    4  2  S-protocol version 81 A2       24 2  container length
    6  2  P-protocol version (FFD)       26 2  flags
                                         28 2  CRC16-CCITT (by flags bits 0-1; 0 when none)

Flags: bits 0-1 CRC scope (0 none, 1 header, 2 header + container, 3 forbidden), bit 2 the body
is a container, bits 4-5 the sender expects an answer (01).  Registers and yandex/ofd's mock send
0x0014.  The CRC covers the header's first 28 bytes (the header "excluding this field") and, in
mode 2, the container after it.

`SessionReader` deframes a byte stream into sessions, in the project's `FrameReader` pattern.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..line import BadFrame, FrameReader, Junk
from .crc import crc16_ccitt_false
from .errors import BadCrc, BadLength, BadMagic, BadVersion, OfdWireError

SIGNATURE = b"\x2a\x08\x41\x0a"
S_VERSION = b"\x81\xa2"  # S-protocol 1.1
S_VERSION_TEST = b"\x82\xfb"  # test packets (the sheet's checker tool)
S_VERSIONS = frozenset({S_VERSION, S_VERSION_TEST})

# P-protocol versions are the FFD version, bytes as written.  Real traffic also carries 00 01 (the
# FFD 1.05 document in yandex/ofd's dump), 00 02, and Shtrikh firmware's 01 01 / 01 02, which its
# JavaPOS driver rewrites: all are accepted, as the sheet's §1.7 asks of an OFD.
P_VERSION_10 = b"\x01\x00"
P_VERSION_105 = b"\x01\x05"
P_VERSION_11 = b"\x01\x10"
P_VERSION_12 = b"\x01\x20"
P_VERSIONS = frozenset(
    {P_VERSION_10, P_VERSION_105, P_VERSION_11, P_VERSION_12}
    | {b"\x00\x01", b"\x00\x02", b"\x01\x01", b"\x01\x02"}
)

FLAG_CRC_HEADER = 0x0001
FLAG_CRC_ALL = 0x0002
FLAG_CRC_MASK = 0x0003
FLAG_CONTAINER = 0x0004
FLAG_ANSWER_EXPECTED = 0x0010
FLAGS_DEFAULT = FLAG_CONTAINER | FLAG_ANSWER_EXPECTED  # 0x0014

HEADER_SIZE = 30
MAX_CONTAINER = 32 * 1024  # the sheet's 32 KB container limit (yandex/ofd MAX_LEN)
FN_SERIAL_SIZE = 16
_HEADER = struct.Struct("<4s2s2s16sHHH")


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionHeader:
    """The 30-byte session header; ``fn_serial`` without its space padding."""

    s_version: bytes = S_VERSION
    p_version: bytes
    fn_serial: str
    length: int
    flags: int
    crc: int

    @property
    def crc_mode(self) -> int:
        """Bits 0-1 of the flags: 0 no CRC, 1 over the header, 2 over header and container."""
        return self.flags & FLAG_CRC_MASK

    def pack(self) -> bytes:
        """The header's 30 bytes, as they are (the CRC is not recomputed)."""
        return _pack(self, self.crc)


@dataclass(frozen=True, slots=True)
class Session:
    """One message on the OFD link: its header and the container it carries."""

    header: SessionHeader
    container: bytes

    def pack(self) -> bytes:
        return self.header.pack() + self.container


def _fn_field(fn_serial: str) -> bytes:
    try:
        raw = fn_serial.encode("ascii")
    except UnicodeEncodeError:
        raise OfdWireError(f"FN number {fn_serial!r} must be ASCII digits") from None
    if len(raw) > FN_SERIAL_SIZE or not raw.isdigit():
        raise OfdWireError(f"FN number {fn_serial!r} must be 1 to 16 digits (16 on a real FN)")
    return raw.ljust(FN_SERIAL_SIZE, b" ")


def _pack(header: SessionHeader, crc: int) -> bytes:
    if len(header.s_version) != 2 or len(header.p_version) != 2:
        raise BadVersion("S- and P-protocol versions are 2 bytes each, e.g. 81 A2 and 01 20")
    if not 0 <= header.length <= 0xFFFF or not 0 <= header.flags <= 0xFFFF:
        raise BadLength(f"length {header.length} and flags {header.flags:#x} must fit 16 bits")
    return _HEADER.pack(
        SIGNATURE,
        header.s_version,
        header.p_version,
        _fn_field(header.fn_serial),
        header.length,
        header.flags,
        crc,
    )


def session_crc(header28: bytes, container: bytes, flags: int) -> int:
    """The session CRC the flags ask for over the header's first 28 bytes [+ the container]."""
    mode = flags & FLAG_CRC_MASK
    if mode == 0:
        return 0
    if mode == FLAG_CRC_HEADER:
        return crc16_ccitt_false(header28)
    if mode == FLAG_CRC_ALL:
        return crc16_ccitt_false(header28 + container)
    raise OfdWireError(
        f"flags {flags:#06x}: CRC mode 3 is forbidden by the protocol; use 0, 1 or 2"
    )


def encode_session(
    fn_serial: str,
    container: bytes,
    *,
    p_version: bytes = P_VERSION_12,
    flags: int = FLAGS_DEFAULT,
    s_version: bytes = S_VERSION,
) -> bytes:
    """The 30-byte session header (its CRC as ``flags`` ask) followed by ``container``."""
    if len(container) > MAX_CONTAINER:
        raise BadLength(
            f"container of {len(container)} bytes exceeds the {MAX_CONTAINER}-byte limit"
        )
    header = SessionHeader(
        s_version=s_version,
        p_version=p_version,
        fn_serial=fn_serial,
        length=len(container),
        flags=flags,
        crc=0,
    )
    crc = session_crc(_pack(header, 0)[:28], container, flags)
    return _pack(header, crc) + container


def decode_header(data: bytes) -> SessionHeader:
    """Parse and check a 30-byte session header (the CRC is checked by `decode_session`)."""
    if len(data) != HEADER_SIZE:
        raise BadLength(f"a session header is {HEADER_SIZE} bytes, got {len(data)}")
    signature, s_version, p_version, fn_raw, length, flags, crc = _HEADER.unpack(data)
    if signature != SIGNATURE:
        raise BadMagic(
            f"session starts with {signature.hex(' ')}, not 2a 08 41 0a: "
            "the peer does not speak the OFD protocol (check the host and port)"
        )
    if s_version not in S_VERSIONS:
        raise BadVersion(f"S-protocol version {s_version.hex(' ')} unknown; expected 81 a2")
    if p_version not in P_VERSIONS:
        raise BadVersion(
            f"P-protocol version {p_version.hex(' ')} unknown; expected the FFD version "
            "(01 05 for 1.05, 01 20 for 1.2)"
        )
    serial = fn_raw.rstrip(b" ")
    if not serial.isdigit():
        raise OfdWireError(f"FN number field {fn_raw!r} is not ASCII digits padded with spaces")
    if length > MAX_CONTAINER:
        raise BadLength(f"session announces {length} bytes, over the {MAX_CONTAINER}-byte limit")
    if flags & FLAG_CRC_MASK == FLAG_CRC_MASK:
        raise OfdWireError(f"flags {flags:#06x}: CRC mode 3 is forbidden by the protocol")
    return SessionHeader(
        s_version=s_version,
        p_version=p_version,
        fn_serial=serial.decode("ascii"),
        length=length,
        flags=flags,
        crc=crc,
    )


def check_session_crc(header: SessionHeader, raw_header: bytes, container: bytes) -> None:
    """Raise `BadCrc` when the flags ask for a session CRC and it does not match."""
    if header.crc_mode == 0:
        return
    expected = session_crc(raw_header[:28], container, header.flags)
    if expected != header.crc:
        scope = "header" if header.crc_mode == FLAG_CRC_HEADER else "header and container"
        raise BadCrc(
            f"session CRC over the {scope} is {header.crc:#06x}, computed {expected:#06x}: "
            "the message was damaged on the way; send it again",
            expected=expected,
            found=header.crc,
        )


def decode_session(data: bytes) -> Session:
    """Parse one whole session (header + exactly ``length`` container bytes), CRC checked."""
    if len(data) < HEADER_SIZE:
        raise BadLength(f"a session is at least {HEADER_SIZE} bytes, got {len(data)}")
    header = decode_header(data[:HEADER_SIZE])
    container = data[HEADER_SIZE:]
    if len(container) != header.length:
        raise BadLength(
            f"session header announces {header.length} container bytes, {len(container)} follow it"
        )
    check_session_crc(header, data[:HEADER_SIZE], container)
    return Session(header, container)


class SessionReader(FrameReader[Session]):
    """Deframe a byte stream (a TCP connection) into `Session` s.

    Feed chunks of any size; each call returns the sessions completed so far and keeps a partial
    one.  With ``strict`` (a server reading one client) the first bytes that are not a good
    session raise their typed `OfdWireError`: the caller closes the connection, naming the cause.
    Otherwise (a capture, a noisy line) bytes before a signature are skipped as `Junk` and a bad
    session is dropped as a `BadFrame`, both kept in `dropped` for traces; reading resumes at the
    next signature.  A header is checked as soon as its 30 bytes are in (its CRC too, in mode 1);
    a damaged length in a header without a CRC cannot be told from a long session: it waits.
    """

    __slots__ = ("dropped", "strict")

    def __init__(self, *, strict: bool = False) -> None:
        super().__init__()
        self.strict = strict
        self.dropped: list[Junk | BadFrame] = []

    def feed(self, data: bytes) -> list[Session]:
        self._raw += data
        sessions: list[Session] = []
        while self._raw:
            if not self._skip_to_signature():
                break
            if len(self._raw) < HEADER_SIZE:
                break
            try:
                header = decode_header(bytes(self._raw[:HEADER_SIZE]))
                if header.crc_mode == FLAG_CRC_HEADER:  # checkable before the body arrives
                    check_session_crc(header, bytes(self._raw[:HEADER_SIZE]), b"")
            except OfdWireError as error:
                self._bad(HEADER_SIZE, error)
                continue
            end = HEADER_SIZE + header.length
            if len(self._raw) < end:
                break
            raw = bytes(self._raw[:end])
            try:
                check_session_crc(header, raw[:HEADER_SIZE], raw[HEADER_SIZE:])
            except OfdWireError as error:
                self._bad(end, error)
                continue
            del self._raw[:end]
            sessions.append(Session(header, raw[HEADER_SIZE:]))
        return sessions

    def _skip_to_signature(self) -> bool:
        """Drop bytes before the next signature (or a prefix of one); False if none is left."""
        at = self._raw.find(SIGNATURE)
        if at < 0:
            keep = next(
                (n for n in range(len(SIGNATURE) - 1, 0, -1) if self._raw.endswith(SIGNATURE[:n])),
                0,
            )
            at = len(self._raw) - keep
        if at:
            junk = bytes(self._raw[:at])
            if self.strict:
                raise BadMagic(
                    f"{len(junk)} bytes before a session signature ({junk[:8].hex(' ')}…): "
                    "the peer does not speak the OFD protocol (check the host and port)"
                )
            self.dropped.append(Junk(junk))
            del self._raw[:at]
        return bool(self._raw)

    def _bad(self, size: int, error: OfdWireError) -> None:
        """A bad session: raise (strict) or drop its signature and resynchronise after it."""
        if self.strict:
            raise error
        bad = bytes(self._raw[:size])
        self.dropped.append(BadFrame(bad, str(error)))
        # Only the signature is surely not a session start: a lying length must not swallow
        # the good sessions that follow it.
        del self._raw[: len(SIGNATURE)]
