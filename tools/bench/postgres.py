"""A private PostgreSQL cluster for ``kkt bench``: the machine's server binaries
(``/usr/lib/postgresql/*/bin``, the newest version), a data directory in a temporary directory,
no TCP (``listen_addresses = ''``), its Unix socket in that directory, ``trust`` for that socket
only.  Nothing of it outlives `PrivatePostgres.stop` (a fast stop, then an immediate one).

The bench cannot use the tests' fixture (``tests/support`` is not installed with ``kkt``), so the
bench has this small one of its own.  As root the server runs as the ``postgres`` OS user
(``runuser``): PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

BINARIES = Path("/usr/lib/postgresql")
COMMAND_SECONDS = 120.0  # initdb, pg_ctl start/stop: each must end within this
SUPERUSER = "postgres"


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries here; the message says how to get them."""


def server_binaries() -> Path:
    """The newest ``/usr/lib/postgresql/N/bin`` holding ``initdb``; raises `PostgresMissing`."""
    found = sorted(
        (path for path in BINARIES.glob("*/bin") if (path / "initdb").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else -1,
    )
    if not found:
        raise PostgresMissing(
            f"no PostgreSQL server binaries in {BINARIES}/*/bin: apt-get install postgresql"
        )
    return found[-1]


class PrivatePostgres:
    """One private cluster: `start`, `dsn`/`create_database`, `stop` (and `restart`)."""

    def __init__(self, root: Path | None = None) -> None:
        self.bin = server_binaries()
        # A short path of its own: a Unix socket's path must stay under 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="kkt-pg-", dir=root))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            user = pwd.getpwnam(SUPERUSER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", SUPERUSER, "--"]
        self._databases = 0
        self.running = False

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as_user, str(self.bin / program), *args]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=COMMAND_SECONDS, check=False
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"{program} failed ({done.returncode}): {' | '.join(tail)}")

    def start(self) -> None:
        if not self.data.exists():
            self._run(
                "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                "--locale=C", "--no-sync",
            )  # fmt: skip
            with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
                conf.write(
                    f"listen_addresses = ''\nunix_socket_directories = '{self.root}'\n"
                    "fsync = on\nmax_connections = 200\n"
                )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: sessions ended, a clean shutdown); an ``immediate`` stop
        when that fails.  Idempotent."""
        if not self.running:
            return
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.running = False

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def version(self) -> str:
        """The server's major version (its binaries' directory name)."""
        return self.bin.parent.name

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{dbname}?host={self.root}"

    def create_database(self) -> str:
        """A fresh database; its DSN."""
        import psycopg  # the cloud extra's: imported only when a database is wanted

        self._databases += 1
        name = f"kkt_{self._databases}"
        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # a name of our own making
        return self.dsn(name)

    def close(self) -> None:
        """Stop the server and remove its files."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
