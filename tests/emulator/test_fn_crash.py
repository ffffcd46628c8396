"""kill -9 a process that writes receipts, many times: the FN's storage must always verify.

Every receipt the child reported as done (after the store's commit returned) must be in the archive;
numbers have no gaps, every sign verifies and the counters equal the archive.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kkt.emulator.clock import SystemClock
from kkt.emulator.fn import FiscalStorage, SqliteStore

CHILD = r"""
import sys
sys.path.insert(0, {tests!r})
from support.fn import registration
from kkt.emulator.clock import SystemClock
from kkt.emulator.fn import FiscalStorage, FnConfig, SqliteStore, VatSums
from kkt.protocols.ffd import LifePhase, Payments

fn = FiscalStorage(SqliteStore({path!r}), SystemClock(), config=FnConfig(archive_capacity=10**6))
if fn.status().phase is LifePhase.READY:
    fn.register(registration())
if not fn.state.shift_open:
    fn.open_shift()
print("ready", flush=True)
item = [(1059, [(1030, "товар"), (1079, 100), (1043, 100)])]
while True:
    formed = fn.receipt(1, 100, Payments(cash=100), VatSums(vat20=16), item)
    print("done", formed.number, flush=True)
"""

KILLS = 50


@pytest.mark.timeout(600)
def test_sigkill_at_random_instants_never_loses_or_breaks_a_document(tmp_path: Path) -> None:
    path = tmp_path / "fn.sqlite"
    code = CHILD.format(tests=str(Path(__file__).parents[1]), path=str(path))
    rng = random.Random(2026)
    reported: set[int] = set()
    killed_while_writing = 0
    for _ in range(KILLS):
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
        # Only whole lines count: the kill may cut the last one short.
        complete = out.split("\n")[:-1]
        done = [int(line.split()[1]) for line in complete if line.startswith("done ")]
        killed_while_writing += bool(done)
        reported.update(done)

        fn = FiscalStorage(SqliteStore(path), SystemClock())
        verification = fn.verify()
        assert verification.ok, verification.problems
        archived = {r.number for r in fn._store.records()}
        assert reported <= archived, f"reported done but lost: {sorted(reported - archived)[:10]}"
        fn.close()
    assert killed_while_writing >= KILLS // 2, (
        "the child was rarely killed mid-run; the test proves little"
    )
    assert len(reported) > KILLS
