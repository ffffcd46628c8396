"""Register leases as a worker sees them: `Lease` (held or not, by this instance's own clock) and
`LeaseKeeper` (one thread per instance that takes and renews them in storage).

Why a worker can trust `Lease.held` without asking the database: the keeper notes the local
monotonic time *before* it sends a renew, and a successful renew keeps the lease held locally only
until that moment + ``ttl / 2``; the database lets another instance take it only after
``now() + ttl`` of the database's own clock, counted from when the renew arrived (later than our
note).  So this instance stops at least ``ttl / 2`` before anyone else may start, whatever the
machines' clocks say, and a renew that fails (database unreachable, lease taken) simply lets the
local deadline pass.

The worker binds itself to one *grant* (`Lease.generation`): a lease lost and taken again is a new
grant, and the worker must drop its connection and settle the register afresh (another instance
may have driven it in between), so a check against an old grant fails even when the lease is held
again.

**Balance**: with several live instances each aims at its *share* of the registers it lists,
``ceil(registers / live instances)`` (an instance is live when its heartbeat is younger than the
TTL).  Above it, the keeper asks one worker at a time to hand its register over: the worker does so
between two requests (it closes its connection, then the lease is given up in storage), and the
keeper leaves that register alone for a while, so an instance below its share takes it.  Below its
share it takes free leases at once; at or above it, only leases nobody took for
`FREE_AFTER` TTLs (a register no other instance lists) -- and one it handed over that came back so
is kept for good.

`Outage` says "storage unreachable" once per outage, and "reachable again" once after it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable

from kkt.errors import OutcomeUnknown
from kkt.transport.session import Commander

from .storage.base import LeaseLost, Storage, StorageUnavailable

log = logging.getLogger(__name__)

LEASE_TTL = 10.0  # seconds a lease lasts in the database after each renew
RENEWS_PER_TTL = 5  # the keeper renews every ttl / 5: two renews may fail before it is lost
FREE_AFTER = 3  # TTLs a lease must stay free before an instance at its share takes it


class CommandLeaseLost(LeaseLost, OutcomeUnknown):
    """Raised instead of sending a command frame when the lease is not held (the frame did NOT
    go out).  An `OutcomeUnknown` as well, so the driver never takes it for "certainly not
    fiscal" (`Register.receipt` would forget the key): an earlier frame of the same call may
    have been the closing command, and only the next holder's settling, from the FN, can say."""


class Lease:
    """This instance's lease of one register, as the keeper last saw it."""

    def __init__(self, register: str, ttl: float, *, clock: Callable[[], float] = time.monotonic):
        self.register = register
        self.ttl = ttl
        self._clock = clock
        self._deadline = 0.0  # local monotonic: held before it
        self._generation = 0  # +1 each time the lease is (re)granted after being not held
        self._changed = threading.Condition()
        # balancing (`LeaseKeeper`): asked to hand the register over; when it was handed over
        # (grants of renewals sent before then are ignored); left alone until; not held since
        self.give_up_asked = False
        self._given_up_at = -math.inf
        self.cooldown_until = 0.0
        self.unheld_since = clock()
        self.handed_over = False  # handed over at least once
        self.sticky = False  # handed over, and nobody took it: never handed over again

    def held(self) -> bool:
        return self._clock() < self._deadline

    @property
    def generation(self) -> int:
        """The current grant (0: never held)."""
        return self._generation

    def check(self, generation: int | None = None) -> None:
        """Raises `CommandLeaseLost` unless the lease is held (under grant ``generation``)."""
        if not self.held():
            raise CommandLeaseLost(
                f"this instance does not hold register {self.register}'s lease (not renewed in "
                f"time): nothing was sent; the register's next holder settles its receipt"
            )
        if generation is not None and generation != self._generation:
            raise CommandLeaseLost(
                f"register {self.register}'s lease was lost and taken again since this "
                "connection began: nothing was sent; reconnect and settle first"
            )

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the lease to be held; whether it is."""
        with self._changed:
            if not self.held():
                self._changed.wait(timeout)
        return self.held()

    # -- the keeper's side ------------------------------------------------------------------------

    def granted(self, sent_at: float) -> None:
        """The storage granted (or renewed) it by a query sent at local time ``sent_at``."""
        with self._changed:
            if sent_at < self._given_up_at:
                return  # a renewal under way while the worker handed the register over
            if not self.held():
                self._generation += 1
            self._deadline = max(self._deadline, sent_at + self.ttl / 2)
            self._changed.notify_all()

    def refused(self) -> None:
        """Another instance holds it: not ours, from now."""
        with self._changed:
            if self.held():
                self.unheld_since = self._clock()
            self._deadline = 0.0
            self.give_up_asked = False
            self._changed.notify_all()

    def given_up(self, cooldown: float) -> None:
        """The worker handed its register over (asked to, `give_up_asked`): not held from now,
        and not taken again for ``cooldown`` seconds (another instance takes it meanwhile)."""
        with self._changed:
            now = self._clock()
            self._deadline = 0.0
            self._given_up_at = now
            self.give_up_asked = False
            self.cooldown_until = now + cooldown
            self.unheld_since = now
            self.handed_over = True
            self._changed.notify_all()

    def released(self) -> None:
        """Given up (`LeaseKeeper.stop`)."""
        self.refused()


class LeaseGuard:
    """A `Commander` that sends a frame only while ``lease`` is held under grant ``generation``
    (wrapped around a connected device's commander: ``device.commander = LeaseGuard(...)``)."""

    def __init__(self, inner: Commander, lease: Lease, generation: int) -> None:
        self.inner = inner
        self.lease = lease
        self.generation = generation

    def exchange(self, payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes:
        self.lease.check(self.generation)
        return self.inner.exchange(payload, answer_timeout=answer_timeout, resend=resend)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> object:
        # the session's other attributes (limit_text ...) as the driver may read them
        return getattr(self.inner, name)


class Outage:
    """Logs a storage outage once when it begins and once when it ends (``what``: who noticed)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.since: float | None = None

    def failed(self, error: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.warning("%s: storage unreachable (%s); retrying until it is back", self.what, error)

    def ok(self) -> None:
        if self.since is not None:
            seconds = time.monotonic() - self.since
            self.since = None
            log.warning("%s: storage reachable again after %.1f s", self.what, seconds)

    @property
    def down(self) -> bool:
        return self.since is not None


class LeaseKeeper:
    """One thread per instance: every ``ttl / RENEWS_PER_TTL`` seconds it records this
    instance's heartbeat and takes or renews the lease of every register a worker wants
    (`lease`).  Storage unreachable: logged once, tried again next round (the local deadlines
    run out meanwhile, and workers stop by themselves).  `stop` gives the held leases up so
    another instance may take them at once."""

    def __init__(
        self,
        storage: Storage,
        ttl: float = LEASE_TTL,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl > 0:
            raise ValueError(f"the lease TTL must be a positive number of seconds, not {ttl!r}")
        self.storage = storage
        self.ttl = ttl
        self._clock = clock  # local monotonic seconds (tests give their own)
        self.interval = ttl / RENEWS_PER_TTL
        self._leases: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._outage = Outage("lease keeper")

    def lease(self, register: str) -> Lease:
        """The lease of ``register``, wanted from now on (taken at the next round)."""
        with self._lock:
            lease = self._leases.get(register)
            if lease is None:
                lease = self._leases[register] = Lease(register, self.ttl, clock=self._clock)
                self._wake.set()
            return lease

    def leases(self) -> Iterable[Lease]:
        with self._lock:
            return list(self._leases.values())

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("this lease keeper was started already")
        self._thread = threading.Thread(target=self._run, name="kkt-cloud-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and give up every lease held (call once the workers stopped)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        for lease in self.leases():
            if lease.held():
                lease.released()
                try:
                    self.storage.drop_lease(lease.register)
                except Exception as error:  # it expires by itself within the TTL
                    log.warning(
                        "register %s: giving its lease up failed (%s)", lease.register, error
                    )

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.round()
            self._wake.clear()
            left = self.interval - (time.monotonic() - started)
            if left > 0:
                self._wake.wait(left)

    def round(self) -> None:
        """One heartbeat, one take/renew per wanted lease (held or due to be taken: see the
        module's docstring on balance), and perhaps one hand-over asked (tests call it)."""
        try:
            self.storage.heartbeat()
            leases = list(self.leases())
            share = self._share(len(leases))
            held = sum(1 for lease in leases if lease.held())
            for lease in leases:
                if self._stop.is_set():
                    return
                now = self._clock()
                free_long = now - lease.unheld_since >= FREE_AFTER * self.ttl
                if not lease.held():
                    if now < lease.cooldown_until:
                        continue
                    if held >= share and not lease.sticky and not free_long:
                        continue
                sent_at = self._clock()
                if self.storage.take_lease(lease.register, self.ttl):
                    was_held = lease.held()
                    lease.granted(sent_at)
                    if not was_held and lease.held():
                        held += 1
                        if lease.handed_over and held > share:
                            lease.sticky = True  # handed over, and nobody else took it
                else:
                    if lease.held():
                        log.error(
                            "register %s: its lease was taken by another instance: this one "
                            "stops driving it",
                            lease.register,
                        )
                    lease.refused()
            if held > share and not any(lease.give_up_asked for lease in leases):
                movable = [lease for lease in leases if lease.held() and not lease.sticky]
                if movable:
                    log.info(
                        "register %s: asked to hand over (this instance holds %d, its share is %d)",
                        movable[-1].register,
                        held,
                        share,
                    )
                    movable[-1].give_up_asked = True
        except StorageUnavailable as error:
            self._outage.failed(error)
            return
        except Exception:  # a bug: the leases run out by themselves; keep the thread
            log.exception("lease keeper: a round failed; trying again")
            return
        self._outage.ok()

    def _share(self, wanted: int) -> int:
        """This instance's share of the ``wanted`` registers: all of them over the live
        instances (heard from within a TTL, by the database's clock when it tells it)."""
        if wanted == 0:
            return 0
        clock = getattr(self.storage, "database_now", None)
        now = clock() if callable(clock) else dt.datetime.now(dt.UTC)
        live = sum(
            1
            for instance in self.storage.instances()
            if (now - instance.seen_at).total_seconds() <= self.ttl
        )
        return math.ceil(wanted / max(1, live))
