"""ATOL lower level v3: the packet ``FE LEN0 LEN1 ID DATA CRC`` and its incremental deframer.

Layout (fact sheet ``atol-protocol.md`` §1.3; atol4j ``TransportProtocolV3``, MultiMag
``llpv3.php``, the SAMSON modules and Zzzzipper's ``AtolPacketLayer`` all agree on it):

=====  ==========================================================================================
STX    0xFE, and nowhere else: an unescaped FE always starts a packet
LEN    length of the *unescaped* DATA in two 7-bit bytes, low bits first:
       ``LEN0 = len & 0x7F``, ``LEN1 = len >> 7`` -- so at most 16383 bytes
ID     chosen by the host, 0x00..0xDF (every client wraps after 0xDF); a reply repeats the ID of
       its request; 0xF0 marks an unsolicited (asynchronous) packet from the device
DATA   a task-buffer command or reply (§1.4; not this module's business)
CRC    CRC-8 (poly 0x31, init 0xFF, MSB first, no reflection, no final XOR) over ID + DATA
=====  ==========================================================================================

Byte stuffing applies to DATA and CRC only: ``FE -> FD EE`` and ``FD -> FD ED``.  The header
needs none: the LEN bytes are 7-bit and no allowed ID is FD or FE, so neither byte can collide
with STX or ESC.

A packet with LEN = 0 is valid.  It carries no command: either side sends it to say "your packet
with this ID did not arrive intact, send it again" (fact sheet §1.3).  It decodes to a `Packet`
with empty ``data``; `Packet.is_repeat_request` names that meaning.

The deframer never raises on input: everything it is fed comes back as a token -- a good
`Packet`, a `BadFrame` (wrong CRC, bad escape, malformed header, cut short by a new FE or by a
byte timeout) or `Junk` (bytes outside any packet) -- or stays in the partial packet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..errors import FrameError
from ..line import BadFrame, FrameReader, Junk

STX: Final = 0xFE
ESC: Final = 0xFD
# What follows ESC on the wire: ``FD EE`` stands for FE, ``FD ED`` for FD.
TSTX: Final = 0xEE
TESC: Final = 0xED

MAX_REQUEST_ID: Final = 0xDF
ASYNC_ID: Final = 0xF0
# The length field has 14 bits; no smaller limit is known (fact sheet §1.3).
MAX_DATA: Final = 0x3FFF
HEADER_SIZE: Final = 4  # FE LEN0 LEN1 ID
# The longest packet on the wire: every DATA byte and the CRC stuffed to two bytes.
MAX_PACKET: Final = HEADER_SIZE + 2 * MAX_DATA + 2

_ALLOWED_IDS = "00..DF (host requests and their replies) or F0 (asynchronous device packets)"


def is_valid_id(packet_id: int) -> bool:
    """True for the IDs a packet may carry: 0x00..0xDF and the asynchronous 0xF0."""
    return 0 <= packet_id <= MAX_REQUEST_ID or packet_id == ASYNC_ID


# -- CRC ----------------------------------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for index in range(256):
        value = index
        for _ in range(8):
            value = ((value << 1) ^ 0x31) if value & 0x80 else (value << 1)
        table.append(value & 0xFF)
    return tuple(table)


_CRC_TABLE: Final = _crc_table()


def crc8(data: bytes | bytearray | memoryview, crc: int = 0xFF) -> int:
    """CRC-8 with polynomial 0x31, MSB first, no reflection and no final XOR.

    ``crc`` is the running value: 0xFF (the protocol's initial value) to start, or the result of
    an earlier call to continue over more bytes.
    """
    table = _CRC_TABLE
    for byte in data:
        crc = table[crc ^ byte]
    return crc


def packet_crc(packet_id: int, data: bytes, *, crc_over_escaped: bool = False) -> int:
    """The CRC a packet with this ID and (unescaped) DATA carries.

    Three of the four public implementations (atol4j after its hardware-driven fix of 2019-11,
    MultiMag, SAMSON) compute it over ID + the *unescaped* DATA, and that is the default.
    Zzzzipper's firmware feeds ID + the *escaped* DATA (an FE counts as ``FD EE``) instead;
    ``crc_over_escaped=True`` selects that reading.  The two agree unless DATA holds FE or FD.
    Which one a real register checks is open point 1 of the fact sheet (§7).
    """
    body = escape(data) if crc_over_escaped else data
    return crc8(body, crc8(bytes((packet_id,))))


# -- byte stuffing ------------------------------------------------------------------------------

_ESCAPE_MAP: Final = {STX: bytes((ESC, TSTX)), ESC: bytes((ESC, TESC))}
_UNESCAPE_MAP: Final = {TSTX: STX, TESC: ESC}


def escape(data: bytes | bytearray) -> bytes:
    """Stuff FE as ``FD EE`` and FD as ``FD ED``; every other byte passes unchanged."""
    if STX not in data and ESC not in data:
        return bytes(data)
    return bytes(data).replace(b"\xfd", b"\xfd\xed").replace(b"\xfe", b"\xfd\xee")


def unescape(data: bytes | bytearray) -> bytes:
    """Inverse of `escape`; raise `FrameError` on a bare FE or an FD not followed by EE/ED."""
    out = bytearray()
    position = 0
    end = len(data)
    while position < end:
        byte = data[position]
        if byte == STX:
            raise FrameError(f"unescaped FE at offset {position}: FE may only start a packet")
        if byte != ESC:
            out.append(byte)
            position += 1
            continue
        if position + 1 >= end:
            raise FrameError(f"FD at offset {position} is not followed by EE or ED")
        plain = _UNESCAPE_MAP.get(data[position + 1])
        if plain is None:
            raise FrameError(
                f"bad escape FD {data[position + 1]:02X} at offset {position}: "
                "only FD EE (for FE) and FD ED (for FD) exist"
            )
        out.append(plain)
        position += 2
    return bytes(out)


# -- whole packets ------------------------------------------------------------------------------


def encode_packet(packet_id: int, data: bytes, *, crc_over_escaped: bool = False) -> bytes:
    """Build the wire bytes of one packet (see `packet_crc` for ``crc_over_escaped``)."""
    if not is_valid_id(packet_id):
        raise FrameError(f"packet ID {packet_id:#04x} is not allowed; use {_ALLOWED_IDS}")
    size = len(data)
    if size > MAX_DATA:
        raise FrameError(
            f"an ATOL packet carries at most {MAX_DATA} data bytes (14-bit length), got {size}; "
            "split the task"
        )
    crc = packet_crc(packet_id, data, crc_over_escaped=crc_over_escaped)
    header = bytes((STX, size & 0x7F, size >> 7, packet_id))
    return header + escape(data) + escape(bytes((crc,)))


def decode_packet(raw: bytes, *, crc_over_escaped: bool = False) -> Packet:
    """Strictly parse exactly one complete packet; raise `FrameError` saying what is wrong."""
    if not raw or raw[0] != STX:
        raise FrameError(f"not an ATOL v3 packet (must start with FE): {raw.hex(' ')}")
    deframer = PacketDeframer(crc_over_escaped=crc_over_escaped)
    tokens = deframer.feed(raw)
    if not tokens:
        raise FrameError(f"truncated packet: {deframer._progress()}: {raw.hex(' ')}")
    first = tokens[0]
    if isinstance(first, BadFrame):
        raise FrameError(f"{first.reason}: {raw.hex(' ')}")
    assert isinstance(first, Packet)  # the input starts with FE, so it is never Junk
    if len(tokens) > 1 or deframer.has_partial:
        used = len(encode_packet(first.id, first.data, crc_over_escaped=crc_over_escaped))
        raise FrameError(
            f"length mismatch: LEN says {len(first.data)} data bytes, which ends the packet "
            f"after {used} of {len(raw)} bytes: {raw.hex(' ')}"
        )
    return first


# -- tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Packet:
    """A packet whose header, escapes and CRC checked out.

    Empty ``data`` is the protocol's "repeat" signal (`is_repeat_request`): the sender asks for
    the packet with this ID again.  ID 0xF0 (`is_async`) is an unsolicited device packet.
    """

    id: int
    data: bytes

    @property
    def is_repeat_request(self) -> bool:
        """LEN = 0: "resend your packet with this ID" (the sheet's NAK of the v3 level)."""
        return not self.data

    @property
    def is_async(self) -> bool:
        """ID 0xF0: an asynchronous result the device sends on its own."""
        return self.id == ASYNC_ID


Token = Packet | BadFrame | Junk


# Deframer states: where the next byte of the current packet goes.
_HUNT = 0  # no packet: everything up to the next FE is junk
_LEN0 = 1
_LEN1 = 2
_ID = 3
_DATA = 4
_CRC = 5


class PacketDeframer(FrameReader[Token]):
    """Incremental tokenizer of an ATOL v3 byte stream.

    Feed it chunks of any size; it returns the tokens completed so far and keeps a partial packet
    for the next call.  Every unescaped FE starts a packet: one that arrives in the middle of
    another ends the earlier one as a `BadFrame` ("interrupted") and the new packet is read
    normally.  After any other failure (bad escape, bad CRC, bad header) the bytes up to the next
    FE are reported as `Junk`.

    Each fed byte ends up in exactly one place: in a `Packet` (whose wire form is
    ``encode_packet(id, data)``, byte for byte -- the encoding is canonical), a `BadFrame`'s
    ``raw``, a `Junk`, or the `partial` still waiting for more bytes.

    Time is not its business: a link that gives up on a partial packet after the byte timeout
    calls `drop_partial`.  ``max_data`` lowers the accepted DATA length (a device with a small
    buffer); a header that declares more is refused at once, so the partial never exceeds
    ``4 + 2 * max_data + 2`` bytes.
    """

    __slots__ = ("_crc_over_escaped", "_data", "_escaped", "_id", "_max_data", "_need", "_state")

    def __init__(self, *, crc_over_escaped: bool = False, max_data: int = MAX_DATA) -> None:
        if not 0 <= max_data <= MAX_DATA:
            raise ValueError(f"max_data must be 0..{MAX_DATA}, got {max_data}")
        super().__init__()
        self._crc_over_escaped = crc_over_escaped
        self._max_data = max_data
        self._data = bytearray()  # its DATA, unescaped
        self._state = _HUNT
        self._escaped = False  # the previous byte was an FD inside DATA or CRC
        self._need = 0
        self._id = 0

    def _reset(self) -> None:
        super()._reset()
        self._data.clear()
        self._escaped = False
        self._state = _HUNT

    def _fail(self, reason: str) -> BadFrame:
        """End the packet in progress as bad; junk follows until the next FE."""
        bad = BadFrame(bytes(self._raw), reason)
        self._reset()
        return bad

    def _progress(self) -> str:
        if self._state in (_LEN0, _LEN1, _ID):
            return f"the {len(self._raw)}-byte input ends inside the 4-byte header"
        if self._state == _DATA:
            return f"LEN says {self._need} data bytes, the input ends after {len(self._data)}"
        return "the input ends before the CRC is complete"

    def feed(self, data: bytes | bytearray | memoryview) -> list[Token]:
        data = bytes(data)
        tokens: list[Token] = []
        raw = self._raw
        position = 0
        end = len(data)
        while position < end:
            state = self._state
            if state == _HUNT:
                start = data.find(b"\xfe", position)
                stop = end if start < 0 else start
                if stop > position:
                    tokens.append(Junk(data[position:stop]))
                if start < 0:
                    break
                whole = self._whole_packet(data, start, end)
                if whole is not None:
                    # Fast path: a whole packet with nothing to unescape, taken at once.
                    tokens.append(whole)
                    position = start + 5 + len(whole.data)
                    continue
                raw.append(STX)
                position = start + 1
                self._state = _LEN0
                continue
            byte = data[position]
            if byte == STX:
                tokens.append(
                    self._fail(
                        f"interrupted after {len(raw)} bytes by FE (the start of the next packet)"
                    )
                )
                continue  # the FE is read again, as the start of a new packet
            if state == _DATA and not self._escaped and byte != ESC:
                # Fast path: copy a run of plain data bytes at once.
                limit = min(end, position + self._need - len(self._data))
                stop = limit
                for special in (b"\xfe", b"\xfd"):
                    found = data.find(special, position, stop)
                    if found >= 0:
                        stop = found
                run = data[position:stop]
                raw += run
                self._data += run
                position = stop
                if len(self._data) == self._need:
                    self._state = _CRC
                continue
            raw.append(byte)
            position += 1
            token = self._step(byte)
            if token is not None:
                tokens.append(token)
        return tokens

    def _whole_packet(self, data: bytes, start: int, end: int) -> Packet | None:
        """The packet starting at ``data[start]`` (an FE) when it lies there whole, with no FE or
        FD inside it and a good CRC -- the common case, read without the byte-by-byte states;
        None sends the bytes through those states (which report whatever is wrong)."""
        if end - start < 5:
            return None
        length0, length1, packet_id = data[start + 1], data[start + 2], data[start + 3]
        if (length0 | length1) & 0x80 or not is_valid_id(packet_id):
            return None
        need = length0 | length1 << 7
        stop = start + 4 + need  # where the CRC byte is
        if need > self._max_data or stop >= end:
            return None
        body = data[start + 4 : stop]
        crc = data[stop]
        if crc == STX or crc == ESC or STX in body or ESC in body:
            return None
        # Nothing escaped: both CRC readings (`packet_crc`) agree.
        if crc != crc8(body, crc8(bytes((packet_id,)))):
            return None
        return Packet(packet_id, body)

    def _step(self, byte: int) -> Token | None:
        """Take one byte (already appended to the raw buffer); return the packet it ends, if any."""
        state = self._state
        if state == _LEN0 or state == _LEN1:
            if byte & 0x80:
                name = "LEN0" if state == _LEN0 else "LEN1"
                return self._fail(f"length byte {name} = {byte:02X} is not a 7-bit value")
            if state == _LEN0:
                self._need = byte
                self._state = _LEN1
                return None
            self._need |= byte << 7
            if self._need > self._max_data:
                return self._fail(
                    f"LEN declares {self._need} data bytes, more than the {self._max_data} allowed"
                )
            self._state = _ID
            return None
        if state == _ID:
            if not is_valid_id(byte):
                return self._fail(f"packet ID {byte:02X} is not allowed ({_ALLOWED_IDS})")
            self._id = byte
            self._state = _DATA if self._need else _CRC
            return None
        # DATA or CRC: handle the escapes.
        if self._escaped:
            self._escaped = False
            plain = _UNESCAPE_MAP.get(byte)
            if plain is None:
                return self._fail(
                    f"bad escape FD {byte:02X}: only FD EE (for FE) and FD ED (for FD) exist"
                )
            byte = plain
        elif byte == ESC:
            self._escaped = True
            return None
        if state == _DATA:
            self._data.append(byte)
            if len(self._data) == self._need:
                self._state = _CRC
            return None
        expected = self._expected_crc()
        if byte != expected:
            return self._fail(f"CRC mismatch: packet says {byte:02X}, computed {expected:02X}")
        packet = Packet(self._id, bytes(self._data))
        self._reset()
        return packet

    def _expected_crc(self) -> int:
        return packet_crc(self._id, bytes(self._data), crc_over_escaped=self._crc_over_escaped)
