"""The ``farm``, ``wire`` and ``receipts.exchanges`` bench cases at tiny sizes: the figures they
print, no errors, and nothing left running afterwards (no helper process, no thread)."""

from __future__ import annotations

import multiprocessing
import socket
import threading
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from kkt.emulator.atol import open_device as open_atol
from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device
from kkt.tools.bench import Bench, Figure, farm, receipts, wire

from kkt import Item, Payments, Receipt


def bench(tmp_path: Path) -> Bench:
    return Bench(quick=True, work=tmp_path / "work", cache=tmp_path / "cache")


def values(figures: Iterable[Figure]) -> dict[str, float]:
    return {figure.case: figure.value for figure in figures}


@pytest.fixture(autouse=True)
def nothing_left_running() -> Iterator[None]:
    threads = set(threading.enumerate())
    yield
    assert multiprocessing.active_children() == []
    assert set(threading.enumerate()) <= threads


@pytest.mark.timeout(60)
def test_farm_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(farm, "QUICK", (farm.FarmSize(registers=2, receipts=2, rounds=2),))
    figures = values(farm.farm_case(bench(tmp_path)))
    assert set(figures) == {
        "farm.2.receipts_per_s",
        "farm.2.p50_ms",
        "farm.2.p99_ms",
        "farm.2.errors",
    }
    assert figures["farm.2.errors"] == 0
    assert figures["farm.2.receipts_per_s"] > 0
    assert 0 < figures["farm.2.p50_ms"] <= figures["farm.2.p99_ms"]


@pytest.mark.timeout(60)
def test_farm_counts_failed_sells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unpaid = Receipt((Item("Кофе", 19_900, Decimal(1)),), Payments(cash=100))  # refused
    monkeypatch.setattr(farm, "RECEIPT", unpaid)
    monkeypatch.setattr(farm, "QUICK", (farm.FarmSize(registers=2, receipts=3, rounds=1),))
    logged: list[str] = []
    run = Bench(quick=True, work=tmp_path, cache=tmp_path, log=logged.append)
    figures = values(farm.farm_case(run))
    assert figures["farm.2.errors"] == 6
    assert any("ReceiptRejected" in line for line in logged)


@pytest.mark.timeout(60)
def test_wire_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "QUICK", wire.WireSize(receipts=2, rounds=1, warmup=0))
    logged: list[str] = []
    run = Bench(quick=True, work=tmp_path, cache=tmp_path, log=logged.append)
    figures = values(wire.wire_case(run))
    assert set(figures) == {
        "wire.115200.receipts_per_s",
        "wire.115200.line_bound_per_s",
        "wire.115200.efficiency",
        "wire.115200.fsync_share",
        "wire.115200.kkt_3items_per_s",
        "wire.115200.pyshtrih_3items_per_s",  # pyshtrih: the test extra installs it
        "wire.115200.kkt_over_pyshtrih",
    }
    assert all(value > 0 for value in figures.values())
    assert figures["wire.115200.efficiency"] == pytest.approx(
        figures["wire.115200.receipts_per_s"] / figures["wire.115200.line_bound_per_s"]
    )
    assert figures["wire.115200.kkt_over_pyshtrih"] == pytest.approx(
        figures["wire.115200.kkt_3items_per_s"] / figures["wire.115200.pyshtrih_3items_per_s"]
    )
    assert any(line.startswith("wire.115200: one receipt") for line in logged)  # the time split


@pytest.mark.timeout(30)
def test_an_emulator_that_cannot_start_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where a state directory should be")
    with (
        pytest.raises(RuntimeError, match="emulator process failed"),
        farm.EmulatorProcess([blocker]),
    ):
        pass


@pytest.mark.timeout(30)
def test_paced_line_carries_both_ways_and_counts() -> None:
    server = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        peer, _ = server.accept()
        with peer:
            while data := peer.recv(4096):
                peer.sendall(data[::-1])

    echoing = threading.Thread(target=echo)
    echoing.start()
    line = wire.PacedLine(server.getsockname()[1], byte_time=1e-5)
    try:
        with socket.create_connection(("127.0.0.1", line.port)) as client:
            for message in (b"\x05", b"\x02\x03abc", bytes(range(200))):
                client.sendall(message)
                received = b""
                while len(received) < len(message):
                    received += client.recv(4096)
                assert received == message[::-1]
    finally:
        line.close()
        echoing.join(5)
        server.close()
    size = 1 + 5 + 200
    assert (line.to_device.bytes, line.to_host.bytes) == (size, size)
    assert line.to_device.enquiries == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
def test_receipts_exchanges_counts_a_steady_sale(tmp_path: Path, protocol: str) -> None:
    """``receipts.exchanges``: a steady-state Shtrih sale is 3 x FF46, 89h, FF45 (its answer's
    second copy, an ENQ replay, is no command and not counted); an ATOL one
    no more than before issue 20's cuts (12 commands), each at most an Add and an Ack."""
    device = (open_atol if protocol == "atol" else open_device)(tmp_path / "state")
    try:
        with ServiceThread(device, Faults(), protocol=protocol) as thread:
            url = f"socket://127.0.0.1:{thread.port}"
            commands, packets = receipts._exchanges(url, protocol, 3)
    finally:
        device.close()
    if protocol == "shtrih":
        assert commands == 5
    else:
        assert 0 < commands <= 12 and 0 < packets <= 2 * commands
