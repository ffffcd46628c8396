"""``kkt emulator``: serve an emulated register on TCP and/or a pty; verify its stored state.

``serve`` runs in the foreground until SIGTERM or SIGINT (Ctrl-C), printing one
``listening ...`` line per listener first, so a script can start it, read where it listens, and
stop it.  Mistakes the user can fix (a bad address, a busy port, an unwritable state directory)
are one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from kkt.emulator.atol import AtolRegister
from kkt.emulator.control import SOCKET_NAME
from kkt.emulator.personality import Personality
from kkt.emulator.shells import DEFAULT_PORTS, PROTOCOLS, Service
from kkt.emulator.shtrih import ShtrihRegister

Address = tuple[str, int]


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def open_register(
    state: Path, *, fiscal_only: bool = False, ffd: str = "1.2", protocol: str = "shtrih"
) -> Personality:
    """Open (or create) the emulated register whose state lives in ``state``, with the
    personality of ``protocol`` (one state directory may be served as either)."""
    personality = AtolRegister if protocol == "atol" else ShtrihRegister
    try:
        return personality.open(state, fiscal_only=fiscal_only, ffd=ffd)
    except Exception as exc:
        raise CliError(f"cannot open the emulated register in {state}: {exc}") from None


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    emulator = commands.add_parser("emulator", help="run the register emulator")
    actions = emulator.add_subparsers(dest="action", required=True)
    serve = actions.add_parser(
        "serve", help="serve an emulated register until SIGTERM/Ctrl-C (TCP and/or a pty)"
    )
    serve.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="shtrih",
        help="the register's personality: shtrih (Shtrih-M v1) or atol (ATOL v3); default shtrih",
    )
    serve.add_argument(
        "--tcp",
        action="append",
        metavar="HOST:PORT",
        help="listen on TCP (port 0 picks a free one; without --pty the default is "
        "127.0.0.1:7778, or 127.0.0.1:5555 with --protocol atol)",
    )
    serve.add_argument(
        "--pty", type=Path, metavar="LINK", help="serve on a pseudo-terminal, symlinked at LINK"
    )
    serve.add_argument("--state", type=Path, required=True, help="directory of the register state")
    serve.add_argument(
        "--fiscal-only", action="store_true", help="no printer (internet/automatic mode)"
    )
    serve.add_argument("--ffd", choices=("1.05", "1.2"), default="1.2", help="FFD version")
    serve.add_argument(
        "--no-filler",
        action="store_true",
        help="on TCP, do not send the 0xFF real network models send after the host's ACK",
    )
    verify = actions.add_parser("verify", help="check a stored state: numbering, signs, counters")
    verify.add_argument("--state", type=Path, required=True, help="directory of the register state")
    ctl = actions.add_parser(
        "ctl",
        help="steer a running emulator: clock, paper, cover, faults, tape",
        description=(
            "actions: clock advance SECONDS | paper out|in|after LINES | cover open|close | "
            "fault drop-answer [N] | fault lose-answer [N] | fault hang-up [N] | "
            "fault wire [--drop P] [--corrupt P] [--delay S] [--split] [--seed N] | "
            "fault clear | power-loss | tape | qr DOCUMENT | ofd deliver [N] | status "
            "(ofd deliver: confirm the FN's OFD queue, all or the oldest N, as an OFD would: "
            "lifts the 30-day block)"
        ),
    )
    ctl.add_argument("--state", type=Path, required=True, help="directory of the running emulator")
    ctl.add_argument("--json", action="store_true", help="print the raw JSON answer")
    ctl.add_argument("words", nargs="+", metavar="ACTION", help="what to do (see above)")
    ctl.add_argument("--drop", type=float, help="wire fault: probability a byte is lost")
    ctl.add_argument("--corrupt", type=float, help="wire fault: probability a byte is damaged")
    ctl.add_argument("--delay", type=float, help="wire fault: seconds before each write")
    ctl.add_argument("--split", action="store_true", help="wire fault: write byte by byte")
    ctl.add_argument("--seed", type=int, help="wire fault: random seed (repeatable runs)")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    try:
        if args.action == "serve":
            return _serve(args, out)
        if args.action == "ctl":
            return _ctl(args, out)
        return _verify(args, out)
    except CliError as exc:
        print(f"kkt emulator {args.action}: {exc}", file=sys.stderr)
        return 2


def parse_address(text: str) -> Address:
    """``HOST:PORT`` (``[::1]:7778`` for IPv6) -> ``(host, port)``; raises `CliError`."""
    host, colon, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise CliError(f"--tcp takes HOST:PORT, e.g. 127.0.0.1:7778 (port 0: any), not {text!r}")
    return host, int(port_text)


def prepare_state(path: Path) -> Path:
    """Create the state directory if needed and prove it is writable; raises `CliError`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise CliError(
            f"cannot use {path} as the state directory ({exc.strerror or exc}); "
            "pass --state a directory you can write"
        ) from None
    return path


# -- internals ----------------------------------------------------------------------------------


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    tcp = [parse_address(text) for text in args.tcp or ()]
    if not tcp and args.pty is None:
        tcp = [("127.0.0.1", DEFAULT_PORTS[args.protocol])]
    state = prepare_state(args.state)
    device = open_register(
        state, fiscal_only=args.fiscal_only, ffd=args.ffd, protocol=args.protocol
    )
    try:
        asyncio.run(_serve_until_signal(device, args, tcp, state, out))
    finally:
        device.close()
    return 0


async def _serve_until_signal(
    device: Personality, args: argparse.Namespace, tcp: Sequence[Address], state: Path, out: TextIO
) -> None:
    """Serve ``device`` on every listener (``tcp``, ``args.pty``) until SIGTERM or SIGINT; all
    listeners share one lock.

    With a real emulated register, the control channel listens in ``state`` too.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    # Installed before any listener exists: once "listening" is printed, a signal means "stop".
    for number in signals:
        loop.add_signal_handler(number, stop.set)
    try:
        async with Service(device, protocol=args.protocol) as service:
            for host, port in tcp:
                try:
                    server = await service.tcp(host, port, filler_after_ack=not args.no_filler)
                except OSError as exc:
                    raise CliError(_bind_problem(host, port, exc)) from None
                for bound_host, bound_port in server.addresses:
                    print(f"listening tcp {_format_address(bound_host, bound_port)}", file=out)
            if args.pty is not None:
                try:
                    pty_server = await service.pty(args.pty)
                except OSError as exc:
                    message = f"cannot serve a pty at {args.pty}: {exc.strerror or exc}"
                    raise CliError(message) from None
                print(f"listening pty {pty_server.link} -> {pty_server.tty_name}", file=out)
            if isinstance(device, Personality):
                print(f"control unix {await service.control(state)}", file=out)
            out.flush()
            await stop.wait()
    finally:
        for number in signals:
            loop.remove_signal_handler(number)


def _verify(args: argparse.Namespace, out: TextIO) -> int:
    state: Path = args.state
    if not state.is_dir():
        raise CliError(f"{state} is not a directory of emulator state")
    device = open_register(state)
    try:
        result = device.verify()
    finally:
        device.close()
    print(f"documents: {result.documents}", file=out)
    if result.ok:
        print("ok", file=out)
        return 0
    for problem in result.problems:
        print(f"problem: {problem}", file=out)
    return 1


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    where = _format_address(host, port)
    if exc.errno == errno.EADDRINUSE:
        return f"{where} is already in use; stop what listens there or pick another port (0: any)"
    if exc.errno == errno.EACCES:
        return f"no permission to listen on {where} (ports below 1024 need privileges)"
    if isinstance(exc, socket.gaierror):
        return f"unknown host {host!r} in --tcp ({exc.strerror})"
    return f"cannot listen on {where}: {exc.strerror or exc}"


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def control_request(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON request for ``kkt emulator ctl`` words; raises `CliError` on a mistake."""
    words = list(args.words)
    action, rest = words[0], words[1:]

    def number(
        text: str, kind: type[int] | type[float] = int, low: float = 0, high: float | None = None
    ) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise CliError(f"{text!r} is not {'a whole' if kind is int else 'a'} number") from None
        if not low <= value <= (high if high is not None else float("inf")):
            bound = f"from {low:g} to {high:g}" if high is not None else f">= {low:g}"
            raise CliError(f"{action} takes a number {bound}, not {text}")
        return value

    if action == "clock" and len(rest) == 2 and rest[0] == "advance":
        return {"action": "clock", "advance": number(rest[1], float, low=-(10**9), high=10**9)}
    if action == "paper" and rest in (["out"], ["in"]):
        return {"action": "paper", "state": rest[0]}
    if action == "paper" and len(rest) == 2 and rest[0] == "after":
        return {"action": "paper", "state": "after", "lines": number(rest[1], low=1)}
    if action == "cover" and rest in (["open"], ["close"]):
        return {"action": "cover", "state": rest[0]}
    counted = {"drop-answer": "drop_answers", "lose-answer": "lose_answers", "hang-up": "hang_up"}
    if action == "fault" and rest and rest[0] in counted and len(rest) <= 2:
        count = number(rest[1]) if len(rest) == 2 else 1
        return {"action": "fault", counted[rest[0]]: count}
    if action == "fault" and rest == ["clear"]:
        return {"action": "fault", "clear": True}
    if action == "fault" and rest == ["wire"]:
        request: dict[str, Any] = {"action": "fault"}
        bounds = {"drop": (0.0, 1.0), "corrupt": (0.0, 1.0), "delay": (0.0, 60.0)}
        for name in ("drop", "corrupt", "delay", "seed"):
            value = getattr(args, name)
            if value is None:
                continue
            low, high = bounds.get(name, (float("-inf"), float("inf")))
            if not low <= value <= high:  # also refuses nan
                what = "a probability" if high == 1.0 else "seconds"
                raise CliError(f"--{name} takes {what} from {low:g} to {high:g}, not {value:g}")
            request[name] = value
        if args.split:
            request["split"] = True
        return request
    if action == "power-loss" and not rest:
        return {"action": "power_loss"}
    if action in ("tape", "status") and not rest:
        return {"action": action}
    if action == "qr" and len(rest) == 1:
        return {"action": "qr", "document": number(rest[0], low=1)}
    if action == "ofd" and rest[:1] == ["deliver"] and len(rest) <= 2:
        deliver: int | float | str = number(rest[1], low=1) if len(rest) == 2 else "all"
        return {"action": "ofd", "deliver": deliver}
    raise CliError(f"unknown control action {' '.join(words)!r}; see `kkt emulator ctl --help`")


def _ctl(args: argparse.Namespace, out: TextIO) -> int:
    request = control_request(args)
    path = args.state / SOCKET_NAME
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(10)
            connection.connect(str(path))
            connection.sendall(json.dumps(request).encode() + b"\n")
            answer = json.loads(connection.makefile("rb").readline())
    except (FileNotFoundError, ConnectionRefusedError):
        raise CliError(
            f"no emulator is running with state {args.state} (no {path}); "
            "start one with `kkt emulator serve --state ...`"
        ) from None
    except (OSError, ValueError) as exc:
        raise CliError(f"the control channel at {path} failed: {exc}") from None
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, indent=1), file=out)
    elif not answer.get("ok"):
        print(f"refused: {answer.get('error')}", file=out)
    elif "lines" in answer:
        for line in answer["lines"]:
            print(line, file=out)
    else:
        shown = {key: value for key, value in answer.items() if key != "ok"}
        print(json.dumps(shown, ensure_ascii=False) if shown else "ok", file=out)
    return 0 if answer.get("ok") else 1
