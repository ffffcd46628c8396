"""ATOL Online's answers built from what storage knows: the report (also the callback body) and
the "accepted" answer of a registration request (fact sheet ``ofd-cloud-marking.md`` §2.4).

A report of a request still queued says ``"status": "wait"`` with ``"error": null``: the §2.4
statuses define "wait" as queued / not processed yet, and a client polls until done or fail.
(§2.5's code 34 StateCheckNotFound, HTTP 200, is the table's name for the same state; it is
available as `ApiError.state_check_not_found` for a service that wants to answer it.)

Beyond ATOL, a done report carries ``"ofd": {"status": "waiting" | "acknowledged"}`` -- whether
the OFD has confirmed the document.  ATOL's clients ignore fields they do not know (its own
reports grew ``ofd_inn``, ``warnings`` ... over versions), so the extension is safe.
"""

from __future__ import annotations

import base64
import uuid as uuid_module
from datetime import datetime
from typing import Any

from ..model import ReportView
from .errors import ATOL_TIME, atol_time

DAEMON_CODE = "kkt-cloud"  # ATOL's daemon_code names the server that processed it
FNS_SITE = "www.nalog.gov.ru"


def report_json(view: ReportView, *, daemon_code: str = DAEMON_CODE) -> dict[str, Any]:
    """ATOL's report for one request: uuid, timestamp, status, error, payload (done only), the
    group, daemon and device codes, external_id, callback_url, and our ``ofd`` (done only)."""
    result = view.result if view.status == "done" else None
    when = view.done_at if view.done_at is not None else view.accepted_at
    report: dict[str, Any] = {
        "uuid": view.uuid,
        "timestamp": atol_time(when),
        "status": view.status,
        "error": _error(view) if view.status == "fail" else None,
        "payload": _payload(view.api, result) if result is not None else None,
        "group_code": view.group,
        "daemon_code": daemon_code,
        "device_code": view.register or (result or {}).get("device_code") or "",
        "external_id": view.external_id,
        "callback_url": view.callback_url or "",
    }
    if result is not None:
        report["ofd"] = {"status": view.ofd or "waiting"}
    return report


def accepted_json(uuid: str, now: datetime, status: str = "wait") -> dict[str, Any]:
    """The answer to an accepted registration request."""
    return {"uuid": uuid, "timestamp": atol_time(now), "error": None, "status": status}


def _error(view: ReportView) -> dict[str, Any]:
    error = view.error or {}
    # error_id is stable across polls of one report: derived from the uuid, not drawn anew.
    error_id = error.get("error_id") or str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, view.uuid))
    return {
        "error_id": error_id,
        "code": int(error.get("code", 0)),
        "text": str(error.get("text", "")),
        "type": str(error.get("type", "unknown")),
    }


def _payload(api: int, result: dict[str, Any]) -> dict[str, Any]:
    when = result.get("when")
    payload: dict[str, Any] = {
        "total": _roubles(int(result.get("total", 0))),
        "fns_site": result.get("fns_site") or FNS_SITE,
        "fn_number": str(result.get("fn_number", "")),
        "shift_number": int(result.get("shift_number", 0)),
        "receipt_datetime": (
            datetime.fromisoformat(when).strftime(ATOL_TIME) if isinstance(when, str) else ""
        ),
        "fiscal_receipt_number": int(result.get("receipt_number", 0)),
        "fiscal_document_number": int(result.get("document_number", 0)),
        "ecr_registration_number": str(result.get("rnm", "")),
        "fiscal_document_attribute": int(result.get("fiscal_sign", 0)),
    }
    if api >= 5:
        payload["ofd_inn"] = str(result.get("ofd_inn", ""))
        marks = result.get("marks")
        if marks:  # absent when the receipt had no codes to check (fact sheet §2.4)
            payload["marks_result"] = [_mark_result(mark) for mark in marks]
    return payload


def _mark_result(mark: dict[str, Any]) -> dict[str, Any]:
    """v5 ``marks_result[]``: the item's 0-based position, its ``mark_code`` in the request's
    form, and tag 2106.  The result keeps the code as scanned, not the kind the client chose:
    a code with GS separators comes back as ``gs1m`` (Base64), one without as ``short``."""
    code = str(mark.get("code", ""))
    form = (
        {"gs1m": base64.b64encode(code.encode("ascii")).decode("ascii")}
        if "\x1d" in code
        else {"short": code}
    )
    return {
        "position": int(mark.get("item", 0)),
        "mark_code": form,
        "result": int(mark.get("item_check", 0)),
    }


def _roubles(kopecks: int) -> int | float:
    """ATOL's ``total`` is a JSON number of roubles: 1598 or 119.98 (a float's shortest repr of a
    two-decimal value is that value, so it prints exactly)."""
    return kopecks // 100 if kopecks % 100 == 0 else kopecks / 100
