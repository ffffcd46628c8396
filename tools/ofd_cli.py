"""``kkt ofd``: the emulated OFD -- serve it, list what it received, steer it, stop it.

``serve`` runs in the foreground until SIGTERM or SIGINT, printing ``listening tcp HOST:PORT``
and ``control unix PATH`` first (like ``kkt emulator serve``); ``docs`` reads its store (also
while it runs); ``ctl`` sends one action to the running OFD's control socket; ``stop`` ends the
``serve`` holding a state directory.  Mistakes the user can fix are one line on stderr, status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any, TextIO

from kkt.emulator.ofd import ACTIONS, FILE_NAME, SOCKET_NAME, OfdService, OfdStateBusy, OfdStore
from kkt.emulator.state import TEST_OFD_INN
from kkt.protocols.ffd import inn_is_valid

from .emulator_cli import _bind_problem, parse_address, prepare_state
from .serving import CliError, send_control, stop_server

DEFAULT_PORT = 7779  # the OFD port in a Shtrikh table dump (fact sheet ofd-cloud-marking §1.3)
CTL_HELP = (
    "actions: down | up | delay SECONDS | drop-ack [N] | reject CODE [N] | corrupt [N] | clear | "
    "status (down: refuse connections; drop-ack: store the next N documents, close without an "
    "answer; reject: answer 1022=CODE, store nothing; corrupt: answer with a bad CRC)"
)


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add ``kkt ofd``; returns its actions, so other modules can add theirs (``relay``)."""
    ofd = commands.add_parser(
        "ofd",
        help="the emulated OFD: serve, docs, ctl, stop",
        description="An emulated OFD (оператор фискальных данных) kept in a state directory: "
        "serve it for registers to send to, list what it received, steer its faults, stop it; "
        "`relay` carries a register's queue to an OFD for a register without a network.",
    )
    actions = ofd.add_subparsers(dest="action", required=True)
    serve = actions.add_parser(
        "serve",
        help="serve an emulated OFD until SIGTERM/Ctrl-C",
        description="Take the documents registers send (FN messages over TCP), store each once "
        "in --state and answer with an OFD receipt, until SIGTERM or Ctrl-C.  Prints `listening "
        "tcp HOST:PORT` and `control unix PATH` (`kkt ofd ctl` steers it); logs each document "
        "on stderr.",
    )
    serve.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        default=f"127.0.0.1:{DEFAULT_PORT}",
        help=f"where to listen (port 0: a free one; default 127.0.0.1:{DEFAULT_PORT})",
    )
    serve.add_argument("--state", type=Path, required=True, help="directory of the OFD's store")
    serve.add_argument(
        "--ofd-inn",
        default=TEST_OFD_INN,
        help=f"the OFD's INN in its receipts (default {TEST_OFD_INN}, the emulator's)",
    )
    docs = actions.add_parser(
        "docs",
        help="list the documents the OFD received",
        description="The documents in the OFD's store in --state (FN, FD number, type, when "
        "received, when acknowledged); reads it while it is served too.",
    )
    docs.add_argument("--state", type=Path, required=True, help="directory of the OFD's store")
    docs.add_argument("--json", action="store_true", help="one JSON array")
    ctl = actions.add_parser(
        "ctl", help="steer a running OFD: outages, faults", description=CTL_HELP
    )
    ctl.add_argument("--state", type=Path, required=True, help="directory of the running OFD")
    ctl.add_argument("--json", action="store_true", help="print the raw JSON answer")
    ctl.add_argument("words", nargs="+", metavar="ACTION", help="what to do (see above)")
    stop = actions.add_parser(
        "stop",
        help="stop the `kkt ofd serve` of a state directory",
        description="Send SIGTERM to the `kkt ofd serve` holding --state and wait until it "
        "lets the state go (stored documents survive even a kill).",
    )
    stop.add_argument("--state", type=Path, required=True, help="directory of the served OFD")
    stop.add_argument(
        "--wait", type=float, default=15.0, metavar="SECONDS", help="how long to wait (default 15)"
    )
    return actions


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    handler = _ACTIONS.get(args.action)
    if handler is None:  # an action another module added (relay) runs itself
        result: int = args.run(args, out)
        return result
    try:
        return handler(args, out)
    except CliError as exc:
        print(f"kkt ofd {args.action}: {exc}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    host, port = parse_address(args.tcp)
    inn = str(args.ofd_inn).strip()
    if not inn_is_valid(inn):
        raise CliError(f"--ofd-inn {args.ofd_inn!r} is not a valid INN (10 or 12 digits)")
    state = prepare_state(args.state)
    asyncio.run(_serve_until_signal(OfdService(state, ofd_inn=inn), host, port, out))
    return 0


async def _serve_until_signal(service: OfdService, host: str, port: int, out: TextIO) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for number in signals:
        loop.add_signal_handler(number, stop.set)
    try:
        try:
            await service.start(host, port)
        except OfdStateBusy as busy:
            raise CliError(str(busy)) from None
        except OSError as exc:
            raise CliError(_bind_problem(host, port, exc)) from None
        try:
            print(f"listening tcp {service.address}", file=out)
            print(f"control unix {service.state / SOCKET_NAME}", file=out)
            out.flush()
            await stop.wait()
        finally:
            await service.close()
    finally:
        for number in signals:
            loop.remove_signal_handler(number)


def _docs(args: argparse.Namespace, out: TextIO) -> int:
    if not (args.state / FILE_NAME).exists():
        raise CliError(
            f"no OFD store in {args.state} (no {FILE_NAME}); "
            f"start one with `kkt ofd serve --state {args.state}`"
        )
    try:
        store = OfdStore(args.state, read_only=True)
        try:
            documents = store.documents()
        finally:
            store.close()
    except sqlite3.Error as exc:
        raise CliError(f"cannot read {args.state / FILE_NAME}: {exc}") from None
    if args.json:
        print(json.dumps([d.as_json() for d in documents], ensure_ascii=False, indent=1), file=out)
        return 0
    print(f"{'FN':<16}  {'FD':>8}  {'type':>4}  {'received at':<19}  acked", file=out)
    for d in documents:
        acked = d.acked_at.isoformat(" ", "seconds") if d.acked_at else "no"
        received = d.received_at.isoformat(" ", "seconds")
        print(
            f"{d.fn_serial:<16}  {d.fd_number:>8}  {d.doc_type:>4}  {received:<19}  {acked}",
            file=out,
        )
    print(f"{len(documents)} documents", file=out)
    return 0


def control_request(words: list[str]) -> dict[str, Any]:
    """``kkt ofd ctl`` words -> the control channel's JSON request; raises `CliError`."""
    action, rest = words[0], words[1:]
    if action not in ACTIONS:
        raise CliError(f"unknown action {action!r}; {CTL_HELP}")

    def number(text: str, what: str, kind: type[int] | type[float] = int) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise CliError(f"{action}: {what} must be a number, not {text!r}") from None
        if value < 0:
            raise CliError(f"{action}: {what} must not be negative, not {text}")
        return value

    request: dict[str, Any] = {"action": action}
    arity = {"delay": (1, 1), "reject": (1, 2), "drop-ack": (0, 1), "corrupt": (0, 1)}
    low, high = arity.get(action, (0, 0))
    if not low <= len(rest) <= high:
        raise CliError(f"{action} takes {low}..{high} arguments; {CTL_HELP}")
    if action == "delay":
        request["seconds"] = number(rest[0], "SECONDS", float)
    elif action == "reject":
        request["code"] = number(rest[0], "CODE")
        if len(rest) > 1:
            request["count"] = number(rest[1], "N")
    elif rest:
        request["count"] = number(rest[0], "N")
    return request


def _ctl(args: argparse.Namespace, out: TextIO) -> int:
    request = control_request(list(args.words))
    path = args.state / SOCKET_NAME
    answer = send_control(
        path,
        request,
        nobody=f"no OFD is running with state {args.state} (no {path}); "
        f"start one with `kkt ofd serve --state {args.state}`",
    )
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, indent=1), file=out)
    elif not answer.get("ok"):
        print(f"refused: {answer.get('error')}", file=out)
    else:
        shown = {key: value for key, value in answer.items() if key != "ok"}
        print(json.dumps(shown, ensure_ascii=False), file=out)
    return 0 if answer.get("ok") else 1


def _stop(args: argparse.Namespace, out: TextIO) -> int:
    return stop_server(
        args.state,
        group="ofd",
        serves=lambda owner: owner.protocol == "ofd",
        wait=args.wait,
        survives="stored documents",
        out=out,
    )


_ACTIONS = {"serve": _serve, "docs": _docs, "ctl": _ctl, "stop": _stop}
