"""Shtrih-M's envelope on the shared engine (`kkt.protocols.message`): how a payload starts,
how an answer carries an error, and the payload-level helpers.

A request class declares its fields in wire order, each with its wire type::

    @request(0x1A, timeout=3.0)
    class ReadCashRegister(Request[CashRegisterValue]):
        password: int = wire(U32)
        register: int = wire(U8)

`request` makes it a frozen dataclass, builds its struct, remembers the answer type named in
``Request[...]``, and registers the code so a device can decode any payload (`decode_request`).
Host side: ``payload = req.encode()``; ``answer = req.decode_answer(payload)`` (raises
`ShtrihDeviceError` for a non-zero error byte).  Device side: ``req = decode_request(payload)``;
``encode_answer(code, answer)`` or ``encode_error(code, error)``.

Answers follow ``code, error, data``; with an error the data is absent, and an FF command the
device does not know may come back as just ``FF <error>`` (fact sheet §1.2) -- both decode to the
same `ShtrihDeviceError`.  Requests are parsed strictly (a device refuses bad lengths); answers
may carry trailing bytes newer firmware added, which are ignored.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any

from .. import message
from ..errors import CodecError, FrameError
from ..message import AnswerT, Catalogue, RequestClass, UnknownCommand, answer, register, wire
from .errors import ShtrihDeviceError, device_error
from .frame import code_bytes, command_code

_CATALOGUE: Catalogue[Request[Any]] = Catalogue()


class Answer(message.Answer):
    """Base of typed answers (the data after ``code, error``); trailing bytes newer firmware may
    add are ignored."""

    __slots__ = ()
    STRICT = False


class Request(message.Request[AnswerT]):
    """Base of typed requests.  Class attributes are filled in by `request`."""

    __slots__ = ()

    def encode(self) -> bytes:
        """The payload to frame: code bytes + parameters."""
        return code_bytes(self.CODE) + self.encode_fields()

    @classmethod
    def decode_params(cls, data: bytes) -> typing.Self:
        """Parse the parameters (the payload after the code bytes), strictly."""
        return cls(**cls.decode_values(data))

    @classmethod
    def answer_data(cls, reply: bytes) -> bytes:
        return split_answer(cls.CODE, reply)


@typing.dataclass_transform(frozen_default=True, field_specifiers=(wire, dataclasses.field))
def request(
    code: int, *, timeout: float, repeatable: bool = True
) -> Callable[[RequestClass], RequestClass]:
    """Register a request dataclass under ``code``.

    ``timeout`` is the answer timeout in seconds (fact sheet §1.6: the official drivers' values).
    ``repeatable=False`` marks commands that move money or form a fiscal document: a driver must
    never send them again without first learning whether the first one was executed.
    """

    def decorate(cls: RequestClass) -> RequestClass:
        return register(_CATALOGUE, cls, code, timeout=timeout, repeatable=repeatable)

    return decorate


# -- payload-level helpers ------------------------------------------------------------------------


def request_types() -> dict[int, type[Request[Any]]]:
    """Every registered request class by command code."""
    return {cls.CODE: cls for cls in _CATALOGUE.classes()}


def decode_request(payload: bytes) -> Request[Any]:
    """Device side: turn a received payload into its typed request.

    Raises `CodecError` for an unknown code (a device answers 37h "not supported") or bad
    parameters (a device answers 33h "incorrect parameters").
    """
    try:
        code = command_code(payload)
    except FrameError as exc:
        raise CodecError(str(exc)) from None
    cls = _CATALOGUE.find(code, b"")
    if cls is None:
        raise UnknownCommand(code)
    return cls.decode_params(payload[len(code_bytes(code)) :])


def split_answer(code: int, payload: bytes) -> bytes:
    """Check an answer's code and error byte; return its data or raise `ShtrihDeviceError`."""
    prefix = code_bytes(code)
    if len(prefix) == 2 and len(payload) == 2 and payload[0] == 0xFF and payload[1] != prefix[1]:
        # "FF <err>": the device did not recognise the FF sub-command at all.
        raise device_error(payload[1], code)
    if not payload.startswith(prefix):
        raise CodecError(
            f"answer {payload[:2].hex(' ')} does not belong to command {prefix.hex(' ')}"
        )
    if len(payload) <= len(prefix):
        raise CodecError(f"answer to {prefix.hex(' ')} has no error byte")
    error = payload[len(prefix)]
    if error:
        raise device_error(error, code)
    return payload[len(prefix) + 1 :]


def encode_answer(code: int, answer: Answer) -> bytes:
    """Device side: the payload of a successful answer."""
    return code_bytes(code) + b"\x00" + answer.encode_data()


def encode_error(code: int, error: int) -> bytes:
    """Device side: the payload of a refusal (code and error only, no data)."""
    if not 1 <= error <= 0xFF:
        raise CodecError(f"error code {error} must be 1..255")
    return code_bytes(code) + bytes((error,))


__all__ = [
    "Answer",
    "Request",
    "ShtrihDeviceError",
    "UnknownCommand",
    "answer",
    "decode_request",
    "encode_answer",
    "encode_error",
    "request",
    "request_types",
    "split_answer",
]
