"""Both storages, SQLite and PostgreSQL, by the same tests: accept and its duplicates, claim under
threads, the life of a request, the outbox, tokens, registers, leases; then what is SQLite's
own (the schema's migrations, the files' modes, the shared journal).  PostgreSQL's own tests
(several instances on one database) are in test_pg_storage.py."""

from __future__ import annotations

import logging
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from kkt.cloud.model import RegisterView, ReportView
from kkt.cloud.storage import open_storage
from kkt.cloud.storage.base import Storage, StorageError
from kkt.cloud.storage.sqlite import MIGRATIONS, SqliteStorage
from support.cloud import RESULT, make_order

MakeStorage = Callable[..., Storage]


@pytest.fixture(params=["sqlite", "postgres"])
def make_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStorage]:
    """``make_storage(callback_body=None)``: a new storage of the kind the test runs on (each
    call a new file, or a new database); all closed when the test ends."""
    opened: list[Storage] = []
    counter = iter(range(1_000))

    def make(callback_body: Callable[[ReportView], bytes] | None = None) -> Storage:
        if request.param == "postgres":
            where: str | Path = request.getfixturevalue("postgres_cluster").create_database()
        else:
            where = tmp_path / f"state{next(counter)}" / "cloud.sqlite"
        store = open_storage(where, callback_body=callback_body)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def storage(make_storage: MakeStorage) -> Storage:
    return make_storage()


def test_accept_stores_the_body_exactly_and_reports_wait(storage: Storage) -> None:
    order = make_order("e1", callback_url="http://127.0.0.1:9/cb")
    accepted = storage.accept(order, idempotency_key=None)
    assert accepted.created and accepted.same_body and accepted.status == "wait"
    view = storage.report(accepted.uuid)
    assert view is not None
    assert (view.status, view.group, view.external_id, view.api) == ("wait", "demo", "e1", 4)
    assert view.result is None and view.ofd is None and view.register is None
    assert storage.find("demo", "e1") == view
    job = storage.claim("r1", "demo")
    assert job is not None and job.body == order.body  # Decimals back as they came
    assert job.body["receipt"]["items"][0]["quantity"] == Decimal("0.3")
    assert str(job.body["receipt"]["items"][0]["price"]) == "1000.00"


def test_a_repeated_external_id_gives_the_first_uuid_and_compares_bodies(
    storage: Storage,
) -> None:
    first = storage.accept(make_order("e1"), idempotency_key=None)
    same = storage.accept(make_order("e1"), idempotency_key=None)
    other = storage.accept(make_order("e1", fingerprint="f" * 64), idempotency_key=None)
    assert (same.uuid, same.created, same.same_body) == (first.uuid, False, True)
    assert (other.uuid, other.created, other.same_body) == (first.uuid, False, False)
    # the same external_id in another group is another request
    elsewhere = storage.accept(make_order("e1", group="shop2"), idempotency_key=None)
    assert elsewhere.created and elsewhere.uuid != first.uuid
    assert storage.counts() == {"wait": 2, "done": 0, "fail": 0}


def test_an_idempotency_key_finds_the_first_request(storage: Storage) -> None:
    first = storage.accept(make_order("e1"), idempotency_key="k1")
    again = storage.accept(make_order("e2"), idempotency_key="k1")  # a new external_id
    assert (again.uuid, again.created, again.same_body) == (first.uuid, False, False)
    assert storage.accept(make_order("e3"), idempotency_key="k2").created


def test_claim_takes_the_oldest_of_its_group_once(storage: Storage) -> None:
    uuids = [storage.accept(make_order(f"e{n}"), idempotency_key=None).uuid for n in range(3)]
    storage.accept(make_order("x", group="other"), idempotency_key=None)
    first = storage.claim("r1", "demo")
    assert first is not None and (first.uuid, first.attempts) == (uuids[0], 1)
    assert [job.uuid for job in storage.assigned("r1")] == [uuids[0]]
    second = storage.claim("r2", "demo")
    assert second is not None and second.uuid == uuids[1]
    assert storage.queue_depth("demo") == 3  # assigned ones still wait
    assert storage.queue_depth() == 4
    assert storage.queue_depths() == {"demo": 3, "other": 1}  # type: ignore[attr-defined]


def test_claim_under_threads_gives_each_request_to_one_register(storage: Storage) -> None:
    for n in range(60):
        storage.accept(make_order(f"e{n}"), idempotency_key=None)
    taken: dict[str, list[str]] = {f"r{n}": [] for n in range(4)}
    start = threading.Barrier(len(taken))

    def work(name: str) -> None:
        start.wait()
        while (job := storage.claim(name, "demo")) is not None:
            taken[name].append(job.uuid)

    threads = [threading.Thread(target=work, args=(name,)) for name in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [uuid for uuids in taken.values() for uuid in uuids]
    assert len(every) == len(set(every)) == 60
    for name, uuids in taken.items():
        assert sorted(job.uuid for job in storage.assigned(name)) == sorted(uuids)


def test_complete_fail_and_release(storage: Storage) -> None:
    a = storage.accept(make_order("a", callback_url="http://127.0.0.1:9/a"), idempotency_key=None)
    b = storage.accept(make_order("b", callback_url="http://127.0.0.1:9/b"), idempotency_key=None)
    c = storage.accept(make_order("c"), idempotency_key=None)
    for _ in range(3):
        storage.claim("r1", "demo")
    with pytest.raises(StorageError, match="assigned to"):
        storage.complete(a.uuid, "r2", RESULT)  # only the register that took it settles it
    storage.complete(a.uuid, "r1", RESULT)
    storage.complete(a.uuid, "r1", RESULT)  # a replayed settlement changes nothing
    storage.fail(b.uuid, {"code": -3803, "text": "bad price", "type": "driver"})
    storage.release(c.uuid, "r1")
    done, failed, back = storage.report(a.uuid), storage.report(b.uuid), storage.report(c.uuid)
    assert done is not None and done.status == "done" and done.result == RESULT
    assert done.register == "r1" and done.ofd == "waiting" and done.done_at is not None
    assert failed is not None and failed.status == "fail" and failed.error is not None
    assert failed.error["code"] == -3803
    assert back is not None and back.status == "wait" and back.register is None
    assert storage.assigned("r1") == []
    again = storage.claim("r2", "demo")
    assert again is not None and again.uuid == c.uuid and again.attempts == 2
    with pytest.raises(StorageError):
        storage.fail(a.uuid, {"code": 1})  # done is final
    assert storage.counts() == {"wait": 1, "done": 1, "fail": 1}


def test_the_outbox_has_one_row_per_finished_request_with_a_callback(
    storage: Storage,
) -> None:
    a = storage.accept(make_order("a", callback_url="http://127.0.0.1:9/a"), idempotency_key=None)
    b = storage.accept(make_order("b", callback_url="http://127.0.0.1:9/b"), idempotency_key=None)
    storage.accept(make_order("c"), idempotency_key=None)  # no callback_url: no row
    now = datetime.now(UTC)
    assert storage.due_callbacks(now, 10) == []  # nothing finished yet
    for _ in range(3):
        storage.claim("r1", "demo")
    storage.complete(a.uuid, "r1", RESULT)
    storage.fail(b.uuid, {"code": 1, "text": "x", "type": "system"})
    due = storage.due_callbacks(datetime.now(UTC) + timedelta(seconds=1), 10)
    assert [(c.uuid, c.url, c.attempts) for c in due] == [
        (a.uuid, "http://127.0.0.1:9/a", 0),
        (b.uuid, "http://127.0.0.1:9/b", 0),
    ]
    assert b'"done"' in due[0].body and a.uuid.encode() in due[0].body
    later = datetime.now(UTC) + timedelta(seconds=60)
    storage.record_attempt(due[0].id, ok=False, status=500, error="HTTP 500", next_at=later)
    storage.record_attempt(due[1].id, ok=True, status=200, error="", next_at=None)
    assert storage.due_callbacks(datetime.now(UTC) + timedelta(seconds=1), 10) == []
    retry = storage.due_callbacks(later + timedelta(seconds=1), 10)
    assert [(c.id, c.attempts) for c in retry] == [(due[0].id, 1)]
    assert storage.pending_callbacks() == 1
    storage.record_attempt(due[0].id, ok=False, status=None, error="refused", next_at=None)
    assert storage.pending_callbacks() == 0  # given up
    assert [a["status"] for a in storage.attempts(due[0].id)] == [500, None]


def test_ofd_acknowledgement_moves_done_receipts_below_a_number(storage: Storage) -> None:
    uuids = [storage.accept(make_order(f"e{n}"), idempotency_key=None).uuid for n in range(3)]
    for number, uuid in enumerate(uuids, start=7):
        storage.claim("r1", "demo")
        storage.complete(uuid, "r1", {**RESULT, "document_number": number})
    storage.set_ofd_acknowledged_below(RESULT["fn_number"], 9)
    states = [view.ofd for uuid in uuids if (view := storage.report(uuid)) is not None]
    assert states == ["acknowledged", "acknowledged", "waiting"]
    storage.set_ofd_acknowledged_below("another FN", 100)
    assert storage.report(uuids[2]) is not None
    assert storage.report(uuids[2]).ofd == "waiting"  # type: ignore[union-attr]


def test_recent_lists_only_the_groups_asked_newest_first(storage: Storage) -> None:
    for n in range(3):
        storage.accept(make_order(f"e{n}"), idempotency_key=None)
    storage.accept(make_order("x", group="other"), idempotency_key=None)
    assert [v.external_id for v in storage.recent(["demo"], limit=2)] == ["e2", "e1"]
    assert storage.recent(["other", "demo"])[0].external_id == "x"
    assert storage.recent([]) == []


def test_tokens_expire_and_only_their_hash_is_kept(storage: Storage) -> None:
    now = datetime.now(UTC)
    storage.add_token("h1", "demo", now + timedelta(hours=24))
    storage.add_token("h2", "demo", now - timedelta(seconds=1))
    assert storage.token_login("h1", now) == "demo"
    assert storage.token_login("h1", now + timedelta(hours=25)) is None
    assert storage.token_login("h2", now) is None
    assert storage.token_login("nope", now) is None


def test_registers_are_saved_and_read_back(storage: Storage) -> None:
    view = RegisterView(
        name="demo-1",
        group="demo",
        url="socket://127.0.0.1:7778",
        protocol="shtrih",
        state="ok",
        detail="",
        fn_serial="9999078900001234",
        fn_expires=date(2027, 12, 1),
        ofd_unsent=2,
        ofd_first_unsent=5,
        paper=True,
        in_flight=0,
        done=3,
        updated_at=datetime(2026, 12, 2, 15, 0, tzinfo=UTC),
    )
    storage.save_register(view)
    storage.save_register(view)  # saved again: replaced, not doubled
    assert storage.registers() == [view]


def test_wait_for_work_wakes_on_accept(storage: Storage) -> None:
    storage.wait_for_work(0)  # this thread has now seen the current state
    woke = threading.Event()

    def waiter() -> None:
        storage.wait_for_work(60)
        woke.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    storage.accept(make_order("e1"), idempotency_key=None)
    thread.join()  # returns because of the accept: the timeout is a minute
    assert woke.is_set()


def test_files_are_private_and_the_driver_journal_shares_the_file(tmp_path: Path) -> None:
    from kkt.journal import Journal

    state = tmp_path / "state"
    storage = SqliteStorage(state / "cloud.sqlite")
    try:
        storage.accept(make_order("e1"), idempotency_key=None)
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        for name in ("cloud.sqlite", "cloud.sqlite-wal"):
            assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
        journal = Journal(storage.journal_path())
        try:
            assert journal.get("any") is None  # its table sits beside ours
        finally:
            journal.close()
        storage.accept(make_order("e2"), idempotency_key=None)
    finally:
        storage.close()


def test_the_schema_is_versioned_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cloud.sqlite"
    SqliteStorage(path).close()
    reopened = SqliteStorage(path)  # migrations already applied: nothing runs twice
    assert reopened.schema_version() == len(MIGRATIONS)
    reopened.close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO cloud_schema_version (version) VALUES (?)", (len(MIGRATIONS) + 1,))
    db.close()
    with pytest.raises(StorageError, match="newer than this kktkit"):
        SqliteStorage(path)


def test_an_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StorageError, match="--state"):
        SqliteStorage(blocker / "cloud.sqlite")


def test_one_report_that_cannot_be_drawn_does_not_hold_up_the_others(
    make_storage: MakeStorage,
) -> None:
    bad: set[str] = set()

    def body(view: ReportView) -> bytes:
        if view.uuid in bad:
            raise ValueError("a number the renderer chokes on")
        return view.uuid.encode()

    storage = make_storage(callback_body=body)
    a = storage.accept(make_order("a", callback_url="http://127.0.0.1:9/a"), idempotency_key=None)
    b = storage.accept(make_order("b", callback_url="http://127.0.0.1:9/b"), idempotency_key=None)
    for _ in range(2):
        storage.claim("r1", "demo")
    storage.complete(a.uuid, "r1", RESULT)
    storage.complete(b.uuid, "r1", RESULT)
    bad.add(a.uuid)
    due = storage.due_callbacks(datetime.now(UTC) + timedelta(seconds=1), 10)
    assert [(c.uuid, c.body, bool(c.error)) for c in due] == [
        (a.uuid, b"", True),
        (b.uuid, b.uuid.encode(), False),
    ]
    assert "chokes" in due[0].error


def test_a_second_completion_is_logged_as_an_error_with_both_results(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    a = storage.accept(make_order("a"), idempotency_key=None)
    storage.claim("r1", "demo")
    storage.complete(a.uuid, "r1", RESULT)
    other = {**RESULT, "document_number": 8}
    with caplog.at_level(logging.ERROR, logger=type(storage).__module__):
        storage.complete(a.uuid, "r1", other)
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "DIFFERENT" in record.getMessage() and '"document_number": 8' in record.getMessage()
    view = storage.report(a.uuid)
    assert view is not None and view.result == RESULT  # the first stands


def test_hold_keeps_a_request_waiting_with_its_reason_and_details_are_kept(
    storage: Storage,
) -> None:
    a = storage.accept(make_order("a"), idempotency_key=None)
    storage.claim("r1", "demo")
    assert storage.assigned_registers() == ["r1"]
    storage.hold(a.uuid, "r1", {"code": -1, "text": "began in another FN", "type": "driver"})
    view = storage.report(a.uuid)
    assert view is not None and view.status == "wait" and view.error is not None
    assert [job.uuid for job in storage.assigned("r1")] == [a.uuid]
    storage.complete(a.uuid, "r1", RESULT)
    view = storage.report(a.uuid)
    assert view is not None and view.status == "done" and view.error is None
    assert storage.assigned_registers() == []
    assert storage.register_details("r1") is None
    storage.save_register_details("r1", {"rnm": "0000000001", "fns_site": "x", "ofd_inn": "1"})
    assert storage.register_details("r1") == {"rnm": "0000000001", "fns_site": "x", "ofd_inn": "1"}


def test_the_journal_it_hands_out_writes_under_the_storage_write_lock(tmp_path: Path) -> None:
    from kkt.cloud.storage.sqlite import _SharedLockJournal

    from kkt.journal import Journal

    class Recording:
        """A lock that counts how often it is taken."""

        def __init__(self) -> None:
            self.taken = 0

        def __enter__(self) -> bool:
            self.taken += 1
            return True

        def __exit__(self, *exc: object) -> None:
            return None

    storage = SqliteStorage(tmp_path / "cloud.sqlite")
    lock = Recording()
    journal = _SharedLockJournal(storage.journal_path(), lock)
    plain = Journal(storage.journal_path())
    try:
        journal.begin("k1", 7, 1, 40_000, fn="9999078900012345")
        journal.begin("k2", 8, 1, 40_000, fn="9999078900012345")
        journal.done("k1", dict(RESULT))
        journal.forget("k2")
        assert lock.taken == 4  # every write queued on the lock
        entry = plain.get("k1")  # durable, on the storage's file
        assert entry is not None and entry.state == "done"
        assert plain.get("k2") is None
        handed = storage.journal()  # what a register worker gets
        assert isinstance(handed, _SharedLockJournal) and handed.get("k1") == entry
        handed.close()
    finally:
        plain.close()
        journal.close()
        storage.close()


def test_the_queue_depth_reads_only_the_waiting_requests(tmp_path: Path) -> None:
    """`queue_depth` is asked on every POST: it must not scan every request ever taken (the
    partial index of migration 2 holds only the waiting ones) -- also in a file made before."""
    from kkt.cloud.storage.sqlite import QUEUE_DEPTH_SQL

    path = tmp_path / "cloud.sqlite"
    SqliteStorage(path).close()
    with sqlite3.connect(path) as db:  # as a version-1 file left it
        db.execute("DROP INDEX cloud_requests_waiting")
        db.execute("DELETE FROM cloud_schema_version WHERE version > 1")
    db.close()
    storage = SqliteStorage(path)
    try:
        assert storage.schema_version() == len(MIGRATIONS)
        storage.accept(make_order("e1"), idempotency_key=None)
        storage.accept(make_order("e2"), idempotency_key=None)
        job = storage.claim("r1", "demo")
        assert job is not None
        storage.complete(job.uuid, "r1", dict(RESULT))
        assert storage.queue_depth() == 1 and storage.queue_depth("demo") == 1
    finally:
        storage.close()
    db = sqlite3.connect(path)
    try:
        plan = " ".join(str(row) for row in db.execute("EXPLAIN QUERY PLAN " + QUEUE_DEPTH_SQL))
    finally:
        db.close()
    assert "cloud_requests_waiting" in plan, plan


def test_leases_instances_and_the_secret_as_one_instance_sees_them(storage: Storage) -> None:
    """What every storage answers for a lone instance: its leases are granted and renewed, it is
    among the instances, the callback secret (PostgreSQL's shared one, or none) does not change."""
    assert storage.take_lease("r1", 60) and storage.take_lease("r1", 60)
    storage.heartbeat()
    assert storage.instance in [view.id for view in storage.instances()]
    assert all(view.register == "r1" for view in storage.leases())
    assert all(view.instance == storage.instance for view in storage.leases())
    secret = storage.callback_secret()
    assert secret is None or len(secret) == 32
    assert storage.callback_secret() == secret
    storage.drop_lease("r1")
    grant = storage.take_lease("r1", 60)
    assert grant >= 1 and storage.confirm_lease("r1", grant)


def test_fenced_writes_of_the_holder_go_through(storage: Storage) -> None:
    """Every storage takes the holder's fence (its grant's epoch); SQLite's is always good."""
    for n in range(4):
        storage.accept(make_order(f"e{n}"), idempotency_key=None)
    grant = storage.take_lease("r1", 60)
    jobs = [storage.claim("r1", "demo") for _ in range(4)]
    assert all(job is not None for job in jobs)
    first, second, third, fourth = (job.uuid for job in jobs if job is not None)
    reason = {"code": 1, "text": "bad", "type": "agent"}
    storage.hold(first, "r1", reason, fence=grant)
    storage.complete(first, "r1", dict(RESULT), fence=grant)
    storage.fail(second, reason, fence=grant)
    storage.release(third, "r1", fence=grant)
    journal = storage.journal("r1", grant)
    try:
        journal.begin(fourth, 7, 1, 40_000, "9999078900012345")
        journal.forget(fourth)
        assert journal.get(fourth) is None
    finally:
        journal.close()
    assert storage.counts() == {"wait": 2, "done": 1, "fail": 1}
    assert storage.queue_depth("demo") == 2


def test_the_journal_it_hands_a_register_keeps_keys(storage: Storage) -> None:
    assert storage.take_lease("r1", 60)
    journal, another = storage.journal("r1"), storage.journal("r1")
    try:
        journal.begin("k1", 7, 1, 40_000, "9999078900012345", "fp", "cash=40000")
        journal.done("k1", dict(RESULT))
        entry = another.get("k1")  # another handle, the same journal
        assert entry is not None and entry.state == "done" and entry.result == RESULT
    finally:
        journal.close()
        another.close()
