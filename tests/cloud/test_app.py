"""The HTTP API over a real server on 127.0.0.1:0: tokens, group isolation, the request checks
(content type, body size, overload) and the duplicate rules, in both API versions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from kkt.cloud import auth
from kkt.cloud.config import CloudConfig, GroupConfig, UserConfig, demo_config
from support.cloud import RESULT, CloudServer, make_order, sell_body, sell_body_for

Start = Callable[..., CloudServer]


def error_code(answer: httpx.Response) -> int:
    return int(answer.json()["error"]["code"])


@pytest.mark.parametrize("api", [4, 5])
def test_get_token_by_post_and_by_get(cloud_server: Start, api: int) -> None:
    server = cloud_server()
    posted = server.client.post(
        f"/possystem/v{api}/getToken", json={"login": "demo", "pass": "demo"}
    )
    assert posted.status_code == 200
    body = posted.json()
    # §2.1's shape, nothing more: {"error": null, "token", "timestamp"}
    assert set(body) == {"error", "token", "timestamp"}
    assert body["error"] is None and len(body["token"]) == 64 and body["timestamp"]
    got = server.client.get(f"/possystem/v{api}/getToken", params={"login": "demo", "pass": "demo"})
    assert got.status_code == 200 and got.json()["token"] != body["token"]
    wrong = server.client.get(f"/possystem/v{api}/getToken", params={"login": "demo", "pass": "x"})
    assert (wrong.status_code, error_code(wrong)) == (401, 12)
    # ATOL's error answer; §2.1 names no "token" field for a refusal, so none is made up
    assert set(wrong.json()) == {"error", "status", "timestamp"}
    unknown = server.client.post(f"/possystem/v{api}/getToken", json={"login": "x", "pass": "demo"})
    assert (unknown.status_code, error_code(unknown)) == (401, 12)
    broken = server.client.post(f"/possystem/v{api}/getToken", content=b"{")
    assert (broken.status_code, error_code(broken)) == (400, 13)


def test_the_token_is_stored_as_a_hash_only(cloud_server: Start) -> None:
    server = cloud_server()
    token = server.token()
    from datetime import UTC, datetime

    storage = server.service.storage
    assert storage.token_login(token, datetime.now(UTC)) is None
    assert storage.token_login(auth.token_hash(token), datetime.now(UTC)) == "demo"


def test_a_request_needs_a_valid_token_in_the_header_or_query(cloud_server: Start) -> None:
    server = cloud_server()
    url = "/possystem/v4/demo/sell"
    headers = {"Content-Type": "application/json"}
    missing = server.client.post(url, content=b"{}", headers=headers)
    assert (missing.status_code, error_code(missing)) == (401, 10)
    bad = server.client.post(url, content=b"{}", headers={**headers, "Token": "0" * 64})
    assert (bad.status_code, error_code(bad)) == (401, 11)
    token = server.token()
    by_query = server.client.post(
        url, params={"token": token}, content=server_body(sell_body("q1")), headers=headers
    )
    assert by_query.status_code == 200, by_query.text
    report = server.client.get(
        f"/possystem/v4/demo/report/{by_query.json()['uuid']}", params={"token": token}
    )
    assert report.status_code == 200 and report.json()["status"] == "wait"


def server_body(body: dict[str, Any]) -> bytes:
    from kkt.cloud import jsontext

    return jsontext.dumps(body).encode()


def two_shops() -> CloudConfig:
    password = auth.hash_password("secret")
    return CloudConfig(
        groups=(GroupConfig("shop1"), GroupConfig("shop2")),
        users=(
            UserConfig("one", password, frozenset({"shop1"})),
            UserConfig("two", password, frozenset({"shop2"})),
        ),
    )


def test_groups_are_isolated(cloud_server: Start) -> None:
    server = cloud_server(config=two_shops())
    one, two = server.token("one", "secret"), server.token("two", "secret")
    mine = server.post("sell", sell_body("e1"), token=one, group="shop1")
    assert mine.status_code == 200, mine.text
    uuid = mine.json()["uuid"]
    theirs = server.post("sell", sell_body("e2"), token=one, group="shop2")
    assert (theirs.status_code, error_code(theirs)) == (401, 20)
    nowhere = server.post("sell", sell_body("e3"), token=one, group="nope")
    assert (nowhere.status_code, error_code(nowhere)) == (401, 20)
    # shop2's user cannot read shop1's report, neither through its own group nor shop1's
    peek = server.client.get(f"/possystem/v4/shop2/report/{uuid}", headers={"Token": two})
    assert (peek.status_code, error_code(peek)) == (400, 30)
    peek = server.client.get(f"/possystem/v4/shop1/report/{uuid}", headers={"Token": two})
    assert (peek.status_code, error_code(peek)) == (401, 20)
    own = server.client.get(f"/possystem/v4/shop1/report/{uuid}", headers={"Token": one})
    assert own.status_code == 200 and own.json()["uuid"] == uuid


def test_operation_content_type_and_size_are_checked(cloud_server: Start) -> None:
    server = cloud_server(max_body=2048)
    token = server.token()
    v5_only = server.post("sell_refund_correction", sell_body("e1"), token=token, api=4)
    assert (v5_only.status_code, error_code(v5_only)) == (400, 31)
    made_up = server.post("steal", sell_body("e1"), token=token, api=5)
    assert (made_up.status_code, error_code(made_up)) == (400, 31)
    form = server.client.post(
        "/possystem/v4/demo/sell",
        content=server_body(sell_body("e1")),
        headers={"Token": token, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (form.status_code, error_code(form)) == (415, 41)
    big = sell_body("e1", padding="x" * 4096)
    too_big = server.post("sell", big, token=token)
    assert (too_big.status_code, error_code(too_big)) == (413, 32)

    def chunks() -> Any:  # no Content-Length: the limit holds while reading
        for _ in range(10):
            yield b" " * 1024

    streamed = server.client.post(
        "/possystem/v4/demo/sell",
        content=chunks(),
        headers={"Token": token, "Content-Type": "application/json"},
    )
    assert (streamed.status_code, error_code(streamed)) == (413, 32)
    assert server.service.storage.counts() == {"wait": 0, "done": 0, "fail": 0}


def test_overload_answers_429_with_retry_after(cloud_server: Start) -> None:
    server = cloud_server(max_queue=2)
    token = server.token()
    for n in range(2):
        server.service.storage.accept(make_order(f"queued{n}"), idempotency_key=None)
    answer = server.post("sell", sell_body("e1"), token=token)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "1"
    assert answer.json()["status"] == "fail"
    assert server.service.storage.find("demo", "e1") is None  # nothing stored


def test_overload_never_refuses_a_retry_of_an_accepted_request(cloud_server: Start) -> None:
    server = cloud_server(max_queue=1)
    token = server.token()
    first = server.post("sell", sell_body("e1"), token=token)
    assert first.status_code == 200, first.text
    uuid = first.json()["uuid"]
    # the queue is full now: a retry still gets its uuid, a changed body its conflict
    again = server.post("sell", sell_body("e1", timestamp="02.02.2019 10:00:00"), token=token)
    assert again.status_code == 200 and again.json()["uuid"] == uuid
    keyed = server.post("sell", sell_body("e1"), token=token, headers={"Idempotency-Key": "k1"})
    assert keyed.status_code == 200 and keyed.json()["uuid"] == uuid
    body = sell_body("e1")
    body["receipt"]["client"] = {"email": "other@kkt.ru"}
    changed = server.post("sell", body, token=token)
    assert (changed.status_code, error_code(changed)) == (409, 33)
    new = server.post("sell", sell_body("e2"), token=token)
    assert new.status_code == 429


def test_overload_is_counted_per_group(cloud_server: Start) -> None:
    server = cloud_server(config=two_shops(), max_queue=1)
    one, two = server.token("one", "secret"), server.token("two", "secret")
    assert server.post("sell", sell_body("e1"), token=one, group="shop1").status_code == 200
    assert server.post("sell", sell_body("e2"), token=one, group="shop1").status_code == 429
    # shop1's backlog does not refuse shop2
    other = server.post("sell", sell_body("e1"), token=two, group="shop2")
    assert other.status_code == 200, other.text


@pytest.mark.parametrize("api", [4, 5])
def test_strict_duplicates(cloud_server: Start, api: int) -> None:
    server = cloud_server()
    token = server.token()
    first = server.post("sell", sell_body_for(api, "e1"), token=token, api=api)
    assert first.status_code == 200, first.text
    uuid = first.json()["uuid"]
    assert first.json()["status"] == "wait" and first.json()["error"] is None
    # a retry regenerates the timestamp: still the same request
    again = server.post(
        "sell", sell_body_for(api, "e1", timestamp="02.02.2019 10:00:00"), token=token, api=api
    )
    assert again.status_code == 200 and again.json()["uuid"] == uuid
    changed = sell_body_for(api, "e1")
    changed["receipt"]["client"] = {"email": "other@kkt.ru"}
    conflict = server.post("sell", changed, token=token, api=api)
    assert conflict.status_code == 409
    assert error_code(conflict) == 33 and conflict.json()["uuid"] == uuid
    assert server.service.storage.counts()["wait"] == 1


def test_atol_duplicates_always_answer_33(cloud_server: Start) -> None:
    server = cloud_server(duplicates="atol")
    token = server.token()
    uuid = server.post("sell", sell_body("e1"), token=token).json()["uuid"]
    for body in (sell_body("e1"), sell_body("e1", service={"callback_url": "http://x.ru/"})):
        answer = server.post("sell", body, token=token)
        assert (answer.status_code, error_code(answer)) == (400, 33)
        assert answer.json()["uuid"] == uuid


def test_atol_duplicates_answer_a_retry_with_the_same_idempotency_key(
    cloud_server: Start,
) -> None:
    server = cloud_server(duplicates="atol")
    token = server.token()
    key = {"Idempotency-Key": "order-17"}
    first = server.post("sell", sell_body("e1"), token=token, headers=key)
    assert first.status_code == 200, first.text
    uuid = first.json()["uuid"]
    # our header, our rules: the same key and body is a retry
    same = server.post("sell", sell_body("e1"), token=token, headers=key)
    assert same.status_code == 200 and same.json()["uuid"] == uuid
    assert same.json()["error"] is None
    # the rest as ATOL: code 33, HTTP 400, the first uuid
    for body, headers in (
        (sell_body("e1"), {}),  # no key: ATOL's external_id rule
        (sell_body("e1"), {"Idempotency-Key": "order-18"}),  # another key, same external_id
        (sell_body("e2"), key),  # the same key, another request
    ):
        answer = server.post("sell", body, token=token, headers=headers)
        assert (answer.status_code, error_code(answer)) == (400, 33), (headers, answer.text)
        assert answer.json()["uuid"] == uuid


def test_a_refund_reusing_the_sales_external_id_and_body_is_a_conflict(
    cloud_server: Start,
) -> None:
    server = cloud_server()
    token = server.token()
    sale = server.post("sell", sell_body("order-5"), token=token)
    assert sale.status_code == 200, sale.text
    refund = server.post("sell_refund", sell_body("order-5"), token=token)
    assert (refund.status_code, error_code(refund)) == (409, 33)
    assert refund.json()["uuid"] == sale.json()["uuid"]
    assert server.service.storage.counts()["wait"] == 1


def test_idempotency_key(cloud_server: Start) -> None:
    server = cloud_server()
    token = server.token()
    key = {"Idempotency-Key": "order-17"}
    first = server.post("sell", sell_body("e1"), token=token, headers=key)
    uuid = first.json()["uuid"]
    same = server.post("sell", sell_body("e1"), token=token, headers=key)
    assert same.status_code == 200 and same.json()["uuid"] == uuid
    other = server.post("sell", sell_body("e2"), token=token, headers=key)
    assert other.status_code == 409 and other.json()["uuid"] == uuid
    long = server.post("sell", sell_body("e3"), token=token, headers={"Idempotency-Key": "k" * 129})
    assert (long.status_code, error_code(long)) == (400, 32)


def test_report_and_receipt_of_a_done_request(cloud_server: Start) -> None:
    server = cloud_server()
    token = server.token()
    uuid = server.post("sell", sell_body("e1"), token=token).json()["uuid"]
    base = f"/possystem/v4/demo/report/{uuid}"
    waiting = server.client.get(f"{base}/receipt.txt", headers={"Token": token})
    assert (waiting.status_code, error_code(waiting)) == (404, 34)
    storage = server.service.storage
    assert storage.claim("demo-1", "demo") is not None
    storage.complete(uuid, "demo-1", RESULT)
    report = server.client.get(base, headers={"Token": token})
    assert report.status_code == 200 and report.json()["status"] == "done"
    text = server.client.get(f"{base}/receipt.txt", headers={"Token": token})
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert "9999078900001234" in text.text
    # the print form names the register's owner: the user's INN and the register's RNM
    assert "1234567891" in text.text and RESULT["rnm"] in text.text
    svg = server.client.get(f"{base}/receipt.svg", headers={"Token": token})
    assert svg.status_code == 200 and svg.text.lstrip().startswith("<")
    html = server.client.get(f"{base}/receipt.html", params={"token": token})
    assert html.status_code == 200 and "<html" in html.text.lower()
    png = server.client.get(f"{base}/receipt.png", headers={"Token": token})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    odd = server.client.get(f"{base}/receipt.pdf", headers={"Token": token})
    assert odd.status_code == 404


def test_openapi_lists_both_versions(cloud_server: Start) -> None:
    server = cloud_server()
    schema = server.client.get("/openapi.json").json()
    paths = set(schema["paths"])
    for api in (4, 5):
        assert f"/possystem/v{api}/getToken" in paths
        assert f"/possystem/v{api}/{{group}}/{{operation}}" in paths
        assert f"/possystem/v{api}/{{group}}/report/{{uuid}}" in paths


def test_demo_config_has_its_login(tmp_path: Path) -> None:
    config = demo_config(0)
    assert config.user_table().verify("demo", "demo")
    assert config.user_table().groups("demo") == frozenset({"demo"})


def test_reports_take_the_operator_pages_basic_login_too(cloud_server: Start) -> None:
    server = cloud_server(config=two_shops())
    uuid = server.post("sell", sell_body("e1"), token=server.token("one", "secret"), group="shop1")
    url = f"/possystem/v5/shop1/report/{uuid.json()['uuid']}"
    assert server.client.get(url, auth=("one", "secret")).status_code == 200
    wrong = server.client.get(url, auth=("one", "nope"))
    assert (wrong.status_code, error_code(wrong)) == (401, 10)
    other = server.client.get(url, auth=("two", "secret"))
    assert (other.status_code, error_code(other)) == (401, 20)
    # registering still needs a token
    posted = server.client.post(
        "/possystem/v4/shop1/sell",
        content=server_body(sell_body("e2")),
        headers={"Content-Type": "application/json"},
        auth=("one", "secret"),
    )
    assert (posted.status_code, error_code(posted)) == (401, 10)
