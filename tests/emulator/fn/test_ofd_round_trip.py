"""The emulated FN against the emulated OFD over loopback TCP: each half built by another branch
of issue 16 from the same contract, checked here against each other.

The relay is the one the fact sheet describes (``ofd-cloud-marking.md`` §1.2): 21h(1), 22h, 23h
..., 25h, the 30-byte session header before the container, the OFD's answer read as 30 bytes and
``length`` more, its header stripped and the container given to 26h.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from kkt.emulator.clock import ManualClock
from kkt.emulator.fn import FiscalStorage, FnConfig, MemoryStore
from kkt.emulator.ofd.service import OfdThread
from kkt.emulator.state import TEST_OFD_INN
from kkt.protocols.ffd import Payments
from kkt.protocols.ofd import (
    HEADER_SIZE,
    decode_header,
    document_message,
    encode_session,
    fn_message_key,
    parse_document_message,
)
from support.fn import START, registration

pytestmark = pytest.mark.timeout(60)


def _exchange(port: int, message: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as link:
        link.sendall(message)
        data = b""
        while (
            len(data) < HEADER_SIZE
            or len(data) < HEADER_SIZE + decode_header(data[:HEADER_SIZE]).length
        ):
            chunk = link.recv(4096)
            assert chunk, "the OFD closed the connection without a full answer"
            data += chunk
    return data


def _send_queue(fn: FiscalStorage, port: int) -> list[int]:
    sent = []
    fn.set_transport(True)
    while fn.exchange_status().message_waiting:
        size = fn.start_reading()
        container = fn.read_block(0, size)
        fn.finish_reading()
        answer = _exchange(port, encode_session(fn.serial, container))
        assert fn.write_receipt(answer[HEADER_SIZE:]) == 0
        sent.append(parse_document_message(container).fd_number)
    fn.set_transport(False)
    return sent


def test_the_emulated_fn_drains_its_queue_into_the_emulated_ofd(tmp_path: Path) -> None:
    clock = ManualClock(START)
    fn = FiscalStorage(MemoryStore(), clock, config=FnConfig(archive_capacity=1000))
    fn.register(registration(ofd_inn=TEST_OFD_INN))
    fn.open_shift()
    item = [(1059, [(1030, "Хлеб"), (1079, 100), (1023, 1), (1043, 100)])]
    for _ in range(5):
        fn.receipt(1, 100, Payments(cash=100), tlv=item)
    with OfdThread(tmp_path / "ofd") as ofd:
        assert _send_queue(fn, ofd.port) == [1, 2, 3, 4, 5, 6, 7]
        assert fn.unconfirmed() == 0
        # the last document again (its receipt lost, say): the OFD answers as before, the FN
        # takes that receipt as harmless
        last = fn.state.last_number
        message = encode_session(fn.serial, _message_of(fn, last))
        answer = _exchange(ofd.port, message)
        assert fn.write_receipt(answer[HEADER_SIZE:]) == 0
        status = ofd.control({"action": "status"})
    assert status["documents"] == 7 and status["stats"]["duplicates"] == 1  # stored once
    assert len(fn.ofd_receipt(last).sign) == 16 and fn.verify().ok


def _message_of(fn: FiscalStorage, number: int) -> bytes:
    record = fn.record(number)
    return document_message(fn.serial, number, record.kind, record.tlv, fn_message_key(fn.serial))
