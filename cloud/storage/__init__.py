"""Where the cloud service keeps its state: the `Storage` protocol and its implementations.

`open_storage` picks one from what the operator gave: a ``postgresql://`` (or ``postgres://``)
URL or a libpq keyword DSN (``host=... dbname=...``) opens `PostgresStorage` (several instances
may share it), anything else is the path of a SQLite file (`SqliteStorage`, one instance).
`describe_dsn` names a DSN for messages without its password.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kkt.cloud.model import ReportView

from .base import Storage, StorageError
from .dsn import POSTGRES_SCHEMES, describe_dsn, is_postgres_url

__all__ = ["POSTGRES_SCHEMES", "Storage", "describe_dsn", "is_postgres_url", "open_storage"]


def open_storage(
    url_or_path: str | Path,
    *,
    callback_body: Callable[[ReportView], bytes] | None = None,
) -> Storage:
    """A PostgreSQL DSN -> `PostgresStorage`; else a SQLite file path -> `SqliteStorage`."""
    if is_postgres_url(url_or_path):
        # imported here: psycopg is needed only by those who use PostgreSQL
        try:
            from .postgres import PostgresStorage
        except ImportError as error:
            raise StorageError(
                f"PostgreSQL storage needs psycopg and psycopg-pool ({error.name} is missing): "
                "pip install 'kktkit[cloud]'"
            ) from None

        return PostgresStorage(str(url_or_path), callback_body=callback_body)
    from .sqlite import SqliteStorage

    return SqliteStorage(url_or_path, callback_body=callback_body)
