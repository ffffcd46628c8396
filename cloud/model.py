"""The cloud service's shared vocabulary: a validated request, what storage reports of it, a job
for a register worker, a register's state.  Plain frozen dataclasses: every layer (storage, pool,
API, web) speaks these and nothing of each other's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

OPERATIONS_V4 = ("sell", "sell_refund", "buy", "buy_refund", "sell_correction", "buy_correction")
OPERATIONS_V5 = (*OPERATIONS_V4, "sell_refund_correction", "buy_refund_correction")


@dataclass(frozen=True, slots=True)
class Order:
    """One validated request."""

    api: int  # 4 or 5
    group: str
    operation: str  # one of OPERATIONS_V5
    external_id: str
    body: dict[str, Any]  # the JSON as received (numbers as Decimal -> stored as JSON text)
    # sha256 hex of the canonical body WITHOUT "timestamp" (a retry regenerates it):
    # same fingerprint = same request
    fingerprint: str
    callback_url: str | None
    inn: str  # receipt/correction company.inn (checked against the register)


@dataclass(frozen=True, slots=True)
class ReportView:
    """What storage knows of one request, for report_json and the UI."""

    uuid: str
    api: int
    group: str
    operation: str
    external_id: str
    status: str  # "wait" | "done" | "fail"
    accepted_at: datetime
    done_at: datetime | None
    callback_url: str | None
    # done: FiscalResult.to_json() + {"rnm": str, "fns_site": str, "ofd_inn": str,
    # "device_code": str}
    result: dict[str, Any] | None
    error: dict[str, Any] | None  # fail: {"code": int, "text": str, "type": str}
    register: str | None  # the register's name (device_code) that took it
    ofd: str | None  # None (not done) | "waiting" | "acknowledged"


@dataclass(frozen=True, slots=True)
class Job:
    """A request handed to a register worker."""

    uuid: str
    api: int
    group: str
    operation: str
    external_id: str
    body: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class RegisterView:
    name: str
    group: str
    url: str
    protocol: str
    state: str  # "ok" | "failing" | "settling" | "offline"
    detail: str  # why not ok, human words ("paper out", "no link: …")
    fn_serial: str
    fn_expires: date | None
    ofd_unsent: int
    ofd_first_unsent: int | None
    paper: bool | None
    in_flight: int
    done: int
    updated_at: datetime
