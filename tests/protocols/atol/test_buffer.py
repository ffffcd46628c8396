"""ATOL v3 task buffer: the sheet's vectors, round trips of every message, malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kkt.protocols.atol.buffer import (
    KNOWN_FLAGS,
    Abort,
    Ack,
    AckAdd,
    AckAddReply,
    Add,
    AlreadyExists,
    AsyncError,
    AsyncResult,
    BufferCommand,
    BufferReply,
    CommandCode,
    Error,
    IllegalValue,
    InProgress,
    NotFound,
    Overflow,
    Pending,
    Req,
    Result,
    StatusCode,
    Stopped,
    TaskFlags,
    Waiting,
    decode_ack_add_reply,
    decode_buffer_command,
    decode_buffer_reply,
)
from kkt.protocols.atol.packet import ASYNC_ID, decode_packet, encode_packet
from kkt.protocols.errors import CodecError

# -- the sheet's vectors (atol-protocol.md §1.3 table, §1.4) --------------------------------------

# Whole packets from the sheet's §1.3 table whose DATA is a host's buffer command.
COMMAND_PACKETS: list[tuple[str, int, BufferCommand]] = [
    # Zzzzipper device dump: id 06, Abort
    ("FE 01 00 06 C4 58", 0x06, Abort()),
    # Zzzzipper device dump: id 07, Add flags=01 TID=02, password 0000, command A5
    (
        "FE 06 00 07 C1 01 02 00 00 A5 8D",
        0x07,
        Add(0x02, TaskFlags.NEED_RESULT, bytes.fromhex("00 00 A5")),
    ),
    # Zzzzipper device dump: id 08, Req TID 02 (and the repeats with id 09 and id 0A)
    ("FE 02 00 08 C3 02 FC", 0x08, Req(0x02)),
    ("FE 02 00 09 C3 02 BA", 0x09, Req(0x02)),
    ("FE 02 00 0A C3 02 70", 0x0A, Req(0x02)),
    # Zzzzipper unit test: the same Add with id 02
    (
        "FE 06 00 02 C1 01 02 00 00 A5 93",
        0x02,
        Add(0x02, TaskFlags.NEED_RESULT, bytes.fromhex("00 00 A5")),
    ),
]


@pytest.mark.parametrize(
    ("hex_", "packet_id", "command"), COMMAND_PACKETS, ids=[c[0][:14] for c in COMMAND_PACKETS]
)
def test_sheet_command_packets(hex_: str, packet_id: int, command: BufferCommand) -> None:
    raw = bytes.fromhex(hex_)
    packet = decode_packet(raw)
    assert packet.id == packet_id
    assert decode_buffer_command(packet.data) == command
    assert encode_packet(packet_id, command.encode()) == raw


def test_sheet_add_packet_id_02_fields() -> None:
    # Zzzzipper unit test (sheet §1.3): FE 06 00 02 C1 01 02 00 00 A5 93
    packet = decode_packet(bytes.fromhex("FE 06 00 02 C1 01 02 00 00 A5 93"))
    add = decode_buffer_command(packet.data)
    assert isinstance(add, Add)
    assert add.code is CommandCode.ADD
    assert add.flags == TaskFlags.NEED_RESULT
    assert add.tid == 0x02
    assert add.data == bytes.fromhex("00 00 A5")  # password 0000, command A5 (device type)


def test_sheet_async_result_packet() -> None:
    # atol4j unit test (sheet §1.3): async result A6, TID 0x57, reply 55 00 00 in packet ID F0;
    # the CRC is FE and goes out as FD EE
    raw = bytes.fromhex("FE 05 00 F0 A6 57 55 00 00 FD EE")
    packet = decode_packet(raw)
    assert packet.is_async
    reply = decode_buffer_reply(packet.data)
    assert reply == AsyncResult(0x57, bytes.fromhex("55 00 00"))
    assert reply.code is StatusCode.ASYNC_RESULT
    assert encode_packet(ASYNC_ID, reply.encode()) == raw


def test_sheet_empty_packet_is_no_buffer_message() -> None:
    # atol4j unit test (sheet §1.3): FE 00 00 01 9D, the empty "repeat" packet
    packet = decode_packet(bytes.fromhex("FE 00 00 01 9D"))
    with pytest.raises(CodecError, match="repeat"):
        decode_buffer_command(packet.data)
    with pytest.raises(CodecError, match="repeat"):
        decode_buffer_reply(packet.data)


# The DATA layouts spelled out in the sheet's §1.4 tables.
SHEET_COMMANDS: list[tuple[str, BufferCommand]] = [
    # §1.4 Add: C1 flags TID <command: pwd(2) code params...>; flags 03 = NeedResult|IgnoreError
    ("C1 03 10 00 00 3F", Add(0x10, TaskFlags.NEED_RESULT | TaskFlags.IGNORE_ERROR, b"\0\0\x3f")),
    # §1.4 Ack: C2 TID
    ("C2 10", Ack(0x10)),
    # §1.4 Req: C3 TID
    ("C3 10", Req(0x10)),
    # §1.4 Abort: C4
    ("C4", Abort()),
    # §1.4 AckAdd (MultiMag): C5 ackTID flags addTID <command...>
    ("C5 10 01 11 00 00 45", AckAdd(0x10, TaskFlags.NEED_RESULT, 0x11, b"\0\0\x45")),
]


@pytest.mark.parametrize(("hex_", "command"), SHEET_COMMANDS, ids=[c[0] for c in SHEET_COMMANDS])
def test_sheet_command_layouts(hex_: str, command: BufferCommand) -> None:
    data = bytes.fromhex(hex_)
    assert decode_buffer_command(data) == command
    assert command.encode() == data


SHEET_REPLIES: list[tuple[str, BufferReply]] = [
    # §1.4 status table: A1 Pending, A2 InProgress
    ("A1", Pending()),
    ("A2", InProgress()),
    # §1.4 Abort reply (SAMSON): A2 TID, a task is executing and cannot be aborted
    ("A2 07", InProgress(0x07)),
    # §1.4 Abort reply (SAMSON): A3 done; and A3 Result with the command's reply following
    ("A3", Result()),
    ("A3 55 00 00", Result(bytes.fromhex("55 00 00"))),
    # §1.4: A4 Error, data = the command's error reply
    ("A4 55 9C 00", Error(bytes.fromhex("55 9C 00"))),
    # §1.4: A5 Stopped, reply A5 TID
    ("A5 07", Stopped(0x07)),
    # §1.4: A6 AsyncResult A6 TID data; A7 AsyncError A7 TID data (packet ID F0)
    ("A6 57 55 00 00", AsyncResult(0x57, bytes.fromhex("55 00 00"))),
    ("A7 57 55 9C 00", AsyncError(0x57, bytes.fromhex("55 9C 00"))),
    # §1.4: A8 Waiting
    ("A8", Waiting()),
    # §1.4 buffer errors B1..B4
    ("B1", Overflow()),
    ("B2", AlreadyExists()),
    ("B3", NotFound()),
    ("B4", IllegalValue()),
]


@pytest.mark.parametrize(("hex_", "reply"), SHEET_REPLIES, ids=[r[0] for r in SHEET_REPLIES])
def test_sheet_reply_layouts(hex_: str, reply: BufferReply) -> None:
    data = bytes.fromhex(hex_)
    assert decode_buffer_reply(data) == reply
    assert reply.encode() == data
    assert reply.code == data[0]


def test_sheet_ack_add_reply() -> None:
    # §1.4 AckAdd reply (MultiMag): ackStatus addStatus [data]
    data = bytes.fromhex("A3 A3 55 00 00")
    reply = decode_ack_add_reply(data)
    assert reply == AckAddReply(StatusCode.RESULT, Result(bytes.fromhex("55 00 00")))
    assert reply.encode() == data
    assert decode_ack_add_reply(bytes.fromhex("B3 A1")) == AckAddReply(
        StatusCode.NOT_FOUND, Pending()
    )


def test_codes_match_the_sheet() -> None:
    assert [int(c) for c in CommandCode] == [0xC1, 0xC2, 0xC3, 0xC4, 0xC5]
    assert [int(c) for c in StatusCode] == [*range(0xA1, 0xA9), *range(0xB1, 0xB5)]
    assert [c for c in StatusCode if c.is_buffer_error] == [
        StatusCode.OVERFLOW,
        StatusCode.ALREADY_EXISTS,
        StatusCode.NOT_FOUND,
        StatusCode.ILLEGAL_VALUE,
    ]
    # §1.4 flags: bit0 NeedResult, bit1 IgnoreError, bit2 WaitAsyncData
    assert TaskFlags.NEED_RESULT == 0x01
    assert TaskFlags.IGNORE_ERROR == 0x02
    assert TaskFlags.WAIT_ASYNC_DATA == 0x04
    assert KNOWN_FLAGS == 0x07


# -- round trips ----------------------------------------------------------------------------------

tids = st.integers(0, 0xFF)
flags = st.sampled_from([TaskFlags(value) for value in range(8)])
commands = st.binary(min_size=3, max_size=64)
payloads = st.binary(max_size=64)

buffer_commands: st.SearchStrategy[BufferCommand] = st.one_of(
    st.builds(Add, tids, flags, commands),
    st.builds(Ack, tids),
    st.builds(Req, tids),
    st.just(Abort()),
    st.builds(AckAdd, tids, flags, tids, commands),
)
buffer_replies: st.SearchStrategy[BufferReply] = st.one_of(
    st.just(Pending()),
    st.builds(InProgress, st.none() | tids),
    st.builds(Result, payloads),
    st.builds(Error, payloads),
    st.builds(Stopped, tids),
    st.builds(AsyncResult, tids, payloads),
    st.builds(AsyncError, tids, payloads),
    st.just(Waiting()),
    st.sampled_from([Overflow(), AlreadyExists(), NotFound(), IllegalValue()]),
)


@given(buffer_commands, st.integers(0, 0xDF))
def test_command_round_trip_through_a_packet(command: BufferCommand, packet_id: int) -> None:
    data = command.encode()
    assert data[0] == command.code
    assert decode_buffer_command(data) == command
    packet = decode_packet(encode_packet(packet_id, data))
    assert decode_buffer_command(packet.data) == command


@given(buffer_replies)
def test_reply_round_trip_through_a_packet(reply: BufferReply) -> None:
    data = reply.encode()
    assert data[0] == reply.code
    assert decode_buffer_reply(data) == reply
    packet_id = ASYNC_ID if isinstance(reply, AsyncResult | AsyncError) else 0x01
    assert decode_buffer_reply(decode_packet(encode_packet(packet_id, data)).data) == reply


@given(st.sampled_from(list(StatusCode)), buffer_replies)
def test_ack_add_reply_round_trip(ack: StatusCode, add: BufferReply) -> None:
    reply = AckAddReply(ack, add)
    assert decode_ack_add_reply(reply.encode()) == reply


@given(tids, flags, commands)
def test_add_fields_land_where_the_sheet_says(tid: int, flag: TaskFlags, command: bytes) -> None:
    assert Add(tid, flag, command).encode() == bytes((0xC1, flag, tid)) + command
    assert AckAdd(tid, flag, tid ^ 1, command).encode() == bytes((0xC5, tid, flag, tid ^ 1)) + (
        command
    )


@given(st.binary(max_size=16))
def test_decoders_raise_only_codec_error(data: bytes) -> None:
    for decoder in (decode_buffer_command, decode_buffer_reply, decode_ack_add_reply):
        try:
            decoder(data)
        except CodecError:
            pass


# -- malformed input ------------------------------------------------------------------------------

BAD_COMMANDS: list[tuple[str, str]] = [
    ("", "empty DATA"),
    ("C0 01", "unknown buffer command C0"),
    ("A3", "unknown buffer command A3"),
    ("C1", "cut short"),
    ("C1 01", "cut short"),
    ("C1 01 02", "at least the password"),
    ("C1 01 02 00 00", "at least the password"),
    ("C1 08 02 00 00 A5", "undefined bits 0x08"),
    ("C1 81 02 00 00 A5", "undefined bits 0x80"),
    ("C2", "Ack .* is 2 bytes, got 1"),
    ("C2 01 02", "Ack .* is 2 bytes, got 3"),
    ("C3", "Req .* is 2 bytes, got 1"),
    ("C3 01 02", "Req .* is 2 bytes, got 3"),
    ("C4 00", "Abort .* is 1 byte, got 2"),
    ("C5 01 01", "cut short"),
    ("C5 01 01 02", "at least the password"),
    ("C5 01 10 02 00 00 A5", "undefined bits 0x10"),
]


@pytest.mark.parametrize(
    ("hex_", "message"), BAD_COMMANDS, ids=[b[0] or "empty" for b in BAD_COMMANDS]
)
def test_malformed_commands(hex_: str, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode_buffer_command(bytes.fromhex(hex_))


BAD_REPLIES: list[tuple[str, str]] = [
    ("", "empty DATA"),
    ("A0", "unknown buffer status A0"),
    ("A9", "unknown buffer status A9"),
    ("B0", "unknown buffer status B0"),
    ("B5", "unknown buffer status B5"),
    ("C1", "unknown buffer status C1"),
    ("A1 00", "PENDING .* is 1 byte, got 2"),
    ("A8 00", "WAITING .* is 1 byte, got 2"),
    ("B1 00", "OVERFLOW .* is 1 byte, got 2"),
    ("B2 00", "ALREADY_EXISTS .* is 1 byte, got 2"),
    ("B3 02", "NOT_FOUND .* is 1 byte, got 2"),
    ("B4 00 00", "ILLEGAL_VALUE .* is 1 byte, got 3"),
    ("A2 01 02", "A2 or A2 TID"),
    ("A5", "STOPPED .* is 2 bytes, got 1"),
    ("A5 01 02", "STOPPED .* is 2 bytes, got 3"),
    ("A6", "ASYNC_RESULT .* lacks its TID"),
    ("A7", "ASYNC_ERROR .* lacks its TID"),
]


@pytest.mark.parametrize(
    ("hex_", "message"), BAD_REPLIES, ids=[b[0] or "empty" for b in BAD_REPLIES]
)
def test_malformed_replies(hex_: str, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode_buffer_reply(bytes.fromhex(hex_))


@pytest.mark.parametrize(
    ("hex_", "message"),
    [
        ("", "two status bytes"),
        ("A3", "two status bytes"),
        ("C0 A1", "unknown buffer status C0"),
        ("A3 C0", "unknown buffer status C0"),
        ("A3 A1 00", "PENDING .* is 1 byte"),
    ],
)
def test_malformed_ack_add_replies(hex_: str, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode_ack_add_reply(bytes.fromhex(hex_))


def test_constructors_refuse_values_that_do_not_fit() -> None:
    with pytest.raises(CodecError, match="TID must be one byte"):
        Ack(256)
    with pytest.raises(CodecError, match="TID must be one byte"):
        Req(-1)
    with pytest.raises(CodecError, match="TID must be one byte"):
        Stopped(0x100)
    with pytest.raises(CodecError, match="TID must be one byte"):
        InProgress(0x100)
    with pytest.raises(CodecError, match="TID must be one byte"):
        AsyncResult(0x100, b"")
    with pytest.raises(CodecError, match="acknowledged TID"):
        AckAdd(0x100, TaskFlags.NONE, 0, b"\0\0\x3f")
    with pytest.raises(CodecError, match="added TID"):
        AckAdd(0, TaskFlags.NONE, 0x100, b"\0\0\x3f")
    with pytest.raises(CodecError, match="undefined bits 0x08"):
        Add(0, TaskFlags(0x08), b"\0\0\x3f")
    with pytest.raises(CodecError, match="at least the password"):
        Add(0, TaskFlags.NEED_RESULT, b"\0\0")
    with pytest.raises(CodecError, match="unknown acknowledgement status 0xc0"):
        AckAddReply(0xC0, Pending())  # type: ignore[arg-type]
