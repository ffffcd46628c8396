"""`CloudService`: the running service -- storage, register pool, callback sender, config.

    service = CloudService(config, state_dir)
    service.start()                      # storage open, registers (emulated ones too) working
    service.serve_http("127.0.0.1", 8080)  # blocks until SIGINT/SIGTERM (or `HttpThread` in tests)
    service.stop()

What the web parts use (agreed with the operator page and metrics): ``service.storage`` (a
`Storage`), ``service.pool.views()``, ``service.users`` (login -> groups, ``verify(login,
password)``), ``service.config``, ``service.latencies`` (the one `Latencies` the pool's
``on_latency`` feeds and ``/metrics`` reads).

The state directory (0700) holds ``cloud.sqlite`` (0600: requests, tokens, outbox, and the
driver's journal), ``callback.key`` (0600, the callbacks' HMAC key when the config gives none)
and, for ``--emulated``, the emulated registers' own state (``emulated/NN``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from . import jsontext
from .atol import report_json
from .auth import Users
from .callbacks import CallbackSender
from .config import CloudConfig
from .emulated import EmulatedPool
from .metrics import Latencies
from .model import RegisterView, ReportView
from .pool import RegisterPool, RegisterSpec
from .storage.sqlite import SqliteStorage

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

DB_NAME = "cloud.sqlite"
KEY_NAME = "callback.key"


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
    ) -> None:
        self.config = config
        self.state_dir = Path(state_dir)
        self.users: Users = config.user_table()
        private_dir(self.state_dir)
        self.storage = SqliteStorage(self.state_dir / DB_NAME, callback_body=callback_body)
        self.pool: Pool = _NoPool()
        self._given_pool = pool
        self._pool_factory = pool_factory
        self._started: list[Startable] = []
        self._closed = False
        # seconds per fiscalization, per register: the pool's on_latency feeds it, /metrics reads
        # it (one object for both, or the histogram stays empty)
        self.latencies = Latencies()

    # -- life -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._closed:
            raise RuntimeError("a stopped CloudService does not start again: make a new one")
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
        self.storage.close()

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
            RegisterSpec(register.name, register.group, register.url, register.protocol)
            for register in self.config.registers
        ]
        emulated = self.config.emulated
        if emulated is not None and emulated.count:
            group = self.config.group(emulated.group)
            farm = EmulatedPool(
                self.state_dir, emulated.count, emulated.protocol, group.inn if group else None
            )
            farm.start()
            self._started.append(farm)
            specs.extend(farm.specs(emulated.group))
        if not specs:
            return _NoPool()
        return RegisterPool(self.storage, specs, on_latency=self.latencies.observe)

    def callback_secret(self) -> bytes:
        """The config's ``callback_secret``, else a key made once and kept in the state dir."""
        if self.config.server.callback_secret:
            return self.config.server.callback_secret.encode()
        path = self.state_dir / KEY_NAME
        try:
            return path.read_text(encoding="ascii").strip().encode()
        except FileNotFoundError:
            key = secrets.token_hex(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as file:
                file.write(key + "\n")
            return key.encode()

    def registers(self) -> list[RegisterView]:
        return self.pool.views()

    # -- HTTP -----------------------------------------------------------------------------------

    def app(self) -> FastAPI:
        from .app import create_app

        return create_app(self)

    def serve_http(self, host: str, port: int, *, announce: Callable[[str], None] = print) -> None:
        """Serve until SIGINT/SIGTERM (uvicorn catches them in the main thread); ``announce``
        gets ``listening http://HOST:PORT`` with the real port once connections are taken."""
        server, sock = _server(self.app(), host, port)
        try:
            announce(f"listening http://{_url_host(host)}:{sock.getsockname()[1]}")
            server.run(sockets=[sock])
        finally:
            sock.close()


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
