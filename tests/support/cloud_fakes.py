"""An in-memory `Storage` for the pool's tests (the SQLite one is tested on its own), with what
the tests look at: every request's end, which register took it, the releases, the OFD marks.

The driver's journal still needs a file: `journal_path` is a SQLite file in the test's folder.
``pin(name)`` lets only that register claim (the rest find nothing) -- how a test decides who
takes the next request without racing the workers.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid as uuids
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kkt.cloud.marking import is_marked
from kkt.cloud.model import Job, Order, RegisterView, ReportView
from kkt.cloud.storage.base import Accepted, Callback


@dataclass
class Record:
    job: Job
    status: str = "queued"  # queued | assigned | done | fail
    register: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    claims: list[str] = field(default_factory=list)  # every register that claimed it, in order
    releases: list[str] = field(default_factory=list)
    completions: int = 0  # complete() calls: exactly one, or a bug


class FakeStorage:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.records: dict[str, Record] = {}
        self.order: list[str] = []  # queue order
        self.saved: dict[str, list[RegisterView]] = {}
        self.acknowledged: dict[str, int] = {}
        self.details: dict[str, dict[str, str]] = {}
        self.pinned: str | None = None
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._changed = threading.Condition(threading.Lock())

    # -- what tests do ---------------------------------------------------------------------------

    def add(
        self, body: dict[str, Any], *, operation: str = "sell", group: str = "demo", api: int = 5
    ) -> str:
        uuid = str(uuids.uuid4())
        job = Job(uuid, api, group, operation, f"ext-{len(self.order)}", body, 0)
        with self._work:
            self.records[uuid] = Record(job)
            self.order.append(uuid)
            self._work.notify_all()
        return uuid

    def assign(self, uuid: str, register: str) -> None:
        """As if ``register`` claimed it and the service then died."""
        with self._lock:
            record = self.records[uuid]
            record.status, record.register = "assigned", register
            record.claims.append(register)

    def pin(self, register: str | None) -> None:
        with self._work:
            self.pinned = register
            self._work.notify_all()

    def wait_until(self, what: Any, timeout: float = 60.0) -> None:
        """Until ``what()`` is true (checked on every change); fails the test after ``timeout``
        (a bound on a hang, not a measure of speed)."""
        with self._changed:
            if not self._changed.wait_for(what, timeout):
                raise AssertionError(f"not reached in {timeout:.0f} s: {what}")

    def ended(self, *uuids: str) -> bool:
        return all(self.records[uuid].status in ("done", "fail") for uuid in uuids)

    def view(self, name: str) -> RegisterView | None:
        views = self.saved.get(name)
        return views[-1] if views else None

    def _touch(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # -- the Storage protocol --------------------------------------------------------------------

    def accept(self, order: Order, *, idempotency_key: str | None) -> Accepted:
        raise NotImplementedError

    def report(self, uuid: str) -> ReportView | None:
        raise NotImplementedError

    def find(self, group: str, external_id: str) -> ReportView | None:
        raise NotImplementedError

    def claim(self, register: str, group: str, *, skip_marked: bool = False) -> Job | None:
        with self._lock:
            if self.pinned is not None and self.pinned != register:
                return None
            for uuid in self.order:
                record = self.records[uuid]
                if skip_marked and is_marked(record.job.body):
                    continue
                if record.status == "queued" and record.job.group == group:
                    record.status, record.register = "assigned", register
                    record.claims.append(register)
                    return record.job
        return None

    def assigned(self, register: str) -> list[Job]:
        with self._lock:
            return [
                self.records[uuid].job
                for uuid in self.order
                if self.records[uuid].status == "assigned"
                and self.records[uuid].register == register
            ]

    def complete(self, uuid: str, register: str, result: dict[str, Any]) -> None:
        with self._lock:
            record = self.records[uuid]
            assert record.status == "assigned" and record.register == register, (record, register)
            record.status, record.result, record.error = "done", result, None
            record.completions += 1
        self._touch()

    def fail(self, uuid: str, error: dict[str, Any]) -> None:
        with self._lock:
            record = self.records[uuid]
            assert record.status == "assigned", record
            record.status, record.error = "fail", error
        self._touch()

    def release(self, uuid: str, register: str) -> None:
        with self._work:
            record = self.records[uuid]
            assert record.status == "assigned" and record.register == register, (record, register)
            record.status, record.register = "queued", None
            record.releases.append(register)
            self._work.notify_all()
        self._touch()

    def hold(self, uuid: str, register: str, error: dict[str, Any]) -> None:
        with self._lock:
            record = self.records[uuid]
            assert record.status == "assigned" and record.register == register, (record, register)
            record.error = error
        self._touch()

    def assigned_registers(self) -> list[str]:
        with self._lock:
            return sorted(
                {r.register for r in self.records.values() if r.status == "assigned" and r.register}
            )

    def save_register_details(self, name: str, details: dict[str, str]) -> None:
        with self._lock:
            self.details[name] = dict(details)

    def register_details(self, name: str) -> dict[str, str] | None:
        with self._lock:
            return self.details.get(name)

    def queue_depth(self, group: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for record in self.records.values()
                if record.status == "queued" and group in (None, record.job.group)
            )

    def counts(self) -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = {}
            for record in self.records.values():
                counts[record.status] = counts.get(record.status, 0) + 1
            return counts

    def recent(self, groups: Collection[str], limit: int = 50) -> list[ReportView]:
        raise NotImplementedError

    def set_ofd_acknowledged_below(self, fn_serial: str, number: int) -> None:
        with self._lock:
            self.acknowledged[fn_serial] = number
        self._touch()

    def save_register(self, view: RegisterView) -> None:
        with self._lock:
            self.saved.setdefault(view.name, []).append(view)
        self._touch()

    def registers(self) -> list[RegisterView]:
        with self._lock:
            return [views[-1] for views in self.saved.values()]

    def add_token(self, token_hash: str, login: str, expires_at: dt.datetime) -> None:
        raise NotImplementedError

    def token_login(self, token_hash: str, now: dt.datetime) -> str | None:
        raise NotImplementedError

    def due_callbacks(self, now: dt.datetime, limit: int) -> list[Callback]:
        raise NotImplementedError

    def record_attempt(
        self,
        callback_id: int,
        *,
        ok: bool,
        status: int | None,
        error: str,
        next_at: dt.datetime | None,
    ) -> None:
        raise NotImplementedError

    def journal_path(self) -> str:
        return str(self.folder / "journal.sqlite")

    def wait_for_work(self, timeout: float) -> None:
        with self._work:
            if self.pinned is None and any(r.status == "queued" for r in self.records.values()):
                return  # added before the worker came to wait
            self._work.wait(timeout)

    def close(self) -> None:
        pass
