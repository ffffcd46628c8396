"""The container ("A-level"): the FN's unit of data for the OFD, behind the session header.

Its 32-byte header (fact sheet ``fn-ffd-ofd.md`` §5.2, confirmed on yandex/ofd's real dump and
its ``FrameHeader``)::

    0  2  length, u16 LE = the whole container (header included)
    2  2  CRC-16/CCITT-FALSE, u16 LE, over the container without these two bytes
    4  1  container type: A5 (from the FN; the OFD's receipt too) or 5A
    5  1  document type (the FD's form code: 1, 2, 3, ..., 7 for the operator's receipt)
    6  1  container format version: 1
    7  2  service data 1
    9  8  FN number, BCD (a 15-digit number ends with an F nibble, as in yandex/ofd's test)
   17  3  FD number, big-endian
   20 12  service data 2
   32  …  body

The service data's meaning is not public; a container keeps them verbatim so that decoding and
encoding again gives the same bytes.  New containers get 10 09 in service data 1 (the value in
both real samples) and zeros in service data 2.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .crc import crc16_ccitt_false
from .errors import BadContainer, BadCrc, BadLength, BadVersion

HEADER_SIZE = 32
MAX_SIZE = 32 * 1024
TYPE_FN = 0xA5
TYPE_SERVER = 0x5A
FORMAT_VERSION = 1
SERVICE1_DEFAULT = b"\x10\x09"
SERVICE2_DEFAULT = bytes(12)
MAX_FD = 0xFFFFFF  # the header's 3-byte FD number
_HEADER = struct.Struct("<HHBBB2s8s3s12s")


@dataclass(frozen=True, slots=True)
class Container:
    """A decoded container: header fields and body (``crc`` as read, and checked)."""

    length: int
    crc: int
    container_type: int
    doc_type: int
    version: int
    service1: bytes
    fn_serial: str
    fd_number: int
    service2: bytes
    body: bytes

    def pack(self) -> bytes:
        """The container's bytes as they are (length and CRC not recomputed)."""
        return _pack_header(self, self.length, self.crc) + self.body


def fn_to_bcd(fn_serial: str) -> bytes:
    """The FN number as 8 BCD bytes, padded with F nibbles when shorter than 16 digits."""
    if not (fn_serial.isascii() and fn_serial.isdigit() and 1 <= len(fn_serial) <= 16):
        raise BadContainer(f"FN number {fn_serial!r} must be 1 to 16 digits (16 on a real FN)")
    return bytes.fromhex(fn_serial.ljust(16, "f"))


def bcd_to_fn(raw: bytes) -> str:
    """The FN number of 8 BCD bytes; F nibbles may only pad its end."""
    text = raw.hex()
    digits = text.rstrip("f")
    if not digits or not digits.isdigit():
        raise BadContainer(f"FN number field {raw.hex(' ')} is not BCD digits (F-padded)")
    return digits


def _pack_header(c: Container, length: int, crc: int) -> bytes:
    if not 0 <= c.fd_number <= MAX_FD:
        raise BadContainer(f"FD number {c.fd_number} does not fit the container's 3 bytes")
    if len(c.service1) != 2 or len(c.service2) != 12:
        raise BadContainer("service data are 2 and 12 bytes")
    for name, value in (("type", c.container_type), ("document type", c.doc_type)):
        if not 0 <= value <= 0xFF:
            raise BadContainer(f"container {name} {value} must be a byte")
    return _HEADER.pack(
        length,
        crc,
        c.container_type,
        c.doc_type,
        c.version,
        c.service1,
        fn_to_bcd(c.fn_serial),
        c.fd_number.to_bytes(3, "big"),
        c.service2,
    )


def container_crc(data: bytes) -> int:
    """The CRC a container's bytes 2-3 must hold: over the rest of it."""
    return crc16_ccitt_false(data[:2] + data[4:])


def encode_container(
    doc_type: int,
    fn_serial: str,
    fd_number: int,
    body: bytes,
    *,
    container_type: int = TYPE_FN,
    service1: bytes = SERVICE1_DEFAULT,
    service2: bytes = SERVICE2_DEFAULT,
) -> bytes:
    """A container around ``body`` with its length and CRC filled in."""
    length = HEADER_SIZE + len(body)
    if length > MAX_SIZE:
        raise BadLength(f"container of {length} bytes exceeds the {MAX_SIZE}-byte limit")
    draft = Container(
        length,
        0,
        container_type,
        doc_type,
        FORMAT_VERSION,
        service1,
        fn_serial,
        fd_number,
        service2,
        body,
    )
    unsigned = _pack_header(draft, length, 0) + body
    crc = container_crc(unsigned)
    return unsigned[:2] + crc.to_bytes(2, "little") + unsigned[4:]


def decode_container(data: bytes) -> Container:
    """Parse and check a container: its length field, type, version, CRC and FN number."""
    if len(data) < HEADER_SIZE:
        raise BadLength(f"a container is at least {HEADER_SIZE} bytes, got {len(data)}")
    length, crc, ctype, doc_type, version, s1, fn_raw, fd_raw, s2 = _HEADER.unpack_from(data)
    if length != len(data):
        raise BadLength(
            f"container length field says {length} bytes, {len(data)} were given: "
            "it was cut or joined to other data"
        )
    if ctype not in (TYPE_FN, TYPE_SERVER):
        raise BadContainer(f"container type {ctype:#04x} is neither a5 nor 5a")
    if version != FORMAT_VERSION:
        raise BadVersion(f"container format version {version}; only 1 (32-byte header) is known")
    expected = container_crc(data)
    if expected != crc:
        raise BadCrc(
            f"container CRC is {crc:#06x}, computed {expected:#06x}: the container was "
            "damaged; read it from the FN again",
            expected=expected,
            found=crc,
        )
    return Container(
        length,
        crc,
        ctype,
        doc_type,
        version,
        s1,
        bcd_to_fn(fn_raw),
        int.from_bytes(fd_raw, "big"),
        s2,
        data[HEADER_SIZE:],
    )
