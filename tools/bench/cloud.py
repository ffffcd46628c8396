"""``kkt bench cloud``: the cloud service's receipts per second and its latency, over HTTP.

``kkt cloud serve --emulated 4`` runs as its own process (SQLite state, four emulated registers);
this process is the shops: it posts ATOL v4 ``sell`` documents and reads the reports.

* ``cloud.receipts_per_s`` -- documents posted as fast as the service takes them (eight posting
  threads, 429 answers waited out), counted from the first POST to the last report ``done``;
* ``cloud.latency_p50_ms`` / ``cloud.latency_p99_ms`` -- at half that rate, paced, from each
  POST to the first report that reads ``done`` (one poller sweeps the documents in flight, so
  the figure is what a client sees, within one sweep).

Targets (issue 18): at least 100 receipts/s, p99 at most 1 s.  Both are printed, not asserted.

* ``cloud.pg.receipts_per_s`` (issue 19) -- the same count, posted to two ``kkt cloud serve --db
  postgresql://…`` instances in turn, on a private PostgreSQL cluster in a temporary directory,
  with four emulated registers served apart (`cloud_scale`); printed after the SQLite figures with
  its ratio to them, or a ``cloud.pg: skipped, …`` line saying what to install where the server
  binaries (``/usr/lib/postgresql/*/bin``) or psycopg are missing.

The pieces here are also the crash soak's (`soak.cloud_crash`): `CloudServer` (the service as a
child process that can be killed and started again on the same port), `CloudClient` (a small
ATOL client on ``http.client``) and `CallbackCounter` (the shop's callback endpoint).  None of
them imports ``kkt.cloud``: the service is tested from outside, as a shop sees it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import importlib.util
import json
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kkt.emulator.state import TEST_INN  # the emulated registers' INN: the shop's company.inn

from . import Bench, Figure, case, percentile
from .cloud_server import (
    CloudServer,
)

TARGET_RATE = 100.0  # issue 18: receipts per second, HTTP in, done out
TARGET_P99_MS = 1000.0
# sizes (quick, full): module constants, so tests shrink them
CLOUD_RECEIPTS = (200, 1000)  # per throughput round
CLOUD_ROUNDS = (1, 3)
CLOUD_LATENCY_RECEIPTS = (100, 500)


class HttpFailure(Exception):
    """No HTTP answer (refused, reset, timed out): the request may or may not have arrived."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any]
    retry_after: float | None


class CloudClient:
    """A small ATOL v4/v5 client: a token, posts, reports; one keep-alive connection per thread."""

    def __init__(self, url: str, *, api: int = 4, group: str = "demo", timeout: float = 10.0):
        host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        self.host, self.port, self.timeout = host, int(port), timeout
        self.prefix, self.group = f"/possystem/v{api}/", group
        self.token = ""
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _send(self, method: str, path: str, body: bytes | None) -> Reply:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.connection = connection
            with self._lock:
                self._all.append(connection)
        headers = {"Content-Type": "application/json; charset=utf-8"} if body else {}
        if self.token:
            headers["Token"] = self.token
        try:
            connection.request(method, self.prefix + path, body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            connection.close()  # the next request opens a fresh one
            raise HttpFailure(f"{type(error).__name__}: {error}") from error
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"raw": raw[:200].decode(errors="replace")}
        retry = response.getheader("Retry-After")
        return Reply(response.status, parsed if isinstance(parsed, dict) else {}, _seconds(retry))

    def login(self, login: str = "demo", password: str = "demo") -> None:
        reply = self._send(
            "POST", "getToken", json.dumps({"login": login, "pass": password}).encode()
        )
        token = reply.body.get("token")
        if not isinstance(token, str):
            raise AssertionError(f"getToken answered {reply.status} {reply.body}")
        self.token = token

    def post(self, operation: str, body: dict[str, Any]) -> Reply:
        raw = json.dumps(body, ensure_ascii=False).encode()
        return self._send("POST", f"{self.group}/{operation}", raw)

    def report(self, uuid: str) -> Reply:
        return self._send("GET", f"{self.group}/report/{uuid}", None)

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for connection in connections:
            connection.close()


def _seconds(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def accepted_uuid(reply: Reply) -> str | None:
    """The uuid of an accepted (or already known) document, None when refused."""
    uuid = reply.body.get("uuid")
    error = reply.body.get("error")
    if not isinstance(uuid, str):
        return None
    if reply.status == 200 and not error:
        return uuid
    if reply.status == 409:  # the same external_id with another body: refused
        return None
    if isinstance(error, dict) and error.get("code") == 33:  # ATOL's "external_id exists"
        return uuid
    return None


def sell_body(external_id: str, total: int, callback_url: str | None = None) -> dict[str, Any]:
    """An ATOL v4 ``sell`` of one item of ``total`` kopecks, paid electronically."""
    roubles = total / 100
    vat = round(total * 20 / 120) / 100
    body: dict[str, Any] = {
        "external_id": external_id,
        "timestamp": time.strftime("%d.%m.%Y %H:%M:%S"),
        "receipt": {
            "client": {"email": "bench@example.com"},
            "company": {
                "email": "shop@example.com",
                "sno": "osn",
                "inn": TEST_INN,
                "payment_address": "https://shop.example.com/",
            },
            "items": [
                {
                    "name": "Товар",
                    "price": roubles,
                    "quantity": 1.0,
                    "sum": roubles,
                    "measurement_unit": "шт.",
                    "payment_method": "full_payment",
                    "payment_object": "commodity",
                    "vat": {"type": "vat20"},
                }
            ],
            "payments": [{"type": 1, "sum": roubles}],
            "vats": [{"type": "vat20", "sum": vat}],
            "total": roubles,
        },
    }
    if callback_url:
        body["service"] = {"callback_url": callback_url}
    return body


def post_until_answered(
    client: CloudClient,
    body: dict[str, Any],
    *,
    give_up: float = 60.0,
    stop: threading.Event | None = None,
) -> Reply | None:
    """POST until the service answers other than 429 or 503 (a down service, an overload);
    resending is safe -- the ``external_id`` makes it the same document.  None when ``give_up``
    seconds pass (or ``stop`` is set) first."""
    deadline = time.monotonic() + give_up
    while True:
        try:
            reply = client.post("sell", body)
            if reply.status not in (429, 503):
                return reply
            pause = min(reply.retry_after or 0.1, 1.0)
        except HttpFailure:
            pause = 0.1
        if time.monotonic() > deadline or (stop is not None and stop.is_set()):
            return None
        time.sleep(pause)


@dataclass
class CallbackCounter:
    """The shop's callback endpoint: counts deliveries per uuid and signature headers of the
    form ``sha256=<64 hex digits>`` (checked against ``secret`` when given)."""

    secret: bytes | None = None
    counts: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, str] = field(default_factory=dict)
    bad_signatures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/cb"

    def start(self) -> CallbackCounter:
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                counter._take(raw, self.headers.get("X-Kkt-Signature") or "")
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="cloud-callbacks")
        self._thread.start()
        return self

    def _take(self, raw: bytes, signature: str) -> None:
        digest = signature.removeprefix("sha256=")
        if self.secret is not None:
            good = hmac.compare_digest(
                digest, hmac.new(self.secret, raw, hashlib.sha256).hexdigest()
            )
        else:
            good = signature.startswith("sha256=") and len(digest) == 64
        try:
            report = json.loads(raw)
            uuid, status = str(report["uuid"]), str(report["status"])
        except (ValueError, KeyError, TypeError):
            uuid, status = "?", "?"
        with self._lock:
            self.counts[uuid] += 1
            self.statuses[uuid] = status
            self.bad_signatures += not good

    def missing(self, uuids: set[str]) -> set[str]:
        with self._lock:
            return {uuid for uuid in uuids if not self.counts[uuid]}

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None


def wait_done(
    client: CloudClient, uuids: Sequence[str], *, timeout: float, pause: float = 0.01
) -> dict[str, dict[str, Any]]:
    """The reports of ``uuids`` once none reads ``wait``, polled oldest first: the head is asked
    until it is settled, then the next (the service works in order of acceptance, so this asks
    about little more than one document per document)."""
    reports: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    for uuid in uuids:
        while True:
            with contextlib.suppress(HttpFailure):
                reply = client.report(uuid)
                if reply.body.get("status") in ("done", "fail"):
                    reports[uuid] = reply.body
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"{uuid} not settled in {timeout:g} s")
            time.sleep(pause)
    return reports


def _throughput(clients: Sequence[CloudClient], count: int, threads: int) -> float:
    """Receipts per second, posted to ``clients`` in turn (instances of one service), read
    back through the first."""
    stamp = f"{time.time_ns():x}"
    bodies = [sell_body(f"bench-{stamp}-{index}", 10_000 + index) for index in range(count)]
    client = clients[0]

    def post(body: dict[str, Any]) -> str:
        index = int(str(body["external_id"]).rsplit("-", 1)[1])
        reply = post_until_answered(clients[index % len(clients)], body)
        uuid = accepted_uuid(reply) if reply else None
        if uuid is None:
            raise AssertionError(f"not accepted: {reply}")
        return uuid

    started = time.perf_counter()
    with ThreadPoolExecutor(threads, thread_name_prefix="bench-post") as pool:
        uuids = list(pool.map(post, bodies))
    reports = wait_done(client, uuids, timeout=60 + count)
    elapsed = time.perf_counter() - started
    failed = [uuid for uuid, report in reports.items() if report.get("status") != "done"]
    if failed:
        raise AssertionError(f"{len(failed)} documents failed, e.g. {reports[failed[0]]}")
    return count / elapsed


def _latencies(client: CloudClient, count: int, per_second: float) -> list[float]:
    """Seconds from each POST to its first ``done`` report, posting paced at ``per_second``."""
    stamp = f"{time.time_ns():x}"
    posted: dict[str, float] = {}  # uuid -> when its POST was sent
    settled: dict[str, float] = {}
    lock = threading.Lock()
    posting_done = threading.Event()

    def poll() -> None:
        while True:
            with lock:
                open_ = [uuid for uuid in posted if uuid not in settled]
            if not open_ and posting_done.is_set():
                return
            for uuid in open_:
                with contextlib.suppress(HttpFailure):
                    if client.report(uuid).body.get("status") in ("done", "fail"):
                        with lock:
                            settled[uuid] = time.perf_counter()
            time.sleep(0.002)

    poller = threading.Thread(target=poll, name="bench-poll")
    poller.start()
    try:
        started = time.perf_counter()
        for index in range(count):
            time.sleep(max(0.0, started + index / per_second - time.perf_counter()))
            sent = time.perf_counter()
            reply = post_until_answered(client, sell_body(f"lat-{stamp}-{index}", 20_000 + index))
            uuid = accepted_uuid(reply) if reply else None
            if uuid is None:
                raise AssertionError(f"not accepted: {reply}")
            with lock:
                posted[uuid] = sent
    finally:
        posting_done.set()
        poller.join(60 + count)
    return [settled[uuid] - posted[uuid] for uuid in posted if uuid in settled]


def served(bench: Bench, name: str, *, emulated: int = 4) -> CloudServer:
    return CloudServer(bench.work / name, bench.work / f"{name}.log", emulated=emulated)


def cloud_available() -> bool:
    return importlib.util.find_spec("fastapi") is not None


@case("cloud")
def cloud_case(bench: Bench) -> Iterator[Figure]:
    if not cloud_available():
        bench.log("cloud: skipped, the service needs pip install 'kktkit[cloud]'")
        return
    server = served(bench, "cloud")
    client: CloudClient | None = None
    server.start()
    try:
        client = CloudClient(server.url)
        client.login()
        _throughput([client], 20, 4)  # warm up: shifts open, connections made
        count, rounds = bench.size(*CLOUD_RECEIPTS), bench.size(*CLOUD_ROUNDS)
        rates = [_throughput([client], count, 8) for _ in range(rounds)]
        per_s = statistics.median(rates)
        yield Figure("cloud.receipts_per_s", per_s, "1/s", f"target >= {TARGET_RATE:g}; 4 emulated")
        samples = _latencies(client, bench.size(*CLOUD_LATENCY_RECEIPTS), max(1.0, per_s / 2))
        note = f"at {per_s / 2:.0f}/s (half rate)"
        yield Figure("cloud.latency_p50_ms", 1000 * percentile(samples, 0.5), "ms", note)
        p99 = 1000 * percentile(samples, 0.99)
        yield Figure("cloud.latency_p99_ms", p99, "ms", f"target <= {TARGET_P99_MS:g}; {note}")
    finally:
        if client is not None:
            client.close()
        server.stop()
    from .cloud_scale import pg_receipts_per_s  # it builds on this module

    yield from pg_receipts_per_s(
        bench, CLOUD_RECEIPTS, CLOUD_ROUNDS, per_s, make_client=CloudClient, throughput=_throughput
    )
