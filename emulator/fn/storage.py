"""Where an emulated FN keeps its state and archive: in memory, or durably in SQLite.

`SqliteStore` writes each fiscal document in one transaction together with the state it moves
(numbers, counters, queue), in WAL mode with ``synchronous=FULL``: a process killed at any instant
leaves either the state before the document or the state after it, never half of one.  The archive
lives on disk, so memory does not grow with it.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from .archive import ArchiveRecord
from .counters import Payments, VatSums
from .state import FnState


class FnStore(Protocol):
    def load(self) -> FnState | None: ...

    def save(
        self,
        state: FnState,
        record: ArchiveRecord | None = None,
        confirmed: tuple[int, dt.datetime] | None = None,
    ) -> None:
        """Store the new state and the document it formed (or confirmation it took), atomically."""

    def record(self, number: int) -> ArchiveRecord | None: ...

    def records(self, start: int = 1) -> Iterator[ArchiveRecord]: ...

    def confirmed_at(self, number: int) -> dt.datetime | None: ...

    def close(self) -> None: ...


class MemoryStore:
    """Keeps everything in process memory: fast tests, nothing survives the process."""

    def __init__(self) -> None:
        self._state: FnState | None = None
        self._records: dict[int, ArchiveRecord] = {}
        self._confirmed: dict[int, dt.datetime] = {}

    def load(self) -> FnState | None:
        return self._state

    def save(
        self,
        state: FnState,
        record: ArchiveRecord | None = None,
        confirmed: tuple[int, dt.datetime] | None = None,
    ) -> None:
        if record is not None:
            self._records[record.number] = record
        if confirmed is not None:
            self._confirmed[confirmed[0]] = confirmed[1]
        self._state = state

    def record(self, number: int) -> ArchiveRecord | None:
        return self._records.get(number)

    def records(self, start: int = 1) -> Iterator[ArchiveRecord]:
        for number in sorted(n for n in self._records if n >= start):
            yield self._records[number]

    def confirmed_at(self, number: int) -> dt.datetime | None:
        return self._confirmed.get(number)

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS fn_state (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    number INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    at TEXT NOT NULL,
    fiscal_sign INTEGER NOT NULL,
    shift INTEGER NOT NULL,
    data BLOB NOT NULL,
    tlv BLOB NOT NULL,
    operation INTEGER NOT NULL,
    total INTEGER NOT NULL,
    payments TEXT NOT NULL,
    vat TEXT NOT NULL,
    correction INTEGER NOT NULL,
    confirmed_at TEXT
);
"""

_COLUMNS = (
    "number, kind, at, fiscal_sign, shift, data, tlv, operation, total, payments, vat, correction"
)


class SqliteStore:
    """One SQLite file per emulated FN."""

    def __init__(self, path: str | Path, *, durable: bool = True) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is synced at every commit, so an acknowledged document survives power loss.
        # durable=False (OFF) only for building large test archives quickly.
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        self._db.executescript(_SCHEMA)

    def load(self) -> FnState | None:
        row = self._db.execute("SELECT state FROM fn_state WHERE id = 1").fetchone()
        return FnState.from_json(json.loads(row[0])) if row else None

    def save(
        self,
        state: FnState,
        record: ArchiveRecord | None = None,
        confirmed: tuple[int, dt.datetime] | None = None,
    ) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if record is not None:
                db.execute(
                    f"INSERT INTO documents ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    _row(record),
                )
            if confirmed is not None:
                db.execute(
                    "UPDATE documents SET confirmed_at = ? WHERE number = ?",
                    (confirmed[1].isoformat(), confirmed[0]),
                )
            db.execute(
                "INSERT OR REPLACE INTO fn_state (id, state) VALUES (1, ?)",
                (json.dumps(state.to_json(), separators=(",", ":")),),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def record(self, number: int) -> ArchiveRecord | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM documents WHERE number = ?", (number,)
        ).fetchone()
        return _record(row) if row else None

    def records(self, start: int = 1) -> Iterator[ArchiveRecord]:
        cursor = self._db.execute(
            f"SELECT {_COLUMNS} FROM documents WHERE number >= ? ORDER BY number", (start,)
        )
        for row in cursor:
            yield _record(row)

    def confirmed_at(self, number: int) -> dt.datetime | None:
        row = self._db.execute(
            "SELECT confirmed_at FROM documents WHERE number = ?", (number,)
        ).fetchone()
        return dt.datetime.fromisoformat(row[0]) if row and row[0] else None

    def close(self) -> None:
        self._db.close()


def _row(record: ArchiveRecord) -> tuple[object, ...]:
    p, v = record.payments, record.vat
    return (
        record.number,
        record.kind,
        record.when.isoformat(),
        record.fiscal_sign,
        record.shift,
        record.data,
        record.tlv,
        record.operation,
        record.total,
        json.dumps([p.cash, p.electronic, p.prepaid, p.credit, p.counter]),
        json.dumps([v.vat20, v.vat10, v.vat0, v.no_vat, v.vat20_120, v.vat10_110]),
        int(record.correction),
    )


def _record(row: tuple[object, ...]) -> ArchiveRecord:
    number, kind, at, sign, shift, data, tlv, operation, total, payments, vat, correction = row
    return ArchiveRecord(
        number=int(number),  # type: ignore[call-overload]
        kind=int(kind),  # type: ignore[call-overload]
        when=dt.datetime.fromisoformat(str(at)),
        fiscal_sign=int(sign),  # type: ignore[call-overload]
        shift=int(shift),  # type: ignore[call-overload]
        data=bytes(data),  # type: ignore[call-overload]
        tlv=bytes(tlv),  # type: ignore[call-overload]
        operation=int(operation),  # type: ignore[call-overload]
        total=int(total),  # type: ignore[call-overload]
        payments=Payments(*json.loads(str(payments))),
        vat=VatSums(*json.loads(str(vat))),
        correction=bool(correction),
    )
