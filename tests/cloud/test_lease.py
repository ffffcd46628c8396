"""`Lease` and `LeaseKeeper` against a storage stand-in: renewals, a lease taken by another
instance, an unreachable storage (logged once), the guard around a register's link (the database
confirms money-moving frames, the session's deadline follows the lease); then on PostgreSQL: a
holder paused after its begin, and a renewal racing a hand-over."""

from __future__ import annotations

import datetime as dt
import logging
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kkt.cloud.lease import (
    FREE_AFTER,
    CommandLeaseLost,
    Lease,
    LeaseGuard,
    LeaseKeeper,
    lease_clock,
    user_timeout,
)
from kkt.cloud.storage.base import InstanceView, LeaseLost, StorageUnavailable

import kkt
from kkt import Item, Payments, Receipt, Vat


class Leases:
    """What the keeper uses of a storage: take/renew answers the test sets."""

    instance = "test:1:abcdef"

    def __init__(self) -> None:
        self.granting = True
        self.epoch = 1  # of the grant take_lease gives
        self.down = False
        self.takes: list[str] = []
        self.heartbeats = 0
        self.dropped: list[str] = []
        self.live: list[InstanceView] = []
        self.changed = threading.Condition()

    def take_lease(self, register: str, ttl: float) -> int:
        if self.down:
            raise StorageUnavailable("db.example: connection refused (test)")
        with self.changed:
            self.takes.append(register)
            self.changed.notify_all()
        return self.epoch if self.granting else 0

    def confirm_lease(self, register: str, epoch: int, margin: float = 0.0) -> bool:
        if self.down:
            raise StorageUnavailable("db.example: connection refused (test)")
        return self.granting and epoch == self.epoch

    def heartbeat(self) -> None:
        if self.down:
            raise StorageUnavailable("db.example: connection refused (test)")
        self.heartbeats += 1

    def drop_lease(self, register: str) -> None:
        self.dropped.append(register)

    def instances(self) -> list[InstanceView]:
        return list(self.live)


def keeper_of(storage: Leases, ttl: float = 3600.0) -> LeaseKeeper:
    keeper: LeaseKeeper = LeaseKeeper(storage, ttl)  # type: ignore[arg-type]
    return keeper


def test_a_lease_is_held_once_granted_and_not_after_another_instance_took_it() -> None:
    storage = Leases()
    keeper = keeper_of(storage)
    lease = keeper.lease("r1")
    assert not lease.held() and lease.generation == 0
    with pytest.raises(LeaseLost):
        lease.check()
    keeper.round()
    assert lease.held() and lease.generation == 1 and storage.heartbeats == 1
    lease.check(1)
    keeper.round()  # a renew: the same grant
    assert lease.held() and lease.generation == 1
    storage.granting = False
    keeper.round()
    assert not lease.held()
    storage.granting = True
    keeper.round()
    assert lease.held() and lease.generation == 2
    with pytest.raises(LeaseLost, match="taken again"):
        lease.check(1)  # a connection made under the first grant may not go on


def test_the_keeper_renews_on_its_own() -> None:
    storage = Leases()
    keeper = keeper_of(storage, ttl=0.05)
    lease = keeper.lease("r1")
    keeper.start()
    try:
        with storage.changed:
            assert storage.changed.wait_for(lambda: len(storage.takes) >= 5, 60)
    finally:
        keeper.stop()
    assert lease.generation >= 1
    assert storage.dropped in ([], ["r1"])  # given up when stopped, if held then
    assert not lease.held()


def test_an_unreachable_storage_is_logged_once_and_the_lease_runs_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = Leases()
    clock = [0.0]
    keeper = keeper_of(storage, ttl=10.0)
    lease = keeper.lease("r1")
    keeper.round()
    assert lease.held()
    storage.down = True
    with caplog.at_level(logging.WARNING, logger="kkt.cloud.lease"):
        for _ in range(3):
            keeper.round()
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1 and "connection refused" in unreachable[0].getMessage()
    # The local deadline is what stops a worker: a lease granted by a renew sent at t stays
    # held until t + ttl/2 on the local clock, not a moment longer.
    timed = Lease("r2", 10.0, clock=lambda: clock[0])
    timed.granted(sent_at=100.0)
    clock[0] = 104.9
    assert timed.held()
    clock[0] = 105.0
    assert not timed.held()
    storage.down = False
    with caplog.at_level(logging.WARNING, logger="kkt.cloud.lease"):
        keeper.round()
    assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_the_guard_sends_no_frame_without_the_lease_and_says_the_outcome_is_open() -> None:
    sent: list[bytes] = []

    class Link:
        def exchange(self, payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes:
            sent.append(payload)
            return b"ok"

        def close(self) -> None:
            pass

    clock = [0.0]
    lease = Lease("r1", 10.0, clock=lambda: clock[0])
    lease.granted(sent_at=0.0)
    guard = LeaseGuard(Link(), lease, lease.generation)
    assert guard.exchange(b"one", answer_timeout=1.0) == b"ok"
    clock[0] = 6.0
    with pytest.raises(CommandLeaseLost) as lost:
        guard.exchange(b"two", answer_timeout=1.0)
    assert sent == [b"one"]
    # an OutcomeUnknown too: the driver keeps the journal's key pending for the next holder
    assert isinstance(lost.value, kkt.OutcomeUnknown) and isinstance(lost.value, LeaseLost)


def test_a_keeper_needs_a_positive_ttl() -> None:
    with pytest.raises(ValueError, match="positive"):
        keeper_of(Leases(), ttl=0)


def _live(count: int) -> list[InstanceView]:
    now = dt.datetime.now(dt.UTC)
    return [InstanceView(f"h:{n}:000000", "h", n, now, now) for n in range(count)]


def test_the_keeper_holds_its_share_and_hands_the_rest_over_one_at_a_time() -> None:
    storage = Leases()
    clock = [1000.0]
    keeper = LeaseKeeper(storage, 10.0, clock=lambda: clock[0])  # type: ignore[arg-type]
    leases = [keeper.lease(name) for name in ("r1", "r2", "r3", "r4")]
    storage.live = _live(2)
    keeper.round()
    assert [lease.held() for lease in leases] == [True, True, False, False]  # its share: 2
    storage.live = _live(1)  # the other instance is gone: all four are this one's
    keeper.round()
    assert all(lease.held() for lease in leases)
    storage.live = _live(2)  # another joins: one register asked to move per round
    keeper.round()
    assert [lease.give_up_asked for lease in leases] == [False, False, False, True]
    keeper.round()
    assert sum(lease.give_up_asked for lease in leases) == 1  # still that one: not handed yet
    leases[3].given_up(cooldown=10.0)  # what the worker does between two requests
    takes = len(storage.takes)
    keeper.round()  # r4 left alone (its cooldown): the other instance takes it
    assert "r4" not in storage.takes[takes:] and not leases[3].held()
    assert leases[2].give_up_asked
    # Nobody took r4 (no other instance lists it): after FREE_AFTER TTLs it is taken back for
    # good, and never asked to move again.
    clock[0] += 10.0 * FREE_AFTER
    leases[2].give_up_asked = False
    keeper.round()
    assert leases[3].held() and leases[3].sticky
    assert not leases[3].give_up_asked


def test_a_renewal_sent_before_a_hand_over_does_not_make_it_held_again() -> None:
    clock = [0.0]
    lease = Lease("r1", 10.0, clock=lambda: clock[0])
    lease.granted(sent_at=0.0)
    clock[0] = 1.0
    lease.given_up(cooldown=10.0)
    lease.granted(sent_at=0.5)  # that renewal's answer came after the hand-over
    assert not lease.held()
    lease.granted(sent_at=12.0)
    clock[0] = 12.0
    assert lease.held()


# -- the database's word: epochs, confirmed frames, the session's deadline ------------------------


class Link:
    """A commander that records what goes out."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def exchange(self, payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes:
        self.sent.append(payload)
        return b"ok"

    def close(self) -> None:
        pass


def test_the_guard_confirms_only_money_moving_frames_in_the_database() -> None:
    asked: list[tuple[str, int, float]] = []
    answer: list[Any] = [True]

    def confirm(register: str, epoch: int, margin: float) -> bool:
        asked.append((register, epoch, margin))
        if isinstance(answer[0], Exception):
            raise answer[0]
        return bool(answer[0])

    lease = Lease("r1", 3600.0, confirm=confirm)
    lease.granted(lease_clock(), epoch=7)
    link = Link()
    guard = LeaseGuard(link, lease, lease.generation)
    guard.exchange(b"query", answer_timeout=1.0)  # resend=True: a query, the local clock only
    assert asked == []
    guard.exchange(b"open", answer_timeout=1.0, resend=False)
    # asked with the frame's time on the wire to spare (the socket's user timeout)
    assert asked == [("r1", 7, user_timeout(3600.0))] and link.sent == [b"query", b"open"]
    answer[0] = StorageUnavailable("db.example: connection refused (test)")
    with pytest.raises(CommandLeaseLost, match="could not be confirmed"):
        guard.exchange(b"line", answer_timeout=1.0, resend=False)
    answer[0] = False  # the lease expired in the database: this machine's clock did not see it
    with pytest.raises(CommandLeaseLost, match="epoch 7"):
        guard.exchange(b"close", answer_timeout=1.0, resend=False)
    assert link.sent == [b"query", b"open"]
    assert not lease.held()  # and no query goes out either from now
    with pytest.raises(CommandLeaseLost):
        guard.exchange(b"query", answer_timeout=1.0)


def test_a_grant_of_another_epoch_is_a_new_grant_and_a_stale_loss_changes_nothing() -> None:
    clock = [0.0]
    lease = Lease("r1", 10.0, clock=lambda: clock[0])
    lease.granted(0.0, epoch=1)
    lease.granted(1.0, epoch=1)  # a renewal
    assert lease.grant() == (1, 1)
    # still held on this clock (it stood still), but the database granted afresh: a new grant
    lease.granted(2.0, epoch=3)
    assert lease.grant() == (2, 3) and lease.held()
    lease.lost(1)  # a write fenced by the first grant was refused: old news
    assert lease.held()
    lease.lost(2)
    assert not lease.held() and lease.generation == 2


class Session(Link):
    """A link session's one attribute the guard moves: its ``deadline`` (time.monotonic)."""

    def __init__(self, deadline: float | None = None) -> None:
        super().__init__()
        self.deadline = deadline


def test_the_sessions_deadline_follows_the_lease() -> None:
    clock = [100.0]
    lease = Lease("r1", 10.0, clock=lambda: clock[0])
    lease.granted(100.0)  # held until 105 on the lease's clock: 5 s from now
    session = Session()
    before = time.monotonic()
    guard = LeaseGuard(session, lease, lease.generation)
    after = time.monotonic()
    assert session.deadline is not None and before + 5.0 <= session.deadline <= after + 5.0
    clock[0] = 103.0
    before = time.monotonic()
    lease.granted(103.0)  # a renew: until 108, 5 s from now
    after = time.monotonic()
    assert before + 5.0 <= session.deadline <= after + 5.0
    lease.refused()  # lost: an exchange under way ends at once
    assert session.deadline <= time.monotonic()
    guard.close()
    lease.granted(103.0)
    assert session.deadline <= time.monotonic()  # closed: not followed any more
    # a session with a time limit of its own keeps it when that comes first
    limited = Session(deadline=time.monotonic() + 1.0)
    LeaseGuard(limited, lease, lease.generation)
    assert limited.deadline is not None and limited.deadline <= time.monotonic() + 1.0


# -- on PostgreSQL ---------------------------------------------------------------------------------


def _wait_until(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {limit} s")
        time.sleep(0.05)


def _coffee() -> Receipt:
    items = (Item("Кофе", 19_900, Decimal(2), Vat.VAT20),)
    return Receipt(items=items, payments=Payments(cash=39_800))


def test_a_holder_paused_after_its_begin_does_not_sell_after_the_takeover(
    postgres_dsn: str, tmp_path: Path
) -> None:
    """A paused virtual machine (QEMU stop/cont: its monotonic clock stands still over the pause)
    resumes with its lease "held" locally.  A begins order-1 (the journal's fence passes), is
    paused; its lease runs out in the database; B takes the register over and settles order-1
    (pending, nothing in the FN: sold) -> document N+1; A resumes: the guard asks the database
    before the opening frame, hears "not yours" and sends nothing.  One document.  (Modelled: A's
    keeper clock is frozen; one emulated register, two devices on it.)"""
    from kkt.cloud.storage.postgres import PostgresStorage

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
            journal_a = a.journal("r1", fence=lease.epoch)

            class PausedAfterBegin:
                def __getattr__(self, name: str) -> object:
                    return getattr(journal_a, name)

                def begin(self, *args: Any, **kwargs: Any) -> None:
                    journal_a.begin(*args, **kwargs)
                    # -- A is paused here; its lease lapses and B takes r1 over --
                    assert a.take_lease("r1", 0)
                    _wait_until(lambda: bool(b.take_lease("r1", 600)), "taken over")
                    device_b = type(register_a.device)(link, password=30)
                    epoch_b = b.take_lease("r1", 600)
                    register_b = kkt.Register(device_b, journal=b.journal("r1", fence=epoch_b))
                    sold = register_b.sell(_coffee(), key="order-1")
                    assert sold.document_number == first + 1
                    # -- A resumes --

            register_a.journal = PausedAfterBegin()  # type: ignore[assignment]
            with pytest.raises(kkt.KktError):  # (the pool: `LeaseLost`, for the next holder)
                register_a.sell(_coffee(), key="order-1")
            assert not lease.held()
            register_a.device.commander = link
            assert register_a.fn_info().last_document == first + 1, "order-1 was sold twice"
            entry = b.journal("r1").get("order-1")  # B's entry stands: A's journal was fenced
            assert entry is not None and entry.state == "done"
    finally:
        a.close()
        b.close()


def test_a_handed_over_lease_is_not_held_again_by_a_renewal_racing_the_hand_over(
    postgres_dsn: str,
) -> None:
    """The worker hands its register over (`Lease.given_up`, then ``drop_lease``) just after the
    keeper's round read ``lease.held()`` (True), before it sends the renewal: the renewal was noted
    as sent before that read, so before the hand-over, and is ignored -- not held again locally
    while the worker's drop_lease, landing after the renewal, frees the row for B."""
    from kkt.cloud.storage.postgres import PostgresStorage

    a, b = PostgresStorage(postgres_dsn), PostgresStorage(postgres_dsn)
    try:
        keeper = LeaseKeeper(a, 10.0)
        lease = keeper.lease("r1")
        keeper.round()
        assert lease.held()
        armed = [True]
        held = lease.held

        def held_then_handed_over() -> bool:
            answer = held()
            # asked by the keeper's round before it renews: the worker hands over right after
            if armed[0] and sys._getframe(1).f_code.co_name == "round":
                armed[0] = False
                lease.given_up(cooldown=lease.ttl)
            return answer

        lease.held = held_then_handed_over  # type: ignore[method-assign]
        keeper.round()
        assert not armed[0], "the hand-over did not happen in the round"
        a.drop_lease("r1")  # the worker's drop_lease, landing after the keeper's renewal
        assert b.take_lease("r1", 60)  # the row is free: b takes r1 and drives it
        assert not lease.held(), "a holds r1 locally while b holds it in the database"
    finally:
        a.close()
        b.close()
