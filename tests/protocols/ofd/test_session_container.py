"""The session header and the container against yandex/ofd's golden bytes (`support.ofd_golden`,
each vector citing its file in yandex/ofd), the fact sheet's worked CRC example, and hypothesis
round trips; every malformed input raises its own `OfdWireError` subclass."""

from __future__ import annotations

import crcmod.predefined
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kkt.protocols import ProtocolError
from kkt.protocols.ofd import (
    FLAGS_DEFAULT,
    P_VERSION_12,
    P_VERSIONS,
    BadContainer,
    BadCrc,
    BadLength,
    BadMagic,
    BadVersion,
    OfdWireError,
    SessionHeader,
    container_crc,
    crc16_ccitt_false,
    decode_container,
    decode_header,
    decode_session,
    encode_container,
    encode_session,
)
from support.ofd_golden import (
    CONTAINER_BODY,
    CONTAINER_HEADER,
    KKT_TO_OFD,
    SESSION_HEADER_PADDED,
)

FN = "9999078900005488"


def test_crc_is_ccitt_false_with_its_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1


def test_the_real_message_decodes_field_by_field() -> None:
    session = decode_session(KKT_TO_OFD)
    assert session.header == SessionHeader(
        s_version=b"\x81\xa2", p_version=b"\x00\x01", fn_serial=FN, length=436, flags=0x14, crc=0
    )
    container = decode_container(session.container)
    assert (container.length, container.crc) == (436, 0x7825)
    assert (container.container_type, container.doc_type, container.version) == (0xA5, 11, 1)
    assert (container.fn_serial, container.fd_number) == (FN, 1)
    assert container.service1 == bytes.fromhex("1009")
    assert container.service2 == bytes.fromhex("84ec4c14c20000010004018a")
    assert container.body[:4] == bytes.fromhex("0b008601")  # STLV 11 of 390 bytes


def test_the_real_message_round_trips_byte_exact() -> None:
    session = decode_session(KKT_TO_OFD)
    assert session.pack() == KKT_TO_OFD
    container = decode_container(session.container)
    assert container.pack() == session.container
    rebuilt = encode_container(
        container.doc_type,
        container.fn_serial,
        container.fd_number,
        container.body,
        service1=container.service1,
        service2=container.service2,
    )
    assert rebuilt == session.container
    again = encode_session(FN, rebuilt, p_version=session.header.p_version, flags=0x14)
    assert again == KKT_TO_OFD


def test_the_container_whose_crc_is_known() -> None:
    # yandex/ofd tests/ofd_test.py TestFrameHeader: CRC 60419 over header (CRC field out) + body
    data = CONTAINER_HEADER + CONTAINER_BODY
    container = decode_container(data)
    assert container.crc == 60419 == container_crc(data)
    assert container.fn_serial == "999907891234567"  # 15 digits, the 16th nibble F
    assert (container.doc_type, container.fd_number, container.length) == (1, 1, 305)
    rebuilt = encode_container(
        1, "999907891234567", 1, CONTAINER_BODY, service1=b"\x10\x09", service2=container.service2
    )
    assert rebuilt == data


def test_a_space_padded_fn_number_in_the_session_header() -> None:
    # yandex/ofd tests/ofd_test.py TestSessionHeader: FN "9999078950" + 6 spaces, 305 bytes
    header = decode_header(SESSION_HEADER_PADDED)
    assert (header.fn_serial, header.length, header.flags) == ("9999078950", 305, 0x14)
    assert header.pack() == SESSION_HEADER_PADDED


@pytest.mark.parametrize(
    ("flags", "tail"),
    [(0x14, "14 00 00 00"), (0x15, "15 00 6f d0"), (0x16, "16 00 71 b3")],
)
def test_session_crc_worked_example_of_the_fact_sheet(flags: int, tail: str) -> None:
    # ofd-cloud-marking.md §1.5: the real header, flags 15 (CRC of bytes 0-27 = 0xD06F) and 16
    # (header + body: 0xB371); crcmod's own CRC-CCITT-FALSE agrees.
    container = KKT_TO_OFD[30:]
    data = encode_session(FN, container, p_version=b"\x00\x01", flags=flags)
    assert data[24:30] == bytes.fromhex("b401" + tail.replace(" ", ""))
    assert data[:24] == KKT_TO_OFD[:24] and data[30:] == container
    reference = crcmod.predefined.mkPredefinedCrcFun("crc-ccitt-false")
    if flags == 0x15:
        assert reference(data[:28]) == 0xD06F
    if flags == 0x16:
        assert reference(data[:28] + container) == 0xB371
    assert decode_session(data).header.flags == flags


def test_a_damaged_session_crc_is_refused() -> None:
    data = bytearray(encode_session(FN, KKT_TO_OFD[30:], flags=0x16))
    data[100] ^= 0x01  # inside the container: covered by the mode-2 CRC
    with pytest.raises(BadCrc, match="session CRC over the header and container") as caught:
        decode_session(bytes(data))
    assert caught.value.expected != caught.value.found


digits = st.text(alphabet="0123456789", min_size=1, max_size=16)


@given(
    fn=digits,
    fd=st.integers(0, 0xFFFFFF),
    doc_type=st.integers(0, 255),
    body=st.binary(max_size=600),
    service2=st.binary(min_size=12, max_size=12),
)
def test_container_round_trip(
    fn: str, fd: int, doc_type: int, body: bytes, service2: bytes
) -> None:
    data = encode_container(doc_type, fn, fd, body, service2=service2)
    container = decode_container(data)
    assert (container.fn_serial, container.fd_number, container.doc_type) == (fn, fd, doc_type)
    assert container.body == body and container.length == len(data)
    assert container.pack() == data


@given(
    fn=digits,
    container=st.binary(max_size=700),
    p_version=st.sampled_from(sorted(P_VERSIONS)),
    flags=st.sampled_from([0x14, 0x15, 0x16, 0x04, 0x10]),
)
def test_session_round_trip(fn: str, container: bytes, p_version: bytes, flags: int) -> None:
    data = encode_session(fn, container, p_version=p_version, flags=flags)
    session = decode_session(data)
    assert session.container == container
    assert (session.header.fn_serial, session.header.p_version) == (fn, p_version)
    assert session.header.length == len(container) and session.pack() == data


@given(st.binary(max_size=120))
def test_garbage_raises_only_typed_errors(data: bytes) -> None:
    for decode in (decode_session, decode_container):
        try:
            decode(data)
        except OfdWireError as error:
            assert isinstance(error, ProtocolError) and str(error)


@given(at=st.integers(0, 435), flip=st.integers(1, 255))
def test_any_damaged_container_byte_is_caught(at: int, flip: int) -> None:
    # A CRC-16 catches every burst of up to 16 bits; the length field is checked on its own.
    damaged = bytearray(KKT_TO_OFD[30:])
    damaged[at] ^= flip
    with pytest.raises(OfdWireError):
        decode_container(bytes(damaged))


@given(at=st.integers(0, 465).filter(lambda at: at not in (26, 27)), flip=st.integers(1, 255))
def test_any_damaged_byte_is_caught_with_the_full_session_crc(at: int, flip: int) -> None:
    # The flags themselves say whether there is a CRC: damage that turns it off (16 -> 14) is
    # beyond any check of the protocol, so the flags bytes are left out here.
    damaged = bytearray(encode_session(FN, KKT_TO_OFD[30:], p_version=b"\x00\x01", flags=0x16))
    damaged[at] ^= flip
    with pytest.raises(OfdWireError):
        decode_session(bytes(damaged))


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"\x00" * 30, BadMagic, "does not speak the OFD protocol"),
        (KKT_TO_OFD[:4] + b"\x99\x99" + KKT_TO_OFD[6:], BadVersion, "S-protocol version 99 99"),
        (KKT_TO_OFD[:6] + b"\x07\x07" + KKT_TO_OFD[8:], BadVersion, "P-protocol version 07 07"),
        (KKT_TO_OFD[:-1], BadLength, "436 container bytes, 435 follow"),
        (KKT_TO_OFD + b"\x00", BadLength, "436 container bytes, 437 follow"),
        (KKT_TO_OFD[:20], BadLength, "at least 30 bytes"),
        (KKT_TO_OFD[:8] + b"99990789000054A8" + KKT_TO_OFD[24:], OfdWireError, "not ASCII digits"),
        (KKT_TO_OFD[:26] + b"\x17\x00" + KKT_TO_OFD[28:], OfdWireError, "CRC mode 3"),
    ],
)
def test_bad_sessions_name_their_cause(data: bytes, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        decode_session(data)


CONTAINER = KKT_TO_OFD[30:]


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (CONTAINER[:31], BadLength, "at least 32 bytes"),
        (CONTAINER[:-1], BadLength, "says 436 bytes, 435 were given"),
        (CONTAINER[:4] + b"\x77" + CONTAINER[5:], BadContainer, "neither a5 nor 5a"),
        (CONTAINER[:6] + b"\x02" + CONTAINER[7:], BadVersion, "format version 2"),
        (CONTAINER[:100] + b"\x00" + CONTAINER[101:], BadCrc, "computed"),
    ],
)
def test_bad_containers_name_their_cause(data: bytes, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        decode_container(data)


def test_a_non_bcd_fn_number_is_refused() -> None:
    data = bytearray(CONTAINER)
    data[9] = 0xAB
    fixed = bytes(data[:2]) + container_crc(bytes(data)).to_bytes(2, "little") + bytes(data[4:])
    with pytest.raises(BadContainer, match="not BCD digits"):
        decode_container(fixed)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: encode_session("12AB", b""), "must be 1 to 16 digits"),
        (lambda: encode_session(FN, b"", flags=0x17), "CRC mode 3 is forbidden"),
        (lambda: encode_session(FN, bytes(40000)), "exceeds the 32768-byte limit"),
        (lambda: encode_container(3, FN, 1 << 24, b""), "does not fit the container's 3 bytes"),
        (lambda: encode_container(3, "", 1, b""), "must be 1 to 16 digits"),
        (lambda: encode_container(300, FN, 1, b""), "must be a byte"),
    ],
)
def test_what_cannot_be_encoded_is_refused(call: object, words: str) -> None:
    with pytest.raises(OfdWireError, match=words):
        call()  # type: ignore[operator]


def test_defaults_are_the_registers() -> None:
    data = encode_session(FN, b"")
    assert data[4:8] == b"\x81\xa2" + P_VERSION_12 and data[26:28] == FLAGS_DEFAULT.to_bytes(
        2, "little"
    )
