"""`SessionReader`: a byte stream into sessions -- whole, byte by byte, in random chunks, with junk
and damaged sessions between good ones (skipped and reported, or raised when strict)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kkt.protocols.line import BadFrame, Junk
from kkt.protocols.ofd import (
    SIGNATURE,
    BadCrc,
    BadLength,
    BadMagic,
    BadVersion,
    Session,
    SessionReader,
    decode_session,
    encode_session,
)
from support.ofd_golden import KKT_TO_OFD

FN = "9999078900005488"
SECOND = encode_session(FN, b"\x01\x02\x03", flags=0x16)
PING = encode_session(FN, b"", flags=0x10)


def _feed_bytewise(reader: SessionReader, data: bytes) -> list[Session]:
    sessions: list[Session] = []
    for byte in data:
        sessions += reader.feed(bytes([byte]))
    return sessions


def test_whole() -> None:
    reader = SessionReader()
    sessions = reader.feed(KKT_TO_OFD + SECOND + PING)
    assert [s.pack() for s in sessions] == [KKT_TO_OFD, SECOND, PING]
    assert sessions[0] == decode_session(KKT_TO_OFD)
    assert not reader.has_partial and reader.dropped == []


def test_byte_by_byte() -> None:
    reader = SessionReader()
    sessions = _feed_bytewise(reader, KKT_TO_OFD + SECOND)
    assert [s.pack() for s in sessions] == [KKT_TO_OFD, SECOND]
    assert reader.dropped == []


def test_a_partial_session_waits_and_can_be_dropped() -> None:
    reader = SessionReader()
    assert reader.feed(KKT_TO_OFD[:100]) == []
    assert reader.has_partial and reader.partial == KKT_TO_OFD[:100]
    dropped = reader.drop_partial("connection closed")
    assert dropped is not None and dropped.raw == KKT_TO_OFD[:100]
    assert "connection closed after 100 bytes" in dropped.reason
    assert reader.feed(SECOND) == [decode_session(SECOND)]


@given(
    chunks=st.lists(st.integers(1, 97), min_size=1, max_size=40),
    junk=st.lists(st.binary(max_size=20), min_size=3, max_size=3),
)
def test_random_chunks_with_junk_between_sessions(chunks: list[int], junk: list[bytes]) -> None:
    # Junk may not hold a signature itself (then it would be a damaged session, tested below).
    junk = [j.replace(SIGNATURE[:1], b"") for j in junk]
    stream = junk[0] + KKT_TO_OFD + junk[1] + SECOND + junk[2] + PING
    reader = SessionReader()
    sessions: list[Session] = []
    at, i = 0, 0
    while at < len(stream):
        size = chunks[i % len(chunks)]
        sessions += reader.feed(stream[at : at + size])
        at, i = at + size, i + 1
    assert [s.pack() for s in sessions] == [KKT_TO_OFD, SECOND, PING]
    assert b"".join(d.data for d in reader.dropped if isinstance(d, Junk)) == b"".join(junk)
    assert all(isinstance(d, Junk) for d in reader.dropped)


def test_junk_and_a_damaged_session_between_good_ones_are_skipped_and_reported() -> None:
    damaged = bytearray(SECOND)
    damaged[-1] ^= 0xFF  # the session CRC (mode 2) no longer matches
    stream = b"noise" + KKT_TO_OFD + bytes(damaged) + b"\x2a\x08" + SECOND
    reader = SessionReader()
    sessions = _feed_bytewise(reader, stream)
    assert [s.pack() for s in sessions] == [KKT_TO_OFD, SECOND]
    bad = [d for d in reader.dropped if isinstance(d, BadFrame)]
    assert len(bad) == 1 and "session CRC" in bad[0].reason
    junk = b"".join(d.data for d in reader.dropped if isinstance(d, Junk))
    assert junk == b"noise" + bytes(damaged)[4:] + b"\x2a\x08"


def test_a_lying_length_does_not_swallow_the_next_session() -> None:
    # A header announcing 32 KB: its bytes never come; the next session's signature is found.
    liar = bytearray(encode_session(FN, b"", flags=0x15))
    liar[24:26] = (0x7FFF).to_bytes(2, "little")  # the header CRC now fails
    reader = SessionReader()
    assert reader.feed(bytes(liar) + SECOND) == [decode_session(SECOND)]
    assert any(isinstance(d, BadFrame) and "CRC" in d.reason for d in reader.dropped)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"GET / HTTP/1.1\r\n", BadMagic),
        (KKT_TO_OFD[:4] + b"\x00\x00" + KKT_TO_OFD[6:], BadVersion),
        (KKT_TO_OFD[:24] + b"\xff\xff" + KKT_TO_OFD[26:], BadLength),
        (bytes(bytearray(SECOND[:-1]) + bytes([SECOND[-1] ^ 1])), BadCrc),
    ],
)
def test_strict_raises_the_cause(data: bytes, error: type[Exception]) -> None:
    reader = SessionReader(strict=True)
    with pytest.raises(error):
        _feed_bytewise(reader, data)


def test_strict_takes_good_sessions_byte_by_byte() -> None:
    reader = SessionReader(strict=True)
    assert [s.pack() for s in _feed_bytewise(reader, KKT_TO_OFD + SECOND)] == [KKT_TO_OFD, SECOND]


@given(garbage=st.binary(max_size=300), cut=st.integers(1, 64))
def test_garbage_never_raises_when_lenient_and_every_byte_is_accounted_for(
    garbage: bytes, cut: int
) -> None:
    stream = garbage + SIGNATURE + garbage[:cut] + SECOND
    reader = SessionReader()
    sessions = [s for at in range(0, len(stream), cut) for s in reader.feed(stream[at : at + cut])]
    # A bad session gives back only its signature; the rest is read again as junk or sessions.
    accounted = (
        sum(len(s.pack()) for s in sessions)
        + sum(len(d.data) if isinstance(d, Junk) else len(SIGNATURE) for d in reader.dropped)
        + len(reader.partial)
    )
    assert accounted == len(stream)
