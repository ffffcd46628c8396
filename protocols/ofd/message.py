"""What the containers carry: the FN's document message and the OFD's operator receipt.

**The FN's message for one FD** is a container (document type = the FD's form code) whose body is
the document's STLV followed by the message fiscal sign ФПС.  On a real FN the ФПС comes from its
crypto module, and with tag 1056 set the container is encrypted too: neither can be emulated.  The
emulation carries the document's TLV in clear and, in the ФПС's place, an 8-byte MAC:
HMAC-SHA256(`fn_message_key` (serial), STLV)[:8].  The key is public (derived from the serial) so
the emulated OFD can check that the bytes came whole from an emulated FN.  8 bytes as in
yandex/ofd's tests; its real dump has 10 bytes after the STLV (fact sheet
``ofd-cloud-marking.md`` §1.6 [?]), which `parse_document_message` keeps as they are.

**The operator receipt** (подтверждение оператора, document 7, FFD Table 32) is a container of
type A5, document type 7, the FN number and the confirmed FD number in its header, and the STLV 7
{1017 OFD INN (12, space-padded), 1041 FN number, 1040 FD number, 1012 date-time, 1068 {1022
answer code}, 1078 ФПО}.  The real ФПО comes from the OFD's crypto complex; here it is the 16
bytes of `operator_sign`, an HMAC under the OFD's own public emulation key, which the emulated FN
checks.  The receipt carries no ФПП (the confirmation sign outside the TLV): nothing could check
it.  FFD 1.2's 1206 (in 1068's place) is read as well.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import TypeVar

from ..ffd.tlv import TlvError, Value, decode_tlv, encode_tlv, find
from .container import MAX_FD, decode_container, encode_container
from .errors import BadMessage, BadSignature

MAC_SIZE = 8
SIGN_SIZE = 16
OPERATOR_CONFIRMATION = 7  # the document code of the operator's receipt
ACCEPTED = 0  # 1022: document accepted
NOT_RECOGNISED = 11  # 1022: content not recognised
FORMAT_CHECK_FAILED = 14  # 1022: failed the format-logic control
_STLV_HEAD = struct.Struct("<HH")
_T = TypeVar("_T")


def fn_message_key(fn_serial: str) -> bytes:
    """The emulation's public key of one FN: sha256(b"kktkit emulated FN " + serial)."""
    return hashlib.sha256(b"kktkit emulated FN " + fn_serial.encode("ascii")).digest()


def ofd_key(ofd_inn: str) -> bytes:
    """The emulation's public key of one OFD: sha256(b"kktkit emulated OFD " + INN)."""
    return hashlib.sha256(b"kktkit emulated OFD " + ofd_inn.strip().encode("ascii")).digest()


def document_mac(document_tlv: bytes, fn_key: bytes) -> bytes:
    """The 8 bytes standing for the ФПС: HMAC-SHA256(fn_key, document STLV)[:8]."""
    return hmac.new(fn_key, document_tlv, hashlib.sha256).digest()[:MAC_SIZE]


@dataclass(frozen=True, slots=True)
class DocumentMessage:
    """One FD as the FN sends it: header fields, the document's STLV and what follows it."""

    fn_serial: str
    fd_number: int
    doc_type: int
    document_tlv: bytes
    mac: bytes

    def mac_is_valid(self, fn_key: bytes) -> bool:
        """True when ``mac`` is the emulated FN's MAC of the document under ``fn_key``."""
        return hmac.compare_digest(self.mac, document_mac(self.document_tlv, fn_key))


def _split_stlv(body: bytes, what: str) -> tuple[int, bytes, bytes]:
    """(tag, the whole STLV, the bytes after it) of a body that starts with an STLV."""
    if len(body) < _STLV_HEAD.size:
        raise BadMessage(f"{what}: body of {len(body)} bytes holds no document STLV")
    tag, size = _STLV_HEAD.unpack_from(body)
    end = _STLV_HEAD.size + size
    if end > len(body):
        raise BadMessage(
            f"{what}: document STLV {tag} announces {size} bytes, {len(body) - 4} follow"
        )
    return tag, body[:end], body[end:]


def document_message(
    fn_serial: str, fd_number: int, doc_type: int, document_tlv: bytes, fn_key: bytes
) -> bytes:
    """The FN's container for FD ``fd_number``: ``document_tlv`` (the whole STLV, its tag the
    document type) followed by its 8-byte MAC."""
    tag, stlv, rest = _split_stlv(document_tlv, "document message")
    if rest or tag != doc_type:
        raise BadMessage(
            f"document_tlv must be exactly one STLV tagged {doc_type} (the document type); "
            f"got tag {tag} and {len(rest)} bytes after it"
        )
    if not 1 <= fd_number <= MAX_FD:
        raise BadMessage(f"FD number {fd_number} must be 1..{MAX_FD} (3 bytes in the container)")
    return encode_container(doc_type, fn_serial, fd_number, stlv + document_mac(stlv, fn_key))


def parse_document_message(container: bytes) -> DocumentMessage:
    """Decode an FN's message (CRC checked); `DocumentMessage.mac_is_valid` checks its MAC."""
    c = decode_container(container)
    if c.doc_type == OPERATOR_CONFIRMATION:
        raise BadMessage("this container is an operator receipt (document 7), not an FN's document")
    tag, stlv, rest = _split_stlv(c.body, "document message")
    if tag != c.doc_type:
        raise BadMessage(
            f"container says document type {c.doc_type} but carries STLV {tag}: not one FN's FD"
        )
    if len(rest) < MAC_SIZE:
        raise BadMessage(
            f"{len(rest)} bytes follow the document STLV; the message fiscal sign needs {MAC_SIZE}"
        )
    return DocumentMessage(c.fn_serial, c.fd_number, c.doc_type, stlv, rest)


def check_document_message(container: bytes) -> DocumentMessage:
    """`parse_document_message`, then the MAC under the FN's public key (`BadSignature`)."""
    message = parse_document_message(container)
    if not message.mac_is_valid(fn_message_key(message.fn_serial)):
        raise BadSignature(
            f"FD {message.fd_number} of FN {message.fn_serial}: its MAC does not verify; "
            "the message was altered or did not come from an emulated FN"
        )
    return message


# --- the operator's receipt ---------------------------------------------------------------------


def _unix(when: dt.datetime) -> int:
    return int((when.replace(microsecond=0, tzinfo=None) - dt.datetime(1970, 1, 1)).total_seconds())


def operator_sign(ofd_inn: str, fn_serial: str, fd_number: int, when: dt.datetime) -> bytes:
    """The emulated ФПО (tag 1078): 16 bytes of HMAC-SHA256 under `ofd_key` (ofd_inn) over the
    OFD INN, FN number, FD number and the receipt's time (seconds), so the FN can check it."""
    text = f"{ofd_inn.strip()}|{fn_serial.strip()}|{fd_number}|{_unix(when)}".encode("ascii")
    return hmac.new(ofd_key(ofd_inn), text, hashlib.sha256).digest()[:SIGN_SIZE]


@dataclass(frozen=True, slots=True)
class OperatorAck:
    """An operator receipt, decoded (``ofd_inn`` and ``fn_serial`` without their padding)."""

    fn_serial: str
    fd_number: int
    when: dt.datetime
    ofd_inn: str
    code: int
    sign: bytes


def operator_ack(
    fn_serial: str, fd_number: int, when: dt.datetime, ofd_inn: str, code: int = ACCEPTED
) -> bytes:
    """The OFD's receipt container for FD ``fd_number`` with answer code 1022 = ``code``."""
    if not 0 <= code <= 0xFF:
        raise BadMessage(f"answer code 1022 = {code} must be a byte (0, 11, 14, ...)")
    inn = ofd_inn.strip()
    if not (inn.isdigit() and len(inn) in (10, 12)):
        raise BadMessage(f"OFD INN {ofd_inn!r} must be 10 or 12 digits")
    when = when.replace(microsecond=0, tzinfo=None)
    items: list[tuple[int, Value]] = [
        (1017, inn.ljust(12)),
        (1041, fn_serial.ljust(16)),
        (1040, fd_number),
        (1012, when),
        (1068, [(1022, code)]),
        (1078, operator_sign(inn, fn_serial, fd_number, when)),
    ]
    try:
        stlv = encode_tlv([(OPERATOR_CONFIRMATION, items)])
    except TlvError as error:
        raise BadMessage(f"operator receipt cannot be built: {error}") from error
    return encode_container(OPERATOR_CONFIRMATION, fn_serial, fd_number, stlv)


def _need(items: list[tuple[int, Value]], tag: int, kind: type[_T]) -> _T:
    value = find(items, tag)
    if not isinstance(value, kind):
        what = "missing" if value is None else f"a {type(value).__name__}"
        raise BadMessage(f"operator receipt: tag {tag} is {what}; FFD Table 32 requires it")
    return value


def parse_operator_ack(container: bytes) -> OperatorAck:
    """Decode an operator receipt (CRC checked, required tags present, header and TLV agree);
    the sign is checked by `verify_operator_sign`."""
    c = decode_container(container)
    if c.doc_type != OPERATOR_CONFIRMATION:
        raise BadMessage(f"container holds document type {c.doc_type}, not an operator receipt (7)")
    tag, stlv, _rest = _split_stlv(c.body, "operator receipt")
    if tag != OPERATOR_CONFIRMATION:
        raise BadMessage(f"operator receipt carries STLV {tag}, not 7")
    try:
        decoded = decode_tlv(stlv)
    except TlvError as error:
        raise BadMessage(f"operator receipt: {error}") from error
    body = decoded[0][1]
    if not isinstance(body, list):  # pragma: no cover - tag 7 is an STLV in TAGS
        raise BadMessage("operator receipt: tag 7 is not an STLV")
    fn_serial = _need(body, 1041, str).strip()
    fd_number = _need(body, 1040, int)
    when = _need(body, 1012, dt.datetime)
    ofd_inn = _need(body, 1017, str).strip()
    sign = _need(body, 1078, bytes)
    message = find(body, 1068)
    code = find(message, 1022) if isinstance(message, list) else find(body, 1206)
    if not isinstance(code, int):
        raise BadMessage("operator receipt: no answer code (1068 {1022} or 1206)")
    if fn_serial != c.fn_serial or fd_number != c.fd_number:
        raise BadMessage(
            f"operator receipt: header says FN {c.fn_serial} FD {c.fd_number}, "
            f"its TLV FN {fn_serial} FD {fd_number}"
        )
    return OperatorAck(fn_serial, fd_number, when, ofd_inn, code, sign)


def verify_operator_sign(ack: OperatorAck) -> bool:
    """True when the ack's ФПО is the emulated OFD's sign of its INN, FN, FD and time."""
    expected = operator_sign(ack.ofd_inn, ack.fn_serial, ack.fd_number, ack.when)
    return hmac.compare_digest(ack.sign, expected)
