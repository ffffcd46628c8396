"""Telling a PostgreSQL DSN from a SQLite path, and naming a DSN without its password.

libpq takes two forms of DSN: the URL (``postgresql://user:password@host:5432/db``) and the
keyword form (``host=db.example dbname=kkt user=kkt password=...``).  Both are PostgreSQL here:
the keyword form taken for a path would silently open a SQLite file named after it (the password
in its name) -- one instance alone on its own queue and journal, while the operator believes it
shares the others'.  Messages name a DSN only by `describe_dsn` (host:port/dbname): a DSN may
hold a password, and a DSN libpq cannot parse is never repeated at all (its parse error quotes
it whole).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# ``keyword=`` at the start: libpq's keyword form (a path does not start so; a relative path
# that does is taken for a DSN and refused by libpq, never opened as a file named like that)
_KEYWORD_DSN = re.compile(r"\s*[A-Za-z_]+\s*=")
_QUOTED = re.compile(r'"[^"]*"')


def is_postgres_url(url_or_path: str | Path) -> bool:
    """A PostgreSQL DSN (either form); else a SQLite path (a `Path` always is)."""
    if not isinstance(url_or_path, str):
        return False
    return url_or_path.lstrip().startswith(POSTGRES_SCHEMES) or bool(
        _KEYWORD_DSN.match(url_or_path)
    )


def describe_dsn(dsn: str) -> str:
    """``host:port/dbname`` of a DSN, for messages and the CLI: never its password."""
    try:
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # psycopg missing: what a URL tells without it
        return _describe_url(dsn)
    try:
        parts = conninfo_to_dict(dsn)
    except ProgrammingError:
        return "(an unreadable DSN)"
    host = str(parts.get("host") or parts.get("hostaddr") or "localhost")
    port = parts.get("port")
    return f"{host}{f':{port}' if port else ''}/{parts.get('dbname') or parts.get('user') or ''}"


def parse_dsn(dsn: str) -> dict[str, str]:
    """The DSN's parts (libpq's own parser); `StorageError` naming what is wrong -- without
    the DSN, whose password libpq's message would quote."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    from .base import StorageError

    try:
        return {str(key): str(value) for key, value in conninfo_to_dict(dsn).items()}
    except ProgrammingError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        why = _QUOTED.sub('"…"', lines[0]) if lines else type(error).__name__
        raise StorageError(
            f"the PostgreSQL DSN given cannot be read ({why}; the DSN is not repeated: it may "
            "hold a password): write it as postgresql://USER:PASSWORD@HOST:PORT/DBNAME or as "
            "host=HOST port=PORT dbname=DBNAME user=USER"
        ) from None


def _describe_url(dsn: str) -> str:
    if not dsn.lstrip().startswith(POSTGRES_SCHEMES):
        return "(a PostgreSQL DSN)"
    try:
        parts = urlsplit(dsn.strip())
        host, port = parts.hostname or "localhost", parts.port
    except ValueError:
        return "(an unreadable DSN)"
    return f"{host}{f':{port}' if port else ''}{parts.path or '/'}"
