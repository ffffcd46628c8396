"""The callback outbox sender against a real HTTP receiver on 127.0.0.1: signed POSTs, retries
with backoff after failures, every try recorded, redirects to other hosts refused, and the
24-hour give-up counted on the schedule."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kkt.cloud.callbacks import (
    MAX_ATTEMPTS,
    MAX_DELAY_SECONDS,
    CallbackSender,
    retry_delay,
    signature,
)
from kkt.cloud.storage.base import Callback
from support.cloud_fakes_web import T0, FakeStorage

SECRET = b"callback-secret"


class Receiver:
    """An HTTP server that answers 500 to the first `failures` POSTs, then 200 (or whatever
    `answer` says for a path), and keeps what it was sent."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.answers: dict[str, tuple[int, dict[str, str]]] = {}
        self.delivered = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((self.path, dict(self.headers.items()), body))
                status, headers = receiver.answers.get(self.path, (200, {}))
                if len(receiver.received) <= receiver.failures:
                    status, headers = 500, {}
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if 200 <= status < 300:
                    receiver.delivered.set()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="receiver"
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(failures=2) as running:
        yield running


class Clock:
    def __init__(self) -> None:
        self.now = T0.timestamp()

    def __call__(self) -> float:
        return self.now

    def at(self, when: datetime) -> None:
        self.now = when.timestamp()


BODY = json.dumps({"uuid": "u-1", "status": "done"}).encode()


def test_a_failing_receiver_gets_it_again_after_backoff_then_it_is_delivered(
    receiver: Receiver,
) -> None:
    storage, clock = FakeStorage(), Clock()
    callback_id = storage.add_callback("u-1", receiver.url + "/cb?shop=1", BODY)
    sender = CallbackSender(storage, SECRET, clock=clock, rng=random.Random(1))

    assert sender.run_once() == 1
    first = storage.attempts[-1]
    assert (first.ok, first.status, first.error) == (False, 500, "HTTP 500")
    assert first.next_at is not None
    assert timedelta(seconds=1) <= first.next_at - T0 <= timedelta(seconds=1.25)
    assert sender.run_once() == 0, "retried before its time"

    clock.at(first.next_at)
    assert sender.run_once() == 1
    second = storage.attempts[-1]
    assert not second.ok and second.next_at is not None
    assert timedelta(seconds=2) <= second.next_at - first.next_at <= timedelta(seconds=2.5)

    clock.at(second.next_at)
    assert sender.run_once() == 1
    third = storage.attempts[-1]
    assert (third.ok, third.status, third.next_at) == (True, 200, None)
    assert sender.run_once() == 0, "a delivered callback is sent again"

    assert len(receiver.received) == 3
    for path, headers, body in receiver.received:
        assert path == "/cb?shop=1"
        assert body == BODY
        expected = hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()
        assert headers["X-Kkt-Signature"] == f"sha256={expected}"
        assert headers["X-Kkt-Delivery"] == str(callback_id)
        assert headers["Content-Type"].startswith("application/json")


def test_the_thread_delivers_and_stops(receiver: Receiver) -> None:
    storage = FakeStorage()
    storage.add_callback("u-1", receiver.url + "/cb", BODY)
    hours = iter(range(10**6))
    # every reading of the clock is an hour later: each retry is due at the next look
    sender = CallbackSender(
        storage, SECRET, clock=lambda: T0.timestamp() + 3600 * next(hours), poll=0.01
    )
    sender.start()
    try:
        assert receiver.delivered.wait(30), "never delivered"
    finally:
        sender.stop()
    assert [(a.ok, a.status) for a in storage.attempts] == [(False, 500), (False, 500), (True, 200)]


def test_a_redirect_to_the_same_host_is_followed_to_another_is_not() -> None:
    with Receiver() as receiver:
        receiver.answers["/old"] = (308, {"Location": "/new"})
        receiver.answers["/away"] = (307, {"Location": "http://localhost.example/cb"})
        receiver.answers["/see-other"] = (303, {"Location": "/new"})
        storage = FakeStorage()
        moved = storage.add_callback("u-1", receiver.url + "/old", BODY)
        away = storage.add_callback("u-2", receiver.url + "/away", BODY)
        other = storage.add_callback("u-3", receiver.url + "/see-other", BODY)
        CallbackSender(storage, SECRET, clock=lambda: T0.timestamp()).run_once()
    by_id = {a.callback_id: a for a in storage.attempts}
    assert by_id[moved].ok and by_id[moved].status == 200
    assert not by_id[away].ok
    assert "another host" in by_id[away].error and by_id[away].next_at is not None
    assert not by_id[other].ok and by_id[other].status == 303
    assert [path for path, _, _ in receiver.received] == ["/old", "/new", "/away", "/see-other"]


@pytest.mark.parametrize("url", ["ftp://example.com/cb", "file:///etc/passwd", "http:///nohost"])
def test_a_url_that_is_not_http_is_given_up_at_once(url: str) -> None:
    storage = FakeStorage()
    storage.add_callback("u-1", url, BODY)
    CallbackSender(storage, SECRET, clock=lambda: T0.timestamp()).run_once()
    [attempt] = storage.attempts
    assert (attempt.ok, attempt.status, attempt.next_at) == (False, None, None)
    assert "not an http(s) URL" in attempt.error


def test_a_refused_connection_is_retried() -> None:
    with Receiver() as closed:
        url = closed.url  # nothing listens there once it is closed
    storage = FakeStorage()
    storage.add_callback("u-1", url + "/cb", BODY)
    CallbackSender(storage, SECRET, clock=lambda: T0.timestamp()).run_once()
    [attempt] = storage.attempts
    assert not attempt.ok and attempt.status is None and attempt.next_at is not None
    assert "ConnectionRefused" in attempt.error


def test_the_schedule_doubles_from_one_second_to_ten_minutes_and_spans_a_day() -> None:
    assert [retry_delay(n) for n in range(1, 6)] == [1, 2, 4, 8, 16]
    assert retry_delay(10) == 512 and retry_delay(11) == MAX_DELAY_SECONDS
    assert retry_delay(1000) == MAX_DELAY_SECONDS
    spanned = sum(retry_delay(n) for n in range(1, MAX_ATTEMPTS))
    assert spanned >= 24 * 3600 > spanned - retry_delay(MAX_ATTEMPTS - 1)


def test_the_last_try_gives_up() -> None:
    storage = FakeStorage()
    callback_id = storage.add_callback("u-1", "http://127.0.0.1:9/cb", BODY)
    row = storage.outbox[callback_id]
    row.callback = replace(row.callback, attempts=MAX_ATTEMPTS - 1)  # all but the last made
    CallbackSender(storage, SECRET, clock=lambda: T0.timestamp()).run_once()
    [attempt] = storage.attempts
    assert attempt.next_at is None and not attempt.ok
    assert "gave up" in attempt.error


def test_signature_is_hmac_sha256_of_the_body() -> None:
    assert signature(b"key", b"body") == (
        "sha256=" + hmac.new(b"key", b"body", hashlib.sha256).hexdigest()
    )
    with pytest.raises(ValueError, match="secret is empty"):
        CallbackSender(FakeStorage(), b"")


def test_a_callback_not_yet_due_is_not_sent() -> None:
    storage = FakeStorage()
    storage.add_callback("u-1", "ftp://x/", BODY, at=datetime(2026, 3, 2, 10, 0, 1, tzinfo=UTC))
    assert CallbackSender(storage, SECRET, clock=lambda: T0.timestamp()).run_once() == 0


def test_a_failing_outbox_is_logged_once_and_the_thread_carries_on(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    class Flaky(FakeStorage):
        def __init__(self) -> None:
            super().__init__()
            self.broken = 3

        def due_callbacks(self, now: datetime, limit: int) -> list[Callback]:
            if self.broken:
                self.broken -= 1
                raise OSError("disk I/O error")
            return super().due_callbacks(now, limit)

    storage = Flaky()
    storage.add_callback("u-1", receiver.url + "/cb", BODY)
    receiver.failures = 0
    sender = CallbackSender(storage, SECRET, clock=lambda: T0.timestamp(), poll=0.001)
    with caplog.at_level("ERROR", logger="kkt.cloud.callbacks"):
        sender.start()
        try:
            assert receiver.delivered.wait(30), "the thread gave up after the outbox failed"
        finally:
            sender.stop()
    assert storage.broken == 0
    assert len([r for r in caplog.records if "reading or recording failed" in r.message]) == 1


def test_a_callback_whose_report_could_not_be_built_is_a_failed_try_with_backoff() -> None:
    storage, clock = FakeStorage(), Clock()
    callback_id = storage.add_callback("u-1", "http://127.0.0.1:9/cb", b"")
    row = storage.outbox[callback_id]
    row.callback = replace(row.callback, error="the report could not be built: ValueError")
    sender = CallbackSender(storage, SECRET, clock=clock, rng=random.Random(1))
    assert sender.run_once() == 1  # nothing posted: port 9 would have refused it otherwise
    attempt = storage.attempts[-1]
    assert (attempt.ok, attempt.status) == (False, None)
    assert attempt.error.startswith("the report could not be built")
    assert attempt.next_at is not None and attempt.next_at > T0
