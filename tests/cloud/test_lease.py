"""`Lease` and `LeaseKeeper` against a storage stand-in: renewals, a lease taken by another
instance, an unreachable storage (logged once), the guard around a register's link."""

from __future__ import annotations

import logging
import threading

import pytest
from kkt.cloud.lease import CommandLeaseLost, Lease, LeaseGuard, LeaseKeeper
from kkt.cloud.storage.base import LeaseLost, StorageUnavailable

import kkt


class Leases:
    """What the keeper uses of a storage: take/renew answers the test sets."""

    instance = "test:1:abcdef"

    def __init__(self) -> None:
        self.granting = True
        self.down = False
        self.takes: list[str] = []
        self.heartbeats = 0
        self.dropped: list[str] = []
        self.changed = threading.Condition()

    def take_lease(self, register: str, ttl: float) -> bool:
        if self.down:
            raise StorageUnavailable("db.example: connection refused (test)")
        with self.changed:
            self.takes.append(register)
            self.changed.notify_all()
        return self.granting

    def heartbeat(self) -> None:
        if self.down:
            raise StorageUnavailable("db.example: connection refused (test)")
        self.heartbeats += 1

    def drop_lease(self, register: str) -> None:
        self.dropped.append(register)


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
