"""The emulated OFD over real loopback TCP: a document stored and acknowledged, a duplicate stored
once and answered with the same receipt, refusals (1022 = 11/14), bad input closed without an
answer, and every fault of its control channel."""

from __future__ import annotations

import datetime as dt
import logging
import socket
from pathlib import Path

import pytest
from kkt.emulator.ofd import OfdStore, OfdThread
from kkt.emulator.state import TEST_OFD_INN
from kkt.protocols.ofd import (
    BadCrc,
    Session,
    decode_container,
    document_message,
    encode_container,
    encode_session,
    fn_message_key,
    parse_operator_ack,
    verify_operator_sign,
)
from support.ofd_client import FN, document_tlv, exchange, exchange_many, fd_session

pytestmark = pytest.mark.timeout(60)


def _ack(session: Session | None) -> tuple[int, int]:
    assert session is not None, "the OFD answered nothing"
    ack = parse_operator_ack(session.container)
    assert verify_operator_sign(ack) and ack.fn_serial == FN and ack.ofd_inn == TEST_OFD_INN
    assert session.header.fn_serial == FN and session.header.flags == 0x14
    return ack.fd_number, ack.code


def _stored(state: Path) -> list[tuple[str, int, int, bool]]:
    store = OfdStore(state, read_only=True)
    try:
        return [
            (d.fn_serial, d.fd_number, d.times, d.acked_at is not None) for d in store.documents()
        ]
    finally:
        store.close()


def test_a_document_is_stored_and_acknowledged(tmp_path: Path) -> None:
    with OfdThread(tmp_path) as ofd:
        answer = exchange(ofd.port, fd_session(1))
        assert _ack(answer) == (1, 0)
        assert answer is not None and answer.header.p_version == b"\x01\x20"  # the request's
    assert _stored(tmp_path) == [(FN, 1, 1, True)]
    store = OfdStore(tmp_path, read_only=True)
    try:
        (document,) = store.documents()
    finally:
        store.close()
    assert document.message == fd_session(1)[30:] and document.doc_type == 3


def test_a_duplicate_is_stored_once_and_acked_again_with_the_same_ack(tmp_path: Path) -> None:
    with OfdThread(tmp_path) as ofd:
        first = exchange(ofd.port, fd_session(5))
        again = exchange(ofd.port, fd_session(5))
        assert first is not None and again is not None
        assert again.pack() == first.pack()
        assert ofd.control({"action": "status"})["stats"]["duplicates"] == 1
    assert _stored(tmp_path) == [(FN, 5, 2, True)]


def test_several_documents_on_one_connection_and_the_store_survives_a_restart(
    tmp_path: Path,
) -> None:
    with OfdThread(tmp_path) as ofd:
        answers = exchange_many(ofd.port, [fd_session(n) for n in (1, 2, 3)])
        assert [_ack(a) for a in answers] == [(1, 0), (2, 0), (3, 0)]
    with OfdThread(tmp_path) as ofd:  # reopened: what it stored is there, and deduplicates
        first_again = exchange(ofd.port, fd_session(2))
        assert first_again is not None and first_again.pack() == answers[1].pack()
    assert [row[:3] for row in _stored(tmp_path)] == [(FN, 1, 1), (FN, 2, 2), (FN, 3, 1)]


@pytest.mark.parametrize("flags", [0x15, 0x16])
def test_session_crc_is_checked_when_flags_ask(tmp_path: Path, flags: int) -> None:
    good = fd_session(1, flags=flags)
    bad = bytearray(good)
    bad[-1 if flags == 0x16 else 10] ^= 0x01
    with OfdThread(tmp_path) as ofd:
        assert exchange(ofd.port, bytes(bad)) is None
        assert "session CRC" in ofd.control({"action": "status"})["stats"]["last_error"]
        assert _ack(exchange(ofd.port, good)) == (1, 0)
    assert _stored(tmp_path) == [(FN, 1, 1, True)]


def test_bad_input_is_closed_without_an_answer_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = bytearray(fd_session(1))
    damaged[100] ^= 0xFF  # inside the container: its CRC fails
    with caplog.at_level(logging.WARNING, "kkt.emulator.ofd"), OfdThread(tmp_path) as ofd:
        assert exchange(ofd.port, b"GET / HTTP/1.1\r\n\r\n") is None
        assert exchange(ofd.port, bytes(damaged)) is None
        assert exchange(ofd.port, encode_session(FN, b"", flags=0x10)) is None  # no container
        assert ofd.control({"action": "status"})["stats"]["dropped"] == 3
    text = caplog.text
    assert "does not speak the OFD protocol" in text
    assert "bad container: container CRC" in text
    assert "carry no container" in text
    assert "connection closed without an answer" in text
    assert _stored(tmp_path) == []


def _refusal(tmp_path: Path, data: bytes) -> tuple[int, int]:
    with OfdThread(tmp_path) as ofd:
        answer = _ack(exchange(ofd.port, data))
        assert ofd.control({"action": "status"})["stats"]["refused"] == 1
    assert _stored(tmp_path) == []
    return answer


def test_a_bad_mac_is_refused_with_11(tmp_path: Path) -> None:
    forged = document_message(FN, 4, 3, document_tlv(4), fn_message_key("9999078900000001"))
    assert _refusal(tmp_path, encode_session(FN, forged)) == (4, 11)


def test_a_body_that_is_no_document_is_refused_with_11(tmp_path: Path) -> None:
    assert _refusal(tmp_path, encode_session(FN, encode_container(3, FN, 4, b"\x01\x02"))) == (
        4,
        11,
    )


def test_a_document_whose_number_disagrees_is_refused_with_14(tmp_path: Path) -> None:
    message = document_message(FN, 4, 3, document_tlv(5), fn_message_key(FN))  # 1040 = 5
    assert _refusal(tmp_path, encode_session(FN, message)) == (4, 14)


def test_a_session_naming_another_fn_is_refused_with_14(tmp_path: Path) -> None:
    message = document_message(FN, 4, 3, document_tlv(4), fn_message_key(FN))
    assert _refusal(tmp_path, encode_session("9999078900000001", message)) == (4, 14)


def test_another_document_under_a_stored_number_is_refused_with_14(tmp_path: Path) -> None:
    with OfdThread(tmp_path) as ofd:
        assert _ack(exchange(ofd.port, fd_session(6))) == (6, 0)
        assert _ack(exchange(ofd.port, fd_session(6, total=1))) == (6, 14)
    assert _stored(tmp_path) == [(FN, 6, 1, True)]


# -- faults ------------------------------------------------------------------------------------


def test_down_refuses_connections_and_up_serves_again(tmp_path: Path) -> None:
    with OfdThread(tmp_path) as ofd:
        assert ofd.control({"action": "down"})["listening"] is False
        with pytest.raises(ConnectionRefusedError):
            exchange(ofd.port, fd_session(1))
        assert ofd.control({"action": "up"})["listening"] is True
        assert _ack(exchange(ofd.port, fd_session(1))) == (1, 0)


def test_down_drops_an_open_connection(tmp_path: Path) -> None:
    with OfdThread(tmp_path) as ofd, socket.create_connection(("127.0.0.1", ofd.port), 10) as c:
        c.sendall(fd_session(1)[:10])
        ofd.control({"action": "down"})
        try:  # closed by the OFD: a FIN, or a reset when the OFD had unread bytes
            assert c.recv(100) == b""
        except ConnectionResetError:
            pass
    assert _stored(tmp_path) == []


def test_drop_ack_stores_then_closes_once_and_the_retry_gets_the_ack(tmp_path: Path) -> None:
    with OfdThread(tmp_path) as ofd:
        assert ofd.control({"action": "drop-ack"})["faults"]["drop_ack"] == 1
        assert exchange(ofd.port, fd_session(1)) is None
        assert _stored(tmp_path) == [(FN, 1, 1, False)]  # stored, never acknowledged
        assert _ack(exchange(ofd.port, fd_session(1))) == (1, 0)
    assert _stored(tmp_path) == [(FN, 1, 2, True)]


def test_drop_ack_n_times(tmp_path: Path) -> None:
    with OfdThread(tmp_path) as ofd:
        ofd.control({"action": "drop-ack", "count": 2})
        assert [exchange(ofd.port, fd_session(n)) for n in (1, 2)] == [None, None]
        assert _ack(exchange(ofd.port, fd_session(3))) == (3, 0)
    assert _stored(tmp_path) == [(FN, 1, 1, False), (FN, 2, 1, False), (FN, 3, 1, True)]


def test_reject_answers_the_code_and_stores_nothing(tmp_path: Path) -> None:
    with OfdThread(tmp_path) as ofd:
        ofd.control({"action": "reject", "code": 14, "count": 2})
        assert _ack(exchange(ofd.port, fd_session(1))) == (1, 14)
        assert _ack(exchange(ofd.port, fd_session(1))) == (1, 14)
        assert _stored(tmp_path) == []
        assert _ack(exchange(ofd.port, fd_session(1))) == (1, 0)
    assert _stored(tmp_path) == [(FN, 1, 1, True)]


def test_corrupt_answers_with_a_bad_crc_once(tmp_path: Path) -> None:
    with OfdThread(tmp_path) as ofd:
        ofd.control({"action": "corrupt"})
        answer = exchange(ofd.port, fd_session(1))
        assert answer is not None
        with pytest.raises(BadCrc):
            decode_container(answer.container)
        assert _stored(tmp_path) == [(FN, 1, 1, False)]
        again = exchange(ofd.port, fd_session(1))
        assert _ack(again) == (1, 0)
        assert again is not None and again.container[4:] == answer.container[4:]  # same receipt


def test_delay_holds_the_answer_back(tmp_path: Path) -> None:
    with OfdThread(tmp_path) as ofd:
        ofd.control({"action": "delay", "seconds": 30})
        with pytest.raises(TimeoutError):
            exchange(ofd.port, fd_session(1), timeout=0.3)
        ofd.control({"action": "delay", "seconds": 0})
        assert _ack(exchange(ofd.port, fd_session(1))) == (1, 0)
    assert _stored(tmp_path) == [(FN, 1, 2, True)]


def test_clear_ends_every_fault(tmp_path: Path) -> None:
    with OfdThread(tmp_path) as ofd:
        for request in (
            {"action": "down"},
            {"action": "delay", "seconds": 5},
            {"action": "drop-ack", "count": 3},
            {"action": "reject", "code": 11},
            {"action": "corrupt", "count": 2},
        ):
            assert ofd.control(request)["ok"]
        status = ofd.control({"action": "clear"})
        assert status["listening"] and status["faults"] == {
            "down": False,
            "delay": 0.0,
            "drop_ack": 0,
            "reject_code": 0,
            "reject_left": 0,
            "corrupt": 0,
        }
        assert _ack(exchange(ofd.port, fd_session(1))) == (1, 0)


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        ({"action": "reject", "code": 0}, "reject needs"),
        ({"action": "reject"}, "reject needs"),
        ({"action": "delay", "seconds": -1}, "delay needs"),
        ({"action": "drop-ack", "count": 0}, '"count" must be'),
        ({"action": "explode"}, "unknown action"),
    ],
)
def test_bad_control_requests_are_refused(
    tmp_path: Path, request_: dict[str, object], words: str
) -> None:
    from kkt.emulator.ofd import OfdControlError

    with OfdThread(tmp_path) as ofd, pytest.raises(OfdControlError, match=words):
        ofd.control(request_)


def test_receipts_carry_the_ofds_clock(tmp_path: Path) -> None:
    with OfdThread(tmp_path) as ofd:
        before = dt.datetime.now().replace(microsecond=0)
        answer = exchange(ofd.port, fd_session(1))
        assert answer is not None
        assert parse_operator_ack(answer.container).when >= before


def test_an_internal_failure_closes_that_connection_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    with caplog.at_level(logging.WARNING, "kkt.emulator.ofd"), OfdThread(tmp_path) as ofd:
        monkeypatch.setattr(OfdStore, "add", full_disk)
        assert exchange(ofd.port, fd_session(1)) is None  # nothing stored: nothing acknowledged
        monkeypatch.undo()
        assert _ack(exchange(ofd.port, fd_session(1))) == (1, 0)
    assert "internal error; connection closed without an answer" in caplog.text
    assert "No space left on device" in caplog.text
    assert _stored(tmp_path) == [(FN, 1, 1, True)]
