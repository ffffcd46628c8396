"""The callback outbox sender: POSTs each finished request's report to its ``callback_url``.

Storage writes an outbox row in the same transaction that settles a request (`complete`/`fail`),
so a report is never lost between the register and the shop; this thread drains the outbox.

Delivery is **at least once**: a receiver that got the POST but whose answer was lost (timeout,
connection reset, a crash of ours between the POST and `record_attempt`) gets it again.  The
receiver deduplicates by the report's ``uuid`` (or by ``X-Kkt-Delivery``, the outbox row's id,
the same on every retry of one report).

Each POST carries ``X-Kkt-Signature: sha256=<hex HMAC-SHA256(secret, body)>`` so the receiver
can check that the report came from this service and was not altered.

Retries: after a failed try number *n* the next one waits ``min(2**(n-1), 600)`` seconds (1 s,
2 s, 4 s … 10 min) stretched by a random 0-25 % -- the jitter keeps the callbacks that failed
together (one receiver down) from all coming back in the same second.  The sender **gives up
once the schedule has spanned 24 hours** (`MAX_ATTEMPTS` tries); the report stays available by
``GET …/report/{uuid}``, as ATOL asks shops to poll anyway.  A URL that is not http(s), or has
no host, is given up at once: no retry can fix it.

Only 307/308 redirects to the *same* host are followed (they keep the method and body), never
from https down to http.  A redirect to another host, or a 301/302/303 (which would turn the
POST into a GET), counts as a failed try: following it would hand the signed report to
whoever the receiver points at.

Any 2xx answer is delivered.  Every try is recorded (`record_attempt`), delivered or not.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import urljoin, urlsplit

from kkt.cloud.lease import Outage
from kkt.cloud.storage.base import Callback, StorageUnavailable

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 600.0
GIVE_UP_AFTER_SECONDS = 24 * 3600.0
JITTER = 0.25  # a retry waits its delay times 1.0 .. 1.25
MAX_REDIRECTS = 5
MAX_ERROR_WAIT_SECONDS = 30.0  # between reads of an outbox that keeps failing
READ_LIMIT = 64 * 1024  # of the receiver's answer, read only to end the exchange cleanly


def retry_delay(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed try, before jitter."""
    return min(FIRST_DELAY_SECONDS * 2.0 ** max(attempts - 1, 0), MAX_DELAY_SECONDS)


def _attempts_in_a_day() -> int:
    """How many tries fit before the schedule spans `GIVE_UP_AFTER_SECONDS`."""
    elapsed, attempts = 0.0, 1
    while elapsed < GIVE_UP_AFTER_SECONDS:
        elapsed += retry_delay(attempts)
        attempts += 1
    return attempts


# Counted on the schedule, not on a clock: the outbox row carries its count of tries, and a
# sender that was down for an hour should not lose that hour of retrying.
MAX_ATTEMPTS = _attempts_in_a_day()


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-Kkt-Signature`` header's value for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class Outbox(Protocol):
    """The part of `kkt.cloud.storage.base.Storage` the sender uses."""

    def due_callbacks(self, now: datetime, limit: int) -> list[Callback]: ...

    def record_attempt(
        self,
        callback_id: int,
        *,
        ok: bool,
        status: int | None,
        error: str,
        next_at: datetime | None,
    ) -> None: ...


class _Outcome:
    __slots__ = ("error", "permanent", "status")

    def __init__(self, status: int | None, error: str, *, permanent: bool = False) -> None:
        self.status = status
        self.error = error
        self.permanent = permanent  # no retry can help (a URL we refuse to call)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class CallbackSender:
    """Drains the callback outbox on a thread of its own: `start()`, `stop()`.

    `run_once()` delivers what is due now and returns how many it tried; the thread calls it in
    a loop, waiting `poll` seconds whenever nothing was due.  `clock` gives UNIX seconds (tests
    pass one they move).  One POST at a time: a receiver that hangs holds the others back by
    at most `TIMEOUT_SECONDS` per try.
    """

    def __init__(
        self,
        storage: Outbox,
        secret: bytes,
        *,
        clock: Callable[[], float] = time.time,
        poll: float = 0.5,
        batch: int = 20,
        rng: random.Random | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not secret:
            raise ValueError("the callback secret is empty: receivers could not check signatures")
        self._storage = storage
        self._secret = secret
        self._clock = clock
        self._poll = poll
        self._batch = batch
        self._rng = rng or random.Random()
        self._ssl = ssl_context or ssl.create_default_context()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the callback sender is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="kkt-cloud-callbacks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2 * TIMEOUT_SECONDS) -> None:
        """Stop the thread; a POST under way is let finish (at most `TIMEOUT_SECONDS`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        failures, last_error = 0, ""
        outage = Outage("callback outbox")
        while not self._stop.is_set():
            try:
                tried = self.run_once()
            except StorageUnavailable as exc:
                # the database away (a restart, the network): said once, retried; a row whose
                # delivery was not recorded is posted again after it (receivers dedupe by uuid)
                outage.failed(exc)
                failures += 1
                self._stop.wait(min(self._poll * 2.0**failures, MAX_ERROR_WAIT_SECONDS))
                continue
            except Exception as exc:  # the storage failing must not end the thread silently
                # ... nor fill the log twice a second: the traceback once per new error, and
                # the outbox read less often while it keeps failing (up to MAX_ERROR_WAIT)
                error = f"{type(exc).__name__}: {exc}"
                if error != last_error:
                    log.exception("callback outbox: reading or recording failed; will retry")
                last_error = error
                failures += 1
                self._stop.wait(min(self._poll * 2.0**failures, MAX_ERROR_WAIT_SECONDS))
                continue
            failures, last_error = 0, ""
            outage.ok()
            if tried < self._batch:
                self._stop.wait(self._poll)

    def run_once(self) -> int:
        """Try every callback due now (up to `batch`); returns how many were tried."""
        due = self._storage.due_callbacks(self._now(), self._batch)
        for callback in due:
            if self._stop.is_set():
                break
            self._deliver(callback)
        return len(due)

    def _deliver(self, callback: Callback) -> None:
        # A row whose report could not be built is a failed try of its own (retried on the
        # schedule: the report may be readable later); nothing is posted.
        outcome = _Outcome(None, callback.error) if callback.error else self._post(callback)
        attempts = callback.attempts + 1
        next_at: datetime | None = None
        error = outcome.error
        if not outcome.ok and not outcome.permanent:
            if attempts >= MAX_ATTEMPTS:
                error = f"{error}; gave up after {attempts} tries over 24 h"
            else:
                delay = retry_delay(attempts) * (1.0 + JITTER * self._rng.random())
                next_at = self._now() + timedelta(seconds=delay)
        self._storage.record_attempt(
            callback.id, ok=outcome.ok, status=outcome.status, error=error, next_at=next_at
        )
        log.info(
            "callback %s for %s to %s: %s",
            callback.id,
            callback.uuid,
            callback.url,
            "delivered" if outcome.ok else f"failed ({error})",
        )

    def _post(self, callback: Callback) -> _Outcome:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "kkt-cloud",
            "X-Kkt-Signature": signature(self._secret, callback.body),
            "X-Kkt-Delivery": str(callback.id),
        }
        url = callback.url
        first_host = urlsplit(url).hostname
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                return _Outcome(None, f"not an http(s) URL: {url!r}", permanent=True)
            try:
                status, location = self._request(parts.scheme, url, callback.body, headers)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                return _Outcome(None, f"{type(exc).__name__}: {exc}")
            if status in (307, 308) and location:
                target = urljoin(url, location)
                if urlsplit(target).hostname != first_host:
                    return _Outcome(status, f"redirect to another host not followed: {target}")
                if parts.scheme == "https" and urlsplit(target).scheme != "https":
                    return _Outcome(status, f"redirect from https to {target} not followed")
                url = target
                continue
            if 200 <= status < 300:
                return _Outcome(status, "")
            return _Outcome(status, f"HTTP {status}")
        return _Outcome(None, f"more than {MAX_REDIRECTS} redirects")

    def _request(
        self, scheme: str, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str | None]:
        parts = urlsplit(url)
        host = parts.hostname or ""
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                host, parts.port, timeout=TIMEOUT_SECONDS, context=self._ssl
            )
        else:
            connection = http.client.HTTPConnection(host, parts.port, timeout=TIMEOUT_SECONDS)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            response.read(READ_LIMIT)
            return response.status, response.getheader("Location")
        finally:
            connection.close()
