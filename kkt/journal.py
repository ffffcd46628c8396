"""The idempotency journal: idempotency key -> what became of that receipt.

A shop passes the same key when it repeats a receipt (after a timeout, a crash, a restart).  The
driver records the key *before* the receipt can become fiscal, together with the FN's last
document number at that moment; when the receipt is done it records the fiscal data.  Seeing the
key again it returns that data -- or, for a key left pending by a crash, looks in the FN for a
matching document formed after the recorded number before deciding to sell at all.

A key is bound to what it was first used for: the FN it began in (``fn``), the receipt's content
(``operation``, ``fingerprint``: the items) and its ``payments``.  One journal file may serve any
number of registers (the ``kkt --key`` default does); the register checks the binding and refuses
a key used again for another receipt or on another register (`KeyConflict`).  Journals written
before a column existed are migrated in place: the column is added, empty ('' = not recorded).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .errors import KktError


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    state: str  # "pending" or "done"
    before: int  # the FN's last document number when the receipt began
    operation: int
    total: int
    result: dict[str, Any] | None
    fn: str  # the FN the receipt began in ('' in journals written before this column)
    fingerprint: str  # `Receipt.key_fingerprint()` ('' in older journals: match by total alone)
    payments: str = ""  # "cash=70000,electronic=0,..." ('' in older journals)


class JournalStore(Protocol):
    """What a register needs of its journal (`Register.journal`): `Journal` (one SQLite file) is
    one; the cloud service keeps another in PostgreSQL.  Every write is durable when it returns:
    ``begin`` above all, since it is made before the receipt can become fiscal."""

    def get(self, key: str) -> Entry | None: ...

    def begin(
        self,
        key: str,
        before: int,
        operation: int,
        total: int,
        fn: str = "",
        fingerprint: str = "",
        payments: str = "",
    ) -> None: ...

    def done(self, key: str, result: dict[str, Any]) -> None: ...

    def claimed(self, after: int, fn: str = "") -> set[int]: ...

    def next_begun(self, after: int, fn: str) -> int | None: ...

    def forget(self, key: str) -> None: ...

    def close(self) -> None: ...


class Journal:
    """One SQLite file; safe to share between threads of one process."""

    def __init__(self, path: str | Path) -> None:
        try:
            self._open(path)
        except sqlite3.Error as error:
            raise KktError(
                f"cannot open the idempotency journal {path}: {error}; give a writable file path"
            ) from None
        self._lock = threading.Lock()

    def _open(self, path: str | Path) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "PRAGMA synchronous=FULL"
        )  # a "pending" must be on disk before the receipt is
        # Creation and migration under one write lock: several connections (a cloud register's
        # workers, one per register) may open the same file at once, and two of them adding the
        # same column would fail with "duplicate column name".
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS receipts (key TEXT PRIMARY KEY, state TEXT NOT NULL, "
                "before INTEGER NOT NULL, operation INTEGER NOT NULL, total INTEGER NOT NULL, "
                "result TEXT)"
            )
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(receipts)")}
            # journals written before these were recorded: migrated in place, '' = not recorded
            for column in ("fn", "fingerprint", "payments"):
                if column not in columns:
                    self._db.execute(
                        f"ALTER TABLE receipts ADD COLUMN {column} TEXT NOT NULL DEFAULT ''"
                    )
            self._db.execute("CREATE INDEX IF NOT EXISTS receipts_fn ON receipts (fn, state)")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def get(self, key: str) -> Entry | None:
        with self._lock:
            row = self._db.execute(
                "SELECT key, state, before, operation, total, result, fn, fingerprint, payments "
                "FROM receipts WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        result = json.loads(row[5]) if row[5] else None
        return Entry(row[0], row[1], row[2], row[3], row[4], result, row[6], row[7], row[8])

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
        """Record, durably, that receipt ``key`` is about to begin in FN ``fn``."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO receipts "
                "(key, state, before, operation, total, result, fn, fingerprint, payments) "
                "VALUES (?, 'pending', ?, ?, ?, NULL, ?, ?, ?)",
                (key, before, operation, total, fn, fingerprint, payments),
            )

    def done(self, key: str, result: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE receipts SET state = 'done', result = ? WHERE key = ?",
                (json.dumps(result), key),
            )

    def claimed(self, after: int, fn: str = "") -> set[int]:
        """Numbers above ``after`` of the documents in FN ``fn`` that keys already done own.

        Every done key counts, whenever it began: a key resolved late owns a late document.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT result FROM receipts WHERE state = 'done' AND fn = ?", (fn,)
            ).fetchall()
        numbers = {int(json.loads(row[0])["document_number"]) for row in rows if row[0]}
        return {number for number in numbers if number > after}

    def next_begun(self, after: int, fn: str) -> int | None:
        """The least ``before`` above ``after`` any key recorded in FN ``fn``: that key began
        after the receipt begun at ``after`` had ended (one writer), so that receipt's document
        is not beyond it."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(before) FROM receipts WHERE fn = ? AND before > ?", (fn, after)
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def forget(self, key: str) -> None:
        """The receipt certainly did not become fiscal: the key may be used afresh."""
        with self._lock:
            self._db.execute("DELETE FROM receipts WHERE key = ? AND state = 'pending'", (key,))

    def close(self) -> None:
        self._db.close()
