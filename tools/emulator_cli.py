"""``kkt emulator``: serve an emulated register on TCP and/or a pty; stop it; verify its state.

``serve`` runs in the foreground until SIGTERM or SIGINT (Ctrl-C), printing one
``listening ...`` line per listener first, so a script can start it, read where it listens, and
stop it (``kkt emulator stop --state DIR`` does, through the state's pidfile).  A state directory
has one owner (`kkt.emulator.state`): a second server, an ``emulator:DIR`` URL or ``verify`` on a
served state is refused with the owner's PID and what to do.  With ``kkt -v`` (or ``--trace
FILE``) the server prints every frame in and out of every connection, decoded.  Mistakes the user
can fix (a bad address, a busy port, an unwritable state directory) are one line on stderr and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import errno
import json
import logging
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
from kkt.emulator.settings import RegisterSettings
from kkt.emulator.shells import DEFAULT_PORTS, PROTOCOLS, Service
from kkt.emulator.shells.atol import AtolOptions
from kkt.emulator.shells.ofdlink import DEFAULT_RETRY, DEFAULT_TIMEOUT, OfdAddress
from kkt.emulator.shells.pump import LinkTrace, TraceEvent, TraceFactory
from kkt.emulator.shtrih import ShtrihRegister
from kkt.emulator.state import StateBusy, StateLock, state_owner
from kkt.protocols.atol.link import RESULT_DELIVERIES
from kkt.protocols.atol.tasks import DEFAULT_CAPACITY, WHEN_FULL
from kkt.protocols.ffd import inn_is_valid
from kkt.protocols.shtrih.models import MODELS as SHTRIH_MODELS
from kkt.render import RenderError

from .describe import LinkDescriber
from .render_cli import add_render_options, printed_tape, write_rendered
from .serving import CliError, send_control, stop_server

Address = tuple[str, int]
SETTINGS_NAME = "register.json"  # an emulated register's settings in its state directory

# The emulator's frame trace: shown by `kkt -v` (a child of the driver's "kkt.trace"), or --trace.
trace_log = logging.getLogger("kkt.trace.emulator")


def open_register(
    state: Path,
    *,
    fiscal_only: bool = False,
    ffd: str = "1.2",
    protocol: str = "shtrih",
    inn: str | None = None,
) -> Personality:
    """Open (or create) the emulated register whose state lives in ``state``, with the
    personality of ``protocol`` (one state directory may be served as either)."""
    personality = AtolRegister if protocol == "atol" else ShtrihRegister
    try:
        return personality.open(state, fiscal_only=fiscal_only, ffd=ffd, inn=inn)
    except StateBusy as busy:
        raise CliError(str(busy)) from None
    except Exception as exc:
        raise CliError(f"cannot open the emulated register in {state}: {exc}") from None


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    emulator = commands.add_parser(
        "emulator",
        help="run the register emulator",
        description="An emulated register (Shtrih-M or ATOL, with its FN) kept in a state "
        "directory: serve it, steer it while it runs (ctl), stop it, verify its archive.",
    )
    actions = emulator.add_subparsers(dest="action", required=True)
    serve = actions.add_parser(
        "serve",
        help="serve an emulated register until SIGTERM/Ctrl-C (TCP and/or a pty)",
        description="Serve the register kept in --state (made, registered and in fiscal mode "
        "if the directory holds none) on TCP and/or a pseudo-terminal until SIGTERM or Ctrl-C. "
        "Prints one `listening ...` line per listener and `control unix PATH` (`kkt emulator "
        "ctl` steers it there); logs its news on stderr (`kkt -v emulator serve`: every frame, "
        "decoded).",
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
    serve.add_argument(
        "--ffd",
        choices=("1.05", "1.2"),
        default="1.2",
        help="the FFD version a new state is registered for (default %(default)s; a state "
        "keeps its own)",
    )
    serve.add_argument(
        "--inn",
        help="the user's INN the register is registered for when the state is created "
        "(10 or 12 digits; default a test INN); the RNM is made for it",
    )
    serve.add_argument(
        "--model",
        choices=tuple(SHTRIH_MODELS),
        help="the Shtrih model to be (its FCh name and line width; kept in the state); "
        f"default {next(iter(SHTRIH_MODELS))}",
    )
    serve.add_argument(
        "--no-filler",
        action="store_true",
        help="on TCP, do not send the 0xFF real network models send after the host's ACK",
    )
    atol = serve.add_argument_group(
        "ATOL task buffer (with --protocol atol; every choice keeps an executed task's result "
        "for Req until the host's Ack)"
    )
    atol.add_argument(
        "--atol-results",
        choices=RESULT_DELIVERIES,
        help="async (default): the Add is answered A2/A1 at once and the result comes in an F0 "
        "packet; inline: a quick task's result (A3/A4) in the Add's reply, no F0",
    )
    atol.add_argument(
        "--atol-buffer",
        type=int,
        metavar="N",
        help=f"tasks the buffer's queue holds (default {DEFAULT_CAPACITY})",
    )
    atol.add_argument(
        "--atol-when-full",
        choices=WHEN_FULL,
        help="retire (default): a full queue retires its oldest ended task (still answered to "
        "Req); refuse: B1 to every Add until a host acknowledges a result",
    )
    ofd = serve.add_argument_group("the OFD (a networked register sends by itself)")
    ofd.add_argument(
        "--ofd",
        metavar="HOST:PORT",
        help="send every document the FN forms to the OFD at HOST:PORT (e.g. `kkt ofd serve`), "
        "and the queue again while it does not answer; kept in the state (later serves send "
        "there too); `--ofd off` stops it",
    )
    ofd.add_argument(
        "--ofd-retry",
        type=float,
        metavar="S",
        help="seconds between two tries while the OFD does not answer (default: the register's "
        f"«Тайм-аут опроса ОФД», Shtrih table 19 field 3, {DEFAULT_RETRY:g} s in a new state)",
    )
    ofd.add_argument(
        "--ofd-timeout",
        type=float,
        metavar="S",
        help=f"seconds one document's session may take (default {DEFAULT_TIMEOUT:g})",
    )
    serve.add_argument(
        "--trace",
        type=Path,
        metavar="FILE",
        help="append a decoded trace of every frame in and out to FILE (`kkt -v emulator serve` "
        "prints it on stderr)",
    )
    stop = actions.add_parser(
        "stop",
        help="stop the `kkt emulator serve` of a state directory (SIGTERM, then wait)",
        description="Send SIGTERM to the `kkt emulator serve` holding --state (its pidfile "
        "names it) and wait until it lets the state go; exit 1 when nothing, or something else, "
        "holds it.",
    )
    stop.add_argument("--state", type=Path, required=True, help="directory of the served state")
    stop.add_argument(
        "--wait", type=float, default=15.0, metavar="SECONDS", help="how long to wait (default 15)"
    )
    verify = actions.add_parser(
        "verify",
        help="check a stored state: numbering, signs, counters",
        description="Read the FN archive kept in --state and check it: document numbers without "
        "gaps, every fiscal sign, the counters against the documents.  Prints `ok` (exit 0) or "
        "each problem (exit 1).  The state must not be served meanwhile.",
    )
    verify.add_argument("--state", type=Path, required=True, help="directory of the register state")
    ctl = actions.add_parser(
        "ctl",
        help="steer a running emulator: clock, paper, cover, faults, tape",
        description=(
            "actions: clock advance SECONDS | paper out|in|after LINES | cover open|close | "
            "fault drop-answer [N] | fault lose-answer [N] | fault hang-up [N] | "
            "fault wire [--drop P] [--corrupt P] [--delay S] [--split] [--seed N] | "
            "fault clear | power-loss (the power fails and comes back: open connections "
            "drop, an open receipt and an unfinished print are lost, the FN's archive stays) | "
            "tape | qr DOCUMENT | ofd deliver [N] | ofd send | status "
            "(ofd deliver: confirm the FN's OFD queue, all or the oldest N, as an OFD would: "
            "lifts the 30-day block; ofd send: a register served with --ofd sends its queue "
            "to the OFD now and says what it sent) | oism | oism ANSWER [CODE] | oism reset | "
            "oism deliver [N] (the emulated ОИСМ of marking codes: ANSWER is valid, wrong-status, "
            "withdrawn, unknown, offline or corrupt, for CODE -- GS written as <GS> or \\x1d -- "
            "or for every code; reset: the default answers (valid; unknown for a code the FN "
            "cannot identify; wrong-status for a code sold); deliver: the FN's marking "
            "notifications, all or the oldest N)"
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
    add_render_options(ctl, "tape: the printed tape")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    try:
        if args.action == "serve":
            return _serve(args, out)
        if args.action == "ctl":
            return _ctl(args, out)
        if args.action == "stop":
            return _stop(args, out)
        return _verify(args, out)
    except CliError as exc:
        print(f"kkt emulator {args.action}: {exc}", file=sys.stderr)
        return 2


def parse_address(text: str, option: str = "--tcp") -> Address:
    """``HOST:PORT`` (``[::1]:7778`` for IPv6) -> ``(host, port)``; raises `CliError`."""
    host, colon, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port_text.isdigit() or int(port_text) > 65535:
        example = "127.0.0.1:7778 (port 0: any)" if option == "--tcp" else "127.0.0.1:7779"
        raise CliError(f"{option} takes HOST:PORT, e.g. {example}, not {text!r}")
    return host, int(port_text)


def ofd_address(args: argparse.Namespace, device: Personality) -> OfdAddress | None:
    """Where the register sends (None: nowhere), from its settings (Shtrih table 19: server and
    port; its «Тайм-аут опроса ОФД» is the interval between tries), which ``--ofd`` sets first
    (``off`` clears them); raises `CliError`."""
    settings = device.settings
    given = getattr(args, "ofd", None)
    if given == "off":
        settings.ofd_host, settings.ofd_port = None, None
        settings.save()
    elif given is not None:
        host, port = parse_address(given, "--ofd")
        if port == 0:
            raise CliError("--ofd needs the OFD's port, e.g. 127.0.0.1:7779 (not 0)")
        # The register exchanges by itself (table 21 field 2 = 1, "через ККТ").
        settings.ofd_host, settings.ofd_port, settings.ofd_via_driver = host, port, False
        settings.save()
    retry, timeout = getattr(args, "ofd_retry", None), getattr(args, "ofd_timeout", None)
    for option, value in (("--ofd-retry", retry), ("--ofd-timeout", timeout)):
        if value is not None and not 0 < value <= 3600:  # also refuses nan
            raise CliError(f"{option} takes seconds from 0 to 3600 (not 0), not {value:g}")
    if not settings.ofd_host or not settings.ofd_port or settings.ofd_via_driver:
        if retry is not None or timeout is not None:
            raise CliError("--ofd-retry and --ofd-timeout need an OFD: add --ofd HOST:PORT")
        return None
    if retry is None:
        retry = float(settings.ofd_timeout) if settings.ofd_timeout > 0 else DEFAULT_RETRY
    return OfdAddress(
        settings.ofd_host,
        settings.ofd_port,
        retry=retry,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
    )


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


def atol_options(args: argparse.Namespace) -> AtolOptions | None:
    """The ``--atol-*`` options (None: the protocol's defaults); raises `CliError`."""
    given = {
        "--atol-results": getattr(args, "atol_results", None),
        "--atol-buffer": getattr(args, "atol_buffer", None),
        "--atol-when-full": getattr(args, "atol_when_full", None),
    }
    named = [name for name, value in given.items() if value is not None]
    if args.protocol != "atol":
        if named:
            raise CliError(f"{', '.join(named)}: only with --protocol atol")
        return None
    defaults = AtolOptions()
    try:
        return AtolOptions(
            results=args.atol_results or defaults.results,
            capacity=defaults.capacity if args.atol_buffer is None else args.atol_buffer,
            when_full=args.atol_when_full or defaults.when_full,
        )
    except ValueError as exc:
        raise CliError(f"--atol-buffer: {exc} (a whole number of tasks, e.g. 16)") from None


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    atol_options(args)  # a wrong --atol-* option is refused before the state is touched
    if args.ofd not in (None, "off"):
        parse_address(args.ofd, "--ofd")  # ... and a wrong --ofd
    tcp = [parse_address(text) for text in args.tcp or ()]
    if not tcp and args.pty is None:
        tcp = [("127.0.0.1", DEFAULT_PORTS[args.protocol])]
    if args.model is not None and args.protocol != "shtrih":
        raise CliError(
            f"--model names a Shtrih model; --protocol {args.protocol} is АТОЛ 30Ф "
            "(АТОЛ 42ФС with --fiscal-only)"
        )
    inn = None if args.inn is None else str(args.inn).strip()
    if inn is not None and not inn_is_valid(inn):
        raise CliError(
            f"--inn {args.inn!r} is not a valid INN: 10 digits (a company) or 12 (a person) "
            "ending in their check digits, e.g. 7707083893"
        )
    state = prepare_state(args.state)
    device = open_register(
        state, fiscal_only=args.fiscal_only, ffd=args.ffd, protocol=args.protocol, inn=inn
    )
    if args.model is not None and isinstance(device, ShtrihRegister):
        device.set_model(args.model)
    handler: logging.Handler | None = None
    level = trace_log.level
    try:
        _announce(device, args, ())  # a server from now on: `kkt emulator stop` may stop it
        if args.trace is not None:
            try:
                handler = logging.FileHandler(args.trace, encoding="utf-8")
            except OSError as exc:
                raise CliError(f"cannot write the trace to {args.trace}: {exc.strerror}") from None
            handler.setFormatter(logging.Formatter("%(message)s"))
            trace_log.addHandler(handler)
            trace_log.setLevel(logging.DEBUG)
        asyncio.run(_serve_until_signal(device, args, tcp, state, out))
    finally:
        if handler is not None:
            trace_log.removeHandler(handler)
            trace_log.setLevel(level)
            handler.close()
        device.close()
    return 0


def link_tracer(protocol: str) -> TraceFactory:
    """The trace of each link a server opens: one `trace_log` line per event, frame or packet
    -- time, link, direction (``>>`` from the host, ``<<`` to it), decoded by
    `kkt.tools.describe` (refusals with their code and meaning)."""

    def open_link(name: str) -> LinkTrace:
        describer = LinkDescriber(protocol)

        def trace(event: TraceEvent, data: bytes) -> None:
            if event in ("open", "close"):
                lines = ["connected" if event == "open" else "closed"]
            else:
                arrow = ">>" if event == "in" else "<<"
                lines = [f"{arrow} {line}" for line in describer.feed(event, data)]
            stamp = dt.datetime.now().strftime("%H:%M:%S.%f")[:-3]
            for line in lines:
                trace_log.debug("%s %s %s", stamp, name, line)

        return trace

    return open_link


def _announce(device: Personality, args: argparse.Namespace, urls: Sequence[str]) -> None:
    """Write the serving process, and where it listens, into the state's pidfile."""
    owner = getattr(getattr(device, "model", None), "owner", None)  # None: not a stored register
    if isinstance(owner, StateLock):
        owner.announce(
            command=f"kkt emulator serve --state {args.state}",
            serving=True,
            urls=tuple(urls),
            protocol=args.protocol,
        )


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
    trace = link_tracer(args.protocol) if trace_log.isEnabledFor(logging.DEBUG) else None
    urls: list[str] = []
    try:
        options = atol_options(args)
        async with Service(
            device, protocol=args.protocol, trace=trace, atol_options=options
        ) as service:
            for host, port in tcp:
                try:
                    server = await service.tcp(host, port, filler_after_ack=not args.no_filler)
                except OSError as exc:
                    raise CliError(_bind_problem(host, port, exc)) from None
                for bound_host, bound_port in server.addresses:
                    print(f"listening tcp {_format_address(bound_host, bound_port)}", file=out)
                    urls.append(f"socket://{_format_address(bound_host, bound_port)}")
            if args.pty is not None:
                try:
                    pty_server = await service.pty(args.pty)
                except OSError as exc:
                    message = f"cannot serve a pty at {args.pty}: {exc.strerror or exc}"
                    raise CliError(message) from None
                print(f"listening pty {pty_server.link} -> {pty_server.tty_name}", file=out)
                urls.append(str(pty_server.link))
            if isinstance(device, Personality):
                ofd = ofd_address(args, device)
                if ofd is not None:
                    service.send_to_ofd(ofd)
                    print(
                        f"ofd tcp {ofd} (every {ofd.retry:g} s while it does not answer)", file=out
                    )
                _announce(device, args, urls)
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
    # A served state is not verified under its server: verify reads the archive in many queries
    # while the server may commit between them (a sale mid-way would read as a broken counter),
    # and opening a state is not read-only (the store sets itself up).  The lock refuses it.
    owner = state_owner(state)
    if owner is not None:
        raise CliError(
            f"the state {state} is in use by {owner}; verify needs it to itself (a document "
            f"committed between its reads would look like damage): stop it with "
            f"`kkt emulator stop --state {state}`, then verify"
        )
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


def _stop(args: argparse.Namespace, out: TextIO) -> int:
    return stop_server(
        args.state,
        group="emulator",
        serves=lambda owner: owner.serving,
        wait=args.wait,
        survives="acknowledged documents",
        out=out,
        not_serving=": it lets go when it closes the register",
    )


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
    if action == "ofd" and rest == ["send"]:
        return {"action": "ofd", "send": True}
    if action == "ofd" and rest[:1] == ["deliver"] and len(rest) <= 2:
        deliver: int | float | str = number(rest[1], low=1) if len(rest) == 2 else "all"
        return {"action": "ofd", "deliver": deliver}
    if action == "oism" and not rest:
        return {"action": "oism"}
    if action == "oism" and rest == ["reset"]:
        return {"action": "oism", "reset": True}
    if action == "oism" and rest[:1] == ["deliver"] and len(rest) <= 2:
        limit: int | float | str = number(rest[1], low=1) if len(rest) == 2 else "all"
        return {"action": "oism", "deliver": limit}
    if action == "oism" and len(rest) in (1, 2):
        # The answer's name is checked by the emulator, which knows them (its error lists them).
        oism: dict[str, Any] = {"action": "oism", "answer": rest[0]}
        if len(rest) == 2:
            oism["code"] = rest[1].replace("\\x1d", "\x1d").replace("<GS>", "\x1d")
        return oism
    raise CliError(f"unknown control action {' '.join(words)!r}; see `kkt emulator ctl --help`")


def _fiscal_only(state: Path) -> bool:
    """Whether the emulated register kept in ``state`` was made without a printer (its settings
    say; a state not made yet is not)."""
    path = state / SETTINGS_NAME
    if not path.is_file():
        return False  # RegisterSettings.load would create the file: leave the state alone
    try:
        return bool(RegisterSettings.load(path).extra.get("fiscal_only"))
    except (OSError, ValueError, TypeError):
        return False  # unreadable: the server's answer will say what it can


def _ctl(args: argparse.Namespace, out: TextIO) -> int:
    request = control_request(args)
    fmt = getattr(args, "format", None)
    if fmt and request["action"] != "tape":
        raise CliError("--format draws the tape: use it with `kkt emulator ctl ... tape`")
    if getattr(args, "width", None) and not fmt:
        raise CliError("--width sets the drawing's line: give --format txt|svg|png|html too")
    if request["action"] == "tape" and _fiscal_only(args.state):
        raise CliError(
            f"the register in {args.state} has no printer (served --fiscal-only: an internet / "
            "automatic register), so there is no tape; its documents are in the FN: "
            "`kkt docs 1..` (or `kkt doc N --format txt` draws one)"
        )
    path = args.state / SOCKET_NAME
    answer = send_control(
        path,
        request,
        nobody=f"no emulator is running with state {args.state} (no {path}); "
        "start one with `kkt emulator serve --state ...`",
    )
    if fmt and answer.get("ok"):
        width = answer.get("width", 48)
        if args.width and args.width != width:
            # The tape holds lines as the printer printed them; drawn narrower they would lose
            # their right-hand figures, and a document is laid out again only from its tags.
            raise CliError(
                f"the tape was printed {width} characters wide and is drawn as printed; "
                f"to see a document at {args.width}, use `kkt doc N --format {fmt} "
                f"--width {args.width}`"
            )
        try:
            write_rendered(printed_tape(answer["lines"], width), args, width)
        except RenderError as error:
            raise CliError(str(error)) from None
        return 0
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, indent=1), file=out)
    elif not answer.get("ok"):
        print(f"refused: {answer.get('error')}", file=out)
    elif "lines" in answer:
        for line in answer["lines"]:
            print(line, file=out)
    elif request["action"] == "power_loss":
        # {"links": N} says little on its own: the connections the power cut dropped.
        links = int(answer.get("links", 0))
        print(
            f"power cut and back: {links} open connection{'' if links == 1 else 's'} dropped; "
            "an open receipt or unfinished print is lost, the FN's archive kept",
            file=out,
        )
    else:
        shown = {key: value for key, value in answer.items() if key != "ok"}
        print(json.dumps(shown, ensure_ascii=False) if shown else "ok", file=out)
    return 0 if answer.get("ok") else 1
