"""`SqliteStorage`: the cloud service's state in one SQLite file (standard library).

* Durable: WAL with ``synchronous=FULL`` -- a request is on disk before `accept` returns, so an
  answered request survives a ``kill -9`` at any instant.
* Fsynced only where something leaves the process on the strength of it: the accept (the
  client hears its uuid), the journal's "pending" (the register may fiscalize), a failure (the
  client may read it), tokens, releases and holds.  The rest -- a claim, a completion, the
  journal's "done", register views, the OFD's acknowledgements, callback attempts -- commit to
  the WAL without an fsync (``synchronous=NORMAL`` for that transaction, `_write`): a crash
  of the process keeps them (they are in the kernel's cache); losing the machine may lose them,
  but only with every commit after them up to the next fsynced one (one WAL, in order), and
  each is redone from what stays: a claim before any "pending", a completion and a "done" from
  the journal or the FN's archive (`kkt.settle`), a view, an acknowledgement or a delivery
  sent again.  Under load this is 2 fsyncs a receipt instead of 5, on a disk where one costs
  0.3 ms idle and 4 ms or more when the machine's other work writes too.
* One writing connection under one lock, every write inside ``BEGIN IMMEDIATE`` (`claim` reads
  and assigns in one step, so two workers never take the same request); reads on a second
  connection (WAL: they see every committed write and never wait for a commit's fsync).
* The driver's `kkt.Journal` opens its own connection to the same file (table ``receipts``);
  ours are all named ``cloud_*``, and ``busy_timeout`` lets the writers wait for each other
  instead of failing.  One file means one WAL: the fsynced commits of the service and of the
  registers' journals are made in turn (one fsync costs 0.3 ms on an idle disk of the machine
  this was written on, 4 ms and more when other work writes); `journal_path` is the one line
  to change to give the journal a file of its own if that ever limits -- but then one fsync
  would no longer carry the lazy commits before it (below).
* Writers queue on one Python lock, not on SQLite's: a connection that finds the file locked
  is put to sleep by SQLite's busy handler in growing steps (1, 2, 5, 10 ... ms) and retried,
  which cost a register's journal some 13 ms a write under load.  `journal` hands the workers
  journals whose writes take the storage's own write lock, so no writer of this process ever
  meets SQLite's lock (``busy_timeout`` stays for other processes).
* Every statement is parameterised; the schema is versioned (``cloud_schema_version``) and
  migrations run in order, each in its own transaction.
* The file is created 0600 (SQLite gives its -wal and -shm files the same mode) in a directory
  made 0700 when this creates it.

Times are stored as UTC epoch seconds (REAL) and come back as aware UTC datetimes; a naive
datetime given to a method is taken as UTC.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import sqlite3
import threading
import uuid as uuids
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from kkt.cloud import jsontext
from kkt.cloud.model import Job, Order, RegisterView, ReportView

from kkt.errors import KktError
from kkt.journal import Journal

from ..marking import MARKED_BODY_TEXT
from .base import Accepted, Callback, InstanceView, LeaseView, StorageError
from .rows import JOB_COLUMNS as _JOB_COLUMNS
from .rows import VIEW_COLUMNS as _VIEW_COLUMNS
from .rows import WAITING, report_view
from .rows import callback as row_callback
from .rows import document as _document
from .rows import int_or_none as _int_or_none
from .rows import job as row_job
from .rows import minimal_body as _minimal_body
from .rows import status as _status

__all__ = ["MIGRATIONS", "SqliteStorage", "StorageError"]  # StorageError: its old home

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000  # the driver's journal writes the same file from the worker threads

# Each entry moves the schema one version up; never edit one that has shipped, add the next.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE cloud_requests (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order: claim takes the oldest
            uuid TEXT NOT NULL UNIQUE,
            api INTEGER NOT NULL,
            grp TEXT NOT NULL,
            operation TEXT NOT NULL,
            external_id TEXT NOT NULL,
            idempotency_key TEXT,
            fingerprint TEXT NOT NULL,
            body TEXT NOT NULL,
            callback_url TEXT,
            inn TEXT NOT NULL,
            state TEXT NOT NULL,                    -- queued | assigned | done | fail
            register TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            accepted_at REAL NOT NULL,
            done_at REAL,
            result TEXT,
            error TEXT,
            fn_serial TEXT,
            document_number INTEGER,
            ofd_acknowledged INTEGER NOT NULL DEFAULT 0,
            UNIQUE (grp, external_id),
            UNIQUE (grp, idempotency_key)
        )""",
        "CREATE INDEX cloud_requests_queue ON cloud_requests (grp, state, seq)",
        "CREATE INDEX cloud_requests_register ON cloud_requests (register, state)",
        "CREATE INDEX cloud_requests_ofd ON cloud_requests (fn_serial, ofd_acknowledged)",
        """CREATE TABLE cloud_tokens (
            token_hash TEXT PRIMARY KEY, login TEXT NOT NULL, expires_at REAL NOT NULL
        )""",
        "CREATE TABLE cloud_registers (name TEXT PRIMARY KEY, view TEXT NOT NULL)",
        """CREATE TABLE cloud_outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            uuid TEXT NOT NULL,
            url TEXT NOT NULL,
            state TEXT NOT NULL,                    -- pending | delivered | abandoned
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at REAL NOT NULL,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX cloud_outbox_due ON cloud_outbox (state, next_at)",
        """CREATE TABLE cloud_attempts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            callback_id INTEGER NOT NULL,
            at REAL NOT NULL,
            ok INTEGER NOT NULL,
            status INTEGER,
            error TEXT NOT NULL
        )""",
    ),
    # 2: `queue_depth` (asked on every POST) scanned every request ever taken: 1.2 ms at 10k
    # rows, 13 ms at 100k.  A partial index holds only the waiting ones.
    (
        "CREATE INDEX cloud_requests_waiting ON cloud_requests (grp) "
        "WHERE state IN ('queued', 'assigned')",
    ),
    # 3: what a done result needs of its register, kept for one offline or gone.
    (
        """CREATE TABLE IF NOT EXISTS cloud_register_details (
            name TEXT PRIMARY KEY, details TEXT NOT NULL
        )""",
    ),
)

# The partial index named (the planner, without statistics, may prefer scanning a covering
# index of every row) and its condition word for word (an index is usable only by a query
# whose WHERE implies it).
QUEUE_DEPTH_SQL = (
    "SELECT COUNT(*) FROM cloud_requests INDEXED BY cloud_requests_waiting "
    "WHERE state IN ('queued', 'assigned')"
)


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _now() -> float:
    return datetime.now(UTC).timestamp()


def _make_private_file(path: Path) -> None:
    """The directory 0700 when this creates it, the database file 0600 before SQLite opens it
    (so the file never exists with the umask's wider mode)."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)  # an existing file keeps whatever it had otherwise


class _SharedLockJournal(Journal):
    """The driver's journal on the storage's file whose writes wait on the storage's write
    lock (see the module's notes): each write is still its own durable commit (synchronous
    FULL), made before the driver goes on -- only the queueing moves from SQLite's sleeps to
    a lock that hands over at once."""

    def __init__(self, path: str | Path, lock: AbstractContextManager[Any]) -> None:
        super().__init__(path)
        self._writer = lock

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
        with self._writer:
            super().begin(key, before, operation, total, fn, fingerprint, payments)

    def done(self, key: str, result: dict[str, Any]) -> None:
        # Lazy (not fsynced; see `SqliteStorage._write`): a "done" lost with the machine leaves
        # the key pending, and a pending key is settled from the FN's archive -- the case the
        # journal exists for.  "pending" (`begin`) stays durable: it must be on disk before the
        # receipt can be.  `_db` is the Journal's connection; its mode is per connection.
        with self._writer:
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                super().done(key, result)
            finally:
                self._db.execute("PRAGMA synchronous=FULL")

    def forget(self, key: str) -> None:
        with self._writer:
            super().forget(key)


class _Ticket:
    """One request waiting in `SqliteStorage.accept`'s group commit, and its answer."""

    __slots__ = ("accepted", "body", "error", "finished", "idempotency_key", "order")

    def __init__(self, order: Order, idempotency_key: str | None, body: str) -> None:
        self.order, self.idempotency_key, self.body = order, idempotency_key, body
        self.accepted: Accepted | None = None
        self.error: Exception | None = None
        self.finished = False


class SqliteStorage:
    """The `Storage` protocol over one SQLite file at ``path``.

    ``callback_body(view) -> bytes`` builds an outbox row's body when it is due (the service
    passes the ATOL report JSON); without it the body is a minimal JSON (`_minimal_body`)."""

    # A one-row read (`report`) takes microseconds and never waits for a writer (WAL, its own
    # connection): the app may call it on its event loop instead of a worker thread.
    reads_inline = True

    def __init__(
        self,
        path: str | Path,
        *,
        callback_body: Callable[[ReportView], bytes] | None = None,
    ) -> None:
        self._path = Path(path)
        self._callback_body = callback_body or _minimal_body
        self._host = socket.gethostname()
        self.instance = f"{self._host}:{os.getpid()}:{secrets.token_hex(3)}"
        self._started_at = datetime.now(UTC)
        try:
            _make_private_file(self._path)
            self._db = sqlite3.connect(
                str(self._path), isolation_level=None, check_same_thread=False
            )
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode=WAL")
            # an accepted request must be on disk before the client hears its uuid
            self._db.execute("PRAGMA synchronous=FULL")
        except (OSError, sqlite3.Error) as error:
            raise StorageError(
                f"cannot open the cloud state {self._path}: {error}; give a writable state "
                "directory (--state DIR)"
            ) from None
        self._lock = threading.RLock()
        self._durable = True  # the writing connection's synchronous mode: FULL
        # `accept`'s group commit: the requests waiting for the next commit, and whether one
        # caller is committing a batch now
        self._accepting = threading.Condition(threading.Lock())
        self._waiting: list[_Ticket] = []
        self._leading = False
        # Reads go through a connection of their own: in WAL a reader does not wait for a
        # writer's fsync, so a report poll is not held up by a commit under way.
        self._reader = sqlite3.connect(
            str(self._path), isolation_level=None, check_same_thread=False
        )
        self._reader.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._read_lock = threading.Lock()
        self._work = threading.Condition(threading.Lock())
        self._generation = 0  # bumped by accept/release: see wait_for_work
        self._seen = threading.local()
        self._closed = False
        self._migrate()
        self._prepare_journal()

    # -- plumbing -------------------------------------------------------------------------------

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE): no reader-turned-writer race.

        ``durable`` (the default): the commit is fsynced before this returns.  False: it is
        written to the WAL but not fsynced (``synchronous=NORMAL``) -- kept across a crash of
        the process (the kernel holds it), lost only with the machine, and then only together
        with every commit after it until the next durable one, since one fsync of the WAL makes
        everything before it durable.  Only writes whose loss that way is harmless go lazily
        (the module's notes list them)."""
        with self._lock:
            if durable != self._durable:
                # set outside a transaction; costs no I/O
                self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._durable = durable
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._read_lock:
            cursor = self._reader.execute(sql, params)
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()

    def schema_version(self) -> int:
        with self._lock:
            return self._version()

    def _version(self) -> int:
        self._db.execute("CREATE TABLE IF NOT EXISTS cloud_schema_version (version INTEGER)")
        row = self._db.execute("SELECT MAX(version) FROM cloud_schema_version").fetchone()
        return int(row[0] or 0)

    def _migrate(self) -> None:
        with self._lock:
            current = self._version()
            if current > len(MIGRATIONS):
                raise StorageError(
                    f"{self._path} has schema version {current}, newer than this kktkit knows "
                    f"({len(MIGRATIONS)}): upgrade kktkit, or use another --state directory"
                )
            for version, statements in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                with self._write() as db:
                    for statement in statements:
                        db.execute(statement)
                    db.execute("INSERT INTO cloud_schema_version (version) VALUES (?)", (version,))

    def _prepare_journal(self) -> None:
        """Create the driver's journal table now, once.  Every register worker opens its own
        `kkt.Journal` on this file; the Journal adds its newer columns when they are missing
        (check, then ALTER), and workers opening a fresh file at the same instant would both
        try -- the second fails "duplicate column name".  Opened here first, before any worker,
        the table is complete and they only read its columns."""
        try:
            Journal(self._path).close()
        except KktError as error:
            raise StorageError(f"{error}") from None

    def _notify(self) -> None:
        with self._work:
            self._generation += 1
            self._work.notify_all()

    # -- requests -------------------------------------------------------------------------------

    def accept(self, order: Order, *, idempotency_key: str | None) -> Accepted:
        """Store ``order`` (or find the request it repeats), durably: committed and fsynced
        before this returns.

        Group commit: requests accepted at the same time share one transaction and one fsync.
        The first caller to find no commit under way leads: it takes every request waiting
        (its own among them), stores each in its own savepoint (one that fails fails alone),
        commits once, and hands each caller its answer; callers arriving meanwhile wait for
        the next leader -- one of them.  No caller returns before the commit holding its
        request is on disk; one alone costs what it did before (a batch of one)."""
        ticket = _Ticket(order, idempotency_key, jsontext.dumps(order.body))
        with self._accepting:
            self._waiting.append(ticket)
            while self._leading and not ticket.finished:
                self._accepting.wait()
            if not ticket.finished:
                self._leading = True
                batch, self._waiting = self._waiting, []
            else:
                batch = []
        if batch:
            try:
                self._accept_batch(batch)
            finally:
                with self._accepting:
                    self._leading = False
                    self._accepting.notify_all()
        if ticket.error is not None:
            raise ticket.error
        assert ticket.accepted is not None
        return ticket.accepted

    def _accept_batch(self, batch: list[_Ticket]) -> None:
        created = False
        try:
            with self._write() as db:
                for ticket in batch:
                    db.execute("SAVEPOINT accept_one")
                    try:
                        ticket.accepted = self._accept_one(db, ticket)
                    except Exception as error:  # this request's alone (a constraint ...)
                        db.execute("ROLLBACK TO accept_one")
                        ticket.error = error
                    db.execute("RELEASE accept_one")
                    created = created or (ticket.accepted is not None and ticket.accepted.created)
        except BaseException as error:  # the commit failed: nothing of the batch is stored
            for ticket in batch:
                ticket.accepted = None
                ticket.error = error if isinstance(error, Exception) else StorageError(str(error))
            raise
        finally:
            with self._accepting:
                for ticket in batch:
                    ticket.finished = True
        if created:
            self._notify()

    def _accept_one(self, db: sqlite3.Connection, ticket: _Ticket) -> Accepted:
        order, idempotency_key = ticket.order, ticket.idempotency_key
        known = None
        if idempotency_key is not None:
            known = db.execute(
                "SELECT uuid, fingerprint, state FROM cloud_requests "
                "WHERE grp = ? AND idempotency_key = ?",
                (order.group, idempotency_key),
            ).fetchone()
        if known is None:
            known = db.execute(
                "SELECT uuid, fingerprint, state FROM cloud_requests "
                "WHERE grp = ? AND external_id = ?",
                (order.group, order.external_id),
            ).fetchone()
        if known is not None:
            return Accepted(known[0], False, known[1] == order.fingerprint, _status(known[2]))
        new = str(uuids.uuid4())
        db.execute(
            "INSERT INTO cloud_requests (uuid, api, grp, operation, external_id, "
            "idempotency_key, fingerprint, body, callback_url, inn, state, accepted_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
            (
                new,
                order.api,
                order.group,
                order.operation,
                order.external_id,
                idempotency_key,
                order.fingerprint,
                ticket.body,
                order.callback_url,
                order.inn,
                _now(),
            ),
        )
        return Accepted(new, True, True, "wait")

    def report(self, uuid: str) -> ReportView | None:
        rows = self._read(f"SELECT {_VIEW_COLUMNS} FROM cloud_requests WHERE uuid = ?", (uuid,))
        return _view(rows[0]) if rows else None

    def find(self, group: str, external_id: str) -> ReportView | None:
        rows = self._read(
            f"SELECT {_VIEW_COLUMNS} FROM cloud_requests WHERE grp = ? AND external_id = ?",
            (group, external_id),
        )
        return _view(rows[0]) if rows else None

    def body(self, uuid: str) -> dict[str, Any] | None:
        """The request's body as received (exact numbers), or None for an unknown uuid."""
        rows = self._read("SELECT body FROM cloud_requests WHERE uuid = ?", (uuid,))
        return dict(jsontext.loads(rows[0][0])) if rows else None

    def idempotency_key(self, uuid: str) -> str | None:
        """The Idempotency-Key the request came with (None: none, or an unknown uuid)."""
        rows = self._read("SELECT idempotency_key FROM cloud_requests WHERE uuid = ?", (uuid,))
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def claim(self, register: str, group: str, *, skip_marked: bool = False) -> Job | None:
        # lazy: nothing leaves the process on a claim alone -- the journal's durable "pending"
        # comes before any command that may fiscalize it, and fsyncs this claim with it
        with self._write(durable=False) as db:
            if skip_marked:  # instr, not LIKE: the text's "_" is no wildcard
                cursor = db.execute(
                    f"SELECT {_JOB_COLUMNS} FROM cloud_requests "
                    "WHERE grp = ? AND state = 'queued' AND instr(body, ?) = 0 "
                    "ORDER BY seq LIMIT 1",
                    (group, MARKED_BODY_TEXT),
                )
            else:
                cursor = db.execute(
                    f"SELECT {_JOB_COLUMNS} FROM cloud_requests "
                    "WHERE grp = ? AND state = 'queued' ORDER BY seq LIMIT 1",
                    (group,),
                )
            cursor.row_factory = sqlite3.Row
            row = cursor.fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE cloud_requests SET state = 'assigned', register = ?, "
                "attempts = attempts + 1 WHERE uuid = ?",
                (register, row["uuid"]),
            )
        job = _job(row)
        return replace(job, attempts=job.attempts + 1)  # the row read before the increment

    def assigned(self, register: str) -> list[Job]:
        rows = self._read(
            f"SELECT {_JOB_COLUMNS} FROM cloud_requests "
            "WHERE register = ? AND state = 'assigned' ORDER BY seq",
            (register,),
        )
        return [_job(row) for row in rows]

    def complete(
        self, uuid: str, register: str, result: dict[str, Any], *, fence: int | None = None
    ) -> None:
        # ``fence`` is not needed: one instance per state directory holds every lease.
        # Lazy: the FN holds the document and the journal its key; a completion lost with the
        # machine leaves the request assigned, and its register completes it again from the
        # journal (or the FN) with the same document.
        with self._write(durable=False) as db:
            row = db.execute(
                "SELECT state, register, callback_url, result FROM cloud_requests WHERE uuid = ?",
                (uuid,),
            ).fetchone()
            if row is not None and row[0] == "done" and row[1] == register:
                # Settled twice: the first result stands.  Nothing in the pool completes a
                # request twice, so this is a bug (or a second writer) -- said loudly, with both
                # results, since two different documents would be a double sale.
                first = jsontext.loads(row[3]) if row[3] is not None else None
                same = _document(first) == _document(result)
                log.error(
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
            if row is None or row[0] != "assigned" or row[1] != register:
                state = "unknown" if row is None else f"{row[0]} on {row[1] or 'no register'}"
                raise StorageError(
                    f"cannot complete {uuid} on {register}: it is {state} -- a request is "
                    "completed only by the register it is assigned to"
                )
            db.execute(
                "UPDATE cloud_requests SET state = 'done', done_at = ?, result = ?, "
                "error = NULL, fn_serial = ?, document_number = ? WHERE uuid = ?",
                (
                    _now(),
                    jsontext.dumps(result),
                    str(result.get("fn_number", "")),
                    _int_or_none(result.get("document_number")),
                    uuid,
                ),
            )
            self._add_callback(db, uuid, row[2])

    def fail(self, uuid: str, error: dict[str, Any], *, fence: int | None = None) -> None:
        with self._write() as db:
            row = db.execute(
                "SELECT state, callback_url FROM cloud_requests WHERE uuid = ?", (uuid,)
            ).fetchone()
            if row is None or row[0] not in WAITING:
                state = "unknown" if row is None else row[0]
                raise StorageError(f"cannot fail {uuid}: it is {state}, not waiting")
            db.execute(
                "UPDATE cloud_requests SET state = 'fail', done_at = ?, error = ? WHERE uuid = ?",
                (_now(), jsontext.dumps(error), uuid),
            )
            self._add_callback(db, uuid, row[1])

    def _add_callback(self, db: sqlite3.Connection, uuid: str, url: str | None) -> None:
        if url:
            now = _now()
            db.execute(
                "INSERT INTO cloud_outbox (uuid, url, state, next_at, created_at) "
                "VALUES (?, ?, 'pending', ?, ?)",
                (uuid, url, now, now),
            )

    def release(self, uuid: str, register: str, *, fence: int | None = None) -> None:
        with self._write() as db:
            changed = db.execute(
                "UPDATE cloud_requests SET state = 'queued', register = NULL, error = NULL "
                "WHERE uuid = ? AND state = 'assigned' AND register = ?",
                (uuid, register),
            ).rowcount
        if changed:
            self._notify()

    def hold(
        self, uuid: str, register: str, error: dict[str, Any], *, fence: int | None = None
    ) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE cloud_requests SET error = ? "
                "WHERE uuid = ? AND state = 'assigned' AND register = ?",
                (jsontext.dumps(error), uuid, register),
            )

    def assigned_registers(self) -> list[str]:
        rows = self._read(
            "SELECT DISTINCT register FROM cloud_requests "
            "WHERE state = 'assigned' AND register IS NOT NULL ORDER BY register"
        )
        return [str(row[0]) for row in rows]

    def save_register_details(self, name: str, details: dict[str, str]) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO cloud_register_details (name, details) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET details = excluded.details",
                (name, json.dumps(details, ensure_ascii=False)),
            )

    def register_details(self, name: str) -> dict[str, str] | None:
        rows = self._read("SELECT details FROM cloud_register_details WHERE name = ?", (name,))
        return {str(k): str(v) for k, v in json.loads(rows[0][0]).items()} if rows else None

    def queue_depth(self, group: str | None = None) -> int:
        if group is None:
            rows = self._read(QUEUE_DEPTH_SQL)
        else:
            rows = self._read(
                "SELECT COUNT(*) FROM cloud_requests "
                "WHERE grp = ? AND state IN ('queued', 'assigned')",
                (group,),
            )
        return int(rows[0][0])

    def queue_depths(self) -> dict[str, int]:
        """Requests not finished, by group (for `kkt cloud status`)."""
        rows = self._read(
            "SELECT grp, COUNT(*) FROM cloud_requests WHERE state IN ('queued', 'assigned') "
            "GROUP BY grp ORDER BY grp"
        )
        return {str(row[0]): int(row[1]) for row in rows}

    def counts(self) -> dict[str, int]:
        found = {"wait": 0, "done": 0, "fail": 0}
        for row in self._read("SELECT state, COUNT(*) FROM cloud_requests GROUP BY state"):
            found[_status(row[0])] += int(row[1])
        return found

    def recent(self, groups: Collection[str], limit: int = 50) -> list[ReportView]:
        names = list(groups)
        if not names:
            return []
        marks = ", ".join("?" for _ in names)  # placeholders only: the values stay parameters
        rows = self._read(
            f"SELECT {_VIEW_COLUMNS} FROM cloud_requests WHERE grp IN ({marks}) "
            "ORDER BY seq DESC LIMIT ?",
            (*names, limit),
        )
        return [_view(row) for row in rows]

    def set_ofd_acknowledged_below(self, fn_serial: str, number: int) -> None:
        with self._write(durable=False) as db:  # the FN says it again at the next look
            db.execute(
                "UPDATE cloud_requests SET ofd_acknowledged = 1 WHERE fn_serial = ? "
                "AND ofd_acknowledged = 0 AND document_number < ?",
                (fn_serial, number),
            )

    # -- registers ------------------------------------------------------------------------------

    def save_register(self, view: RegisterView) -> None:
        data = asdict(view)
        data["fn_expires"] = view.fn_expires.isoformat() if view.fn_expires else None
        data["updated_at"] = _epoch(view.updated_at)
        with self._write(durable=False) as db:  # a view for the page: the next one replaces it
            db.execute(
                "INSERT INTO cloud_registers (name, view) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET view = excluded.view",
                (view.name, json.dumps(data, ensure_ascii=False)),
            )

    def registers(self) -> list[RegisterView]:
        views = []
        for row in self._read("SELECT view FROM cloud_registers ORDER BY name"):
            data = json.loads(row[0])
            data["fn_expires"] = (
                date.fromisoformat(data["fn_expires"]) if data["fn_expires"] else None
            )
            data["updated_at"] = _moment(data["updated_at"])
            views.append(RegisterView(**data))
        return views

    # -- tokens ---------------------------------------------------------------------------------

    def add_token(self, token_hash: str, login: str, expires_at: datetime) -> None:
        with self._write() as db:
            # expired tokens go as new ones come: the table stays the size of a day's logins
            db.execute("DELETE FROM cloud_tokens WHERE expires_at <= ?", (_now(),))
            db.execute(
                "INSERT OR REPLACE INTO cloud_tokens (token_hash, login, expires_at) "
                "VALUES (?, ?, ?)",
                (token_hash, login, _epoch(expires_at)),
            )

    def token_login(self, token_hash: str, now: datetime) -> str | None:
        rows = self._read(
            "SELECT login FROM cloud_tokens WHERE token_hash = ? AND expires_at > ?",
            (token_hash, _epoch(now)),
        )
        return str(rows[0][0]) if rows else None

    # -- callback outbox ------------------------------------------------------------------------

    def due_callbacks(self, now: datetime, limit: int) -> list[Callback]:
        rows = self._read(
            "SELECT id, uuid, url, attempts FROM cloud_outbox "
            "WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?",
            (_epoch(now), limit),
        )
        return [
            row_callback(
                row["id"],
                row["uuid"],
                row["url"],
                row["attempts"],
                report=self.report,
                body_of=self._callback_body,
            )
            for row in rows
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
        with self._write(durable=False) as db:  # lost: delivered again (at least once)
            db.execute(
                "INSERT INTO cloud_attempts (callback_id, at, ok, status, error) "
                "VALUES (?, ?, ?, ?, ?)",
                (callback_id, _now(), int(ok), status, error),
            )
            db.execute(
                "UPDATE cloud_outbox SET attempts = attempts + 1, state = ?, next_at = ? "
                "WHERE id = ?",
                (state, _epoch(next_at) if next_at is not None else _now(), callback_id),
            )

    def pending_callbacks(self) -> int:
        """Outbox rows not yet delivered nor abandoned (for metrics and the operator page)."""
        rows = self._read("SELECT COUNT(*) FROM cloud_outbox WHERE state = 'pending'")
        return int(rows[0][0])

    def attempts(self, callback_id: int) -> list[dict[str, Any]]:
        """Every delivery attempt of one outbox row, oldest first."""
        rows = self._read(
            "SELECT at, ok, status, error FROM cloud_attempts WHERE callback_id = ? ORDER BY id",
            (callback_id,),
        )
        return [
            {
                "at": _moment(r["at"]),
                "ok": bool(r["ok"]),
                "status": r["status"],
                "error": r["error"],
            }
            for r in rows
        ]

    # -- the rest -------------------------------------------------------------------------------

    def journal_path(self) -> str:
        return str(self._path)

    def journal(self, register: str = "", fence: int | None = None) -> Journal:
        """A driver's journal on `journal_path` whose writes queue on this storage's write lock
        (for a register worker: ``kkt.connect(url)`` then ``register.journal = ...``).  One file
        serves every register (``register`` is not needed: keys are bound to their FN; nor is
        ``fence``: this instance holds every lease, see `take_lease`)."""
        try:
            return _SharedLockJournal(self._path, self._lock)
        except KktError as error:
            raise StorageError(f"{error}") from None

    # -- instances and leases: one instance per state directory ---------------------------------

    def take_lease(self, register: str, ttl: float) -> int:
        """Always granted, epoch 1: the state directory's lock (the service's flock) already
        lets one instance at a time use this file, so every register is this instance's."""
        return 1

    def confirm_lease(self, register: str, epoch: int, margin: float = 0.0) -> bool:
        return True  # see take_lease

    def drop_lease(self, register: str) -> None:
        return None

    def heartbeat(self) -> None:
        return None

    def instances(self) -> list[InstanceView]:
        now = datetime.now(UTC)
        return [InstanceView(self.instance, self._host, os.getpid(), self._started_at, now)]

    def leases(self) -> list[LeaseView]:
        return []  # nothing is leased: see take_lease

    def callback_secret(self) -> bytes | None:
        return None  # the service keeps its key file beside this one

    def wait_for_work(self, timeout: float) -> None:
        """Returns at once when accept/release happened since this thread's last wait (so work
        that arrived between a worker's empty `claim` and this call is not slept through), else
        when one happens, or after ``timeout`` seconds."""
        with self._work:
            seen = getattr(self._seen, "generation", None)
            if seen is None or seen == self._generation:
                self._work.wait(timeout)
            self._seen.generation = self._generation

    def close(self) -> None:
        with self._lock, self._read_lock:
            if not self._closed:
                self._closed = True
                self._reader.close()
                self._db.close()


def _view(row: sqlite3.Row) -> ReportView:
    return report_view(tuple(row), _moment)  # epoch seconds, as stored


def _job(row: sqlite3.Row) -> Job:
    return row_job(tuple(row))
