"""ATOL protocol: lower level v3 (more layers follow).

* `packet` -- ``FE LEN0 LEN1 ID DATA CRC`` encoding, CRC-8, byte stuffing and the incremental
  `PacketDeframer`.
"""

from .packet import (
    ASYNC_ID,
    MAX_DATA,
    MAX_PACKET,
    MAX_REQUEST_ID,
    BadPacket,
    Junk,
    Packet,
    PacketDeframer,
    Token,
    crc8,
    decode_packet,
    deframe,
    encode_packet,
    escape,
    is_valid_id,
    packet_crc,
    unescape,
)

__all__ = [
    "ASYNC_ID",
    "MAX_DATA",
    "MAX_PACKET",
    "MAX_REQUEST_ID",
    "BadPacket",
    "Junk",
    "Packet",
    "PacketDeframer",
    "Token",
    "crc8",
    "decode_packet",
    "deframe",
    "encode_packet",
    "escape",
    "is_valid_id",
    "packet_crc",
    "unescape",
]
