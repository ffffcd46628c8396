"""An ATOL protocol-3.1 client written from the protocol's description, not from our host link.

It stands in for the clients of issue 15 (atol4j, MultiMag's PHP driver, Zzzzipper's task
layer, Cyberplat's TerminalClient): its own packet codec, framing, CRC and task flow, a few
dozen lines, so that a bug our host link shares with our device link cannot hide here.  The
layout it follows is the fact sheet's (/work/shared/reference/atol-protocol.md §1.3-1.4):

* packet ``FE LEN0 LEN1 ID DATA CRC``: ``LEN`` the unescaped DATA length, 7 bits per byte; in
  DATA and CRC, ``FE`` -> ``FD EE`` and ``FD`` -> ``FD ED``; CRC-8 (poly 31h, init FFh, MSB
  first) over ID and the unescaped DATA; packet IDs 00..DF, F0 for the device's async packets;
* buffer commands ``C1 flags TID command`` (Add), ``C2 TID`` (Ack), ``C3 TID`` (Req), ``C4``
  (Abort); statuses A1 pending, A2 in progress, A3/A4 result/error, A5 stopped, A6/A7 in packet
  F0 (``A6 TID reply``), B1..B4 refusals.

`Habits` says how a client of one kind behaves: where it takes results from (the F0 packet and
never the Add's reply, or ``Req``), whether it sends Ack, whether it reconnects and sends Abort
before each document.  A command's outcome is the command's reply (``55 00 …`` is success) or
`CommandFailed`; a client never sends a command twice.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

STX, ESC, T_STX, T_ESC = 0xFE, 0xFD, 0xEE, 0xED
ASYNC_ID = 0xF0
NEED_RESULT, IGNORE_ERROR = 0x01, 0x02
ADD, ACK, REQ, ABORT = 0xC1, 0xC2, 0xC3, 0xC4
PENDING, IN_PROGRESS, RESULT, ERROR, STOPPED = 0xA1, 0xA2, 0xA3, 0xA4, 0xA5
ASYNC_RESULT, ASYNC_ERROR, WAITING = 0xA6, 0xA7, 0xA8


def crc8(data: bytes) -> int:
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _stuff(data: bytes) -> bytes:
    return data.replace(bytes((ESC,)), bytes((ESC, T_ESC))).replace(
        bytes((STX,)), bytes((ESC, T_STX))
    )


def pack(packet_id: int, data: bytes) -> bytes:
    header = bytes((STX, len(data) & 0x7F, len(data) >> 7, packet_id))
    return header + _stuff(data + bytes((crc8(bytes((packet_id,)) + data),)))


def unpack(stream: bytearray) -> tuple[int, bytes] | None:
    """Take one whole packet off the front of ``stream`` (ID, DATA); None until one is whole."""
    while stream and stream[0] != STX:
        del stream[0]  # junk before a packet
    if len(stream) < 4:
        return None
    size, packet_id = stream[1] | stream[2] << 7, stream[3]
    body, i = bytearray(), 4
    while len(body) < size + 1:  # DATA and CRC, unescaped
        if i >= len(stream):
            return None
        byte = stream[i]
        if byte == ESC:
            if i + 1 >= len(stream):
                return None
            byte = STX if stream[i + 1] == T_STX else ESC
            i += 1
        body.append(byte)
        i += 1
    del stream[:i]
    data, crc = bytes(body[:-1]), body[-1]
    if crc != crc8(bytes((packet_id,)) + data):
        raise ConnectionError(f"bad CRC in packet {packet_id:02X}")
    return packet_id, data


class CommandFailed(Exception):
    """The register refused the command, or the client saw no outcome; ``reply`` if any."""

    def __init__(self, message: str, reply: bytes = b"") -> None:
        super().__init__(message)
        self.reply = reply


@dataclass(frozen=True)
class Habits:
    """How one kind of client behaves."""

    results_from: str = "f0"  # "f0": wait for packet F0 (never read the Add's reply); or "req"
    ack: bool = True  # send Ack after taking a result
    abort_per_document: bool = False  # reconnect, then Abort, before each document
    flags: int = NEED_RESULT  # atol4j, MultiMag, TerminalClient; Zzzzipper adds IGNORE_ERROR


@dataclass
class AtolV3Client:
    host: str
    port: int
    habits: Habits = field(default_factory=Habits)
    timeout: float = 10.0  # the most one command waits for its result
    sock: socket.socket | None = None
    packet_id: int = 0
    tid: int = 0
    stream: bytearray = field(default_factory=bytearray)
    async_results: dict[int, tuple[int, bytes]] = field(default_factory=dict)

    def connect(self) -> None:
        self.close()
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.stream.clear()
        self.async_results.clear()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def start_document(self) -> None:
        """What this client does before each document (MultiMag and Zzzzipper: connect, Abort)."""
        if self.sock is None or self.habits.abort_per_document:
            self.connect()
        if self.habits.abort_per_document:
            status = self._request(bytes((ABORT,)))
            if status[0] not in (RESULT, IN_PROGRESS):
                raise CommandFailed(f"Abort answered {status.hex(' ')}")

    def run(self, command: bytes) -> bytes:
        """One command (``pwd(2) code params``) as a new task; its reply, or `CommandFailed`."""
        self.tid = self.tid % 0xDF + 1  # 01..DF
        tid = self.tid
        status = self._request(bytes((ADD, self.habits.flags, tid)) + command)
        if status[0] not in (PENDING, IN_PROGRESS, WAITING, RESULT, ERROR):
            raise CommandFailed(f"Add refused: {status.hex(' ')}")  # B1..B4, A5: not taken
        if self.habits.results_from == "f0":
            kind, reply = self.await_f0(tid)
        else:
            kind, reply = self._await_req(tid)
        if self.habits.ack:
            self._request(bytes((ACK, tid)))
        # Success: ``55 00 …`` (3Fh answers ``44 …``); anything else is the command's refusal.
        if kind != RESULT or not (reply[:2] == b"\x55\x00" or reply[:1] == b"\x44"):
            raise CommandFailed(f"task {tid:02X} failed: {reply.hex(' ')}", reply)
        return reply

    def add(self, command: bytes) -> tuple[int, bytes]:
        """Only the Add of a new task: (its TID, the status the register answered)."""
        self.tid = self.tid % 0xDF + 1
        return self.tid, self._request(bytes((ADD, self.habits.flags, self.tid)) + command)

    def ask(self, tid: int) -> bytes:
        """``Req``: the task's status byte and the result kept with it."""
        return self._request(bytes((REQ, tid)))

    def acknowledge(self, tid: int) -> bytes:
        return self._request(bytes((ACK, tid)))

    def abort(self) -> bytes:
        return self._request(bytes((ABORT,)))

    # -- the wire -----------------------------------------------------------------------------

    def _request(self, data: bytes) -> bytes:
        """Send one packet; the reply with its ID (F0 packets met on the way are kept)."""
        assert self.sock is not None
        self.packet_id = (self.packet_id + 1) % 0xE0
        sent = self.packet_id
        self.sock.sendall(pack(sent, data))
        while True:
            packet_id, reply = self._read()
            if packet_id == sent:
                if not reply:
                    raise CommandFailed(f"the register asked for packet {sent:02X} again")
                return reply

    def _read(self) -> tuple[int, bytes]:
        """The next packet (an F0 result is also kept in `async_results`)."""
        assert self.sock is not None
        while True:
            packet = unpack(self.stream)
            if packet is not None:
                packet_id, data = packet
                if packet_id == ASYNC_ID and data[:1] in (b"\xa6", b"\xa7"):
                    kind = RESULT if data[0] == ASYNC_RESULT else ERROR
                    self.async_results[data[1]] = (kind, data[2:])
                return packet_id, data
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the register closed the connection")
            self.stream += chunk

    def await_f0(self, tid: int) -> tuple[int, bytes]:
        """MultiMag's ``dispatchData``: read until F0 brings this task's result."""
        assert self.sock is not None
        deadline = time.monotonic() + self.timeout
        while tid not in self.async_results:
            if time.monotonic() > deadline:
                raise CommandFailed(f"no F0 packet for task {tid:02X} (no data for this command)")
            self._read()  # a reply to no request of ours: ignored, as atol4j does
        return self.async_results.pop(tid)

    def _await_req(self, tid: int) -> tuple[int, bytes]:
        """Zzzzipper's and the spec's dump: ask with Req until the task has ended."""
        deadline = time.monotonic() + self.timeout
        while True:
            status = self._request(bytes((REQ, tid)))
            if status[0] in (RESULT, ERROR):
                return status[0], status[1:]
            if status[0] not in (PENDING, IN_PROGRESS, WAITING) or time.monotonic() > deadline:
                raise CommandFailed(f"Req {tid:02X} answered {status.hex(' ')}")
            time.sleep(0.01)
