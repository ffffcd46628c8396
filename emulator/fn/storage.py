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
from typing import Any

from kkt.protocols.ffd import DocumentType, LifePhase, Payments

from .archive import ArchiveRecord
from .counters import (
    OPERATIONS,
    CorrectionCounters,
    Counters,
    OperationCounters,
    VatSums,
    _four,
)
from .marking import MarkingState, MarkingWrite, Notification
from .state import FnState

# An OFD receipt the FN takes: the FD it confirms, the receipt's time (1012) and its ФПО (1078).
Confirmation = tuple[int, dt.datetime, bytes]


class MemoryStore:
    """Keeps everything in process memory: fast tests, nothing survives the process.

    Each store (this one, `SqliteStore`) offers ``load``, ``save(state, record, confirmed,
    marking)`` -- the new state and the document it formed (or the confirmation it took, or the
    marking state it moved), atomically -- ``record``, ``records``, ``confirmed_at``, ``receipt``,
    ``load_marking``, ``notifications``, ``sold_in``, ``sold_codes`` and ``close``.
    """

    def __init__(self) -> None:
        self._state: FnState | None = None
        self._records: dict[int, ArchiveRecord] = {}
        self._confirmed: dict[int, tuple[dt.datetime, bytes]] = {}
        self._marking: MarkingState | None = None
        self._notifications: dict[int, Notification] = {}
        self._sold: dict[bytes, int] = {}

    def load(self) -> FnState | None:
        return self._state

    def save(
        self,
        state: FnState,
        record: ArchiveRecord | None = None,
        confirmed: Confirmation | None = None,
        marking: MarkingWrite | None = None,
    ) -> None:
        if record is not None:
            self._records[record.number] = record
        if confirmed is not None:
            number, when, sign = confirmed
            self._confirmed[number] = (when, sign)
        if marking is not None:
            self._marking = marking.state
            if marking.notification is not None:
                self._notifications[marking.notification.number] = marking.notification
            if marking.confirmed is not None:
                self._notifications.pop(marking.confirmed, None)
            self._sold.update(marking.sold)
            for code in marking.returned:
                self._sold.pop(code, None)
        self._state = state

    def load_marking(self) -> MarkingState | None:
        return self._marking

    def notifications(self) -> list[Notification]:
        """The notifications not confirmed, oldest first."""
        return [self._notifications[n] for n in sorted(self._notifications)]

    def sold_in(self, code: bytes) -> int | None:
        return self._sold.get(code)

    def sold_codes(self) -> list[bytes]:
        return list(self._sold)

    def record(self, number: int) -> ArchiveRecord | None:
        return self._records.get(number)

    def records(self, start: int = 1) -> Iterator[ArchiveRecord]:
        for number in sorted(n for n in self._records if n >= start):
            yield self._records[number]

    def confirmed_at(self, number: int) -> dt.datetime | None:
        receipt = self._confirmed.get(number)
        return None if receipt is None else receipt[0]

    def receipt(self, number: int) -> tuple[dt.datetime, bytes] | None:
        return self._confirmed.get(number)

    def close(self) -> None:
        pass


_SUM_COLUMNS = (
    "cash, electronic, prepaid, credit, counter, vat20, vat10, vat0, no_vat, vat20_120, vat10_110"
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS fn_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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
    {", ".join(f"{c.strip()} INTEGER NOT NULL" for c in _SUM_COLUMNS.split(","))},
    correction INTEGER NOT NULL,
    confirmed_at TEXT,
    ofd_sign BLOB
);
CREATE TABLE IF NOT EXISTS marking_notifications (
    number INTEGER PRIMARY KEY,
    fd INTEGER NOT NULL,
    at TEXT NOT NULL,
    message BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS marking_sold (code BLOB PRIMARY KEY, fd INTEGER NOT NULL);
"""

# Columns added after archives were first written, and how to add them to an old one in place
# (the rows written before keep NULL: an old confirmation has a time but no ФПО).
_ADDED_COLUMNS = {"ofd_sign": "BLOB"}

_COLUMNS = (
    f"number, kind, at, fiscal_sign, shift, data, tlv, operation, total, {_SUM_COLUMNS}, correction"
)
_INSERT = f"INSERT INTO documents ({_COLUMNS}) VALUES ({', '.join('?' * _COLUMNS.count(','))}, ?)"
_RECEIPT = "kind IN (3, 31)"

# What the state keeps that the archive does not imply; written only when it changes.
_IDENTITY = ("config", "secret")
_REGISTRATION = ("registration", "registrations_done", "activated")


class SqliteStore:
    """One SQLite file per emulated FN; the archive is the single source of truth.

    A document commit writes its row and nothing else -- numbers, the shift, the receipt count, the
    OFD queue, the phase and the counters are all read back from the archive when the file is
    opened (a few indexed lookups and one aggregate query).  The FN's identity and registration sit
    in a small table, written in the same transaction as the document that changes them, and OFD
    confirmations mark their documents.  So a commit costs about one page and one fsync, and a
    process killed at any instant leaves an archive and a state that cannot disagree.
    """

    def __init__(self, path: str | Path, *, durable: bool = True) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # Small pages: a commit appends a page or two to the WAL, and fewer bytes per fsync is
        # faster (measured with `kkt bench fn`).  Only takes effect when the file is created.
        self._db.execute("PRAGMA page_size=1024")
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is synced at every commit, so an acknowledged document survives power loss.
        # durable=False (OFF) only for building large test archives quickly.
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        # A short WAL is checkpointed often and then rewritten from its start: commits overwrite
        # blocks the file already has instead of growing it, which makes each fsync cheaper.
        self._db.execute("PRAGMA wal_autocheckpoint=100")
        self._db.executescript(_SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(documents)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in present:  # an archive written before the column existed
                self._db.execute(f"ALTER TABLE documents ADD COLUMN {column} {kind}")
        self._written: dict[str, str] = dict(self._db.execute("SELECT key, value FROM fn_meta"))
        self._meta_key: tuple[object, ...] = ()
        self._meta: dict[str, str] = {}

    def load(self) -> FnState | None:
        if "identity" not in self._written:
            return None
        data: dict[str, Any] = {
            "registration": None,
            "registrations_done": 0,
            "activated": None,
            **json.loads(self._written["identity"]),
            **json.loads(self._written.get("registration", "{}")),
        }
        db = self._db
        last = db.execute(
            "SELECT number, at FROM documents ORDER BY number DESC LIMIT 1"
        ).fetchone()
        last_number = last[0] if last else 0
        data["last_number"], data["last_when"] = (last_number, last[1]) if last else (0, None)
        shift = db.execute(
            "SELECT number, kind, shift, at FROM documents WHERE kind IN (?, ?) "
            "ORDER BY number DESC LIMIT 1",
            (DocumentType.SHIFT_OPEN, DocumentType.SHIFT_CLOSE),
        ).fetchone()
        data["shift_open"] = bool(shift and shift[1] == DocumentType.SHIFT_OPEN)
        data["shift_number"] = shift[2] if shift else 0
        data["shift_opened_at"] = shift[3] if data["shift_open"] else None
        data["receipt_number"] = db.execute(
            f"SELECT COUNT(*) FROM documents WHERE {_RECEIPT} AND shift = ?",
            (data["shift_number"],),
        ).fetchone()[0]
        data["shift_documents"] = self._shift_documents(shift, last_number)
        registration = data["registration"]
        autonomous = bool(registration and registration["work_mode"] & 0x02)
        confirmed_through = int(self._written.get("confirmed_through", "0"))
        first = (
            None
            if autonomous
            else db.execute(
                "SELECT number, at FROM documents WHERE number = ?", (confirmed_through + 1,)
            ).fetchone()
        )
        data["first_unsent"], data["first_unsent_when"] = first if first else (0, None)
        closed = db.execute(
            "SELECT 1 FROM documents WHERE kind = ?", (DocumentType.FISCAL_MODE_CLOSE,)
        ).fetchone()
        if registration is None:
            data["phase"] = LifePhase.READY
        elif not closed:
            data["phase"] = LifePhase.FISCAL
        else:
            data["phase"] = LifePhase.ARCHIVE if autonomous or not first else LifePhase.POST_FISCAL
        return FnState.from_json(data, (self._counters(data["shift_number"]), self._counters(None)))

    def _shift_documents(self, shift: tuple[Any, ...] | None, last_number: int) -> int:
        """Documents of the last shift: its opening report through its close (or the latest)."""
        if shift is None:
            return 0
        if shift[1] == DocumentType.SHIFT_OPEN:
            return int(last_number - shift[0] + 1)
        opened = self._db.execute(
            "SELECT number FROM documents WHERE kind = ? AND shift = ?",
            (DocumentType.SHIFT_OPEN, shift[2]),
        ).fetchone()
        return int(shift[0] - opened[0] + 1) if opened else 0

    def _counters(self, shift: int | None) -> Counters:
        where = _RECEIPT if shift is None else f"{_RECEIPT} AND shift = {int(shift)}"
        sums = ", ".join(f"SUM({c})" for c in ("total", *_SUM_COLUMNS.split(",")))
        blocks = {
            operation: OperationCounters(*(int(v or 0) for v in values))
            for operation, *values in self._db.execute(
                f"SELECT operation, COUNT(*), {sums} FROM documents "
                f"WHERE {where} GROUP BY operation"
            )
        }
        corrections = CorrectionCounters()
        for operation, count, total in self._db.execute(
            f"SELECT operation, COUNT(*), SUM(total) FROM documents WHERE {where} AND correction "
            "GROUP BY operation"
        ):
            counts, totals = list(corrections.counts), list(corrections.sums)
            counts[operation - 1], totals[operation - 1] = count, total
            corrections = CorrectionCounters(
                corrections.count + count, _four(counts), _four(totals)
            )
        return Counters(
            tuple(blocks.get(op, OperationCounters()) for op in OPERATIONS), corrections
        )

    def save(
        self,
        state: FnState,
        record: ArchiveRecord | None = None,
        confirmed: Confirmation | None = None,
        marking: MarkingWrite | None = None,
    ) -> None:
        changed = self._changed_meta(state, confirmed)
        if marking is not None:
            # The marking table, the notification queue and the sold codes move in the same
            # transaction as the document that moves them (a receipt): all of it or none.
            changed["marking"] = marking.state.to_json()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if record is not None:
                db.execute(_INSERT, _row(record))
            if confirmed is not None:
                number, when, sign = confirmed
                db.execute(
                    "UPDATE documents SET confirmed_at = ?, ofd_sign = ? WHERE number = ?",
                    (when.isoformat(), sign, number),
                )
            if marking is not None:
                _write_marking(db, marking)
            if changed:
                db.executemany(
                    "INSERT OR REPLACE INTO fn_meta (key, value) VALUES (?, ?)", changed.items()
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._written.update(changed)

    def _changed_meta(self, state: FnState, confirmed: Confirmation | None) -> dict[str, str]:
        # Identity and registration change a few times in an FN's life: serialise them only then.
        key = (
            state.config,
            state.secret,
            state.registration,
            state.registrations_done,
            state.activated,
        )
        if key != self._meta_key:
            data = state.to_json(counters=False)
            self._meta = {
                "identity": _dump({name: data[name] for name in _IDENTITY}),
                "registration": _dump({name: data[name] for name in _REGISTRATION}),
            }
            self._meta_key = key
        meta = dict(self._meta)
        if confirmed is not None:
            meta["confirmed_through"] = str(confirmed[0])
        return {key: value for key, value in meta.items() if self._written.get(key) != value}

    def load_marking(self) -> MarkingState | None:
        text = self._written.get("marking")
        return None if text is None else MarkingState.from_json(text)

    def notifications(self) -> list[Notification]:
        """The notifications not confirmed, oldest first."""
        return [
            Notification(number, fd, dt.datetime.fromisoformat(at), bytes(message))
            for number, fd, at, message in self._db.execute(
                "SELECT number, fd, at, message FROM marking_notifications ORDER BY number"
            )
        ]

    def sold_in(self, code: bytes) -> int | None:
        row = self._db.execute("SELECT fd FROM marking_sold WHERE code = ?", (code,)).fetchone()
        return None if row is None else int(row[0])

    def sold_codes(self) -> list[bytes]:
        return [bytes(code) for (code,) in self._db.execute("SELECT code FROM marking_sold")]

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

    def receipt(self, number: int) -> tuple[dt.datetime, bytes] | None:
        """The OFD receipt of document ``number``: its time and ФПО (empty if kept without)."""
        row = self._db.execute(
            "SELECT confirmed_at, ofd_sign FROM documents WHERE number = ?", (number,)
        ).fetchone()
        if not row or not row[0]:
            return None
        return dt.datetime.fromisoformat(row[0]), bytes(row[1] or b"")

    def close(self) -> None:
        self._db.close()


def _write_marking(db: sqlite3.Connection, marking: MarkingWrite) -> None:
    n = marking.notification
    if n is not None:
        db.execute(
            "INSERT INTO marking_notifications (number, fd, at, message) VALUES (?, ?, ?, ?)",
            (n.number, n.fd, n.when.isoformat(), n.message),
        )
    if marking.confirmed is not None:
        db.execute("DELETE FROM marking_notifications WHERE number = ?", (marking.confirmed,))
    db.executemany("INSERT OR REPLACE INTO marking_sold (code, fd) VALUES (?, ?)", marking.sold)
    db.executemany("DELETE FROM marking_sold WHERE code = ?", [(c,) for c in marking.returned])


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


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
        *(getattr(p, name) for name in p.__slots__),  # the sum columns, in the fields' order
        *(getattr(v, name) for name in v.__slots__),
        int(record.correction),
    )


def _record(row: tuple[Any, ...]) -> ArchiveRecord:
    number, kind, at, sign, shift, data, tlv, operation, total = row[:9]
    return ArchiveRecord(
        number=number,
        kind=kind,
        when=dt.datetime.fromisoformat(at),
        fiscal_sign=sign,
        shift=shift,
        data=bytes(data),
        tlv=bytes(tlv),
        operation=operation,
        total=total,
        payments=Payments(*row[9:14]),
        vat=VatSums(*row[14:20]),
        correction=bool(row[20]),
    )


FnStore = MemoryStore | SqliteStore  # where an FN keeps its state and archive
