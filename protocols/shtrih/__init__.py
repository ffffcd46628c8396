"""Shtrih-M protocol v1: frames, the link state machine, typed commands, errors, modes.

* `frame` -- ``STX LEN CMD DATA LRC`` encoding and the incremental `Deframer`;
* `link` -- `ShtrihLink`, the ENQ/ACK/NAK state machine with HOST and DEVICE roles;
* `classic`, `fn` -- typed requests and answers (one-byte commands and ``FF xx`` FN commands);
* `message` -- the request/answer machinery and payload-level helpers;
* `errors` -- the device error table; `modes` -- modes, submodes, flags and codes.
"""

from . import classic, fn
from .errors import ERRORS, ErrorInfo, ShtrihDeviceError, error_info
from .frame import ACK, ENQ, NAK, STX, Deframer, Frame, decode_frame, encode_frame
from .link import (
    AnswerLost,
    AnswerReceived,
    CommandFailed,
    CommandReceived,
    DeviceSettings,
    EnqMode,
    HostSettings,
    NoResponse,
    NotDelivered,
    OutcomeUnknown,
    Role,
    ShtrihLink,
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
    "Role",
    "ShtrihDeviceError",
    "ShtrihLink",
    "UnknownCommand",
    "classic",
    "decode_frame",
    "decode_request",
    "encode_answer",
    "encode_error",
    "encode_frame",
    "error_info",
    "fn",
    "request_types",
    "split_answer",
]
