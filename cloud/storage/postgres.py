"""`PostgresStorage`: the cloud register's state in PostgreSQL, shared by several instances.

Several ``kkt cloud serve --db postgresql://...`` processes, on one machine or many, share one
database: the queue, the callback outbox, the drivers' journal and the register leases live in
it.  The semantics are `SqliteStorage`'s, method by method (see `kkt.cloud.storage.base`); what
several writers add:

* **claim** takes the group's oldest queued request with ``FOR UPDATE SKIP LOCKED`` in the one
  statement that assigns it: two workers (of one instance or of two) never get the same request
  and never wait for each other's row.
* **accept** is ``INSERT ... ON CONFLICT DO NOTHING``: two instances given the same external_id
  (or Idempotency-Key) at the same instant create one request; the second finds the first's.
  Every write is one transaction -- the outbox row with the ``complete``/``fail`` it follows.
* **wait_for_work**: ``accept`` and ``release`` send ``NOTIFY cloud_work`` in their transaction;
  one thread per instance LISTENs on a connection of its own and wakes the waiting workers, so
  a request accepted by one instance is picked up by another's idle register at once.
* **The callback outbox** is read by every instance's sender: `due_callbacks` *claims* the rows
  it returns (moves their ``next_at`` `CALLBACK_CLAIM_SECONDS` ahead, ``SKIP LOCKED``) so two
  senders do not post the same callback; `record_attempt` then sets the real next time.  A
  sender that dies holding rows delays them by that long (delivery stays at least once).
* **The HMAC secret** callbacks are signed with is one for all instances (`callback_secret`).

Leases: why lease ROWS with an expiry, not advisory locks.  An advisory lock belongs to a
connection: when that connection drops (a network blip, a PostgreSQL restart) the lock is gone at
once, silently, and the holder learns of it only at its next query -- meanwhile another instance
may have taken the lock and started driving the same register.  A lease row with an expiry lets
the holder know *locally* when to stop, well before anyone else may take over:

* `take_lease` sets ``expires_at = now() + ttl`` in the DATABASE clock, and another instance may
  take the row only once ``expires_at`` has passed in that same clock -- the machines' clocks
  never enter into it.
* The holder (`kkt.cloud.lease`) stops at ``renewed_at + ttl/2`` on its *local monotonic* clock,
  ``renewed_at`` taken before the renewing query was sent: the database's expiry is at least
  ``ttl`` after that instant, so the holder has stopped ``ttl/2`` before anyone may take over,
  however long the query or a lost connection took.
* Fencing: each grant has an ``epoch`` (`take_lease` returns it): a renewal keeps it, any new
  grant -- to another instance, or to this one again after its lease lapsed or was dropped --
  is the next.  The driver journal's ``begin`` -- written before any command that may move
  money -- is an INSERT that succeeds only while this instance holds the register's lease with
  that epoch (same statement; the lease row is read ``FOR SHARE``, so a taker's UPDATE waits
  for the begin to commit and then sees it).  So are the holder's writes about its requests
  (`complete`, `fail`, `hold`, `release`, the journal's ``forget``, each given ``fence``): a
  holder paused past its lease (a frozen VM, a statement stuck in TCP retransmission) is refused
  with `LeaseLost` and changes nothing the next holder did -- and a thread still working under
  an older grant of this same instance is refused alike.  `confirm_lease` asks the same
  question on its own (one query), for a check before each command frame that moves money.
* A key is begun on one register only: ``begin`` upserts only its own register's entry, so two
  registers that both read "never begun" for one key cannot both begin it (`KeyConflict`).

Connection errors (server down, restarting, unreachable, the pool's wait timing out) raise
`StorageUnavailable`: the message names the host and database (never the password) and says the
caller should retry (nothing half done: each write is one transaction).  The pool
(psycopg_pool) replaces broken connections by itself -- every connection is checked as it is
handed out -- so calls work again as soon as the server is back (after a long outage, within
about ``2 x connect_timeout``: the pool's retries back off, see ``reconnect_timeout``).

(An advisory lock does serve one purpose here: migrations, `kkt.cloud.storage.pg_schema`, where
the lock only has to last one transaction.)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import uuid as uuids
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import psycopg_pool
from kkt.cloud import jsontext
from kkt.cloud.model import Job, Order, RegisterView, ReportView

from kkt.errors import KeyConflict
from kkt.journal import Entry

from ..marking import MARKED_BODY_TEXT
from . import pg_schema
from .base import (
    Accepted,
    Callback,
    InstanceView,
    LeaseLost,
    LeaseView,
    StorageError,
    StorageUnavailable,
)
from .dsn import describe_dsn, parse_dsn
from .rows import JOB_COLUMNS as _JOB_COLUMNS
from .rows import VIEW_COLUMNS as _VIEW_COLUMNS
from .rows import callback as row_callback
from .rows import document as _document
from .rows import int_or_none as _int_or_none
from .rows import job as _job
from .rows import minimal_body as _minimal_body
from .rows import report_view
from .rows import status as _status

log = logging.getLogger(__name__)

CHANNEL = "cloud_work"  # LISTEN/NOTIFY: a request was accepted or released
# How long `due_callbacks` hides the rows it hands out from other instances' senders: longer than
# one batch takes to post (20 callbacks x 5 s timeout), short enough for a dead sender's rows.
CALLBACK_CLAIM_SECONDS = 120.0
POOL_SIZE = 20  # connections per instance: its workers, HTTP threads and the callback sender
LISTEN_POLL = 0.5  # seconds: how often the listening thread looks whether to stop
SECRET_NAME = "callback_secret"
SECRET_BYTES = 32
INSTANCE_FORGET = timedelta(days=1)  # an instance not seen this long leaves `instances()`


class PostgresStorage:
    """The `Storage` protocol over a PostgreSQL database (``dsn``: a libpq URL or key=value).

    Opening connects (up to ``connect_timeout`` seconds: `StorageUnavailable` otherwise),
    applies the missing migrations (one instance at a time) and registers this instance in
    ``cloud_instances`` -- unless ``join`` is False (``kkt cloud status`` only looks: it
    writes nothing, not even a migration, and refuses a schema not at this kktkit's version)."""

    def __init__(
        self,
        dsn: str,
        *,
        callback_body: Callable[[ReportView], bytes] | None = None,
        connect_timeout: float = 5.0,
        pool_size: int = POOL_SIZE,
        join: bool = True,
    ) -> None:
        # Parsed first, by libpq's own parser: a DSN it cannot read would otherwise reach the
        # pool, whose every retry logs libpq's message -- which quotes the DSN, password and all.
        self._password = parse_dsn(dsn).get("password", "")
        self._dsn = dsn
        self._where = describe_dsn(dsn)
        self._callback_body = callback_body or _minimal_body
        self._timeout = connect_timeout
        self._host = socket.gethostname()
        self.instance = f"{self._host}:{os.getpid()}:{secrets.token_hex(3)}"
        self._connect_kwargs: dict[str, Any] = {
            # libpq's own timeout counts whole seconds, at least 2
            "connect_timeout": max(2, int(connect_timeout + 0.999)),
            "application_name": f"kkt-cloud {self.instance}"[:63],
            # Over TCP (ignored on a unix socket): a server that vanished without closing the
            # connection (a network cut, a dead machine) is noticed in seconds, not after the
            # kernel's quarter of an hour of retransmissions -- a query does not hang that long.
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
            "tcp_user_timeout": 15_000,  # ms: unacknowledged data gives up after this
        }
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = (
            psycopg_pool.ConnectionPool(
                dsn,
                kwargs={"autocommit": True, **self._connect_kwargs},
                min_size=min(4, max(2, pool_size)),  # a burst of workers finds some open
                max_size=max(2, pool_size),
                open=False,
                check=psycopg_pool.ConnectionPool.check_connection,
                timeout=connect_timeout,
                # A pool that failed to reconnect for this long gives that slot up (and grows
                # again, at once, on the next call): psycopg_pool's retries back off
                # exponentially, which would otherwise leave a long outage's pool waiting about
                # as long again after the server is back.
                reconnect_timeout=max(2.0, 2 * connect_timeout),
                name="kkt-cloud",
            )
        )
        self._work = threading.Condition(threading.Lock())
        self._generation = 0  # bumped by accept/release (here or, via NOTIFY, elsewhere)
        self._seen = threading.local()
        self._listener: threading.Thread | None = None
        self._listener_lock = threading.Lock()
        self._stop = threading.Event()
        self._listening = threading.Event()  # set while the LISTEN connection is up
        self._closed = False
        try:
            try:
                self._pool.open(wait=True, timeout=connect_timeout)
            except psycopg_pool.PoolTimeout as error:
                raise self._unavailable(self._why_not(error)) from None
            with self._connection() as connection:
                try:
                    if join:
                        pg_schema.migrate(connection)
                    else:
                        self._check_version(pg_schema.applied(connection))
                except pg_schema.SchemaTooNew as newer:
                    raise StorageError(
                        f"the cloud database {self._where} has schema version {newer.found}, "
                        f"newer than this kktkit knows ({len(pg_schema.MIGRATIONS)}): upgrade "
                        "kktkit on this machine"
                    ) from None
            if join:
                self.heartbeat()
        except BaseException:
            self._pool.close()
            raise

    # -- plumbing -------------------------------------------------------------------------------

    def _check_version(self, found: int) -> None:
        """A storage that only looks (``join=False``) reads a schema at this kktkit's version
        only: it migrates nothing, and an older schema's tables may lack what it reads."""
        expected = len(pg_schema.MIGRATIONS)
        if found > expected:
            raise pg_schema.SchemaTooNew(found)
        if found == 0:
            raise StorageError(
                f"the database {self._where} holds no cloud service state (no cloud_schema): "
                "no `kkt cloud serve --db` has run on it yet -- check the DSN"
            )
        if found < expected:
            raise StorageError(
                f"the cloud database {self._where} has schema version {found}, older than this "
                f"kktkit's ({expected}): start `kkt cloud serve --db` of this version once to "
                "migrate it, or look with the kktkit the service runs"
            )

    def _unavailable(self, error: BaseException) -> StorageUnavailable:
        if isinstance(error, psycopg_pool.PoolTimeout):
            detail = f"no connection within {self._timeout:g} s"
        else:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            detail = "; ".join(lines[:2]) or type(error).__name__
        if self._password:
            detail = detail.replace(self._password, "***")
        return StorageUnavailable(
            f"PostgreSQL at {self._where} cannot be reached now ({detail}): the service "
            "retries by itself; check that the server is running and reachable from here"
        )

    def _why_not(self, timeout: psycopg_pool.PoolTimeout) -> BaseException:
        """The pool says only that it had no connection in time; one connection tried here
        says why (refused, no such database, a password refused ...) for the operator."""
        try:
            psycopg.connect(self._dsn, **self._connect_kwargs).close()
        except psycopg.Error as error:
            return error
        return timeout

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection (autocommit: one statement = one transaction; several in
        ``with connection.transaction()``); connection trouble -> `StorageUnavailable`."""
        if self._closed:
            raise StorageError(f"the cloud storage on {self._where} is closed")
        try:
            with self._pool.connection() as connection:
                yield connection
        except psycopg_pool.PoolClosed:  # first: it is an OperationalError too
            raise StorageError(f"the cloud storage on {self._where} is closed") from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            raise self._unavailable(error) from None

    def _one(
        self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
    ) -> tuple[Any, ...] | None:
        with self._connection() as connection:
            return connection.execute(sql, params).fetchone()

    def _all(
        self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        with self._connection() as connection:
            return connection.execute(sql, params).fetchall()

    def _run(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> int:
        with self._connection() as connection:
            return connection.execute(sql, params).rowcount

    def schema_version(self) -> int:
        with self._connection() as connection:
            return pg_schema.applied(connection)

    def _notify(self) -> None:
        with self._work:
            self._generation += 1
            self._work.notify_all()

    # -- requests -------------------------------------------------------------------------------

    def accept(self, order: Order, *, idempotency_key: str | None) -> Accepted:
        # Inserted first, looked up only when that changed nothing: a new request (the usual
        # case) is one statement, its NOTIFY sent at its commit.  ON CONFLICT DO NOTHING waits
        # for a concurrent insert of the same external_id or key to commit, so the lookup
        # after it finds that row: it is what two instances given one request at once agree on.
        new = str(uuids.uuid4())
        with self._connection() as connection:
            inserted = connection.execute(
                "WITH new AS ("
                "  INSERT INTO cloud_requests (uuid, api, grp, operation, external_id, "
                "  idempotency_key, fingerprint, body, callback_url, inn, state) "
                "  VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'queued') "
                "  ON CONFLICT DO NOTHING RETURNING uuid, grp"
                ") SELECT uuid, pg_notify(%s, grp)::text FROM new",
                (
                    new,
                    order.api,
                    order.group,
                    order.operation,
                    order.external_id,
                    idempotency_key,
                    order.fingerprint,
                    jsontext.dumps(order.body),
                    order.callback_url,
                    order.inn,
                    CHANNEL,
                ),
            ).fetchone()
            if inserted is None:
                # The Idempotency-Key's request first, then the external_id's (as SQLite).
                known = connection.execute(
                    "SELECT uuid, fingerprint, state FROM cloud_requests "
                    "WHERE grp = %(grp)s AND (external_id = %(eid)s OR idempotency_key = %(key)s) "
                    "ORDER BY (idempotency_key = %(key)s) IS TRUE DESC LIMIT 1",
                    {"grp": order.group, "eid": order.external_id, "key": idempotency_key},
                ).fetchone()
        if inserted is not None:
            self._notify()
            return Accepted(new, True, True, "wait")
        if known is None:  # requests are never deleted: a conflict leaves its row
            raise StorageError(
                f"could not accept {order.external_id} of {order.group}: it conflicts with a "
                "request that cannot be found; send it again"
            )
        return Accepted(known[0], False, known[1] == order.fingerprint, _status(known[2]))

    def report(self, uuid: str) -> ReportView | None:
        row = self._one(f"SELECT {_VIEW_COLUMNS} FROM cloud_requests WHERE uuid = %s", (uuid,))
        return _view(row) if row is not None else None

    def find(self, group: str, external_id: str) -> ReportView | None:
        row = self._one(
            f"SELECT {_VIEW_COLUMNS} FROM cloud_requests WHERE grp = %s AND external_id = %s",
            (group, external_id),
        )
        return _view(row) if row is not None else None

    def body(self, uuid: str) -> dict[str, Any] | None:
        """The request's body as received (exact numbers), or None for an unknown uuid."""
        row = self._one("SELECT body FROM cloud_requests WHERE uuid = %s", (uuid,))
        return dict(jsontext.loads(row[0])) if row is not None else None

    def idempotency_key(self, uuid: str) -> str | None:
        """The Idempotency-Key the request came with (None: none, or an unknown uuid)."""
        row = self._one("SELECT idempotency_key FROM cloud_requests WHERE uuid = %s", (uuid,))
        return str(row[0]) if row is not None and row[0] is not None else None

    def claim(self, register: str, group: str, *, skip_marked: bool = False) -> Job | None:
        # One statement: the row is locked as it is picked (rows other claims hold are skipped,
        # not waited for) and assigned before the lock is let go.  ``skip_marked``: strpos, not
        # LIKE, so the text's "_" is no wildcard.
        unmarked = "AND strpos(body, %s) = 0 " if skip_marked else ""
        row = self._one(
            "WITH picked AS ("
            f"  SELECT seq FROM cloud_requests WHERE grp = %s AND state = 'queued' {unmarked}"
            "  ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED"
            ") "
            "UPDATE cloud_requests AS r SET state = 'assigned', register = %s, "
            "attempts = r.attempts + 1 FROM picked WHERE r.seq = picked.seq "
            f"RETURNING {_JOB_COLUMNS_R}",
            (group, MARKED_BODY_TEXT, register) if skip_marked else (group, register),
        )
        return _job(row) if row is not None else None

    def assigned(self, register: str) -> list[Job]:
        rows = self._all(
            f"SELECT {_JOB_COLUMNS} FROM cloud_requests "
            "WHERE register = %s AND state = 'assigned' ORDER BY seq",
            (register,),
        )
        return [_job(row) for row in rows]

    def complete(
        self, uuid: str, register: str, result: dict[str, Any], *, fence: int | None = None
    ) -> None:
        with self._connection() as connection:
            # The usual case in one statement (so one transaction): the state and its outbox row.
            changed = connection.execute(
                "WITH done AS ("
                "  UPDATE cloud_requests SET state = 'done', done_at = now(), result = %(result)s, "
                "  error = NULL, fn_serial = %(fn)s, document_number = %(number)s "
                "  WHERE uuid = %(uuid)s AND state = 'assigned' AND register = %(register)s "
                f"  {_fenced('%(register)s', fence)} "
                "  RETURNING uuid, callback_url"
                f"), outbox AS ({_OUTBOX_FROM_DONE}) "
                "SELECT count(*) FROM done",
                {
                    "result": jsontext.dumps(result),
                    "fn": str(result.get("fn_number", "")),
                    "number": _int_or_none(result.get("document_number")),
                    "uuid": uuid,
                    "register": register,
                    "me": self.instance,
                    "fence": fence,
                },
            ).fetchone()
            if changed is not None and changed[0]:
                return
            row = connection.execute(
                "SELECT state, register, result FROM cloud_requests WHERE uuid = %s", (uuid,)
            ).fetchone()
            held = fence is None or _holds(connection, register, self.instance, fence)
        if row is not None and row[0] == "done" and row[1] == register:
            # Settled twice: the first result stands (see SqliteStorage.complete) -- said loudly,
            # with both results, since two different documents would be a double sale.
            first = jsontext.loads(row[2]) if row[2] is not None else None
            same = _document(first) == _document(result)
            # The same document again is most likely a retry after the database's answer to
            # the first was lost (the connection dropped during its commit): said, not alarmed.
            log.log(
                logging.WARNING if same else logging.ERROR,
                "request %s on %s completed twice (%s): the first result stands (%s), "
                "the second is dropped (%s)%s",
                uuid,
                register,
                "the same document" if same else "DIFFERENT documents",
                json.dumps(first, default=str),
                json.dumps(result, default=str),
                "" if same else " -- check the FN for a double sale",
            )
            return
        if not held:
            raise self._lost(register, fence, f"the completion of {uuid} was not written")
        state = "unknown" if row is None else f"{row[0]} on {row[1] or 'no register'}"
        raise StorageError(
            f"cannot complete {uuid} on {register}: it is {state} -- a request is "
            "completed only by the register it is assigned to"
        )

    def fail(self, uuid: str, error: dict[str, Any], *, fence: int | None = None) -> None:
        # A queued request has no register and no holder to fence; an assigned one is failed
        # only by the holder of its register's lease when a fence is given.
        with self._connection() as connection:
            changed = connection.execute(
                "WITH done AS ("
                "  UPDATE cloud_requests AS r SET state = 'fail', done_at = now(), "
                "  error = %(error)s WHERE uuid = %(uuid)s AND (state = 'queued' OR "
                f"  (state = 'assigned' {_fenced('r.register', fence)})) "
                "  RETURNING uuid, callback_url"
                f"), outbox AS ({_OUTBOX_FROM_DONE}) "
                "SELECT count(*) FROM done",
                {
                    "error": jsontext.dumps(error),
                    "uuid": uuid,
                    "me": self.instance,
                    "fence": fence,
                },
            ).fetchone()
            if changed is not None and changed[0]:
                return
            row = connection.execute(
                "SELECT state, error, register FROM cloud_requests WHERE uuid = %s", (uuid,)
            ).fetchone()
        if row is not None and row[0] == "fail" and row[1] == jsontext.dumps(error):
            # A retry after the database's answer to the first was lost: already done.
            log.warning("request %s failed twice with the same error: once is kept", uuid)
            return
        if row is not None and row[0] == "assigned" and fence is not None:
            raise self._lost(str(row[2]), fence, f"the failure of {uuid} was not written")
        state = "unknown" if row is None else row[0]
        raise StorageError(f"cannot fail {uuid}: it is {state}, not waiting")

    def release(self, uuid: str, register: str, *, fence: int | None = None) -> None:
        with self._connection() as connection:
            changed = connection.execute(
                "WITH back AS ("
                "  UPDATE cloud_requests SET state = 'queued', register = NULL, error = NULL "
                "  WHERE uuid = %(uuid)s AND state = 'assigned' AND register = %(register)s "
                f"  {_fenced('%(register)s', fence)} RETURNING grp"
                ") SELECT pg_notify(%(channel)s, grp)::text FROM back",
                {
                    "uuid": uuid,
                    "register": register,
                    "channel": CHANNEL,
                    "me": self.instance,
                    "fence": fence,
                },
            ).fetchone()
            held = (
                changed is not None
                or fence is None
                or _holds(connection, register, self.instance, fence)
            )
        if changed is not None:
            self._notify()
        elif not held:
            raise self._lost(register, fence, f"the release of {uuid} was not written")

    def hold(
        self, uuid: str, register: str, error: dict[str, Any], *, fence: int | None = None
    ) -> None:
        with self._connection() as connection:
            changed = connection.execute(
                "UPDATE cloud_requests SET error = %(error)s "
                "WHERE uuid = %(uuid)s AND state = 'assigned' AND register = %(register)s "
                f"{_fenced('%(register)s', fence)}",
                {
                    "error": jsontext.dumps(error),
                    "uuid": uuid,
                    "register": register,
                    "me": self.instance,
                    "fence": fence,
                },
            ).rowcount
            if not changed and fence is not None:
                if not _holds(connection, register, self.instance, fence):
                    raise self._lost(register, fence, f"the hold of {uuid} was not written")

    def assigned_registers(self) -> list[str]:
        rows = self._all(
            "SELECT DISTINCT register FROM cloud_requests "
            "WHERE state = 'assigned' AND register IS NOT NULL ORDER BY register"
        )
        return [str(row[0]) for row in rows]

    def save_register_details(self, name: str, details: dict[str, str]) -> None:
        self._run(
            "INSERT INTO cloud_register_details (name, details) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET details = excluded.details",
            (name, json.dumps(details, ensure_ascii=False)),
        )

    def register_details(self, name: str) -> dict[str, str] | None:
        row = self._one("SELECT details FROM cloud_register_details WHERE name = %s", (name,))
        return {str(k): str(v) for k, v in json.loads(row[0]).items()} if row else None

    def queue_depth(self, group: str | None = None) -> int:
        if group is None:
            row = self._one(
                "SELECT count(*) FROM cloud_requests WHERE state IN ('queued', 'assigned')"
            )
        else:
            row = self._one(
                "SELECT count(*) FROM cloud_requests "
                "WHERE grp = %s AND state IN ('queued', 'assigned')",
                (group,),
            )
        return int(row[0]) if row is not None else 0

    def counts(self) -> dict[str, int]:
        found = {"wait": 0, "done": 0, "fail": 0}
        for state, count in self._all("SELECT state, count(*) FROM cloud_requests GROUP BY state"):
            found[_status(state)] += int(count)
        return found

    def queue_depths(self) -> dict[str, int]:
        """Requests not finished, by group (for `kkt cloud status`)."""
        rows = self._all(
            "SELECT grp, count(*) FROM cloud_requests WHERE state IN ('queued', 'assigned') "
            "GROUP BY grp ORDER BY grp"
        )
        return {str(group): int(count) for group, count in rows}

    def recent(self, groups: Collection[str], limit: int = 50) -> list[ReportView]:
        names = list(groups)
        if not names:
            return []
        rows = self._all(
            f"SELECT {_VIEW_COLUMNS} FROM cloud_requests WHERE grp = ANY(%s) "
            "ORDER BY seq DESC LIMIT %s",
            (names, limit),
        )
        return [_view(row) for row in rows]

    def set_ofd_acknowledged_below(self, fn_serial: str, number: int) -> None:
        self._run(
            "UPDATE cloud_requests SET ofd_acknowledged = true WHERE fn_serial = %s "
            "AND state = 'done' AND NOT ofd_acknowledged AND document_number < %s",
            (fn_serial, number),
        )

    # -- registers ------------------------------------------------------------------------------

    def save_register(self, view: RegisterView) -> None:
        data = asdict(view)
        data["fn_expires"] = view.fn_expires.isoformat() if view.fn_expires else None
        data["updated_at"] = _aware(view.updated_at).timestamp()
        self._run(
            "INSERT INTO cloud_registers (name, view) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET view = excluded.view",
            (view.name, json.dumps(data, ensure_ascii=False)),
        )

    def registers(self) -> list[RegisterView]:
        views = []
        for (text,) in self._all("SELECT view FROM cloud_registers ORDER BY name"):
            data = json.loads(text)
            data["fn_expires"] = (
                date.fromisoformat(data["fn_expires"]) if data["fn_expires"] else None
            )
            data["updated_at"] = datetime.fromtimestamp(data["updated_at"], UTC)
            views.append(RegisterView(**data))
        return views

    # -- tokens ---------------------------------------------------------------------------------

    def add_token(self, token_hash: str, login: str, expires_at: datetime) -> None:
        with self._connection() as connection, connection.transaction():
            # expired tokens go as new ones come: the table stays the size of a day's logins
            connection.execute("DELETE FROM cloud_tokens WHERE expires_at <= now()")
            connection.execute(
                "INSERT INTO cloud_tokens (token_hash, login, expires_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (token_hash) DO UPDATE SET login = excluded.login, "
                "expires_at = excluded.expires_at",
                (token_hash, login, _aware(expires_at)),
            )

    def token_login(self, token_hash: str, now: datetime) -> str | None:
        row = self._one(
            "SELECT login FROM cloud_tokens WHERE token_hash = %s AND expires_at > %s",
            (token_hash, _aware(now)),
        )
        return str(row[0]) if row is not None else None

    # -- callback outbox ------------------------------------------------------------------------

    def due_callbacks(self, now: datetime, limit: int) -> list[Callback]:
        """The rows due at ``now``, claimed for this caller (see the module's notes): hidden
        from every sender for `CALLBACK_CLAIM_SECONDS`, or until `record_attempt`.

        Due and claimed by the DATABASE's clock: instances whose clocks differ would otherwise
        see rows due early (a clock behind the others' makes a claim that hides nothing: the
        callback is posted twice) or late.  ``now`` counts only as far as it is ahead of this
        machine's present (`_ahead`: 0 for a sender asking "now")."""
        ahead = _ahead(now)
        rows = self._all(
            "WITH due AS ("
            "  SELECT id, next_at FROM cloud_outbox WHERE state = 'pending' "
            "  AND next_at <= clock_timestamp() + %(ahead)s "
            "  ORDER BY next_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
            ") "
            "UPDATE cloud_outbox AS o SET next_at = clock_timestamp() + %(ahead)s + %(claim)s "
            "FROM due WHERE o.id = due.id "
            "RETURNING o.id, o.uuid, o.url, o.attempts, due.next_at",
            {
                "ahead": ahead,
                "limit": limit,
                "claim": timedelta(seconds=CALLBACK_CLAIM_SECONDS),
            },
        )
        rows.sort(key=lambda row: (row[4], row[0]))  # RETURNING keeps no order: oldest first
        return [
            row_callback(
                callback_id,
                uuid,
                url,
                attempts,
                report=self.report,
                body_of=self._callback_body,
                passing=(StorageUnavailable,),  # the database is gone: for every row alike
            )
            for callback_id, uuid, url, attempts, _ in rows
        ]

    def record_attempt(
        self,
        callback_id: int,
        *,
        ok: bool,
        status: int | None,
        error: str,
        next_at: datetime | None,
    ) -> None:
        state = "delivered" if ok else ("abandoned" if next_at is None else "pending")
        with self._connection() as connection, connection.transaction():
            connection.execute(
                "INSERT INTO cloud_attempts (callback_id, ok, status, error) "
                "VALUES (%s, %s, %s, %s)",
                (callback_id, ok, status, error),
            )
            # next_at in the database's clock: as far ahead of it as the caller's next_at is
            # of this machine's present (see due_callbacks)
            connection.execute(
                "UPDATE cloud_outbox SET attempts = attempts + 1, state = %s, "
                "next_at = clock_timestamp() + coalesce(%s, interval '0') WHERE id = %s",
                (state, _ahead(next_at) if next_at is not None else None, callback_id),
            )

    def pending_callbacks(self) -> int:
        """Outbox rows not yet delivered nor abandoned (for metrics and the operator page)."""
        row = self._one("SELECT count(*) FROM cloud_outbox WHERE state = 'pending'")
        return int(row[0]) if row is not None else 0

    def attempts(self, callback_id: int) -> list[dict[str, Any]]:
        """Every delivery attempt of one outbox row, oldest first."""
        rows = self._all(
            "SELECT at, ok, status, error FROM cloud_attempts WHERE callback_id = %s ORDER BY id",
            (callback_id,),
        )
        return [
            {"at": _utc(at), "ok": bool(ok), "status": status, "error": error}
            for at, ok, status, error in rows
        ]

    def callback_secret(self) -> bytes | None:
        """The HMAC key every instance signs callbacks with: made by the first instance that asks
        (32 random bytes), the same for all after (INSERT ... ON CONFLICT DO NOTHING)."""
        with self._connection() as connection:
            connection.execute(
                "INSERT INTO cloud_settings (name, value) VALUES (%s, %s) "
                "ON CONFLICT (name) DO NOTHING",
                (SECRET_NAME, secrets.token_bytes(SECRET_BYTES)),
            )
            row = connection.execute(
                "SELECT value FROM cloud_settings WHERE name = %s", (SECRET_NAME,)
            ).fetchone()
        assert row is not None  # just inserted, or there before
        return bytes(row[0])

    # -- instances and leases -------------------------------------------------------------------

    def heartbeat(self) -> None:
        """This instance's seen_at = now(); instances not seen for a day are forgotten."""
        with self._connection() as connection, connection.transaction():
            connection.execute(
                "INSERT INTO cloud_instances (id, host, pid) VALUES (%s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET seen_at = now()",
                (self.instance, self._host, os.getpid()),
            )
            connection.execute(
                "DELETE FROM cloud_instances WHERE seen_at < now() - %s", (INSTANCE_FORGET,)
            )

    def instances(self) -> list[InstanceView]:
        rows = self._all(
            "SELECT id, host, pid, started_at, seen_at FROM cloud_instances ORDER BY id"
        )
        return [
            InstanceView(str(id_), str(host), int(pid), _utc(started), _utc(seen))
            for id_, host, pid, started, seen in rows
        ]

    def take_lease(self, register: str, ttl: float) -> int:
        # clock_timestamp(), not now(): a statement that waited for the row's lock compares
        # with the time it decides at, not the time it started.  Only a renewal of a grant
        # still running keeps its epoch: this instance taking the lease again after it ran out
        # (or was dropped) is a new grant, so writes fenced by the old one -- made by a thread
        # that stalled through the gap -- are refused (`_FENCE`).
        row = self._one(
            "INSERT INTO cloud_leases AS l (register, instance, expires_at) "
            "VALUES (%(register)s, %(me)s, clock_timestamp() + %(ttl)s) "
            "ON CONFLICT (register) DO UPDATE SET "
            "  epoch = l.epoch + CASE WHEN l.instance = excluded.instance "
            "                         AND l.expires_at > clock_timestamp() THEN 0 ELSE 1 END, "
            "  taken_at = CASE WHEN l.instance = excluded.instance "
            "                  AND l.expires_at > clock_timestamp() THEN l.taken_at "
            "                  ELSE clock_timestamp() END, "
            "  instance = excluded.instance, expires_at = excluded.expires_at "
            "WHERE l.instance = excluded.instance OR l.expires_at <= clock_timestamp() "
            "RETURNING epoch",
            {"register": register, "me": self.instance, "ttl": timedelta(seconds=ttl)},
        )
        return int(row[0]) if row is not None else 0

    def confirm_lease(self, register: str, epoch: int, margin: float = 0.0) -> bool:
        """This instance holds ``register``'s lease now, the grant ``epoch``, and will for
        ``margin`` seconds more (database clock)."""
        with self._connection() as connection:
            return _holds(connection, register, self.instance, epoch, margin)

    def _lost(self, register: str, fence: int | None, what: str) -> LeaseLost:
        grant = f" (grant {fence})" if fence is not None else ""
        return LeaseLost(
            f"register {register}: this instance ({self.instance}) does not hold its lease"
            f"{grant} now, so {what}; another instance may drive the register now (or this "
            "one, under a newer grant)"
        )

    def drop_lease(self, register: str) -> None:
        """Expire this instance's lease now (the row stays: its epoch goes on counting)."""
        self._run(
            "UPDATE cloud_leases SET expires_at = clock_timestamp() "
            "WHERE register = %s AND instance = %s",
            (register, self.instance),
        )

    def lease_epoch(self, register: str) -> int | None:
        """The epoch of the lease this instance holds on ``register`` now, else None."""
        row = self._one(
            "SELECT epoch FROM cloud_leases WHERE register = %s AND instance = %s "
            "AND expires_at > clock_timestamp()",
            (register, self.instance),
        )
        return int(row[0]) if row is not None else None

    def leases(self) -> list[LeaseView]:
        rows = self._all(
            "SELECT register, instance, expires_at, epoch FROM cloud_leases ORDER BY register"
        )
        return [
            LeaseView(str(register), str(instance), _utc(expires), int(epoch))
            for register, instance, expires, epoch in rows
        ]

    def database_now(self) -> datetime:
        """The database's clock (leases expire by it)."""
        row = self._one("SELECT clock_timestamp()")
        assert row is not None
        return _utc(row[0])

    # -- the journal ----------------------------------------------------------------------------

    def journal_path(self) -> str:
        raise StorageError(
            "PostgreSQL keeps the drivers' journal in the database, not in a file: use "
            "storage.journal(register)"
        )

    def journal(self, register: str, fence: int | None = None) -> PostgresJournal:
        """The driver's journal for ``register``, fenced by this instance's lease on it (with
        ``fence``: by the grant of that epoch)."""
        return PostgresJournal(self, register, fence)

    # -- waiting for work -----------------------------------------------------------------------

    def wait_for_work(self, timeout: float) -> None:
        """Returns at once when accept/release happened (in any instance) since this thread's
        last wait, else when one happens, or after ``timeout`` seconds."""
        self._start_listener()
        with self._work:
            seen = getattr(self._seen, "generation", None)
            if seen is None or seen == self._generation:
                self._work.wait(timeout)
            self._seen.generation = self._generation

    def _start_listener(self) -> None:
        with self._listener_lock:
            if self._listener is None and not self._closed:
                self._listener = threading.Thread(
                    target=self._listen, name="kkt-cloud-pg-listen", daemon=True
                )
                self._listener.start()

    def _listen(self) -> None:
        """LISTEN on a connection of its own; each NOTIFY wakes the waiting workers.  A lost
        connection is made again (with growing pauses); once back, the workers are woken too:
        work may have come while nobody listened.  Any error is survived (the workers would
        otherwise sleep their whole timeouts); should the thread end all the same, it says so
        and the next `wait_for_work` starts another."""
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    self._listen_once()
                    failures = 0
                except Exception as error:
                    self._listening.clear()
                    failures += 1
                    if failures == 1:
                        if isinstance(error, psycopg.Error):
                            why = str(self._unavailable(error))
                        else:
                            why = f"listening for new work failed ({type(error).__name__})"
                            log.exception("PostgreSQL at %s: %s", self._where, why)
                        log.warning("%s; listening again when it is back", why)
                    self._stop.wait(min(0.25 * 2**failures, 5.0))
        finally:
            self._listening.clear()
            with self._listener_lock:
                if self._listener is threading.current_thread():
                    self._listener = None
            if not self._stop.is_set():
                log.error("PostgreSQL at %s: the thread listening for work ended", self._where)

    def _listen_once(self) -> None:
        """One LISTEN connection, until it fails or the storage closes."""
        with psycopg.connect(self._dsn, autocommit=True, **self._connect_kwargs) as connection:
            connection.execute(f"LISTEN {CHANNEL}")
            self._notify()
            self._listening.set()
            while not self._stop.is_set():
                for _ in connection.notifies(timeout=LISTEN_POLL):
                    self._notify()

    def close(self) -> None:
        """Stop listening, forget this instance, close the pool.  Its leases are left to
        expire unless dropped before (`drop_lease`)."""
        if self._closed:
            return
        self._stop.set()
        with self._listener_lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.join()
        with contextlib.suppress(StorageError):  # a server that is down forgets it in a day
            self._run("DELETE FROM cloud_instances WHERE id = %s", (self.instance,))
        self._closed = True
        self._pool.close()
        with self._work:
            self._work.notify_all()


class PostgresJournal:
    """The drivers' idempotency journal (`kkt.journal.JournalStore`) in ``cloud_journal``, for
    one register: `kkt.journal.Journal`'s semantics, with ``begin`` and ``forget`` fenced by the
    register's lease (`LeaseLost`: nothing was written, so nothing may be sent) -- with
    ``fence``, by the grant of that epoch, so a call made under an older grant of this same
    instance is refused too.  Keys are global, as in the one SQLite file every register shares;
    each row records the register it began on, and a key another register began is never taken
    over (`KeyConflict`).  Connection trouble raises `StorageUnavailable` (nothing sent after a
    failed begin)."""

    def __init__(self, storage: PostgresStorage, register: str, fence: int | None = None) -> None:
        if not register:
            raise ValueError("a PostgreSQL journal belongs to one register: name it")
        self._storage = storage
        self.register = register
        self.fence = fence

    def _lease(self, lock: str = "") -> str:
        """The condition that this instance holds the register's lease (of epoch ``fence``)."""
        epoch = " AND epoch = %(fence)s" if self.fence is not None else ""
        return (
            "EXISTS (SELECT 1 FROM cloud_leases WHERE register = %(register)s "
            f"AND instance = %(me)s{epoch} AND expires_at > clock_timestamp() {lock})"
        )

    def _params(self, **more: object) -> dict[str, object]:
        return {
            "register": self.register,
            "me": self._storage.instance,
            "fence": self.fence,
            **more,
        }

    def _lost(self, what: str) -> LeaseLost:
        return self._storage._lost(self.register, self.fence, what)

    def get(self, key: str) -> Entry | None:
        row = self._storage._one(
            "SELECT key, state, before, operation, total, result, fn, fingerprint, payments "
            "FROM cloud_journal WHERE key = %s",
            (key,),
        )
        if row is None:
            return None
        result = json.loads(row[5]) if row[5] else None
        return Entry(
            str(row[0]),
            str(row[1]),
            int(row[2]),
            int(row[3]),
            int(row[4]),
            result,
            str(row[6]),
            str(row[7]),
            str(row[8]),
        )

    def begin(
        self,
        key: str,
        before: int,
        operation: int,
        total: int,
        fn: str = "",
        fingerprint: str = "",
        payments: str = "",
    ) -> None:
        """Record, durably, that receipt ``key`` is about to begin in FN ``fn`` -- only while
        this instance holds the register's lease (`LeaseLost` otherwise), and only when no
        other register began ``key`` (`KeyConflict`: its receipt may be fiscal there)."""
        # The lease row is read FOR SHARE: a taker's UPDATE of it waits until this commits, and
        # a taker that committed first makes the row no longer match (re-checked after the
        # wait), so a begin either lands before the hand-over or not at all.  The upsert
        # replaces only this register's own entry: two registers that both read "never begun"
        # for one key (a request released by a stale holder and claimed elsewhere) cannot both
        # begin it -- the second is refused, whatever the order of their reads.
        params = self._params(
            key=key,
            before=before,
            operation=operation,
            total=total,
            fn=fn,
            fingerprint=fingerprint,
            payments=payments,
        )
        for _ in range(3):  # another register's entry may vanish between the two statements
            written = self._storage._one(
                "INSERT INTO cloud_journal AS j (key, register, state, before, operation, "
                "total, result, fn, fingerprint, payments) "
                "SELECT %(key)s, %(register)s, 'pending', %(before)s, %(operation)s, %(total)s, "
                "NULL, %(fn)s, %(fingerprint)s, %(payments)s "
                f"WHERE {self._lease('FOR SHARE')} "
                "ON CONFLICT (key) DO UPDATE SET state = 'pending', "
                "before = excluded.before, operation = excluded.operation, "
                "total = excluded.total, result = NULL, fn = excluded.fn, "
                "fingerprint = excluded.fingerprint, payments = excluded.payments, "
                "updated_at = now() WHERE j.register = excluded.register "
                "RETURNING 1",
                params,
            )
            if written is not None:
                return
            found = self._storage._one(
                f"SELECT {self._lease()}, "
                "(SELECT ARRAY[register, state, fn] FROM cloud_journal WHERE key = %(key)s)",
                params,
            )
            if found is None or not found[0]:
                raise self._lost(f"receipt {key} was not begun and nothing was sent")
            if found[1] is not None and found[1][0] != self.register:
                other, state, other_fn = (str(part) for part in found[1])
                raise KeyConflict(
                    f"key {key} began on register {other} (FN {other_fn or 'unknown'}, "
                    f"{state}), not on {self.register}: nothing was sent; "
                    + (
                        f"settle it on {other} first -- its receipt may be fiscal there"
                        if state == "pending"
                        else "it is done there: use another key for a new receipt"
                    ),
                    key=key,
                    fn=other_fn,
                    pending=state == "pending",
                )
        raise StorageError(
            f"receipt {key} could not be begun on {self.register}: its journal entry kept "
            "changing under it; nothing was sent -- try again"
        )

    def done(self, key: str, result: dict[str, Any]) -> None:
        """The receipt is fiscal: recorded as a fact of the FN, lease or not (it is true
        whoever holds the register now) -- but only on this register's own entry."""
        changed = self._storage._run(
            "UPDATE cloud_journal SET state = 'done', result = %s, updated_at = now() "
            "WHERE key = %s AND register = %s",
            (json.dumps(result), key, self.register),
        )
        if not changed:
            # Not raised: the receipt IS fiscal, and raising would make the driver take it for
            # open.  Said loudly: the next holder cannot settle it from this journal.
            log.error(
                "journal: receipt %s is fiscal on register %s (%s) but the key has no entry "
                "begun there (forgotten, or begun on another register): its result was not "
                "recorded -- check that FN for this document",
                key,
                self.register,
                json.dumps(result, default=str),
            )

    def claimed(self, after: int, fn: str = "") -> set[int]:
        """Numbers above ``after`` of the documents in FN ``fn`` that keys already done own."""
        rows = self._storage._all(
            "SELECT result FROM cloud_journal WHERE state = 'done' AND fn = %s", (fn,)
        )
        numbers = {int(json.loads(row[0])["document_number"]) for row in rows if row[0]}
        return {number for number in numbers if number > after}

    def next_begun(self, after: int, fn: str) -> int | None:
        """The least ``before`` above ``after`` any key recorded in FN ``fn``."""
        row = self._storage._one(
            "SELECT min(before) FROM cloud_journal WHERE fn = %s AND before > %s", (fn, after)
        )
        return None if row is None or row[0] is None else int(row[0])

    def forget(self, key: str) -> None:
        """The receipt certainly did not become fiscal: the key may be used afresh -- but only
        while this instance holds the register's lease (the grant ``fence``).  A holder that
        stalled past its lease could otherwise delete the pending entry the next holder wrote
        for the same key (after settling it afresh), and that holder's sale would have no entry
        to be settled by after a crash.  Without the lease the entry stays pending: the next
        holder finds no document for it in the FN and frees the key itself.  Only this
        register's entry is forgotten."""
        self._storage._run(
            "DELETE FROM cloud_journal WHERE key = %(key)s AND state = 'pending' "
            f"AND register = %(register)s AND {self._lease('FOR SHARE')}",
            self._params(key=key),
        )

    def close(self) -> None:
        """Nothing to close: the journal uses the storage's pool."""


# complete/fail: the finished request's outbox row, in the same statement (when it has a URL)
_OUTBOX_FROM_DONE = (
    "INSERT INTO cloud_outbox (uuid, url, state, next_at) "
    "SELECT uuid, callback_url, 'pending', now() FROM done WHERE callback_url <> ''"
)
_JOB_COLUMNS_R = "r.uuid, r.api, r.grp, r.operation, r.external_id, r.body, r.attempts"


def _fenced(register: str, fence: int | None) -> str:
    """``AND EXISTS (...)``: this instance holds ``register``'s lease with epoch ``fence`` now
    (parameters ``%(me)s``, ``%(fence)s``); '' without a fence.  The lease row is read FOR
    SHARE, as the journal's begin does: a taker's UPDATE of it waits for this statement's
    transaction, and one that committed first makes the row no longer match."""
    if fence is None:
        return ""
    return (
        "AND EXISTS (SELECT 1 FROM cloud_leases l WHERE l.register = "
        f"{register} AND l.instance = %(me)s AND l.epoch = %(fence)s "
        "AND l.expires_at > clock_timestamp() FOR SHARE)"
    )


def _holds(
    connection: psycopg.Connection[Any], register: str, me: str, epoch: int, margin: float = 0.0
) -> bool:
    row = connection.execute(
        "SELECT 1 FROM cloud_leases WHERE register = %s AND instance = %s AND epoch = %s "
        "AND expires_at > clock_timestamp() + make_interval(secs => %s)",
        (register, me, epoch, margin),
    ).fetchone()
    return row is not None


def _ahead(moment: datetime) -> timedelta:
    """How far ``moment`` is ahead of this machine's present, to the whole second: the part of
    a caller's time the outbox uses (its delays), the database's clock giving the rest.  To the
    second, so the few milliseconds between reading this clock and the database's do not decide
    whether a row asked for at the very time it was set to is due (0 for "now")."""
    return timedelta(seconds=round((_aware(moment) - datetime.now(UTC)).total_seconds()))


def _aware(moment: datetime) -> datetime:
    """A naive datetime is taken as UTC (as SqliteStorage does)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _view(row: tuple[Any, ...]) -> ReportView:
    return report_view(row, _utc)  # timestamptz, as read
