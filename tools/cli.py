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
from pathlib import Path

from kkt.protocols.shtrih.frame import Deframer

import kkt
from kkt import __version__, errors
from kkt.connect import EMULATOR_SCHEME

from . import cloud_cli, emulator_cli, ofd_cli, ofd_relay_cli, register_cli, scan_cli
from .console import Output, waiting
from .demo import run_demo
from .describe import AtolReader, describe_token
from .logs import command_logging, server_logging

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


def build_parser() -> argparse.ArgumentParser:
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
    register_cli.add_parsers(commands, common)
    scan_cli.add_parsers(commands, common)
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
    emulator_cli.add_parser(commands)
    ofd_relay_cli.add_relay_parser(ofd_cli.add_parser(commands), common)
    cloud_cli.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
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
        register_cli.UsageError,
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
        return run_demo(sys.stdout)
    if command == "bench":
        return _bench(args)
    if command == "emulator":
        return emulator_cli.run(args)
    if command == "ofd":
        return ofd_cli.run(args)
    if command == "cloud":
        return cloud_cli.run(args)
    if command == "decode":
        return _decode(args)
    out = Output(as_json=args.json)
    _say_if_new_emulator(args.url)
    if getattr(args, "handler", None) is None:
        result: int = args.run(args, out)  # scan, doctor: they open ports themselves
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
    package = SERVER_LOGS.get((args.command, getattr(args, "action", None)))
    if package is not None:
        return server_logging(handler, package, args.verbose)
    return command_logging(handler, args.verbose)


def _decode(args: argparse.Namespace) -> int:
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
