"""PostgresStorage's own: several instances (storage objects) on one database -- claims, accepts,
leases and the journal's fence, the callback outbox, the shared secret, migrations applied once
-- and a server that goes away and comes back.  What both storages share is in test_storage.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from kkt.cloud.storage.base import LeaseLost, StorageError, StorageUnavailable
from kkt.cloud.storage.pg_schema import MIGRATIONS
from kkt.cloud.storage.postgres import PostgresStorage
from support.cloud import RESULT, make_order
from support.postgres import PostgresCluster

Open = Callable[..., PostgresStorage]
FN = "9999078900012345"


@pytest.fixture
def open_instance(postgres_dsn: str) -> Iterator[Open]:
    """``open_instance(**options)``: another instance (storage object) on the test's database;
    every one closed when the test ends."""
    opened: list[PostgresStorage] = []

    def open_(dsn: str = postgres_dsn, **options: object) -> PostgresStorage:
        store = PostgresStorage(dsn, **options)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def _wait_until(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Poll ``condition`` (not a timing assertion: ``limit`` only bounds a broken run)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {limit} s")
        time.sleep(0.05)


def test_two_instances_claiming_at_once_never_share_a_request(open_instance: Open) -> None:
    a, b = open_instance(), open_instance()
    for n in range(120):
        (a if n % 2 else b).accept(make_order(f"e{n}"), idempotency_key=None)
    workers = [(store, f"{name}{n}") for store, name in ((a, "a"), (b, "b")) for n in range(4)]
    taken: dict[str, list[str]] = {register: [] for _, register in workers}
    start = threading.Barrier(len(workers))

    def work(store: PostgresStorage, register: str) -> None:
        start.wait()
        while (job := store.claim(register, "demo")) is not None:
            taken[register].append(job.uuid)

    threads = [threading.Thread(target=work, args=worker) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [uuid for uuids in taken.values() for uuid in uuids]
    assert len(every) == len(set(every)) == 120
    for register, uuids in taken.items():
        assert sorted(job.uuid for job in b.assigned(register)) == sorted(uuids)


def test_the_same_request_sent_to_two_instances_at_once_is_created_once(
    open_instance: Open,
) -> None:
    a, b = open_instance(), open_instance()

    def send(
        store: PostgresStorage, n: int, start: threading.Barrier, answers: list[tuple[str, bool]]
    ) -> None:
        start.wait()
        accepted = store.accept(make_order(f"e{n}"), idempotency_key=f"k{n}")
        answers.append((accepted.uuid, accepted.created))

    for n in range(20):
        answers: list[tuple[str, bool]] = []
        start = threading.Barrier(2)
        threads = [
            threading.Thread(target=send, args=(store, n, start, answers)) for store in (a, b)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len({uuid for uuid, _ in answers}) == 1, answers
        assert sorted(created for _, created in answers) == [False, True]
    assert a.counts() == {"wait": 20, "done": 0, "fail": 0}


def test_a_lease_is_one_instances_until_it_expires_then_anothers_with_the_next_epoch(
    open_instance: Open,
) -> None:
    a, b = open_instance(), open_instance()
    assert a.take_lease("r1", 60) and a.take_lease("r1", 60)  # taken, renewed
    assert not b.take_lease("r1", 60)  # held: refused
    assert b.take_lease("r2", 60)  # another register is free
    [r1, r2] = b.leases()
    assert (r1.register, r1.instance, r1.epoch) == ("r1", a.instance, 1)
    assert (r2.register, r2.instance, r2.epoch) == ("r2", b.instance, 1)
    assert r1.expires_at > b.database_now() + timedelta(seconds=50)
    # a's lease runs out (a short renewal stands for a holder that stopped renewing)
    assert a.take_lease("r1", 0.3)
    _wait_until(lambda: b.database_now() > b.leases()[0].expires_at, "expired")
    assert b.take_lease("r1", 60)
    assert not a.take_lease("r1", 60)  # the old holder cannot renew it back
    [r1, _] = a.leases()
    assert (r1.instance, r1.epoch) == (b.instance, 2)
    assert b.lease_epoch("r1") == 2 and a.lease_epoch("r1") is None
    b.drop_lease("r1")  # a clean stop: free at once, the epoch goes on counting
    assert a.take_lease("r1", 60)
    assert a.leases()[0].epoch == 3


def test_the_journal_begins_only_while_its_instance_holds_the_lease(open_instance: Open) -> None:
    a, b = open_instance(), open_instance()
    journal_a, journal_b = a.journal("r1"), b.journal("r1")
    with pytest.raises(LeaseLost, match="does not hold its lease"):
        journal_a.begin("k0", 5, 1, 10_000, FN)  # never taken
    assert journal_a.get("k0") is None
    assert a.take_lease("r1", 60)
    journal_a.begin("k1", 5, 1, 10_000, FN, "fp", "cash=10000")
    assert a.take_lease("r1", 0)  # a's lease ends now: b takes it over
    _wait_until(lambda: b.take_lease("r1", 60), "taken over")
    with pytest.raises(LeaseLost):
        journal_a.begin("k2", 6, 1, 10_000, FN)  # a was cut off: nothing written
    assert journal_b.get("k2") is None
    # the new holder sees what a began, and goes on
    entry = journal_b.get("k1")
    assert entry is not None and (entry.state, entry.before, entry.fn) == ("pending", 5, FN)
    journal_b.done("k1", {**RESULT, "document_number": 6})
    journal_b.begin("k3", 6, 1, 10_000, FN)
    assert journal_a.claimed(5, FN) == {6}  # reads are not fenced
    with pytest.raises(ValueError):
        a.journal("")  # a PostgreSQL journal is one register's


def test_a_begin_waiting_on_a_takeover_is_refused_and_a_takeover_waits_for_a_begin(
    open_instance: Open, postgres_dsn: str
) -> None:
    """The fence reads the lease row FOR SHARE: a hand-over and a begin are ordered, never
    interleaved.  Here another session holds the lease row's lock (as a taker's UPDATE would)
    while a's begin runs: the begin waits, then sees the new holder and is refused."""
    a, b = open_instance(), open_instance()
    assert a.take_lease("r1", 60)
    outcome: list[object] = []
    with psycopg.connect(postgres_dsn) as taker:
        taker.execute(
            "UPDATE cloud_leases SET instance = %s, epoch = epoch + 1 WHERE register = 'r1'",
            (b.instance,),
        )  # not committed yet: the row is locked

        def begin() -> None:
            try:
                a.journal("r1").begin("k1", 5, 1, 10_000, FN)
                outcome.append("begun")
            except LeaseLost as error:
                outcome.append(error)

        thread = threading.Thread(target=begin)
        thread.start()
        _wait_until(
            lambda: (
                taker.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
                ).fetchone()
                == (1,)
            ),
            "waiting for the taker",
        )
        taker.commit()
        thread.join()
    assert len(outcome) == 1 and isinstance(outcome[0], LeaseLost)
    assert b.journal("r1").get("k1") is None


def test_instances_are_listed_and_leave_on_close(open_instance: Open) -> None:
    a, b = open_instance(), open_instance()
    assert a.instance != b.instance and a.instance.count(":") == 2
    listed = {view.id: view for view in a.instances()}
    assert set(listed) == {a.instance, b.instance}
    before = listed[b.instance].seen_at
    b.heartbeat()
    after = {view.id: view for view in a.instances()}[b.instance]
    assert after.seen_at >= before and after.started_at == listed[b.instance].started_at
    b.close()
    assert [view.id for view in a.instances()] == [a.instance]
    looking = open_instance(join=False)  # kkt cloud status: looks, is not an instance
    assert [view.id for view in looking.instances()] == [a.instance]


def test_every_instance_signs_callbacks_with_one_secret(open_instance: Open) -> None:
    a, b = open_instance(), open_instance()
    secret = b.callback_secret()
    assert secret is not None and len(secret) == 32
    assert a.callback_secret() == secret == open_instance().callback_secret()


def test_a_due_callback_goes_to_one_sender_at_a_time(open_instance: Open) -> None:
    a, b = open_instance(), open_instance()
    order = make_order("e1", callback_url="http://127.0.0.1:9/cb")
    uuid = a.accept(order, idempotency_key=None).uuid
    assert b.claim("r1", "demo") is not None
    b.complete(uuid, "r1", RESULT)
    now = datetime.now(UTC) + timedelta(seconds=1)
    [callback] = a.due_callbacks(now, 10)
    assert b.due_callbacks(now, 10) == []  # a is posting it
    later = now + timedelta(seconds=30)
    a.record_attempt(callback.id, ok=False, status=503, error="HTTP 503", next_at=later)
    assert b.due_callbacks(now + timedelta(seconds=10), 10) == []
    [again] = b.due_callbacks(later, 10)
    assert (again.id, again.attempts) == (callback.id, 1)
    assert b.attempts(callback.id)[0]["status"] == 503


def test_an_instance_waiting_for_work_is_woken_by_another_instances_accept(
    open_instance: Open,
) -> None:
    a, b = open_instance(), open_instance()
    b.wait_for_work(0)  # starts b's listening thread
    _wait_until(b._listening.is_set, "listening")
    b.wait_for_work(0)  # this thread has now seen everything so far
    woke = threading.Event()

    def waiter() -> None:
        b.wait_for_work(600)
        woke.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    a.accept(make_order("e1"), idempotency_key=None)
    thread.join(60)  # returns because of the NOTIFY; else close() below ends the wait
    assert woke.is_set()


def test_migrations_run_once_when_instances_open_at_once(
    postgres_dsn: str, open_instance: Open
) -> None:
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_one() -> None:
        start.wait()
        try:
            open_instance()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with psycopg.connect(postgres_dsn) as connection:
        rows = connection.execute("SELECT version FROM cloud_schema ORDER BY version").fetchall()
    assert [version for (version,) in rows] == list(range(1, len(MIGRATIONS) + 1))
    assert open_instance().schema_version() == len(MIGRATIONS)


def test_a_newer_schema_is_refused(postgres_dsn: str, open_instance: Open) -> None:
    open_instance().close()
    with psycopg.connect(postgres_dsn) as connection:
        connection.execute("INSERT INTO cloud_schema VALUES (%s)", (len(MIGRATIONS) + 1,))
    with pytest.raises(StorageError, match="newer than this kktkit"):
        open_instance()


def test_no_server_is_a_clear_error_naming_the_host_and_not_the_password(
    open_instance: Open,
) -> None:
    dsn = "postgresql://kkt:hunter2@/cloud?host=/nonexistent-kkt-socket-dir"
    with pytest.raises(StorageUnavailable) as raised:
        open_instance(dsn, connect_timeout=0.5)
    message = str(raised.value)
    assert "/nonexistent-kkt-socket-dir" in message and "/cloud" in message
    assert "hunter2" not in message
    assert "No such file or directory" in message  # the cause, not only "timed out"


def test_a_stopped_server_is_unavailable_and_work_resumes_when_it_is_back(
    postgres_cluster: PostgresCluster, open_instance: Open
) -> None:
    a = open_instance(connect_timeout=1.0)
    kept = a.accept(make_order("e1"), idempotency_key=None).uuid
    assert a.take_lease("r1", 60)
    a.wait_for_work(0)
    _wait_until(a._listening.is_set, "listening")
    postgres_cluster.stop()
    try:
        with pytest.raises(StorageUnavailable, match="cannot be reached now"):
            a.accept(make_order("e2"), idempotency_key=None)
        with pytest.raises(StorageUnavailable):
            a.claim("r1", "demo")
        with pytest.raises(StorageUnavailable):
            a.take_lease("r1", 60)
        with pytest.raises(StorageUnavailable):
            a.journal("r1").begin("k1", 1, 1, 100, FN)
        _wait_until(lambda: not a._listening.is_set(), "noticed by the listener")
    finally:
        postgres_cluster.start()

    def works() -> bool:
        try:
            a.heartbeat()
        except StorageUnavailable:
            return False
        return True

    _wait_until(works, "back")  # the pool reconnects by itself
    second = a.accept(make_order("e2"), idempotency_key=None)
    assert second.created
    job = a.claim("r1", "demo")
    assert job is not None and job.uuid == kept  # nothing lost
    assert a.take_lease("r1", 60)
    _wait_until(a._listening.is_set, "listening again")


def test_a_finish_repeated_after_a_lost_commit_answer_is_taken_calmly(
    open_instance: Open, caplog: pytest.LogCaptureFixture
) -> None:
    """A connection lost during a commit leaves the caller unsure: it repeats.  The same
    completion or the same failure again is kept once and logged as a warning; another one is
    still an error."""
    a = open_instance()
    done = a.accept(make_order("e1"), idempotency_key=None).uuid
    failed = a.accept(make_order("e2"), idempotency_key=None).uuid
    assert a.claim("r1", "demo") is not None and a.claim("r1", "demo") is not None
    a.complete(done, "r1", RESULT)
    reason = {"code": -3803, "text": "bad price", "type": "driver"}
    a.fail(failed, reason)
    with caplog.at_level(logging.WARNING, logger="kkt.cloud.storage.postgres"):
        a.complete(done, "r1", dict(RESULT))
        a.fail(failed, dict(reason))
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
    with pytest.raises(StorageError, match="not waiting"):
        a.fail(failed, {"code": 1, "text": "another", "type": "system"})
    assert a.counts() == {"wait": 0, "done": 1, "fail": 1}


def test_open_storage_picks_by_the_url(postgres_dsn: str, tmp_path: Path) -> None:
    from kkt.cloud.storage import open_storage
    from kkt.cloud.storage.sqlite import SqliteStorage

    for url in (postgres_dsn, postgres_dsn.replace("postgresql://", "postgres://", 1)):
        store = open_storage(url)
        try:
            assert isinstance(store, PostgresStorage)
        finally:
            store.close()
    store = open_storage(tmp_path / "cloud.sqlite")
    try:
        assert isinstance(store, SqliteStorage)
    finally:
        store.close()
