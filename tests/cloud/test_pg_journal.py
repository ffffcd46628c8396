"""The drivers' journal in PostgreSQL (`PostgresJournal`) behaves as `kkt.journal.Journal` does:
the same checks run over the SQLite file, the SQLite storage's journal and PostgreSQL's, then a
long random run of every method compared call by call with the SQLite file; and a real
(emulated) register sells through it, its fence refusing a receipt once the lease is gone."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from kkt.cloud.storage.base import LeaseLost
from kkt.cloud.storage.postgres import PostgresStorage
from kkt.cloud.storage.sqlite import SqliteStorage
from kkt.protocols.shtrih.link import HostSettings

import kkt
from kkt import Item, Payments, Receipt, Vat
from kkt.journal import Entry, Journal, JournalStore

FN = "9999078900012345"
OTHER_FN = "9999078900099999"


@pytest.fixture(params=["file", "sqlite-storage", "postgres"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JournalStore]:
    if request.param == "file":
        store: JournalStore = Journal(tmp_path / "journal.sqlite")
        yield store
        store.close()
    elif request.param == "sqlite-storage":
        storage = SqliteStorage(tmp_path / "cloud.sqlite")
        store = storage.journal("r1")
        yield store
        store.close()
        storage.close()
    else:
        pg = PostgresStorage(request.getfixturevalue("postgres_dsn"))
        assert pg.take_lease("r1", 600)
        store = pg.journal("r1")
        yield store
        store.close()
        pg.close()


def result(number: int, fn: str = FN) -> dict[str, object]:
    return {"fn_number": fn, "document_number": number, "fiscal_sign": 1234567890}


def test_a_key_goes_pending_then_done_and_keeps_what_it_began_with(
    journal: JournalStore,
) -> None:
    assert journal.get("k1") is None
    journal.begin("k1", 7, 1, 40_000, FN, "fp1", "cash=40000")
    assert journal.get("k1") == Entry("k1", "pending", 7, 1, 40_000, None, FN, "fp1", "cash=40000")
    journal.done("k1", result(8))
    assert journal.get("k1") == Entry(
        "k1", "done", 7, 1, 40_000, result(8), FN, "fp1", "cash=40000"
    )
    journal.forget("k1")  # a done key is never forgotten
    assert journal.get("k1") is not None
    journal.begin("k2", 8, 2, 5_000)  # the optional fields default to ''
    assert journal.get("k2") == Entry("k2", "pending", 8, 2, 5_000, None, "", "", "")
    journal.forget("k2")
    assert journal.get("k2") is None
    journal.forget("never-seen")  # nothing to do


def test_begin_again_replaces_the_entry(journal: JournalStore) -> None:
    journal.begin("k1", 7, 1, 40_000, FN, "fp1", "cash=40000")
    journal.done("k1", result(8))
    journal.begin("k1", 9, 2, 1_000, OTHER_FN, "fp2", "cash=1000")
    assert journal.get("k1") == Entry(
        "k1", "pending", 9, 2, 1_000, None, OTHER_FN, "fp2", "cash=1000"
    )


def test_claimed_and_next_begun_read_one_fn(journal: JournalStore) -> None:
    for key, before, number, fn in (
        ("a", 3, 4, FN),
        ("b", 4, 5, FN),
        ("c", 5, 6, OTHER_FN),
        ("d", 9, None, FN),  # pending: claims nothing
        ("e", 1, 12, FN),  # began early, resolved late: owns a late document
    ):
        journal.begin(key, before, 1, 100, fn)
        if number is not None:
            journal.done(key, result(number, fn))
    assert journal.claimed(4, FN) == {5, 12}
    assert journal.claimed(0, OTHER_FN) == {6}
    assert journal.claimed(100, FN) == set()
    assert journal.next_begun(3, FN) == 4
    assert journal.next_begun(4, FN) == 9
    assert journal.next_begun(9, FN) is None
    assert journal.next_begun(0, OTHER_FN) == 5


def test_a_random_run_answers_as_the_sqlite_journal_does(
    journal: JournalStore, tmp_path: Path
) -> None:
    reference = Journal(tmp_path / "reference.sqlite")
    rng = random.Random(19)
    keys = [f"k{n}" for n in range(12)]
    fns = [FN, OTHER_FN, ""]
    try:
        for step in range(300):  # each step: one call, made on both
            key, fn = rng.choice(keys), rng.choice(fns)
            before, number = rng.randrange(20), rng.randrange(1, 40)
            operation = rng.choice([1, 2])
            action = rng.choice(["begin", "done", "forget", "get", "claimed", "next_begun"])
            answers = []
            for store in (reference, journal):
                if action == "begin":
                    store.begin(key, before, operation, number * 100, fn, key, "x")
                elif action == "done":
                    store.done(key, result(number, fn))
                elif action == "forget":
                    store.forget(key)
                elif action == "get":
                    answers.append(store.get(key))
                elif action == "claimed":
                    answers.append(store.claimed(before, fn))
                else:
                    answers.append(store.next_begun(before, fn))
            if answers:
                assert answers[0] == answers[1], (step, action, key)
        for key in keys:
            assert journal.get(key) == reference.get(key)
    finally:
        reference.close()


def coffee() -> Receipt:
    items = (Item("Кофе", 19_900, Decimal(2), Vat.VAT20),)
    return Receipt(items=items, payments=Payments(cash=39_800))


def test_a_register_sells_through_the_postgres_journal_and_stops_at_its_fence(
    postgres_dsn: str, tmp_path: Path
) -> None:
    storage = PostgresStorage(postgres_dsn)
    url = f"emulator:{tmp_path / 'register'}"
    settings = HostSettings(ack=0.5, quiet=0.05, probe=0.2)
    try:
        assert storage.take_lease("r1", 600)
        with kkt.connect(url, settings=settings, protocol="shtrih") as register:
            register.journal = storage.journal("r1")
            register.open_shift()
            first = register.sell(coffee(), key="order-1")
            again = register.sell(coffee(), key="order-1")
            assert again.document_number == first.document_number and again.replayed
            entry = storage.journal("r1").get("order-1")
            assert entry is not None and entry.state == "done"
            assert entry.result is not None
            assert entry.result["document_number"] == first.document_number
            last = register.fn_info().last_document
            storage.drop_lease("r1")  # another instance may drive it now
            with pytest.raises(LeaseLost):
                register.sell(coffee(), key="order-2")
            assert register.fn_info().last_document == last  # nothing was sold
            assert storage.journal("r1").get("order-2") is None
    finally:
        storage.close()


class Guarded:
    """A register's device whose every call, once ``trip_after`` has run, raises `LeaseLost`
    (as the pool's guard does before each command once the lease is gone)."""

    def __init__(self, inner: object, trip_after: str) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_trip_after", trip_after)
        object.__setattr__(self, "lost", False)

    def __getattr__(self, name: str) -> object:
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        def call(*args: object, **kwargs: object) -> object:
            if self.lost:
                raise LeaseLost("the lease is gone (test): not sent")
            answer = value(*args, **kwargs)
            if name == self._trip_after:
                object.__setattr__(self, "lost", True)
            return answer

        return call

    def __setattr__(self, name: str, value: object) -> None:
        setattr(self._inner, name, value)


@pytest.mark.parametrize("trip_after", ["open_receipt", "close_receipt"])
def test_a_lease_lost_mid_receipt_leaves_the_key_pending_for_the_next_holder(
    postgres_dsn: str, tmp_path: Path, trip_after: str
) -> None:
    """Lost among the items: nothing is fiscal, the driver says so (`NotFiscalized`, the key
    freed).  Lost after the closing command: the receipt is fiscal, the key stays pending
    (`LeaseLost` is an `OutcomeUnknown`).  Either way the instance that takes the register over
    ends with one document for the key, never two."""
    a, b = PostgresStorage(postgres_dsn), PostgresStorage(postgres_dsn)
    url = f"emulator:{tmp_path / 'register'}"
    settings = HostSettings(ack=0.5, quiet=0.05, probe=0.2)
    try:
        assert a.take_lease("r1", 600)
        with kkt.connect(url, settings=settings, protocol="shtrih") as register:
            register.journal = a.journal("r1")
            register.open_shift()
            last = register.fn_info().last_document
            device = register.device
            register.device = Guarded(device, trip_after)  # type: ignore[assignment]
            try:
                expected = LeaseLost if trip_after == "close_receipt" else kkt.NotFiscalized
                with pytest.raises(expected):
                    register.sell(coffee(), key="order-1")
            finally:
                register.device = device
        entry = a.journal("r1").get("order-1")
        if trip_after == "close_receipt":
            assert entry is not None and entry.state == "pending"
        else:
            assert entry is None
        assert a.take_lease("r1", 0)  # a is gone; b takes the register over
        _wait_for(lambda: b.take_lease("r1", 600))
        with kkt.connect(url, settings=settings, protocol="shtrih") as register:
            register.journal = b.journal("r1")
            result = register.sell(coffee(), key="order-1")
            assert result.document_number == last + 1
            assert result.replayed == (trip_after == "close_receipt")
            assert register.fn_info().last_document == last + 1
    finally:
        a.close()
        b.close()


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60  # bounds a broken run only
    while not condition():
        assert time.monotonic() < deadline, "never became true"
        time.sleep(0.05)


def test_a_stalled_holder_cannot_forget_the_next_holders_pending_key(postgres_dsn: str) -> None:
    """A holds r1 and begins order-1; its lease passes to B, which begins order-1 afresh (having
    found nothing fiscal).  A, waking late, frees the key it thinks it owns: without the fence
    B's pending entry would vanish, and a crash of B mid-sale would leave a fiscal receipt no
    journal entry can be settled by."""
    a, b = PostgresStorage(postgres_dsn), PostgresStorage(postgres_dsn)
    try:
        assert a.take_lease("r1", 600)
        a.journal("r1").begin("order-1", 10, 1, 100, FN, "fp", "cash=100")
        assert a.take_lease("r1", 0)  # A's lease lapses at once
        _wait_for(lambda: b.take_lease("r1", 600))
        b.journal("r1").begin("order-1", 11, 1, 100, FN, "fp", "cash=100")
        a.journal("r1").forget("order-1")  # the stalled holder: refused by the fence
        entry = b.journal("r1").get("order-1")
        assert entry is not None and entry.state == "pending" and entry.before == 11
        b.journal("r1").forget("order-1")  # the holder may
        assert b.journal("r1").get("order-1") is None
    finally:
        a.close()
        b.close()


def test_begin_never_takes_over_another_registers_pending_key(postgres_dsn: str) -> None:
    """Keys are global; with the SQLite file one process and one lock serialize `get` and
    `begin`, across instances nothing does: two registers that both read "never begun" for one
    key must not both begin it.  The second is refused, naming the register and FN to settle
    it on; the first's entry stays as it was."""
    a = PostgresStorage(postgres_dsn)
    try:
        r1, r2 = a.take_lease("r1", 600), a.take_lease("r2", 600)
        a.journal("r1", r1).begin("k1", 6, 1, 40_000, FN, "fp", "cash=40000")
        with pytest.raises(kkt.KeyConflict, match="began on register r1") as raised:
            a.journal("r2", r2).begin("k1", 40, 1, 40_000, OTHER_FN)
        assert (raised.value.fn, raised.value.pending) == (FN, True)
        entry = a.journal("r1").get("k1")
        assert entry is not None and (entry.fn, entry.before, entry.state) == (FN, 6, "pending")
        a.journal("r2", r2).forget("k1")  # not r2's entry: left alone
        assert a.journal("r1").get("k1") == entry
        a.journal("r1", r1).done("k1", result(7))
        with pytest.raises(kkt.KeyConflict, match="it is done there") as raised:
            a.journal("r2", r2).begin("k1", 40, 1, 40_000, OTHER_FN)
        assert not raised.value.pending
        a.journal("r1", r1).begin("k1", 8, 1, 40_000, FN)  # its own register may begin it again
        assert a.journal("r1").get("k1") == Entry("k1", "pending", 8, 1, 40_000, None, FN, "", "")
        # without the lease, a key of another register is LeaseLost (nothing was checked)
        a.drop_lease("r2")
        with pytest.raises(LeaseLost):
            a.journal("r2", r2).begin("k1", 40, 1, 40_000, OTHER_FN)
    finally:
        a.close()


def test_done_marks_only_its_registers_entry_and_says_so_loudly_otherwise(
    postgres_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`done` records an FN fact: never refused (a raise would make the driver take a fiscal
    receipt for open), but it never rewrites another register's entry either."""
    a = PostgresStorage(postgres_dsn)
    try:
        r1 = a.take_lease("r1", 600)
        a.journal("r1", r1).begin("k1", 6, 1, 40_000, FN)
        with caplog.at_level(logging.ERROR, logger="kkt.cloud.storage.postgres"):
            a.journal("r2").done("k1", result(41, OTHER_FN))
            a.journal("r2").done("k2", result(42, OTHER_FN))  # never begun anywhere
        assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.ERROR]
        assert "k1" in caplog.records[0].getMessage() and "r2" in caplog.records[0].getMessage()
        entry = a.journal("r1").get("k1")
        assert entry is not None and (entry.state, entry.fn) == ("pending", FN)
        assert a.journal("r2").get("k2") is None
        a.drop_lease("r1")  # done needs no lease: the receipt is fiscal whoever holds it now
        a.journal("r1", r1).done("k1", result(7))
        entry = a.journal("r1").get("k1")
        assert entry is not None and entry.state == "done" and entry.result == result(7)
    finally:
        a.close()
