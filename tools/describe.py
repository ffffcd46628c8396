"""Human-readable descriptions of captured traces, Shtrih-M frames and ATOL v3 packets: used by
``kkt decode``.

An ATOL capture interleaves the host's packets (Add, Ack, Req, Abort, AckAdd) with the device's
replies (task states A1..A8, buffer errors B1..B4, asynchronous results in packet F0).  A reply
does not name its command, so `AtolReader` remembers which task each packet asked about and which
command each task carries, and decodes results as that command's answer.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any

from kkt.protocols.atol import commands
from kkt.protocols.atol.buffer import (
    Abort,
    Ack,
    AckAdd,
    Add,
    AsyncError,
    AsyncResult,
    BufferReply,
    Error,
    Result,
    StatusCode,
    decode_ack_add_reply,
    decode_buffer_command,
    decode_buffer_reply,
)
from kkt.protocols.atol.packet import Packet, PacketDeframer
from kkt.protocols.atol.packet import Token as AtolToken
from kkt.protocols.errors import CodecError, DeviceError
from kkt.protocols.line import BadFrame, Junk
from kkt.protocols.shtrih.frame import Control, ControlByte, Deframer, Token, command_code
from kkt.protocols.shtrih.message import decode_request, request_types, split_answer

# -- Shtrih-M -----------------------------------------------------------------------------------

_CONTROL_NAMES = {
    ControlByte.ENQ: "ENQ",
    ControlByte.ACK: "ACK",
    ControlByte.NAK: "NAK",
    ControlByte.FILLER: "FF (filler after ACK)",
}


def describe_token(token: Token, *, prefer: str = "auto") -> str:
    """One line for a token.  ``prefer``: "request", "answer" or "auto" (request if it parses)."""
    if isinstance(token, Control):
        return _CONTROL_NAMES[token.byte]
    if isinstance(token, Junk):
        return f"junk {token.data.hex(' ')}"
    if isinstance(token, BadFrame):
        return f"bad frame ({token.reason}): {token.raw.hex(' ')}"
    return describe_payload(token.payload, prefer=prefer)


def describe_payload(payload: bytes, *, prefer: str = "auto") -> str:
    if prefer in ("auto", "request"):
        try:
            return "request " + _fields(decode_request(payload))
        except CodecError as exc:
            if prefer == "request":
                return f"undecodable request {payload.hex(' ')}: {exc}"
    return "answer " + describe_answer(payload)


def describe_answer(payload: bytes) -> str:
    try:
        code = command_code(payload)
    except CodecError as exc:
        return f"{payload.hex(' ')}: {exc}"
    cls = request_types().get(code)
    if cls is None:
        return f"to unknown command {payload[:2].hex(' ')}: {payload.hex(' ')}"
    return _answer(cls.__name__, lambda: cls.ANSWER.decode_data(split_answer(code, payload)))


def _answer(name: str, decode: Callable[[], Any]) -> str:
    """``Request -> Answer(...)`` (either vendor), or why the answer does not read."""
    try:
        return _fields(decode(), name=f"{name} -> ")
    except DeviceError as exc:
        return f"{name} -> refused: {exc}"
    except CodecError as exc:
        return f"{name} -> malformed: {exc}"


def _fields(message: Any, *, name: str = "") -> str:
    parts = []
    for field in dataclasses.fields(message):
        value = getattr(message, field.name)
        if field.name == "password":
            continue
        if isinstance(value, bytes):
            value = value.hex(" ") or "-"
        elif isinstance(value, enum.Enum):
            value = value.name or repr(value)
        parts.append(
            f"{field.name}={value!s}" if not isinstance(value, str) else f"{field.name}={value!r}"
        )
    return f"{name}{type(message).__name__}({', '.join(parts)})"


# -- ATOL v3 ------------------------------------------------------------------------------------

HOST_CODES = range(0xC1, 0xC6)


class AtolReader:
    """Describes a stream of v3 packets, one line per token."""

    def __init__(self, *, crc_over_escaped: bool = False) -> None:
        self.deframer = PacketDeframer(crc_over_escaped=crc_over_escaped)
        self._asked: dict[int, int] = {}  # packet id -> the TID it asked about
        self._commands: dict[int, bytes] = {}  # TID -> the command block it carries
        self._acks: set[int] = set()  # packet ids of Acks: their reply is the bare task state
        self._ack_adds: dict[int, int] = {}  # packet ids of AckAdds -> the TID they acknowledge

    def feed(self, data: bytes) -> list[str]:
        return [self.describe(token) for token in self.deframer.feed(data)]

    def describe(self, token: AtolToken) -> str:
        if isinstance(token, Junk):
            return f"junk {token.data.hex(' ')}"
        if isinstance(token, BadFrame):
            return f"bad packet ({token.reason}): {token.raw.hex(' ')}"
        assert isinstance(token, Packet)
        head = f"packet {token.id:02X}"
        if not token.data:
            return f"{head}: empty -- repeat packet {token.id:02X}"
        host = token.data[0] in HOST_CODES
        try:
            line = self._host(token) if host else self._device(token)
        except CodecError as exc:  # the packet's own buffer command or reply does not decode
            line = (
                f"undecodable {'buffer command' if host else 'reply'} {token.data.hex(' ')}: {exc}"
            )
        return f"{head} {'host' if host else 'device'}: {line}"

    def _host(self, packet: Packet) -> str:
        message = decode_buffer_command(packet.data)
        self._acks.discard(packet.id)
        self._ack_adds.pop(packet.id, None)
        if isinstance(message, AckAdd):
            self._ack_adds[packet.id] = message.ack_tid
        if isinstance(message, Add | AckAdd):
            tid = message.tid
            self._commands[tid] = message.data
            self._asked[packet.id] = tid
            flags = f"flags={int(message.flags):#04x}"
            ack = f"Ack TID {message.ack_tid:02X} + " if isinstance(message, AckAdd) else ""
            return f"{ack}Add TID {tid:02X} {flags}: {describe_command(message.data)}"
        if isinstance(message, Abort):
            return "Abort (clear the task buffer)"
        self._asked[packet.id] = message.tid
        if isinstance(message, Ack):
            self._acks.add(packet.id)
        verb = "Ack (result received, free the slot)" if isinstance(message, Ack) else "Req"
        return f"{verb} TID {message.tid:02X}"

    def _device(self, packet: Packet) -> str:
        acked = self._ack_adds.get(packet.id)
        if acked is not None:
            # ``ackStatus addStatus [data]``: the Ack's state first, then the Add's reply.
            both = decode_ack_add_reply(packet.data)
            state = f"Ack TID {acked:02X}: {both.ack.name.lower()}"
            if both.ack in (StatusCode.RESULT, StatusCode.ERROR):
                state += " (acknowledged: its slot is free)"
            return f"{state}; Add {self._reply(packet, both.add)}"
        return self._reply(packet, decode_buffer_reply(packet.data))

    def _reply(self, packet: Packet, reply: BufferReply) -> str:
        tid = (
            reply.tid if isinstance(reply, AsyncResult | AsyncError) else self._asked.get(packet.id)
        )
        name = type(reply).__name__
        if not isinstance(reply, Result | Error | AsyncResult | AsyncError):
            return name + (f" (TID {tid:02X})" if tid is not None else "")
        command = self._commands.get(tid) if tid is not None else None
        about = f" TID {tid:02X}" if tid is not None else ""
        if packet.id in self._acks and not reply.data:
            return f"{name}{about}: the task's state, acknowledged (its slot is free)"
        if command is None:
            return f"{name}{about}: {reply.data.hex(' ')}"
        return f"{name}{about}: {describe_reply(command, reply.data)}"


def describe_command(block: bytes) -> str:
    try:
        return _fields(commands.decode_request(block))
    except CodecError as exc:
        return f"undecodable command {block.hex(' ')}: {exc}"


def describe_reply(command: bytes, reply: bytes) -> str:
    try:
        request = commands.decode_request(command)
    except CodecError:
        return reply.hex(" ")
    return _answer(type(request).__name__, lambda: request.decode_answer(reply))


# -- both directions of one live link -------------------------------------------------------------


class LinkDescriber:
    """Describes one link's two byte streams as they come, one line per frame or packet:
    ``feed("in", data)`` for what the host sent, ``feed("out", data)`` for what the register
    answered (``protocol``: "shtrih" or "atol").  Used by ``kkt emulator serve -v``."""

    def __init__(self, protocol: str, *, crc_over_escaped: bool = False) -> None:
        self.protocol = protocol
        self._atol = AtolReader(crc_over_escaped=crc_over_escaped) if protocol == "atol" else None
        self._shtrih = {"in": Deframer(), "out": Deframer()}
        self._packets = {
            "in": PacketDeframer(crc_over_escaped=crc_over_escaped),
            "out": PacketDeframer(crc_over_escaped=crc_over_escaped),
        }

    def feed(self, direction: str, data: bytes) -> list[str]:
        if self._atol is not None:
            # One reader for both streams: a reply is decoded as the answer to its task's command.
            return [self._atol.describe(token) for token in self._packets[direction].feed(data)]
        prefer = "request" if direction == "in" else "answer"
        return [
            describe_token(token, prefer=prefer) for token in self._shtrih[direction].feed(data)
        ]
