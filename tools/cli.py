"""The ``kkt`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kkt.protocols.shtrih.frame import Deframer

from kkt import __version__

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return run_demo(sys.stdout)
    return _decode(args)


if __name__ == "__main__":
    sys.exit(main())
