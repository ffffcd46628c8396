"""ATOL protocol 3.1: the lower level v3 and the command set, sans-IO.

* `packet` -- ``FE LEN0 LEN1 ID DATA CRC`` encoding, CRC-8, byte stuffing and the incremental
  `PacketDeframer`;
* `buffer` -- the task-buffer messages a packet carries (Add, Ack, Req, Abort, AckAdd and the
  device's A1..A8 / B1..B4 replies);
* `host`, `device` -- `AtolHostLink` and `AtolDeviceLink`, the two ends of the link; `tasks` --
  `TaskBuffer`, the device's buffer every connection shares; `link` -- what they share;
* `commands` -- the typed commands an Add carries (3Fh status, 92h receipts, A4h FN queries ...)
  on the shared engine (`kkt.protocols.message`), with `charset` (ATOL's CP866 variant and its
  text fields), `modes` and `errors`.
"""

from .packet import (
    ASYNC_ID,
    MAX_DATA,
    MAX_PACKET,
    MAX_REQUEST_ID,
    Packet,
    PacketDeframer,
    Token,
    crc8,
    decode_packet,
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
    "Packet",
    "PacketDeframer",
    "Token",
    "crc8",
    "decode_packet",
    "encode_packet",
    "escape",
    "is_valid_id",
    "packet_crc",
    "unescape",
]
