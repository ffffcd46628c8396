"""``kkt bench ofd``: the emulated OFD's pace over loopback.

The emulated OFD (`kkt.emulator.ofd.OfdThread`, its store on this disk) is sent one document per
session, each on a connection of its own -- as a networked register sends (fact sheet
``ofd-cloud-marking.md`` §1.2) -- and every session waits for its operator receipt.  The documents
are an emulated FN's messages (`document_message`, a receipt's STLV with 1040/1041 and its MAC),
so the OFD checks, stores and acknowledges each one for real.

Figure: ``ofd.docs_per_s`` -- sessions answered per second (median of rounds; a new FD number for
every session, so each is stored, with its fsync).
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Iterator
from itertools import count

from kkt.emulator.ofd import OfdThread
from kkt.protocols.ffd import TlvList, encode_tlv
from kkt.protocols.ofd import (
    HEADER_SIZE,
    decode_session,
    document_message,
    encode_session,
    fn_message_key,
    parse_operator_ack,
)

from . import Bench, Figure, case

SESSIONS_QUICK = 100
SESSIONS_FULL = 1000
FN_SERIAL = "9999078900005488"
RECEIPT = 3  # the FFD document type


def session_for(fd_number: int) -> bytes:
    """One FD of the emulated FN ``FN_SERIAL`` as a register sends it."""
    body: TlvList = [(1040, fd_number), (1041, FN_SERIAL), (1020, 10_000)]
    document = encode_tlv([(RECEIPT, body)])
    message = document_message(FN_SERIAL, fd_number, RECEIPT, document, fn_message_key(FN_SERIAL))
    return encode_session(FN_SERIAL, message)


def exchange(port: int, session: bytes) -> bytes:
    """One session on a new connection: the operator receipt's container."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(session)
        answer = b""
        while len(answer) < HEADER_SIZE or len(answer) < HEADER_SIZE + int.from_bytes(
            answer[24:26], "little"
        ):
            chunk = connection.recv(65536)
            if not chunk:
                raise ConnectionError(f"the OFD closed after {len(answer)} bytes")
            answer += chunk
    return decode_session(answer).container


@case("ofd")
def ofd_case(bench: Bench) -> Iterator[Figure]:
    sessions = bench.size(SESSIONS_QUICK, SESSIONS_FULL)
    numbers = count(1)
    rates = []
    with OfdThread(bench.work / "ofd-bench") as ofd:
        for _ in range(bench.rounds()):
            prepared = [session_for(next(numbers)) for _ in range(sessions)]
            started = time.perf_counter()
            for session in prepared:
                ack = parse_operator_ack(exchange(ofd.port, session))
                if ack.code != 0:
                    raise AssertionError(f"the OFD refused FD {ack.fd_number}: 1022 = {ack.code}")
            rates.append(sessions / (time.perf_counter() - started))
    yield Figure(
        "ofd.docs_per_s",
        statistics.median(rates),
        "1/s",
        f"{sessions} sessions a round, one connection each, every document stored",
    )
