"""The emulated OFD's durable store: every document received, once, with the receipt it got.

One SQLite file (``ofd.sqlite``) in the OFD's state directory, WAL mode with ``synchronous=FULL``
like the FN's archive: a document is committed before its receipt goes out, so an OFD killed at
any instant never acknowledges a document it then forgets.  A document is keyed by (FN serial, FD
number); its receipt's bytes are kept with it, so a document sent again gets the very same receipt
(the FN may have lost the first one, or written it already: both are fine with identical bytes).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "ofd.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    fn_serial   TEXT    NOT NULL,
    fd_number   INTEGER NOT NULL,
    doc_type    INTEGER NOT NULL,
    received_at TEXT    NOT NULL,
    acked_at    TEXT,
    times       INTEGER NOT NULL DEFAULT 1,
    message     BLOB    NOT NULL,
    ack         BLOB    NOT NULL,
    PRIMARY KEY (fn_serial, fd_number)
)
"""


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """One document as the OFD keeps it (``acked_at``: when a receipt was last written to the
    register's connection; None while none was)."""

    fn_serial: str
    fd_number: int
    doc_type: int
    received_at: dt.datetime
    acked_at: dt.datetime | None
    times: int  # how many times it arrived
    message: bytes  # the container as received
    ack: bytes  # the receipt container it is answered with

    def as_json(self) -> dict[str, object]:
        return {
            "fn": self.fn_serial,
            "fd": self.fd_number,
            "type": self.doc_type,
            "received_at": self.received_at.isoformat(),
            "acked": self.acked_at is not None,
            "acked_at": self.acked_at.isoformat() if self.acked_at else None,
            "times": self.times,
        }


class OfdStore:
    """The documents table; ``read_only`` for readers beside the serving process."""

    def __init__(self, state: Path, *, read_only: bool = False) -> None:
        self.path = state / FILE_NAME
        if read_only:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
        else:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def find(self, fn_serial: str, fd_number: int) -> StoredDocument | None:
        row = self._db.execute(
            "SELECT * FROM documents WHERE fn_serial = ? AND fd_number = ?",
            (fn_serial, fd_number),
        ).fetchone()
        return _document(row) if row else None

    def add(
        self,
        fn_serial: str,
        fd_number: int,
        doc_type: int,
        message: bytes,
        ack: bytes,
        received_at: dt.datetime,
    ) -> None:
        """Store a new document with its receipt (committed, fsynced, before it returns)."""
        self._db.execute(
            "INSERT INTO documents (fn_serial, fd_number, doc_type, received_at, message, ack)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (fn_serial, fd_number, doc_type, received_at.isoformat(), message, ack),
        )

    def seen_again(self, fn_serial: str, fd_number: int) -> None:
        self._db.execute(
            "UPDATE documents SET times = times + 1 WHERE fn_serial = ? AND fd_number = ?",
            (fn_serial, fd_number),
        )

    def mark_acked(self, fn_serial: str, fd_number: int, when: dt.datetime) -> None:
        self._db.execute(
            "UPDATE documents SET acked_at = ? WHERE fn_serial = ? AND fd_number = ?",
            (when.isoformat(), fn_serial, fd_number),
        )

    def documents(self) -> list[StoredDocument]:
        rows = self._db.execute("SELECT * FROM documents ORDER BY fn_serial, fd_number").fetchall()
        return [_document(row) for row in rows]

    def count(self) -> int:
        row = self._db.execute("SELECT count(*) FROM documents").fetchone()
        return int(row[0])


def _document(row: tuple[object, ...]) -> StoredDocument:
    fn_serial, fd_number, doc_type, received_at, acked_at, times, message, ack = row
    return StoredDocument(
        str(fn_serial),
        int(str(fd_number)),
        int(str(doc_type)),
        dt.datetime.fromisoformat(str(received_at)),
        dt.datetime.fromisoformat(str(acked_at)) if acked_at is not None else None,
        int(str(times)),
        bytes(message) if isinstance(message, bytes | bytearray | memoryview) else b"",
        bytes(ack) if isinstance(ack, bytes | bytearray | memoryview) else b"",
    )
