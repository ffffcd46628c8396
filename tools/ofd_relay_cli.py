"""``kkt ofd relay``: the driver carries the FN's messages to the OFD and the receipts back.

For a register with no network of its own (USB, COM).  Each round connects to the register, runs
`Register.ofd_exchange` and lets the port go again, so that between rounds of ``--loop`` the shop's
own program can use a register that allows one connection at a time.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

import kkt
from kkt.errors import OfdUnreachable, TransportError
from kkt.ofd import OFD_TIMEOUT, OfdExchangeResult

from .console import Output, plural, waiting

DEFAULT_INTERVAL = 60.0  # seconds between rounds of --loop


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def add_relay_parser(ofd_commands: Any, common: argparse.ArgumentParser) -> None:
    """``relay`` under ``kkt ofd``; ``common`` carries --url, --protocol, --json ..."""
    text = "send the FN's documents to the OFD through this computer and write its receipts back"
    relay = ofd_commands.add_parser(
        "relay",
        help=text,
        description=text + " (for a register with no network of its own; Shtrih-M: FF30-FF33)",
        parents=[common],
    )
    relay.add_argument("--ofd", required=True, metavar="HOST:PORT", help="the OFD's address")
    relay.add_argument(
        "--loop", action="store_true", help="keep going: a round every --interval seconds"
    )
    relay.add_argument(
        "--interval",
        type=_positive,
        default=DEFAULT_INTERVAL,
        metavar="S",
        help=f"seconds between rounds with --loop (default {DEFAULT_INTERVAL:g})",
    )
    relay.add_argument("--limit", type=int, default=None, help="at most this many per round")
    relay.add_argument(
        "--ofd-timeout",
        type=_positive,
        default=OFD_TIMEOUT,
        metavar="S",
        help=f"seconds to wait for the OFD's answer (default {OFD_TIMEOUT:g})",
    )
    relay.set_defaults(run=run_relay, handler=None)


def run_relay(
    args: argparse.Namespace, _out: object = None, stop: threading.Event | None = None
) -> int:
    """One round, or rounds until interrupted (``stop`` ends them too: tests, an embedding).

    With --loop an OFD or a register that does not answer is said on standard error and tried
    again next round -- the documents wait in the FN meanwhile; without it, the error ends the
    command (exit 3)."""
    stop = stop or threading.Event()
    out = Output(as_json=args.json)
    while True:
        try:
            result = _round(args)
        except (OfdUnreachable, TransportError) as error:
            if not args.loop:
                raise
            print(f"kkt ofd relay: {error}; next try in {args.interval:g} s", file=sys.stderr)
        else:
            _report(result, out)
        if not args.loop or stop.wait(args.interval):
            return 0


def _round(args: argparse.Namespace) -> OfdExchangeResult:
    with (
        waiting(f"kkt ofd relay: waiting for the register at {args.url} (Ctrl-C stops)"),
        kkt.connect(
            args.url,
            protocol=args.protocol or "shtrih",
            password=args.password,
            baudrate=args.baudrate,
            time_limit=args.timeout,
        ) as register,
    ):
        return register.ofd_exchange(args.ofd, limit=args.limit, timeout=args.ofd_timeout)


def _report(result: OfdExchangeResult, out: Output) -> None:
    if out.as_json:
        out.line(result.to_json())
        return
    done = plural(len(result.acknowledged), "receipt")
    text = f"sent {plural(result.sent, 'document')}, {done} written into the FN"
    if result.acknowledged:
        first, last = result.acknowledged[0], result.acknowledged[-1]
        text += f" (documents {first}..{last})" if first != last else f" (document {first})"
    text += (
        f"; {plural(result.left, 'document')} left, the oldest #{result.first_left}"
        if result.left
        else "; nothing left to send"
    )
    print(text)
