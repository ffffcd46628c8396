"""Golden vectors of the Shtrih commands of the OFD exchange: FF30-FF33, FF39, FF3C, FF3F.

The byte layouts are the vendor's (no public capture of these commands exists, so each frame below
is written out by hand from the layout and checked against our codec both ways):

* FF30 ``shtrih-m/javapos_shtrih:Source/Core/src/com/shtrih/fiscalprinter/command/
  FSReadBufferStatus.java``: sys password(4); answer bytes in buffer(2), max block(1).
* FF31 ``.../FSReadBlock.java``: sys password(4), offset(2), count(1); answer data(N).  (Its
  comment says "message length 6"; its ``encode`` writes 4 + 2 + 1 bytes after FF31, so LEN 09.)
* FF32 ``.../FSStartWriteBlock.java``: sys password(4), size(2); answer max block(1).
* FF33 ``.../FSWriteBlock.java``: sys password(4), offset(2), size(1), data(N); no answer data.
* FF39 ``.../FSReadCommStatus.java`` and SH117 p. 50: status(1), reading(1), count(2), first
  FD(4), DATE_TIME(5); answer LEN 16.
* FF3C ``.../FSReadDocTicket.java`` (sys password(4), FD(4); answer N bytes) and ``FSTicket.java``
  (those N bytes: YMD(3), HM(2), ФПО(18), FD(4), FNP table 189).
* FF3F SH117 p. 50: count(2) (`fn.GetUnconfirmedCount`, see the module's note on JavaPOS's 4).
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kkt.protocols.errors import CodecError
from kkt.protocols.shtrih import fn
from kkt.protocols.shtrih.frame import decode_frame, encode_frame
from kkt.protocols.shtrih.message import decode_request, encode_answer

SYS = 30  # the system administrator's default password

REQUESTS = [
    # FF30, password 30: LEN 06, LRC D7
    ("02 06 FF 30 1E 00 00 00 D7", fn.GetBufferStatus(password=SYS)),
    # FF31 from offset 128 (80 00), 30 bytes (1E)
    ("02 09 FF 31 1E 00 00 00 80 00 1E 47", fn.ReadBufferBlock(password=SYS, offset=128, count=30)),
    # FF32: the OFD's answer is 436 bytes (B4 01)
    ("02 08 FF 32 1E 00 00 00 B4 01 6E", fn.StartBufferWrite(password=SYS, size=436)),
    # FF33 at offset 240 (F0 00): 3 bytes A5 B4 01 after their size byte 03
    (
        "02 0C FF 33 1E 00 00 00 F0 00 03 A5 B4 01 3D",
        fn.WriteBufferBlock(password=SYS, offset=240, data=bytes.fromhex("A5 B4 01")),
    ),
    # FF3C for FD 29 (1D 00 00 00)
    ("02 0A FF 3C 1E 00 00 00 1D 00 00 00 CA", fn.GetOfdTicket(password=SYS, number=29)),
]


@pytest.mark.parametrize(("frame", "request_"), REQUESTS, ids=lambda v: str(v)[:14])
def test_request_golden(frame: str, request_: fn.Request[fn.Answer]) -> None:
    wire_ = bytes.fromhex(frame)
    assert encode_frame(request_.encode()) == wire_
    assert decode_request(decode_frame(wire_)) == request_


TICKET_SIGN = bytes(range(1, 17)) + bytes(2)  # 16 bytes of 1078, then the archive's 2 zeros
ANSWERS = [
    # FF30: 436 bytes waiting (B4 01), blocks of 128 (80)
    ("02 06 FF 30 00 B4 01 80 FC", fn.GetBufferStatus(password=SYS), fn.BufferStatus(436, 128)),
    ("02 05 FF 31 00 11 22 F8", fn.ReadBufferBlock(SYS, 0, 2), fn.BufferBlock(b"\x11\x22")),
    ("02 04 FF 32 00 80 49", fn.StartBufferWrite(SYS, 2), fn.WriteStarted(128)),
    ("02 03 FF 33 00 CF", fn.WriteBufferBlock(SYS, 0, b"\x00"), fn.Empty()),
    # FF39: message waiting (02), not reading, 3 queued, first FD 29, 22.11.24 19:47 -- LEN 16
    (
        "02 10 FF 39 00 02 00 03 00 1D 00 00 00 18 0B 16 13 2F F3",
        fn.GetOfdExchangeStatus(SYS),
        fn.OfdExchangeStatus(2, False, 3, 29, dt.datetime(2024, 11, 22, 19, 47)),
    ),
    # FF3C: 22.11.24 19:47, ФПО 01..10 + 00 00, FD 29: 27 bytes, as FSTicket needs
    (
        "02 1E FF 3C 00 18 0B 16 13 2F " + TICKET_SIGN.hex(" ") + " 1D 00 00 00 E9",
        fn.GetOfdTicket(SYS, 29),
        fn.OfdTicket(dt.datetime(2024, 11, 22, 19, 47), TICKET_SIGN, 29),
    ),
    ("02 05 FF 3F 00 03 00 C6", fn.GetUnconfirmedCount(SYS), fn.UnconfirmedCount(3)),
]


@pytest.mark.parametrize(("frame", "request_", "answer"), ANSWERS, ids=lambda v: str(v)[:14])
def test_answer_golden(frame: str, request_: fn.Request[fn.Answer], answer: fn.Answer) -> None:
    wire_ = bytes.fromhex(frame)
    assert request_.decode_answer(decode_frame(wire_)) == answer
    assert encode_frame(encode_answer(request_.CODE, answer)) == wire_


def test_ff3c_ticket_is_27_bytes() -> None:
    answer = fn.OfdTicket(dt.datetime(2024, 1, 2, 3, 4), bytes(18), 1)
    assert len(answer.encode_data()) == 27  # FSTicket decodes only when >= 27 came


def test_ff33_size_byte_must_match_the_data() -> None:
    # size 03 announced, 2 bytes follow: a typed error naming both numbers
    with pytest.raises(CodecError, match="3 bytes, 2 follow"):
        decode_request(bytes.fromhex("FF 33 1E 00 00 00 00 00 03 A5 B4"))
    with pytest.raises(CodecError, match="size byte"):
        decode_request(bytes.fromhex("FF 33 1E 00 00 00 00 00"))


def test_ff33_refuses_a_block_over_255_bytes() -> None:
    with pytest.raises(CodecError):
        fn.WriteBufferBlock(SYS, 0, bytes(256)).encode()


@given(offset=st.integers(0, 0xFFFF), data=st.binary(max_size=0xFF))
def test_ff33_round_trip(offset: int, data: bytes) -> None:
    request = fn.WriteBufferBlock(SYS, offset, data)
    payload = request.encode()
    assert payload[8] == len(data) and payload[9:] == data
    assert decode_request(payload) == request
