"""`Lease` and `LeaseKeeper` against a storage stand-in: renewals, a lease taken by another
instance, an unreachable storage (logged once), the guard around a register's link."""

from __future__ import annotations

import datetime as dt
import logging
import threading

import pytest
from kkt.cloud.lease import FREE_AFTER, CommandLeaseLost, Lease, LeaseGuard, LeaseKeeper
from kkt.cloud.storage.base import InstanceView, LeaseLost, StorageUnavailable

import kkt


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

    def confirm_lease(self, register: str, epoch: int) -> bool:
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
