"""Shtrih-M frame layer (protocol v1): ``STX LEN CMD DATA LRC`` and its incremental deframer.

Layout (fact sheet ``shtrih-protocol.md`` §1.2, vendor protocol 1.17 "стандартный нижний уровень"):

====  =====================================================================
STX   0x02
LEN   number of bytes in code + parameters, 1..255
CMD   one byte, or ``FF xx`` for the fiscal-storage commands (FF first)
DATA  parameters
LRC   XOR of LEN and every following byte up to, not including, LRC
====  =====================================================================

The deframer never raises on input: everything it is fed comes back as a token -- a good
`Frame`, a control byte (`Control`), a `BadFrame` (wrong LRC, zero length, cut short by a byte
timeout) or `Junk` -- so a line that carries noise cannot crash a caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ..errors import FrameError
from ..line import BadFrame, FrameReader, Junk

STX = 0x02
ENQ = 0x05
ACK = 0x06
NAK = 0x15
# Network (RNDIS/TCP) models send one 0xFF after the host's ACK; both official drivers skip it
# wherever a control byte is expected (fact sheet §1.4).
FILLER = 0xFF

MAX_PAYLOAD = 255
MAX_FRAME = 1 + 1 + MAX_PAYLOAD + 1


class ControlByte(IntEnum):
    ENQ = ENQ
    ACK = ACK
    NAK = NAK
    FILLER = FILLER


def lrc(data: bytes | bytearray | memoryview) -> int:
    """XOR of all bytes (the frame checksum is taken over LEN..last data byte)."""
    value = 0
    for byte in data:
        value ^= byte
    return value


def encode_frame(payload: bytes) -> bytes:
    """Wrap a payload (command/answer code + parameters) into a frame."""
    size = len(payload)
    if not 1 <= size <= MAX_PAYLOAD:
        raise FrameError(
            f"a Shtrih frame carries 1..{MAX_PAYLOAD} bytes of code and parameters, got {size}; "
            "shorten the text or TLV of this command"
        )
    body = bytes((size,)) + payload
    return b"\x02" + body + bytes((lrc(body),))


def decode_frame(frame: bytes) -> bytes:
    """Strictly parse one complete frame and return its payload; raise `FrameError` otherwise."""
    if len(frame) < 4 or frame[0] != STX:
        raise FrameError(
            f"not a Shtrih frame (must start with 02 and be >= 4 bytes): {frame.hex(' ')}"
        )
    size = frame[1]
    if size == 0 or len(frame) != size + 3:
        raise FrameError(
            f"frame length byte {size} does not match {len(frame)} bytes: {frame.hex(' ')}"
        )
    if lrc(frame[1:-1]) != frame[-1]:
        raise FrameError(
            f"frame checksum {frame[-1]:02X} != {lrc(frame[1:-1]):02X} "
            f"(line noise?): {frame.hex(' ')}"
        )
    return bytes(frame[2:-1])


def command_code(payload: bytes) -> int:
    """The command code of a payload: ``0x10`` for one-byte codes, ``0xFF45`` for ``FF 45``."""
    if not payload:
        raise FrameError("empty payload has no command code")
    if payload[0] == 0xFF:
        if len(payload) < 2:
            raise FrameError("payload FF without its second code byte")
        return 0xFF00 | payload[1]
    return payload[0]


def code_bytes(code: int) -> bytes:
    """Inverse of `command_code`: ``0x10 -> 10``, ``0xFF45 -> FF 45``."""
    if 0 <= code <= 0xFE:
        return bytes((code,))
    if 0xFF00 <= code <= 0xFFFF:
        return bytes((0xFF, code & 0xFF))
    raise FrameError(f"command code {code:#x} is neither one byte nor FF xx")


# -- tokens -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame whose length and LRC checked out."""

    payload: bytes

    @property
    def code(self) -> int:
        return command_code(self.payload)


@dataclass(frozen=True, slots=True)
class Control:
    """A lone control byte: ENQ, ACK, NAK or the 0xFF filler."""

    byte: ControlByte


Token = Frame | Control | BadFrame | Junk

_CONTROL = {b: ControlByte(b) for b in (ENQ, ACK, NAK, FILLER)}


class Deframer(FrameReader[Token]):
    """Incremental tokenizer of a Shtrih byte stream (`FrameReader`).

    ``rescan`` chooses what happens after a bad frame.  A device reads LEN+1 bytes and NAKs, so
    the link layer consumes the whole claimed frame (``rescan=False``).  A log decoder would rather
    not lose the good frame that junk may have swallowed, so with ``rescan=True`` scanning resumes
    at the next 02 inside the bad frame, and the bad token covers only the bytes before it.
    """

    __slots__ = ("_rescan",)

    def __init__(self, *, rescan: bool = True) -> None:
        super().__init__()
        self._rescan = rescan

    def feed(self, data: bytes) -> list[Token]:
        buffer = self._raw
        buffer += data
        tokens: list[Token] = []
        position = 0
        end = len(buffer)
        junk_start = -1
        while position < end:
            byte = buffer[position]
            if byte != STX:
                control = _CONTROL.get(byte)
                if control is None:
                    if junk_start < 0:
                        junk_start = position
                else:
                    if junk_start >= 0:
                        tokens.append(Junk(bytes(buffer[junk_start:position])))
                        junk_start = -1
                    tokens.append(Control(control))
                position += 1
                continue
            if junk_start >= 0:
                tokens.append(Junk(bytes(buffer[junk_start:position])))
                junk_start = -1
            if position + 1 >= end:
                break  # STX without LEN yet
            size = buffer[position + 1]
            if size == 0:
                tokens.append(BadFrame(b"\x02\x00", "zero length byte"))
                position += 2
                continue
            frame_end = position + size + 3
            if frame_end > end:
                break  # incomplete frame: keep it
            body = buffer[position + 1 : frame_end - 1]
            if lrc(body) == buffer[frame_end - 1]:
                tokens.append(Frame(bytes(body[1:])))
                position = frame_end
                continue
            resume = frame_end
            if self._rescan:
                inner = buffer.find(STX, position + 1, frame_end)
                if inner >= 0:
                    resume = inner
            tokens.append(BadFrame(bytes(buffer[position:resume]), "checksum mismatch"))
            position = resume
        if junk_start >= 0:
            tokens.append(Junk(bytes(buffer[junk_start:position])))
        del buffer[:position]
        return tokens
