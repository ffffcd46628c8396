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

from kkt.errors import KeyConflict

Open = Callable[..., PostgresStorage]
FN = "9999078900012345"
OTHER_FN = "9999078900099999"


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


# -- fencing by the lease's grant (epoch) ------------------------------------------------------


def _take_over(old: PostgresStorage, new: PostgresStorage, register: str) -> int:
    """``old``'s lease of ``register`` runs out (a holder that stalled); ``new`` takes it: the
    new grant's epoch."""
    assert old.take_lease(register, 0)
    epochs: list[int] = []
    _wait_until(lambda: bool(epochs.append(new.take_lease(register, 60)) or epochs[-1]), "taken")
    return epochs[-1]


def test_take_lease_returns_the_grant_and_a_retake_after_expiry_is_a_new_one(
    open_instance: Open,
) -> None:
    a, b = open_instance(), open_instance()
    first = a.take_lease("r1", 60)
    assert first == 1 and a.take_lease("r1", 60) == first  # a renewal keeps the grant
    assert b.take_lease("r1", 60) == 0  # refused: falsy
    assert a.confirm_lease("r1", first) and not b.confirm_lease("r1", first)
    assert not a.confirm_lease("r1", first + 1) and not a.confirm_lease("r2", first)
    # a margin beyond what is left of the lease: not held long enough for a frame to arrive
    assert a.confirm_lease("r1", first, margin=1.0) and not a.confirm_lease("r1", first, 7200.0)
    a.drop_lease("r1")
    assert not a.confirm_lease("r1", first)  # dropped: expired now
    second = a.take_lease("r1", 60)  # the same instance again: a new grant
    assert second == first + 1
    assert a.confirm_lease("r1", second) and not a.confirm_lease("r1", first)
    assert a.take_lease("r1", 0) == second  # a renewal that ends it now
    assert not a.confirm_lease("r1", second)
    third = a.take_lease("r1", 60)  # expired, retaken: a new grant again
    assert third == second + 1 and [lease.epoch for lease in b.leases()] == [third]


def test_a_stale_instance_cannot_fail_a_request_the_new_holder_sold(open_instance: Open) -> None:
    """The pool checks its lease locally, then writes; a holder that stalls between the two
    (a pause, a pool checkout, a statement in TCP retransmission) lands its write after B took
    the register over and sold the request.  Fenced by its grant, the write is refused: the
    report does not say *fail* for a fiscal receipt, and B's complete goes through."""
    a, b = open_instance(), open_instance()
    assert a.accept(make_order("e1"), idempotency_key=None).created
    grant = a.take_lease("r1", 60)
    job = a.claim("r1", "demo")
    assert job is not None
    # a checks its lease (held), then stalls; its lease runs out and b takes r1 over
    taken = _take_over(a, b, "r1")
    journal_b = b.journal("r1", taken)
    journal_b.begin(job.uuid, 6, 1, 40_000, FN)  # b settles the assigned request: sells it
    journal_b.done(job.uuid, {**RESULT, "document_number": 7, "fn_number": FN})
    # a wakes up and sends what it decided on before the stall: each refused, nothing changed
    reason = {"code": 1, "text": "invalid document", "type": "agent"}
    with pytest.raises(LeaseLost, match="does not hold its lease"):
        a.fail(job.uuid, reason, fence=grant)
    with pytest.raises(LeaseLost):
        a.hold(job.uuid, "r1", reason, fence=grant)
    with pytest.raises(LeaseLost):
        a.complete(job.uuid, "r1", {**RESULT, "document_number": 99}, fence=grant)
    view = b.report(job.uuid)
    assert view is not None and (view.status, view.error) == ("wait", None)
    b.complete(job.uuid, "r1", {**RESULT, "fn_number": FN}, fence=taken)
    view = b.report(job.uuid)
    assert view is not None and view.status == "done" and view.result is not None
    assert view.result["document_number"] == 7


def test_a_queued_request_fails_without_a_lease_and_a_held_one_with_it(
    open_instance: Open,
) -> None:
    a = open_instance()
    queued = a.accept(make_order("e1"), idempotency_key=None).uuid
    a.fail(queued, {"code": 1, "text": "bad", "type": "agent"}, fence=5)  # no register: no fence
    assigned = a.accept(make_order("e2"), idempotency_key=None).uuid
    grant = a.take_lease("r1", 60)
    assert a.claim("r1", "demo") is not None
    a.hold(assigned, "r1", {"code": 2, "text": "look", "type": "system"}, fence=grant)
    a.fail(assigned, {"code": 3, "text": "bad", "type": "agent"}, fence=grant)
    assert a.counts() == {"wait": 0, "done": 0, "fail": 2}
    with pytest.raises(StorageError, match="not waiting") as raised:
        a.fail(assigned, {"code": 4, "text": "again", "type": "agent"}, fence=grant)
    assert not isinstance(raised.value, LeaseLost)


def test_a_stale_release_cannot_put_a_begun_request_back_nor_another_register_begin_it(
    open_instance: Open,
) -> None:
    """The pool releases the requests it never began; a holder that read "never begun", then
    stalled, would put back a request the next holder began: the queue hands it to another
    register, whose begin would overwrite r1's pending entry -- two sales.  The release is
    fenced by the grant, and a begin never takes over another register's key."""
    a, b = open_instance(), open_instance()
    assert a.accept(make_order("e1"), idempotency_key=None).created
    grant = a.take_lease("r1", 60)
    job = a.claim("r1", "demo")
    assert job is not None
    assert a.journal("r1", grant).get(job.uuid) is None  # a reads: never begun -> release it
    taken = _take_over(a, b, "r1")  # ... a stalls; b takes r1 over
    b.journal("r1", taken).begin(job.uuid, 6, 1, 40_000, FN)  # b settles it: begins the sale
    with pytest.raises(LeaseLost):
        a.release(job.uuid, "r1", fence=grant)  # a's stale release is refused
    assert [assigned.uuid for assigned in b.assigned("r1")] == [job.uuid]
    # and were the request put back, a second register still could not begin the key
    r2 = b.take_lease("r2", 60)
    with pytest.raises(KeyConflict, match="began on register r1") as raised:
        b.journal("r2", r2).begin(job.uuid, 40, 1, 40_000, OTHER_FN)
    assert (raised.value.key, raised.value.fn, raised.value.pending) == (job.uuid, FN, True)
    entry = b.journal("r1").get(job.uuid)
    assert entry is not None and (entry.fn, entry.before, entry.state) == (FN, 6, "pending")
    # the holder's own release of a request it no longer has is no error
    b.release(job.uuid, "r2", fence=r2)
    b.release(job.uuid, "r1", fence=taken)
    assert b.assigned("r1") == [] and b.queue_depth("demo") == 1


def test_writes_under_an_older_grant_of_the_same_instance_are_refused(
    open_instance: Open,
) -> None:
    """A thread that stalled through the lapse of this instance's own lease, which the keeper
    then took again: its writes carry the old grant, and are refused as a stranger's would be
    -- the worker of the new grant may have settled the request meanwhile."""
    a = open_instance()
    for n in range(2):
        a.accept(make_order(f"e{n}"), idempotency_key=None)
    old = a.take_lease("r1", 60)
    first, second = a.claim("r1", "demo"), a.claim("r1", "demo")
    assert first is not None and second is not None
    a.drop_lease("r1")
    new = a.take_lease("r1", 60)
    assert new == old + 1
    reason = {"code": 1, "text": "bad", "type": "agent"}
    with pytest.raises(LeaseLost, match=f"grant {old}"):
        a.fail(first.uuid, reason, fence=old)
    with pytest.raises(LeaseLost):
        a.complete(first.uuid, "r1", RESULT, fence=old)
    with pytest.raises(LeaseLost):
        a.release(first.uuid, "r1", fence=old)
    with pytest.raises(LeaseLost):
        a.hold(first.uuid, "r1", reason, fence=old)
    with pytest.raises(LeaseLost):
        a.journal("r1", old).begin("k1", 5, 1, 100, FN)
    assert a.journal("r1").get("k1") is None
    # the new grant's writes go through
    a.complete(first.uuid, "r1", RESULT, fence=new)
    a.release(second.uuid, "r1", fence=new)
    a.journal("r1", new).begin("k1", 5, 1, 100, FN)
    a.journal("r1", old).forget("k1")  # refused quietly: the entry stays
    assert a.journal("r1").get("k1") is not None
    a.journal("r1", new).forget("k1")
    assert a.journal("r1").get("k1") is None
    assert a.counts() == {"wait": 1, "done": 1, "fail": 0}


# -- the LISTEN thread, the pool, the status look, the outbox's clock --------------------------


def test_the_listening_thread_survives_an_unexpected_error(
    open_instance: Open, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = open_instance(), open_instance()
    real = PostgresStorage._listen_once
    calls: list[int] = []

    def failing_once(self: PostgresStorage) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("not a psycopg error")
        real(self)

    monkeypatch.setattr(PostgresStorage, "_listen_once", failing_once)
    with caplog.at_level(logging.WARNING, logger="kkt.cloud.storage.postgres"):
        b.wait_for_work(0)  # starts b's listening thread: its first connection fails
        _wait_until(b._listening.is_set, "listening after the error")
    assert len(calls) == 2 and "RuntimeError" in caplog.text
    listener = b._listener
    assert listener is not None and listener.is_alive()
    b.wait_for_work(0)
    woke = threading.Event()
    thread = threading.Thread(target=lambda: (b.wait_for_work(600), woke.set()))
    thread.start()
    a.accept(make_order("e1"), idempotency_key=None)
    thread.join(60)  # returns because of the NOTIFY; else close() below ends the wait
    assert woke.is_set()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_listening_thread_that_ended_is_started_again(
    open_instance: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = open_instance()
    real = PostgresStorage._listen_once
    ended = threading.Event()

    def ending(self: PostgresStorage) -> None:
        ended.set()
        raise SystemExit  # not an Exception: the thread ends

    monkeypatch.setattr(PostgresStorage, "_listen_once", ending)
    b.wait_for_work(0)
    _wait_until(lambda: ended.is_set() and b._listener is None, "the thread gone and forgotten")
    monkeypatch.setattr(PostgresStorage, "_listen_once", real)
    b.wait_for_work(0)  # starts another
    _wait_until(b._listening.is_set, "listening again")


def test_a_closed_pool_is_a_closed_storage_not_an_unavailable_database(
    open_instance: Open,
) -> None:
    a = open_instance()
    a._pool.close()  # as close() does; a call racing it reaches the pool
    with pytest.raises(StorageError, match="is closed") as raised:
        a.counts()
    assert not isinstance(raised.value, StorageUnavailable)


def test_a_look_without_joining_migrates_nothing(postgres_dsn: str, open_instance: Open) -> None:
    with pytest.raises(StorageError, match="holds no cloud service state"):
        open_instance(join=False)
    with psycopg.connect(postgres_dsn) as connection:
        row = connection.execute("SELECT to_regclass('cloud_schema')").fetchone()
    assert row == (None,)  # nothing created
    open_instance().close()  # a service migrates
    looking = open_instance(join=False)
    assert looking.schema_version() == len(MIGRATIONS) and looking.instances() == []
    with psycopg.connect(postgres_dsn) as connection:
        connection.execute("DELETE FROM cloud_schema WHERE version = %s", (len(MIGRATIONS),))
    if len(MIGRATIONS) > 1:
        with pytest.raises(StorageError, match="older than this kktkit"):
            open_instance(join=False)
    else:
        with pytest.raises(StorageError, match="holds no cloud service state"):
            open_instance(join=False)


class _SkewedClock(datetime):
    """This machine's clock an hour behind the database's (and the other instances')."""

    @classmethod
    def now(cls, tz: object = None) -> _SkewedClock:  # type: ignore[override]
        real = datetime.now(UTC) - timedelta(hours=1)
        return cls.fromtimestamp(real.timestamp(), UTC)


def test_the_outbox_is_due_and_claimed_by_the_database_clock(
    open_instance: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sender on a machine whose clock is an hour behind: by its own clock no row would be
    due for an hour, and the rows it claimed would look due to every other sender at once (two
    posts).  By the database's clock: due at once, hidden from the others while it posts, and
    its retry set as far ahead of the database's present as it asked."""
    import kkt.cloud.storage.postgres as module

    a, b = open_instance(), open_instance()
    uuid = a.accept(make_order("e1", callback_url="http://127.0.0.1:9/cb"), idempotency_key=None)
    assert a.claim("r1", "demo") is not None
    a.complete(uuid.uuid, "r1", RESULT)
    monkeypatch.setattr(module, "datetime", _SkewedClock)
    [callback] = a.due_callbacks(_SkewedClock.now(UTC), 10)  # the skewed sender: due now
    a.record_attempt(
        callback.id,
        ok=False,
        status=503,
        error="HTTP 503",
        next_at=_SkewedClock.now(UTC) + timedelta(seconds=30),
    )
    monkeypatch.undo()
    now = datetime.now(UTC)
    assert b.due_callbacks(now, 10) == []  # not due for 30 s of the database's clock
    [again] = b.due_callbacks(now + timedelta(seconds=31), 10)
    assert (again.id, again.attempts) == (callback.id, 1)
    with psycopg.connect(b._dsn) as connection:
        row = connection.execute(
            "SELECT next_at - clock_timestamp() FROM cloud_outbox WHERE id = %s", (callback.id,)
        ).fetchone()
    assert row is not None and timedelta(seconds=100) < row[0] <= timedelta(seconds=151)


# -- DSNs: the keyword form, and a password never shown ----------------------------------------


def test_a_libpq_keyword_dsn_is_postgresql_not_a_sqlite_path(
    postgres_cluster: PostgresCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``host=... dbname=... password=...`` taken for a path would open a SQLite file named
    after it (password and all) in the working directory: an instance alone on its own queue
    and journal."""
    from kkt.cloud.storage import open_storage

    monkeypatch.chdir(tmp_path)
    url = postgres_cluster.create_database()
    parts = psycopg.conninfo.conninfo_to_dict(url)
    dsn = f"host={parts['host']} port={parts['port']} dbname={parts['dbname']} user={parts['user']}"
    store = open_storage(f"{dsn} password=s3cret")  # trust: the password is not asked
    try:
        assert isinstance(store, PostgresStorage)
    finally:
        store.close()
    unreachable = "host=/nonexistent-kkt-socket-dir dbname=kkt user=kkt password=s3cret"
    with pytest.raises(StorageUnavailable) as raised:
        PostgresStorage(unreachable, connect_timeout=0.5)
    assert "s3cret" not in str(raised.value) and "/nonexistent-kkt-socket-dir/kkt" in str(
        raised.value
    )
    assert list(tmp_path.iterdir()) == []  # no SQLite file made


def test_a_malformed_dsn_never_shows_its_password(caplog: pytest.LogCaptureFixture) -> None:
    """libpq's parse error quotes the whole DSN; the pool would log it on every retry."""
    caplog.set_level(logging.DEBUG)
    for dsn in ("postgresql://u:s3cret@[::1/db", "host=db password=s3cret bogus=1", "host"):
        with pytest.raises(StorageError, match="cannot be read") as raised:
            PostgresStorage(dsn, connect_timeout=1)
        assert "s3cret" not in str(raised.value) and "postgresql://USER" in str(raised.value)
    assert not [r for r in caplog.records if "s3cret" in r.getMessage()]


def test_dsns_are_told_from_paths_and_described_without_their_password() -> None:
    from kkt.cloud.storage import describe_dsn, is_postgres_url

    for dsn in (
        "postgresql://u:pw@db.example:5433/kkt",
        "postgres://db/kkt",
        "host=db.example dbname=kkt",
        " dbname = kkt",
        "user=kkt password=pw",
    ):
        assert is_postgres_url(dsn), dsn
    for path in ("/var/lib/kkt/cloud.sqlite", "cloud.sqlite", "/srv/a=b/cloud.sqlite"):
        assert not is_postgres_url(path), path
    assert not is_postgres_url(Path("host=x"))  # a Path is a path
    assert describe_dsn("postgresql://u:pw@db.example:5433/kkt") == "db.example:5433/kkt"
    assert describe_dsn("host=db.example dbname=kkt password=pw") == "db.example/kkt"
    assert describe_dsn("postgresql://u:pw@[::1/db") == "(an unreadable DSN)"
