"""Issue 15: four kinds of ATOL v3 client run a day through ``kkt emulator serve --protocol atol``.

Each client is `atol_v3_client.AtolV3Client` (its own codec, written from the protocol's
description) with the habits of a public driver:

* ``f0``: waits for the F0 packet and never reads a result in the Add's reply (atol4j's
  ``TransportProtocolV3``, MultiMag's ``atol.php``); Acks;
* ``req``: fetches every result with Req (Zzzzipper's reconnect path, the spec's dump in
  Zzzzipper's ``AtolProtocol.h``); Acks;
* ``no-ack``: never sends Ack on one long connection (Zzzzipper's flags, NeedResult|IgnoreError);
* ``abort``: reconnects and sends Abort before each document, never Acks (MultiMag, Zzzzipper).

The day: open the shift, 30 receipts (the 15th refused at its item, then cancelled), the Z
report -- against a real ``kkt emulator serve`` subprocess with default options.  Afterwards the
FN must hold every document the client saw succeed, once, and none it saw fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kkt.emulator.atol import AtolRegister
from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.tools.cli import main

from interop.atol_v3_client import (
    IGNORE_ERROR,
    NEED_RESULT,
    RESULT,
    AtolV3Client,
    CommandFailed,
    Habits,
)

pytestmark = pytest.mark.timeout(120)

PWD = b"\x00\x00"
SYSADMIN = b"\x00\x00\x00\x30"  # mode password 30, BCD
EXIT = PWD + b"\x48"
OPEN_SHIFT = PWD + b"\x9a\x00"
OPEN_SALE = PWD + b"\x92\x00\x01"
CANCEL = PWD + b"\x59"
Z_REPORT = PWD + b"\x5a"
VAT20, NO_SUCH_TAX = 1, 9
RECEIPTS, REFUSED_RECEIPT = 30, 15

# FFD document types in the FN's archive (fact sheet fn-ffd-ofd.md).
OPEN_SHIFT_DOC, RECEIPT_DOC, CLOSE_SHIFT_DOC = 2, 3, 5


def bcd(value: int, size: int) -> bytes:
    return bytes.fromhex(f"{value:0{2 * size}d}")


def enter(mode: int) -> bytes:
    return PWD + bytes((0x56, mode)) + SYSADMIN


def item(price: int, tax: int) -> bytes:
    """E6h, FFD 1.0 style: the layout atol4j, MultiMag and Zzzzipper share (fact sheet §2.3)."""
    name = "Товар".encode("cp866").ljust(64, b"\x00")
    return (
        PWD
        + b"\xe6\x00"
        + name
        + bcd(price, 6)
        + bcd(1000, 5)  # quantity 1.000
        + b"\x00\x00"
        + bcd(0, 6)
        + bytes((tax, 1))
        + bytes(17)
    )


def close(total: int) -> bytes:
    return PWD + b"\x4a\x00\x01" + bcd(total, 5)  # cash, exactly the total


@dataclass
class Seen:
    """What the client saw of each document."""

    succeeded: Counter[tuple[int, int]] = field(default_factory=Counter)  # (type, total)
    failed: Counter[tuple[int, int]] = field(default_factory=Counter)


def document(client: AtolV3Client, seen: Seen, key: tuple[int, int], steps: list[bytes]) -> None:
    client.start_document()
    try:
        for step in steps:
            client.run(step)
    except CommandFailed:
        seen.failed[key] += 1
        for cleanup in (CANCEL, EXIT):  # the "initial state" atol4j returns to after an error
            try:
                client.run(cleanup)
            except CommandFailed:
                pass
        return
    seen.succeeded[key] += 1


def a_day(client: AtolV3Client) -> Seen:
    seen = Seen()
    document(client, seen, (OPEN_SHIFT_DOC, 0), [enter(1), OPEN_SHIFT, EXIT])
    for number in range(1, RECEIPTS + 1):
        price = 10_000 + number  # each receipt's total tells it apart in the FN
        tax = NO_SUCH_TAX if number == REFUSED_RECEIPT else VAT20
        steps = [enter(1), OPEN_SALE, item(price, tax), close(price), EXIT]
        document(client, seen, (RECEIPT_DOC, price), steps)
    document(client, seen, (CLOSE_SHIFT_DOC, 0), [enter(3), Z_REPORT, EXIT])
    return seen


def fn_documents(state: Path, after: int) -> Counter[tuple[int, int]]:
    register = AtolRegister.open(state)
    try:
        fn = register.model.fn
        found: Counter[tuple[int, int]] = Counter()
        for number in range(after + 1, fn.state.last_number + 1):
            record = fn.record(number)
            found[(record.kind, record.total if record.kind == RECEIPT_DOC else 0)] += 1
        return found
    finally:
        register.close()


def last_document(state: Path) -> int:
    register = AtolRegister.open(state)
    try:
        return register.model.fn.state.last_number
    finally:
        register.close()


def serve(state: Path, *options: str) -> tuple[subprocess.Popen[str], int]:
    """``kkt emulator serve --protocol atol`` (default options unless given), on a free port."""
    command = [sys.executable, "-m", "kkt", "emulator", "serve", "--protocol", "atol"]
    command += ["--state", str(state), "--tcp", "127.0.0.1:0", *options]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("listening tcp "):
        process.kill()
        process.communicate()
        raise AssertionError(f"serve did not start: {line!r}")
    return process, int(line.rsplit(":", 1)[1])


CLIENTS = {
    "f0": Habits(results_from="f0", ack=True),
    "req": Habits(results_from="req", ack=True),
    "no-ack": Habits(results_from="f0", ack=False, flags=NEED_RESULT | IGNORE_ERROR),
    "abort": Habits(
        results_from="f0", ack=False, abort_per_document=True, flags=NEED_RESULT | IGNORE_ERROR
    ),
}


@pytest.mark.parametrize("kind", list(CLIENTS))
def test_a_day_of_each_client_kind_leaves_exactly_what_it_saw_succeed_in_the_fn(
    kind: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    AtolRegister.open(state).close()  # a new register: registered, shift closed
    before = last_document(state)
    process, port = serve(state)
    client = AtolV3Client("127.0.0.1", port, CLIENTS[kind])
    try:
        seen = a_day(client)
    finally:
        client.close()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0
    in_fn = fn_documents(state, before)
    refused = (RECEIPT_DOC, 10_000 + REFUSED_RECEIPT)
    # Every document the client saw succeed is in the FN once; none it saw fail is.
    assert in_fn == seen.succeeded
    assert seen.failed == Counter({refused: 1})
    assert sum(seen.succeeded.values()) == RECEIPTS + 1  # the shift, 29 receipts, the Z report


def test_a_result_lost_with_its_connection_survives_another_hosts_abort(tmp_path: Path) -> None:
    """The shift is opened, the line hangs up before the F0; another program connects and
    sends Abort; the first host reconnects and its Req finds the result -- not B3, which a
    Zzzzipper-style host takes as "never arrived" and adds the task again."""
    device = AtolRegister.open(tmp_path / "state")
    faults = Faults()
    try:
        with ServiceThread(device, faults, protocol="atol") as served:
            host = AtolV3Client("127.0.0.1", served.port, Habits(results_from="f0"))
            other = AtolV3Client("127.0.0.1", served.port, Habits(abort_per_document=True))
            try:
                host.start_document()
                host.run(enter(1))
                faults.configure(hang_up=1)  # the task runs, then the connection is cut
                tid, status = host.add(OPEN_SHIFT)
                assert status[:1] in (b"\xa1", b"\xa2")  # taken; its F0 never comes
                with pytest.raises(ConnectionError):
                    host.await_f0(tid)  # the line is cut before the F0
                other.start_document()  # connect, Abort: clears the queue
                other.close()
                host.connect()
                assert host.ask(tid) == b"\xa3\x55\x00\x00"  # executed: its result, kept
                assert host.acknowledge(tid) == b"\xa3"
                assert host.ask(tid) == b"\xb3"  # acknowledged: gone
            finally:
                host.close()
                other.close()
        assert device.model.fn.state.shift_open
    finally:
        device.close()


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 0


def test_serve_options_select_inline_results_and_refusal_when_full(tmp_path: Path) -> None:
    process, port = serve(
        tmp_path / "state",
        "--atol-results",
        "inline",
        "--atol-buffer",
        "2",
        "--atol-when-full",
        "refuse",
    )
    client = AtolV3Client("127.0.0.1", port, Habits(ack=False))
    try:
        client.connect()
        status_query = PWD + b"\x3f"
        _, first = client.add(status_query)
        assert first[:2] == b"\xa3\x44"  # inline: the result in the Add's reply
        assert client.add(status_query)[1][:1] == b"\xa3"
        assert client.add(status_query)[1] == b"\xb1"  # two results kept, never acknowledged
        assert client.async_results == {}  # inline: no F0
    finally:
        client.close()
        stop(process)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--atol-results", "async"], "--atol-results: only with --protocol atol"),
        (["--protocol", "atol", "--atol-buffer", "0"], "capacity must be at least 1"),
    ],
)
def test_serve_refuses_atol_options_it_cannot_use(
    options: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    assert main(["emulator", "serve", "--state", str(state), *options]) == 2
    assert message in capsys.readouterr().err
    assert not state.exists()  # refused before the state is touched


def test_the_adds_reply_says_a2_and_leaves_before_the_f0_of_its_task(tmp_path: Path) -> None:
    """Zzzzipper's task layer takes an F0 met while it waits for the Add's reply as a failure,
    and Cyberplat's TerminalClient fails on A1 to an Add: a task that starts at once is A2, and
    its reply is on the line before its F0."""
    device = AtolRegister.open(tmp_path / "state")
    try:
        with ServiceThread(device, Faults(), protocol="atol") as served:
            client = AtolV3Client("127.0.0.1", served.port, Habits())
            try:
                client.connect()
                tid, status = client.add(PWD + b"\x3f")
                assert status == b"\xa2"  # no result in it
                assert tid not in client.async_results  # the F0 had not come before it
                kind, reply = client.await_f0(tid)
                assert (kind, reply[:1]) == (RESULT, b"\x44")
                assert client.ask(tid)[:2] == b"\xa3\x44"  # kept for Req until the Ack
                assert client.acknowledge(tid) == b"\xa3"
            finally:
                client.close()
    finally:
        device.close()
