"""The operator page's routes over HTTP: Basic auth, group isolation, the state JSON's shape,
the static files and the page's offline-ness (it names no other host)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime

import httpx
import pytest
from fastapi import FastAPI
from kkt.cloud.service import HttpThread
from kkt.cloud.ui import receipt_link, ui_router, ui_state
from support.cloud_fakes_web import (
    FakePool,
    FakeService,
    FakeStorage,
    FakeUsers,
    register_view,
    report_view,
)


def service() -> FakeService:
    storage = FakeStorage()
    storage.queued = {"demo": 2, "other": 7}
    storage.add_report(report_view("11111111-aaaa", group="demo"))
    storage.add_report(report_view("22222222-bbbb", group="other"))
    pool = FakePool(
        [
            register_view("KKT-1", group="demo", fn_expires=date(2026, 3, 20)),
            register_view("KKT-9", group="other"),
        ]
    )
    users = FakeUsers(
        {"demo": "demo", "boss": "s3cret"}, {"demo": ["demo"], "boss": ["demo", "other"]}
    )
    return FakeService(storage, pool, users)


@pytest.fixture
def running() -> Iterator[tuple[httpx.Client, FakeService]]:
    fake = service()
    app = FastAPI()
    app.include_router(ui_router(fake))
    with HttpThread(app) as url, httpx.Client(base_url=url) as client:
        yield client, fake


@pytest.mark.parametrize("path", ["/", "/ui/state", "/ui/static/app.js"])
def test_every_route_asks_for_a_login(running: tuple[httpx.Client, FakeService], path: str) -> None:
    client, _ = running
    answer = client.get(path)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith('Basic realm="kkt cloud"')
    assert client.get(path, auth=("demo", "wrong")).status_code == 401
    assert client.get(path, auth=("nobody", "demo")).status_code == 401
    assert client.get(path, auth=("demo", "demo")).status_code == 200


def test_a_user_sees_only_their_groups(running: tuple[httpx.Client, FakeService]) -> None:
    client, _ = running
    state = client.get("/ui/state", auth=("demo", "demo")).json()
    assert state["groups"] == ["demo"]
    assert state["queue"] == {"total": 2, "groups": {"demo": 2}}
    assert [r["name"] for r in state["registers"]] == ["KKT-1"]
    assert [r["uuid"] for r in state["receipts"]] == ["11111111-aaaa"]
    boss = client.get("/ui/state", auth=("boss", "s3cret")).json()
    assert boss["queue"]["total"] == 9
    assert {r["name"] for r in boss["registers"]} == {"KKT-1", "KKT-9"}


def test_static_files_are_a_fixed_list(running: tuple[httpx.Client, FakeService]) -> None:
    client, _ = running
    css = client.get("/ui/static/style.css", auth=("demo", "demo"))
    assert css.headers["content-type"].startswith("text/css")
    for name in ("index.html", "..%2Fui.py", "__init__.py", "nothing.js"):
        assert client.get(f"/ui/static/{name}", auth=("demo", "demo")).status_code == 404


def test_the_page_loads_nothing_from_elsewhere(running: tuple[httpx.Client, FakeService]) -> None:
    client, _ = running
    for path in ("/", "/ui/static/app.js", "/ui/static/style.css"):
        answer = client.get(path, auth=("demo", "demo"))
        assert not re.search(r"https?://|//[a-z]", answer.text, re.I), path
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"]


def test_state_of_a_register_and_a_receipt() -> None:
    fake = service()
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    state = ui_state(fake.storage, fake.pool.views(), "demo", ["demo"], now)
    [register] = state["registers"]
    assert register["fn_expires"] == "2026-03-20" and register["fn_days_left"] == 18
    assert register["state"] == "ok" and register["paper"] is True
    [receipt] = state["receipts"]
    assert receipt["status"] == "done" and receipt["total"] == 11998
    assert receipt["link"] == "/possystem/v5/demo/report/11111111-aaaa/receipt.html"
    assert receipt["ofd"] == "waiting" and receipt["document_number"] == 17


def test_a_waiting_or_failed_request_has_no_receipt_link() -> None:
    assert ui_state(FakeStorage(), [], "x", [], datetime.now(UTC))["receipts"] == []
    storage = FakeStorage()
    storage.add_report(report_view("w", status="wait"))
    storage.add_report(report_view("f", status="fail"))
    receipts = ui_state(storage, [], "demo", ["demo"], datetime.now(UTC))["receipts"]
    assert {r["uuid"]: r["link"] for r in receipts} == {"w": None, "f": None}
    assert {r["uuid"]: r["error"] for r in receipts} == {"w": None, "f": "paper out"}


def test_the_link_quotes_its_parts() -> None:
    view = report_view("a/b", group="g h")
    assert receipt_link(view) == "/possystem/v5/g%20h/report/a%2Fb/receipt.html"
