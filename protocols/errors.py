"""The protocol core's error taxonomy.

Every failure the core can report is one of these classes, so a caller can tell "the bytes were
bad" (`FrameError`, `CodecError`) from "the exchange failed" (`LinkError`, which says whether the
device may have executed the command) and from "the device refused" (`DeviceError`, which keeps the
vendor's code).  Messages say what to do next, not only what happened.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error raised by `kkt.protocols`."""


class FrameError(ProtocolError):
    """A frame cannot be built or parsed (too long, empty, bad checksum, truncated)."""


class CodecError(ProtocolError):
    """A command or answer payload does not match its layout (wrong code, truncated, bad value)."""


class LinkError(ProtocolError):
    """An exchange with the device did not complete.

    ``maybe_executed`` is the one fact a caller must act on: when it is False the device certainly
    did not take the command and it is safe to send it again; when it is True the device may have
    executed it, and the command must not be repeated blindly -- ask the device (for example the
    fiscal storage's last document) before deciding.
    """

    def __init__(self, message: str, *, command: bytes = b"", maybe_executed: bool) -> None:
        super().__init__(message)
        self.command = command
        self.maybe_executed = maybe_executed


class DeviceError(ProtocolError):
    """The device answered with a non-zero error code.

    The command was received and refused; it was not executed (a device reports an error instead
    of doing the work), so repeating it cannot fiscalize twice.  ``code`` is the vendor's code,
    ``retry_may_help`` says whether the same command can succeed later without the operator's help
    (for example "printing in progress").
    """

    def __init__(
        self,
        message: str,
        *,
        code: int,
        command: int,
        retry_may_help: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.command = command
        self.retry_may_help = retry_may_help
