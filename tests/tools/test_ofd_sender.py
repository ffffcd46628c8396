"""A networked register sends by itself (issue 16, point 4 and its acceptance): ``kkt emulator
serve --ofd`` against ``kkt ofd serve``, both as processes of their own, both vendors, over TCP on
127.0.0.1 with free ports; the driver sells.

The invariant is read from both stores once the processes are down (`soak.ofd.delivery_problems`):
every FD the FN formed is held by the OFD exactly once, the FN has its receipt, nothing waits.
Waiting for the queue to drain polls with a deadline: a bound on correctness, not on speed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kkt.protocols.ffd import FnWarning
from kkt.tools.bench.served import EmulatorServer
from kkt.tools.bench.soak import ofd as soak
from kkt.tools.bench.soak.common import receipt_for

import kkt

pytestmark = pytest.mark.timeout(240)

RECEIPTS = 200
OUTAGE_RECEIPTS = 50
DRAIN_SECONDS = 60.0
DAY = 86_400


@pytest.fixture
def ofd(tmp_path: Path) -> Iterator[soak.OfdServer]:
    server = soak.OfdServer(tmp_path / "ofd", tmp_path / "ofd.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def served(tmp_path: Path, protocol: str, ofd: soak.OfdServer) -> EmulatorServer:
    emulator = EmulatorServer(
        tmp_path / "register",
        tmp_path / "emulator.log",
        protocol=protocol,
        options=("--ofd", ofd.address, "--ofd-retry", "0.2", "--ofd-timeout", "2"),
    )
    emulator.start()
    return emulator


def ctl(state: Path, *words: str) -> dict[str, object]:
    return soak.emulator_ctl(state, *words)


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
def test_every_document_reaches_the_ofd_once(
    tmp_path: Path, ofd: soak.OfdServer, protocol: str
) -> None:
    emulator = served(tmp_path, protocol, ofd)
    try:
        with soak.connect(emulator.url, protocol) as register:
            register.open_shift()
            for index in range(RECEIPTS):
                register.sell(receipt_for(100 + index))
            register.close_shift()
            formed = register.fn_info().last_document
        assert soak.wait_drained(emulator.state, time.monotonic() + DRAIN_SECONDS) == 0
        emulator.stop()
        held = ofd.docs()
    finally:
        emulator.kill()
    last, problems = soak.delivery_problems(emulator.state, protocol, held)
    assert problems == []
    assert last == formed >= RECEIPTS + 2
    assert len(held) == last


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
def test_an_outage_blocks_sales_after_30_days_and_the_ofd_back_lifts_it(
    tmp_path: Path, ofd: soak.OfdServer, protocol: str
) -> None:
    ofd.ctl("down")
    emulator = served(tmp_path, protocol, ofd)
    state = emulator.state
    try:
        with soak.connect(emulator.url, protocol) as register:
            register.open_shift()
            for index in range(OUTAGE_RECEIPTS):
                register.sell(receipt_for(100 + index))
            register.close_shift()
            waiting = register.fn_info().unsent
            assert waiting == register.fn_info().last_document  # nothing got through
            assert FnWarning.OFD_TIMEOUT not in register.fn_info().warnings

            ctl(state, "clock", "advance", str(29 * DAY))
            assert FnWarning.OFD_TIMEOUT in register.fn_info().warnings  # 1053: over 2 days
            register.open_shift()  # a shift after 29 days still opens, with its warnings
            register.sell(receipt_for(99))
            register.close_shift()

            ctl(state, "clock", "advance", str(2 * DAY))  # the oldest has waited 31 days
            with pytest.raises(kkt.OfdBlocked, match="OFD") as blocked:
                register.open_shift()
            assert "ofd" in str(blocked.value).lower()
            assert register.fn_info().unsent == waiting + 3  # the refusal formed nothing

            ofd.ctl("up")  # the register's next try (every 0.2 s) drains the queue
            assert soak.wait_drained(state, time.monotonic() + DRAIN_SECONDS) == 0
            register.open_shift()
            register.sell(receipt_for(98))
            register.close_shift()
        assert soak.wait_drained(state, time.monotonic() + DRAIN_SECONDS) == 0
        emulator.stop()
        held = ofd.docs()
    finally:
        emulator.kill()
    last, problems = soak.delivery_problems(state, protocol, held)
    assert problems == []
    assert len(held) == last == waiting + 3 + 3


def test_ctl_ofd_send_sends_the_queue_now(tmp_path: Path, ofd: soak.OfdServer) -> None:
    ofd.ctl("down")
    emulator = EmulatorServer(
        tmp_path / "register",
        tmp_path / "emulator.log",
        options=("--ofd", ofd.address, "--ofd-retry", "3600"),  # no retry within the test
    )
    emulator.start()
    try:
        with soak.connect(emulator.url, "shtrih") as register:
            register.open_shift()
            register.sell(receipt_for(100))
            first = register.fn_info().unsent
        refused = soak.kkt_json(
            "emulator", "ctl", "--state", str(emulator.state), "--json", "ofd", "send", check=False
        )
        assert refused["ok"] is False and "wait" in str(refused["error"])
        ofd.ctl("up")
        sent = soak.kkt_json("emulator", "ctl", "--state", str(emulator.state), "ofd", "send")
        assert sent == {"sent": first, "first": 1, "last": first, "unsent": 0}
        assert ctl(emulator.state, "ofd", "send")["sent"] == 0  # nothing left
    finally:
        emulator.kill()
