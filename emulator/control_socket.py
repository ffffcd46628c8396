"""One JSON-lines server on a Unix socket: what the emulator's and the emulated OFD's control
channels share.  Each line in is one JSON object, each answer one line out; what differs between
the two is only the handler (`Handler`) and which errors count as the client's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class NotAnObject(ValueError):
    """A line that is JSON but not an object."""

    def __init__(self) -> None:
        super().__init__("send one JSON object per line")


async def serve_json_lines(
    path: Path,
    handle: Handler,
    *,
    refusals: tuple[type[BaseException], ...],
    log: logging.Logger,
) -> asyncio.Server:
    """Listen on the Unix socket ``path`` (a stale socket file is replaced) and answer each line
    with ``handle(request)``.  An exception in ``refusals`` (or a line that is not a JSON object)
    is answered ``{"ok": false, "error": TEXT}``; any other is logged and answered as an internal
    error: a control request never takes the server down."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_socket():
            path.unlink()
    refused: tuple[type[BaseException], ...] = (NotAnObject, json.JSONDecodeError, *refusals)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise NotAnObject
                    answer = await handle(request)
                except refused as exc:
                    answer = {"ok": False, "error": str(exc)}
                except Exception as exc:  # a control request must never take the server down
                    log.exception("control request failed")
                    answer = {"ok": False, "error": f"internal error: {exc}"}
                writer.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_unix_server(client, path=str(path))
