"""The ``kkt`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from kkt.protocols.shtrih.frame import Deframer

from kkt import __version__

from . import emulator_cli
from .demo import run_demo
from .describe import describe_token


def _decode(args: argparse.Namespace) -> int:
    chunks = args.hex or [sys.stdin.read()]
    try:
        data = bytes.fromhex(" ".join(chunks).replace(":", " ").replace("-", " "))
    except ValueError as exc:
        print(f"kkt decode: not hex ({exc}); paste bytes like '02 01 FC FD'", file=sys.stderr)
        return 2
    deframer = Deframer()
    for token in deframer.feed(data):
        print(describe_token(token, prefer=args.prefer))
    if deframer.has_partial:
        print(f"incomplete frame at the end: {deframer.partial.hex(' ')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kkt", description="Fiscal register (ККТ) driver and emulator tools"
    )
    parser.add_argument("--version", action="version", version=f"kkt {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the protocol demo (host and device links in memory)")
    decode = commands.add_parser(
        "decode", help="turn captured Shtrikh-M hex frames into readable commands"
    )
    decode.add_argument(
        "hex", nargs="*", help="hex bytes (either direction); read from stdin if none"
    )
    decode.add_argument(
        "--prefer",
        choices=("auto", "request", "answer"),
        default="auto",
        help="read frames as requests or as answers (auto: request if it parses)",
    )
    bench = commands.add_parser("bench", help="measure speed and print figures")
    cases = bench.add_subparsers(dest="case", required=True)
    fn = cases.add_parser("fn", help="durable FN documents/s vs raw fsync; archive growth and RSS")
    fn.add_argument("--quick", action="store_true", help="small sizes: finishes in about a minute")
    fn.add_argument("--json", action="store_true", help="one JSON object per figure")
    fn.add_argument(
        "--sizes",
        default=None,
        help="archive sizes, comma-separated (default 0,100000,1000000; with --quick 0,20000)",
    )
    fn.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kktkit" / "bench",
        help="where prebuilt archives are kept between runs",
    )
    emulator_cli.add_parser(commands)
    return parser


def _bench(args: argparse.Namespace) -> int:
    from .bench_fn import run

    default = "0,20000" if args.quick else "0,100000,1000000"
    try:
        sizes = [int(size) for size in (args.sizes or default).split(",")]
    except ValueError:
        print("kkt bench fn: --sizes takes whole numbers separated by commas", file=sys.stderr)
        return 2
    return run(sys.stdout, quick=args.quick, sizes=sizes, as_json=args.json, cache=args.cache)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return run_demo(sys.stdout)
    if args.command == "bench":
        return _bench(args)
    if args.command == "emulator":
        return emulator_cli.run(args)
    return _decode(args)


if __name__ == "__main__":
    sys.exit(main())
