"""The ATOL Online client and the callback receiver against a stand-in of a few lines: the
client's own behaviour (token renewal, error 33 keeps the first uuid, error 34 reads as "wait"),
so that an acceptance failure is the service's, not the shop's."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import threading
import uuid as uuids
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from interop.atol_online_client import AtolError, AtolOnline, CallbackReceiver, receipt_body


class StandIn:
    """ATOL's answers as A4 states them, for one group: tokens expire after ``token_uses``
    requests (code 11), a known external_id is code 33 with the first uuid, the first report of
    each uuid is code 34."""

    def __init__(self, token_uses: int = 1000) -> None:
        self.token_uses = token_uses
        self.tokens: dict[str, int] = {}
        self.documents: dict[str, str] = {}  # external_id -> uuid
        self.asked: set[str] = set()
        self.lock = threading.Lock()

    def answer(self, method: str, path: str, token: str | None, body: bytes) -> tuple[int, Any]:
        with self.lock:
            if path.endswith("/getToken"):
                token = uuids.uuid4().hex
                self.tokens[token] = self.token_uses
                return 200, {"token": token, "error": None, "timestamp": "01.01.2026 00:00:00"}
            if token not in self.tokens:
                return 401, {"error": {"code": 10, "text": "no token", "type": "system"}}
            if self.tokens[token] <= 0:
                return 401, {"error": {"code": 11, "text": "expired", "type": "system"}}
            self.tokens[token] -= 1
            if method == "POST":
                external_id = json.loads(body)["external_id"]
                if external_id in self.documents:
                    error = {"code": 33, "text": "exists", "type": "system"}
                    return 400, {"uuid": self.documents[external_id], "error": error}
                self.documents[external_id] = uuid = str(uuids.uuid4())
                return 200, {"uuid": uuid, "error": None, "status": "wait"}
            uuid = path.rsplit("/", 1)[1]
            if uuid not in self.asked:
                self.asked.add(uuid)
                error = {"code": 34, "text": "not yet", "type": "system"}
                return 200, {"uuid": uuid, "error": error, "status": "fail"}
            return 200, {"uuid": uuid, "error": None, "status": "done", "payload": {"total": 1}}


@contextmanager
def stand_in(atol: StandIn) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, answer = atol.answer(self.command, self.path, self.headers["Token"], body)
            raw = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _reply

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_repeat_keeps_the_first_uuid_and_a_report_waits_through_34() -> None:
    with stand_in(StandIn()) as url, AtolOnline(url) as shop:
        body = receipt_body(4, "order-1", inn="7701000001", total=12_345)
        first = shop.register("sell", body)
        again = shop.register("sell", body)
        assert not first.known and again.known and again.uuid == first.uuid
        assert shop.report(first.uuid)["status"] == "wait"  # code 34
        assert shop.wait(first.uuid, timeout=5)["status"] == "done"


def test_an_expired_token_is_renewed_once() -> None:
    with stand_in(StandIn(token_uses=1)) as url, AtolOnline(url) as shop:
        shop.register("sell", receipt_body(4, "a", inn="7701000001", total=100))
        token = shop.token
        shop.register("sell", receipt_body(4, "b", inn="7701000001", total=100))
        assert shop.token != token


def test_a_wrong_login_is_an_error_with_its_code() -> None:
    class Refusing(StandIn):
        def answer(self, method: str, path: str, token: str | None, body: bytes) -> Any:
            return 401, {"error": {"code": 12, "text": "wrong login", "type": "system"}}

    with stand_in(Refusing()) as url, AtolOnline(url) as shop:
        with pytest.raises(AtolError) as raised:
            shop.get_token()
        assert raised.value.code == 12 and raised.value.http_status == 401


def test_the_v4_and_v5_bodies_name_the_fields_as_documented() -> None:
    v4 = receipt_body(4, "x", inn="7701000001", total=12_000)["receipt"]
    v5 = receipt_body(5, "x", inn="7701000001", total=12_000)["receipt"]
    assert v4["items"][0]["payment_object"] == "commodity" and "measurement_unit" in v4["items"][0]
    assert v5["items"][0]["payment_object"] == 1 and v5["items"][0]["measure"] == 0
    assert v4["total"] == 120.0 and v4["vats"] == [{"type": "vat20", "sum": 20.0}]


def _deliver(url: str, raw: bytes, signature: str) -> int:
    host, port = url.removeprefix("http://").split("/", 1)[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("POST", "/callback", raw, {"X-Kkt-Signature": signature})
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_receiver_counts_deliveries_and_checks_signatures() -> None:
    secret = b"k"
    raw = json.dumps({"uuid": "u1", "status": "done", "payload": {}}).encode()
    good = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
    with CallbackReceiver(secret=secret) as receiver:
        assert _deliver(receiver.url, raw, good) == 200
        assert _deliver(receiver.url, raw, good) == 200
        assert receiver.wait_for({"u1"}, timeout=5) == set()
        assert receiver.counts["u1"] == 2 and not receiver.bad
        _deliver(receiver.url, raw, "sha256=" + "0" * 64)
        assert len(receiver.bad) == 1
