"""The OFD wire: what a register and its OFD (оператор фискальных данных) exchange over TCP.

Sans-IO, byte-exact where the protocol is public (fact sheets ``fn-ffd-ofd.md`` §5 and
``ofd-cloud-marking.md`` §1, golden bytes from yandex/ofd's tests):

* `session` -- the 30-byte session header (`SessionHeader`, `encode_session`, `decode_session`)
  and the stream deframer `SessionReader`;
* `container` -- the 32-byte container header (`Container`, `encode_container`,
  `decode_container`), CRC-16/CCITT-FALSE checked;
* `message` -- the FN's document message (the document's STLV and an emulated 8-byte MAC in place
  of the ФПС, which only a real FN's crypto module can form) and the OFD's operator receipt with an
  emulated ФПО (`operator_ack`, `parse_operator_ack`, `verify_operator_sign`);
* `errors` -- `OfdWireError` and the subclasses naming each cause.
"""

from .container import (
    HEADER_SIZE as CONTAINER_HEADER_SIZE,
)
from .container import (
    TYPE_FN,
    Container,
    bcd_to_fn,
    container_crc,
    decode_container,
    encode_container,
    fn_to_bcd,
)
from .crc import crc16_ccitt_false
from .errors import (
    BadContainer,
    BadCrc,
    BadLength,
    BadMagic,
    BadMessage,
    BadSignature,
    BadVersion,
    OfdWireError,
)
from .message import (
    ACCEPTED,
    FORMAT_CHECK_FAILED,
    MAC_SIZE,
    NOT_RECOGNISED,
    OPERATOR_CONFIRMATION,
    SIGN_SIZE,
    DocumentMessage,
    OperatorAck,
    check_document_message,
    document_mac,
    document_message,
    fn_message_key,
    ofd_key,
    operator_ack,
    operator_sign,
    parse_document_message,
    parse_operator_ack,
    verify_operator_sign,
)
from .session import (
    FLAG_ANSWER_EXPECTED,
    FLAG_CONTAINER,
    FLAG_CRC_ALL,
    FLAG_CRC_HEADER,
    FLAGS_DEFAULT,
    HEADER_SIZE,
    P_VERSION_10,
    P_VERSION_11,
    P_VERSION_12,
    P_VERSION_105,
    P_VERSIONS,
    S_VERSION,
    SIGNATURE,
    Session,
    SessionHeader,
    SessionReader,
    decode_header,
    decode_session,
    encode_session,
    session_crc,
)

__all__ = [
    "ACCEPTED",
    "CONTAINER_HEADER_SIZE",
    "FLAGS_DEFAULT",
    "FLAG_ANSWER_EXPECTED",
    "FLAG_CONTAINER",
    "FLAG_CRC_ALL",
    "FLAG_CRC_HEADER",
    "FORMAT_CHECK_FAILED",
    "HEADER_SIZE",
    "MAC_SIZE",
    "NOT_RECOGNISED",
    "OPERATOR_CONFIRMATION",
    "P_VERSIONS",
    "P_VERSION_10",
    "P_VERSION_11",
    "P_VERSION_12",
    "P_VERSION_105",
    "SIGNATURE",
    "SIGN_SIZE",
    "S_VERSION",
    "TYPE_FN",
    "BadContainer",
    "BadCrc",
    "BadLength",
    "BadMagic",
    "BadMessage",
    "BadSignature",
    "BadVersion",
    "Container",
    "DocumentMessage",
    "OfdWireError",
    "OperatorAck",
    "Session",
    "SessionHeader",
    "SessionReader",
    "bcd_to_fn",
    "check_document_message",
    "container_crc",
    "crc16_ccitt_false",
    "decode_container",
    "decode_header",
    "decode_session",
    "document_mac",
    "document_message",
    "encode_container",
    "encode_session",
    "fn_message_key",
    "fn_to_bcd",
    "ofd_key",
    "operator_ack",
    "operator_sign",
    "parse_document_message",
    "parse_operator_ack",
    "session_crc",
    "verify_operator_sign",
]
