"""The test client's own packet codec against packets from public sources, byte for byte.

Golden vectors:

* Zzzzipper/projects firmware-usbhost/common/fiscal_register/atol/AtolProtocol.h -- the dump of
  a link check with a register: Abort in packet 06, Add(NeedResult, TID 02, A5h) in packet 07,
  Req(TID 02) in packets 08, 09 and 0A;
* kurbatov/atol4j src/test/java/com/github/kurbatov/atol4j/transport/protocol/v3/
  TransportProtocolV3Test.java -- an empty packet 01 (``wrapTest``) and an async result whose
  CRC (FEh) goes escaped (``unwrapWithEscapeTest``).
"""

from __future__ import annotations

import pytest

from interop.atol_v3_client import pack, unpack

VECTORS = [
    ("FE 01 00 06 C4 58", 0x06, "C4"),  # Zzzzipper: Abort
    ("FE 06 00 07 C1 01 02 00 00 A5 8D", 0x07, "C1 01 02 00 00 A5"),  # Zzzzipper: Add
    ("FE 02 00 08 C3 02 FC", 0x08, "C3 02"),  # Zzzzipper: Req
    ("FE 02 00 09 C3 02 BA", 0x09, "C3 02"),
    ("FE 02 00 0A C3 02 70", 0x0A, "C3 02"),
    ("FE 00 00 01 9D", 0x01, ""),  # atol4j: wrapTest
    ("FE 05 00 F0 A6 57 55 00 00 FD EE", 0xF0, "A6 57 55 00 00"),  # atol4j: unwrapWithEscapeTest
]


@pytest.mark.parametrize(("wire", "packet_id", "data"), VECTORS)
def test_the_clients_codec_matches_public_packets(wire: str, packet_id: int, data: str) -> None:
    raw, body = bytes.fromhex(wire), bytes.fromhex(data)
    assert pack(packet_id, body) == raw
    stream = bytearray(b"\x00junk" + raw + raw[:3])  # junk before, a packet cut short after
    assert unpack(stream) == (packet_id, body)
    assert unpack(stream) is None and stream == bytearray(raw[:3])


def test_stuffed_data_survives_a_round_trip() -> None:
    data = bytes((0xFE, 0xFD, 0xEE, 0xED, 0x00))
    stream = bytearray(pack(0x20, data))
    assert b"\xfe" not in stream[1:]  # only the packet's start is a bare FE
    assert unpack(stream) == (0x20, data)


def test_a_damaged_packet_is_not_taken() -> None:
    raw = bytearray(bytes.fromhex("FE 02 00 08 C3 02 FC"))
    raw[5] ^= 0x01
    with pytest.raises(ConnectionError, match="bad CRC"):
        unpack(raw)
