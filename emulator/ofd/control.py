"""The emulated OFD's control channel: ``control.sock`` in its state directory, one JSON object
per line each way, like the emulator's (`kkt.emulator.control`)::

    {"action": "down"}                       -> {"ok": true, "listening": false}
    {"action": "up"}                         -> {"ok": true, "listening": true}
    {"action": "delay", "seconds": 2.5}      -> {"ok": true, "faults": {...}}
    {"action": "drop-ack", "count": 1}       -> stored, then closed without an answer (N times)
    {"action": "reject", "code": 14, "count": 1}  -> answered 1022=CODE, not stored (N times)
    {"action": "corrupt", "count": 1}        -> answered with a broken container CRC (N times)
    {"action": "clear"}                      -> every fault off, listening
    {"action": "status"}                     -> address, documents, faults, counters
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from ..control_socket import serve_json_lines
from .server import OfdServer

log = logging.getLogger("kkt.emulator.ofd")

SOCKET_NAME = "control.sock"
ACTIONS = ("down", "up", "delay", "drop-ack", "reject", "corrupt", "clear", "status")


class OfdControlError(Exception):
    """A request the channel cannot carry out; its text goes back to the client."""


def _count(request: dict[str, Any], default: int = 1) -> int:
    count = request.get("count", default)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise OfdControlError(f'"count" must be a whole number >= 1, not {count!r}')
    return count


class OfdControls:
    """What the control channel does to one `OfdServer`."""

    def __init__(self, server: OfdServer) -> None:
        self.server = server

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        action = request.get("action")
        faults = self.server.faults
        if action == "down":
            await self.server.down()
        elif action == "up":
            try:
                await self.server.up()
            except OSError as exc:
                raise OfdControlError(
                    f"cannot listen on {self.server.host}:{self.server.port} again: "
                    f"{exc.strerror or exc}"
                ) from None
        elif action == "delay":
            seconds = request.get("seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                raise OfdControlError(f'delay needs "seconds" >= 0, not {seconds!r}')
            faults.delay = float(seconds)
        elif action == "drop-ack":
            faults.drop_ack = _count(request)
        elif action == "reject":
            code = request.get("code")
            if isinstance(code, bool) or not isinstance(code, int) or not 1 <= code <= 255:
                raise OfdControlError(
                    f'reject needs "code" 1..255 (11: not recognised, 14: format), not {code!r}'
                )
            faults.reject_code, faults.reject_left = code, _count(request)
        elif action == "corrupt":
            faults.corrupt = _count(request)
        elif action == "clear":
            faults.clear()
            await self.handle({"action": "up"})
        elif action != "status":
            raise OfdControlError(f"unknown action {action!r}; use {', '.join(ACTIONS)}")
        return {"ok": True, **self.status()}

    def status(self) -> dict[str, Any]:
        server = self.server
        return {
            "listening": server.listening,
            "address": f"{server.host}:{server.port}",
            "documents": server.store.count(),
            "faults": server.faults.settings(),
            "stats": server.stats.as_json(),
        }


async def serve_control(state: Path, controls: OfdControls) -> asyncio.Server:
    """Listen on ``state/control.sock`` (a stale socket file is replaced)."""
    return await serve_json_lines(
        state / SOCKET_NAME, controls.handle, refusals=(OfdControlError,), log=log
    )
