"""What ``kkt emulator`` and ``kkt ofd`` share to reach a ``serve`` process through its state
directory: one control request over its socket (`send_control`), and ending the process that
holds the state (`stop_server`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from kkt.emulator.state import LOCK_NAME, Owner, state_owner


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def send_control(path: Path, request: dict[str, Any], *, nobody: str) -> dict[str, Any]:
    """Send ``request`` to the control socket ``path`` and read its one-line answer; raises
    `CliError` (``nobody``'s text when no server listens there)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(10)
            connection.connect(str(path))
            connection.sendall(json.dumps(request).encode() + b"\n")
            answer: dict[str, Any] = json.loads(connection.makefile("rb").readline())
    except (FileNotFoundError, ConnectionRefusedError):
        raise CliError(nobody) from None
    except (OSError, ValueError) as exc:
        raise CliError(f"the control channel at {path} failed: {exc}") from None
    return answer


def stop_server(
    state: Path,
    *,
    group: str,
    serves: Callable[[Owner], bool],
    wait: float,
    survives: str,
    out: TextIO,
    not_serving: str = "",
) -> int:
    """``kkt GROUP stop``: SIGTERM the ``kkt GROUP serve`` holding ``state`` (``serves`` tells
    whether its owner is one) and wait up to ``wait`` seconds until it lets the state go and
    exits; the exit status (1 with a line on stderr when nothing, or something else, holds the
    state, or the process holds on).  ``survives`` says what a kill -9 leaves intact;
    ``not_serving`` ends the line about an owner that is not ``serve``."""
    prog = f"kkt {group} stop"
    try:
        owner = state_owner(state)
    except OSError as exc:
        raise CliError(f"cannot read who holds {state}: {exc.strerror or exc}") from None
    if owner is None:
        print(
            f"{prog}: nothing serves {state} (nobody holds {state / LOCK_NAME}); "
            f"start it with `kkt {group} serve --state {state}`",
            file=sys.stderr,
        )
        return 1
    if not serves(owner) or owner.pid is None:
        end = f"; `kill {owner.pid}` ends it" if owner.pid is not None else ""
        print(
            f"{prog}: {state} is held by {owner}, not by `kkt {group} serve`{not_serving}{end}",
            file=sys.stderr,
        )
        return 1
    pid = owner.pid
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it ended meanwhile: the wait below sees the state free
    except PermissionError:
        raise CliError(
            f"no permission to stop process {pid} (another user's): run this as its user"
        ) from None
    deadline = time.monotonic() + max(wait, 0.0)
    while (now := state_owner(state)) is not None and now.pid == pid:
        if time.monotonic() >= deadline:
            print(
                f"{prog}: process {pid} still holds {state} after {wait:g} s; "
                f"`kill -9 {pid}` ends it ({survives} survive a kill)",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.05)
    while running(pid) and time.monotonic() < deadline:  # the state is free; let it exit too
        time.sleep(0.05)
    print(f"stopped process {pid} ({owner.command})", file=out)
    return 0


def running(pid: int) -> bool:
    """Whether process ``pid`` is alive (a zombie, ended but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: alive as far as we can tell
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
