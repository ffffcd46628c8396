"""ATOL v3 packet layer: golden vectors, CRC, stuffing, the deframer fed three ways, properties."""

from __future__ import annotations

from collections.abc import Callable

import crcmod
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kkt.protocols.atol.packet import (
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
from kkt.protocols.errors import FrameError
from kkt.protocols.line import BadFrame, Junk

# Golden packets from the fact sheet (atol-protocol.md §1.3), each with the sheet's source.
# The sheet recomputed every CRC with poly 0x31 / init 0xFF over ID + DATA.
GOLDEN: list[tuple[str, int, bytes]] = [
    # Zzzzipper device dump (AtolProtocol.h): id 06, Abort
    ("FE 01 00 06 C4 58", 0x06, bytes.fromhex("C4")),
    # Zzzzipper device dump: id 07, Add flags=01 TID=02, password 0000, command A5
    ("FE 06 00 07 C1 01 02 00 00 A5 8D", 0x07, bytes.fromhex("C1 01 02 00 00 A5")),
    # Zzzzipper device dump: id 08, Req TID 02
    ("FE 02 00 08 C3 02 FC", 0x08, bytes.fromhex("C3 02")),
    # Zzzzipper device dump: the same Req repeated with id 09 and id 0A
    ("FE 02 00 09 C3 02 BA", 0x09, bytes.fromhex("C3 02")),
    ("FE 02 00 0A C3 02 70", 0x0A, bytes.fromhex("C3 02")),
    # Zzzzipper unit test: the same Add with id 02
    ("FE 06 00 02 C1 01 02 00 00 A5 93", 0x02, bytes.fromhex("C1 01 02 00 00 A5")),
    # atol4j unit test (TransportProtocolV3Test.wrapTest): empty packet, id 01
    ("FE 00 00 01 9D", 0x01, b""),
    # atol4j unit test (unwrapWithEscapeTest): async result A6, TID 0x57, reply 55 00 00;
    # the CRC is FE and goes out escaped as FD EE
    ("FE 05 00 F0 A6 57 55 00 00 FD EE", ASYNC_ID, bytes.fromhex("A6 57 55 00 00")),
]
GOLDEN_RAW = [bytes.fromhex(hex_) for hex_, _, _ in GOLDEN]
GOLDEN_PACKETS = [Packet(packet_id, data) for _, packet_id, data in GOLDEN]


@pytest.mark.parametrize(("hex_", "packet_id", "data"), GOLDEN, ids=[g[0][:14] for g in GOLDEN])
def test_golden_packets_decode_and_re_encode(hex_: str, packet_id: int, data: bytes) -> None:
    raw = bytes.fromhex(hex_)
    assert decode_packet(raw) == Packet(packet_id, data)
    assert encode_packet(packet_id, data) == raw
    # None of them has FE/FD in DATA, so both CRC readings give the same bytes.
    assert encode_packet(packet_id, data, crc_over_escaped=True) == raw


def test_golden_meanings() -> None:
    empty = decode_packet(bytes.fromhex("FE 00 00 01 9D"))
    assert empty.is_repeat_request and not empty.is_async
    async_packet = decode_packet(bytes.fromhex("FE 05 00 F0 A6 57 55 00 00 FD EE"))
    assert async_packet.is_async and not async_packet.is_repeat_request


# -- CRC ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("hex_", "packet_id", "data"), GOLDEN, ids=[g[0][:14] for g in GOLDEN])
def test_crc_known_answers(hex_: str, packet_id: int, data: bytes) -> None:
    raw = bytes.fromhex(hex_)
    expected = unescape(raw[4 + len(data) :])[0]  # the CRC byte, unstuffed
    assert packet_crc(packet_id, data) == expected
    assert crc8(bytes((packet_id,)) + data) == expected


def test_async_crc_is_fe() -> None:
    # The sheet's note on the atol4j vector: the CRC of F0 A6 57 55 00 00 is 0xFE.
    assert crc8(bytes.fromhex("F0 A6 57 55 00 00")) == 0xFE


# The sheet gives no check value over "123456789"; compare with crcmod, an independent
# implementation of the same parameters (poly 0x31, init 0xFF, not reflected, no final XOR).
_reference_crc = crcmod.mkCrcFun(0x131, initCrc=0xFF, rev=False, xorOut=0x00)


def test_crc_check_string_matches_an_independent_implementation() -> None:
    assert crc8(b"123456789") == _reference_crc(b"123456789")


@given(st.binary(max_size=300))
def test_crc_matches_an_independent_implementation(data: bytes) -> None:
    assert crc8(data) == _reference_crc(data)


@given(st.binary(max_size=50), st.binary(max_size=50))
def test_crc_continues_over_more_bytes(head: bytes, tail: bytes) -> None:
    assert crc8(tail, crc8(head)) == crc8(head + tail)


def test_crc_of_nothing_is_the_initial_value() -> None:
    assert crc8(b"") == 0xFF


# -- stuffing -------------------------------------------------------------------------------------


def test_escape_and_unescape() -> None:
    assert escape(bytes.fromhex("01 FE 02 FD 03")) == bytes.fromhex("01 FD EE 02 FD ED 03")
    assert escape(bytes.fromhex("FD EE")) == bytes.fromhex("FD ED EE")
    assert escape(b"\x00\xff\xee\xed") == b"\x00\xff\xee\xed"
    assert unescape(bytes.fromhex("01 FD EE 02 FD ED 03")) == bytes.fromhex("01 FE 02 FD 03")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("01 FE", "unescaped FE"),
        ("01 FD", "not followed"),
        ("FD 00", "bad escape FD 00"),
        ("FD FD ED", "bad escape FD FD"),
    ],
)
def test_unescape_refuses(raw: str, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        unescape(bytes.fromhex(raw))


def test_data_with_fe_and_fd_is_stuffed() -> None:
    data = bytes.fromhex("FE FD 00 FE")
    raw = encode_packet(0x10, data)
    crc = packet_crc(0x10, data)
    assert raw[:4] == bytes.fromhex("FE 04 00 10")  # LEN counts unescaped bytes
    assert raw[4:-1] == bytes.fromhex("FD EE FD ED 00 FD EE")
    assert crc not in (0xFE, 0xFD) and raw[-1] == crc
    assert raw.count(0xFE) == 1  # only the start byte
    assert decode_packet(raw) == Packet(0x10, data)


def _data_with_crc(packet_id: int, crc: int) -> bytes:
    """A one-byte DATA whose packet CRC is ``crc`` (CRC-8 of one more byte is a bijection)."""
    for value in range(256):
        if packet_crc(packet_id, bytes((value,))) == crc:
            return bytes((value,))
    raise AssertionError("unreachable")


@pytest.mark.parametrize(("crc", "stuffed"), [(0xFE, "FD EE"), (0xFD, "FD ED")])
def test_crc_that_needs_escaping(crc: int, stuffed: str) -> None:
    data = _data_with_crc(0x21, crc)
    raw = encode_packet(0x21, data)
    assert raw.endswith(bytes.fromhex(stuffed))
    assert len(raw) == 4 + len(escape(data)) + 2
    assert decode_packet(raw) == Packet(0x21, data)
    assert _feed_bytewise(raw) == [Packet(0x21, data)]


def test_crc_over_escaped_bytes_is_selectable() -> None:
    data = bytes.fromhex("C1 03 05 00 00 FE")
    unescaped = encode_packet(0x05, data)
    escaped = encode_packet(0x05, data, crc_over_escaped=True)
    assert packet_crc(0x05, data, crc_over_escaped=True) == crc8(
        bytes((0x05,)) + bytes.fromhex("C1 03 05 00 00 FD EE")
    )
    assert unescaped != escaped and unescaped[:-1] == escaped[:-1]
    assert decode_packet(escaped, crc_over_escaped=True) == Packet(0x05, data)
    with pytest.raises(FrameError, match="CRC mismatch"):
        decode_packet(escaped)
    with pytest.raises(FrameError, match="CRC mismatch"):
        decode_packet(unescaped, crc_over_escaped=True)
    deframer = PacketDeframer(crc_over_escaped=True)
    assert deframer.feed(escaped + unescaped) == [
        Packet(0x05, data),
        BadFrame(unescaped, _crc_reason(unescaped[-1], escaped[-1])),
    ]


def _crc_reason(got: int, computed: int) -> str:
    return f"CRC mismatch: packet says {got:02X}, computed {computed:02X}"


# -- header: length and id ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "len0", "len1"),
    [
        (0, 0x00, 0x00),
        (127, 0x7F, 0x00),
        (128, 0x00, 0x01),
        (200, 0x48, 0x01),
        (MAX_DATA, 0x7F, 0x7F),
    ],
)
def test_length_is_two_7_bit_bytes_low_first(size: int, len0: int, len1: int) -> None:
    data = b"\x11" * size
    raw = encode_packet(0x00, data)
    assert raw[1:3] == bytes((len0, len1))
    assert decode_packet(raw) == Packet(0x00, data)


def test_too_much_data_is_refused() -> None:
    with pytest.raises(FrameError, match="at most 16383"):
        encode_packet(0x01, bytes(MAX_DATA + 1))


def test_allowed_ids() -> None:
    allowed = [i for i in range(256) if is_valid_id(i)]
    assert allowed == [*range(MAX_REQUEST_ID + 1), ASYNC_ID]


@pytest.mark.parametrize("packet_id", [-1, 0xE0, 0xEF, 0xF1, 0xFD, 0xFE, 0xFF, 0x100])
def test_encode_refuses_ids_outside_the_allowed_set(packet_id: int) -> None:
    with pytest.raises(FrameError, match=r"00\.\.DF .* or F0"):
        encode_packet(packet_id, b"\xc4")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "must start with FE"),
        ("C4 58", "must start with FE"),
        ("FE", "truncated packet: the 1-byte input ends inside the 4-byte header"),
        ("FE 01 00", "truncated packet: the 3-byte input ends inside"),
        ("FE 02 00 08 C3", "truncated packet: LEN says 2 data bytes, the input ends after 1"),
        ("FE 01 00 06 C4", "truncated packet: the input ends before the CRC"),
        ("FE 05 00 F0 A6 57 55 00 00 FD", "truncated packet: the input ends before the CRC"),
        ("FE 01 00 06 C4 59", "CRC mismatch: packet says 59, computed 58"),
        ("FE 01 00 06 C4 58 58", "length mismatch: LEN says 1 data bytes"),
        ("FE 00 00 06 C4 58", "CRC mismatch"),  # LEN too small: C4 is read as the CRC
        ("FE 02 00 06 C4 58", "truncated packet"),  # LEN too big
        ("FE 01 00 06 FD 00 58", "bad escape FD 00"),
        ("FE 01 00 06 C4 FD 58", "bad escape FD 58"),
        ("FE 01 00 06 FE 01 00 06 C4 58", "interrupted after 4 bytes by FE"),
        ("FE 81 00 06 C4 58", "length byte LEN0 = 81 is not a 7-bit value"),
        ("FE 01 80 06 C4 58", "length byte LEN1 = 80 is not a 7-bit value"),
        ("FE 01 00 E0 C4 58", "packet ID E0 is not allowed"),
        ("FE 01 00 FD C4 58", "packet ID FD is not allowed"),
    ],
)
def test_decode_packet_refuses_malformed(raw: str, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        decode_packet(bytes.fromhex(raw))


# -- the deframer, three ways ---------------------------------------------------------------------


def _feed_whole(data: bytes) -> list[Token]:
    return PacketDeframer().feed(data)


def _feed_bytewise(data: bytes) -> list[Token]:
    deframer = PacketDeframer()
    tokens: list[Token] = []
    for i in range(len(data)):
        tokens += deframer.feed(data[i : i + 1])
    return tokens


def _feed_in_threes(data: bytes) -> list[Token]:
    deframer = PacketDeframer()
    tokens: list[Token] = []
    for i in range(0, len(data), 3):
        tokens += deframer.feed(data[i : i + 3])
    return tokens


FEEDERS = [_feed_whole, _feed_bytewise, _feed_in_threes]
Feeder = Callable[[bytes], list[Token]]


def _merge_junk(tokens: list[Token]) -> list[Token]:
    """Piecewise feeding reports junk in pieces; merge neighbours for comparison."""
    merged: list[Token] = []
    for token in tokens:
        if isinstance(token, Junk) and merged and isinstance(merged[-1], Junk):
            merged[-1] = Junk(merged[-1].data + token.data)
        else:
            merged.append(token)
    return merged


STREAM = b"".join(GOLDEN_RAW)
# Junk without FE, so it can only ever be junk (FD and 7-bit bytes included on purpose).
JUNK = bytes.fromhex("11 FD ED 00 7F C4 58 F0")


@pytest.mark.parametrize("feed", FEEDERS)
def test_deframer_clean_stream(feed: Feeder) -> None:
    assert feed(STREAM) == GOLDEN_PACKETS


@pytest.mark.parametrize("feed", FEEDERS)
def test_deframer_junk_before_and_after(feed: Feeder) -> None:
    tokens = _merge_junk(feed(JUNK + STREAM + JUNK))
    assert tokens == [Junk(JUNK), *GOLDEN_PACKETS, Junk(JUNK)]


@pytest.mark.parametrize("feed", FEEDERS)
def test_deframer_junk_between_packets(feed: Feeder) -> None:
    tokens = _merge_junk(feed(JUNK.join(GOLDEN_RAW)))
    expected: list[Token] = []
    for packet in GOLDEN_PACKETS:
        expected += [packet, Junk(JUNK)]
    assert tokens == expected[:-1]


@pytest.mark.parametrize("feed", FEEDERS)
def test_deframer_junk_inside_a_packet_loses_only_that_packet(feed: Feeder) -> None:
    # A byte slipped into the Add packet: LEN now ends DATA one byte early and the CRC is wrong;
    # its last byte is then junk and the next packet is read intact.
    damaged = GOLDEN_RAW[1][:6] + b"\x33" + GOLDEN_RAW[1][6:]
    tokens = _merge_junk(feed(GOLDEN_RAW[0] + damaged + GOLDEN_RAW[2]))
    assert tokens == [
        GOLDEN_PACKETS[0],
        BadFrame(damaged[:-1], _crc_reason(0xA5, packet_crc(0x07, damaged[4:10]))),
        Junk(damaged[-1:]),
        GOLDEN_PACKETS[2],
    ]


@pytest.mark.parametrize("feed", FEEDERS)
def test_deframer_fe_interrupting_a_packet_starts_a_new_one(feed: Feeder) -> None:
    cut = GOLDEN_RAW[1][:7]  # lost its tail; the next packet's FE arrives instead
    tokens = feed(GOLDEN_RAW[0] + cut + GOLDEN_RAW[2] + GOLDEN_RAW[6])
    assert tokens == [
        GOLDEN_PACKETS[0],
        BadFrame(cut, "interrupted after 7 bytes by FE (the start of the next packet)"),
        GOLDEN_PACKETS[2],
        GOLDEN_PACKETS[6],
    ]


@pytest.mark.parametrize("feed", FEEDERS)
@pytest.mark.parametrize("length", [1, 2, 3, 4, 6, 10])
def test_deframer_fe_interrupts_at_every_stage(feed: Feeder, length: int) -> None:
    # Cut the escaped async packet inside the header, DATA, or between FD and EE of its CRC.
    cut = GOLDEN_RAW[7][:length]
    tokens = feed(cut + GOLDEN_RAW[7])
    assert tokens == [
        BadFrame(cut, f"interrupted after {length} bytes by FE (the start of the next packet)"),
        GOLDEN_PACKETS[7],
    ]


@pytest.mark.parametrize("feed", FEEDERS)
def test_deframer_bad_crc(feed: Feeder) -> None:
    damaged = GOLDEN_RAW[2][:-1] + b"\xfb"
    tokens = feed(damaged + GOLDEN_RAW[0])
    assert tokens == [BadFrame(damaged, _crc_reason(0xFB, 0xFC)), GOLDEN_PACKETS[0]]


@pytest.mark.parametrize("feed", FEEDERS)
def test_deframer_bad_escape(feed: Feeder) -> None:
    # FD followed by neither EE nor ED inside DATA: the packet is bad up to that byte,
    # the rest is junk until the next FE.
    raw = bytes.fromhex("FE 03 00 11 01 FD 02 03 44")
    tokens = _merge_junk(feed(raw + GOLDEN_RAW[0]))
    assert tokens == [
        BadFrame(raw[:7], "bad escape FD 02: only FD EE (for FE) and FD ED (for FD) exist"),
        Junk(raw[7:]),
        GOLDEN_PACKETS[0],
    ]


@pytest.mark.parametrize("feed", FEEDERS)
def test_deframer_bad_header(feed: Feeder) -> None:
    bad_len = bytes.fromhex("FE 01 90")
    bad_id = bytes.fromhex("FE 01 00 E5")
    tokens = _merge_junk(feed(bad_len + b"\x06\xc4" + bad_id + b"\xc4\x58" + GOLDEN_RAW[0]))
    assert tokens == [
        BadFrame(bad_len, "length byte LEN1 = 90 is not a 7-bit value"),
        Junk(b"\x06\xc4"),
        BadFrame(bad_id, f"packet ID E5 is not allowed ({_ALLOWED})"),
        Junk(b"\xc4\x58"),
        GOLDEN_PACKETS[0],
    ]


_ALLOWED = "00..DF (host requests and their replies) or F0 (asynchronous device packets)"


def test_max_data_refuses_a_long_header_at_once() -> None:
    deframer = PacketDeframer(max_data=8)
    long_packet = encode_packet(0x03, bytes(9))
    tokens = _merge_junk(deframer.feed(long_packet + GOLDEN_RAW[0]))
    assert tokens == [
        BadFrame(long_packet[:3], "LEN declares 9 data bytes, more than the 8 allowed"),
        Junk(long_packet[3:]),
        GOLDEN_PACKETS[0],
    ]
    assert PacketDeframer(max_data=9).feed(long_packet) == [Packet(0x03, bytes(9))]
    with pytest.raises(ValueError):
        PacketDeframer(max_data=MAX_DATA + 1)


def test_largest_packet_fed_bytewise() -> None:
    data = (b"\xfe\xfd" * MAX_DATA)[:MAX_DATA]  # worst case: every byte stuffed
    raw = encode_packet(MAX_REQUEST_ID, data)
    assert len(raw) in (MAX_PACKET, MAX_PACKET - 1)
    assert _feed_bytewise(raw) == [Packet(MAX_REQUEST_ID, data)]
    assert _feed_whole(raw) == [Packet(MAX_REQUEST_ID, data)]


def test_partial_packet_kept_until_complete_or_dropped() -> None:
    deframer = PacketDeframer()
    assert deframer.feed(GOLDEN_RAW[1][:5]) == []
    assert deframer.has_partial and deframer.partial == GOLDEN_RAW[1][:5]
    assert deframer.feed(GOLDEN_RAW[1][5:]) == [GOLDEN_PACKETS[1]]
    assert not deframer.has_partial and deframer.partial == b""
    deframer.feed(b"\xfe\x02\x00")
    assert deframer.drop_partial() == BadFrame(b"\xfe\x02\x00", "byte timeout after 3 bytes")
    assert deframer.drop_partial() is None
    # A dropped packet leaves no trace: an escape half-read before the drop is forgotten too.
    deframer.feed(bytes.fromhex("FE 01 00 06 FD"))
    deframer.drop_partial("link reset")
    assert deframer.feed(GOLDEN_RAW[0]) == [GOLDEN_PACKETS[0]]


def test_deframe_returns_the_incomplete_tail() -> None:
    tokens, tail = PacketDeframer().read_all(GOLDEN_RAW[0] + GOLDEN_RAW[1][:3])
    assert tokens == [GOLDEN_PACKETS[0]]
    assert tail == GOLDEN_RAW[1][:3]


# -- properties -----------------------------------------------------------------------------------

packet_ids = st.one_of(st.integers(0, MAX_REQUEST_ID), st.just(ASYNC_ID))
# DATA rich in the bytes that matter to stuffing.
payloads = st.binary(max_size=300) | st.lists(
    st.sampled_from([0xFE, 0xFD, 0xEE, 0xED, 0x00, 0x7F]), max_size=40
).map(bytes)
packets = st.builds(Packet, packet_ids, payloads)


@given(packet_ids, payloads, st.booleans())
def test_encode_decode_round_trip(packet_id: int, data: bytes, over_escaped: bool) -> None:
    raw = encode_packet(packet_id, data, crc_over_escaped=over_escaped)
    assert raw.count(0xFE) == 1 and raw[0] == 0xFE
    assert decode_packet(raw, crc_over_escaped=over_escaped) == Packet(packet_id, data)


@given(st.lists(packets, min_size=1, max_size=8), st.data())
def test_random_split_points_give_the_same_packets(sent: list[Packet], data: st.DataObject) -> None:
    stream = b"".join(encode_packet(p.id, p.data) for p in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    deframer = PacketDeframer()
    tokens: list[Token] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        tokens += deframer.feed(stream[start:cut])
        start = cut
    assert tokens == sent
    assert not deframer.has_partial


def _wire_size(token: Token, over_escaped: bool) -> int:
    if isinstance(token, Packet):
        # The encoding is canonical, so a decoded packet re-encodes to the bytes it came from.
        return len(encode_packet(token.id, token.data, crc_over_escaped=over_escaped))
    if isinstance(token, BadFrame):
        return len(token.raw)
    return len(token.data)


# Garbage: random bytes, bytes from the protocol's alphabet, and whole or cut good packets.
garbage_chunks = st.lists(
    st.one_of(
        st.binary(max_size=200),
        st.lists(
            st.sampled_from([0xFE, 0xFD, 0xEE, 0xED, 0x00, 0x01, 0x7F, 0x80, 0xF0, 0xDF]),
            max_size=30,
        ).map(bytes),
        packets.map(lambda p: encode_packet(p.id, p.data)),
        st.tuples(packets, st.integers(0, 20)).map(
            lambda pair: encode_packet(pair[0].id, pair[0].data)[: pair[1]]
        ),
    ),
    max_size=12,
)


@settings(max_examples=300)
@given(garbage_chunks, st.booleans(), st.integers(0, MAX_DATA))
def test_garbage_yields_tokens_and_accounts_for_every_byte(
    chunks: list[bytes], over_escaped: bool, max_data: int
) -> None:
    deframer = PacketDeframer(crc_over_escaped=over_escaped, max_data=max_data)
    fed = accounted = 0
    for chunk in chunks:
        tokens = deframer.feed(chunk)
        fed += len(chunk)
        assert all(isinstance(t, Packet | BadFrame | Junk) for t in tokens)
        assert all(t.data for t in tokens if isinstance(t, Junk))
        accounted += sum(_wire_size(t, over_escaped) for t in tokens)
        assert len(deframer.partial) <= 4 + 2 * max_data + 2 <= MAX_PACKET
        # Every byte is reported exactly once, or is still waiting in the partial packet.
        assert accounted + len(deframer.partial) == fed
    dropped = deframer.drop_partial()
    assert accounted + (len(dropped.raw) if dropped else 0) == fed


@given(st.lists(packets, min_size=1, max_size=5), st.binary(max_size=60))
def test_good_packets_survive_leading_garbage(sent: list[Packet], garbage: bytes) -> None:
    # Every FE starts a packet, so whatever state garbage leaves behind, the next good packet's
    # FE resynchronizes the deframer: no byte timeout is needed.
    deframer = PacketDeframer()
    deframer.feed(garbage)
    tokens = deframer.feed(b"".join(encode_packet(p.id, p.data) for p in sent))
    assert [t for t in tokens if isinstance(t, Packet)][-len(sent) :] == sent
    assert not deframer.has_partial
