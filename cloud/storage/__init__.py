"""Where the cloud service keeps its state: the `Storage` protocol and its implementations.

`open_storage` picks one from what the operator gave: a ``postgresql://`` (or ``postgres://``)
URL opens `PostgresStorage` (several instances may share it), anything else is the path of a
SQLite file (`SqliteStorage`, one instance).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kkt.cloud.model import ReportView

from .base import Storage

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(url_or_path: str | Path) -> bool:
    return isinstance(url_or_path, str) and url_or_path.startswith(POSTGRES_SCHEMES)


def open_storage(
    url_or_path: str | Path,
    *,
    callback_body: Callable[[ReportView], bytes] | None = None,
) -> Storage:
    """A PostgreSQL URL -> `PostgresStorage`; else a SQLite file path -> `SqliteStorage`."""
    if is_postgres_url(url_or_path):
        # imported here: psycopg is needed only by those who use PostgreSQL
        from .postgres import PostgresStorage

        return PostgresStorage(str(url_or_path), callback_body=callback_body)
    from .sqlite import SqliteStorage

    return SqliteStorage(url_or_path, callback_body=callback_body)
