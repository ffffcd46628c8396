"""An ATOL Online v4/v5 client written from the API's published description, not from our service.

It stands in for a shop's integration (a PHP or 1C module written against ATOL's PDF): raw
``http.client``, its own JSON, its own idea of the fields, and nothing of ``kkt.cloud`` -- so a
mistake the service shares with its own schema cannot hide here.  What it follows is the fact
sheet's (/work/shared/reference/ofd-cloud-marking.md §2, the v4 document "A4"):

* ``POST {base}/getToken`` with ``{"login", "pass"}`` -> ``{"token", "error": null, "timestamp"}``;
  the token goes in the ``Token`` header of every later request and lives 24 h (codes 10/11 ask
  for a new one);
* ``POST {base}/{group}/{operation}`` -> ``{"uuid", "status": "wait", "error": null}``; a known
  ``external_id`` is answered with error 33 and the FIRST document's uuid (A4 Table 6), which a
  careful client keeps instead of treating it as a failure;
* ``GET {base}/{group}/report/{uuid}`` -> ``status`` wait | done | fail with ``payload`` (1020,
  1040, 1041, 1077 ... under ATOL's names); error 34 means "not processed yet, ask later".

`CallbackReceiver` is the shop's other end: an ``http.server`` on 127.0.0.1 that takes the report
packets the service POSTs to ``callback_url``, counts deliveries per uuid (delivery is at least
once, so a count above one is allowed, none is not) and checks each one's
``X-Kkt-Signature: sha256=<hex HMAC-SHA256 of the body>``.

Body builders (`receipt_body`, `correction_body`) write the fields as A4 Table 2/3 (v4) and the
v5 differences (§2.7) name them; amounts are given in kopecks and sent as roubles, as ATOL wants.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPERATION_TAG = {  # tag 1054 of each operation (FFD: 1 приход, 2 возврат прихода, 3 расход, ...)
    "sell": 1,
    "sell_refund": 2,
    "buy": 3,
    "buy_refund": 4,
    "sell_correction": 1,
    "buy_correction": 3,
    "sell_refund_correction": 2,
    "buy_refund_correction": 4,
}

CODE_EXTERNAL_ID_EXISTS = 33  # A4 Table 6: the answer carries the first document's uuid
CODE_NOT_PROCESSED_YET = 34  # "poll later, do not resend"
CODES_NEW_TOKEN = (10, 11)  # token unknown / older than 24 h


class AtolError(Exception):
    """The service answered an error object (``error{code, text, type}``) or a non-JSON body."""

    def __init__(self, http_status: int, answer: dict[str, Any]) -> None:
        self.http_status = http_status
        self.answer = answer
        error = answer.get("error") or {}
        self.code: int | None = error.get("code") if isinstance(error, dict) else None
        self.text: str = str(error.get("text", "")) if isinstance(error, dict) else str(answer)
        super().__init__(f"HTTP {http_status}, ATOL code {self.code}: {self.text}")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Registered:
    """What posting one document gave: its uuid, and whether the service said it knew it."""

    uuid: str
    http_status: int
    known: bool  # answered as a repeat (code 33 in ATOL's mode; the same uuid in ours)
    answer: dict[str, Any]


def _money(kopecks: int) -> float:
    # ATOL's numbers are roubles with two decimals; a float of kopecks/100 prints exactly that
    # in JSON (repr of a float is the shortest string that reads back to it).
    return kopecks / 100


def _vat20(kopecks: int) -> int:
    return round(Decimal(kopecks) * 20 / 120)


def _timestamp(when: float | None = None) -> str:
    return time.strftime("%d.%m.%Y %H:%M:%S", time.localtime(when))


def receipt_body(
    api: int,
    external_id: str,
    *,
    inn: str,
    total: int,
    name: str = "Товар",
    email: str = "buyer@example.com",
    callback_url: str | None = None,
) -> dict[str, Any]:
    """A receipt of one item of ``total`` kopecks at VAT 20 %, paid electronically (type 1)."""
    item: dict[str, Any] = {
        "name": name,
        "price": _money(total),
        "quantity": 1.0,
        "sum": _money(total),
        "payment_method": "full_payment",
        "vat": {"type": "vat20"},
    }
    if api == 4:
        item |= {"measurement_unit": "шт.", "payment_object": "commodity"}
    else:  # v5: integer object and unit codes, and the item's VAT sum
        item |= {"measure": 0, "payment_object": 1}
        item["vat"]["sum"] = _money(_vat20(total))
    body: dict[str, Any] = {
        "external_id": external_id,
        "timestamp": _timestamp(),
        "receipt": {
            "client": {"email": email},
            "company": {
                "email": "shop@example.com",
                "sno": "osn",
                "inn": inn,
                "payment_address": "https://shop.example.com/",
            },
            "items": [item],
            "payments": [{"type": 1, "sum": _money(total)}],
            "vats": [{"type": "vat20", "sum": _money(_vat20(total))}],
            "total": _money(total),
        },
    }
    if callback_url is not None:
        body["service"] = {"callback_url": callback_url}
    return body


def correction_body(
    api: int,
    external_id: str,
    *,
    inn: str,
    total: int,
    callback_url: str | None = None,
) -> dict[str, Any]:
    """A correction by the shop's own decision (``self``) of ``total`` kopecks at VAT 20 %: v4
    carries no items (A4 Table 3), v5 adds items and a total (§2.7)."""
    correction: dict[str, Any] = {
        "company": {"sno": "osn", "inn": inn, "payment_address": "https://shop.example.com/"},
        "payments": [{"type": 1, "sum": _money(total)}],
        "vats": [{"type": "vat20", "sum": _money(_vat20(total))}],
        "cashier": "Иванов И.И.",
    }
    if api == 4:
        correction["correction_info"] = {
            "type": "self",
            "base_date": time.strftime("%d.%m.%Y"),
            "base_number": "1",
            "base_name": "Самостоятельная коррекция",
        }
    else:
        correction["company"]["email"] = "shop@example.com"
        correction["correction_info"] = {
            "type": "self",
            "base_date": time.strftime("%d.%m.%Y"),
            "base_number": "1",
        }
        correction["items"] = [
            {
                "name": "Коррекция",
                "price": _money(total),
                "quantity": 1.0,
                "sum": _money(total),
                "measure": 0,
                "payment_method": "full_payment",
                "payment_object": 1,
                "vat": {"type": "vat20", "sum": _money(_vat20(total))},
            }
        ]
        correction["total"] = _money(total)
    body: dict[str, Any] = {
        "external_id": external_id,
        "timestamp": _timestamp(),
        "correction": correction,
    }
    if callback_url is not None:
        body["service"] = {"callback_url": callback_url}
    return body


class AtolOnline:
    """One shop's connection to ``{base_url}/possystem/v{api}/``; safe to share between threads
    (each thread keeps its own keep-alive connection)."""

    def __init__(
        self,
        base_url: str,
        *,
        api: int = 4,
        login: str = "demo",
        password: str = "demo",
        group: str = "demo",
        timeout: float = 30.0,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"an http:// URL, not {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.prefix = f"/possystem/v{api}/"
        self.api, self.login, self.password, self.group = api, login, password, group
        self.timeout = timeout
        self.token: str | None = None
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    # -- HTTP ------------------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """One request on this thread's connection.  A keep-alive connection the server closed
        meanwhile is reopened once; any other failure (refused, reset mid-answer) is raised."""
        sent = dict(headers or {})
        if body is not None:
            sent["Content-Type"] = "application/json; charset=utf-8"
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request(method, self.prefix + path, body=body, headers=sent)
                response = connection.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                connection.close()
                if attempt == 2:
                    raise
        try:
            parsed = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            parsed = {"error": {"code": None, "text": raw[:200].decode(errors="replace")}}
        if not isinstance(parsed, dict):
            parsed = {"error": {"code": None, "text": f"not an object: {parsed!r}"[:200]}}
        return Answer(response.status, parsed, {k.lower(): v for k, v in response.getheaders()})

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def __enter__(self) -> AtolOnline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the API ---------------------------------------------------------------------------------

    def get_token(self) -> str:
        body = json.dumps({"login": self.login, "pass": self.password}).encode()
        answer = self.request("POST", "getToken", body)
        token = answer.body.get("token")
        if answer.status != 200 or answer.body.get("error") or not isinstance(token, str):
            raise AtolError(answer.status, answer.body)
        self.token = token
        return token

    def _authorised(
        self, method: str, path: str, body: bytes | None = None, **headers: str
    ) -> Answer:
        if self.token is None:
            self.get_token()
        assert self.token is not None
        answer = self.request(method, path, body, {"Token": self.token, **headers})
        error = answer.body.get("error")
        if isinstance(error, dict) and error.get("code") in CODES_NEW_TOKEN:
            self.get_token()  # expired or unknown: A4 says take a new one and send again
            answer = self.request(method, path, body, {"Token": self.token, **headers})
        return answer

    def post_raw(self, operation: str, body: dict[str, Any] | bytes, **headers: str) -> Answer:
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        return self._authorised("POST", f"{self.group}/{operation}", raw, **headers)

    def register(
        self, operation: str, body: dict[str, Any], *, idempotency_key: str | None = None
    ) -> Registered:
        """Post a document; its uuid, also when the service already knew the ``external_id``
        (error 33 with the first uuid).  Any other error raises `AtolError`."""
        extra = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        answer = self.post_raw(operation, body, **extra)
        uuid = answer.body.get("uuid")
        error = answer.body.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        if answer.status == 200 and not error and isinstance(uuid, str):
            return Registered(uuid, 200, False, answer.body)
        if code == CODE_EXTERNAL_ID_EXISTS and isinstance(uuid, str):
            return Registered(uuid, answer.status, True, answer.body)
        raise AtolError(answer.status, answer.body)

    def report(self, uuid: str) -> dict[str, Any]:
        """The report as it stands (status wait, done or fail); error 34 reads as ``wait``."""
        answer = self._authorised("GET", f"{self.group}/report/{uuid}")
        error = answer.body.get("error")
        if isinstance(error, dict) and error.get("code") == CODE_NOT_PROCESSED_YET:
            return {**answer.body, "status": "wait"}
        if answer.status != 200 or "status" not in answer.body:
            raise AtolError(answer.status, answer.body)
        return answer.body

    def wait(self, uuid: str, *, timeout: float = 120.0, pause: float = 0.05) -> dict[str, Any]:
        """Poll the report until it is not ``wait`` (TimeoutError after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            report = self.report(uuid)
            if report.get("status") != "wait":
                return report
            if time.monotonic() > deadline:
                raise TimeoutError(f"{uuid} still waits after {timeout:g} s: {report}")
            time.sleep(pause)


# -- the shop's callback endpoint ------------------------------------------------------------------

SIGNATURE_HEADER = "X-Kkt-Signature"


@dataclass
class Delivery:
    uuid: str
    status: str
    report: dict[str, Any]
    signature_ok: bool


@dataclass
class CallbackReceiver:
    """Takes callbacks on ``url`` (127.0.0.1, a free port); ``with`` starts and stops it.

    ``secret`` None checks only the header's form (``sha256=`` and 64 hex digits): the form is
    the contract, the key is the operator's."""

    secret: bytes | None = None
    answer_status: int = 200  # what the shop answers (a test may make it fail first)
    deliveries: list[Delivery] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)  # bodies or signatures that did not check
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the receiver first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/callback"

    def start(self) -> CallbackReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                receiver._take(raw, self.headers.get(SIGNATURE_HEADER))
                self.send_response(receiver.answer_status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the counts are the log

        # HTTP/1.0 handlers end with their one request, so closing the server joins them all
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="callback-receiver", daemon=True
        )
        self._thread.start()
        return self

    def _take(self, raw: bytes, signature: str | None) -> None:
        ok = self._signature_ok(raw, signature)
        try:
            report = json.loads(raw)
            uuid, status = str(report["uuid"]), str(report["status"])
        except (ValueError, KeyError, TypeError) as error:
            with self._lock:
                self.bad.append(f"not a report ({error}): {raw[:120]!r}")
            return
        with self._lock:
            self.deliveries.append(Delivery(uuid, status, report, ok))
            self.counts[uuid] += 1
            if not ok:
                self.bad.append(f"{uuid}: signature {signature!r} does not check")

    def _signature_ok(self, raw: bytes, signature: str | None) -> bool:
        if signature is None or not signature.startswith("sha256="):
            return False
        digest = signature.removeprefix("sha256=")
        if self.secret is None:
            return len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
        expected = hmac.new(self.secret, raw, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, digest)

    def last(self, uuid: str) -> Delivery | None:
        with self._lock:
            for delivery in reversed(self.deliveries):
                if delivery.uuid == uuid:
                    return delivery
        return None

    def wait_for(self, uuids: set[str], *, timeout: float = 60.0) -> set[str]:
        """Wait until every uuid was delivered at least once; those still missing."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                missing = {uuid for uuid in uuids if not self.counts[uuid]}
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.05)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> CallbackReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
