"""A private PostgreSQL cluster, the one implementation that ``kkt bench`` and the tests share
(the tests' fixtures in tests/support/postgres.py are a thin layer over `PrivatePostgres`; the
bench cannot import tests/support, which is not installed with ``kkt``, so the class lives here).

`PrivatePostgres` runs ``initdb`` in a temporary directory and starts ``postgres`` with no TCP
listener at all (``listen_addresses=''``): its only door is a unix socket inside that directory
(mode 0700), where local connections are trusted -- no password exists, nothing outside the
machine (nor any other user's process that cannot enter the directory) reaches it.  ``fsync``
stays on: durability is tested, and measured, for real.

It runs the newest version found under /usr/lib/postgresql/*/bin (Debian's layout; ``apt-get
install postgresql`` provides it).  PostgreSQL refuses to run as root, so as root ``initdb``,
``pg_ctl`` and ``postgres`` run as the ``postgres`` OS user (``runuser``) in a directory given to
that user; the caller (root) still reaches the socket.

A process killed outright (``timeout``, ``kill -9``) runs no finaliser, and a server outlives its
client: so `start` leaves a small watchdog process waiting on a pipe from this one; when that
closes (this process is gone, however) it stops the server (``-m immediate``) and deletes its
directory.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BINARIES = Path("/usr/lib/postgresql")
OS_USER = "postgres"  # who runs the server when we run as root
SUPERUSER = "postgres"  # the cluster's superuser (initdb -U)
PORT = 5432  # names the socket file only (.s.PGSQL.5432): no TCP port is opened
COMMAND_SECONDS = 120.0  # initdb, pg_ctl start/stop: a loaded 2-core machine with fsync on

# Run by the watchdog: wait for EOF on stdin (the owning process ended, however), then stop the
# server and delete its directory.  Argument: the pg_ctl stop command, then the directory.
# A server still starting when the owner died has no postmaster.pid yet for pg_ctl: asked again.
# It forks at once and the first process exits: the watchdog is nobody's child of ours, so the
# tests' check for child processes left behind (support.leaks) does not see it.
WATCHDOG = """
import os, shutil, subprocess, sys, time
if os.fork():
    os._exit(0)
sys.stdin.buffer.read()
for _ in range(10):
    if not os.path.exists(os.path.join(sys.argv[-1], "data", "postmaster.pid")):
        break
    subprocess.run(sys.argv[1:-1], capture_output=True, timeout=120, check=False)
    time.sleep(1)
shutil.rmtree(sys.argv[-1], ignore_errors=True)
"""


class ClusterError(RuntimeError):
    """The private cluster could not be made, started or stopped (its log's tail included)."""


class PostgresMissing(ClusterError):
    """No PostgreSQL server binaries here; the message says how to get them."""


def _version(bindir: Path) -> tuple[int, ...] | None:
    """``16`` -> (16,), ``9.6`` -> (9, 6); None for a directory that is not a version."""
    name = bindir.parent.name
    if re.fullmatch(r"\d+(?:\.\d+)?", name) is None:
        return None
    return tuple(int(part) for part in name.split("."))


def server_binaries() -> Path:
    """The newest ``/usr/lib/postgresql/N/bin`` with an executable ``initdb``; raises
    `PostgresMissing` naming the package to install."""
    found = []
    for initdb in BINARIES.glob("*/bin/initdb"):
        version = _version(initdb.parent)
        if version is not None and os.access(initdb, os.X_OK):
            found.append((version, initdb.parent))
    if not found:
        raise PostgresMissing(
            f"no PostgreSQL server binaries in {BINARIES}/*/bin: apt-get install postgresql"
        )
    return max(found)[1]


class PrivatePostgres:
    """One private cluster: `start`, `dsn`/`create_database`, `stop`/`restart`, `close`.

    Its directory is ``base`` when given (created, and removed by `close`), else a fresh one
    under ``root`` (default: the system's temporary directory -- a short path: a unix socket's
    path must stay under 108 bytes).  ``bindir`` defaults to `server_binaries`."""

    def __init__(
        self, root: Path | None = None, *, bindir: Path | None = None, base: Path | None = None
    ) -> None:
        self.bin = bindir if bindir is not None else server_binaries()
        self.root = (
            Path(base) if base is not None else Path(tempfile.mkdtemp(prefix="kkt-pg-", dir=root))
        )
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_root = os.geteuid() == 0
        self._databases = itertools.count(1)
        self._initialised = False
        self._watchdog: subprocess.Popen[bytes] | None = None
        self.running = False

    # -- running the server's tools ---------------------------------------------------------------

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bin / program), *args]
        if self._as_root:  # PostgreSQL will not run as root
            command = ["runuser", "-u", OS_USER, "--", *command]
        return command

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._command(program, *args),
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
            check=False,
            cwd=self.root,  # the postgres user may not be able to read root's cwd
            stdin=subprocess.DEVNULL,
        )

    def _check(self, done: subprocess.CompletedProcess[str], what: str) -> None:
        if done.returncode != 0:
            raise ClusterError(
                f"{what} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
                f"\n-- server log ({self.log}):\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- life -------------------------------------------------------------------------------------

    def _initdb(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            user = pwd.getpwnam(OS_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        os.chmod(self.root, 0o700)  # the socket's only door: whoever may enter the directory
        done = self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth-local=trust",  # the socket in the private directory
            "--auth-host=reject",  # and nothing else (no TCP listener either)
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
            "--no-sync",  # initdb's own files only: the server below runs with fsync on
        )
        self._check(done, "initdb")
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.root}'",
            "port": str(PORT),
            "fsync": "on",
            "max_connections": "200",  # several pools per test or bench, two instances each
            "shared_buffers": "32MB",
            "log_min_messages": "warning",
        }
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# kkt.tools.bench.postgres\n")
            for name, value in settings.items():
                conf.write(f"{name} = {value}\n")
        self._initialised = True

    def _watch(self) -> None:
        """Leave the watchdog (once): it stops the server when this process is gone."""
        if self._watchdog is not None:
            return
        stop = self._command("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, *stop, str(self.root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a ^C to our process group does not end it
        )
        self._watchdog.wait(COMMAND_SECONDS)  # the first process; its fork watches on

    def start(self) -> None:
        """initdb on the first call; then start the server and wait until it accepts."""
        if self.running:
            return
        if not self._initialised:
            self._initdb()
        self._watch()
        done = self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w")
        self._check(done, "pg_ctl start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: sessions are cut, the data is checkpointed); when that does
        not end in time, ``immediate``.  Nothing of it is left running either way; idempotent."""
        if not self.running:
            return
        try:
            done: subprocess.CompletedProcess[str] | None = self._run(
                "pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w"
            )
        except subprocess.TimeoutExpired:
            done = None
        if done is None or done.returncode != 0:
            again = self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
            if again.returncode != 0 and self._pid() is not None:
                self.running = False  # do not try again at exit: say it instead
                self._check(again, "pg_ctl stop -m immediate")
        self.running = False

    def restart(self) -> None:
        """Stop (sessions cut) and start again: clients' connections are broken."""
        self.stop()
        self.start()

    def _pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().split()[0])
        return None

    def close(self) -> None:
        """Stop, then delete the directory; the watchdog, told so, ends.  Idempotent."""
        try:
            self.stop()
        finally:
            if self._watchdog is not None:
                watchdog, self._watchdog = self._watchdog, None
                assert watchdog.stdin is not None
                watchdog.stdin.close()  # its cue: it finds nothing running and ends
            shutil.rmtree(self.root, ignore_errors=True)

    remove = close  # the tests' name for it

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- databases --------------------------------------------------------------------------------

    @property
    def version(self) -> str:
        """The server's major version (its binaries' directory name)."""
        return self.bin.parent.name

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq URL to ``dbname`` over the private socket (no password: trust)."""
        return f"postgresql://{SUPERUSER}@/{dbname}?host={self.root}&port={PORT}"

    def create_database(self) -> str:
        """A fresh, empty database (the server started again if it was stopped); its URL."""
        import psycopg  # the cloud extra's: imported only when a database is wanted

        self.start()
        name = f"kkt_{next(self._databases)}"
        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            # the name is ours (kkt_<n>), not input: no identifier quoting needed beyond this
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)
