"""ATOL lower level v3: the task-buffer messages carried in a packet's DATA (sans-IO codecs only).

Layouts (fact sheet ``atol-protocol.md`` §1.4; MultiMag ``atolbuffer.php``, the SAMSON modules and
Zzzzipper's ``AtolTaskLayer`` agree on them).  The host sends one of five commands:

====  ===================================  ==================================================
C1    ``C1 flags TID command…``            `Add`: queue ``data`` (``pwd(2) code params…``)
C2    ``C2 TID``                           `Ack`: the result was received, free the slot
C3    ``C3 TID``                           `Req`: ask for the task's state (and result)
C4    ``C4``                               `Abort`: clear the buffer, stop the current task
C5    ``C5 ackTID flags addTID command…``  `AckAdd`: `Ack` of one task, `Add` of the next
====  ===================================  ==================================================

The device answers with a status byte, A1..A8 for a task's state or B1..B4 for a refusal:

====  ===============  ==================================  ==================
A1    `Pending`        queued, not started                 A1
A2    `InProgress`     executing (Abort's reply names it)  A2 / A2 TID
A3    `Result`         done, the command's reply follows   A3 reply…
A4    `Error`          failed, its error reply follows     A4 reply…
A5    `Stopped`        not run: an earlier task failed     A5 TID
A6    `AsyncResult`    done, sent alone in packet F0       A6 TID reply…
A7    `AsyncError`     failed, sent alone in packet F0     A7 TID reply…
A8    `Waiting`        waiting for external data           A8
B1    `Overflow`       the buffer is full                  B1
B2    `AlreadyExists`  the TID is in use                   B2
B3    `NotFound`       no task with this TID               B3
B4    `IllegalValue`   a field is not acceptable           B4
====  ===============  ==================================  ==================

Only the asynchronous replies (A6, A7) and `Stopped` carry a TID; a synchronous `Result` or
`Error` answers the `Add`/`Req` that names the task, so the TID is known from the request.  The
reply to `AckAdd` is two status bytes, the first for the acknowledged task and the second (with
its data) for the added one: `AckAddReply`.

Every decoder is strict: a wrong code, a missing or extra byte, or an undefined flag bit raises
`CodecError` naming what is wrong.  A device that receives such a command would answer
`IllegalValue`.  TIDs are whole bytes (0..255) here; that hosts wrap them after 0xDF is a
client's habit, not a rule of the layout.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Final

from ..errors import CodecError

# -- codes --------------------------------------------------------------------------------------


class CommandCode(enum.IntEnum):
    """First byte of a host's buffer command."""

    ADD = 0xC1
    ACK = 0xC2
    REQ = 0xC3
    ABORT = 0xC4
    ACK_ADD = 0xC5


class StatusCode(enum.IntEnum):
    """First byte of a device's buffer reply: a task state (A1..A8) or a buffer error (B1..B4)."""

    PENDING = 0xA1
    IN_PROGRESS = 0xA2
    RESULT = 0xA3
    ERROR = 0xA4
    STOPPED = 0xA5
    ASYNC_RESULT = 0xA6
    ASYNC_ERROR = 0xA7
    WAITING = 0xA8
    OVERFLOW = 0xB1
    ALREADY_EXISTS = 0xB2
    NOT_FOUND = 0xB3
    ILLEGAL_VALUE = 0xB4

    @property
    def is_buffer_error(self) -> bool:
        """True for B1..B4: the command was refused and no task state is reported."""
        return self >= StatusCode.OVERFLOW


class TaskFlags(enum.IntFlag):
    """The flags byte of `Add` / `AckAdd` (bit meanings per the spec, quoted by SAMSON)."""

    NONE = 0
    NEED_RESULT = 0x01  # keep the result until Ack and return it
    IGNORE_ERROR = 0x02  # a failure of this task does not stop the queue
    WAIT_ASYNC_DATA = 0x04  # the task may wait for its data without blocking new Adds


KNOWN_FLAGS: Final = TaskFlags.NEED_RESULT | TaskFlags.IGNORE_ERROR | TaskFlags.WAIT_ASYNC_DATA
# The queued command is ``pwd(2) code params…``: at least three bytes.
MIN_COMMAND_SIZE: Final = 3


# -- field checks -------------------------------------------------------------------------------


def _check_tid(name: str, tid: int) -> None:
    if not 0 <= tid <= 0xFF:
        raise CodecError(f"{name} must be one byte (0..255), got {tid}")


def _check_flags(flags: int) -> TaskFlags:
    unknown = int(flags) & ~int(KNOWN_FLAGS)
    if not 0 <= int(flags) <= 0xFF or unknown:
        raise CodecError(
            f"flags {int(flags):#04x} set undefined bits {unknown:#04x}; only NeedResult (01), "
            "IgnoreError (02) and WaitAsyncData (04) exist"
        )
    return TaskFlags(flags)


def _check_command(command: bytes) -> None:
    if len(command) < MIN_COMMAND_SIZE:
        raise CodecError(
            f"the queued command must hold at least the password (2 bytes) and a code, "
            f"got {len(command)} bytes: {command.hex(' ') or '(none)'}"
        )


def _check_size(what: str, data: bytes, expected: int) -> None:
    if len(data) != expected:
        raise CodecError(
            f"{what} is {expected} byte{'s' if expected > 1 else ''}, got {len(data)}: "
            f"{data.hex(' ')}"
        )


# -- the shapes every message has: a code byte, then a TID and/or data ---------------------------


class _Bare:
    """A message that is its code byte alone."""

    __slots__ = ()
    code: ClassVar[int]

    def encode(self) -> bytes:
        """The packet DATA (wrap it with `encode_packet`)."""
        return bytes((self.code,))


@dataclass(frozen=True, slots=True)
class _TidMessage:
    """``code TID``."""

    tid: int
    code: ClassVar[int]

    def __post_init__(self) -> None:
        _check_tid("TID", self.tid)

    def encode(self) -> bytes:
        """The packet DATA (wrap it with `encode_packet`)."""
        return bytes((self.code, self.tid))


@dataclass(frozen=True, slots=True)
class _ReplyMessage:
    """``code reply…``: a status and the command's reply (may be empty)."""

    data: bytes = b""
    code: ClassVar[int]

    def encode(self) -> bytes:
        """The packet DATA (wrap it with `encode_packet`)."""
        return bytes((self.code,)) + self.data


@dataclass(frozen=True, slots=True)
class _AsyncMessage(_TidMessage):
    """``code TID reply…`` in packet ID 0xF0."""

    data: bytes = b""

    def encode(self) -> bytes:
        """The packet DATA (wrap it with `encode_packet` and packet ID 0xF0)."""
        return bytes((self.code, self.tid)) + self.data


# -- host commands ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Add:
    """``C1 flags TID command…``: queue ``data`` (``pwd(2) code params…``) as task ``tid``."""

    tid: int
    flags: TaskFlags
    data: bytes

    code: ClassVar[CommandCode] = CommandCode.ADD

    def __post_init__(self) -> None:
        _check_tid("TID", self.tid)
        object.__setattr__(self, "flags", _check_flags(self.flags))
        _check_command(self.data)

    def encode(self) -> bytes:
        """The packet DATA (wrap it with `encode_packet`)."""
        return bytes((self.code, self.flags, self.tid)) + self.data


@dataclass(frozen=True, slots=True)
class Ack(_TidMessage):
    """``C2 TID``: the result of task ``tid`` arrived; the device may free its slot."""

    code: ClassVar[CommandCode] = CommandCode.ACK


@dataclass(frozen=True, slots=True)
class Req(_TidMessage):
    """``C3 TID``: ask for the state (and the kept result) of task ``tid``."""

    code: ClassVar[CommandCode] = CommandCode.REQ


@dataclass(frozen=True, slots=True)
class Abort(_Bare):
    """``C4``: clear the buffer and try to abort the task being executed."""

    code: ClassVar[CommandCode] = CommandCode.ABORT


@dataclass(frozen=True, slots=True)
class AckAdd:
    """``C5 ackTID flags addTID command…``: `Ack` task ``ack_tid``, `Add` ``data`` as ``tid``."""

    ack_tid: int
    flags: TaskFlags
    tid: int
    data: bytes

    code: ClassVar[CommandCode] = CommandCode.ACK_ADD

    def __post_init__(self) -> None:
        _check_tid("acknowledged TID", self.ack_tid)
        object.__setattr__(self, "flags", _check_flags(self.flags))
        _check_tid("added TID", self.tid)
        _check_command(self.data)

    def encode(self) -> bytes:
        """The packet DATA (wrap it with `encode_packet`)."""
        return bytes((self.code, self.ack_tid, self.flags, self.tid)) + self.data


BufferCommand = Add | Ack | Req | Abort | AckAdd


def decode_buffer_command(data: bytes) -> BufferCommand:
    """Parse a packet's DATA as a host's buffer command; raise `CodecError` saying what is wrong."""
    data = bytes(data)
    if not data:
        raise CodecError("empty DATA is not a buffer command (an empty packet asks for a repeat)")
    try:
        code = CommandCode(data[0])
    except ValueError:
        raise CodecError(
            f"unknown buffer command {data[0]:02X} (C1 Add, C2 Ack, C3 Req, C4 Abort, "
            f"C5 AckAdd): {data.hex(' ')}"
        ) from None
    if code is CommandCode.ADD:
        if len(data) < 3:
            raise CodecError(f"Add is cut short before its TID: {data.hex(' ')}")
        return Add(data[2], TaskFlags(data[1]), data[3:])
    if code is CommandCode.ACK:
        _check_size("Ack (C2 TID)", data, 2)
        return Ack(data[1])
    if code is CommandCode.REQ:
        _check_size("Req (C3 TID)", data, 2)
        return Req(data[1])
    if code is CommandCode.ABORT:
        _check_size("Abort (C4)", data, 1)
        return Abort()
    if len(data) < 4:
        raise CodecError(f"AckAdd is cut short before its added TID: {data.hex(' ')}")
    return AckAdd(data[1], TaskFlags(data[2]), data[3], data[4:])


# -- device replies -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pending(_Bare):
    """``A1``: the task is queued and has not started."""

    code: ClassVar[StatusCode] = StatusCode.PENDING


@dataclass(frozen=True, slots=True)
class InProgress:
    """``A2``: the task is executing.

    The reply to `Abort` names the task that is executing and cannot be aborted (``A2 TID``,
    fact sheet §1.4 after SAMSON); the reply to `Add`/`Req` is the bare byte (``tid`` None).
    """

    tid: int | None = None

    code: ClassVar[StatusCode] = StatusCode.IN_PROGRESS

    def __post_init__(self) -> None:
        if self.tid is not None:
            _check_tid("TID", self.tid)

    def encode(self) -> bytes:
        """The packet DATA (wrap it with `encode_packet`)."""
        if self.tid is None:
            return bytes((self.code,))
        return bytes((self.code, self.tid))


@dataclass(frozen=True, slots=True)
class Result(_ReplyMessage):
    """``A3 reply…``: the task is done; ``data`` is the command's reply (may be empty)."""

    code: ClassVar[StatusCode] = StatusCode.RESULT


@dataclass(frozen=True, slots=True)
class Error(_ReplyMessage):
    """``A4 reply…``: the task failed; ``data`` is the command's error reply."""

    code: ClassVar[StatusCode] = StatusCode.ERROR


@dataclass(frozen=True, slots=True)
class Stopped(_TidMessage):
    """``A5 TID``: the task was not run because an earlier task failed."""

    code: ClassVar[StatusCode] = StatusCode.STOPPED


@dataclass(frozen=True, slots=True)
class AsyncResult(_AsyncMessage):
    """``A6 TID reply…`` in packet ID 0xF0: task ``tid`` finished; ``data`` is its reply."""

    code: ClassVar[StatusCode] = StatusCode.ASYNC_RESULT


@dataclass(frozen=True, slots=True)
class AsyncError(_AsyncMessage):
    """``A7 TID reply…`` in packet ID 0xF0: task ``tid`` failed; ``data`` is its error reply."""

    code: ClassVar[StatusCode] = StatusCode.ASYNC_ERROR


@dataclass(frozen=True, slots=True)
class Waiting(_Bare):
    """``A8``: the task waits for external data (an Add with WaitAsyncData)."""

    code: ClassVar[StatusCode] = StatusCode.WAITING


@dataclass(frozen=True, slots=True)
class Overflow(_Bare):
    """``B1``: the buffer is full; the task was not added."""

    code: ClassVar[StatusCode] = StatusCode.OVERFLOW


@dataclass(frozen=True, slots=True)
class AlreadyExists(_Bare):
    """``B2``: the TID is in use by a task still in the buffer."""

    code: ClassVar[StatusCode] = StatusCode.ALREADY_EXISTS


@dataclass(frozen=True, slots=True)
class NotFound(_Bare):
    """``B3``: no task with this TID is in the buffer (the host may re-add it)."""

    code: ClassVar[StatusCode] = StatusCode.NOT_FOUND


@dataclass(frozen=True, slots=True)
class IllegalValue(_Bare):
    """``B4``: a field of the command is not acceptable."""

    code: ClassVar[StatusCode] = StatusCode.ILLEGAL_VALUE


TaskStatus = Pending | InProgress | Result | Error | Stopped | AsyncResult | AsyncError | Waiting
BufferRefusal = Overflow | AlreadyExists | NotFound | IllegalValue
BufferReply = TaskStatus | BufferRefusal

_BARE: Final[dict[StatusCode, BufferReply]] = {
    StatusCode.PENDING: Pending(),
    StatusCode.WAITING: Waiting(),
    StatusCode.OVERFLOW: Overflow(),
    StatusCode.ALREADY_EXISTS: AlreadyExists(),
    StatusCode.NOT_FOUND: NotFound(),
    StatusCode.ILLEGAL_VALUE: IllegalValue(),
}


def _status_code(byte: int, data: bytes) -> StatusCode:
    try:
        return StatusCode(byte)
    except ValueError:
        raise CodecError(
            f"unknown buffer status {byte:02X} (A1..A8 task states, B1..B4 buffer errors): "
            f"{data.hex(' ')}"
        ) from None


def decode_buffer_reply(data: bytes) -> BufferReply:
    """Parse a packet's DATA as a device's buffer reply; raise `CodecError` saying what is wrong.

    Decodes every status whatever the packet ID; whether A6/A7 arrived in packet 0xF0 (and only
    they did) is for the caller, which knows the ID, to check.  The reply to `AckAdd` has its own
    decoder, `decode_ack_add_reply`.
    """
    data = bytes(data)
    if not data:
        raise CodecError("empty DATA is not a buffer reply (an empty packet asks for a repeat)")
    code = _status_code(data[0], data)
    bare = _BARE.get(code)
    if bare is not None:
        _check_size(f"{code.name} ({code:02X})", data, 1)
        return bare
    if code is StatusCode.IN_PROGRESS:
        if len(data) > 2:
            raise CodecError(f"IN_PROGRESS is A2 or A2 TID, got {len(data)} bytes: {data.hex(' ')}")
        return InProgress(data[1] if len(data) == 2 else None)
    if code is StatusCode.RESULT:
        return Result(data[1:])
    if code is StatusCode.ERROR:
        return Error(data[1:])
    if code is StatusCode.STOPPED:
        _check_size("STOPPED (A5 TID)", data, 2)
        return Stopped(data[1])
    if len(data) < 2:
        raise CodecError(f"{code.name} ({code:02X}) lacks its TID: {data.hex(' ')}")
    if code is StatusCode.ASYNC_RESULT:
        return AsyncResult(data[1], data[2:])
    return AsyncError(data[1], data[2:])


@dataclass(frozen=True, slots=True)
class AckAddReply:
    """``ackStatus addStatus [data]``: the reply to `AckAdd` (fact sheet §1.4 after MultiMag).

    ``ack`` is the single status byte of the acknowledged task (A3/A4 when the Ack went through,
    a B error otherwise); ``add`` is the full reply for the added task, as `Add` would get it.
    """

    ack: StatusCode
    add: BufferReply

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "ack", StatusCode(self.ack))
        except ValueError:
            raise CodecError(f"unknown acknowledgement status {self.ack:#04x}") from None

    def encode(self) -> bytes:
        """The packet DATA (wrap it with `encode_packet`)."""
        return bytes((self.ack,)) + self.add.encode()


def decode_ack_add_reply(data: bytes) -> AckAddReply:
    """Parse a packet's DATA as the reply to `AckAdd`; raise `CodecError` saying what is wrong."""
    data = bytes(data)
    if len(data) < 2:
        raise CodecError(
            f"the reply to AckAdd is two status bytes (+ data), got {len(data)}: "
            f"{data.hex(' ') or '(none)'}"
        )
    return AckAddReply(_status_code(data[0], data), decode_buffer_reply(data[1:]))
