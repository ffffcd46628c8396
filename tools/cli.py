"""The ``kkt`` command line (also ``python -m kkt``).

Exit codes (`EXIT_CODES`, shown by ``kkt --help``): one per class of outcome.  Errors are one line
on standard error saying what happened and what to do -- never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

from kkt import __version__, errors

from .logs import command_logging, server_logging
from .usage import UsageError

# The commands' modules load only when their command runs (`kkt --version` and `kkt status`
# need none of the emulator's, the cloud's or the renderer's): each group's module, the
# commands it defines, and their one-line help (what `kkt --help` lists without loading it;
# tests/tools/test_cli_polish.py checks that it is the module's own).
GROUPS: tuple[tuple[str, dict[str, str]], ...] = (
    ("register_cli", {
        "status": "mode, shift and its age, paper, cover, drawer, operator, clock",
        "info": "model, serial, firmware, protocol, line width, FFD versions, RNM",
        "fn": "fiscal storage: phase, expiry, registrations, warnings, OFD queue, marking state",
        "mark": "marked goods: `mark check CODE` asks whether a sale would take a code",
        "shift": "open or close (Z report) the shift",
        "report": "print an X report (changes nothing) and show its figures",
        "sell": "fiscalize a sell receipt from ATOL-style JSON",
        "return": "fiscalize a sell return receipt from ATOL-style JSON",
        "buy": "fiscalize a buy receipt from ATOL-style JSON",
        "buy-return": "fiscalize a buy return receipt from ATOL-style JSON",
        "correction": "a correction receipt from ATOL-style JSON",
        "cash": "the cash in the drawer; `cash in|out SUM` puts cash in or takes it out",
        "print": "print lines of text",
        "cut": "cut the receipt tape",
        "continue": "finish printing a document after paper ran out (load paper, close the cover "
        "first)",
        "datetime": "the register's clock against this computer's",
        "doc": "one fiscal document, its TLV decoded",
        "docs": "a range of fiscal documents as JSON lines, e.g. docs 1..50",
    }),
    ("scan_cli", {
        "scan": "find registers on serial ports, USB and the network",
        "doctor": "check the port, permissions, link, protocol, clock, FN and OFD queue",
    }),
    ("", {  # this module's own: decode, demo, bench
        "decode": "turn captured Shtrih-M frames or ATOL v3 packets (hex) into readable commands",
        "demo": "start an emulated register on TCP and query it",
        "bench": "measure speed and reliability and print figures",
    }),
    ("emulator_cli", {"emulator": "run the register emulator"}),
    ("ofd_cli", {"ofd": "the emulated OFD: serve, docs, ctl, stop"}),
    ("cloud_cli", {"cloud": "the ATOL Online compatible cloud register service"}),
)  # fmt: skip
# Options of the common set that take a value: what follows them is not the command's name.
_VALUED = ("--url", "--protocol", "--password", "--baud", "--timeout")

DEFAULT_URL = "socket://127.0.0.1:7778"  # where `kkt emulator serve` listens by default
ATOL_DEFAULT_URL = "socket://127.0.0.1:5555"  # ... and `kkt emulator serve --protocol atol`
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_LINK, EXIT_UNKNOWN, EXIT_CONFLICT = 0, 1, 2, 3, 4, 5
EXIT_CODES = """\
exit codes:
  0 done
  1 the register refused (or a doctor check failed, or `mark check` found the
    code would not be sold, or a sale's marking code was rejected)
  2 a wrong command line or input file (nothing was sent)
  3 no link to the register (or the link failed before the receipt closed:
    nothing was charged, it may be sold again)
  4 outcome unknown: the receipt may be fiscal -- never sell it again blindly;
    repeat it with the same --key, or read the FN's last documents (kkt docs)
  5 key conflict: the --key belongs to another receipt or register (nothing
    was sent); use a new key, or settle that receipt where it began
"""


def _baud(text: str) -> int:
    """--baud: a serial speed in bits per second (argparse reports a bad one, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 50 <= value <= 4_000_000:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a serial speed: give bits per second, e.g. 9600 or 115200"
        )
    return value


def _common_options(*, suppress: bool) -> argparse.ArgumentParser:
    """--url, --json ... accepted before or after the command (``kkt status --json``)."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=default(os.environ.get("KKT_URL")),
        help="the register: /dev/ttyUSB0, COM3, socket://HOST:PORT, usb://VID:PID, "
        f"emulator:DIR (default: $KKT_URL, or {DEFAULT_URL} -- {ATOL_DEFAULT_URL} with "
        "--protocol atol)",
    )
    common.add_argument(
        "--protocol",
        choices=("shtrih", "atol", "auto"),
        default=default(None),
        help="the register's protocol: shtrih (default), atol, or auto (probe the port)",
    )
    common.add_argument(
        "--password", type=int, default=default(30), help="operator password (default 30)"
    )
    common.add_argument(
        "--baud",
        dest="baudrate",
        type=_baud,
        default=default(115200),
        help="serial speed (default 115200)",
    )
    common.add_argument(
        "--timeout",
        type=_seconds,
        default=default(None),
        metavar="SECONDS",
        help="the most the whole command may take, in seconds, retries included (default: each "
        "exchange's own bound); scan and doctor: seconds per probe (default 0.3)",
    )
    common.add_argument(
        "--json", action="store_true", default=default(False), help="print JSON for scripts"
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="-v: the driver's warnings, and every frame in hex with timings, on stderr; -vv: the "
        "driver's reasoning too (servers log their own news without -v)",
    )
    return common


def _seconds(text: str) -> float:
    """--timeout: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text} is not a positive number of seconds; e.g. --timeout 10"
        )
    return value


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``kkt`` parser: every command defined by its module; with ``only``, just that
    command's group (its module loaded), every other command a stub (`_stub`) that lists it in
    ``kkt --help`` without loading its module."""
    parser = argparse.ArgumentParser(
        prog="kkt",
        description="Fiscal register (ККТ) driver and emulator tools",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the epilog's lines as they are
        parents=[_common_options(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"kkt {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options(suppress=True)
    for module, names in GROUPS:
        if only is not None and only not in names:
            for name, help_text in names.items():
                _stub(commands, name, help_text)
        elif module:
            _add_group(import_module(f"{__package__}.{module}"), commands, common)
        else:
            _add_own(commands, common)
    return parser


def _add_group(module: Any, commands: Any, common: argparse.ArgumentParser) -> None:
    """A group's module's commands: register_cli, scan_cli take the common options; the others
    (emulator, ofd, cloud) their own."""
    if module.__name__.endswith(("register_cli", "scan_cli")):
        module.add_parsers(commands, common)
    elif module.__name__.endswith("ofd_cli"):
        from . import ofd_relay_cli

        ofd_relay_cli.add_relay_parser(module.add_parser(commands), common)
    else:
        module.add_parser(commands)


def _stub(commands: Any, name: str, help_text: str) -> None:
    """A command listed by name and help only: parsing it marks the result (``stub``), and
    `parse` builds that command's group and parses again -- argparse's abbreviations (``--ur``)
    can make the first guess of the command's name wrong."""
    stub = commands.add_parser(name, help=help_text, add_help=False, prefix_chars="\0")
    stub.add_argument("rest", nargs=argparse.REMAINDER)
    stub.set_defaults(stub=True)


def _command_name(argv: Sequence[str]) -> str | None:
    """The command's name in ``argv``: the first word that is no option nor an option's value."""
    words = iter(argv)
    for word in words:
        if word == "--":
            return next(words, None)
        if word in _VALUED:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv`` loading only the command's module (argparse exits on --help and errors)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(only=_command_name(argv) or "").parse_args(argv)
    if getattr(args, "stub", False):
        args = build_parser(only=args.command).parse_args(argv)
    return args


def _add_own(commands: Any, common: argparse.ArgumentParser) -> None:
    decode = commands.add_parser(
        "decode",
        help="turn captured Shtrih-M frames or ATOL v3 packets (hex) into readable commands",
        description="Shtrih-M or ATOL: taken from --protocol, or (auto) from the first byte.",
        parents=[common],
    )
    decode.add_argument(
        "hex", nargs="*", help="hex bytes (either direction); read from stdin if none"
    )
    decode.add_argument(
        "--prefer",
        choices=("auto", "request", "answer"),
        default="auto",
        help="read frames as requests or as answers (default auto: request if it parses)",
    )
    commands.add_parser(
        "demo",
        help="start an emulated register on TCP and query it",
        description="Serves an emulated ШТРИХ-М-01Ф (registered, in a temporary directory) on a "
        "free TCP port, connects to it as to a network register, opens a shift, sells two items "
        "-- the line loses the sale's answer on purpose, and the driver collects it, selling "
        "once -- closes the shift and verifies the FN's archive.  Changes nothing outside it.",
    )
    bench = commands.add_parser(
        "bench",
        help="measure speed and reliability and print figures",
        description="Cases: link, receipts, archive (alias fn), farm, wire, ofd, cloud "
        "(default: all). Soaks (--soak): lossy (lossy-atol, lossy-verify), crash, concurrency, "
        "fuzz, keys, ofd-faults, ofd-crash, relay, cloud-crash.",
    )
    bench.add_argument("cases", nargs="*", metavar="CASE", help="cases to run (default: all)")
    bench.add_argument("--quick", action="store_true", help="small sizes: about a minute in all")
    bench.add_argument(
        "--json", action="store_true", help='one {"case", "value", "unit"} object per line'
    )
    bench.add_argument("--soak", action="append", default=[], metavar="NAME", help="run a soak")
    bench.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kktkit" / "bench",
        help="where prebuilt archives are kept between runs (default %(default)s)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse(argv)
    except SystemExit as exit_:  # --help, --version, usage errors: argparse has printed them
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else EXIT_USAGE
    if getattr(args, "url", None) is None:
        args.url = ATOL_DEFAULT_URL if getattr(args, "protocol", None) == "atol" else DEFAULT_URL
    name = f"kkt {args.command}"
    try:
        with _logging(args):
            return _dispatch(args)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`kkt docs 1.. | head`): not an error of ours.  Point stdout at
        # /dev/null so the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (
        UsageError,
        errors.ReceiptRejected,
        errors.CannotSend,
        errors.BadOfdAddress,
        errors.BadMarkCode,  # a malformed marking code: nothing was sent
    ) as error:
        return _fail(name, str(error), EXIT_USAGE)
    except errors.DeviceError as error:
        return _fail(name, f"the register refused: {error}", EXIT_REFUSED)
    except errors.NotFiscalized as error:
        return _fail(name, str(error), EXIT_LINK)
    except errors.OutcomeUnknown as error:
        return _fail(name, f"outcome unknown: {error}", EXIT_UNKNOWN)
    except errors.KeyConflict as error:
        return _fail(name, f"key conflict: {error}", EXIT_CONFLICT)
    except (errors.PortBusy, errors.WrongProtocol, errors.OfdUnreachable) as error:
        # Another program holds the port or the state, the device speaks the other protocol, or
        # the OFD does not answer: the message names it and the way out; doctor adds nothing.
        return _fail(name, str(error), EXIT_LINK)
    except (errors.TransportError, errors.BadAnswer) as error:
        return _fail(name, f"{error} (`kkt doctor --url {args.url}` checks the link)", EXIT_LINK)
    except errors.KktError as error:
        return _fail(name, str(error), EXIT_REFUSED)


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command == "demo":
        from .demo import run_demo

        return run_demo(sys.stdout)
    if command == "bench":
        return _bench(args)
    if command in ("emulator", "ofd", "cloud"):
        result: int = import_module(f"{__package__}.{command}_cli").run(args)
        return result
    if command == "decode":
        return _decode(args)
    import kkt

    from .console import Output, waiting

    out = Output(as_json=args.json)
    _say_if_new_emulator(args.url)
    if getattr(args, "handler", None) is None:
        result = args.run(args, out)  # scan, doctor: they open ports themselves
        return result
    protocol = args.protocol or "shtrih"
    # --timeout bounds the whole command (every exchange and retry), not each reply.
    with (
        waiting(f"kkt {args.command}: waiting for the register at {args.url} (Ctrl-C stops)"),
        kkt.connect(
            args.url,
            protocol=protocol,
            password=args.password,
            baudrate=args.baudrate,
            time_limit=args.timeout,
        ) as register,
    ):
        args.handler(register, args, out)
    return EXIT_OK


def _say_if_new_emulator(url: str) -> None:
    """``emulator:DIR`` makes a registered register in DIR when there is none -- that is how
    one is made, and how a typo in DIR would quietly make a second one: say so (on stderr, so
    --json output stays clean), not as an error."""
    from kkt.connect import EMULATOR_SCHEME

    if not url.startswith(EMULATOR_SCHEME):
        return
    state = Path(url[len(EMULATOR_SCHEME) :].removeprefix("//"))
    if not state.exists():
        print(
            f"kkt: a new emulated register in {state} (there was no such directory; "
            "check the path if you meant an existing register)",
            file=sys.stderr,
        )


def _fail(name: str, message: str, code: int) -> int:
    print(f"{name}: {message}", file=sys.stderr)
    return code


# The servers and the package whose INFO records are their log (`kkt.tools.logs`).
SERVER_LOGS = {
    ("cloud", "serve"): "kkt.cloud",
    ("emulator", "serve"): "kkt.emulator",
    ("ofd", "serve"): "kkt.emulator.ofd",
}


def _logging(args: argparse.Namespace) -> contextlib.AbstractContextManager[None]:
    """Where the library's log records go for this command only (`kkt.tools.logs`): a
    server's log, or a command's -v/-vv (by default only errors, never a bare warning line)."""
    handler = logging.StreamHandler(sys.stderr)
    action: str = getattr(args, "action", None) or ""
    package = SERVER_LOGS.get((args.command, action))
    if package is not None:
        return server_logging(handler, package, args.verbose)
    return command_logging(handler, args.verbose)


def _decode(args: argparse.Namespace) -> int:
    from kkt.protocols.shtrih.frame import Deframer

    from .describe import AtolReader, describe_token

    chunks = args.hex or [sys.stdin.read()]
    text = " ".join(_strip_log_prefix(line) for chunk in chunks for line in chunk.splitlines())
    try:
        data = bytes.fromhex(text.replace(":", " ").replace("-", " "))
    except ValueError as exc:
        print(f"kkt decode: not hex ({exc}); paste bytes like '02 01 FC FD'", file=sys.stderr)
        return EXIT_USAGE
    if _is_atol(args, data):
        reader = AtolReader()
        for line in reader.feed(data):
            print(line)
        if reader.deframer.has_partial:
            print(f"incomplete packet at the end: {reader.deframer.partial.hex(' ')}")
        return EXIT_OK
    deframer = Deframer()
    for token in deframer.feed(data):
        print(describe_token(token, prefer=args.prefer))
    if deframer.has_partial:
        print(f"incomplete frame at the end: {deframer.partial.hex(' ')}")
    return EXIT_OK


def _is_atol(args: argparse.Namespace, data: bytes) -> bool:
    """ATOL when asked for, or (unless Shtrih was asked for) when the capture starts with a v3
    packet's FE: Shtrih frames start with STX (02) or a control byte, never FE."""
    if args.protocol in ("shtrih", "atol"):
        return bool(args.protocol == "atol")
    return data.lstrip(b"\x00")[:1] == b"\xfe"


def _strip_log_prefix(line: str) -> str:
    """``   12.3 ms -> 02 05 ...`` (a `kkt -v` trace line) -> ``02 05 ...``; other text as is."""
    for arrow in ("->", "<-"):
        if arrow in line:
            return line.split(arrow, 1)[1]
    return line


def _bench(args: argparse.Namespace) -> int:
    import tempfile

    from . import bench

    bench.load_cases()
    names = ["archive" if name == "fn" else name for name in args.cases]
    unknown = [name for name in names if name not in bench.CASES]
    unknown += [name for name in args.soak if name not in bench.SOAKS]
    if unknown:
        known = ", ".join([*bench.CASES, *(f"--soak {name}" for name in bench.SOAKS)])
        print(f"kkt bench: unknown {', '.join(unknown)}; known: {known}", file=sys.stderr)
        return EXIT_USAGE
    args.cache.mkdir(parents=True, exist_ok=True)
    printer = bench.Printer(sys.stdout, as_json=args.json)
    with tempfile.TemporaryDirectory(prefix="kkt-bench-", dir=args.cache) as work:
        context = bench.Bench(
            quick=args.quick,
            work=Path(work),
            cache=args.cache,
            log=lambda text: print(f"kkt bench: {text}", file=sys.stderr, flush=True),
        )
        failed = list(bench.run(names, printer, context, soaks=args.soak))
    if failed:
        print(f"kkt bench: failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
