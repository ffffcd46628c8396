"""A private PostgreSQL cluster for the tests, from the machine's server binaries.

`PostgresCluster` runs ``initdb`` in a temporary directory and starts ``postgres`` with no TCP
listener at all (``listen_addresses=''``): its only door is a unix socket inside that directory,
where local connections are trusted -- no password exists, nothing outside the machine (nor any
other user's process that cannot enter the directory) reaches it.  ``fsync`` stays on: the tests
of durability must test the real thing.

It runs the newest version found under /usr/lib/postgresql/*/bin (Debian's layout; ``apt-get
install postgresql`` provides it).  PostgreSQL refuses to run as root, so as root ``initdb``,
``pg_ctl`` and ``postgres`` run as the ``postgres`` OS user (``runuser``) in a directory given to
that user; the tests themselves (root) still reach the socket.

Fixtures (imported into tests/cloud/conftest.py):

* ``postgres_cluster`` (session): one cluster for the whole run -- initdb and a start take a
  second or two, a database a tenth of that -- stopped when the run ends (``pg_ctl stop -m
  fast``, then ``-m immediate`` if that hangs).  A run killed outright (``timeout``, ``kill
  -9``) runs no finaliser, and a server outlives its client: so a small watchdog process waits
  on a pipe from the test process and, when that closes (the test process is gone, however),
  stops the server (``-m immediate``) and deletes its directory.
* ``postgres_dsn`` (function): a fresh, empty database on it, as a ``postgresql://`` URL.  A
  test that stopped the cluster (`PostgresCluster.stop`) need not start it again: the next
  ``postgres_dsn`` does.

Without the binaries (or psycopg) the tests that need them are skipped, saying what to install.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ROOT = Path("/usr/lib/postgresql")
OS_USER = "postgres"  # who runs the server when the tests run as root
DB_USER = "postgres"  # the cluster's superuser (initdb -U)
PORT = 5432  # names the socket file only (.s.PGSQL.5432): no TCP port is opened
START_TIMEOUT = 60  # seconds: a loaded 2-core machine with fsync on


# Run by the watchdog: wait for EOF on stdin (the test process ended, however), then stop the
# server and delete its directory.  Argument: the pg_ctl stop command, then the directory.
# A server still starting when the tests died has no postmaster.pid yet for pg_ctl: asked again.
# It forks at once and the first process exits: the watchdog is nobody's child of ours, so the
# suite's check for child processes left behind by a test (support.leaks) does not see it.
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


def find_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb, or None."""
    found = []
    for initdb in PG_ROOT.glob("*/bin/initdb"):
        match = re.fullmatch(r"\d+(?:\.\d+)?", initdb.parent.parent.name)
        if match and os.access(initdb, os.X_OK):
            found.append((float(initdb.parent.parent.name), initdb.parent))
    return max(found)[1] if found else None


class PostgresCluster:
    """One private cluster in ``base`` (a directory this creates and removes)."""

    def __init__(self, bindir: Path, base: Path | None = None) -> None:
        self.bindir = bindir
        self.base = Path(base or tempfile.mkdtemp(prefix="kkt-pg-"))
        self.data = self.base / "data"
        self.socket_dir = self.base  # the socket sits beside the data, in the private dir
        self.log = self.base / "server.log"
        self._as_root = os.geteuid() == 0
        self._databases = itertools.count(1)
        self._initialised = False
        self._watchdog: subprocess.Popen[bytes] | None = None
        self.running = False

    # -- running the server's tools ---------------------------------------------------------------

    def _command(self, *args: str) -> list[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", OS_USER, "--", *command]
        return command

    def _run(self, *args: str, timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess[str]:
        command = self._command(*args)
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.base,  # the postgres user may not be able to read root's cwd
            stdin=subprocess.DEVNULL,
        )

    def _check(self, done: subprocess.CompletedProcess[str], what: str) -> None:
        if done.returncode != 0:
            raise ClusterError(
                f"{what} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
                f"\n-- server log:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- life -------------------------------------------------------------------------------------

    def _initdb(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            user = pwd.getpwnam(OS_USER)
            os.chown(self.base, user.pw_uid, user.pw_gid)
        os.chmod(self.base, 0o700)  # the socket's only door: whoever may enter the directory
        done = self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            DB_USER,
            "--auth-local=trust",  # the socket in the private directory
            "--auth-host=reject",  # and nothing else (no TCP listener either)
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        )
        self._check(done, "initdb")
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "port": str(PORT),
            "fsync": "on",
            "max_connections": "200",  # several storages (pools) per test, two instances each
            "shared_buffers": "32MB",
            "log_min_messages": "warning",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/support/postgres.py\n")
            for name, value in settings.items():
                conf.write(f"{name} = {value}\n")
        self._initialised = True

    def start(self) -> None:
        """initdb on the first call; then start the server and wait until it accepts."""
        if self.running:
            return
        if not self._initialised:
            self._initdb()
        if self._watchdog is None:
            stop = self._command("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", WATCHDOG, *stop, str(self.base)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a ^C to the tests' process group does not end it
            )
            self._watchdog.wait(START_TIMEOUT)  # the first process; its fork watches on
        done = self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w")
        self._check(done, "pg_ctl start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: sessions are cut, the data is checkpointed); when that does
        not end in time, ``immediate``.  Nothing of it is left running either way."""
        if not self.running:
            return
        try:
            done = self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w")
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

    def remove(self) -> None:
        """Stop, then delete the directory; the watchdog, told so, ends."""
        try:
            self.stop()
        finally:
            if self._watchdog is not None:
                watchdog, self._watchdog = self._watchdog, None
                assert watchdog.stdin is not None
                watchdog.stdin.close()  # its cue: it finds nothing running and ends
            shutil.rmtree(self.base, ignore_errors=True)

    # -- databases --------------------------------------------------------------------------------

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq URL to ``dbname`` over the private socket (no password: trust)."""
        return f"postgresql://{DB_USER}@/{dbname}?host={self.socket_dir}&port={PORT}"

    def create_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        self.start()
        name = f"test_{next(self._databases)}"
        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            # the name is ours (test_<n>), not input: no identifier quoting needed beyond this
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)


def _skip_reason() -> str | None:
    if find_bindir() is None:
        return (
            "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin: apt-get install postgresql"
        )
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        return "psycopg is not installed: pip install -e '.[test]' (psycopg[binary], psycopg-pool)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            return f"running as root and no {OS_USER!r} OS user to run the server as"
    return None


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    bindir = find_bindir()
    assert bindir is not None
    cluster = PostgresCluster(bindir)
    atexit.register(cluster.remove)  # a run cut short still stops it (a no-op once removed)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
        atexit.unregister(cluster.remove)


@pytest.fixture
def postgres_dsn(postgres_cluster: PostgresCluster) -> str:
    """A fresh database on the session's cluster (started again if a test stopped it)."""
    return postgres_cluster.create_database()
