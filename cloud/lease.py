"""Register leases as a worker sees them: `Lease` (held or not, by this instance's own clock) and
`LeaseKeeper` (one thread per instance that takes and renews them in storage).

Why a worker can trust `Lease.held` between two queries of the database: the keeper notes the local
time *before* it sends a renew, and a successful renew keeps the lease held locally only until that
moment + ``ttl / 2``; the database lets another instance take it only after ``now() + ttl`` of the
database's own clock, counted from when the renew arrived (later than our note).  So this instance
stops at least ``ttl / 2`` before anyone else may start, whatever the machines' clocks say, and a
renew that fails (database unreachable, lease taken) simply lets the local deadline pass.  The
local clock is ``CLOCK_BOOTTIME`` where the system has one (Linux; `lease_clock`): unlike
``CLOCK_MONOTONIC`` it runs on while the machine is suspended, so a suspend lets the deadline pass.

**A clock that stops** is what the local deadline cannot see: a virtual machine paused by its host
(QEMU ``stop``/``cont``, a live migration) resumes with its clocks where they were, its lease
"held" for what was left of ``ttl / 2`` -- while the database let it expire and another instance
took the register over.  So every frame that may move money (sent with ``resend=False``) is also
confirmed in the database first (`Lease.confirm`: this instance holds the lease *with the epoch
of its grant*, database clock), and every write about a register's requests is fenced in the
database by that epoch (``fence=``, `kkt.cloud.storage.base`).

**The window that remains**, and why it is small: a confirmed frame still travels.  (1) Between
the confirming query's answer and the frame's write the worker's thread runs a few lines -- a pause
of the machine exactly there is not seen.  (2) A frame written may sit in the kernel's send queue,
retransmitted while the network drops it: on the register sockets the pool opens
``TCP_USER_TIMEOUT`` (`USER_TIMEOUT_SHARE` of the TTL, below ``ttl / 2``) aborts the connection
once data stays unacknowledged that long, so a frame written before the local deadline either
arrives before the lease can expire in the database or never.  (3) The session's own deadline
follows the lease's local deadline (`LeaseGuard`): an exchange still running then is abandoned
and nothing more is written.  Not bounded: a frame the register's TCP stack acknowledged but whose
firmware reads it late; a pause of the machine at (1) that outlasts the lease; and, after a pause
that used up the local margin, a confirmation that came with less of the lease left in the
database than ``TCP_USER_TIMEOUT`` -- a frame of it retransmitted over a lossy network may then
arrive after the lease expired (the confirmation asks "unexpired", not "unexpired for long
enough").  For those only the register itself serializes the two instances' commands, and the
next holder's settling from the FN sees what the late frame did, if it came before that settling.

The worker binds itself to one *grant* (`Lease.generation`, and the database's `Lease.epoch`): a
lease lost and taken again is a new grant, and the worker must drop its connection and settle the
register afresh (another instance may have driven it in between), so a check against an old grant
fails even when the lease is held again.

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
from typing import Any

from kkt.errors import OutcomeUnknown
from kkt.transport.session import Commander

from .storage.base import LeaseLost, Storage, StorageUnavailable

log = logging.getLogger(__name__)

LEASE_TTL = 10.0  # seconds a lease lasts in the database after each renew
RENEWS_PER_TTL = 5  # the keeper renews every ttl / 5: two renews may fail before it is lost
FREE_AFTER = 3  # TTLs a lease must stay free before an instance at its share takes it
# TCP_USER_TIMEOUT of a register's socket, as a share of the TTL: below 1/2 (see the module's
# docstring), with room left for a frame's last write just after the deadline and the network.
USER_TIMEOUT_SHARE = 0.4

_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def lease_clock() -> float:
    """Local seconds for lease deadlines: ``CLOCK_BOOTTIME`` where there is one (it counts the
    time the machine was suspended, which ``CLOCK_MONOTONIC`` does not), else `time.monotonic`."""
    if _BOOTTIME is not None:
        return time.clock_gettime(_BOOTTIME)
    return time.monotonic()


def user_timeout(ttl: float) -> float:
    """The ``TCP_USER_TIMEOUT`` (seconds) for a register socket under leases of ``ttl``."""
    return ttl * USER_TIMEOUT_SHARE


class CommandLeaseLost(LeaseLost, OutcomeUnknown):
    """Raised instead of sending a command frame when the lease is not held (the frame did NOT
    go out).  An `OutcomeUnknown` as well, so the driver never takes it for "certainly not
    fiscal" (`Register.receipt` would forget the key): an earlier frame of the same call may
    have been the closing command, and only the next holder's settling, from the FN, can say."""


Confirm = Callable[[str, int, float], bool]  # `Storage.confirm_lease`
Follower = Callable[[float], None]  # told the local deadline (on the lease's clock) when it moves


class Lease:
    """This instance's lease of one register, as the keeper last saw it.  ``confirm``: how the
    database confirms a grant (`Storage.confirm_lease`); None: `confirm` checks the local
    deadline only (a storage with no other instance)."""

    def __init__(
        self,
        register: str,
        ttl: float,
        *,
        clock: Callable[[], float] = lease_clock,
        confirm: Confirm | None = None,
    ):
        self.register = register
        self.ttl = ttl
        self.clock = clock
        self._confirm = confirm
        self._deadline = 0.0  # local clock: held before it
        self._generation = 0  # +1 each time the lease is (re)granted after being not held
        self._epoch = 0  # the database's number of the grant held (0: none yet)
        self._changed = threading.Condition()
        self._followers: list[Follower] = []
        # balancing (`LeaseKeeper`): asked to hand the register over; when it was handed over
        # (grants of renewals sent before then are ignored); left alone until; not held since
        self.give_up_asked = False
        self._given_up_at = -math.inf
        self.cooldown_until = 0.0
        self.unheld_since = clock()
        self.handed_over = False  # handed over at least once
        self.sticky = False  # handed over, and nobody took it: never handed over again

    def held(self) -> bool:
        return self.clock() < self._deadline

    @property
    def generation(self) -> int:
        """The current grant (0: never held)."""
        return self._generation

    @property
    def epoch(self) -> int:
        """The database's epoch of the current grant (0: never held)."""
        return self._epoch

    def grant(self) -> tuple[int, int]:
        """The current grant as (`generation`, `epoch`), read together."""
        with self._changed:
            return self._generation, self._epoch

    @property
    def deadline(self) -> float:
        """The local deadline (on `clock`): held before it."""
        return self._deadline

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

    def confirm(self, generation: int) -> None:
        """`check` here, then in the database: this instance holds the lease with the epoch of
        grant ``generation`` *now*, by the database's clock -- what a paused machine's stopped
        local clock cannot tell.  Raises `CommandLeaseLost` (and the lease is not held from
        now) when the database says no or cannot say: nothing may be sent then."""
        with self._changed:
            self.check(generation)
            epoch = self._epoch
        if self._confirm is None:
            return
        try:
            # With the socket's user timeout to spare: a frame sent now is either at the
            # register or abandoned by the kernel before the lease can pass to anyone else --
            # even when a pause ate the local margin and only milliseconds were left.
            confirmed = self._confirm(self.register, epoch, user_timeout(self.ttl))
        except Exception as error:  # unreachable, or anything: not confirmed is not held
            raise CommandLeaseLost(
                f"register {self.register}'s lease could not be confirmed in the database "
                f"({error}): nothing was sent"
            ) from error
        if not confirmed:
            self.lost(generation)
            raise CommandLeaseLost(
                f"the database says this instance no longer holds register {self.register}'s "
                f"lease of epoch {epoch} (it expired, or another instance took it): nothing "
                "was sent; the register's next holder settles its receipt"
            )
        self.check(generation)  # the local deadline, after the round trip

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the lease to be held; whether it is."""
        with self._changed:
            if not self.held():
                self._changed.wait(timeout)
        return self.held()

    def follow(self, follower: Follower) -> None:
        """Call ``follower(deadline)`` whenever the local deadline moves (a renew, a loss)."""
        with self._changed:
            self._followers.append(follower)

    def unfollow(self, follower: Follower) -> None:
        with self._changed:
            if follower in self._followers:
                self._followers.remove(follower)

    def _moved(self) -> None:
        """The deadline changed (the lock is held): tell the waiters and the followers."""
        self._changed.notify_all()
        for follower in list(self._followers):
            try:
                follower(self._deadline)
            except Exception:
                log.exception("register %s: a lease follower failed", self.register)

    # -- the keeper's side (and a worker's when the database refused a fenced write) -------------

    def granted(self, sent_at: float, epoch: int = 1) -> None:
        """The storage granted (or renewed) it, as ``epoch``, by a query sent at local time
        ``sent_at``."""
        with self._changed:
            if sent_at < self._given_up_at:
                return  # a renewal under way while the worker handed the register over
            if not self.held() or epoch != self._epoch:
                # Not held, or held under another epoch (this machine was paused while the lease
                # expired in the database and was granted afresh): a new grant either way.
                self._generation += 1
                self._epoch = epoch
            self._deadline = max(self._deadline, sent_at + self.ttl / 2)
            self._moved()

    def refused(self) -> None:
        """Another instance holds it: not ours, from now."""
        with self._changed:
            self._drop()

    def lost(self, generation: int) -> None:
        """The database refused a write or a confirmation fenced by grant ``generation``: not
        ours from now (unless the keeper granted it afresh meanwhile: a later generation)."""
        with self._changed:
            if generation == self._generation:
                self._drop()

    def _drop(self) -> None:
        if self.held():
            self.unheld_since = self.clock()
        self._deadline = 0.0
        self.give_up_asked = False
        self._moved()

    def given_up(self, cooldown: float) -> None:
        """The worker handed its register over (asked to, `give_up_asked`): not held from now,
        and not taken again for ``cooldown`` seconds (another instance takes it meanwhile)."""
        with self._changed:
            now = self.clock()
            self._deadline = 0.0
            self._given_up_at = now
            self.give_up_asked = False
            self.cooldown_until = now + cooldown
            self.unheld_since = now
            self.handed_over = True
            self._moved()

    def released(self) -> None:
        """Given up (`LeaseKeeper.stop`)."""
        self.refused()


class LeaseGuard:
    """A `Commander` that sends a frame only while ``lease`` is held under grant ``generation``
    (wrapped around a connected device's commander: ``device.commander = LeaseGuard(...)``).

    A session with a ``deadline`` (`kkt.transport.session.LinkSession`, whose clock is
    `time.monotonic`) gets the lease's local deadline as its own, moved with every renew: an
    exchange still running when the lease runs out is abandoned, nothing more is written."""

    def __init__(self, inner: Commander, lease: Lease, generation: int) -> None:
        self.inner = inner
        self.lease = lease
        self.generation = generation
        self._session: Any = inner if hasattr(inner, "deadline") else None
        self._limit: float | None = getattr(self._session, "deadline", None)  # its own, if any
        if self._session is not None:
            lease.follow(self._follow)
            self._follow(lease.deadline)

    @property
    def asks_ahead(self) -> bool:
        """Whether the wrapped session takes ``sync_after`` (passed on, `exchange`)."""
        return bool(getattr(self.inner, "asks_ahead", False))

    def exchange(
        self,
        payload: bytes,
        *,
        answer_timeout: float,
        resend: bool = True,
        sync_after: bool = False,
    ) -> bytes:
        if resend:
            # A query (``resend=True``: `Request.REPEATABLE`) changes nothing in the FN: a stale
            # holder's query cannot make a second document, so the local deadline suffices.
            self.lease.check(self.generation)
        else:
            # A frame that may move money (opening, a line, a payment, closing, a report...):
            # the database confirms the grant first -- one round trip, paid only for these.
            self.lease.confirm(self.generation)
        # The next sync's ENQ asked ahead is no frame: it needs no grant beyond this command's.
        ahead = {"sync_after": True} if sync_after and self.asks_ahead else {}
        return self.inner.exchange(payload, answer_timeout=answer_timeout, resend=resend, **ahead)

    def _follow(self, deadline: float) -> None:
        """The lease's local deadline, on the session's clock (monotonic: the difference is
        taken now, so the two clocks need only run at the same rate)."""
        if self.lease.generation != self.generation:
            deadline = 0.0  # a later grant is not this connection's
        moved = time.monotonic() + (deadline - self.lease.clock())
        if self._limit is not None:
            moved = min(moved, self._limit)
        self._session.deadline = moved

    def close(self) -> None:
        if self._session is not None:
            self.lease.unfollow(self._follow)
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
        clock: Callable[[], float] = lease_clock,
    ) -> None:
        if not ttl > 0:
            raise ValueError(f"the lease TTL must be a positive number of seconds, not {ttl!r}")
        self.storage = storage
        self.ttl = ttl
        self.clock = clock  # local seconds, `lease_clock` (tests give their own)
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
                lease = self._leases[register] = Lease(
                    register, self.ttl, clock=self.clock, confirm=self.storage.confirm_lease
                )
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
                # Noted before the lease is looked at: a worker handing the register over
                # after this moment (`Lease.given_up`) makes the renewal below be ignored, and
                # one that did so before is seen as not held here.
                sent_at = now = self.clock()
                free_long = now - lease.unheld_since >= FREE_AFTER * self.ttl
                if not lease.held():
                    if now < lease.cooldown_until:
                        continue
                    if held >= share and not lease.sticky and not free_long:
                        continue
                epoch = self.storage.take_lease(lease.register, self.ttl)
                if epoch:
                    was_held = lease.held()
                    lease.granted(sent_at, int(epoch))
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
