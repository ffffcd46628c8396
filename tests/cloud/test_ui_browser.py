"""The operator page in a real browser: Debian's headless Chromium driven by Playwright (its own
browsers are never downloaded), against a real ``kkt cloud`` service with an emulated register.
The page loads, logs in with Basic auth, shows the register, and a receipt posted afterwards
through the ATOL API (getToken + POST sell) appears on it by itself within 2 s (the page polls
``/ui/state`` every second), then shows it fiscalized with its sum and a link that opens the
drawn receipt.  Every request the page makes goes to the service itself: it works with no
internet.  The screenshot is kept as a test artifact in ``tmp/artifacts/cloud-ui.png`` (or
``$KKT_ARTIFACTS``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from kkt.emulator.state import TEST_INN
from support.cloud import CloudServer, sell_body

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("KKT_ARTIFACTS", ROOT / "tmp" / "artifacts"))
CHROMIUM = Path("/usr/bin/chromium")
SHOWN_WITHIN_MS = 2000  # the page polls every second: a new state is on it by the next poll


def chromium() -> str:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium: .ci/run installs it")
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install -y chromium")
    return str(CHROMIUM)


@pytest.mark.timeout(180)
def test_a_receipt_posted_through_the_api_appears_on_the_open_page(
    cloud_server: Callable[..., CloudServer],
) -> None:
    executable = chromium()
    from playwright.sync_api import expect, sync_playwright

    server = cloud_server(emulated=1)
    [register] = server.service.pool.views()
    url = server.url
    shot = ARTIFACTS / "cloud-ui.png"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    requested: list[str] = []

    with sync_playwright() as playwright:
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
            expect(page.locator(f'#registers tr[data-register="{register.name}"]')).to_be_visible()
            expect(page.locator("#registers-up")).to_have_text("1 / 1")

            # a client registers a sell while the page is open
            token = server.token()
            body = sell_body("ui-1")
            body["receipt"]["company"]["inn"] = TEST_INN  # the emulated register's INN
            posted = server.post("sell", body, token=token)
            assert posted.status_code == 200, posted.text
            uuid = posted.json()["uuid"]
            row = page.locator(f'#receipts tr[data-uuid="{uuid}"]')
            expect(row).to_be_visible(timeout=SHOWN_WITHIN_MS)

            report = server.settled(uuid, token=token)
            assert report["status"] == "done", report
            expect(row).to_contain_text("пробит", timeout=SHOWN_WITHIN_MS)
            expect(row).to_contain_text("400,00 ₽")
            link = row.get_by_role("link")
            expect(link).to_have_attribute("href", f"/possystem/v5/demo/report/{uuid}/receipt.html")
            page.screenshot(path=str(shot), full_page=True)

            # the link opens the drawn receipt (a new tab) with the page's own login
            with context.expect_page() as opened:
                link.click()
            expect(opened.value.locator("body")).to_contain_text(report["payload"]["fn_number"])
            context.close()
        finally:
            browser.close()

    assert shot.stat().st_size > 0
    elsewhere = [seen for seen in requested if not seen.startswith(url + "/")]
    assert elsewhere == [], f"the page asked for something elsewhere: {elsewhere}"
    assert url + "/ui/state" in requested
