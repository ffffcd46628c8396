"""The control channel of a running emulator: a Unix socket in its state directory.

Testers steer the device while clients talk to it: advance the clock, take the paper out, open the
cover, inject wire and device faults, read the tape.  One JSON object per line each way::

    {"action": "clock", "advance": 90000}          -> {"ok": true, "now": "..."}
    {"action": "paper", "state": "out"}            -> {"ok": true}
    {"action": "fault", "drop_answers": 1}         -> {"ok": true, "faults": {...}}
    {"action": "tape"}                             -> {"ok": true, "lines": [...], "width": 48}
    {"action": "ofd", "deliver": "all"}            -> {"ok": true, "delivered": 3, "unsent": 0}
    {"action": "ofd", "send": true}                -> {"ok": true, "sent": 3, "unsent": 0, ...}
    {"action": "oism", "answer": "withdrawn"}      -> {"ok": true, "oism": {...}, "marking": {...}}
    {"action": "oism", "code": "01...", "answer": "unknown"}
    {"action": "oism", "reset": true}              (the default answers again: valid; unknown
                                                    for a code the FN cannot identify; wrong
                                                    status for a code sold)
    {"action": "oism", "deliver": "all"}           (the FN's notifications to the OISM: drained)

OISM answers: valid, wrong-status, withdrawn, unknown, offline, corrupt (`kkt.emulator.ofd.oism`).

Every action runs under the device's command lock, so it never lands in the middle of a command
-- but ``ofd send``, a network exchange that takes the lock for each of the FN's steps itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .control_socket import serve_json_lines
from .faults import FIELDS, Faults
from .fn import FnError
from .personality import Personality
from .register import Refusal

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"


class ControlError(Exception):
    """A request the channel cannot carry out; its text goes back to the client."""


class Controls:
    """What the control channel can do to one emulated register."""

    def __init__(
        self,
        register: Personality,
        faults: Faults,
        *,
        ofd_send: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        self.register = register
        self.faults = faults
        self.ofd_send = ofd_send  # the served register's "send the OFD queue now"

    def sends(self, request: dict[str, Any]) -> bool:
        """Whether ``request`` is ``ofd send`` (run by `send`, outside the command lock)."""
        return request.get("action") == "ofd" and request.get("send") is True

    async def send(self) -> dict[str, Any]:
        if self.ofd_send is None:
            raise ControlError("this emulator has no OFD client; serve it with --ofd HOST:PORT")
        return {"ok": True, **await self.ofd_send()}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        action = request.get("action")
        handler = getattr(self, f"_do_{action}", None) if isinstance(action, str) else None
        if handler is None:
            raise ControlError(
                f"unknown action {action!r}; use clock, paper, cover, fault, power-loss, tape, "
                "qr, ofd, oism or status"
            )
        result: dict[str, Any] = handler(request)
        return {"ok": True, **result}

    def _do_clock(self, request: dict[str, Any]) -> dict[str, Any]:
        seconds = request.get("advance")
        if not isinstance(seconds, int | float):
            raise ControlError('clock needs "advance": seconds (negative to go back)')
        advance = getattr(self.register.clock, "advance", None)
        if advance is None:
            raise ControlError("this emulator's clock cannot be moved")
        advance(dt.timedelta(seconds=seconds))
        self.register.settings.remember_clock(self.register.clock)
        return {"now": self.register.clock.now().isoformat()}

    def _do_paper(self, request: dict[str, Any]) -> dict[str, Any]:
        state = request.get("state")
        printer = self.register.printer
        if state == "out":
            printer.paper = False
        elif state == "in":
            printer.paper = True
        elif state == "after" and isinstance(request.get("lines"), int):
            printer.paper_left = int(request["lines"])
        else:
            raise ControlError('paper needs "state": "out", "in", or "after" with "lines"')
        return {}

    def _do_cover(self, request: dict[str, Any]) -> dict[str, Any]:
        state = request.get("state")
        if state not in ("open", "close"):
            raise ControlError('cover needs "state": "open" or "close"')
        self.register.printer.cover_open = state == "open"
        return {}

    def _do_fault(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("clear"):
            self.faults.clear()
        changes = {name: request[name] for name in FIELDS if name in request}
        for name, value in changes.items():
            problem = _fault_problem(name, value)
            if problem:
                raise ControlError(f"fault {name}: {problem}, not {value!r}")
        try:
            self.faults.configure(**changes)
        except (TypeError, ValueError) as exc:
            raise ControlError(str(exc)) from None
        return {"faults": self.faults.settings()}

    def _do_ofd(self, request: dict[str, Any]) -> dict[str, Any]:
        """Act as the OFD: confirm the FN's queue, oldest first (all, or ``deliver`` documents),
        which lifts the 30-day block a backlog puts on new documents."""
        limit = request.get("deliver", "all")
        if limit != "all" and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise ControlError('ofd needs "deliver": "all" or a number of documents >= 1')
        fn = self.register.fn
        delivered = 0
        while (first := fn.ofd_queue().first_number) and (limit == "all" or delivered < limit):
            fn.ofd_confirm(first)
            delivered += 1
        return {"delivered": delivered, "unsent": fn.ofd_queue().unsent}

    def _do_oism(self, request: dict[str, Any]) -> dict[str, Any]:
        """Steer the emulated OISM: its answer for one code (``code``) or all, ``reset``, or
        ``deliver`` the FN's marking notifications to it (all or a number)."""
        from .ofd.oism import OismError, answer_named  # the ofd package imports this module's

        model = self.register.model
        oism = model.oism
        if request.get("reset"):
            oism.reset()
        if "answer" in request:
            code = request.get("code")
            if code is not None and (not isinstance(code, str) or not code or not code.isascii()):
                raise ControlError('oism "code" is the marking code as ASCII text (GS as \\u001d)')
            try:
                answer = answer_named(str(request["answer"]))
            except OismError as exc:
                raise ControlError(str(exc)) from None
            oism.set(answer, None if code is None else code.encode("ascii"))
        delivered = None
        if "deliver" in request:
            limit = request["deliver"]
            if limit != "all" and (
                not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
            ):
                raise ControlError('oism needs "deliver": "all" or a number of notifications >= 1')
            delivered = oism.deliver(model.fn.marking, None if limit == "all" else limit)
        status = model.fn.marking.status()
        result: dict[str, Any] = {
            "oism": oism.settings(),
            "marking": {"step": int(status.step), "checked": status.saved, "queued": status.queued},
        }
        if delivered is not None:
            result["delivered"] = delivered
        return result

    def _do_power_loss(self, request: dict[str, Any]) -> dict[str, Any]:
        self.register.power_loss()
        return {"links": self.faults.power_cycle_links()}

    def _do_tape(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"lines": self.register.tape(), "width": self.register.line_width}

    def _do_qr(self, request: dict[str, Any]) -> dict[str, Any]:
        number = request.get("document")
        if not isinstance(number, int):
            raise ControlError('qr needs "document": a fiscal document number')
        return {"qr": self.register.qr(number)}

    def _do_status(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"status": self.register.status_text(), "faults": self.faults.settings()}


def _fault_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be fault ``name``, or None when it can."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if name in ("drop", "corrupt", "lose_rate"):
        return None if number and 0 <= value <= 1 else "a probability from 0 to 1"
    if name == "delay":
        return None if number and 0 <= value <= 60 else "seconds from 0 to 60"
    if name in ("drop_answers", "lose_answers", "hang_up"):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else "a count >= 0"
    if name == "split":
        return None if isinstance(value, bool) else "true or false"
    if name == "seed":
        return (
            None
            if value is None or (isinstance(value, int) and not isinstance(value, bool))
            else "an integer"
        )
    return None


async def serve_control(state: Path, controls: Controls, lock: asyncio.Lock) -> asyncio.Server:
    """Listen on ``state/control.sock`` (a stale socket file is replaced)."""

    async def handle(request: dict[str, Any]) -> dict[str, Any]:
        if controls.sends(request):
            return await controls.send()
        async with lock:
            return controls.handle(request)

    return await serve_json_lines(
        state / SOCKET_NAME, handle, refusals=(ControlError, Refusal, FnError), log=log
    )
