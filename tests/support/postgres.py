"""The tests' fixtures over the one private PostgreSQL cluster, `kkt.tools.bench.postgres`
(``PrivatePostgres``: no TCP listener, trust on a socket in a private directory, fsync on, the
newest /usr/lib/postgresql/*/bin, ``runuser`` as root, a watchdog that stops the server when the
test process dies however).  Imported into tests/cloud/conftest.py:

* ``postgres_cluster`` (session): one cluster for the whole run -- initdb and a start take a
  second or two, a database a tenth of that -- stopped when the run ends (``pg_ctl stop -m
  fast``, then ``-m immediate`` if that hangs), and by the watchdog if the run is killed.
* ``postgres_dsn`` (function): a fresh, empty database on it, as a ``postgresql://`` URL.  A
  test that stopped the cluster (`PostgresCluster.stop`) need not start it again: the next
  ``postgres_dsn`` does.

Without the binaries (or psycopg) the tests that need them are skipped, saying what to install.
"""

from __future__ import annotations

import atexit
import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest
from kkt.tools.bench.postgres import (
    OS_USER,
    ClusterError,
    PostgresMissing,
    PrivatePostgres,
    server_binaries,
)

PostgresCluster = PrivatePostgres  # the tests' name for it

__all__ = ["ClusterError", "PostgresCluster", "find_bindir", "postgres_cluster", "postgres_dsn"]


def find_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb, or None."""
    try:
        return server_binaries()
    except PostgresMissing:
        return None


def _skip_reason() -> str | None:
    try:
        server_binaries()
    except PostgresMissing as missing:
        return str(missing)
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
def postgres_cluster() -> Iterator[PrivatePostgres]:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    cluster = PrivatePostgres()
    atexit.register(cluster.close)  # a run cut short still stops it (a no-op once closed)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
        atexit.unregister(cluster.close)


@pytest.fixture
def postgres_dsn(postgres_cluster: PrivatePostgres) -> str:
    """A fresh database on the session's cluster (started again if a test stopped it)."""
    return postgres_cluster.create_database()
