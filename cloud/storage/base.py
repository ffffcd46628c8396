"""The storage the cloud service runs on: the `Storage` protocol every layer codes against.

Every method is blocking: call it from threads (the app: ``run_in_threadpool``).

Statuses: a request is ``queued`` (accepted, no register yet), ``assigned`` (a register took it;
it may have begun), ``done`` or ``fail``.  Outward (ATOL, `ReportView.status`) the first two are
both ``wait``.

The callback outbox: `complete` and `fail` add one outbox row in the same transaction as the
state change, so a finished request can never lose its callback.  The row keeps the uuid and the
URL only; `due_callbacks` builds `Callback.body` when it is read, from the request's current
report (the ATOL report JSON: the storage is given a ``callback_body(view) -> bytes`` function by
the service, which uses ``kkt.cloud.atol.report_json``).  So a callback always carries what
``GET report`` would answer at that moment (the OFD state included), and storage stays free of
the ATOL layer.

Several instances (PostgreSQL only) share one database; each register is driven by one instance at
a time, the holder of its *lease* (`take_lease`; see `kkt.cloud.storage.postgres` for why lease
rows and not advisory locks).  SQLite serves one instance per state directory (its flock), so its
leases are always granted.

Fencing (PostgreSQL): every grant of a lease has an *epoch* (`take_lease` returns it).  The
writes a register's holder makes about its requests -- `complete`, `fail`, `hold`, `release`, and
the journal's ``begin`` and ``forget`` -- take that epoch as ``fence``: the statement lands only
while this instance still holds the register's lease *with that epoch* (database clock), checked
in the same statement; else it raises `LeaseLost` and changes nothing.  So a holder that stalled
(a pause, a slow network) past its lease cannot undo what the next holder did -- nor can its own
older grant, once it took the lease again.  ``fence=None`` writes unfenced (SQLite; tests).

Errors: `StorageError` names a state change the request's state does not allow (a bug in the
caller) or a store that cannot be opened; `StorageUnavailable` (a `StorageError`) says the database
cannot be reached *now* -- back off and retry, nothing is lost; `LeaseLost` (a `KktError`, an
`OutcomeUnknown`, raised inside the driver) says this instance no longer holds a register's lease
-- the next command was not sent, stop driving the register.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from kkt.cloud.model import Job, Order, RegisterView, ReportView

from kkt.errors import OutcomeUnknown
from kkt.journal import JournalStore


class StorageError(Exception):
    """A state change the request's state does not allow (a bug in the caller, named), or a store
    that cannot be opened."""


class StorageUnavailable(StorageError):
    """The database cannot be reached now (connection refused or lost, server restarting): retry
    later -- nothing was changed by the call that raised it, or it was committed whole."""


class LeaseLost(OutcomeUnknown):
    """This instance does not hold the register's lease (any more): the command about to be
    sent was NOT sent.  Another instance may be driving the register now: stop, send nothing.

    An `OutcomeUnknown` (so a `KktError`) on purpose: whatever catches it without knowing it --
    the driver in the middle of a receipt, a worker's generic handler -- takes the receipt's
    fate for open, never for a failure: its key stays pending and its request assigned, for the
    lease's next holder to settle from the FN.  A failure would free the key or fail the request
    while the receipt may be fiscal.  Raised by the journal's fenced ``begin``, nothing at all
    was sent."""


@dataclass(frozen=True, slots=True)
class InstanceView:
    """One service instance sharing the storage (`Storage.instances`)."""

    id: str  # f"{hostname}:{pid}:{random hex 6}"
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime  # its last heartbeat (database clock)


@dataclass(frozen=True, slots=True)
class LeaseView:
    """Who drives a register (`Storage.leases`): held while ``expires_at`` (database clock) is in
    the future; ``epoch`` grows by one with each new grant -- to another instance, or to the same
    one again after its lease ran out or was dropped (a renewal keeps it)."""

    register: str
    instance: str
    expires_at: datetime
    epoch: int


class Accepted(NamedTuple):
    """What `Storage.accept` did: a new request (``created``) or the one already known under the
    same external_id or Idempotency-Key (``same_body``: its fingerprint equals the new one's)."""

    uuid: str
    created: bool
    same_body: bool
    status: str  # "wait" | "done" | "fail", as ATOL names it


@dataclass(frozen=True, slots=True)
class Callback:
    """One outbox row: the report to POST to a request's callback_url."""

    id: int
    uuid: str
    url: str
    body: bytes  # the ATOL report JSON, built when the row is read (see the module docstring)
    attempts: int  # the tries made so far
    # Why ``body`` could not be built ('' = it was): the sender records a failed try with its
    # backoff and posts nothing -- one bad row must not hold up the others.
    error: str = ""


class Storage(Protocol):
    instance: str  # this process's id in the storage: f"{hostname}:{pid}:{random hex 6}"

    def accept(self, order: Order, *, idempotency_key: str | None) -> Accepted:
        """Durable (committed) before it returns; unique (group, external_id) and (group, key)."""
        ...

    def report(self, uuid: str) -> ReportView | None: ...

    def find(self, group: str, external_id: str) -> ReportView | None: ...

    def claim(self, register: str, group: str, *, skip_marked: bool = False) -> Job | None:
        """The group's oldest queued request, now assigned to ``register``; None when none.
        ``skip_marked``: only among requests without marked goods (`kkt.cloud.marking`)."""
        ...

    def assigned(self, register: str) -> list[Job]:
        """The register's assigned, unfinished requests (to settle before taking new ones)."""
        ...

    def complete(
        self, uuid: str, register: str, result: dict[str, Any], *, fence: int | None = None
    ) -> None:
        """assigned -> done, plus its outbox row (when it has a callback_url).  ``fence``: the
        epoch of this instance's lease on ``register`` (`LeaseLost` when not held with it)."""
        ...

    def fail(self, uuid: str, error: dict[str, Any], *, fence: int | None = None) -> None:
        """queued/assigned -> fail, plus its outbox row (when it has a callback_url).
        ``fence``: as `complete`, on the register the request is assigned to (a queued one
        needs none)."""
        ...

    def release(self, uuid: str, register: str, *, fence: int | None = None) -> None:
        """assigned -> queued: another register of the group may take it.  ``fence``: as
        `complete`; a request no longer assigned to ``register`` is left as it is."""
        ...

    def hold(
        self, uuid: str, register: str, error: dict[str, Any], *, fence: int | None = None
    ) -> None:
        """Stays assigned to ``register`` (status still wait) with ``error`` in its report: the
        operator must decide (its key began in another FN, its register left the pool ...).
        `complete`, `fail` and `release` clear it.  ``fence``: as `complete`."""
        ...

    def assigned_registers(self) -> list[str]:
        """The names of the registers that have assigned, unfinished requests."""
        ...

    def save_register_details(self, name: str, details: dict[str, str]) -> None:
        """What a done request's result needs of its register (``rnm``, ``fns_site``,
        ``ofd_inn``): kept so a receipt the journal knows is done can be completed while its
        register is offline or gone."""
        ...

    def register_details(self, name: str) -> dict[str, str] | None: ...

    def queue_depth(self, group: str | None = None) -> int:
        """Requests not finished (queued or assigned), of one group or of all."""
        ...

    def counts(self) -> dict[str, int]:
        """Requests by ATOL status: always the keys "wait", "done" and "fail"."""
        ...

    def recent(self, groups: Collection[str], limit: int = 50) -> list[ReportView]: ...

    def set_ofd_acknowledged_below(self, fn_serial: str, number: int) -> None:
        """The OFD confirmed every document of that FN numbered below ``number``."""
        ...

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
        """Log one delivery attempt; ``ok`` = delivered; else ``next_at`` None = give up."""
        ...

    def journal_path(self) -> str:
        """The driver's journal file (kkt.connect(journal=...)): SQLite keeps it in the same file.
        PostgreSQL has no file and raises `StorageError`: use `journal`."""
        ...

    def journal(self, register: str, fence: int | None = None) -> JournalStore:
        """The driver's journal for ``register`` (``register.journal = ...``), fenced by its lease
        on PostgreSQL: its ``begin`` (and ``forget``) raise `LeaseLost` once this instance no
        longer holds the lease -- with ``fence``, the grant of that epoch (a later grant of the
        same instance does not do)."""
        ...

    # -- instances and register leases ----------------------------------------------------------

    def take_lease(self, register: str, ttl: float) -> int:
        """Take the register's lease, or renew it when this instance holds it: the epoch of the
        grant now held (>= 1, true), held until now()+ttl (database clock); 0 (false): another
        instance holds an unexpired lease.  A renewal keeps the epoch; a new grant (from
        another instance, or this one's again after it expired or was dropped) is the next."""
        ...

    def confirm_lease(self, register: str, epoch: int, margin: float = 0.0) -> bool:
        """This instance holds ``register``'s lease now (database clock), the grant ``epoch``,
        and will for ``margin`` seconds more: one cheap query, for a check before a command that
        moves money (the margin covers the frame's time on the wire: `lease.user_timeout`)."""
        ...

    def drop_lease(self, register: str) -> None:
        """Give the lease up (clean shutdown, register removed): another may take it at once."""
        ...

    def heartbeat(self) -> None:
        """This instance's seen_at = now() (database clock)."""
        ...

    def instances(self) -> list[InstanceView]: ...

    def leases(self) -> list[LeaseView]: ...

    def callback_secret(self) -> bytes | None:
        """PostgreSQL: the HMAC secret every instance signs callbacks with (32 random bytes,
        created once); SQLite: None (the service keeps its key file)."""
        ...

    def wait_for_work(self, timeout: float) -> None:
        """Block up to ``timeout`` seconds; woken by accept/release."""
        ...

    def close(self) -> None: ...
