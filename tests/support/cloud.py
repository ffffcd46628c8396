"""The cloud service running for a test: `running(state, ...)` starts a `CloudService` with its
HTTP on 127.0.0.1:0 (uvicorn in a thread) and stops both after; `CloudServer` is its handle
(base URL, the service, a logged-in httpx client).  The request bodies here are valid ATOL
requests: the tests run them through the real ATOL layer (`kkt.cloud.atol`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from kkt.cloud import jsontext
from kkt.cloud.atol import fingerprint as atol_fingerprint
from kkt.cloud.config import CloudConfig, demo_config
from kkt.cloud.model import Order
from kkt.cloud.service import CloudService, HttpThread, Pool

from support import atol_examples

DEMO_GROUP = "demo"
# a done request's result as a register worker stores it (FiscalResult.to_json() + extras)
RESULT = {
    "document_number": 7,
    "fiscal_sign": 3449555941,
    "fn_number": "9999078900001234",
    "shift_number": 1,
    "receipt_number": 3,
    "when": "2026-12-02T15:00:00",
    "total": 40000,
    "operation": 1,
    "qr": "t=20261202T1500&s=400.00&fn=9999078900001234&i=7&fp=3449555941&n=1",
    "rnm": "0000000001012345",
    "fns_site": "www.nalog.gov.ru",
    "ofd_inn": "7704358518",
    "device_code": "demo-1",
}


PATIENCE_SECONDS = 60.0  # how long to wait for a request to settle before calling it a failure


@dataclass
class CloudServer:
    url: str
    service: CloudService
    client: httpx.Client

    def token(self, login: str = "demo", password: str = "demo", api: int = 4) -> str:
        answer = self.client.post(
            f"/possystem/v{api}/getToken", json={"login": login, "pass": password}
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])

    def post(
        self,
        operation: str,
        body: dict[str, Any] | bytes,
        *,
        token: str,
        group: str = DEMO_GROUP,
        api: int = 4,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        content = body if isinstance(body, bytes) else jsontext.dumps(body).encode()
        return self.client.post(
            f"/possystem/v{api}/{group}/{operation}",
            content=content,
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Token": token,
                **(headers or {}),
            },
        )

    def report(
        self, uuid: str, *, token: str, group: str = DEMO_GROUP, api: int = 4
    ) -> dict[str, Any]:
        answer = self.client.get(
            f"/possystem/v{api}/{group}/report/{uuid}", headers={"Token": token}
        )
        assert answer.status_code == 200, answer.text
        report: dict[str, Any] = answer.json()
        return report

    def settled(
        self, uuid: str, *, token: str, group: str = DEMO_GROUP, api: int = 4
    ) -> dict[str, Any]:
        """The request's report once it is no longer ``wait`` (done or fail), polled; still
        ``wait`` after `PATIENCE_SECONDS` is a failure (not of speed: nothing moved)."""
        deadline = time.monotonic() + PATIENCE_SECONDS
        while True:
            report = self.report(uuid, token=token, group=group, api=api)
            if report["status"] != "wait":
                return report
            assert time.monotonic() < deadline, f"still waiting: {report}"
            time.sleep(0.1)


@contextlib.contextmanager
def running(
    state: Path,
    *,
    emulated: int = 0,
    config: CloudConfig | None = None,
    pool: Pool | None = None,
    **server: Any,
) -> Iterator[CloudServer]:
    """``server``: overrides of the config's [server] (duplicates, max_queue, max_body)."""
    config = (config or demo_config(emulated)).with_overrides(**server)
    service = CloudService(config, state, pool=pool)
    try:
        service.start()
        http = HttpThread(service.app())
        try:
            url = http.start()
            with httpx.Client(base_url=url, timeout=30) as client:
                yield CloudServer(url, service, client)
        finally:
            http.stop()
    finally:
        service.stop()


def sell_body(external_id: str = "17052917561851307", **changes: Any) -> dict[str, Any]:
    """ATOL's v4 example request (ofd-cloud-marking.md §2.8) without its callback_url (a
    service would call it), with ``external_id`` and ``changes`` at the top."""
    body = atol_examples.body(atol_examples.V4_SELL)
    del body["service"]
    body["external_id"] = external_id
    body.update(changes)
    return body


def sell_body_for(
    api: int, external_id: str = "17052917561851307", **changes: Any
) -> dict[str, Any]:
    """`sell_body` in the form of API version ``api``: v5 items name their unit by code
    (``measure``, tag 2108) and their subject by number (``payment_object`` 1: commodity)."""
    body = sell_body(external_id, **changes)
    if api == 5:
        for item in body["receipt"]["items"]:
            del item["measurement_unit"]
            item.update(measure=0, payment_object=1)
    return body


def make_order(
    external_id: str = "e1",
    *,
    group: str = DEMO_GROUP,
    fingerprint: str | None = None,
    callback_url: str | None = None,
    body: dict[str, Any] | None = None,
) -> Order:
    """An `Order` as the ATOL layer would give it, for storage tests."""
    body = body if body is not None else sell_body(external_id)
    return Order(
        api=4,
        group=group,
        operation="sell",
        external_id=external_id,
        body=body,
        fingerprint=fingerprint or atol_fingerprint(body, 4, "sell"),
        callback_url=callback_url,
        inn="1234567891",
    )
