"""What both storages (SQLite, PostgreSQL) do alike with a request's row once read: the columns
a view or a job is read from, the row -> `ReportView` / `Job` conversion, the outward status and
the minimal callback body.  Only the moments differ by dialect (SQLite keeps epoch seconds,
PostgreSQL ``timestamptz``): each storage passes its own conversion; its SQL stays its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from kkt.cloud import jsontext
from kkt.cloud.model import Job, ReportView

from .base import Callback

__all__ = [
    "JOB_COLUMNS",
    "VIEW_COLUMNS",
    "WAITING",
    "callback",
    "document",
    "int_or_none",
    "job",
    "minimal_body",
    "report_view",
    "status",
]

log = logging.getLogger(__name__)

WAITING = ("queued", "assigned")  # both are ATOL's "wait"

# The order `report_view` and `job` unpack: every SELECT for them names these.
VIEW_COLUMNS = (
    "uuid, api, grp, operation, external_id, state, accepted_at, done_at, callback_url, "
    "result, error, register, ofd_acknowledged"
)
JOB_COLUMNS = "uuid, api, grp, operation, external_id, body, attempts"


def status(state: str) -> str:
    """The ATOL status of a row's state: ``queued`` and ``assigned`` are both ``wait``."""
    return "wait" if state in WAITING else state


def document(result: dict[str, Any] | None) -> tuple[object, object]:
    """The fiscal document a result names (FN, number): two results for one request agree when
    they name the same one."""
    if result is None:
        return (None, None)
    return (result.get("fn_number"), result.get("document_number"))


def int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None


def minimal_body(view: ReportView) -> bytes:
    """The callback body when no ATOL renderer was given: uuid, status, result or error."""
    return json.dumps(
        {
            "uuid": view.uuid,
            "status": view.status,
            "external_id": view.external_id,
            "group_code": view.group,
            "result": view.result,
            "error": view.error,
        },
        ensure_ascii=False,
    ).encode()


def report_view(row: Sequence[Any], moment: Callable[[Any], datetime | None]) -> ReportView:
    """A row of `VIEW_COLUMNS` as a view; ``moment`` turns the dialect's stored time (never
    given None) into an aware UTC datetime."""
    (uuid, api, grp, operation, external_id, state, accepted, done, callback_url) = row[:9]
    result, error, register, acknowledged = row[9:13]
    accepted_at = moment(accepted)
    assert accepted_at is not None  # NOT NULL in both schemas
    return ReportView(
        uuid=str(uuid),
        api=int(api),
        group=str(grp),
        operation=str(operation),
        external_id=str(external_id),
        status=status(state),
        accepted_at=accepted_at,
        done_at=moment(done) if done is not None else None,
        callback_url=callback_url,
        result=jsontext.loads(result) if result is not None else None,
        error=jsontext.loads(error) if error is not None else None,
        register=register,
        ofd=None if state != "done" else ("acknowledged" if acknowledged else "waiting"),
    )


def job(row: Sequence[Any]) -> Job:
    """A row of `JOB_COLUMNS` (in that order, whatever the table alias) as a job."""
    uuid, api, grp, operation, external_id, body, attempts = row[:7]
    return Job(
        uuid=str(uuid),
        api=int(api),
        group=str(grp),
        operation=str(operation),
        external_id=str(external_id),
        body=jsontext.loads(body),
        attempts=int(attempts),
    )


def callback(
    callback_id: Any,
    uuid: Any,
    url: Any,
    attempts: Any,
    *,
    report: Callable[[str], ReportView | None],
    body_of: Callable[[ReportView], bytes],
    passing: tuple[type[Exception], ...] = (),
) -> Callback:
    """One due outbox row as a `Callback`, its body drawn from the request's report now.

    Each row on its own: a report that cannot be read or drawn is that row's failed try
    (`Callback.error`), not an exception that holds up every other callback -- except the
    ``passing`` ones (PostgreSQL's `StorageUnavailable`: the database is gone for every row)."""
    body, error = b"", ""
    try:
        view = report(str(uuid))
        if view is None:
            error = f"request {uuid} is not in storage"
        else:
            body = body_of(view)
    except passing:
        raise
    except Exception as failure:
        log.exception("callback %s: its report could not be built", callback_id)
        error = f"the report could not be built: {type(failure).__name__}: {failure}"
    return Callback(
        id=int(callback_id),
        uuid=str(uuid),
        url=str(url),
        body=body,
        attempts=int(attempts),
        error=error,
    )
