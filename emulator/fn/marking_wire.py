"""The marking code's wire blocks between the emulated FN and the emulated ОИСМ: the check request
(B5h, FD 81), its answer (B6h, FD 83), a notification (FD 82) and its receipt (BFh, FD 84), plus
tag 2106 from the two checks (fact sheet ``ofd-cloud-marking.md`` §4.2, §4.5, §4.7).

Wire blocks (the OISM request B5h gives, the answer B6h takes, a notification and its receipt) are
``length (uint16, with these 4 bytes) · CRC16 (uint16) · TLVs``, little-endian, the CRC
(CCITT-FALSE, poly 0x1021, init 0xFFFF) over the block less its bytes 2-3 (FNP §4.12.1 step 2.3).
Real blocks carry a protected body and a ФПУ/ФПК signature; this emulator's are plain TLV lists
(fact sheet §4.7: plausible faking works only against an emulated FN).
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from kkt.protocols.ffd.marking import AnswerRefusal
from kkt.protocols.ofd import crc16_ccitt_false

from .errors import FnCode, FnError

# B6h/BFh refusal reasons (result 20h): the same table as the OFD receipt's (26h)
BAD_FORMAT = int(AnswerRefusal.BAD_FORMAT)
BAD_REQUEST_NUMBER = int(AnswerRefusal.BAD_REQUEST_NUMBER)
BAD_CRC = int(AnswerRefusal.BAD_CRC)
BAD_LENGTH = int(AnswerRefusal.BAD_LENGTH)


def verdict(result: int, status: int | None, request_ok: bool, *, autonomous: bool) -> int:
    """Tag 2106 from the FN's check (2004) and the OISM's answer: bit 0 checked by the FN, bit 1
    positive, bit 2 OISM checked the status (2105 = 0 and a 2109), bit 3 the planned status is
    correct (2109 = 1), bit 4 an autonomous register (no OISM)."""
    value = result & 0x03
    if autonomous:
        return value | 0x10
    if request_ok and status is not None:
        value |= 0x04
        if status == 1:
            value |= 0x08
    return value


def tlv_bytes(tag: int, value: bytes) -> bytes:
    return tag.to_bytes(2, "little") + len(value).to_bytes(2, "little") + value


def tlv_int(tag: int, value: int, size: int) -> bytes:
    return tlv_bytes(tag, value.to_bytes(size, "little"))


def tlv_time(tag: int, when: dt.datetime) -> bytes:
    return tlv_int(tag, calendar.timegm(when.timetuple()), 4)


def parse_tlv(data: bytes) -> dict[int, bytes]:
    """The top-level TLVs of ``data`` as tag → value (the last of a repeated tag); ValueError
    when they do not parse."""
    out: dict[int, bytes] = {}
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise ValueError(f"a TLV header is cut off at byte {offset}")
        tag = int.from_bytes(data[offset : offset + 2], "little")
        size = int.from_bytes(data[offset + 2 : offset + 4], "little")
        if offset + 4 + size > len(data):
            raise ValueError(f"tag {tag} says {size} bytes, {len(data) - offset - 4} are left")
        out[tag] = data[offset + 4 : offset + 4 + size]
        offset += 4 + size
    return out


def seal(body: bytes) -> bytes:
    """``body`` as a block: length and CRC16 ahead of it (module docstring)."""
    length = (len(body) + 4).to_bytes(2, "little")
    return length + crc16_ccitt_false(length + body).to_bytes(2, "little") + body


def block_crc(block: bytes) -> int:
    """The CRC a block carries (what D6h / FF73 confirm with)."""
    return int.from_bytes(block[2:4], "little")


def unseal(block: bytes) -> dict[int, bytes]:
    """The TLVs of a block; `FnError` 20h with reason 7 (length), 5 (CRC) or 2 (format)."""
    if len(block) < 4 or int.from_bytes(block[:2], "little") != len(block):
        raise FnError(FnCode.OFD_REPLY_REJECTED, "the block's length is wrong", reason=BAD_LENGTH)
    if crc16_ccitt_false(block[:2] + block[4:]) != block_crc(block):
        raise FnError(FnCode.OFD_REPLY_REJECTED, "the block's CRC does not match", reason=BAD_CRC)
    try:
        return parse_tlv(block[4:])
    except ValueError as exc:
        raise FnError(
            FnCode.OFD_REPLY_REJECTED, f"the block does not parse: {exc}", reason=BAD_FORMAT
        ) from None


def u(data: dict[int, bytes], tag: int) -> int | None:
    """An unsigned little-endian value of ``tag`` in parsed TLVs, or None."""
    value = data.get(tag)
    return None if value is None else int.from_bytes(value, "little")


@dataclass(frozen=True, slots=True)
class OismRequest:
    """What an OISM reads from a B5h request (FD 81)."""

    number: int  # 2001
    code: bytes  # 2000
    kind: int  # 2100
    planned: int  # 2003
    result: int  # 2004
    when: dt.datetime  # 2114


def read_request(block: bytes) -> OismRequest:
    """Parse a B5h request block; `FnError` 20h when it is not one."""
    data = unseal(block)
    missing = [tag for tag in (2001, 2000, 2100, 2003, 2004, 2114) if tag not in data]
    if missing:
        raise FnError(FnCode.OFD_REPLY_REJECTED, f"request lacks tags {missing}", reason=BAD_FORMAT)
    return OismRequest(
        number=u(data, 2001) or 0,
        code=data[2000],
        kind=u(data, 2100) or 0,
        planned=u(data, 2003) or 0,
        result=u(data, 2004) or 0,
        when=dt.datetime.fromtimestamp(u(data, 2114) or 0, dt.UTC).replace(tzinfo=None),
    )


def oism_answer(
    request: OismRequest, *, request_code: int, status: int | None, when: dt.datetime
) -> bytes:
    """The OISM's answer (FD 83) to ``request``: 2105 ``request_code`` (0 OK, 1 bad request, 2 code
    not recognised) and 2109 ``status`` (1 correct, 2 not, 3 withdrawn; None: left out)."""
    body = tlv_int(2001, request.number, 4) + tlv_time(2114, when) + tlv_int(2100, request.kind, 1)
    if status is not None:
        body += tlv_int(2109, status, 1)
    body += tlv_int(2105, request_code, 1)
    flags = verdict(request.result, status, request_code == 0, autonomous=False)
    body += tlv_int(2005, flags, 1)
    return seal(body)


@dataclass(frozen=True, slots=True)
class NotificationInfo:
    number: int  # 2002
    codes: tuple[bytes, ...]  # 2000 of each 2007
    operation: int = 1  # 1054 of the receipt: 1 sale, 2 sale return ...


def read_notification(block: bytes) -> NotificationInfo:
    """Parse a notification block (what the OISM receives); `FnError` 20h when it is not one."""
    data = unseal(block)
    number = u(data, 2002)
    if number is None:
        raise FnError(FnCode.OFD_REPLY_REJECTED, "notification lacks 2002", reason=BAD_FORMAT)
    codes: list[bytes] = []
    offset, body = 4, block
    while offset < len(body):  # 2007 repeats: walk the list rather than the dict
        tag = int.from_bytes(body[offset : offset + 2], "little")
        size = int.from_bytes(body[offset + 2 : offset + 4], "little")
        if tag == 2007:
            inner = parse_tlv(body[offset + 4 : offset + 4 + size])
            if 2000 in inner:
                codes.append(inner[2000])
        offset += 4 + size
    return NotificationInfo(number, tuple(codes), u(data, 1054) or 1)


def notification_receipt(
    number: int, when: dt.datetime, *, accepted: bool = True, all_positive: bool = True
) -> bytes:
    """The OISM's receipt (FD 84) of notification ``number``: 2111 0 accepted / 1 incorrect,
    2006 0 all codes positive / 1 some negative."""
    body = (
        tlv_int(2002, number, 4)
        + tlv_time(1012, when)
        + tlv_int(2111, 0 if accepted else 1, 1)
        + tlv_int(2006, 0 if all_positive else 1, 1)
    )
    return seal(body)
