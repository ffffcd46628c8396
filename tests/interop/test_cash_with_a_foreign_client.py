"""Cash in while another program shares the ATOL register: never misreported (the review's case).

An ATOL task is named only by its TID.  A program that reconnects and Aborts before each
document, never Acks and walks TIDs 01..DF (MultiMag, Zzzzipper: tests/interop/atol_v3_client.py)
retires our executed task's result and adds its own under the same TID; our host, whose reply was
lost on the line, then takes that program's result with Req (the link-level fact:
tests/protocols/atol/test_link.py).  The driver's policy settles cash operations by the drawer
(`Register._move_cash`): here every cash in the driver called done moved the drawer, none it called
failed did -- measured against the emulator's own drawer around each call, not the driver's reads.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from pathlib import Path

import pytest
from kkt.emulator.atol import open_device
from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.protocols.atol.link import HostSettings

import kkt
from interop.atol_v3_client import IGNORE_ERROR, NEED_RESULT, AtolV3Client, CommandFailed, Habits

pytestmark = pytest.mark.timeout(300)

CASH_INS = 30  # the suite's size; 60 by hand: see the comment in the test
LOSE_RATE = 0.3  # share of task results whose F0 packet the register loses (Req still finds them)
BEEP = b"\x00\x00\x47"  # succeeds: "55 00 00", what a cash in's success looks like too
NOT_IMPLEMENTED = b"\x00\x00\x01"  # refused 66h, as the foreign refusal of the review
# The foreign program: reconnect and Abort before each document, never Ack, take results by Req
# (its own lost F0 packets do not stall it), walk TIDs 01..DF.
FOREIGN = Habits(
    results_from="req", ack=False, abort_per_document=True, flags=NEED_RESULT | IGNORE_ERROR
)


def foreign_program(port: int, stop: threading.Event, tasks: list[int]) -> None:
    client = AtolV3Client("127.0.0.1", port, FOREIGN, timeout=1.0)
    try:
        while not stop.is_set():
            try:
                client.start_document()
                for command in (BEEP, NOT_IMPLEMENTED, BEEP):
                    tasks.append(client.tid)
                    try:
                        client.run(command)
                    except CommandFailed:
                        pass  # refused, or its result taken by another host: it goes on
            except (ConnectionError, OSError):
                client.close()  # the register cut the line: the next document reconnects
    finally:
        client.close()


def test_cash_ins_beside_a_foreign_program_on_a_lossy_line_are_never_misreported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Without the drawer's judgement (Register.cash_in as a plain device command) this run
    # reported 2 to 4 executed cash ins of 60 as failed (a foreign 66h refusal under their TID).
    device = open_device(tmp_path / "state")
    faults = Faults(seed=15)
    outcomes: Counter[str] = Counter()
    misreported: list[str] = []
    stop = threading.Event()
    foreign_tasks: list[int] = []
    try:
        with ServiceThread(device, faults, protocol="atol") as served:
            url = f"socket://127.0.0.1:{served.port}"
            with kkt.connect(url, protocol="atol", settings=HostSettings(packet=0.5)) as register:
                register.open_shift()
                start = device.model.cash_in_drawer()
                foreign = threading.Thread(
                    target=foreign_program, args=(served.port, stop, foreign_tasks)
                )
                foreign.start()
                try:
                    caplog.set_level(logging.WARNING, logger="kkt.register")
                    faults.configure(lose_rate=LOSE_RATE)
                    for call in range(CASH_INS):
                        before = device.model.cash_in_drawer()
                        try:
                            register.cash_in(1)
                            said = "done"
                        except kkt.OutcomeUnknown:
                            said = "unknown"
                        except kkt.KktError as error:
                            said = "failed"
                            outcomes[f"failed: {type(error).__name__}"] += 1
                        moved = device.model.cash_in_drawer() - before
                        outcomes[said] += 1
                        if (said, moved) in (("done", 0), ("failed", 1)) or moved not in (0, 1):
                            misreported.append(f"cash in {call}: {said}, the drawer moved {moved}")
                finally:
                    faults.clear()
                    stop.set()
                    foreign.join()
                total = device.model.cash_in_drawer() - start
    finally:
        device.close()
    overruled = sum("yet the drawer moved" in r.getMessage() for r in caplog.records)
    print(
        f"\n{CASH_INS} cash in(1) beside {len(foreign_tasks)} foreign tasks: {dict(outcomes)}, "
        f"{overruled} failure answers overruled by the drawer, the drawer moved {total}"
    )
    assert misreported == []
    assert outcomes["done"] <= total <= outcomes["done"] + outcomes["unknown"]
    assert len(foreign_tasks) > CASH_INS  # the other program did run beside every cash in
