"""Frame codec and deframer: golden vectors, three feeding modes, junk, random splits, garbage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kkt.protocols.errors import FrameError
from kkt.protocols.line import BadFrame, Junk
from kkt.protocols.shtrih.frame import (
    MAX_FRAME,
    Control,
    ControlByte,
    Deframer,
    Frame,
    Token,
    code_bytes,
    command_code,
    decode_frame,
    encode_frame,
    lrc,
)

# Golden frames.  Each LRC was recomputed and matches the capture it comes from.
GOLDEN = [
    # fact sheet §1.2: "get device type" (FCh), from real traces quoted in issues
    bytes.fromhex("02 01 FC FD"),
    # fact sheet §1.2: subtotal (89h), operator password 1 (javapos #33 trace)
    bytes.fromhex("02 05 89 01 00 00 00 8D"),
    # fact sheet §1.2: full cut (25h), password 30 (shtrih-m/fr_drv_ng #247 trace)
    bytes.fromhex("02 06 25 1E 00 00 00 00 3D"),
    # fact sheet §1.2: FCh answer of a ШТРИХ-СМАРТПОС-Ф (shtrih-m/fr_drv_ng issue trace)
    bytes.fromhex("02 18 FC 00 00 00 02 00 2D 00")
    + "ШТРИХ-СМАРТПОС-Ф".encode("cp1251")
    + bytes.fromhex("D7"),
    # fact sheet §2.4: FF45 answer, FD 29 (1D 00 00 00), FP F3 60 35 FF (shtrih-m/fr_drv_ng #140)
    bytes.fromhex("02 10 FF 45 00 00 00 00 00 00 1D 00 00 00 F3 60 35 FF EE"),
]


@pytest.mark.parametrize("frame", GOLDEN, ids=lambda f: f[:4].hex())
def test_golden_frames_round_trip(frame: bytes) -> None:
    payload = decode_frame(frame)
    assert len(payload) == frame[1]
    assert encode_frame(payload) == frame


def test_lrc_is_xor_from_len_to_last_data_byte() -> None:
    assert lrc(b"\x01\xfc") == 0xFD
    assert lrc(b"") == 0
    assert encode_frame(b"\xfc")[-1] == 0x01 ^ 0xFC


@pytest.mark.parametrize("size", [0, 256, 1000])
def test_payload_size_limits(size: int) -> None:
    with pytest.raises(FrameError, match=r"1\.\.255"):
        encode_frame(b"\x10" * size)


def test_largest_frame() -> None:
    frame = encode_frame(b"\xaa" * 255)
    assert len(frame) == MAX_FRAME
    assert decode_frame(frame) == b"\xaa" * 255


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\x02\x01",
        b"\x03\x01\xfc\xfd",  # not STX
        b"\x02\x02\xfc\xfd",  # LEN too big for the bytes
        b"\x02\x01\xfc\xfe",  # wrong LRC
        b"\x02\x00\x00\x00",  # zero length
    ],
)
def test_decode_frame_refuses_malformed(bad: bytes) -> None:
    with pytest.raises(FrameError):
        decode_frame(bad)


def test_command_codes() -> None:
    assert command_code(b"\x10\x1e\x00\x00\x00") == 0x10
    assert command_code(b"\xff\x45\x00") == 0xFF45
    assert code_bytes(0xFF46) == b"\xff\x46"
    assert code_bytes(0xFC) == b"\xfc"
    for bad in (b"", b"\xff"):
        with pytest.raises(FrameError):
            command_code(bad)
    with pytest.raises(FrameError):
        code_bytes(0x1234)


# -- the deframer, three ways -------------------------------------------------------------------

STREAM_TOKENS: list[Token] = [
    Control(ControlByte.ENQ),
    Control(ControlByte.NAK),
    *(Frame(decode_frame(f)) for f in GOLDEN),
    Control(ControlByte.ACK),
    Control(ControlByte.FILLER),
]
STREAM = b"\x05\x15" + b"".join(GOLDEN) + b"\x06\xff"


def _feed_whole(data: bytes) -> list[Token]:
    return Deframer().feed(data)


def _feed_bytewise(data: bytes) -> list[Token]:
    deframer = Deframer()
    tokens: list[Token] = []
    for i in range(len(data)):
        tokens += deframer.feed(data[i : i + 1])
    return tokens


FEEDERS = [_feed_whole, _feed_bytewise]


def _merge_junk(tokens: list[Token]) -> list[Token]:
    """Byte-wise feeding reports junk a byte at a time; merge neighbours for comparison."""
    merged: list[Token] = []
    for token in tokens:
        if isinstance(token, Junk) and merged and isinstance(merged[-1], Junk):
            merged[-1] = Junk(merged[-1].data + token.data)
        else:
            merged.append(token)
    return merged


@pytest.mark.parametrize("feed", FEEDERS)
def test_deframer_clean_stream(feed) -> None:  # type: ignore[no-untyped-def]
    assert _merge_junk(feed(STREAM)) == STREAM_TOKENS


# Junk that contains neither STX nor control bytes, so it can only ever be junk.
JUNK = bytes.fromhex("11 22 33 44 A0 B0 C0")


@pytest.mark.parametrize("feed", FEEDERS)
def test_deframer_junk_before_and_after(feed) -> None:  # type: ignore[no-untyped-def]
    tokens = _merge_junk(feed(JUNK + STREAM + JUNK))
    assert tokens == [Junk(JUNK), *STREAM_TOKENS, Junk(JUNK)]


@pytest.mark.parametrize("feed", FEEDERS)
def test_deframer_junk_between_frames(feed) -> None:  # type: ignore[no-untyped-def]
    data = JUNK.join(GOLDEN)
    tokens = _merge_junk(feed(data))
    frames = [t for t in tokens if isinstance(t, Frame)]
    assert frames == [Frame(decode_frame(f)) for f in GOLDEN]
    assert [t for t in tokens if isinstance(t, Junk)] == [Junk(JUNK)] * (len(GOLDEN) - 1)


@pytest.mark.parametrize("feed", FEEDERS)
def test_deframer_junk_inside_a_frame_loses_only_that_frame(feed) -> None:  # type: ignore[no-untyped-def]
    damaged = GOLDEN[3][:6] + b"\x33" + GOLDEN[3][6:]
    data = GOLDEN[0] + damaged + GOLDEN[1] + GOLDEN[2]
    tokens = feed(data)
    frames = [t for t in tokens if isinstance(t, Frame)]
    # The damaged frame's LEN now ends one byte early; rescanning finds the next frame intact.
    assert frames == [Frame(decode_frame(GOLDEN[i])) for i in (0, 1, 2)]
    assert any(isinstance(t, BadFrame) for t in tokens)


@pytest.mark.parametrize("feed", FEEDERS)
def test_deframer_truncated_frame_swallowing_the_next_is_recovered(feed) -> None:  # type: ignore[no-untyped-def]
    # A frame that lost its last 3 bytes: its LEN reaches into the next frame.
    data = GOLDEN[3][:-3] + GOLDEN[4] + GOLDEN[0]
    frames = [t for t in feed(data) if isinstance(t, Frame)]
    assert frames[-2:] == [Frame(decode_frame(GOLDEN[4])), Frame(decode_frame(GOLDEN[0]))]


def test_deframer_without_rescan_consumes_the_claimed_length() -> None:
    damaged = bytearray(GOLDEN[1])
    damaged[3] ^= 0x01  # checksum now wrong
    tokens = Deframer(rescan=False).feed(bytes(damaged) + GOLDEN[0])
    assert tokens == [BadFrame(bytes(damaged), "checksum mismatch"), Frame(b"\xfc")]


def test_zero_length_frame_is_bad() -> None:
    tokens = Deframer().feed(b"\x02\x00" + GOLDEN[0])
    assert tokens == [BadFrame(b"\x02\x00", "zero length byte"), Frame(b"\xfc")]


def test_partial_frame_kept_until_complete_or_dropped() -> None:
    deframer = Deframer()
    assert deframer.feed(GOLDEN[1][:4]) == []
    assert deframer.has_partial and deframer.partial == GOLDEN[1][:4]
    assert deframer.feed(GOLDEN[1][4:]) == [Frame(decode_frame(GOLDEN[1]))]
    assert not deframer.has_partial
    deframer.feed(b"\x02\x05\x89")
    dropped = deframer.drop_partial()
    assert dropped == BadFrame(b"\x02\x05\x89", "byte timeout after 3 bytes")
    assert deframer.drop_partial() is None
    assert deframer.feed(GOLDEN[0]) == [Frame(b"\xfc")]


def test_deframe_returns_the_incomplete_tail() -> None:
    tokens, tail = Deframer().read_all(GOLDEN[0] + GOLDEN[1][:3])
    assert tokens == [Frame(b"\xfc")]
    assert tail == GOLDEN[1][:3]


# -- properties ----------------------------------------------------------------------------------

payloads = st.binary(min_size=1, max_size=255)


@given(payloads)
def test_encode_decode_round_trip(payload: bytes) -> None:
    assert decode_frame(encode_frame(payload)) == payload


@given(st.lists(payloads, min_size=1, max_size=8), st.data())
def test_random_split_points_give_the_same_frames(frames: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(p) for p in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    deframer = Deframer()
    tokens: list[Token] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        tokens += deframer.feed(stream[start:cut])
        start = cut
    assert tokens == [Frame(p) for p in frames]
    assert not deframer.has_partial


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=600), max_size=10), st.booleans())
def test_garbage_yields_tokens_only_and_bounded_memory(chunks: list[bytes], rescan: bool) -> None:
    deframer = Deframer(rescan=rescan)
    fed = accounted = 0
    for chunk in chunks:
        tokens = deframer.feed(chunk)
        fed += len(chunk)
        assert all(isinstance(t, Frame | Control | BadFrame | Junk) for t in tokens)
        accounted += sum(_size(t) for t in tokens)
        assert len(deframer.partial) < MAX_FRAME
        # Every byte is reported exactly once, or is still waiting in the partial frame.
        assert accounted + len(deframer.partial) == fed


def _size(token: Token) -> int:
    if isinstance(token, Frame):
        return len(token.payload) + 3
    if isinstance(token, Control):
        return 1
    if isinstance(token, BadFrame):
        return len(token.raw)
    return len(token.data)


@given(st.lists(payloads, min_size=1, max_size=5), st.binary(max_size=40))
def test_good_frames_survive_leading_garbage(frames: list[bytes], garbage: bytes) -> None:
    # Garbage followed by a gap the link would time out on; then good frames decode.
    deframer = Deframer()
    deframer.feed(garbage)
    deframer.drop_partial()
    tokens = deframer.feed(b"".join(encode_frame(p) for p in frames))
    assert [t for t in tokens if isinstance(t, Frame)] == [Frame(p) for p in frames]
