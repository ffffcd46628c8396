"""A small in-memory stand-in for the cloud service's storage, pool and users: just what the
callback sender, the metrics and the operator page read, for their unit tests (the browser and
end-to-end tests run the real `CloudService`).  It is no model of their behaviour beyond that."""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from kkt.cloud.model import RegisterView, ReportView
from kkt.cloud.storage.base import Callback

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@dataclass
class Attempt:
    callback_id: int
    ok: bool
    status: int | None
    error: str
    next_at: datetime | None


@dataclass
class _Row:
    callback: Callback
    next_at: datetime | None


class FakeStorage:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reports: dict[str, ReportView] = {}
        self.queued: dict[str, int] = {}  # group -> depth
        self.register_views: list[RegisterView] = []
        self.outbox: dict[int, _Row] = {}
        self.attempts: list[Attempt] = []

    # what tests put in
    def add_callback(self, uuid: str, url: str, body: bytes, *, at: datetime = T0) -> int:
        with self._lock:
            callback_id = len(self.outbox) + 1
            self.outbox[callback_id] = _Row(Callback(callback_id, uuid, url, body, 0), at)
            return callback_id

    def add_report(self, view: ReportView) -> None:
        with self._lock:
            self.reports[view.uuid] = view

    # the Storage protocol's part in use
    def due_callbacks(self, now: datetime, limit: int) -> list[Callback]:
        with self._lock:
            due = [r for r in self.outbox.values() if r.next_at is not None and r.next_at <= now]
            due.sort(key=lambda r: (r.next_at, r.callback.id))
            return [r.callback for r in due[:limit]]

    def record_attempt(
        self,
        callback_id: int,
        *,
        ok: bool,
        status: int | None,
        error: str,
        next_at: datetime | None,
    ) -> None:
        with self._lock:
            self.attempts.append(Attempt(callback_id, ok, status, error, next_at))
            row = self.outbox[callback_id]
            row.callback = replace(row.callback, attempts=row.callback.attempts + 1)
            row.next_at = next_at

    def queue_depth(self, group: str | None = None) -> int:
        with self._lock:
            if group is None:
                return sum(self.queued.values())
            return self.queued.get(group, 0)

    def counts(self) -> dict[str, int]:
        with self._lock:
            found: dict[str, int] = {}
            for view in self.reports.values():
                found[view.status] = found.get(view.status, 0) + 1
            return found

    def recent(self, groups: Collection[str], limit: int = 50) -> list[ReportView]:
        with self._lock:
            mine = [v for v in self.reports.values() if v.group in groups]
            mine.sort(key=lambda v: v.accepted_at, reverse=True)
            return mine[:limit]

    def registers(self) -> list[RegisterView]:
        with self._lock:
            return list(self.register_views)


@dataclass
class FakePool:
    register_views: list[RegisterView] = field(default_factory=list)

    def views(self) -> list[RegisterView]:
        return list(self.register_views)


@dataclass
class FakeUsers:
    passwords: dict[str, str]
    user_groups: dict[str, list[str]]

    def verify(self, login: str, password: str) -> bool:
        return self.passwords.get(login) == password

    def groups(self, login: str) -> list[str]:
        return list(self.user_groups.get(login, []))


@dataclass
class FakeService:
    storage: FakeStorage
    pool: FakePool
    users: FakeUsers


def register_view(name: str, group: str = "demo", **changes: Any) -> RegisterView:
    view = RegisterView(
        name=name,
        group=group,
        url=f"emulated://{name}",
        protocol="shtrih",
        state="ok",
        detail="",
        fn_serial="9999078900001234",
        fn_expires=date(2027, 3, 1),
        ofd_unsent=0,
        ofd_first_unsent=None,
        paper=True,
        in_flight=0,
        done=0,
        updated_at=T0,
    )
    return replace(view, **changes)


def report_view(uuid: str, group: str = "demo", status: str = "done", **changes: Any) -> ReportView:
    result = None
    if status == "done":
        result = {
            "document_number": 17,
            "fiscal_sign": 1234567890,
            "fn_number": "9999078900001234",
            "shift_number": 3,
            "receipt_number": 5,
            "when": T0.isoformat(),
            "total": 11998,
            "operation": 1,
            "qr": "t=20260302T1000&s=119.98&fn=9999078900001234&i=17&fp=1234567890&n=1",
            "rnm": "0000000001002292",
            "fns_site": "www.nalog.gov.ru",
            "ofd_inn": "7704211201",
            "device_code": "KKT-1",
        }
    view = ReportView(
        uuid=uuid,
        api=5,
        group=group,
        operation="sell",
        external_id=f"order-{uuid[-4:]}",
        status=status,
        accepted_at=T0,
        done_at=T0 if status != "wait" else None,
        callback_url=None,
        result=result,
        error={"code": 1, "text": "paper out", "type": "driver"} if status == "fail" else None,
        register="KKT-1" if status != "wait" else None,
        ofd="waiting" if status == "done" else None,
    )
    return replace(view, **changes)
