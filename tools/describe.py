"""Human-readable descriptions of Shtrih-M frames: used by ``kkt decode`` and ``kkt demo``."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from kkt.protocols.errors import CodecError, DeviceError
from kkt.protocols.line import BadFrame, Junk
from kkt.protocols.shtrih.frame import (
    Control,
    ControlByte,
    Frame,
    Token,
    command_code,
)
from kkt.protocols.shtrih.message import decode_request, request_types, split_answer

_CONTROL_NAMES = {
    ControlByte.ENQ: "ENQ",
    ControlByte.ACK: "ACK",
    ControlByte.NAK: "NAK",
    ControlByte.FILLER: "FF (filler after ACK)",
}


def describe_token(token: Token, *, prefer: str = "auto") -> str:
    """One line for a token.  ``prefer``: "request", "answer" or "auto" (request if it parses)."""
    if isinstance(token, Control):
        return _CONTROL_NAMES[token.byte]
    if isinstance(token, Junk):
        return f"junk {token.data.hex(' ')}"
    if isinstance(token, BadFrame):
        return f"bad frame ({token.reason}): {token.raw.hex(' ')}"
    return describe_payload(token.payload, prefer=prefer)


def describe_payload(payload: bytes, *, prefer: str = "auto") -> str:
    if prefer in ("auto", "request"):
        try:
            return "request " + _fields(decode_request(payload))
        except CodecError as exc:
            if prefer == "request":
                return f"undecodable request {payload.hex(' ')}: {exc}"
    return "answer " + describe_answer(payload)


def describe_answer(payload: bytes) -> str:
    try:
        code = command_code(payload)
    except CodecError as exc:
        return f"{payload.hex(' ')}: {exc}"
    cls = request_types().get(code)
    if cls is None:
        return f"to unknown command {payload[:2].hex(' ')}: {payload.hex(' ')}"
    try:
        return _fields(
            cls.ANSWER.decode_data(split_answer(code, payload)), name=f"{cls.__name__} -> "
        )
    except DeviceError as exc:
        return f"{cls.__name__} -> refused: {exc}"
    except CodecError as exc:
        return f"{cls.__name__} -> malformed: {exc}"


def _fields(message: Any, *, name: str = "") -> str:
    parts = []
    for field in dataclasses.fields(message):
        value = getattr(message, field.name)
        if field.name == "password":
            continue
        if isinstance(value, bytes):
            value = value.hex(" ") or "-"
        elif isinstance(value, enum.Enum):
            value = value.name or repr(value)
        parts.append(
            f"{field.name}={value!s}" if not isinstance(value, str) else f"{field.name}={value!r}"
        )
    return f"{name}{type(message).__name__}({', '.join(parts)})"


def frame_summary(token: Token) -> str:
    if isinstance(token, Frame):
        return describe_payload(token.payload)
    return describe_token(token)
