"""``kkt bench ofd``: how many documents a second the emulated OFD takes over loopback.

``kkt ofd serve`` runs as its own process (no interpreter lock shared with the client here); the
client sends one FN document message per session, each a new FD, and reads its operator receipt:

* ``ofd.docs_per_s`` -- a new TCP connection per document, as a register sends them (Shtrikh's
  JavaPOS driver opens a socket per document);
* ``ofd.docs_per_s.one_connection`` -- all of a round's documents on one connection.

Every document is checked (CRC, MAC, TLV) and committed with fsync before its receipt goes out,
so the disk's fsync rate bounds both figures.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from kkt.protocols.ffd import encode_tlv
from kkt.protocols.ofd import (
    SessionReader,
    document_message,
    encode_session,
    fn_message_key,
    parse_operator_ack,
)

from . import Bench, Figure, case, median_rate

FN = "9999078900005488"
START_SECONDS = 60.0


@contextlib.contextmanager
def served_ofd(state: Path) -> Iterator[int]:
    """``kkt ofd serve`` on a free port in a child process: its port; stopped with SIGTERM."""
    command = [sys.executable, "-m", "kkt.tools", "ofd", "serve", "--tcp", "127.0.0.1:0"]
    with subprocess.Popen(
        [*command, "--state", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        bufsize=0,
    ) as process:
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], START_SECONDS)
            line = process.stdout.readline().decode() if ready else ""
            if not line.startswith("listening tcp "):
                raise RuntimeError(f"kkt ofd serve did not start: {line!r}")
            yield int(line.rsplit(":", 1)[1])
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)


class _Client:
    """Sends FD after FD (numbers never repeat within a run) and checks each receipt."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.numbers = itertools.count(1)
        self.when = dt.datetime(2026, 12, 1, 9, 0)

    def session(self) -> tuple[int, bytes]:
        fd = next(self.numbers)
        tlv = encode_tlv([(3, [(1041, FN), (1040, fd), (1012, self.when), (1020, 19_900)])])
        return fd, encode_session(FN, document_message(FN, fd, 3, tlv, fn_message_key(FN)))

    def send_on(self, connection: socket.socket, reader: SessionReader) -> None:
        fd, data = self.session()
        connection.sendall(data)
        while not (answers := reader.feed(connection.recv(65536) or _closed())):
            pass
        ack = parse_operator_ack(answers[0].container)
        if (ack.fd_number, ack.code) != (fd, 0):
            raise RuntimeError(f"FD {fd} answered as FD {ack.fd_number} with 1022={ack.code}")

    def send_one(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as connection:
            self.send_on(connection, SessionReader(strict=True))


def _closed() -> bytes:
    raise RuntimeError("the OFD closed the connection without an answer")


@case("ofd")
def ofd_case(bench: Bench) -> Iterator[Figure]:
    count = bench.size(100, 1000)
    with served_ofd(bench.work / "ofd-state") as port:
        client = _Client(port)
        client.send_one()  # the first one opens the store's files
        per_connection = median_rate(client.send_one, count, bench.rounds())
        yield Figure("ofd.docs_per_s", per_connection, "1/s", "a connection per document")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            reader = SessionReader(strict=True)
            one = median_rate(lambda: client.send_on(connection, reader), count, bench.rounds())
        yield Figure("ofd.docs_per_s.one_connection", one, "1/s", "one connection")
