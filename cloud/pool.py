"""The register pool: one worker thread per register takes the group's queued requests and
fiscalizes them, each exactly once, through the driver's journal.

A worker is its register's only writer (a register has one open receipt and one document cursor):
it waits for its register's lease (`kkt.cloud.lease`: with several instances on one PostgreSQL,
one instance at a time drives a register), connects (``kkt.connect(url)`` with
``storage.journal(name, fence=epoch)`` as the driver's journal, and a `LeaseGuard` around the
link: no command frame goes out once the lease is not held, and none that may move money before
the database confirmed the grant), reads the registration (INN, RNM, FFD), the FN and the
status, opens the shift, and then loops:

1. **settle** what storage says is assigned to it (``storage.assigned(name)``): each is sold again
   with ``key = uuid`` -- the journal replays a receipt done before a crash, the FN's archive
   settles one left pending, and one never begun is simply sold now;
2. every few seconds, between receipts, **watch the OFD**: ``register.ofd_status()`` tells which
   of the FN's documents the OFD acknowledged (``storage.set_ofd_acknowledged_below``);
3. **claim** the oldest queued request of its group and fiscalize it (``key = uuid``), then
   ``storage.complete`` it with the fiscal data and the register's details; when there is none,
   ``storage.wait_for_work``.

Failures are classified by whose fault they are:

* **the request's** (`ReceiptRejected`, a refusal of the receipt's content, a company INN that is
  not the register's): ``storage.fail`` with an ATOL-style error -- ``type "agent"`` code 1 (invalid
  document) or 2 (the register is registered with another INN), or ``type "driver"`` with the
  register's own refusal code **negated** (ATOL's driver errors are negative numbers; ours carry the
  vendor's code, the text names the vendor);
* **the register's** (`PaperOut`, `WrongMode`, `WrongPassword`, `FnExhausted`, `OfdBlocked`, a lost
  link, a refusal the vendor marks "retry may help"): the request goes back to the queue
  (``storage.release``) for the group's other registers, the register turns ``failing``
  (``offline`` when the link itself is gone) and is probed every `PROBE_INTERVAL` (its status)
  until healthy; every request assigned to it that was never begun (no journal entry) is released
  too;
* **nobody knows** (`OutcomeUnknown`): the request stays assigned, the register turns
  ``settling``, and the same request is tried again on this register only -- a receipt begun on a
  register is never sold anywhere else, since it may be fiscal in that register's FN;
* **fiscal, but not as sent** (`DamagedClosing`: the closing command was damaged on a serial line
  past its checksum, found by the driver's settling or, with the register's ``verify``, by reading
  each receipt back): the request is **held** for the operator -- status ``wait``, its report's
  error naming the document and what differs -- never sold again and never reported done (the
  journal keeps the verdict, so a restart holds it again); the register goes on with the others;
* `ShiftExpired`: whatever is assigned is settled first, then the shift is closed and reopened and
  the request sold in the new shift.

Before any request is released the journal is asked: a key with an entry (pending or done) has
begun on this register and stays here, whatever exception said.

**The lease lost** (not renewed in time, taken by another instance): the worker drops its
connection at once -- releasing, failing or holding nothing, since the register's next holder now
settles what is assigned to it -- and waits to take the lease again; once it does, it connects
afresh and settles first, as after a crash.  The database has the last word: every write about the
register's requests (``complete``, ``fail``, ``hold``, ``release``) and the journal made per grant
(``storage.journal(name, fence=epoch)``) carry the epoch of the worker's grant as ``fence``, and
land only while that grant holds; a `LeaseLost` from any of them is the lease lost, as above.  The
register's TCP sockets get a ``TCP_USER_TIMEOUT`` below half the lease's TTL
(`kkt.cloud.lease.user_timeout`): a frame is delivered before the lease can run out, or dropped.

**Storage unreachable** (`StorageUnavailable`): the worker logs it once, waits and tries again;
no request is failed or released because of it.

Latency: ``pool.latencies(name)`` lists the last `LATENCY_WINDOW` fiscalizations' seconds (oldest
first), and ``on_latency(name, seconds)`` is called after each one (for a Prometheus histogram).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import kkt
from kkt.errors import BadAnswer, ProtocolError
from kkt.journal import Entry, JournalStore
from kkt.results import DAMAGED, FiscalResult, FnInfo, Registration, Status
from kkt.settle import settle_pending
from kkt.transport import tcp

from . import marking
from .lease import (
    LEASE_TTL,
    CommandLeaseLost,
    Lease,
    LeaseGuard,
    LeaseKeeper,
    Outage,
    user_timeout,
)
from .model import Job, Order, RegisterView
from .prepared import Prepared
from .storage.base import LeaseLost, Storage, StorageUnavailable

log = logging.getLogger(__name__)

PROBE_INTERVAL = 1.0  # seconds between two health probes of a failing register (doubling to 30)
MAX_PROBE_INTERVAL = 30.0
OFD_INTERVAL = 5.0  # seconds between two looks at the FN's OFD queue
IDLE_WAIT = 0.5  # the longest wait for work: `stop` is noticed within it
PUBLISH_INTERVAL = 1.0  # counters (done, OFD backlog) are saved at most this often
LATENCY_WINDOW = 1024
STORAGE_RETRY = 1.0  # seconds between two tries of a worker while storage is unreachable
NOT_FISCALIZED_RETRIES = 3  # a receipt cancelled by a bad line is sold again this often here
FNS_SITE = "www.nalog.gov.ru"  # tag 1060, when the registration report does not carry it

# A poison request: one whose attempts keep bringing registers down (a receipt that hangs the
# firmware, a refusal marked "retry may help" that never does).  It fails -- never while the
# journal has an entry for it -- once this many registers gave it back, or one cause did this
# many times; or once claimed `POISON_CLAIMS` times (the count storage keeps over restarts).
POISON_REGISTERS = 3
POISON_RELEASES = 5
POISON_CLAIMS = 10
# ATOL's driver errors are negative; ours are the register's code negated (`_driver_error`),
# and two codes no register uses: -1 a poison request, -2 a request held for the operator.
POISON_CODE = -1
HELD_CODE = -2
FN_FISCAL_PHASE = 3  # the FN's life phase "fiscal mode": 1 before it, 7 and 15 after (closed)

# `kkt.Journal` migrates its table when it opens (ALTER TABLE ... ADD COLUMN), which two openers
# at once can both try ("duplicate column name"): the workers open theirs one at a time.
_JOURNAL_OPENING = threading.Lock()


# An ATOL agent error (A4 Table 7): 1 the document is invalid, 2 the register is registered with
# another INN or address.
AGENT_INVALID = 1
AGENT_WRONG_INN = 2


@dataclass(frozen=True, slots=True)
class RegisterSpec:
    """One register of the pool: its name (the report's ``device_code``), the group it serves,
    its URL (``socket://127.0.0.1:7778``, ``/dev/ttyUSB0`` ...) and protocol ("shtrih", "atol");
    ``verify``: read each receipt back after the sale (`kkt.verify`)."""

    name: str
    group: str
    url: str
    protocol: str = "shtrih"
    verify: bool = False


class ReceiptFault(Exception):
    """The request cannot be fiscalized as it is (whatever register took it): it fails with
    ``error`` (``{"code", "text", "type"}``, ATOL's report error)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["text"])
        self.error = error


@dataclass(frozen=True, slots=True)
class Work:
    """What a job asks of a register: ``run(register, key)`` fiscalizes it under the idempotency
    key; ``inn`` is the company INN it names ('' = not checked)."""

    inn: str
    run: Callable[[kkt.Register, str], FiscalResult]


WorkOf = Callable[[Job], Work]


def atol_work(job: Job, made: object | None = None) -> Work:
    """A job's ATOL Online body as the driver's call (`kkt.cloud.atol.convert`); raises
    `ReceiptFault` when it does not convert.

    The body was validated when it was accepted; ``order_receipt``/``order_correction``
    validate and convert it once more here (a body stored by an older version is still
    checked), but not ``to_order`` as well: that would validate and convert it a second time
    over, a third of a worker's CPU per receipt.

    ``made``: the conversion done when the request was accepted in this process (`Prepared`),
    used instead of converting again when it is of the job's kind."""
    # Imported when first needed: the ATOL layer is a sibling module of its own.
    convert: Any = importlib.import_module("kkt.cloud.atol.convert")
    correction = "correction" in job.operation
    order = Order(
        api=job.api,
        group=job.group,
        operation=job.operation,
        external_id=job.external_id,
        body=job.body,  # storage gives the numbers back as Decimal, exactly as received
        fingerprint="",  # only accept compares fingerprints; the conversion never reads it
        callback_url=None,
        inn=_company_inn(job.body, "correction" if correction else "receipt"),
    )
    try:
        if correction:
            args = (
                made
                if isinstance(made, convert.CorrectionArgs)
                else convert.order_correction(order)
            )

            def correct(register: kkt.Register, key: str) -> FiscalResult:
                # `payments` and `key` are the driver's newer keywords of `correction`.
                correction: Any = register.correction
                result: FiscalResult = correction(
                    args.operation, args.total, basis=args.basis, payments=args.payments, key=key
                )
                return result

            return Work(order.inn, correct)
        receipt = made if isinstance(made, kkt.Receipt) else convert.order_receipt(order)
    except Exception as error:
        raise ReceiptFault(conversion_error(error)) from error

    # v5's ism_optional: true = sell even when ОИСМ does not answer (2106 then says so).
    offline_ok = job.body.get("ism_optional") is True and any(i.marked for i in receipt.items)

    def sell(register: kkt.Register, key: str) -> FiscalResult:
        if offline_ok:
            return register.receipt(receipt, key=key, allow_offline_marks=True)
        return register.receipt(receipt, key=key)

    return Work(order.inn, sell)


def prepared_work(prepared: Prepared) -> WorkOf:
    """`atol_work` that first takes the job's conversion from ``prepared`` (made when this
    process accepted it), else converts the stored body."""

    def work_of(job: Job) -> Work:
        return atol_work(job, prepared.take(job.uuid))

    return work_of


def _company_inn(body: dict[str, Any], document: str) -> str:
    """``body[document].company.inn`` ('' where the body has none: the conversion, which
    validates the body, then names what is missing)."""
    part = body.get(document)
    company = part.get("company") if isinstance(part, dict) else None
    inn = company.get("inn") if isinstance(company, dict) else None
    return inn if isinstance(inn, str) else ""


def conversion_error(error: Exception) -> dict[str, Any]:
    """The report error of a body that did not become a driver call: an `ApiError` says its own
    code and type; anything else is an invalid document (agent error 1)."""
    code, text, kind = (getattr(error, name, None) for name in ("code", "text", "type"))
    if isinstance(code, int) and isinstance(text, str) and isinstance(kind, str):
        return {"code": code, "text": text, "type": kind}
    return {"code": AGENT_INVALID, "text": f"invalid document: {error}", "type": "agent"}


class RegisterPool:
    """Workers for ``specs`` over ``storage``; `start` them, `stop` them (each stops before its
    next command; the threads are joined).

    ``on_change(view)`` is called (from a worker's thread) whenever a register's view changes;
    ``on_latency(name, seconds)`` after each fiscalization.  ``work_of`` turns a job into the
    driver's call (default: ATOL Online bodies, `atol_work`).  ``probe_interval`` and
    ``ofd_interval`` are seconds (tests shorten them).  ``lease_ttl``: how long a register's lease
    lasts in storage after each renew (`kkt.cloud.lease`); ``keeper`` replaces the pool's own
    `LeaseKeeper` (tests).
    """

    def __init__(
        self,
        storage: Storage,
        specs: Sequence[RegisterSpec],
        *,
        on_change: Callable[[RegisterView], None] | None = None,
        on_latency: Callable[[str, float], None] | None = None,
        work_of: WorkOf = atol_work,
        probe_interval: float = PROBE_INTERVAL,
        ofd_interval: float = OFD_INTERVAL,
        lease_ttl: float = LEASE_TTL,
        keeper: LeaseKeeper | None = None,
    ) -> None:
        names = [spec.name for spec in specs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(
                f"register names must be unique in a pool: {', '.join(duplicates)} repeat; "
                "name each register once"
            )
        self.storage = storage
        self.specs = list(specs)
        self._stop = threading.Event()
        self.keeper = keeper if keeper is not None else LeaseKeeper(storage, lease_ttl)
        self._workers = [
            _Worker(
                self,
                spec,
                on_change=on_change,
                on_latency=on_latency,
                work_of=work_of,
                probe_interval=probe_interval,
                ofd_interval=ofd_interval,
            )
            for spec in specs
        ]
        self._started = False
        self._releases: dict[str, list[tuple[str, str]]] = {}  # uuid -> (register, cause)
        self._releases_lock = threading.Lock()
        self._orphans: list[RegisterView] = []

    def note_release(self, uuid: str, register: str, cause: str) -> list[tuple[str, str]]:
        """Record that ``register`` gave ``uuid`` back for ``cause``; every such give-back of
        it so far (this process's), oldest first."""
        with self._releases_lock:
            history = self._releases.setdefault(uuid, [])
            history.append((register, cause))
            return list(history)

    def start(self) -> None:
        if self._started:
            raise RuntimeError("this pool was started already; make a new one")
        self._started = True
        with _SERIALS_LOCK:
            _RUNNING[id(self)] = frozenset(spec.name for spec in self.specs)
        self.keeper.start()
        try:
            self._settle_orphans()
        except StorageUnavailable as error:
            log.warning("requests of registers gone from the pool: not settled now (%s)", error)
        for worker in self._workers:
            worker.publish(force=True)
            worker.thread.start()

    def stop(self) -> None:
        """Stop every worker before its next command (a receipt under way is finished) and join
        their threads; the registers' connections are closed."""
        self._stop.set()
        for worker in self._workers:
            if worker.thread.is_alive() or worker.thread.ident is not None:
                worker.thread.join()
        self.keeper.stop()  # after the workers: their leases are given up once they stopped
        with _SERIALS_LOCK:
            _RUNNING.pop(id(self), None)

    def __enter__(self) -> RegisterPool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def views(self) -> list[RegisterView]:
        """The workers' views, then one (``offline``) per register gone from the pool that
        still holds requests which may be fiscal in its FN."""
        return [worker.view for worker in self._workers] + list(self._orphans)

    def _settle_orphans(self) -> None:
        """Requests assigned to registers no longer in the pool (renamed, removed): never begun
        (no journal entry) -> back to the queue; done in the journal -> completed from it;
        pending -> held (the report says why) and the register shown offline: only it can say.

        With several instances a register this one does not know may be another's: its requests
        are settled here only under its lease (taken for the while, then given up), so never
        while another instance drives it."""
        with _SERIALS_LOCK:
            known = set().union(*_RUNNING.values())
        gone = [name for name in self.storage.assigned_registers() if name not in known]
        for name in gone:
            # A lease of its own, outside the keeper (nobody renews it): held locally until
            # half its TTL after the take was sent, and every write is fenced by its epoch.
            lease = Lease(name, self.keeper.ttl, clock=self.keeper.clock)
            sent_at = lease.clock()
            epoch = self.storage.take_lease(name, self.keeper.ttl)
            if not epoch:
                log.info("register %s: not in this pool, leased by another instance", name)
                continue
            lease.granted(sent_at, int(epoch))
            try:
                with _JOURNAL_OPENING:
                    journal = self.storage.journal(name, fence=lease.epoch)
                try:
                    self._settle_orphan(name, journal, lease)
                finally:
                    journal.close()
            except LeaseLost as lost:
                log.warning("register %s: its requests are not settled now (%s)", name, lost)
            finally:
                self.storage.drop_lease(name)

    def _settle_orphan(self, name: str, journal: JournalStore, lease: Lease) -> None:
        held: list[Job] = []
        generation, fence = lease.grant()
        for job in self.storage.assigned(name):
            entry = journal.get(job.uuid)
            lease.check(generation)  # its expiry, before each write (fenced as well)
            if entry is None:
                self.storage.release(job.uuid, name, fence=fence)
                log.info("register %s is gone: %s released to the group", name, job.uuid)
            elif entry.state == "done" and entry.result and entry.result.get(DAMAGED):
                why = _damaged_text(str(entry.result[DAMAGED]))
                self.storage.hold(
                    job.uuid, name, {"code": HELD_CODE, "text": why, "type": "driver"}, fence=fence
                )
                log.error("register %s is gone: %s %s", name, job.uuid, why)
            elif entry.state == "done" and entry.result:
                data = dict(entry.result)
                data.pop("replayed", None)
                data.update(_saved_details(self.storage, name), device_code=name)
                self.storage.complete(job.uuid, name, data, fence=fence)
                log.info("register %s is gone: %s completed from the journal", name, job.uuid)
            else:
                held.append(job)
                why = (
                    f"held: it began on register {name}, which is no longer in the pool, and may "
                    f"be fiscal in FN {entry.fn or '?'} (after document {entry.before}); add the "
                    "register back under that name to settle it"
                )
                self.storage.hold(
                    job.uuid, name, {"code": HELD_CODE, "text": why, "type": "driver"}, fence=fence
                )
                log.error("register %s is gone: %s %s", name, job.uuid, why)
        if held:
            view = RegisterView(
                name=name,
                group=held[0].group,
                url="",
                protocol="",
                state="offline",
                detail=(
                    f"not in the pool any more, and {len(held)} request(s) may be fiscal in its "
                    f"FN (first {held[0].uuid}): add it back under this name to settle them"
                ),
                fn_serial="",
                fn_expires=None,
                ofd_unsent=0,
                ofd_first_unsent=None,
                paper=None,
                in_flight=len(held),
                done=0,
                updated_at=dt.datetime.now(dt.UTC),
            )
            self._orphans.append(view)
            self.storage.save_register(view)

    def latencies(self, name: str) -> list[float]:
        """Seconds per fiscalization of register ``name``: the last `LATENCY_WINDOW`, oldest
        first; raises `KeyError` for a name not in the pool."""
        for worker in self._workers:
            if worker.spec.name == name:
                return list(worker.latencies)
        raise KeyError(name)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def pause(self, seconds: float) -> None:
        """Wait ``seconds`` unless the pool is stopping."""
        self._stop.wait(seconds)


# FN serial -> (pool, register name) of the worker writing to it: one register, one writer,
# process-wide (two pools of one service, or one register listed under two names).
_SERIALS: dict[str, tuple[int, str]] = {}
_SERIALS_LOCK = threading.Lock()
# Register names of the pools running in this process: a name another running pool serves is
# not an orphan of this one (`RegisterPool._settle_orphans`).
_RUNNING: dict[int, frozenset[str]] = {}


def _own_serial(serial: str, pool: RegisterPool, name: str) -> str | None:
    """Claim FN ``serial`` for ``name`` of ``pool``; the other writer's name when it is taken."""
    with _SERIALS_LOCK:
        owner = _SERIALS.get(serial)
        if owner is not None and owner != (id(pool), name):
            return owner[1]
        for known, held in list(_SERIALS.items()):
            if held == (id(pool), name):
                del _SERIALS[known]  # its FN was replaced: the old serial is free
        _SERIALS[serial] = (id(pool), name)
        return None


def _disown_serials(pool: RegisterPool, name: str) -> None:
    with _SERIALS_LOCK:
        for known, held in list(_SERIALS.items()):
            if held == (id(pool), name):
                del _SERIALS[known]


def _fn_fault(fn: FnInfo) -> str | None:
    """Why this FN cannot take receipts (the register's fault), or None."""
    if fn.phase is not None and fn.phase != FN_FISCAL_PHASE:
        return (
            f"the FN {fn.serial} is not in fiscal mode (phase {fn.phase}): its fiscal mode is "
            "closed or it is exhausted -- replace the FN and re-register"
        )
    if fn.expires is not None and fn.expires < dt.date.today():
        return f"the FN {fn.serial} expired on {fn.expires.isoformat()}: replace it and re-register"
    return None


def _saved_details(storage: Storage, name: str) -> dict[str, str]:
    """The register details saved at its last connect; blank ones (and a warning) if never."""
    saved = storage.register_details(name)
    if saved is None:
        log.warning(
            "register %s: no saved RNM / OFD INN: a result from the journal lacks them", name
        )
        saved = {}
    return {
        "rnm": saved.get("rnm", ""),
        "fns_site": saved.get("fns_site", FNS_SITE),
        "ofd_inn": saved.get("ofd_inn", ""),
    }


def _damaged_text(verdict: str) -> str:
    """Why a request whose receipt was damaged on the line is held: the driver's verdict (which
    names the document and what differs) and what the operator does about it."""
    return (
        f"its receipt was damaged on the line: {verdict}.  The request stays here (status "
        "wait): never sold again; make the correction, then tell the shop"
    )


def _poison_error(count: int, what: str, cause: str) -> dict[str, Any]:
    return {
        "code": POISON_CODE,
        "text": (
            f"the request was given back {count} times ({what}) and brought its registers down: "
            f"{cause}; it is failed rather than tried forever -- check its content and send it "
            "again with a new external_id"
        ),
        "type": "driver",
    }


# -- the worker -----------------------------------------------------------------------------------


class _RegisterDown(Exception):
    """The register, not the request, is at fault: ``detail`` says what, in the operator's
    words; ``paper`` when it is the printer (a probe finishes the interrupted printout)."""

    def __init__(self, detail: str, *, paper: bool = False, link: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.paper = paper
        self.link = link  # no link at all: the register is "offline"


class _Unknown(Exception):
    """A request's fate is open (`OutcomeUnknown`): it stays assigned here, to be settled."""


class _ShiftOver(Exception):
    """The shift is over 24 hours old: settle, close, reopen."""


# Refusals that say the register cannot sell now, whatever the receipt: the request goes elsewhere.
_REGISTER_REFUSALS = (
    kkt.PaperOut,
    kkt.WrongMode,
    kkt.WrongPassword,
    kkt.FnExhausted,
    kkt.OfdBlocked,
)


class _Worker:
    def __init__(
        self,
        pool: RegisterPool,
        spec: RegisterSpec,
        *,
        on_change: Callable[[RegisterView], None] | None,
        on_latency: Callable[[str, float], None] | None,
        work_of: WorkOf,
        probe_interval: float,
        ofd_interval: float,
    ) -> None:
        self.pool = pool
        self.storage = pool.storage
        self.spec = spec
        self.name = spec.name
        self.on_change = on_change
        self.on_latency = on_latency
        self.work_of = work_of
        self.probe_interval = probe_interval
        self.ofd_interval = ofd_interval
        self.thread = threading.Thread(target=self._run, name=f"kkt-cloud-{spec.name}")
        self.lease: Lease = pool.keeper.lease(spec.name)
        self._grant = 0  # the lease's grant the connection was made under (`Lease.generation`)
        self._epoch = 0  # that grant's epoch in the database: the ``fence`` of every write
        self._outage = Outage(f"register {spec.name}")
        self.latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_WINDOW)
        self.register: kkt.Register | None = None
        self.registration: Registration | None = None
        self.fns_site = FNS_SITE
        self.ofd_inn = ""
        self._journal: JournalStore | None = None  # register offline: which keys began here
        self._journal_epoch = 0  # the grant `_journal` was opened under
        # uuid -> why it is held here for the operator (its key began in another FN ...): never
        # sold nor released by this worker; its report carries the reason (`Storage.hold`).
        self._held: dict[str, str] = {}
        self._tries: dict[str, int] = {}  # uuid -> receipts cancelled by a bad line
        self._next_ofd = 0.0
        self._acknowledged: tuple[str, int] | None = None  # what storage was last told
        self._paper_fault = False
        self._failures = 0  # consecutive failed probes or faults: the probe interval doubles
        # Marked goods (`kkt.cloud.marking`): a register that cannot sell them leaves them to
        # the group's registers that can, when there are any.
        self._sells_marked = marking.sells_marked(spec.protocol)
        self._skip_marked = not self._sells_marked and any(
            other.group == spec.group and marking.sells_marked(other.protocol)
            for other in pool.specs
        )
        now = dt.datetime.now(dt.UTC)
        self.view = RegisterView(
            name=spec.name,
            group=spec.group,
            url=spec.url,
            protocol=spec.protocol,
            state="offline",
            detail="connecting",
            fn_serial="",
            fn_expires=None,
            ofd_unsent=0,
            ofd_first_unsent=None,
            paper=None,
            in_flight=0,
            done=0,
            updated_at=now,
        )
        self._published: RegisterView | None = None
        self._published_at = 0.0

    # -- the view ---------------------------------------------------------------------------------

    def update(self, **changes: Any) -> None:
        """Change the view; a change of state or detail is published at once, counters within
        `PUBLISH_INTERVAL`."""
        self.view = replace(self.view, **changes, updated_at=dt.datetime.now(dt.UTC))
        self.publish(force="state" in changes or "detail" in changes)

    def publish(self, *, force: bool = False) -> None:
        view, last = self.view, self._published
        if last is not None and replace(last, updated_at=view.updated_at) == view:
            return
        if not force and time.monotonic() - self._published_at < PUBLISH_INTERVAL:
            return
        self._published, self._published_at = view, time.monotonic()
        # Storage keeps one view per register, shared by the instances: only the lease's holder
        # writes it (a waiting instance's "not leased" would hide the holder's state).
        if self.lease.held():
            try:
                self.storage.save_register(view)
            except StorageUnavailable as error:
                self._outage.failed(error)
            except Exception:
                log.exception("register %s: saving its state failed", self.name)
        if self.on_change is not None:
            try:
                self.on_change(view)
            except Exception:
                log.exception("register %s: on_change failed", self.name)

    # -- the loop ---------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            # Every TCP socket this thread opens to the register (reopened ones too): a frame
            # is delivered before the lease can run out in the database, or the link is cut.
            with tcp.user_timeout(user_timeout(self.lease.ttl)):
                while not self.pool.stopping:
                    self._safely(self._step)
        finally:
            self._disconnect()
            if self._journal is not None:
                self._journal.close()
            self.update(state="offline", detail="stopped", in_flight=0)

    def _safely(self, action: Callable[[], None], *, renewing: bool = False) -> None:
        """Run one step of the loop; whatever it raises is handled here (the thread lives on)."""
        try:
            action()
        except LeaseLost as lost:
            if self._grant:
                self.lease.lost(self._grant)  # the database may say so before the local clock
            self._lease_gone(str(lost))
            return
        except StorageUnavailable as error:
            self._outage.failed(error)
            self.pool.pause(STORAGE_RETRY)
            return
        except _RegisterDown as down:
            self._down(down)
        except _Unknown:
            self.pool.pause(self._probe_delay())
        except _ShiftOver:
            if renewing:
                self._down(_RegisterDown("the shift is over 24 hours old and did not reopen"))
            else:
                self._safely(self._renew_shift, renewing=True)
        except Exception as error:  # a bug, or storage failing: keep the thread alive
            log.exception("register %s: unexpected failure", self.name)
            self._down(_RegisterDown(f"internal error: {type(error).__name__}: {error}"))
        else:
            self._outage.ok()

    def _hand_over(self) -> None:
        """The keeper wants this register driven by another instance (its share): between two
        requests, close the connection -- nothing more goes out -- then give the lease up."""
        lease = self.lease
        if not lease.held():
            lease.give_up_asked = False
            return
        log.info("register %s: handed over to another instance (balance)", self.name)
        self._disconnect()
        self._grant = self._epoch = 0
        self.update(
            state="offline",
            detail="handed over to another instance (balance): waiting for its lease",
            in_flight=0,
        )
        lease.given_up(cooldown=lease.ttl)  # not ours from here, before storage hears it
        try:
            self.storage.drop_lease(self.name)
        except Exception as error:  # it expires by itself within the TTL
            log.warning("register %s: giving its lease up failed (%s)", self.name, error)

    def _lease_gone(self, why: str) -> None:
        """The lease is not held (any more): close the connection -- nothing more goes to the
        register from here -- and touch none of its requests: the lease's next holder (maybe
        this worker again) settles them.  Said once per loss."""
        if self.register is not None or self._grant:
            log.warning(
                "register %s: its lease is lost (%s); connection closed, waiting to take it again",
                self.name,
                why,
            )
            self._disconnect()
            self._grant = self._epoch = 0
            self.update(
                state="offline",
                detail="waiting for its lease: another instance drives it, or storage is "
                "unreachable",
                in_flight=0,
            )

    def _step(self) -> None:
        lease = self.lease
        if lease.give_up_asked:
            self._hand_over()
            return
        if not lease.held() or (self._grant and lease.generation != self._grant):
            if self._grant:
                self._lease_gone("not renewed in time, or taken by another instance")
            lease.wait(IDLE_WAIT)
            return
        if self.register is None:
            self._connect()
            return
        if self.view.state in ("failing", "offline"):
            try:
                self._probe()
            except _RegisterDown as down:  # still down: probed again at the same pace
                self._paper_fault = self._paper_fault or down.paper
                state = "offline" if down.link else "failing"
                self.update(state=state, detail=down.detail)
                self.pool.pause(self.probe_interval)
            return
        if self._settle():
            return
        self._watch_ofd()
        if self.pool.stopping:
            return
        self.lease.check(self._grant)  # claimed only by the lease's holder
        if self._skip_marked:  # left for the group's registers that sell marked goods
            job = self.storage.claim(self.name, self.spec.group, skip_marked=True)
        else:
            job = self.storage.claim(self.name, self.spec.group)
        if job is None:
            self.update(in_flight=0)
            wait = min(IDLE_WAIT, max(0.0, self._next_ofd - time.monotonic()))
            self.storage.wait_for_work(wait)
            return
        self.update(in_flight=1)
        self._attempt(job)
        if self.view.state != "ok":
            self.update(state="ok", detail=self._ok_detail())

    # -- connecting and probing -------------------------------------------------------------------

    def _connect(self) -> None:
        grant, epoch = self.lease.grant()
        self.lease.check(grant)  # connected only under the lease
        # this worker acts under this grant from here (`_lease_gone` ends it)
        self._grant, self._epoch = grant, epoch
        try:
            with _JOURNAL_OPENING:
                journal = self.storage.journal(self.name, fence=epoch)
            try:
                register = kkt.connect(
                    self.spec.url, protocol=self.spec.protocol, verify=self.spec.verify
                )
            except BaseException:
                journal.close()
                raise
            register.journal = journal  # closed with the register
        except (kkt.KktError, ProtocolError, OSError) as error:
            raise _RegisterDown(f"no link: {error}", link=True) from error
        # Every command frame from here on asks the lease first (`LeaseGuard`).
        register.device.commander = LeaseGuard(register.device.commander, self.lease, grant)
        try:
            with _register_faults():
                # The FN's serial first (one query): a second writer of the same register is
                # turned away before its reads can disturb the first one's document cursor.
                fn = register.fn_info()
                other = _own_serial(fn.serial, self.pool, self.name) or self._serial_elsewhere(
                    fn.serial
                )
                if other is not None:
                    raise _RegisterDown(
                        f"its FN {fn.serial} is also register {other}'s: one register under "
                        "two names (or in two pools or instances) would be two writers "
                        "cancelling each other's receipts -- list each register once",
                        link=True,
                    )
                registration = register.registration()
                self._read_registration_report(register, registration)
                status = register.status()
        except BaseException:
            register.close()  # connected only once all of it is known
            raise
        self.register, self.registration = register, registration
        self.update(fn_serial=fn.serial, fn_expires=fn.expires, paper=status.paper)
        try:
            self.storage.save_register_details(self.name, self._details())
        except Exception:
            log.exception("register %s: saving its details failed", self.name)
        log.info(
            "register %s: INN %s, RNM %s, FFD %s, FN %s",
            self.name,
            registration.inn,
            registration.rnm,
            registration.ffd,
            fn.serial,
        )
        fault = _fn_fault(fn)
        if fault is not None:
            raise _RegisterDown(fault)
        self._open_shift(status)
        self.update(state="ok", detail=self._ok_detail())

    def _open_shift(self, status: Status) -> None:
        """A shift to sell in: opened when closed; an expired one is `_ShiftOver`."""
        register = self.register
        assert register is not None
        if status.shift_expired:
            raise _ShiftOver()
        if not status.shift_open:
            with _register_faults():
                register.open_shift()

    def _read_registration_report(self, register: kkt.Register, registration: Registration) -> None:
        """The OFD's INN (1017) and the FNS site (1060) from the registration report itself."""
        try:
            document = register.document(registration.document_number)
        except (kkt.KktError, ProtocolError) as error:
            log.warning("register %s: registration report unread (%s)", self.name, error)
            return
        for tag, value in document.tlv:
            if tag == 1017 and isinstance(value, str):
                self.ofd_inn = value
            elif tag == 1060 and isinstance(value, str):
                self.fns_site = value

    def _serial_elsewhere(self, serial: str) -> str | None:
        """Another register (name, instance) with FN ``serial`` whose lease another live
        instance holds, as storage last saw it: the same device listed under two names on two
        instances.  (Two such instances connecting at the same moment both miss it: each
        saves its FN serial only once connected -- the README says so.)"""
        now = dt.datetime.now(dt.UTC)
        held = {
            lease.register: lease.instance
            for lease in self.storage.leases()
            if lease.instance != self.storage.instance and lease.expires_at > now
        }
        for view in self.storage.registers():
            if view.fn_serial == serial and view.name != self.name and view.name in held:
                return f"{view.name!r} (driven by instance {held[view.name]})"
        return None

    def _disconnect(self) -> None:
        _disown_serials(self.pool, self.name)
        if self.register is not None:
            try:
                self.register.close()
            except Exception as error:
                log.warning("register %s: closing failed (%s)", self.name, error)
            self.register = None

    def _probe(self) -> None:
        """Is the failing register healthy again?  Its status says (paper, cover); an interrupted
        printout is finished first."""
        register = self.register
        assert register is not None
        with _register_faults():
            status = register.status()
            self.update(paper=status.paper)
            if not status.paper or status.cover_open:
                raise _RegisterDown("paper out" if not status.paper else "cover open", paper=True)
            if self._paper_fault:
                register.continue_print()  # what the paper end interrupted, if anything
                self._paper_fault = False
            if register.ofd_status().blocked:
                raise _RegisterDown("the FN is blocked: documents waited for the OFD 30 days")
            fault = _fn_fault(register.fn_info())
            if fault is not None:
                raise _RegisterDown(fault)
        self._open_shift(status)  # a paper end may have kept it from opening at the start
        log.info("register %s: healthy again", self.name)
        self.update(state="ok", detail=self._ok_detail())

    def _down(self, down: _RegisterDown) -> None:
        """The register cannot sell: its requests that never began go back to the queue; probe
        it again later."""
        self._failures += 1
        self._paper_fault = self._paper_fault or down.paper
        state = "offline" if self.register is None or down.link else "failing"
        if self.view.state != state or self.view.detail != down.detail:
            log.warning("register %s %s: %s", self.name, state, down.detail)
        self.update(state=state, detail=down.detail, in_flight=0)
        if self.lease.held():  # else the lease's next holder settles them
            self._release_unbegun()
        self.pool.pause(self._probe_delay())

    def _probe_delay(self) -> float:
        doubled = self.probe_interval * (1 << max(0, min(self._failures - 1, 10)))
        return min(doubled, max(self.probe_interval, MAX_PROBE_INTERVAL))

    def _release_unbegun(self) -> None:
        """Every request assigned here without a journal entry never began: another register of
        the group may sell it.  One the journal knows done is completed from it (the register
        need not answer for that); one pending stays (it may be fiscal in this FN)."""
        try:
            for job in self.storage.assigned(self.name):
                try:
                    entry = self._entry(job.uuid)
                except _RegisterDown as error:
                    log.warning("register %s: %s", self.name, error)
                    return
                if entry is None:
                    self.lease.check(self._grant)  # before each: the loop may outlast the lease
                    self.storage.release(job.uuid, self.name, fence=self._epoch)
                    log.info("register %s: %s released to the group", self.name, job.uuid)
                elif entry.state == "done" and entry.result:
                    self._complete_from_journal(job, entry.result)
                    log.info("register %s: %s completed from the journal", self.name, job.uuid)
        except LeaseLost as lost:
            if self._grant:
                self.lease.lost(self._grant)
            self._lease_gone(str(lost))
        except Exception:
            log.exception("register %s: releasing its requests failed", self.name)

    def _begun(self, key: str) -> bool | None:
        """Whether ``key`` has a journal entry (None: the journal cannot say)."""
        try:
            return self._entry(key) is not None
        except _RegisterDown as error:
            log.warning("register %s: %s", self.name, error)
            return None

    def _entry(self, key: str) -> Entry | None:
        """``key``'s journal entry; an unreadable journal is `_RegisterDown` (nothing can be
        sold or settled safely without it)."""
        journal = self.register.journal if self.register is not None else None
        try:
            if journal is None:
                if self._journal is not None and self._journal_epoch != self._epoch:
                    self._journal.close()  # another grant's: one journal per grant
                    self._journal = None
                if self._journal is None:
                    with _JOURNAL_OPENING:
                        self._journal = self.storage.journal(self.name, fence=self._epoch or None)
                    self._journal_epoch = self._epoch
                journal = self._journal
            return journal.get(key)
        except (LeaseLost, StorageUnavailable):
            raise
        except Exception as error:
            raise _RegisterDown(f"the journal is unreadable: {error}") from error

    # -- settling, the shift, the OFD -------------------------------------------------------------

    def _settle(self) -> bool:
        """Sell again what is assigned here (a crash or an open fate left it); True when there
        was any (the loop comes back before claiming more)."""
        jobs = [job for job in self.storage.assigned(self.name) if job.uuid not in self._held]
        if not jobs:
            return False
        self.update(in_flight=len(jobs))
        for job in jobs:
            if self.pool.stopping:
                return True
            self._attempt(job)
        if self.view.state != "ok":
            self.update(state="ok", detail=self._ok_detail())
        return True

    def _renew_shift(self) -> None:
        """Settle what is assigned here (a sale in the expired shift is refused, a pending one is
        found in the FN), then close the shift and open the next."""
        register = self.register
        assert register is not None
        for job in self.storage.assigned(self.name):
            if job.uuid in self._held or self.pool.stopping:
                continue
            try:
                self._attempt(job)
            except _ShiftOver:
                pass  # not fiscal: sold in the new shift
        log.info("register %s: the shift is over 24 hours old; closing and opening", self.name)
        with _register_faults():
            if register.shift_info().open:
                register.close_shift()
            register.open_shift()
        self.update(state="ok", detail=self._ok_detail())

    def _watch_ofd(self) -> None:
        if time.monotonic() < self._next_ofd:
            return
        self._next_ofd = time.monotonic() + self.ofd_interval
        register = self.register
        assert register is not None
        with _register_faults():
            status = register.ofd_status()
            fn = register.fn_info()
        # Every document below the first unsent one has been acknowledged by the OFD.
        below = status.first_number if status.unsent and status.first_number else None
        below = below if below is not None else fn.last_document + 1
        if (fn.serial, below) != self._acknowledged:  # written when it moved, not every look
            self.storage.set_ofd_acknowledged_below(fn.serial, below)
            self._acknowledged = (fn.serial, below)
        self.update(
            ofd_unsent=status.unsent,
            ofd_first_unsent=status.first_number if status.unsent else None,
            fn_serial=fn.serial,
            fn_expires=fn.expires,
        )

    # -- one request ------------------------------------------------------------------------------

    def _attempt(self, job: Job) -> None:
        """Fiscalize ``job`` here and record its end; raises `_RegisterDown`, `_Unknown` or
        `_ShiftOver` when it did not end (it is released first where that is safe)."""
        register, registration = self.register, self.registration
        assert register is not None and registration is not None
        # The journal first: a receipt done (or begun) here is settled from it whatever the
        # request's body or INN says now -- an upgrade that tightened the conversion, or a
        # re-registration, must not turn a fiscal receipt into a failed request.
        entry = self._entry(job.uuid)
        if entry is not None and entry.state == "done" and entry.result:
            self._complete_from_journal(job, entry.result)
            return
        try:
            work = self.work_of(job)
        except ReceiptFault as fault:
            self._fail(job, fault.error)
            return
        if job.attempts >= POISON_CLAIMS and entry is None:
            self._fail(job, _poison_error(job.attempts, "claims", "no register finished it"))
            return
        if not self._sells_marked and marking.is_marked(job.body):
            if self._skip_marked:  # claimed before (a config change?): the group's Shtrikh sells it
                self._give_back(job, "", f"{self.spec.protocol} registers cannot sell marked goods")
                return
            error = marking.cannot_sell_error(self.name, self.spec.protocol, self.spec.group)
            self._fail(job, error)
            return
        if work.inn and work.inn.strip() != registration.inn.strip():
            self._fail(
                job,
                {
                    "code": AGENT_WRONG_INN,
                    "text": (
                        f"the register {self.name} is registered to INN {registration.inn}, "
                        f"not to the company INN {work.inn} of the request: send it to the "
                        "group whose registers carry that INN"
                    ),
                    "type": "agent",
                },
            )
            return
        started = time.perf_counter()
        try:
            result = self._fiscalize(work, register, job)
        except LeaseLost:
            raise  # nothing more is sent; the lease's next holder settles it
        except kkt.DamagedClosing as damaged:
            # Fiscal, but not as the request was sent (`DamagedClosing` is an `OutcomeUnknown`
            # that no retry can settle otherwise: asking again reads the same document, for
            # ever, and the register would settle nothing else).  Held for the operator.
            self._hold(job, _damaged_text(str(damaged)))
            return
        except kkt.OutcomeUnknown as unknown:
            log.warning("register %s: %s is open (%s); settling here", self.name, job.uuid, unknown)
            self.update(state="settling", detail=f"settling {job.uuid}: {unknown}")
            raise _Unknown() from unknown
        except kkt.ShiftExpired as expired:
            raise _ShiftOver() from expired
        except kkt.KeyConflict as conflict:
            # The key began in another FN (this register's FN was replaced?): it may be fiscal
            # there; only the operator can tell.  Never sold here, never released -- held, with
            # the reason in the request's report and the register's detail.
            self._hold(job, f"its idempotency key belongs elsewhere: {conflict}")
            return
        except kkt.NotFiscalized as cancelled:
            # Cancelled by a bad line or a disturbed receipt: certainly not fiscal, and selling
            # again is safe -- here, a few times, then the line is the register's fault.
            tries = self._tries.get(job.uuid, 0) + 1
            self._tries[job.uuid] = tries
            if tries < NOT_FISCALIZED_RETRIES:
                log.warning("register %s: %s cancelled (%s); again", self.name, job.uuid, cancelled)
                return
            self._tries.pop(job.uuid, None)
            detail = f"receipts cancelled on the line: {cancelled}"
            self._give_back(job, "NotFiscalized", detail)
            raise _RegisterDown(detail) from cancelled
        except (kkt.MarkRejected, kkt.BadMarkCode) as rejected:
            # The code's fault (the FN's check, ОИСМ's answer, a code sold before): raised before
            # anything fiscal was sent, so the request fails -- other registers would say the same.
            self._fail(job, marking.rejected_error(rejected))
            return
        except (kkt.ReceiptRejected, kkt.CannotSend) as rejected:
            error = {
                "code": AGENT_INVALID,
                "text": f"invalid document: {rejected}",
                "type": "agent",
            }
            self._fail(job, error)
            return
        except kkt.DeviceError as refusal:
            if isinstance(refusal, _REGISTER_REFUSALS) or refusal.retry_may_help:
                paper = isinstance(refusal, kkt.PaperOut)
                detail = _refusal_detail(refusal)
                # Paper is never the request's fault: it does not count towards a poison.
                self._give_back(job, "" if paper else type(refusal).__name__, detail)
                raise _RegisterDown(detail, paper=paper) from refusal
            self._fail(job, _driver_error(refusal))
            return
        except (kkt.KktError, ProtocolError, OSError) as error:
            # The link or the register (TransportError, BadAnswer, a garbled answer ...).
            down = _down_of(error)
            self._give_back(job, type(error).__name__, down.detail)
            raise down from error
        seconds = time.perf_counter() - started
        self._tries.pop(job.uuid, None)
        self._failures = 0
        self._complete(job, result)
        if not result.replayed:
            self.latencies.append(seconds)
            if self.on_latency is not None:
                try:
                    self.on_latency(self.name, seconds)
                except Exception:
                    log.exception("register %s: on_latency failed", self.name)

    def _fiscalize(self, work: Work, register: kkt.Register, job: Job) -> FiscalResult:
        """``work`` run under the lease: whatever it raised once the lease is lost is
        `LeaseLost` (a refusal, a cancelled receipt ...: none of it may release or fail the
        request any more -- it is the next holder's to settle)."""
        try:
            return work.run(register, job.uuid)
        except LeaseLost:
            raise
        except Exception as error:
            if not self.lease.held() or self.lease.generation != self._grant:
                raise CommandLeaseLost(
                    f"register {self.name}'s lease was lost during {job.uuid} ({error})"
                ) from error
            raise

    def _complete(self, job: Job, result: FiscalResult) -> None:
        self._complete_from_journal(job, result.to_json())

    def _complete_from_journal(self, job: Job, fiscal: dict[str, Any]) -> None:
        """Done with ``fiscal`` (`FiscalResult.to_json`, as the journal keeps it) and the
        register's details -- the last ones known when the register is offline.  A result the
        journal keeps with the driver's "damaged" verdict (read back otherwise than sold) is
        never reported done: held for the operator instead."""
        if fiscal.get(DAMAGED):
            self._hold(job, _damaged_text(str(fiscal[DAMAGED])))
            return
        data = dict(fiscal)
        data.pop("replayed", None)
        data.update(self._details(), device_code=self.name)
        # Only the lease's holder ends a register's requests: one that lost it leaves this to
        # the next holder, who completes it from the journal (done there) -- never both.
        self.lease.check(self._grant)
        self.storage.complete(job.uuid, self.name, data, fence=self._epoch)
        self._held.pop(job.uuid, None)
        self.update(done=self.view.done + 1)

    def _details(self) -> dict[str, str]:
        """The register's RNM, FNS site and OFD INN for a result: read at connect, else the
        ones saved when it was last connected (`Storage.register_details`)."""
        if self.registration is not None:
            return {
                "rnm": self.registration.rnm,
                "fns_site": self.fns_site,
                "ofd_inn": self.ofd_inn,
            }
        return _saved_details(self.storage, self.name)

    def _fail(self, job: Job, error: dict[str, Any]) -> None:
        """Fail ``job`` -- unless the journal says it began here: done, it is completed from the
        journal; pending, it is settled from the FN first (`_settle_begun`).  A receipt that
        may be fiscal is never reported failed."""
        entry = self._entry(job.uuid)
        if entry is not None and entry.state == "done" and entry.result:
            self._complete_from_journal(job, entry.result)
            return
        if entry is not None and self._settle_begun(job, entry):
            return
        self.lease.check(self._grant)  # another holder may be settling it now
        log.info("register %s: %s failed: %s", self.name, job.uuid, error["text"])
        self.storage.fail(job.uuid, error, fence=self._epoch)

    def _settle_begun(self, job: Job, entry: Entry) -> bool:
        """A pending key whose request cannot be sold as it is now: the FN decides.  True when
        that settled it (completed, or held for the operator); False when the FN says it is
        certainly not fiscal (the key is forgotten: the request may fail)."""
        register = self.register
        assert register is not None and register.journal is not None
        if "correction" in job.operation:
            # The driver settles a correction only from its own arguments, which this body no
            # longer gives: the operator looks in the FN.
            self._hold(
                job,
                f"a correction begun in FN {entry.fn or '?'} after document {entry.before} "
                "cannot be converted any more; check that FN's documents",
            )
            return True
        if entry.fn and self.view.fn_serial and entry.fn != self.view.fn_serial:
            self._hold(
                job,
                f"it began in FN {entry.fn} (after document {entry.before}), not in this "
                f"register's FN {self.view.fn_serial}: only that FN can say whether it is fiscal",
            )
            return True
        try:
            found = settle_pending(register.device, register.journal, entry)
        except LeaseLost:
            raise
        except kkt.DamagedClosing as damaged:
            self._hold(job, _damaged_text(str(damaged)))
            return True
        except kkt.OutcomeUnknown as unknown:
            self.update(state="settling", detail=f"settling {job.uuid}: {unknown}")
            raise _Unknown() from unknown
        except (kkt.KktError, ProtocolError, OSError) as error:
            raise _down_of(error) from error
        if found is None:
            register.journal.forget(job.uuid)
            return False
        register.journal.done(job.uuid, found.to_json())
        self._complete_from_journal(job, found.to_json())
        return True

    def _hold(self, job: Job, why: str) -> None:
        """Keep ``job`` here for the operator: its report says why (status still wait), so
        does the register's detail."""
        log.error("register %s: %s held for the operator: %s", self.name, job.uuid, why)
        self._held[job.uuid] = why
        error = {
            "code": HELD_CODE,
            "text": f"held on register {self.name}: {why}",
            "type": "driver",
        }
        try:
            self.lease.check(self._grant)
            self.storage.hold(job.uuid, self.name, error, fence=self._epoch)
        except LeaseLost:
            raise  # the lease's next holder decides about it
        except Exception:
            log.exception("register %s: recording the hold of %s failed", self.name, job.uuid)
        self.update(detail=self._ok_detail() if self.view.state == "ok" else self.view.detail)

    def _ok_detail(self) -> str:
        """An ok register's detail: empty, or the requests held here for the operator."""
        if not self._held:
            return ""
        first, why = next(iter(self._held.items()))
        more = f" (and {len(self._held) - 1} more)" if len(self._held) > 1 else ""
        return f"{len(self._held)} request(s) held for the operator: {first}{more}: {why}"

    def _give_back(self, job: Job, cause: str, detail: str) -> None:
        """Back to the group's queue -- unless it began here (the journal has its key).  A
        request that keeps bringing registers down (`POISON_REGISTERS` registers, or
        `POISON_RELEASES` times the same ``cause``; '' does not count) fails instead."""
        if self._begun(job.uuid) is not False:
            return
        self.lease.check(self._grant)  # another holder may be settling it now
        history = self.pool.note_release(job.uuid, self.name, cause) if cause else []
        registers = {name for name, _ in history}
        same = sum(1 for _, seen in history if seen == cause)
        if len(registers) >= POISON_REGISTERS or same >= POISON_RELEASES:
            what = f"{len(registers)} registers" if len(registers) >= POISON_REGISTERS else "times"
            self._fail(job, _poison_error(len(history), what, f"{cause}: {detail}"))
            return
        self.storage.release(job.uuid, self.name, fence=self._epoch)


@contextlib.contextmanager
def _register_faults() -> Iterator[None]:
    """Around commands outside a request: any driver or link failure is the register's."""
    try:
        yield
    except LeaseLost:
        raise  # not the register's fault: the worker stops driving it
    except kkt.ShiftExpired as expired:
        raise _ShiftOver() from expired
    except kkt.DeviceError as refusal:
        paper = isinstance(refusal, kkt.PaperOut)
        raise _RegisterDown(_refusal_detail(refusal), paper=paper) from refusal
    except (kkt.KktError, ProtocolError, OSError) as error:
        raise _down_of(error) from error


def _refusal_detail(refusal: kkt.DeviceError) -> str:
    if isinstance(refusal, kkt.PaperOut):
        return refusal.cause.split(";")[0] or "paper out"
    return str(refusal)


def _down_of(error: BaseException) -> _RegisterDown:
    """A failure of the link or of the register's answers, in the operator's words."""
    if isinstance(error, kkt.TransportError | OSError):
        return _RegisterDown(f"no link: {error}", link=True)
    if isinstance(error, BadAnswer | ProtocolError):
        return _RegisterDown(f"bad answers: {error}")
    return _RegisterDown(f"{type(error).__name__}: {error}")


def _driver_error(refusal: kkt.DeviceError) -> dict[str, Any]:
    """A refusal of the receipt's content as ATOL's driver error: the register's own code,
    negated (ATOL's driver errors are negative numbers), the vendor named in the text."""
    return {
        "code": -refusal.code,
        "text": f"{refusal.vendor} register refused (code {refusal.code:#04x}): {refusal}",
        "type": "driver",
    }
