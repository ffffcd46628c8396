"""The ``relay`` soak: ``kkt ofd relay --loop`` killed with SIGKILL at random instants.

A Shtrih register served on TCP without an OFD link of its own, the emulated OFD beside it (a
little slow to answer, so kills land mid-exchange), and the relay as its own process (``python -m
kkt ofd relay --url ... --ofd ... --loop``), killed with SIGKILL a random moment after its first
session reached the OFD: mid-read of a message (FF31), with the message on its way to the OFD,
with the OFD's answer half written back (FF33) ...  Sales go on between the kills, so the queue
keeps growing.  At the end one uninterrupted relay run sends what is left, and every document the
FN formed must be stored at the OFD exactly once, with the one receipt the OFD gave it in the FN,
the FN's queue empty and its archive verified.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from kkt.emulator.ofd import OfdThread
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import ShtrihRegister, open_device
from kkt.protocols.ofd import parse_operator_ack

import kkt

from .. import Bench, Figure, case
from .common import SOAK_DEVICE, SOAK_HOST, fail_if, first_few, receipt_for, tally_logs

# -- sizes and timings (module constants: tests shrink them) -------------------------------------

RELAY_KILLS_QUICK = 8
RELAY_KILLS_FULL = 200
RELAY_SALES = 3  # receipts sold before each relay process starts
RELAY_KILL_AFTER = (0.0, 0.25)  # seconds (uniform) from the relay's first session to its kill
RELAY_START_SECONDS = 20.0  # a relay that sends nothing this long is a failure
RELAY_INTERVAL = 0.05  # --interval of the relay's --loop
RELAY_OFD_DELAY = 0.02  # seconds the OFD takes per answer: the kills land mid-exchange more often


def _spawn(url: str, ofd: str, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "kkt", "ofd", "relay", "--url", url, "--ofd", ofd]
    command += ["--loop", "--interval", str(RELAY_INTERVAL), "--ofd-timeout", "5"]
    with log.open("ab") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=sink)


def delivery_problems(device: ShtrihRegister, ofd: OfdThread) -> tuple[list[str], int, int]:
    """What breaks "every document once at the OFD, its one receipt in the FN": (problems,
    documents, documents the OFD received more than once -- and stored once)."""
    assert ofd.service.server is not None
    fn = device.fn
    status = fn.status()
    stored = [doc for doc in ofd.service.server.store.documents() if doc.fn_serial == status.serial]
    problems: list[str] = []
    numbers = [doc.fd_number for doc in stored]
    expected = list(range(1, status.last_number + 1))
    if numbers != expected:
        missing = sorted(set(expected) - set(numbers))
        problems.append(f"the OFD holds {len(numbers)} of {len(expected)}; missing {missing[:10]}")
    queued = fn.exchange_status().queued
    if queued:
        problems.append(f"{queued} documents still wait in the FN's queue")
    for doc in stored:
        ack = parse_operator_ack(doc.ack)  # the store keeps the receipt container
        try:
            receipt = fn.ofd_receipt(doc.fd_number)
        except Exception as error:  # the FN's refusal: no receipt
            problems.append(f"document {doc.fd_number}: no receipt in the FN ({error})")
            continue
        if receipt.sign[: len(ack.sign)] != ack.sign:
            problems.append(f"document {doc.fd_number}: the FN's receipt is not the OFD's")
    verification = device.verify()
    if not verification.ok:
        problems.append(f"the FN does not verify: {first_few(list(verification.problems), 3)}")
    return problems, len(stored), sum(doc.times > 1 for doc in stored)


@case("relay", soak=True)
def relay(bench: Bench) -> Iterator[Figure]:
    """kill -9 of ``kkt ofd relay --loop`` at random instants: every document reaches the OFD
    once and its receipt the FN once."""
    kills = bench.size(RELAY_KILLS_QUICK, RELAY_KILLS_FULL)
    rng = random.Random(1616)
    log = bench.work / "relay.log"
    device = open_device(bench.work / "relay-register")
    problems: list[str] = []
    killed = exited = after_store = 0
    started = time.monotonic()
    try:
        with (
            tally_logs() as tally,
            ServiceThread(device, settings=SOAK_DEVICE) as emulator,
            OfdThread(bench.work / "relay-ofd") as ofd,
        ):
            url = f"socket://127.0.0.1:{emulator.port}"
            register: kkt.Register | None = kkt.connect(url, settings=SOAK_HOST)
            try:
                assert register is not None and ofd.service.server is not None
                ofd.control({"action": "delay", "seconds": RELAY_OFD_DELAY})
                serial = register.fn_info().serial
                register.open_shift()
                for index in range(kills):
                    for sale in range(RELAY_SALES):
                        register.sell(receipt_for(10_000 + index * RELAY_SALES + sale))
                    register.close()  # the line free for the relay, as a one-client port wants
                    register = None
                    stats = ofd.service.server.stats
                    sessions = stats.sessions
                    process = _spawn(url, ofd.service.address, log)
                    # Python's start-up takes longer than a few documents' relay: the kill is
                    # timed from the relay's first session at the OFD, a few documents' time on.
                    deadline = time.monotonic() + RELAY_START_SECONDS
                    while stats.sessions == sessions and process.poll() is None:
                        if time.monotonic() > deadline:
                            problems.append(f"a relay sent nothing in {RELAY_START_SECONDS:g} s")
                            break
                        time.sleep(0.002)
                    time.sleep(rng.uniform(*RELAY_KILL_AFTER))
                    if process.poll() is None:
                        process.kill()
                        killed += 1
                    else:
                        exited += 1  # it stopped by itself: its log says why
                    process.wait()
                    register = kkt.connect(url, settings=SOAK_HOST)
                    # The kill that matters most: the OFD stored a document whose receipt never
                    # reached the FN.  The next relay must send it again, and the OFD keep it once.
                    first = register.ofd_status().first_number
                    if first is not None and ofd.service.server.store.find(serial, first):
                        after_store += 1
                    if (index + 1) % 10 == 0:
                        bench.log(f"soak relay: {index + 1}/{kills} kills")
                left_before = register.ofd_status().unsent
                ofd.control({"action": "clear"})
                final = register.ofd_exchange(ofd.service.address, timeout=5.0)
            finally:
                if register is not None:
                    register.close()
            if final.left:
                problems.append(f"the last relay run left {final.left} documents")
            found, documents, resent = delivery_problems(device, ofd)
            problems += found
            problems += [f"logged: {text}" for text in tally.errors]
    finally:
        device.close()
    seconds = time.monotonic() - started
    note = f"{killed} kills, {RELAY_SALES} sales before each relay start"
    yield Figure("soak.relay.kills", killed, "count", note)
    yield Figure("soak.relay.exited", exited, "count", "relays that ended by themselves; 0")
    yield Figure("soak.relay.documents", documents, "count", "each once at the OFD")
    yield Figure(
        "soak.relay.killed_after_store",
        after_store,
        "count",
        "kills that left a document stored at the OFD, its receipt not in the FN",
    )
    yield Figure("soak.relay.resent", resent, "count", "sent again after a kill, stored once")
    yield Figure("soak.relay.left_for_last_run", left_before, "count")
    yield Figure("soak.relay.problems", len(problems), "count", "must be 0")
    yield Figure("soak.relay.seconds", seconds, "s")
    if exited:
        problems.append(f"{exited} relay processes ended by themselves (see {log})")
    fail_if("relay", problems)
