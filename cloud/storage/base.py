"""The storage the cloud service runs on.  Every method is blocking: call it from threads (the
app: ``run_in_threadpool``)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from kkt.cloud.model import Job, Order, RegisterView, ReportView


class Accepted(NamedTuple):
    uuid: str
    created: bool
    same_body: bool
    status: str


@dataclass(frozen=True, slots=True)
class Callback:
    """One outbox row: the report to POST to a request's callback_url."""

    id: int
    uuid: str
    url: str
    body: bytes
    attempts: int  # the tries made so far


class Storage(Protocol):
    def accept(self, order: Order, *, idempotency_key: str | None) -> Accepted:
        """Durable (committed) before it returns; unique (group, external_id) and (group, key)."""
        ...

    def report(self, uuid: str) -> ReportView | None: ...
    def find(self, group: str, external_id: str) -> ReportView | None: ...
    def claim(self, register: str, group: str) -> Job | None:
        """queued -> assigned"""
        ...

    def assigned(self, register: str) -> list[Job]:
        """assigned, unfinished"""
        ...

    def complete(self, uuid: str, register: str, result: dict[str, Any]) -> None:
        """+ outbox row"""
        ...

    def fail(self, uuid: str, error: dict[str, Any]) -> None:
        """+ outbox row"""
        ...

    def release(self, uuid: str, register: str) -> None:
        """assigned -> queued"""
        ...

    def queue_depth(self, group: str | None = None) -> int: ...
    def counts(self) -> dict[str, int]:
        """by status"""
        ...

    def recent(self, groups: Collection[str], limit: int = 50) -> list[ReportView]: ...
    def set_ofd_acknowledged_below(self, fn_serial: str, number: int) -> None: ...
    def save_register(self, view: RegisterView) -> None: ...
    def registers(self) -> list[RegisterView]: ...

    # tokens (hash of the token stored, never the token)
    def add_token(self, token_hash: str, login: str, expires_at: datetime) -> None: ...
    def token_login(self, token_hash: str, now: datetime) -> str | None: ...

    # callback outbox
    def due_callbacks(self, now: datetime, limit: int) -> list[Callback]: ...
    def record_attempt(
        self,
        callback_id: int,
        *,
        ok: bool,
        status: int | None,
        error: str,
        next_at: datetime | None,
    ) -> None:
        """`next_at` None = give up / delivered."""
        ...

    def journal_path(self) -> str:
        """The driver's journal (kkt.connect(journal=...)): SQLite keeps it in the same file."""
        ...

    def wait_for_work(self, timeout: float) -> None:
        """Woken by accept/release."""
        ...

    def close(self) -> None: ...
