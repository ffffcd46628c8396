"""The FN's document message (the document's STLV and the MAC standing for the ФПС) and the
OFD's operator receipt: yandex/ofd's real message parses, round trips, MACs and signs that verify
only unaltered, typed errors for everything else."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kkt.protocols.ffd import decode_tlv, encode_tlv
from kkt.protocols.ofd import (
    BadMessage,
    BadSignature,
    OfdWireError,
    check_document_message,
    decode_container,
    decode_session,
    document_message,
    encode_container,
    fn_message_key,
    operator_ack,
    operator_sign,
    parse_document_message,
    parse_operator_ack,
    verify_operator_sign,
)
from support.ofd_golden import KKT_TO_OFD

FN = "9999078900005488"
OFD_INN = "7704358518"
WHEN = dt.datetime(2026, 12, 2, 11, 30, 15)


def receipt_tlv(fd: int = 7) -> bytes:
    return encode_tlv([(3, [(1041, FN), (1040, fd), (1012, WHEN), (1020, 19_900)])])


def test_the_real_message_parses_as_a_document_message() -> None:
    # yandex/ofd tests/example_test.py: after the STLV, 10 bytes of the real FN's sign
    message = parse_document_message(decode_session(KKT_TO_OFD).container)
    assert (message.fn_serial, message.fd_number, message.doc_type) == (FN, 1, 11)
    assert len(message.document_tlv) == 4 + 390
    assert message.mac == bytes.fromhex("8106a55ae10c4d750000")
    assert not message.mac_is_valid(fn_message_key(FN))  # a real ФПС is no emulated MAC
    with pytest.raises(BadSignature, match="MAC does not verify"):
        check_document_message(decode_session(KKT_TO_OFD).container)


def test_the_key_and_mac_are_the_contracts() -> None:
    key = fn_message_key(FN)
    assert key == hashlib.sha256(b"kktkit emulated FN " + FN.encode()).digest()
    data = document_message(FN, 7, 3, receipt_tlv(), key)
    assert data[32:-8] == receipt_tlv()
    assert data[-8:] == hmac.new(key, receipt_tlv(), hashlib.sha256).digest()[:8]
    container = decode_container(data)
    assert (container.doc_type, container.fd_number, container.fn_serial) == (3, 7, FN)


@given(
    fn=st.text(alphabet="0123456789", min_size=16, max_size=16),
    fd=st.integers(1, 0xFFFFFF),
    text=st.text(alphabet="абвгд abc123", max_size=64),
)
def test_document_message_round_trip(fn: str, fd: int, text: str) -> None:
    tlv = encode_tlv([(2, [(1041, fn), (1040, fd), (1048, text)])])
    data = document_message(fn, fd, 2, tlv, fn_message_key(fn))
    message = check_document_message(data)
    assert (message.fn_serial, message.fd_number, message.doc_type) == (fn, fd, 2)
    assert message.document_tlv == tlv
    assert decode_tlv(message.document_tlv) == [(2, [(1041, fn), (1040, fd), (1048, text)])]


def test_an_altered_document_fails_its_mac() -> None:
    data = document_message(FN, 7, 3, receipt_tlv(), fn_message_key(FN))
    forged = encode_container(3, FN, 7, receipt_tlv(8) + data[-8:])
    with pytest.raises(BadSignature, match="FD 7 of FN 9999078900005488"):
        check_document_message(forged)
    other_fn = document_message(FN, 7, 3, receipt_tlv(), fn_message_key("9999078900000001"))
    with pytest.raises(BadSignature):
        check_document_message(other_fn)


@pytest.mark.parametrize(
    ("body", "doc_type", "words"),
    [
        (b"\x03\x00", 3, "holds no document STLV"),
        (b"\x03\x00\xff\x00" + bytes(10), 3, "announces 255 bytes, 10 follow"),
        (encode_tlv([(2, [(1040, 1)])]) + bytes(8), 3, "carries STLV 2"),
        (encode_tlv([(3, [(1040, 1)])]) + bytes(5), 3, "the message fiscal sign needs 8"),
        (encode_tlv([(7, [(1040, 1)])]) + bytes(8), 7, "operator receipt"),
    ],
)
def test_bad_document_messages_name_their_cause(body: bytes, doc_type: int, words: str) -> None:
    with pytest.raises(BadMessage, match=words):
        parse_document_message(encode_container(doc_type, FN, 1, body))


def test_document_message_refuses_what_is_not_one_stlv_of_its_type() -> None:
    key = fn_message_key(FN)
    with pytest.raises(BadMessage, match="exactly one STLV tagged 3"):
        document_message(FN, 1, 3, receipt_tlv() + b"\x00", key)
    with pytest.raises(BadMessage, match="exactly one STLV tagged 2"):
        document_message(FN, 1, 2, receipt_tlv(), key)
    with pytest.raises(BadMessage, match="FD number 0"):
        document_message(FN, 0, 3, receipt_tlv(), key)


def test_operator_ack_layout() -> None:
    data = operator_ack(FN, 7, WHEN, OFD_INN)
    container = decode_container(data)
    assert (container.container_type, container.doc_type) == (0xA5, 7)
    assert (container.fn_serial, container.fd_number) == (FN, 7)
    sign = operator_sign(OFD_INN, FN, 7, WHEN)
    assert decode_tlv(container.body) == [
        (
            7,
            [
                (1017, "7704358518  "),  # 12 characters, space-padded
                (1041, FN),
                (1040, 7),
                (1012, WHEN),
                (1068, [(1022, 0)]),
                (1078, sign),
            ],
        )
    ]
    key = hashlib.sha256(b"kktkit emulated OFD " + OFD_INN.encode()).digest()
    assert sign == hmac.new(key, f"{OFD_INN}|{FN}|7|{1796211015}".encode(), "sha256").digest()[:16]
    assert int((WHEN - dt.datetime(1970, 1, 1)).total_seconds()) == 1796211015


@given(
    fd=st.integers(1, 0xFFFFFF),
    code=st.sampled_from([0, 11, 14]),
    when=st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1)),
    inn=st.sampled_from([OFD_INN, "7702000004", "770100000123"]),
)
def test_operator_ack_round_trip(fd: int, code: int, when: dt.datetime, inn: str) -> None:
    ack = parse_operator_ack(operator_ack(FN, fd, when, inn, code))
    assert (ack.fn_serial, ack.fd_number, ack.ofd_inn, ack.code) == (FN, fd, inn, code)
    assert ack.when == when.replace(microsecond=0)
    assert verify_operator_sign(ack)


def test_a_forged_operator_sign_does_not_verify() -> None:
    ack = parse_operator_ack(operator_ack(FN, 7, WHEN, OFD_INN))
    for forged in (
        ack.__class__(FN, 8, WHEN, OFD_INN, 0, ack.sign),
        ack.__class__(FN, 7, WHEN + dt.timedelta(seconds=1), OFD_INN, 0, ack.sign),
        ack.__class__(FN, 7, WHEN, "7702000004", 0, ack.sign),
        ack.__class__(FN, 7, WHEN, OFD_INN, 0, bytes(16)),
    ):
        assert not verify_operator_sign(forged)


def _ack_with(items: list[tuple[int, object]], fd: int = 7) -> bytes:
    return encode_container(7, FN, fd, encode_tlv([(7, items)]))  # type: ignore[list-item]


_GOOD: list[tuple[int, object]] = [
    (1017, "7704358518  "),
    (1041, FN),
    (1040, 7),
    (1012, WHEN),
    (1068, [(1022, 0)]),
    (1078, bytes(16)),
]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (encode_container(3, FN, 7, encode_tlv([(3, [(1040, 7)])])), "not an operator receipt"),
        (_ack_with([item for item in _GOOD if item[0] != 1078]), "tag 1078 is missing"),
        (_ack_with([item for item in _GOOD if item[0] != 1068]), "no answer code"),
        (_ack_with(_GOOD, fd=8), "header says FN 9999078900005488 FD 8"),
        (encode_container(7, FN, 7, b"\x07\x00\x04\x00\xff\xff\x09\x00"), "operator receipt"),
    ],
)
def test_bad_operator_acks_name_their_cause(data: bytes, words: str) -> None:
    with pytest.raises(BadMessage, match=words):
        parse_operator_ack(data)


def test_ffd12_answer_code_1206_is_read() -> None:
    items = [item for item in _GOOD if item[0] != 1068] + [(1206, 14)]
    assert parse_operator_ack(_ack_with(items)).code == 14


@given(st.binary(max_size=200))
def test_garbage_acks_and_messages_raise_typed_errors(data: bytes) -> None:
    for parse in (parse_operator_ack, parse_document_message):
        try:
            parse(encode_container(7, FN, 1, data))
        except OfdWireError as error:
            assert str(error)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: operator_ack(FN, 7, WHEN, "12345"), "must be 10 or 12 digits"),
        (lambda: operator_ack(FN, 7, WHEN, OFD_INN, 256), "must be a byte"),
        (lambda: operator_ack(FN, 1 << 24, WHEN, OFD_INN), "3 bytes"),
    ],
)
def test_acks_that_cannot_be_built_are_refused(call: object, words: str) -> None:
    with pytest.raises(OfdWireError, match=words):
        call()  # type: ignore[operator]
