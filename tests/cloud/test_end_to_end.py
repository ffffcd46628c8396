"""The whole service on emulated registers: a sell posted over HTTP is fiscalized by a register
of the pool, its report comes back ``done`` with the FN's data, its receipt draws, the callback
arrives, ``/metrics`` has the register's fiscalization time, and the operator page answers."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from kkt.emulator.state import TEST_INN
from support.cloud import PATIENCE_SECONDS, CloudServer, sell_body, sell_body_for

Start = Callable[..., CloudServer]


def _company(body: dict[str, Any]) -> dict[str, Any]:
    body["receipt"]["company"]["inn"] = TEST_INN  # the emulated registers' INN
    return body


def _fiscalize_counts(exposition: str) -> dict[str, float]:
    """register -> samples of ``kkt_cloud_register_fiscalize_seconds`` in a /metrics page."""
    found = re.findall(
        r'^kkt_cloud_register_fiscalize_seconds_count\{register="([^"]+)"\} (\S+)$',
        exposition,
        re.MULTILINE,
    )
    return {name: float(count) for name, count in found}


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.received.append((self.headers.get("X-Kkt-Signature", ""), self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_sell_is_fiscalized_reported_drawn_and_called_back(cloud_server: Start) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    serving = threading.Thread(target=receiver.serve_forever)
    serving.start()
    try:
        server = cloud_server(emulated=2)
        token = server.token()
        callback = f"http://127.0.0.1:{receiver.server_address[1]}/cb"
        body = _company(sell_body("e2e-1", service={"callback_url": callback}))
        answer = server.post("sell", body, token=token)
        assert answer.status_code == 200, answer.text
        uuid = answer.json()["uuid"]
        v5 = server.post("sell", _company(sell_body_for(5, "e2e-5")), token=token, api=5)
        assert v5.status_code == 200, v5.text
        report = server.settled(uuid, token=token)
        assert report["status"] == "done", report
        payload = report["payload"]
        assert payload["total"] == 400 and payload["fiscal_document_number"] > 0
        view = server.service.storage.report(uuid)
        assert view is not None and view.result is not None
        assert payload["fn_number"] == view.result["fn_number"]
        url = f"/possystem/v4/demo/report/{uuid}"
        text = server.client.get(f"{url}/receipt.txt", headers={"Token": token})
        assert text.status_code == 200 and view.result["fn_number"] in text.text
        assert "колбаса Клинский" in text.text  # the whole receipt, items included
        # the register's owner as its print form names it: the INN and the register's RNM
        assert body["receipt"]["company"]["inn"] in text.text
        assert view.result["rnm"] and view.result["rnm"] in text.text
        v5_report = server.settled(v5.json()["uuid"], token=token, api=5)
        assert v5_report["status"] == "done", v5_report
        # two documents: on two registers, or two numbers of one FN
        documents = {
            (r["payload"]["fn_number"], r["payload"]["fiscal_document_number"])
            for r in (report, v5_report)
        }
        assert len(documents) == 2
        deadline = time.monotonic() + PATIENCE_SECONDS
        while not _Receiver.received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _Receiver.received, "no callback arrived"
        signature, sent = _Receiver.received[0]
        assert signature.startswith("sha256=") and uuid.encode() in sent
        # the pool's on_latency fed the one Latencies /metrics reads: both documents counted
        # (polled: a worker observes the time just after it stores the result)
        while True:
            metrics = server.client.get("/metrics")
            timed = _fiscalize_counts(metrics.text)
            if sum(timed.values()) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert metrics.status_code == 200 and "kkt_cloud_receipts" in metrics.text
        assert sum(timed.values()) >= 2, metrics.text
        assert set(timed) <= {r["device_code"] for r in (report, v5_report)}
        page = server.client.get("/ui/state", auth=("demo", "demo"))
        assert page.status_code == 200
    finally:
        receiver.shutdown()
        receiver.server_close()
        serving.join()
