"""``kkt cloud``: the ATOL Online compatible cloud register service.

``serve`` starts the service (its registers, emulated or real, its HTTP API) and runs until
SIGTERM or SIGINT, printing first ``registers N (…)``, ``demo login: demo password: demo group:
demo inn: 7701000001`` when it serves the built-in demo (the INN its emulated registers have,
which requests send as ``company.inn``), and ``listening http://HOST:PORT`` (the real port when
asked for port 0) once it takes connections.  The HTTP port is bound before the registers
start, and one state directory serves one ``kkt cloud serve`` at a time (a second exits 2
naming the first one's PID).  ``passwd`` reads a password (twice from a
terminal, or one line from a pipe) and prints its hash for a config file's ``[[users]]``.

``serve --db postgresql://…`` keeps the service's state in PostgreSQL: several ``serve``
processes (each with its own ``--state``) share it, each register driven by the instance that
holds its lease.  ``status --db …`` shows the instances, the registers with their lease holders,
and the queue depth by group (``--json``: the same as one JSON object).  A DSN (the URL or libpq's
``host=… dbname=…`` form) is only ever printed as `describe_dsn` gives it: host, port and
database, never its password.

``kkt.cloud`` needs the ``cloud`` extra (fastapi, uvicorn): it is imported here only when a
``kkt cloud`` command runs, so ``kkt`` works without it and says how to install it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from kkt.cloud.config import CloudConfig
    from kkt.cloud.storage.base import Storage

EXIT_OK, EXIT_USAGE = 0, 2
INSTALL_HINT = "the cloud service needs its extra: pip install 'kktkit[cloud]'"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cloud = commands.add_parser(
        "cloud",
        help="the ATOL Online compatible cloud register service",
        description="An HTTP service with ATOL Online's API (v4, v5) in front of registers, "
        "emulated or real: serve it, see its state (status), hash a password for its config "
        "(passwd).  Needs the cloud extra: pip install 'kktkit[cloud]'.",
    )
    actions = cloud.add_subparsers(dest="action", required=True)
    serve = actions.add_parser(
        "serve",
        help="serve the cloud API until SIGTERM/Ctrl-C",
        description="Without --config: the demo (group demo, login demo, password demo) on "
        "emulated registers only.",
    )
    serve.add_argument(
        "--state",
        type=Path,
        default=Path("kkt-cloud"),
        help="state directory: requests, tokens, journal, emulated registers (default ./kkt-cloud)",
    )
    serve.add_argument(
        "--http",
        metavar="HOST:PORT",
        default=None,
        help="where to listen (default 127.0.0.1:8080, or the config's; port 0: a free one)",
    )
    serve.add_argument(
        "--emulated",
        type=_count,
        default=None,
        metavar="N",
        help="start N emulated registers with an emulated OFD (demo default: 1)",
    )
    serve.add_argument(
        "--emulated-protocol",
        choices=("shtrih", "atol", "mixed"),
        default=None,
        help="the emulated registers' protocol (default shtrih; mixed: alternate)",
    )
    serve.add_argument(
        "--register",
        action="append",
        default=[],
        metavar="URL",
        help="a real register (repeat for more), in the config's first group; needs --config",
    )
    serve.add_argument("--config", type=Path, default=None, help="a TOML config file")
    serve.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="postgresql://USER@HOST/DB: state shared by several instances (default: SQLite "
        "in the state directory)",
    )
    serve.add_argument(
        "--duplicates",
        choices=("strict", "atol"),
        default=None,
        help="a repeated external_id: strict (same body -> its uuid, else 409) or atol (code 33)",
    )
    serve.add_argument(
        "--max-queue",
        type=_count,
        default=None,
        metavar="N",
        help="requests waiting before 429 (default 10000)",
    )
    serve.add_argument(
        "--max-body",
        type=_count,
        default=None,
        metavar="BYTES",
        help="the largest request body (default 524288)",
    )
    status = actions.add_parser(
        "status",
        help="instances, registers and their leases, queue depth",
        description="Reads the service's storage (PostgreSQL with --db, else the state "
        "directory's SQLite file); changes nothing.",
    )
    status.add_argument("--db", metavar="URL", default=None, help="postgresql://USER@HOST/DB")
    status.add_argument(
        "--state",
        type=Path,
        default=Path("kkt-cloud"),
        help="without --db: the state directory whose SQLite file to read (default ./kkt-cloud)",
    )
    status.add_argument("--json", action="store_true", help="one JSON object")
    passwd_help = "hash a password for the config's [[users]] (reads it from the terminal or stdin)"
    actions.add_parser(
        "passwd",
        help=passwd_help,
        description=f"{passwd_help[0].upper()}{passwd_help[1:]}: asked twice on a terminal, one "
        "line from a pipe; prints the hash to put in the config file.",
    )


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ≥ 0")
    return int(text)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        import fastapi  # noqa: F401  -- the extra's packages, checked before anything starts
        import uvicorn  # noqa: F401
    except ImportError:
        print(f"kkt cloud: {INSTALL_HINT}", file=sys.stderr)
        return EXIT_USAGE
    if args.action == "passwd":
        return _passwd(out)
    if args.action == "status":
        return _status(args, out)
    return _serve(args, out)


def _passwd(out: TextIO) -> int:
    from kkt.cloud.auth import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("kkt cloud passwd: the two differ; nothing printed", file=sys.stderr)
            return EXIT_USAGE
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("kkt cloud passwd: an empty password; give one", file=sys.stderr)
        return EXIT_USAGE
    print(hash_password(password), file=out)
    return EXIT_OK


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    from kkt.cloud.config import ConfigError, demo_config, load_config, parse_listen
    from kkt.cloud.emulated import EmulatedError
    from kkt.cloud.service import (
        EMULATED_ON_POSTGRES,
        CloudService,
        ServiceBusy,
        SharedStorageRefused,
    )
    from kkt.cloud.storage import is_postgres_url
    from kkt.cloud.storage.base import StorageError

    def say(line: str) -> None:
        print(line, file=out, flush=True)  # tests and scripts read these lines as they come

    try:
        if args.config is not None:
            config = load_config(args.config)
        elif args.register:
            raise ConfigError(
                "--register needs --config FILE with your users: the demo's password is public"
            )
        else:
            config = demo_config(args.emulated if args.emulated is not None else 1)
        host = port = None
        if args.http is not None:
            try:
                host, port = parse_listen(args.http)
            except ValueError as error:
                raise ConfigError(f"--http: {error}") from None
        config = config.with_overrides(
            host=host,
            port=port,
            duplicates=args.duplicates,
            max_queue=args.max_queue,
            max_body=args.max_body,
            emulated=None if config.demo else args.emulated,
            emulated_protocol=args.emulated_protocol,
            register_urls=tuple(args.register),
        )
        if args.db is not None and is_postgres_url(args.db) and config.emulated is not None:
            if config.emulated.count:
                raise ConfigError(EMULATED_ON_POSTGRES)
    except ConfigError as error:
        print(f"kkt cloud serve: {error}", file=sys.stderr)
        return EXIT_USAGE
    with _stop_on_signals():
        try:
            service = CloudService(config, args.state, db=args.db)
        except (StorageError, ServiceBusy, SharedStorageRefused) as error:
            print(f"kkt cloud serve: {_without_dsn(str(error), args.db)}", file=sys.stderr)
            return EXIT_USAGE
        try:
            # bound before the registers start: a port in use stops here, nothing fiscalized
            listener = service.listen(config.server.host, config.server.port)
        except OSError as error:
            service.stop()
            where = f"{config.server.host}:{config.server.port}"
            print(f"kkt cloud serve: cannot listen on {where}: {error}", file=sys.stderr)
            return EXIT_USAGE
        try:
            service.start(announce=say)
            say(_registers_line(config))
            if config.demo:
                say(f"demo login: demo password: demo group: demo inn: {_demo_inn(config)}")
            say(f"listening {listener.url}")
            listener.serve()
        except KeyboardInterrupt:
            pass  # SIGINT/SIGTERM: stop below, cleanly
        except EmulatedError as error:
            print(f"kkt cloud serve: {_one_line(str(error))}", file=sys.stderr)
            return EXIT_USAGE
        finally:
            listener.close()
            service.stop()
    return EXIT_OK


def _status(args: argparse.Namespace, out: TextIO) -> int:
    from kkt.cloud.storage import is_postgres_url, open_storage
    from kkt.cloud.storage.base import StorageError

    from .console import to_json_text

    where: str | Path = args.db if args.db is not None else args.state / "cloud.sqlite"
    if not is_postgres_url(where) and not Path(where).is_file():
        # not a DSN (`is_postgres_url` knows both forms): a path, printed as it is
        print(
            f"kkt cloud status: no service state at {where}: give --state DIR or --db URL",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        if is_postgres_url(where):
            from kkt.cloud.storage.postgres import PostgresStorage

            # only looks: not listed as an instance itself
            storage: Storage = PostgresStorage(str(where), join=False)
        else:
            storage = open_storage(where)
        try:
            data = status_of(storage)
        finally:
            storage.close()
        if not is_postgres_url(where):
            # SQLite's own instance would be this command: the service is the state's lock holder
            data["instances"] = _state_holder(Path(where).parent)
    except StorageError as error:
        print(f"kkt cloud status: {_without_dsn(str(error), args.db)}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(to_json_text(data), file=out)
    else:
        _print_status(data, out)
    return EXIT_OK


def status_of(storage: Storage, now: dt.datetime | None = None) -> dict[str, Any]:
    """What ``kkt cloud status`` shows, JSON-ready: ``instances`` (each with ``seen_ago_s`` and
    ``live``: heard from within a lease's time),
    ``registers`` (each with its ``lease``: holder, expiry, epoch, or None), ``queue`` (waiting
    requests by group, and in all) and ``counts`` (requests by ATOL status).  Times are the
    database's, and so is ``now`` when the storage tells it (``database_now``), else this
    machine's clock.  The storage's own instance (this command's) is not listed."""
    from kkt.cloud.lease import LEASE_TTL

    if now is None:
        database_now = getattr(storage, "database_now", None)
        now = database_now() if callable(database_now) else dt.datetime.now(dt.UTC)
    assert now is not None
    leases = {lease.register: lease for lease in storage.leases()}
    views = {view.name: view for view in storage.registers()}
    instances = [
        {
            "id": instance.id,
            "host": instance.host,
            "pid": instance.pid,
            "started_at": instance.started_at,
            "seen_at": instance.seen_at,
            "seen_ago_s": max(0.0, round((now - instance.seen_at).total_seconds(), 1)),
            # silent longer than a lease lasts: its leases have expired (dead, or cut off)
            "live": (now - instance.seen_at).total_seconds() <= LEASE_TTL,
        }
        for instance in sorted(storage.instances(), key=lambda i: i.id)
        if instance.id != storage.instance
    ]
    registers = []
    for name in sorted(set(views) | set(leases)):
        view, lease = views.get(name), leases.get(name)
        registers.append(
            {
                "name": name,
                "group": view.group if view else None,
                "state": view.state if view else None,
                "detail": view.detail if view else "",
                "fn_serial": view.fn_serial if view else "",
                "in_flight": view.in_flight if view else 0,
                "lease": None
                if lease is None
                else {
                    "instance": lease.instance,
                    "expires_at": lease.expires_at,
                    "expires_in_s": round((lease.expires_at - now).total_seconds(), 1),
                    "epoch": lease.epoch,
                },
            }
        )
    # every group with requests waiting (`queue_depths`, where the storage has it), and every
    # group of a register, waiting or not
    depths = getattr(storage, "queue_depths", None)
    by_group: dict[str, int] = dict(depths()) if callable(depths) else {}
    for group in {view.group for view in views.values()} - set(by_group):
        by_group[group] = storage.queue_depth(group)
    return {
        "instances": instances,
        "registers": registers,
        "queue": {
            "by_group": dict(sorted(by_group.items())),
            "total": storage.queue_depth(),
        },
        "counts": storage.counts(),
    }


def _state_holder(state: Path) -> list[dict[str, Any]]:
    """The service serving ``state`` (the holder of its lock), as `status_of` lists instances."""
    import fcntl
    import os
    import socket

    from kkt.cloud.service import LOCK_NAME

    path = state / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").split()
            pid = int(text[0]) if text and text[0].isdigit() else 0
            host = socket.gethostname()
            return [
                {
                    "id": f"{host}:{pid}",
                    "host": host,
                    "pid": pid,
                    "started_at": None,
                    "seen_at": None,
                    "seen_ago_s": 0.0,
                    "live": True,
                }
            ]
        return []  # nobody holds it: no service runs on this state
    finally:
        os.close(fd)


def _print_status(data: dict[str, Any], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    from .console import show

    console = Console(file=out, width=None if out.isatty() else 160)
    instances = Table(title=f"instances ({len(data['instances'])})", title_justify="left")
    for column in ("id", "host", "pid", "started", "seen"):
        instances.add_column(column)
    for instance in data["instances"]:
        instances.add_row(
            instance["id"],
            instance["host"],
            str(instance["pid"]),
            show(instance["started_at"]),
            "now"
            if instance["seen_at"] is None
            else f"{instance['seen_ago_s']:g} s ago" + ("" if instance["live"] else " (silent)"),
        )
    console.print(instances)
    registers = Table(title=f"registers ({len(data['registers'])})", title_justify="left")
    for column in ("name", "group", "state", "lease holder", "lease expires", "epoch", "detail"):
        registers.add_column(column)
    for register in data["registers"]:
        lease = register["lease"]
        if lease is None:
            holder = expires = epoch = "—"
        else:
            holder, epoch = lease["instance"], str(lease["epoch"])
            left = lease["expires_in_s"]
            expires = f"in {left:g} s" if left > 0 else f"expired {-left:g} s ago"
        registers.add_row(
            register["name"],
            register["group"] or "—",
            register["state"] or "—",
            holder,
            expires,
            epoch,
            register["detail"],
        )
    console.print(registers)
    queue = Table(title="queue", title_justify="left")
    queue.add_column("group")
    queue.add_column("waiting", justify="right")
    for group, depth in data["queue"]["by_group"].items():
        queue.add_row(group, str(depth))
    queue.add_row("all", str(data["queue"]["total"]))
    console.print(queue)
    counts = data["counts"]
    console.print(f"requests: {counts['wait']} wait, {counts['done']} done, {counts['fail']} fail")


def _without_dsn(text: str, db: str | None) -> str:
    """``text`` (an error from below) with the DSN ``db`` in it shown only as `describe_dsn`
    shows it, and its password, wherever it appears, masked: the storage's messages never
    repeat them, and this keeps it so should one ever do."""
    from kkt.cloud.storage import describe_dsn, is_postgres_url

    if db is None or not is_postgres_url(db):
        return text
    text = text.replace(db, describe_dsn(db))
    password = _password_of(db)
    return text.replace(password, "***") if password else text


def _password_of(dsn: str) -> str:
    """The password a DSN holds ('' if none, or if it cannot be read)."""
    from urllib.parse import unquote, urlsplit

    try:
        from psycopg.conninfo import conninfo_to_dict

        return str(conninfo_to_dict(dsn).get("password") or "")
    except Exception:  # no psycopg, or a DSN libpq cannot read: what a URL tells
        try:
            return unquote(urlsplit(dsn.strip()).password or "")
        except ValueError:
            return ""


def _demo_inn(config: CloudConfig) -> str:
    """The INN the demo's emulated registers are registered with: requests must send it as
    ``company.inn`` (the group's, else the emulator's test INN, which it then gets)."""
    from kkt.emulator.state import TEST_INN

    group = config.group(config.emulated.group) if config.emulated is not None else None
    return group.inn if group is not None and group.inn else TEST_INN


def _one_line(text: str) -> str:
    """A child's traceback in an error's text reduced to its last line (what went wrong): the
    user gets one line, not a stack."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) <= 1:
        return text.strip()
    head = lines[0].removesuffix("Traceback (most recent call last):").strip()
    return f"{head} {lines[-1]}" if head else lines[-1]


def _registers_line(config: CloudConfig) -> str:
    parts = [f"{r.name} {r.url}" for r in config.registers]
    count = len(config.registers)
    if config.emulated is not None and config.emulated.count:
        count += config.emulated.count
        parts.append(f"{config.emulated.count} emulated {config.emulated.protocol}")
    return f"registers {count} ({', '.join(parts) or 'none'})"


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM acts as Ctrl-C (KeyboardInterrupt) while the service runs, so a stop at any
    point -- while registers start, or after uvicorn's own handler ended the HTTP loop and
    re-raised it -- ends in `CloudService.stop`."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
