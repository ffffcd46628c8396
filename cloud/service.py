"""`CloudService`: the running service -- storage, register pool, callback sender, config.

    service = CloudService(config, state_dir)    # the state's lock taken, storage open
    listener = service.listen("127.0.0.1", 8080)  # bound first: a port in use starts nothing
    service.start()                  # registers (emulated ones too) and callbacks working
    listener.serve()                 # blocks until SIGINT/SIGTERM (`HttpThread` in tests)
    service.stop()

What the web parts use (agreed with the operator page and metrics): ``service.storage`` (a
`Storage`), ``service.pool.views()``, ``service.users`` (login -> groups, ``verify(login,
password)``), ``service.config``, ``service.latencies`` (the one `Latencies` the pool's
``on_latency`` feeds and ``/metrics`` reads).

The state directory (0700) holds ``cloud.lock`` (0600: one service per state directory, see
below), ``cloud.sqlite`` (0600: requests, tokens, outbox, and the driver's journal),
``callback.key`` (0600, the callbacks' HMAC key when the config gives none) and, for
``--emulated``, the emulated registers' own state (``emulated/NN``).

One service per state directory: two would both run register workers over the same requests
and settle each other's (two FN documents for one request).  `CloudService` takes an exclusive
``flock`` on ``cloud.lock`` before it opens anything else and holds it until `stop`; a second
one gets `ServiceBusy` naming the first one's PID.  The kernel drops the lock when the owner's
process ends, however it ends, so a stale file never blocks a restart.

``db``: a ``postgresql://`` URL puts the requests, the journal, the outbox and the register
leases in PostgreSQL instead (several instances, each with its own state directory, share it;
a register is driven by the holder of its lease, see `kkt.cloud.lease`).  Emulated registers are
refused there (`SharedStorageRefused`): they live and die with one instance, and their FN serials
are not unique across instances.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from . import jsontext
from .atol import report_json
from .auth import Users
from .callbacks import CallbackSender
from .config import CloudConfig
from .emulated import EmulatedPool
from .metrics import Latencies
from .model import RegisterView, ReportView
from .pool import RegisterPool, RegisterSpec, prepared_work
from .prepared import Prepared
from .storage import is_postgres_url, open_storage

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from .app import AppStorage

log = logging.getLogger(__name__)

DB_NAME = "cloud.sqlite"
KEY_NAME = "callback.key"
LOCK_NAME = "cloud.lock"
KEY_MIN_LENGTH = 32  # characters; ours are 64 hex digits (256 bits): a shorter file is torn
# After a kill -9 the emulated registers' child notices its parent is gone (end of file on its
# pipe) and lets go of their state a moment later: a restart waits that long, not forever.
EMULATED_LOCK_WAIT = 10.0


class ServiceBusy(Exception):
    """Another `CloudService` (in this process or another) holds the state directory."""

    def __init__(self, state_dir: Path, pid: int | None) -> None:
        self.state_dir = state_dir
        self.pid = pid
        who = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(
            f"another kkt cloud serve ({who}) uses {state_dir}: stop it or use another --state"
        )


class SharedStorageRefused(Exception):
    """Something that cannot be served on a storage several instances share (PostgreSQL)."""


EMULATED_ON_POSTGRES = (
    "emulated registers cannot be served on a PostgreSQL database: they live and die with one "
    "instance and their FN serials are not unique across instances -- serve them apart with "
    "`kkt emulator serve` and give each to the service as a real register (--register URL, or "
    "[[registers]] in --config)"
)


class Startable(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


class Pool(Startable, Protocol):
    """What the service needs of a register pool (`kkt.cloud.pool.RegisterPool`)."""

    def views(self) -> list[RegisterView]: ...


class _NoPool:
    """The pool before `start` (and of a service built without registers)."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def views(self) -> list[RegisterView]:
        return []


def private_dir(path: Path) -> None:
    """``path`` made (0700) or tightened to 0700: it holds the database and the HMAC key."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def lock_state(state_dir: Path) -> int:
    """The held exclusive lock of ``state_dir`` (an open descriptor of its ``cloud.lock``, our
    PID written in it); raises `ServiceBusy` with the holder's PID.  Closing the descriptor
    lets go."""
    path = state_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ServiceBusy(state_dir, _lock_owner(path)) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _lock_owner(path: Path) -> int | None:
    # the owner writes its PID just after it takes the lock: give it a moment to
    for _ in range(10):
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text(encoding="ascii").split()[0])
        time.sleep(0.02)
    return None


def callback_body(view: ReportView) -> bytes:
    """An outbox row's body: the ATOL report of the request as it is now."""
    return jsontext.dumps(report_json(view)).encode()


class CloudService:
    """``pool``: given, it replaces the one the config describes (tests pass a stand-in)."""

    def __init__(
        self,
        config: CloudConfig,
        state_dir: str | Path,
        *,
        pool: Pool | None = None,
        pool_factory: Callable[[CloudService], Pool] | None = None,
        db: str | None = None,
    ) -> None:
        self.config = config
        self.state_dir = Path(state_dir)
        self.users: Users = config.user_table()
        shared = db is not None and is_postgres_url(db)
        if shared and config.emulated is not None and config.emulated.count:
            raise SharedStorageRefused(EMULATED_ON_POSTGRES)
        private_dir(self.state_dir)
        # first of all: a second service on this state must not open (let alone work) it
        self._lock: int | None = lock_state(self.state_dir)
        try:
            # both storages keep the request bodies the app draws receipts from (`AppStorage`)
            self.storage = cast(
                "AppStorage",
                open_storage(
                    db if db is not None else self.state_dir / DB_NAME, callback_body=callback_body
                ),
            )
        except BaseException:
            self._unlock()
            raise
        self.pool: Pool = _NoPool()
        self._given_pool = pool
        self._pool_factory = pool_factory
        self._started: list[Startable] = []
        self._closed = False
        self._announce: Callable[[str], None] = log.warning
        # seconds per fiscalization, per register: the pool's on_latency feeds it, /metrics reads
        # it (one object for both, or the histogram stays empty)
        self.latencies = Latencies()
        # the conversions of requests accepted here, for the workers that claim them
        self.prepared = Prepared()

    # -- life -----------------------------------------------------------------------------------

    def start(self, *, announce: Callable[[str], None] | None = None) -> None:
        """Start the registers and the callback sender.  ``announce`` gets a line when the
        start waits (for the emulated registers' state, after a crash)."""
        if self._closed:
            raise RuntimeError("a stopped CloudService does not start again: make a new one")
        self._announce = announce or log.warning
        try:
            self.pool = self._make_pool()
            self.pool.start()
            self._started.append(self.pool)
            sender = CallbackSender(self.storage, self.callback_secret())
            sender.start()
            self._started.append(sender)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stops what started, newest first (the pool before its emulated registers), then
        closes the storage.  Safe to call twice."""
        while self._started:
            part = self._started.pop()
            with contextlib.suppress(Exception):  # stop the rest whatever one does
                part.stop()
        self.pool = _NoPool()
        self._closed = True
        try:
            self.storage.close()
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            fd, self._lock = self._lock, None
            os.close(fd)  # the only descriptor: the flock goes with it

    def __enter__(self) -> CloudService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- parts ----------------------------------------------------------------------------------

    def _make_pool(self) -> Pool:
        if self._given_pool is not None:
            return self._given_pool
        if self._pool_factory is not None:
            return self._pool_factory(self)
        specs = [
            RegisterSpec(
                register.name, register.group, register.url, register.protocol, register.verify
            )
            for register in self.config.registers
        ]
        emulated = self.config.emulated
        if emulated is not None and emulated.count:
            group = self.config.group(emulated.group)
            farm = EmulatedPool(
                self.state_dir, emulated.count, emulated.protocol, group.inn if group else None
            )
            self._wait_for_emulated_state(farm)
            farm.start()
            self._started.append(farm)
            specs.extend(farm.specs(emulated.group))
        if not specs:
            return _NoPool()
        return RegisterPool(
            self.storage,
            specs,
            on_latency=self.latencies.observe,
            work_of=prepared_work(self.prepared),
        )

    def _wait_for_emulated_state(self, farm: EmulatedPool) -> None:
        """Right after a ``kill -9`` of a service, its emulated registers' child process is
        still closing (it stops on its pipe's end of file, a moment later) and holds their
        state: wait for it, up to `EMULATED_LOCK_WAIT` seconds, saying so once.  Past that the
        start goes on and fails with the holder named (`EmulatedError`)."""
        from kkt.emulator.state import state_owner

        states = [farm.state(index) for index in range(farm.count)] + [farm.root / "ofd"]
        deadline = time.monotonic() + EMULATED_LOCK_WAIT
        said = False
        while True:
            owners = [owner for owner in map(state_owner, states) if owner is not None]
            if not owners or time.monotonic() >= deadline:
                return
            if not said:
                self._announce(
                    f"waiting up to {EMULATED_LOCK_WAIT:.0f} s for {owners[0]} to let go of the "
                    f"emulated registers in {farm.root} (a previous run still closing)"
                )
                said = True
            time.sleep(0.1)

    def callback_secret(self) -> bytes:
        """The config's ``callback_secret``, else the storage's (PostgreSQL: one secret made once
        in the database, so every instance signs alike), else a key made once and kept in the
        state dir.

        The key file is written whole or not at all (a temporary file, fsynced, then linked
        into place): a crash never leaves an empty key behind.  A key file shorter than
        `KEY_MIN_LENGTH` (torn by an older version, or edited) is replaced by a new key, with
        a warning: an empty or short HMAC key would sign callbacks anyone could forge.  Two
        services making it at once both end with the one that got there first."""
        if self.config.server.callback_secret:
            return self.config.server.callback_secret.encode()
        shared = self.storage.callback_secret()
        if shared is not None:
            return shared
        path = self.state_dir / KEY_NAME
        for _ in range(3):  # a torn key replaced; a race with another maker read again
            try:
                key = path.read_text(encoding="ascii").strip()
            except FileNotFoundError:
                key = None
            except (OSError, UnicodeDecodeError) as error:
                log.warning("%s unreadable (%s): a new key replaces it", path, error)
                _write_key(path, secrets.token_hex(32), replace=True)
                continue
            if key is not None and len(key) >= KEY_MIN_LENGTH:
                return key.encode()
            if key is not None:
                log.warning(
                    "%s holds a %d-character key (under %d): a new key replaces it; receivers "
                    "of callbacks need the new one",
                    path,
                    len(key),
                    KEY_MIN_LENGTH,
                )
            _write_key(path, secrets.token_hex(32), replace=key is not None)
        raise RuntimeError(f"{path}: no usable callback key could be written there")

    def registers(self) -> list[RegisterView]:
        return self.pool.views()

    # -- HTTP -----------------------------------------------------------------------------------

    def app(self) -> FastAPI:
        from .app import create_app

        return create_app(self)

    def listen(self, host: str, port: int) -> HttpListener:
        """The API's socket, bound and listening (port 0: the kernel picks one).  Take it
        before `start`: a port in use then fails before any register starts working."""
        return HttpListener(self.app(), host, port)

    def serve_http(self, host: str, port: int, *, announce: Callable[[str], None] = print) -> None:
        """Serve until SIGINT/SIGTERM (uvicorn catches them in the main thread); ``announce``
        gets ``listening http://HOST:PORT`` with the real port once connections are taken."""
        listener = self.listen(host, port)
        announce(f"listening {listener.url}")
        listener.serve()


def _write_key(path: Path, key: str, *, replace: bool) -> None:
    """``key`` into ``path`` atomically: a temporary file (0600) in the same directory, fsynced,
    then renamed over ``path`` (``replace``) or linked to it (not: the first maker wins, the
    others read its key), and the directory fsynced so the name survives a crash too."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (key + "\n").encode("ascii"))
        os.fsync(fd)
        os.close(fd)
        fd = -1
        if replace:
            os.replace(temporary, path)
        else:
            with contextlib.suppress(FileExistsError):  # another maker was first: its key holds
                os.link(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _server(app: FastAPI, host: str, port: int) -> tuple[uvicorn.Server, socket.socket]:
    """A uvicorn server and its bound, listening socket (port 0: the kernel picks one)."""
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config), sock


class HttpListener:
    """An app's bound, listening socket (connections wait in its backlog until `serve`);
    `serve` runs uvicorn on it in this thread until SIGINT/SIGTERM, `close` gives it up
    unserved.  ``url``: where it listens, with the real port."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server, self._sock = _server(app, host, port)
        self.url = f"http://{_url_host(host)}:{self._sock.getsockname()[1]}"

    def serve(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        finally:
            self._sock.close()

    def close(self) -> None:
        self._sock.close()


class HttpThread:
    """An app (the service's, `CloudService.app`, or a part of it) served by uvicorn on a
    thread (tests, benchmarks): `start` returns the base URL once the server accepts
    connections; `stop` ends it and joins the thread.  As a context manager: ``with
    HttpThread(app) as url``."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server, self._sock = _server(app, host, port)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="kkt-cloud-http"
        )
        self.url = f"http://{_url_host(host)}:{self._sock.getsockname()[1]}"

    def start(self) -> str:
        self._thread.start()
        started = threading.Event()
        while not self._server.started and self._thread.is_alive():
            started.wait(0.01)  # uvicorn offers no event to wait on; startup takes milliseconds
        if not self._server.started:
            self._sock.close()
            raise RuntimeError("the HTTP server did not start (see the log above)")
        return self.url

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join()
        self._sock.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
