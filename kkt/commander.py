"""What carries command payloads to a register, and the rules every vendor's device shares."""

from __future__ import annotations

from typing import Protocol

from kkt.protocols.errors import LinkError

from .errors import BadAnswer, KktError, OutcomeUnknown, TransportError


class Commander(Protocol):
    """Carries one command payload to the register and brings back its answer payload.

    ``resend`` is True for read-only queries only: the link may repeat them as it likes.
    """

    def exchange(self, payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes: ...

    def close(self) -> None: ...


def checked_serial(serial: str) -> str:
    """An FN serial is 16 digits; anything else is a damaged answer, never cached or printed."""
    if len(serial) != 16 or not serial.isdigit():
        raise BadAnswer(f"the FN serial {serial!r} is not 16 digits: a damaged answer")
    return serial


def link_failure(error: LinkError) -> KktError:
    """The driver's error for a failed exchange: did the register perhaps do it?"""
    if error.maybe_executed:
        return OutcomeUnknown(str(error))
    return TransportError(str(error))
