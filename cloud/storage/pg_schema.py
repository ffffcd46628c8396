"""The PostgreSQL schema of the cloud register and its versioned migrations.

Every table is named ``cloud_*`` so the service may share a database (and a schema) with other
things.  ``cloud_schema`` holds the versions applied; `migrate` applies the missing ones in order,
all in one transaction taken under a transaction-scoped advisory lock (`MIGRATION_LOCK`): several
instances starting at once migrate one at a time -- the first applies, the others wait, then find
nothing left to do.  PostgreSQL's DDL is transactional, so a migration that fails leaves nothing
half done.  Never edit a migration that has shipped; add the next.

Why the columns are what they are:

* ``body``, ``result``, ``error`` are JSON *text*: the body's numbers must come back exactly as
  received (`kkt.cloud.jsontext`); jsonb would reorder keys and is never queried here.
* times are ``timestamptz`` set by the database's clock (``now()``), so instances on machines
  whose clocks differ still order and expire things alike -- the leases above all.
* ``cloud_leases.epoch`` grows by one with each new grant of a register's lease -- to another
  instance, or to the same one after its lease lapsed (see `kkt.cloud.storage.postgres`; the
  comment in migration 1 predates that and is left as shipped); ``cloud_journal`` is the
  drivers' idempotency journal (`kkt.journal` semantics) with the register each key began on.
"""

from __future__ import annotations

from typing import Any

import psycopg

# pg_advisory_xact_lock's key: any constant no other user of the database picks ("kktcloud"
# in ASCII, folded into a signed 64-bit int).
MIGRATION_LOCK = int.from_bytes(b"kktcloud", "big") - (1 << 63)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE cloud_requests (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- arrival: claim takes the oldest
            uuid text NOT NULL UNIQUE,
            api integer NOT NULL,
            grp text NOT NULL,
            operation text NOT NULL,
            external_id text NOT NULL,
            idempotency_key text,
            fingerprint text NOT NULL,
            body text NOT NULL,
            callback_url text,
            inn text NOT NULL,
            state text NOT NULL,                 -- queued | assigned | done | fail
            register text,
            attempts integer NOT NULL DEFAULT 0,
            accepted_at timestamptz NOT NULL DEFAULT now(),
            done_at timestamptz,
            result text,
            error text,
            fn_serial text,
            document_number bigint,
            ofd_acknowledged boolean NOT NULL DEFAULT false,
            UNIQUE (grp, external_id),
            UNIQUE (grp, idempotency_key)
        )""",
        # claim: the oldest queued of a group, without reading the finished ones
        "CREATE INDEX cloud_requests_queued ON cloud_requests (grp, seq) WHERE state = 'queued'",
        # queue_depth, asked on every POST: only the waiting ones
        "CREATE INDEX cloud_requests_waiting ON cloud_requests (grp) "
        "WHERE state IN ('queued', 'assigned')",
        "CREATE INDEX cloud_requests_assigned ON cloud_requests (register, seq) "
        "WHERE state = 'assigned'",
        "CREATE INDEX cloud_requests_ofd ON cloud_requests (fn_serial, document_number) "
        "WHERE NOT ofd_acknowledged AND state = 'done'",
        """CREATE TABLE cloud_outbox (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            uuid text NOT NULL,
            url text NOT NULL,
            state text NOT NULL,                 -- pending | delivered | abandoned
            attempts integer NOT NULL DEFAULT 0,
            next_at timestamptz NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )""",
        "CREATE INDEX cloud_outbox_due ON cloud_outbox (next_at, id) WHERE state = 'pending'",
        """CREATE TABLE cloud_attempts (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            callback_id bigint NOT NULL,
            at timestamptz NOT NULL DEFAULT now(),
            ok boolean NOT NULL,
            status integer,
            error text NOT NULL
        )""",
        "CREATE INDEX cloud_attempts_callback ON cloud_attempts (callback_id, id)",
        """CREATE TABLE cloud_tokens (
            token_hash text PRIMARY KEY, login text NOT NULL, expires_at timestamptz NOT NULL
        )""",
        "CREATE TABLE cloud_registers (name text PRIMARY KEY, view text NOT NULL)",
        "CREATE TABLE cloud_register_details (name text PRIMARY KEY, details text NOT NULL)",
        """CREATE TABLE cloud_instances (
            id text PRIMARY KEY,                 -- host:pid:random
            host text NOT NULL,
            pid integer NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            seen_at timestamptz NOT NULL DEFAULT now()
        )""",
        """CREATE TABLE cloud_leases (
            register text PRIMARY KEY,
            instance text NOT NULL,
            expires_at timestamptz NOT NULL,     -- database clock
            epoch bigint NOT NULL DEFAULT 1,     -- +1 each time another instance takes it
            taken_at timestamptz NOT NULL DEFAULT now()
        )""",
        "CREATE TABLE cloud_settings (name text PRIMARY KEY, value bytea NOT NULL)",
        """CREATE TABLE cloud_journal (
            key text PRIMARY KEY,
            register text NOT NULL,
            state text NOT NULL,                 -- pending | done
            before bigint NOT NULL,
            operation integer NOT NULL,
            total bigint NOT NULL,
            result text,
            fn text NOT NULL DEFAULT '',
            fingerprint text NOT NULL DEFAULT '',
            payments text NOT NULL DEFAULT '',
            updated_at timestamptz NOT NULL DEFAULT now()
        )""",
        "CREATE INDEX cloud_journal_fn ON cloud_journal (fn, state)",
        "CREATE INDEX cloud_journal_fn_before ON cloud_journal (fn, before)",
    ),
)


class SchemaTooNew(Exception):
    """The database was migrated by a newer kktkit than this one."""

    def __init__(self, found: int) -> None:
        super().__init__(found)
        self.found = found


def version(connection: psycopg.Connection[Any]) -> int:
    """The schema version applied (0: none; the table is created when missing)."""
    connection.execute("CREATE TABLE IF NOT EXISTS cloud_schema (version integer PRIMARY KEY)")
    row = connection.execute("SELECT max(version) FROM cloud_schema").fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def applied(connection: psycopg.Connection[Any]) -> int:
    """The schema version applied (0: none), read only: nothing is created."""
    row = connection.execute("SELECT to_regclass('cloud_schema') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return 0
    found = connection.execute("SELECT max(version) FROM cloud_schema").fetchone()
    return int(found[0]) if found is not None and found[0] is not None else 0


def migrate(connection: psycopg.Connection[Any]) -> int:
    """Apply the missing migrations in one transaction, under the migration lock; returns the
    version the schema is at.  Raises `SchemaTooNew` (nothing changed) for a newer schema."""
    with connection.transaction():
        # Taken first: the CREATE TABLE IF NOT EXISTS of two instances at once would otherwise
        # race on the catalog (one fails with a unique violation of pg_type).
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        current = version(connection)
        if current > len(MIGRATIONS):
            raise SchemaTooNew(current)
        for number, statements in enumerate(MIGRATIONS, start=1):
            if number <= current:
                continue
            for statement in statements:
                connection.execute(statement)  # DDL of our own: no parameters
            connection.execute("INSERT INTO cloud_schema (version) VALUES (%s)", (number,))
        return len(MIGRATIONS)
