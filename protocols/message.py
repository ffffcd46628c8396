"""Typed requests and answers for every vendor: frozen dataclasses outside, `construct` inside.

A message class declares its fields in wire order, each with its wire type (`fields`)::

    @request(0x50, timeout=10.0, repeatable=False)
    class CashIn(Request[CashOperationAnswer]):
        password: int = wire(U32)
        amount: int = wire(Money5)

The vendor's decorator (Shtrih ``request``, ATOL ``command``; `answer` for answers) makes the
class a frozen dataclass with slots, builds the struct from its fields, remembers the answer type
named in ``Request[...]``, and adds the class to the vendor's `Catalogue` so a device can decode
any request.  A field without a wire type (ATOL's password) belongs to the vendor's envelope.

What differs between vendors stays with them (Shtrih ``shtrih.message``, ATOL ``atol.commands``):
how a payload starts (the code bytes; a password, a code and a sub-code), how an answer carries
an error, and whether answers are read strictly (``STRICT``; requests always are).

Each struct is compiled by construct (about four times faster; the same bytes) and kept
interpreted beside it: a failure is explained by running the interpreted one, which knows the
field at fault, so a `CodecError` names the message, the field and what is wrong.
"""

from __future__ import annotations

import dataclasses
import struct
import typing
from io import BytesIO
from typing import Any, ClassVar, Generic, TypeVar

from construct import (
    Construct,
    ConstructError,
    Container,
    FormatField,
    Struct,
    Tell,
    Terminated,
)
from construct import (
    Flag as _ConstructFlag,
)

from .errors import CodecError
from .fields import Bool, Int, Reserved

_FAILURES = (
    ConstructError,
    CodecError,
    ValueError,
    TypeError,
    OverflowError,
    AttributeError,
    KeyError,
    IndexError,
    struct.error,
)


def wire(con: Construct, *, default: Any = dataclasses.MISSING, reserved_after: int = 0) -> Any:
    """Declare a dataclass field with its wire type; ``reserved_after`` zero bytes follow it
    (written as zeros, ignored when read)."""
    return dataclasses.field(
        default=default, metadata={"wire": con, "reserved_after": reserved_after}
    )


def wire_fields(cls: type) -> list[tuple[str, Construct, int]]:
    """``(name, wire type, reserved bytes after it)`` of each field on the wire, in order."""
    return [
        (f.name, f.metadata["wire"], f.metadata["reserved_after"])
        for f in dataclasses.fields(cls)
        if "wire" in f.metadata
    ]


def _members(cls: type) -> list[Construct]:
    members: list[Construct] = []
    for name, con, reserved in wire_fields(cls):
        # construct's compiled Flag reads a missing byte as True: use the strict one.
        members.append(name / (Bool() if con is _ConstructFlag else con))
        if reserved:
            members.append(Reserved(reserved))
    return members


class _Codec:
    """A struct's compiled parse and build functions, called without construct's per-call
    set-up (a fresh context; the compiled code only reads it)."""

    def __init__(self, struct_: Construct) -> None:
        try:
            compiled = struct_.compile()
            self._parse, self._build = compiled.parsefunc, compiled.buildfunc
        except Exception:  # construct raises assorted errors for what it cannot compile
            self._parse = lambda io, context: struct_._parsereport(io, context, "(parsing)")
            self._build = lambda obj, io, context: struct_._build(obj, io, context, "(building)")
        context = Container(_parsing=False, _building=False, _sizing=False)
        context._params = context
        self._context = context

    def parse(self, data: bytes) -> Any:
        return self._parse(BytesIO(data), self._context)

    def build(self, values: dict[str, Any]) -> bytes:
        stream = BytesIO()
        self._build(values, stream, self._context)
        return stream.getvalue()


class Message:
    """Base of requests and answers: the fields on the wire, built and parsed by ``STRUCT``."""

    __slots__ = ()

    STRICT: ClassVar[bool] = True  # refuse bytes after the fields
    STRUCT: ClassVar[_Codec | None]  # compiled; None when no field is on the wire
    _LOOSE: ClassVar[Construct]  # interpreted, without the end check: to explain failures
    _NAMES: ClassVar[tuple[str, ...]]
    _WIRES: ClassVar[dict[str, Construct]]

    @classmethod
    def _prepare(cls) -> None:
        members = _members(cls)
        cls._NAMES = tuple(name for name, _, _ in wire_fields(cls))
        cls._WIRES = {name: con for name, con, _ in wire_fields(cls)}
        end = [Terminated] if cls.STRICT else []
        cls.STRUCT = _Codec(Struct(*members, *end)) if members else None
        cls._LOOSE = Struct(*members, "_end" / Tell)

    def encode_fields(self) -> bytes:
        """The fields' bytes."""
        if self.STRUCT is None:
            return b""
        values = {name: getattr(self, name) for name in self._NAMES}
        try:
            return self.STRUCT.build(values)
        except _FAILURES as exc:
            raise self._build_error(values, exc) from None

    @classmethod
    def decode_values(cls, data: bytes) -> dict[str, Any]:
        """The fields' values parsed from ``data`` (strictly when ``STRICT``: nothing may
        follow them)."""
        if cls.STRUCT is None:
            if data and cls.STRICT:
                raise cls._parse_error(data, None)
            return {}
        try:
            parsed = cls.STRUCT.parse(data)
        except _FAILURES as exc:
            raise cls._parse_error(data, exc) from None
        return {name: parsed[name] for name in cls._NAMES}

    def _build_error(self, values: dict[str, Any], exc: Exception) -> CodecError:
        name = type(self).__name__
        try:
            self._LOOSE.build(values)
        except ConstructError as error:
            field, message = _where(error)
            if field in self._WIRES:
                return CodecError(
                    _field_message(name, field, self._WIRES[field], values[field], message)
                )
            return CodecError(f"cannot encode {name}: {message}")
        except _FAILURES as error:
            exc = error
        return CodecError(f"cannot encode {name}: {exc}")

    @classmethod
    def _parse_error(cls, data: bytes, exc: Exception | None) -> CodecError:
        shown = data.hex(" ") or "nothing"
        try:
            parsed = cls._LOOSE.parse(data)
        except ConstructError as error:
            field, message = _where(error)
            at = f" at {cls.__name__}.{field}" if field else ""
            return CodecError(f"{cls.__name__} is cut short or malformed{at}: {message} ({shown})")
        except _FAILURES as error:
            exc = error
        else:
            extra = len(data) - parsed["_end"]
            if extra > 0:
                return CodecError(
                    f"{cls.__name__} has {extra} extra byte{'s' if extra > 1 else ''} "
                    f"after its fields: {data[-extra:].hex(' ')}"
                )
        return CodecError(f"malformed {cls.__name__} ({shown}): {exc}")


def _where(error: ConstructError) -> tuple[str, str]:
    """The field a construct error names (its path's last step) and its message."""
    message = str(error).split("\n", 1)[-1]
    path = getattr(error, "path", None) or ""
    field = path.rsplit("->", 1)[-1].strip() if "->" in path else ""
    return field, message


def _field_message(name: str, field: str, con: Construct, value: Any, message: str) -> str:
    """``Class.field = value`` and what is wrong, plainly for integers (the numbers they hold)."""
    if isinstance(con, FormatField):
        size, signed = con.length, con.fmtstr[-1].islower()
    elif isinstance(con, Int):
        size, signed = con.length, con.signed
    else:
        return f"{name}.{field} = {value!r}: {message}"
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name}.{field} must be an int, got {value!r}"
    bits = 8 * size
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    plural = "s" if size > 1 else ""
    return f"{name}.{field} = {value} does not fit {size} byte{plural} ({low}..{high})"


AnswerT = TypeVar("AnswerT", bound="Answer")
ClassT = TypeVar("ClassT", bound=type)


class Answer(Message):
    """Base of typed answers: the data after the vendor's reply header."""

    __slots__ = ()

    def encode_data(self) -> bytes:
        """The data after the header (the vendor's ``encode_answer`` adds the header)."""
        return self.encode_fields()

    @classmethod
    def decode_data(cls, data: bytes) -> typing.Self:
        """Parse the data after the header."""
        return cls(**cls.decode_values(bytes(data)))


class Request(Message, Generic[AnswerT]):
    """Base of typed requests; the class attributes are filled in by `register`.

    ``PREFIX`` holds the bytes after the code that pick the request (ATOL's A4h sub-command).
    """

    __slots__ = ()

    CODE: ClassVar[int]
    PREFIX: ClassVar[bytes] = b""
    ANSWER: ClassVar[type[Answer]]
    TIMEOUT: ClassVar[float]
    REPEATABLE: ClassVar[bool]

    def encode(self) -> bytes:
        """The payload to frame (the vendor says how it starts)."""
        raise NotImplementedError

    @classmethod
    def answer_data(cls, reply: bytes) -> bytes:
        """The answer's data in ``reply``, or the device's error raised (the vendor's rule)."""
        raise NotImplementedError

    def decode_answer(self, reply: bytes) -> AnswerT:
        """This request's answer; the vendor's `DeviceError` if the device refused, `CodecError`
        if the reply is malformed."""
        return typing.cast(AnswerT, self.ANSWER.decode_data(self.answer_data(reply)))


RequestClass = TypeVar("RequestClass", bound=type[Request[Any]])


RequestT = TypeVar("RequestT", bound=Request[Any])


class Catalogue(Generic[RequestT]):
    """One vendor's request classes by code and prefix: what a device can decode."""

    def __init__(self) -> None:
        self._by_code: dict[int, list[type[RequestT]]] = {}

    def add(self, cls: type[RequestT]) -> None:
        siblings = self._by_code.setdefault(cls.CODE, [])
        if any(other.PREFIX == cls.PREFIX for other in siblings):
            raise RuntimeError(f"command {cls.CODE:02X}h {cls.PREFIX.hex()} registered twice")
        siblings.append(cls)
        # The longest prefix is tried first (ATOL's 91 34 00 00 before 91).
        siblings.sort(key=lambda c: -len(c.PREFIX))

    def knows(self, code: int) -> bool:
        return code in self._by_code

    def find(self, code: int, params: bytes) -> type[RequestT] | None:
        """The class of ``code`` whose prefix starts ``params``."""
        for cls in self._by_code.get(code, ()):
            if params.startswith(cls.PREFIX):
                return cls
        return None

    def classes(self) -> list[type[RequestT]]:
        return [cls for group in self._by_code.values() for cls in group]


def frozen(cls: ClassT) -> ClassT:
    """Make ``cls`` a frozen dataclass with slots (what every message is)."""
    return typing.cast(ClassT, dataclasses.dataclass(frozen=True, slots=True)(cls))


def register(
    catalogue: Catalogue[Any],
    cls: RequestClass,
    code: int,
    *,
    prefix: bytes = b"",
    timeout: float,
    repeatable: bool,
) -> RequestClass:
    """Make ``cls`` a frozen dataclass, fill in its attributes, build its struct and add it to
    ``catalogue`` (the vendors' decorators call this)."""
    cls = frozen(cls)
    cls.CODE = code
    cls.PREFIX = prefix
    cls.ANSWER = _answer_type(cls)
    cls.TIMEOUT = timeout
    cls.REPEATABLE = repeatable
    cls._prepare()
    catalogue.add(cls)
    return cls


@typing.dataclass_transform(frozen_default=True, field_specifiers=(wire, dataclasses.field))
def answer(cls: type[AnswerT]) -> type[AnswerT]:
    """Make ``cls`` a frozen dataclass and build its struct."""
    cls = frozen(cls)
    cls._prepare()
    return cls


def _answer_type(cls: type) -> type[Answer]:
    for klass in cls.__mro__:
        for base in klass.__dict__.get("__orig_bases__", ()):
            origin = typing.get_origin(base)
            if isinstance(origin, type) and issubclass(origin, Request):
                (arg,) = typing.get_args(base)
                if not isinstance(arg, type) or not issubclass(arg, Answer):
                    raise TypeError(f"{cls.__name__}: name the answer class itself, not {arg!r}")
                return arg
    raise TypeError(f"{cls.__name__} must derive from Request[AnswerType]")


class UnknownCommand(CodecError):
    """A command code (or ATOL's A4h sub-command) the vendor's catalogue does not know; ``code``
    is the command code, ``sub`` the sub-command byte when the code is known but it is not."""

    def __init__(self, code: int, sub: int | None = None) -> None:
        what = f"{code:02X}h" if sub is None else f"{code:02X}h sub-command {sub:02X}h"
        super().__init__(
            f"command {what} is not known to this codec; a device refuses it with an error reply"
        )
        self.code = code
        self.sub = sub
