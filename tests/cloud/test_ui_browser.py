"""The operator page in a real browser: Debian's headless Chromium driven by Playwright (its own
browsers are never downloaded).  The page loads, logs in with Basic auth, shows the registers,
and a request that arrives afterwards appears on it by itself (the page polls ``/ui/state``).
Every request the page makes goes to the service itself: it works with no internet.  The
screenshot is kept as a test artifact in ``tmp/artifacts/cloud-ui.png`` (or ``$KKT_ARTIFACTS``).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from support.cloud_fakes_web import (
    T0,
    FakePool,
    FakeService,
    FakeStorage,
    FakeUsers,
    register_view,
    report_view,
    serve,
)
from fastapi import FastAPI
from kkt.cloud.ui import ui_router

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("KKT_ARTIFACTS", ROOT / "tmp" / "artifacts"))
CHROMIUM = Path("/usr/bin/chromium")


def chromium() -> str:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium: .ci/run installs it")
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install -y chromium")
    return str(CHROMIUM)


def fake_service() -> FakeService:
    storage = FakeStorage()
    storage.queued = {"demo": 1}
    storage.add_report(report_view("0a0a0a0a-1111-4111-8111-000000000001", status="wait"))
    storage.add_report(
        report_view(
            "0a0a0a0a-1111-4111-8111-000000000002",
            status="fail",
            accepted_at=T0 - timedelta(minutes=1),
        )
    )
    pool = FakePool(
        [
            register_view("KKT-1", in_flight=1, done=41, ofd_unsent=2, ofd_first_unsent=40),
            register_view("KKT-2", state="failing", detail="paper out", paper=False, done=7),
        ]
    )
    users = FakeUsers({"demo": "demo"}, {"demo": ["demo"]})
    return FakeService(storage, pool, users)


@pytest.mark.timeout(120)
def test_a_new_receipt_appears_on_the_open_page() -> None:
    executable = chromium()
    from playwright.sync_api import expect, sync_playwright

    fake = fake_service()
    app = FastAPI()
    app.include_router(ui_router(fake))
    shot = ARTIFACTS / "cloud-ui.png"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    requested: list[str] = []

    with serve(app) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            context = browser.new_context(
                http_credentials={"username": "demo", "password": "demo"},
                viewport={"width": 1280, "height": 720},
                locale="ru-RU",
                timezone_id="Europe/Moscow",
            )
            page = context.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.goto(url + "/")

            expect(page.locator("#link")).to_have_class(re.compile(r"\blive\b"))
            expect(page.locator('#registers tr[data-register="KKT-2"]')).to_contain_text(
                "paper out"
            )
            expect(page.locator("#registers-up")).to_have_text("1 / 2")
            expect(page.locator("#queue-total")).to_have_text("1")

            # a request is fiscalized while the page is open
            # (integrator: post it through the API instead of into the fake storage)
            uuid = "0a0a0a0a-1111-4111-8111-000000000003"
            fake.storage.add_report(
                report_view(uuid, status="done", accepted_at=T0 + timedelta(minutes=1))
            )
            row = page.locator(f'#receipts tr[data-uuid="{uuid}"]')
            expect(row).to_contain_text("пробит", timeout=2000)
            expect(row).to_contain_text("119,98 ₽")
            expect(row.get_by_role("link")).to_have_attribute(
                "href", f"/possystem/v5/demo/report/{uuid}/receipt.html"
            )
            page.screenshot(path=str(shot), full_page=True)
            context.close()
        finally:
            browser.close()

    assert shot.stat().st_size > 0
    elsewhere = [seen for seen in requested if not seen.startswith(url + "/")]
    assert elsewhere == [], f"the page asked for something elsewhere: {elsewhere}"
    assert url + "/ui/state" in requested
