"""Shtrih-M protocol v1: frames, the link (host and device ends), typed commands, errors, modes.

* `frame` -- ``STX LEN CMD DATA LRC`` encoding and the incremental `Deframer`;
* `host`, `device` -- `ShtrihHostLink` and `ShtrihDeviceLink`, the two ends of the ENQ/ACK/NAK
  link; `link` -- what they share (events, errors, settings);
* `classic`, `fn` -- typed requests and answers (one-byte commands and ``FF xx`` FN commands);
  `marking` -- the marking-code commands FF61, FF67-FF73;
* `message` -- the request/answer machinery and payload-level helpers;
* `errors` -- the device error table; `modes` -- modes, submodes, flags and codes.
"""

from ..line import AnswerReceived, CommandFailed
from . import classic, fn, marking
from .device import ShtrihDeviceLink
from .errors import ERRORS, ErrorInfo, ShtrihDeviceError, error_info
from .frame import ACK, ENQ, NAK, STX, Deframer, Frame, decode_frame, encode_frame
from .host import ShtrihHostLink
from .link import (
    AnswerLost,
    CommandReceived,
    DeviceSettings,
    EnqMode,
    HostSettings,
    NoResponse,
    NotDelivered,
    OutcomeUnknown,
)
from .message import (
    Answer,
    Request,
    UnknownCommand,
    decode_request,
    encode_answer,
    encode_error,
    request_types,
    split_answer,
)

__all__ = [
    "ACK",
    "ENQ",
    "ERRORS",
    "NAK",
    "STX",
    "Answer",
    "AnswerLost",
    "AnswerReceived",
    "CommandFailed",
    "CommandReceived",
    "Deframer",
    "DeviceSettings",
    "EnqMode",
    "ErrorInfo",
    "Frame",
    "HostSettings",
    "NoResponse",
    "NotDelivered",
    "OutcomeUnknown",
    "Request",
    "ShtrihDeviceError",
    "ShtrihDeviceLink",
    "ShtrihHostLink",
    "UnknownCommand",
    "classic",
    "decode_frame",
    "decode_request",
    "encode_answer",
    "encode_error",
    "encode_frame",
    "error_info",
    "fn",
    "marking",
    "request_types",
    "split_answer",
]
