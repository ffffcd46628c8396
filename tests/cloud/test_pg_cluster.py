"""The private PostgreSQL cluster of the tests (tests/support/postgres.py): a fresh database per
test, reachable over its socket only, and it comes back after a restart."""

from __future__ import annotations

import psycopg
import pytest
from support.postgres import PostgresCluster


def test_each_test_gets_a_fresh_empty_database(
    postgres_cluster: PostgresCluster, postgres_dsn: str
) -> None:
    with psycopg.connect(postgres_dsn) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
        assert tables == (0,)
        connection.execute("CREATE TABLE here (n int)")
    other = postgres_cluster.create_database()
    assert other != postgres_dsn
    with psycopg.connect(other) as connection:
        assert connection.execute("SELECT to_regclass('here')").fetchone() == (None,)


def test_no_tcp_listener_and_fsync_on(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as connection:
        assert connection.execute("SHOW listen_addresses").fetchone() == ("",)
        assert connection.execute("SHOW fsync").fetchone() == ("on",)


def test_a_restart_cuts_sessions_and_the_data_stays(
    postgres_cluster: PostgresCluster, postgres_dsn: str
) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute("CREATE TABLE kept (n int)")
        connection.execute("INSERT INTO kept VALUES (7)")
        postgres_cluster.restart()
        with pytest.raises(psycopg.OperationalError):
            connection.execute("SELECT 1")
    with psycopg.connect(postgres_dsn) as connection:
        assert connection.execute("SELECT n FROM kept").fetchone() == (7,)
