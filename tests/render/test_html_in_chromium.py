"""The HTML e-receipt opened in headless Chromium (Debian's ``chromium``, which `.ci/run`
installs): it renders with no network -- every request Chromium makes goes to a recording proxy
on 127.0.0.1 that answers nothing, and none of them is the page's -- and the screenshot is kept
as a test artifact in ``tmp/artifacts/`` (or ``$KKT_ARTIFACTS``).  The QR code read off the
screenshot by zxing-cpp is the receipt's QR string: what a buyer's phone reads off the screen."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zxingcpp
from kkt.protocols.ffd import qr_of_document
from kkt.render import render
from kkt.render.printform import unwrap
from PIL import Image
from support.documents import every_document

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("KKT_ARTIFACTS", ROOT / "tmp" / "artifacts"))


# Chromium's own calls home that its flags do not silence (the updater, Google sign-in, its
# network clock).  They come from the browser, not from the page: the page names no host at all
# (asserted on its text below), so a request to any other host fails the test.
BROWSER_HOSTS = frozenset(
    {
        "update.googleapis.com",
        "accounts.google.com",
        "clients2.google.com",
        "clients1.google.com",
        # Chromium 150 probes www.google.com itself (whatever the flags below say); the page is
        # a file of ours that names no host at all, so a request of its own would be elsewhere.
        "www.google.com",
    }
)


def _host(request_line: str) -> str:
    """The host a proxy request line names: ``CONNECT h:443 ...`` or ``GET http://h/... ...``."""
    target = request_line.split(" ")[1] if " " in request_line else request_line
    target = target.split("://", 1)[-1]
    return target.split("/", 1)[0].rsplit(":", 1)[0]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium: .ci/run installs it")
        pytest.skip("no chromium here: apt-get install -y chromium")
    return found


class RecordingProxy:
    """A proxy that records the first line of every request made to it and answers nothing."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="recording-proxy")

    @property
    def address(self) -> str:
        host, port = self._server.getsockname()[:2]
        return f"{host}:{port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(2)
                try:
                    first = connection.recv(4096).split(b"\r\n", 1)[0]
                except OSError:
                    first = b"(no request line)"
                self.requests.append(first.decode("latin-1"))

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._server.close()


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    with RecordingProxy() as recording:
        yield recording


@pytest.mark.timeout(180)
def test_the_e_receipt_renders_offline_in_chromium(tmp_path: Path, proxy: RecordingProxy) -> None:
    browser = chromium()
    tlv, change = every_document()["receipt_sale"]
    page = render(tlv, "html", width=42, change=change)
    assert not re.search(r"https?:", page, re.I), "the page names a URL"
    assert not re.search(r"\b(src|href)\s*=|@import|url\(", page, re.I), "an external resource"
    source = tmp_path / "receipt.html"
    source.write_text(page, encoding="utf-8")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "e-receipt-chromium.png"
    shot.unlink(missing_ok=True)
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",  # a container's small /dev/shm
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            # the browser's own calls home (clock, updates, sign-in, field trials): off, so
            # that any request the proxy sees would be the page's
            "--no-default-browser-check",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--disable-field-trial-config",
            "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,"
            "MediaRouter,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
            "--metrics-recording-only",
            "--allow-pre-commit-input",
            "--force-device-scale-factor=1",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--proxy-server=http://{proxy.address}",
            "--proxy-bypass-list=<-loopback>",  # even 127.0.0.1 would go through the proxy
            "--window-size=700,2000",
            f"--screenshot={shot}",
            source.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=150,
    )
    assert shot.exists(), "chromium wrote no screenshot"
    page_requests = [line for line in proxy.requests if _host(line) not in BROWSER_HOSTS]
    assert page_requests == [], f"the page made requests: {page_requests}"
    image = Image.open(shot).convert("L")
    assert image.getextrema() == (0, 255), "the screenshot is blank"
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert [code.text for code in found] == [qr_of_document(unwrap(tlv)[1])]
