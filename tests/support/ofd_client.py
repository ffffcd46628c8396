"""A small register-side client for the emulated OFD, built from `kkt.protocols.ofd`: send one
FD's message over real loopback TCP and read the answer."""

from __future__ import annotations

import datetime as dt
import socket

from kkt.protocols.ffd import encode_tlv
from kkt.protocols.ofd import (
    Session,
    SessionReader,
    document_message,
    encode_session,
    fn_message_key,
)

FN = "9999078900005488"
WHEN = dt.datetime(2026, 12, 2, 10, 0)


def document_tlv(fd: int, fn: str = FN, total: int = 19_900) -> bytes:
    """A small receipt (document 3) as the FN forms its STLV."""
    return encode_tlv([(3, [(1041, fn), (1040, fd), (1012, WHEN), (1020, total)])])


def fd_session(fd: int, fn: str = FN, *, flags: int = 0x14, total: int = 19_900) -> bytes:
    """The whole session a register sends for FD ``fd``: header + the FN's message."""
    message = document_message(fn, fd, 3, document_tlv(fd, fn, total), fn_message_key(fn))
    return encode_session(fn, message, flags=flags)


def exchange(port: int, data: bytes, *, timeout: float = 10) -> Session | None:
    """Send ``data`` on a new connection; the first session answered, or None when the OFD
    closed the connection without answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(data)
        reader = SessionReader(strict=True)
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                return None
            sessions = reader.feed(chunk)
            if sessions:
                return sessions[0]


def exchange_many(port: int, sessions: list[bytes], *, timeout: float = 10) -> list[Session]:
    """Send several sessions on one connection, each after the previous one's answer."""
    answers: list[Session] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        reader = SessionReader(strict=True)
        for data in sessions:
            connection.sendall(data)
            got: list[Session] = []
            while not got:
                chunk = connection.recv(65536)
                if not chunk:
                    return answers
                got = reader.feed(chunk)
            answers += got
    return answers
