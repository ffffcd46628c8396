"""Typed Shtrih-M requests and answers: frozen dataclasses outside, `construct` inside.

A request class declares its fields in wire order, each with its wire type from `fields`::

    @request(0x1A, timeout=3.0)
    @dataclass(frozen=True, slots=True)
    class ReadCashRegister(Request["CashRegisterValue"]):
        password: int = wire(U32)
        register: int = wire(U8)

The decorator builds the `construct` struct from those fields, remembers the answer type named in
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
import functools
import struct
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from construct import Construct, ConstructError, Struct, Terminated

from ..errors import CodecError, FrameError
from .errors import ShtrihDeviceError, device_error
from .frame import code_bytes, command_code

AnswerT = TypeVar("AnswerT", bound="Answer")


def wire(con: Construct, *, default: Any = dataclasses.MISSING) -> Any:
    """Declare a dataclass field with its wire type."""
    return dataclasses.field(default=default, metadata={"wire": con})


def _compiled(struct: Construct) -> Construct:
    """construct's compiled form of ``struct``: the same bytes, about four times faster (a
    round trip of every command's codec is tested); the interpreted one where it cannot compile."""
    try:
        return struct.compile()
    except Exception:  # construct raises assorted errors for what it cannot compile
        return struct


def _wire_fields(cls: Any) -> list[Construct]:
    return [f.name / f.metadata["wire"] for f in dataclasses.fields(cls)]


@functools.cache
def _names_of(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _field_names(cls_or_obj: Any) -> tuple[str, ...]:
    """The dataclass's field names, computed once per class (every encode and decode asks)."""
    return _names_of(cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj))


class _Wire:
    """Build and parse a dataclass through its ``STRUCT``, raising `CodecError` on bad data."""

    STRUCT: ClassVar[Construct]

    def _build(self) -> bytes:
        try:
            return bytes(self.STRUCT.build(_as_dict(self)))
        except (ConstructError, ValueError, TypeError, OverflowError, struct.error) as exc:
            raise CodecError(f"cannot encode {type(self).__name__}: {exc}") from None

    @classmethod
    def _parse(cls, data: bytes) -> typing.Self:
        try:
            parsed = cls.STRUCT.parse(data)
        except (ConstructError, ValueError, struct.error, IndexError) as exc:
            # The compiled parsers report short data as struct.error / IndexError.
            raise CodecError(f"malformed {cls.__name__} ({data.hex(' ')}): {exc}") from None
        return cls(**{name: parsed[name] for name in _field_names(cls)})


class Answer(_Wire):
    """Base of typed answers (the data after ``code, error``)."""

    def encode_data(self) -> bytes:
        return self._build()

    @classmethod
    def decode_data(cls, data: bytes) -> typing.Self:
        """Parse the data; trailing bytes newer firmware may add are ignored."""
        return cls._parse(data)


class Request(_Wire, Generic[AnswerT]):
    """Base of typed requests.  Class attributes are filled in by `request`."""

    CODE: ClassVar[int]
    ANSWER: ClassVar[type[Answer]]
    TIMEOUT: ClassVar[float]
    REPEATABLE: ClassVar[bool]

    def encode(self) -> bytes:
        """The payload to frame: code bytes + parameters."""
        return code_bytes(self.CODE) + self._build()

    @classmethod
    def decode_params(cls, data: bytes) -> typing.Self:
        """Parse the parameters (the payload after the code bytes), strictly."""
        return cls._parse(data)

    def decode_answer(self, payload: bytes) -> AnswerT:
        """Parse this request's answer; raise `ShtrihDeviceError` if the device refused."""
        data = split_answer(self.CODE, payload)
        return self.ANSWER.decode_data(data)  # type: ignore[return-value]


RequestT = TypeVar("RequestT", bound=type[Request[Any]])

_REGISTRY: dict[int, type[Request[Any]]] = {}


def request(
    code: int, *, timeout: float, repeatable: bool = True
) -> Callable[[RequestT], RequestT]:
    """Register a request dataclass under ``code``.

    ``timeout`` is the answer timeout in seconds (fact sheet §1.6: the official drivers' values).
    ``repeatable=False`` marks commands that move money or form a fiscal document: a driver must
    never send them again without first learning whether the first one was executed.
    """

    def register(cls: RequestT) -> RequestT:
        answer = _answer_type(cls)
        cls.CODE = code
        cls.ANSWER = answer
        cls.TIMEOUT = timeout
        cls.REPEATABLE = repeatable
        cls.STRUCT = _compiled(Struct(*_wire_fields(cls), Terminated))
        if code in _REGISTRY:
            raise RuntimeError(f"command {code:#x} registered twice")
        _REGISTRY[code] = cls
        return cls

    return register


def answer(cls: type[AnswerT]) -> type[AnswerT]:
    """Build the struct of an answer dataclass."""
    cls.STRUCT = _compiled(Struct(*_wire_fields(cls)))
    return cls


def _answer_type(cls: type) -> type[Answer]:
    for base in getattr(cls, "__orig_bases__", ()):
        if typing.get_origin(base) is Request:
            (arg,) = typing.get_args(base)
            if isinstance(arg, str | typing.ForwardRef):
                raise TypeError(f"{cls.__name__}: name the answer class itself, not a string")
            return typing.cast(type[Answer], arg)
    raise TypeError(f"{cls.__name__} must derive from Request[AnswerType]")


def _as_dict(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in _field_names(obj)}


# -- payload-level helpers ------------------------------------------------------------------------


def request_types() -> dict[int, type[Request[Any]]]:
    """Every registered request class by command code."""
    return dict(_REGISTRY)


def decode_request(payload: bytes) -> Request[Any]:
    """Device side: turn a received payload into its typed request.

    Raises `CodecError` for an unknown code (a device answers 37h "not supported") or bad
    parameters (a device answers 33h "incorrect parameters").
    """
    try:
        code = command_code(payload)
    except FrameError as exc:
        raise CodecError(str(exc)) from None
    cls = _REGISTRY.get(code)
    if cls is None:
        raise UnknownCommand(code)
    return cls.decode_params(payload[len(code_bytes(code)) :])


class UnknownCommand(CodecError):
    def __init__(self, code: int) -> None:
        super().__init__(f"command {code:#04x} is not known to this codec")
        self.code = code


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
    "wire",
]
