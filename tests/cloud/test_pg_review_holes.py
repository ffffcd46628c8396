"""Review of the PostgreSQL scale-out (branch review-pg): each test here FAILS on main and shows
one hole in exactly-once across two instances.  Each says the interleaving it stands for; the
fix proposed is in the review report.  (They pass once the hole is closed.)"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kkt.cloud.lease import LeaseGuard, LeaseKeeper
from kkt.cloud.storage import open_storage
from kkt.cloud.storage.base import LeaseLost, StorageError
from kkt.cloud.storage.postgres import PostgresStorage
from kkt.cloud.storage.sqlite import SqliteStorage
from support.cloud import RESULT, make_order

import kkt
from kkt import Item, Payments, Receipt, Vat
from kkt.errors import KktError

Open = Callable[..., PostgresStorage]
FN_R1 = "9999078900012345"
FN_R2 = "9999078900099999"


@pytest.fixture
def open_instance(postgres_dsn: str) -> Iterator[Open]:
    opened: list[PostgresStorage] = []

    def open_(**options: object) -> PostgresStorage:
        store = PostgresStorage(postgres_dsn, **options)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def _wait_until(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {limit} s")
        time.sleep(0.05)


def _take_over(old: PostgresStorage, new: PostgresStorage, register: str) -> None:
    """``old``'s lease of ``register`` runs out (a holder that stalled); ``new`` takes it."""
    assert old.take_lease(register, 0)
    _wait_until(lambda: new.take_lease(register, 60), "taken over")


def test_a_stale_instance_cannot_fail_a_request_the_new_holder_sold(open_instance: Open) -> None:
    """pool.py `_Worker._fail`: ``lease.check()`` (local) then ``storage.fail`` -- a statement
    the database does not fence.  A holder that stalls between the two (GC/VM pause, a pool
    checkout waiting ``connect_timeout``, a statement in TCP retransmission up to
    ``tcp_user_timeout`` = 15 s > TTL) lands its fail after B took the register over and sold the
    request: the report says *fail* for a fiscal receipt (the client sells it again), and B's
    complete is refused.  (`fail` does not even name the register in its WHERE.)"""
    a, b = open_instance(), open_instance()
    assert a.accept(make_order("e1"), idempotency_key=None).created
    assert a.take_lease("r1", 60)
    job = a.claim("r1", "demo")
    assert job is not None
    # a checks its lease (held), then stalls; its lease runs out and b takes r1 over
    _take_over(a, b, "r1")
    journal_b = b.journal("r1")
    journal_b.begin(job.uuid, 6, 1, 40_000, FN_R1)  # b settles the assigned request: sells it
    journal_b.done(job.uuid, {**RESULT, "document_number": 7, "fn_number": FN_R1})
    # a wakes up and sends the fail it decided on before the stall
    with pytest.raises((StorageError, LeaseLost)):
        a.fail(job.uuid, {"code": 1, "text": "invalid document", "type": "agent"})
    b.complete(job.uuid, "r1", {**RESULT, "fn_number": FN_R1})
    view = b.report(job.uuid)
    assert view is not None and view.status == "done"


def test_a_stale_release_lets_another_register_begin_over_the_holders_pending_key(
    open_instance: Open,
) -> None:
    """pool.py `_release_unbegun` (lease.held() checked once, then a loop of journal reads and
    releases), `_give_back`, and `_settle_orphans` (takes the DB lease, never checks its expiry)
    release without a fence.  A stale release after B began the request puts it back in the
    queue; register r2 claims it; r2's begin is an unconditional upsert
    (``ON CONFLICT (key) DO UPDATE``) that overwrites r1's pending entry -- whichever of the two
    `get`s ran before the other's begin, both sell: two FN documents for one request."""
    a, b = open_instance(), open_instance()
    assert a.accept(make_order("e1"), idempotency_key=None).created
    assert a.take_lease("r1", 60)
    job = a.claim("r1", "demo")
    assert job is not None
    assert a.journal("r1").get(job.uuid) is None  # a (down) reads: never begun -> release it
    _take_over(a, b, "r1")  # ... a stalls; b takes r1 over
    b.journal("r1").begin(job.uuid, 6, 1, 40_000, FN_R1)  # b settles it: begins the sale
    a.release(job.uuid, "r1")  # a's stale release lands
    # the request is back in the queue while r1 is selling it
    assert b.assigned("r1") != [], "a stale release took a begun request from its register"
    # and a second register may begin the same key over r1's entry
    assert b.take_lease("r2", 60)
    with pytest.raises((KktError, StorageError)):
        b.journal("r2").begin(job.uuid, 40, 1, 40_000, FN_R2)
    entry = b.journal("r1").get(job.uuid)
    assert entry is not None and entry.fn == FN_R1 and entry.before == 6


def test_begin_never_takes_over_another_registers_pending_key(open_instance: Open) -> None:
    """The second half of the above on its own: PostgresJournal.begin (postgres.py ~825) upserts
    over a pending entry that another register began (keys are global).  With the SQLite file
    one process and one lock serialize `get` + `begin`; across instances nothing does."""
    a = open_instance()
    assert a.take_lease("r1", 60) and a.take_lease("r2", 60)
    a.journal("r1").begin("k1", 6, 1, 40_000, FN_R1)
    with pytest.raises((KktError, StorageError)):
        a.journal("r2").begin("k1", 40, 1, 40_000, FN_R2)
    entry = a.journal("r1").get("k1")
    assert entry is not None and (entry.fn, entry.before) == (FN_R1, 6)


def test_a_handed_over_lease_is_not_held_again_by_a_renewal_racing_the_hand_over(
    open_instance: Open,
) -> None:
    """lease.py `LeaseKeeper.round`: ``lease.held()`` is read (True), then ``sent_at`` is taken.
    The worker's `_hand_over` runs in between (`Lease.given_up`, then `drop_lease`): sent_at is
    after ``_given_up_at``, so `Lease.granted` does not ignore the renewal -- the lease is held
    again locally (a new grant: the worker reconnects and settles/claims), while the worker's
    drop_lease, landing after the renewal, freed the row for B.  Two instances drive r1.
    (Passes once `LeaseKeeper.round` reads `sent_at` before `lease.held()`.)"""
    a, b = open_instance(), open_instance()
    keeper = LeaseKeeper(a, 10.0)
    lease = keeper.lease("r1")
    keeper.round()
    assert lease.held()
    calls_from_round = 0

    def racing_clock() -> float:
        nonlocal calls_from_round
        if sys._getframe(1).f_code.co_name == "round":
            calls_from_round += 1
            if calls_from_round == 2:  # between held() and sent_at: the worker hands over now
                lease.given_up(cooldown=lease.ttl)
        return time.monotonic()

    keeper._clock = racing_clock
    keeper.round()
    a.drop_lease("r1")  # the worker's drop_lease, landing after the keeper's renewal
    assert b.take_lease("r1", 60)  # the row is free: b takes r1 and drives it
    assert not lease.held(), "a holds r1 locally while b holds it in the database"


def test_a_libpq_keyword_dsn_is_not_taken_for_a_sqlite_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """storage/__init__.py `is_postgres_url`: only ``postgresql://``/``postgres://`` count.  The
    libpq keyword form (``host=... dbname=... password=...``), which psycopg and every libpq tool
    accept, silently opens a *SQLite file* named after the DSN (password included) in the working
    directory: each instance then runs alone on its own file -- two instances drive the same
    registers with separate queues and journals -- and ``kkt cloud status`` prints the DSN,
    password and all, in its "no service state at ..." message."""
    monkeypatch.chdir(tmp_path)
    dsn = "host=db.example dbname=kkt user=kkt password=s3cret"
    try:
        storage = open_storage(dsn)
    except StorageError as error:
        assert "s3cret" not in str(error)
        return
    try:
        assert not isinstance(storage, SqliteStorage), "a libpq DSN opened a SQLite file"
    finally:
        storage.close()
        assert not (tmp_path / dsn).exists(), "a SQLite file named after the DSN was made"


def test_a_malformed_dsn_never_shows_its_password(caplog: pytest.LogCaptureFixture) -> None:
    """postgres.py `PostgresStorage.__init__`: the DSN goes to psycopg_pool unchecked.  libpq's
    parse error quotes the whole URI: psycopg_pool logs it (WARNING "error connecting in
    'kkt-cloud': ... "postgresql://u:s3cret@[::1/db"") on every retry, and the raw
    `psycopg.ProgrammingError` (not a StorageError: the CLI prints a traceback) carries it too.
    (`_unavailable` would not help: its own conninfo_to_dict raises on such a DSN.)"""
    caplog.set_level(logging.DEBUG)
    dsn = "postgresql://u:s3cret@[::1/db"  # a typo: the closing bracket is missing
    with pytest.raises(StorageError) as raised:
        PostgresStorage(dsn, connect_timeout=1)
    assert "s3cret" not in str(raised.value)
    assert not [r for r in caplog.records if "s3cret" in r.getMessage()]


def test_a_holder_paused_after_its_begin_does_not_sell_after_the_takeover(
    postgres_dsn: str, tmp_path: Path
) -> None:
    """lease.py `Lease.held` / `LeaseGuard`: every frame after ``begin`` is fenced by the LOCAL
    monotonic clock only.  A paused VM (QEMU stop/cont keeps the guest's kvmclock, so
    CLOCK_MONOTONIC does not advance over the pause; a host suspend stops it too) resumes with its
    lease "held" for what was left of TTL/2.  Interleaving: A begins order-1 (the DB fence
    passes), is paused; its DB lease runs out; B takes r1 over, settles order-1 (pending, nothing
    in the FN: sold afresh) -> document N+1; A resumes, its guard passes, it opens, pays and
    closes -> document N+2, and its unfenced `done` overwrites B's entry.  Two documents.
    (Modelled: A's keeper clock is frozen; one emulated register, two devices on it.)  A fix:
    the guard confirms the lease in the DATABASE (epoch of its grant) before each frame sent
    with ``resend=False`` (the money-moving ones): one round trip per such frame."""
    a, b = PostgresStorage(postgres_dsn), PostgresStorage(postgres_dsn)
    url = f"emulator:{tmp_path / 'register'}"
    try:
        with kkt.connect(url, protocol="shtrih") as register_a:
            register_a.open_shift()
            first = register_a.fn_info().last_document
            link = register_a.device.commander
            keeper = LeaseKeeper(a, 10.0, clock=lambda: 0.0)  # A's clock, stopped by the pause
            lease = keeper.lease("r1")
            keeper.round()  # taken, as the pool's keeper does
            assert lease.held()
            register_a.device.commander = LeaseGuard(link, lease, lease.generation)
            journal_a = a.journal("r1")

            class PausedAfterBegin:
                def __getattr__(self, name: str) -> object:
                    return getattr(journal_a, name)

                def begin(self, *args: Any, **kwargs: Any) -> None:
                    journal_a.begin(*args, **kwargs)
                    # -- A is paused here; its lease lapses and B takes r1 over --
                    assert a.take_lease("r1", 0)
                    _wait_until(lambda: b.take_lease("r1", 600), "taken over")
                    device_b = type(register_a.device)(link, password=30)
                    register_b = kkt.Register(device_b, journal=b.journal("r1"))
                    sold = register_b.sell(coffee(), key="order-1")
                    assert sold.document_number == first + 1
                    # -- A resumes --

            register_a.journal = PausedAfterBegin()  # type: ignore[assignment]
            with contextlib.suppress(kkt.KktError):
                register_a.sell(coffee(), key="order-1")
            register_a.device.commander = link
            assert register_a.fn_info().last_document == first + 1, "order-1 was sold twice"
    finally:
        a.close()
        b.close()


def coffee() -> Receipt:
    items = (Item("Кофе", 19_900, Decimal(2), Vat.VAT20),)
    return Receipt(items=items, payments=Payments(cash=39_800))
