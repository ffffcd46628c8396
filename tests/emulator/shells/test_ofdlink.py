"""The networked register's OFD client (`kkt.emulator.shells.ofdlink`) in one process: a served
register (`ServiceThread` with ``ofd=``) sends to the emulated OFD (`OfdThread`), the driver sells
over TCP.  Waits poll the FN with a deadline (a bound on correctness, not on speed)."""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kkt.emulator.control import ControlError, Controls
from kkt.emulator.faults import Faults
from kkt.emulator.fn.exchange import ExchangeStatus
from kkt.emulator.ofd import OfdStore, OfdThread
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shells.ofdlink import OfdAddress
from kkt.emulator.shtrih import ShtrihRegister
from kkt.tools import emulator_cli
from kkt.tools.bench.soak.common import SOAK_HOST, receipt_for
from kkt.tools.cli import main

import kkt

pytestmark = pytest.mark.timeout(60)

NEVER = 3600.0  # a retry interval no test waits for: what is sent was sent on a wake-up


@pytest.fixture
def register(tmp_path: Path) -> Iterator[ShtrihRegister]:
    device = ShtrihRegister.open(tmp_path / "register")
    try:
        yield device
    finally:
        device.close()


@pytest.fixture
def ofd(tmp_path: Path) -> Iterator[OfdThread]:
    with OfdThread(tmp_path / "ofd") as thread:
        yield thread


def eventually(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.02)


def held(ofd: OfdThread) -> list[int]:
    """The FD numbers the OFD's store holds (read beside the serving thread, as `kkt ofd docs`)."""
    store = OfdStore(ofd.service.state, read_only=True)
    try:
        return sorted(document.fd_number for document in store.documents())
    finally:
        store.close()


def test_each_document_goes_as_the_fn_forms_it(register: ShtrihRegister, ofd: OfdThread) -> None:
    address = OfdAddress("127.0.0.1", ofd.port, retry=NEVER)
    with ServiceThread(register, Faults(), ofd=address) as served:
        link = served.ofd
        assert link is not None
        eventually(lambda: register.fn.exchange_status().queued == 0)  # the registration report
        with kkt.connect(f"socket://127.0.0.1:{served.port}", settings=SOAK_HOST) as driver:
            driver.open_shift()
            for total in (100, 200, 300):
                driver.sell(receipt_for(total))
                last = register.fn.status().last_number
                eventually(lambda last=last: register.fn.exchange_status().first_unsent == 0)
                assert held(ofd) == list(range(1, last + 1))
        assert link.sessions == last  # one session per document, none repeated
        status = register.fn.exchange_status()
        assert not status.transport_up and not status.reading  # 21h(0) after the queue
        looks: list[object] = []
        real = register.fn.exchange_status

        def counted() -> ExchangeStatus:
            looks.append(real())
            return looks[-1]  # type: ignore[return-value]

        register.fn.exchange_status = counted  # type: ignore[method-assign]
        time.sleep(0.3)  # idle: no document formed, so the link does not look at the FN
        del register.fn.exchange_status
        assert looks == []
    for number in range(1, last + 1):
        assert register.fn.ofd_receipt(number).fd == number


def test_a_lost_receipt_sends_the_same_document_again(
    register: ShtrihRegister, ofd: OfdThread
) -> None:
    ofd.control({"action": "drop-ack", "count": 2})
    address = OfdAddress("127.0.0.1", ofd.port, retry=0.05)
    with ServiceThread(register, Faults(), ofd=address) as served:
        eventually(lambda: register.fn.exchange_status().queued == 0)
        assert served.ofd is not None and served.ofd.sessions == 3  # the document, 3 times
    stats = ofd.control({"action": "status"})["stats"]
    assert stats["acks_dropped"] == 2 and stats["duplicates"] == 2
    assert held(ofd) == [1]
    receipt = register.fn.ofd_receipt(1)
    assert receipt.fd == 1 and len(receipt.sign) == 16


def test_an_unreachable_ofd_keeps_the_queue_and_is_tried_again(register: ShtrihRegister) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = OfdAddress("127.0.0.1", port, retry=0.05, timeout=1.0)
    with ServiceThread(register, Faults(), ofd=address) as served:
        link = served.ofd
        assert link is not None
        eventually(lambda: link.sessions >= 3)  # tried, and tried again
        report = served.run_on_loop(link.send_now())
        assert report.sent == [] and report.unsent == 1
        assert "cannot be reached" in str(report.error)
    status = register.fn.exchange_status()
    assert status.queued == 1 and status.first_unsent == 1


def test_send_now_reports_what_it_sent(register: ShtrihRegister, ofd: OfdThread) -> None:
    ofd.control({"action": "down"})
    address = OfdAddress("127.0.0.1", ofd.port, retry=NEVER)
    with ServiceThread(register, Faults(), ofd=address) as served:
        link = served.ofd
        assert link is not None
        eventually(lambda: link.sessions >= 1)  # the first try failed; the next is an hour away
        ofd.control({"action": "up"})
        report = served.run_on_loop(link.send_now())
        assert report.sent == [1] and report.unsent == 0 and report.error is None
        assert report.as_dict() == {"sent": 1, "first": 1, "last": 1, "unsent": 0}
    assert register.fn.ofd_receipt(1).fd == 1


def test_ofd_send_without_an_ofd_says_how_to_get_one(register: ShtrihRegister) -> None:
    controls = Controls(register, Faults())
    assert controls.sends({"action": "ofd", "send": True})
    assert not controls.sends({"action": "ofd", "deliver": "all"})
    with pytest.raises(ControlError, match="--ofd HOST:PORT"):
        asyncio.run(controls.send())


def test_ctl_words() -> None:
    words = argparse.Namespace(words=["ofd", "send"])
    assert emulator_cli.control_request(words) == {"action": "ofd", "send": True}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--ofd", "nowhere"], "--ofd takes HOST:PORT"),
        (["--ofd", "127.0.0.1:0"], "--ofd needs the OFD's port"),
        (["--ofd-retry", "1"], "need an OFD: add --ofd HOST:PORT"),
        (["--ofd", "127.0.0.1:9", "--ofd-retry", "0"], "--ofd-retry takes seconds"),
    ],
)
def test_serve_refuses_a_bad_ofd_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    code = main(["emulator", "serve", "--tcp", "127.0.0.1:0", "--state", str(tmp_path), *options])
    assert code == 2
    assert message in capsys.readouterr().err
