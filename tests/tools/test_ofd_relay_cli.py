"""``kkt ofd relay``, and the OFD lines of ``kkt fn``, ``kkt doc`` and ``kkt doctor --ofd``,
through ``main(argv)`` against an emulated register (no OFD link of its own) and the emulated OFD.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kkt.emulator.ofd import OfdThread
from kkt.emulator.shtrih import open_device
from kkt.tools.bench.soak.common import receipt_for
from kkt.tools.cli import build_parser, main
from kkt.tools.ofd_relay_cli import run_relay

import kkt


@pytest.fixture
def url(tmp_path: Path) -> str:
    """An emulated register with a shift and two receipts waiting for the OFD."""
    state = tmp_path / "register"
    with kkt.connect(f"emulator:{state}") as register:
        register.open_shift()
        register.sell(receipt_for(100_00))
        register.sell(receipt_for(200_00))
    return f"emulator:{state}"


@pytest.fixture
def ofd(tmp_path: Path) -> Iterator[OfdThread]:
    with OfdThread(tmp_path / "ofd") as server:
        yield server


def closed_port() -> str:
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def kkt_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_relay_sends_the_queue_and_kkt_fn_shows_it_empty(
    url: str, ofd: OfdThread, capsys: pytest.CaptureFixture[str]
) -> None:
    fn = kkt_json(capsys, "fn", "--url", url)
    assert isinstance(fn, dict)
    assert fn["unsent"]["count"] == 4  # registration, shift open, two receipts
    assert fn["unsent"]["firstNumber"] == 1 and fn["unsent"]["daysUntilBlock"] == 30
    assert fn["unsent"]["lastReceiptDateTime"] is None and fn["unsent"]["blocked"] is False

    assert main(["ofd", "relay", "--url", url, "--ofd", ofd.service.address]) == 0
    out = capsys.readouterr().out
    assert out == (
        "sent 4 documents, 4 receipts written into the FN (documents 1..4); nothing left to send\n"
    )
    fn = kkt_json(capsys, "fn", "--url", url)
    assert isinstance(fn, dict)
    assert fn["unsent"]["count"] == 0 and fn["unsent"]["lastReceiptDateTime"] is not None
    assert "last OFD receipt" in _human(capsys, "fn", "--url", url)

    again = kkt_json(capsys, "ofd", "relay", "--url", url, "--ofd", ofd.service.address)
    assert again == {"sent": 0, "acknowledged": [], "left": 0, "firstLeft": None}


def test_kkt_doc_shows_the_documents_ofd_receipt(
    url: str, ofd: OfdThread, capsys: pytest.CaptureFixture[str]
) -> None:
    waiting = kkt_json(capsys, "doc", "1", "--url", url)
    assert isinstance(waiting, dict) and waiting["ofdReceipt"] is None
    assert "waiting for the OFD's receipt" in _human(capsys, "doc", "1", "--url", url)
    assert main(["ofd", "relay", "--url", url, "--ofd", ofd.service.address, "--limit", "1"]) == 0
    done = kkt_json(capsys, "doc", "1", "--url", url)
    assert isinstance(done, dict) and done["ofdReceipt"]["document"] == 1
    assert len(done["ofdReceipt"]["operatorSign"]) == 36  # the archive's 18 bytes, in hex
    assert "acknowledged 20" in _human(capsys, "doc", "1", "--url", url)
    assert "waiting for the OFD's receipt" in _human(capsys, "doc", "2", "--url", url)


def test_an_unreachable_ofd_is_one_line_and_exit_3(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    where = closed_port()
    capsys.readouterr()
    assert main(["ofd", "relay", "--url", url, "--ofd", where, "--ofd-timeout", "2"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"kkt ofd: the OFD at {where} cannot")
    assert "run the relay again" in err[0]


def test_a_bad_address_is_exit_2(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ofd", "relay", "--url", url, "--ofd", "ofd.example"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_loop_keeps_going_when_the_ofd_is_down(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(
        ["ofd", "relay", "--url", url, "--ofd", closed_port(), "--loop", "--interval", "0.01"]
    )
    stopped = threading.Event()
    stopped.set()  # one round, then the loop sees its stop
    assert run_relay(args, None, stopped) == 0
    assert "next try in 0.01 s" in capsys.readouterr().err


def test_atol_relay_is_not_supported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "atol"
    argv = ["ofd", "relay", "--protocol", "atol", "--url", f"emulator:{state}", "--ofd"]
    assert main([*argv, "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert "no public source" in err and "kkt emulator serve --ofd" in err


def test_doctor_reaches_the_ofd_when_told_where(
    tmp_path: Path, ofd: OfdThread, capsys: pytest.CaptureFixture[str]
) -> None:
    device = open_device(tmp_path / "served")
    device.close()
    url = f"emulator:{tmp_path / 'served'}"
    checks = _doctor(capsys, url, ofd.service.address)
    assert checks["ofd link"]["ok"] and "accepts connections" in checks["ofd link"]["detail"]
    assert checks["ofd"]["ok"]  # one document, minutes old
    where = closed_port()
    checks = _doctor(capsys, url, where)
    assert not checks["ofd link"]["ok"] and where in checks["ofd link"]["detail"]


def _doctor(capsys: pytest.CaptureFixture[str], url: str, ofd: str) -> dict[str, dict[str, object]]:
    capsys.readouterr()
    main(["doctor", "--url", url, "--ofd", ofd, "--json"])
    return {check["check"]: check for check in json.loads(capsys.readouterr().out)}


def _human(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out
