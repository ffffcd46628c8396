"""The ``cloud-crash`` soak: ``kkt cloud serve --emulated 4`` runs as its own process and is killed
with SIGKILL at random instants while a shop posts 20 receipts a second; it is restarted at once
on the same state and port.  The shop resends every document it got no answer for (the same body:
its ``external_id`` makes the resend safe) until the service answers with a uuid.

At the end, with the service stopped, the invariants of issue 18:

* every accepted uuid is ``done`` -- none ``fail``, none still waiting -- and no two external ids
  share a uuid;
* the emulated registers' FNs hold exactly the accepted receipts: one document per receipt
  (each receipt's total is unique, so a total found twice is a receipt fiscalized twice), none
  missing, none that nobody posted -- and each report's fiscal data (FN, document number, fiscal
  sign, total) is that document's;
* every receipt's callback arrived at least once (delivery is at-least-once by design: more than
  one is allowed, none is not), each with a well-formed signature header.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import Bench, Figure, case
from ..cloud import (
    CallbackCounter,
    CloudClient,
    HttpFailure,
    accepted_uuid,
    cloud_available,
    post_until_answered,
    sell_body,
)
from ..cloud_server import CloudServer, FnReceipt, fn_receipts
from .common import fail_if, first_few

# -- sizes and timings (module constants: tests shrink them) -------------------------------------

CLOUD_CRASH_KILLS_QUICK = 5
CLOUD_CRASH_KILLS_FULL = 30
CLOUD_CRASH_REGISTERS = 4
CLOUD_CRASH_RATE = 20.0  # receipts per second posted
CLOUD_CRASH_UP_SECONDS = (0.3, 3.0)  # the service lives this long (uniform) after it listens
# After the last restart the backlog drains (20/s may be more than the registers make): the soak
# waits for every report and callback as long as they keep coming, and gives up after this long
# without one more.
CLOUD_CRASH_STALL_SECONDS = 60.0
FIRST_TOTAL = 10_000  # receipt i costs FIRST_TOTAL + i kopecks: the total names the receipt


@dataclass
class _Shop:
    """Posts receipts at a pace; what got no answer is resent (same body) until it gets one."""

    client: CloudClient
    callback_url: str
    rate: float
    stop: threading.Event
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)  # external_id -> body
    totals: dict[str, int] = field(default_factory=dict)  # external_id -> total
    uuids: dict[str, str] = field(default_factory=dict)  # external_id -> uuid (accepted)
    unanswered: list[str] = field(default_factory=list)  # posted, no answer yet
    refused: list[str] = field(default_factory=list)  # answered without a uuid
    resends: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # why posts got no answer
    crashed: list[str] = field(default_factory=list)

    def run(self) -> None:
        try:
            started = time.monotonic()
            index = 0
            while not self.stop.is_set():
                self._resend_unanswered(once=True)
                external_id = f"crash-{index}"
                self.totals[external_id] = FIRST_TOTAL + index
                self.bodies[external_id] = sell_body(
                    external_id, FIRST_TOTAL + index, self.callback_url
                )
                self._post(external_id)
                index += 1
                pause = started + index / self.rate - time.monotonic()
                if pause > 0:
                    self.stop.wait(pause)
        except Exception as error:
            self.crashed.append("".join(traceback.format_exception_only(error)).strip())

    def _post(self, external_id: str) -> bool:
        try:
            reply = self.client.post("sell", self.bodies[external_id])
        except HttpFailure as failure:
            self.failures[str(failure).split(":", 1)[0]] += 1
            if external_id not in self.unanswered:
                self.unanswered.append(external_id)
            return False
        if reply.status in (429, 503):  # overloaded or starting: not accepted, try again later
            self.failures[f"HTTP {reply.status}"] += 1
            if external_id not in self.unanswered:
                self.unanswered.append(external_id)
            return False
        uuid = accepted_uuid(reply)
        if uuid is None:
            self.refused.append(f"{external_id}: HTTP {reply.status} {str(reply.body)[:160]}")
        else:
            self.uuids[external_id] = uuid
        with contextlib.suppress(ValueError):
            self.unanswered.remove(external_id)
        return True

    def _resend_unanswered(self, *, once: bool) -> None:
        for external_id in list(self.unanswered):
            if self.stop.is_set():
                return
            self.resends += 1
            if not self._post(external_id) and once:
                return  # still down: the next tick tries again

    def finish(self, timeout: float) -> None:
        """Resend what is unanswered until each has an answer (the service is up; the shop's
        thread has stopped)."""
        for external_id in list(self.unanswered):
            reply = post_until_answered(self.client, self.bodies[external_id], give_up=timeout)
            self.resends += 1
            if reply is None:
                continue  # stays unanswered: reported below
            uuid = accepted_uuid(reply)
            if uuid is None:
                self.refused.append(f"{external_id}: HTTP {reply.status} {str(reply.body)[:160]}")
            else:
                self.uuids[external_id] = uuid
            with contextlib.suppress(ValueError):
                self.unanswered.remove(external_id)


def _settle(client: CloudClient, uuids: set[str], stall: float) -> dict[str, dict[str, Any]]:
    """The reports of ``uuids`` once none reads ``wait`` -- or as they are when ``stall``
    seconds pass without one more settling."""
    reports: dict[str, dict[str, Any]] = {}
    pending = sorted(uuids)
    deadline = time.monotonic() + stall
    while pending and time.monotonic() < deadline:
        still: list[str] = []
        for uuid in pending:
            try:
                report = client.report(uuid).body
            except HttpFailure:
                still.append(uuid)
                continue
            reports[uuid] = report
            if report.get("status") not in ("done", "fail"):
                still.append(uuid)
        if len(still) < len(pending):
            deadline = time.monotonic() + stall
        pending = still
        if pending:
            time.sleep(0.2)
    return reports


def _check_fn(
    shop: _Shop, reports: dict[str, dict[str, Any]], receipts: list[FnReceipt]
) -> tuple[int, list[str], list[str], list[str]]:
    """(duplicates, lost, mismatched, foreign) between the accepted receipts and the FNs."""
    by_total: dict[int, list[FnReceipt]] = {}
    for receipt in receipts:
        by_total.setdefault(receipt.total, []).append(receipt)
    accepted_totals = {shop.totals[external_id] for external_id in shop.uuids}
    duplicates = sum(len(by_total[total]) - 1 for total in accepted_totals if total in by_total)
    lost: list[str] = []
    mismatched: list[str] = []
    for external_id, uuid in shop.uuids.items():
        total = shop.totals[external_id]
        documents = by_total.get(total, [])
        if not documents:
            lost.append(f"{external_id} ({uuid}): accepted, no FN document of {total} kopecks")
            continue
        payload = reports.get(uuid, {}).get("payload") or {}
        if not any(
            document.fn_number == payload.get("fn_number")
            and document.number == payload.get("fiscal_document_number")
            and document.fiscal_sign == payload.get("fiscal_document_attribute")
            for document in documents
        ):
            document = documents[0]
            mismatched.append(
                f"{external_id}: the report says FN {payload.get('fn_number')} document "
                f"{payload.get('fiscal_document_number')} sign "
                f"{payload.get('fiscal_document_attribute')}; the FN has {document.fn_number} "
                f"document {document.number} sign {document.fiscal_sign}"
            )
    # a receipt that was posted but never got a uuid may still be fiscal: that is a lost answer
    posted = set(shop.totals.values())
    foreign = [
        f"{total} kopecks ({'never accepted' if total in posted else 'never posted'})"
        for total in sorted(set(by_total) - accepted_totals)
    ]
    return duplicates, lost, mismatched, foreign


@case("cloud-crash", soak=True)
def cloud_crash(bench: Bench) -> Iterator[Figure]:
    """kill -9 of ``kkt cloud serve`` at random instants under 20 receipts/s."""
    if not cloud_available():
        raise AssertionError("soak cloud-crash: the service needs pip install 'kktkit[cloud]'")
    kills = bench.size(CLOUD_CRASH_KILLS_QUICK, CLOUD_CRASH_KILLS_FULL)
    server = CloudServer(
        bench.work / "cloud-crash",
        bench.work / "cloud-crash.log",
        emulated=CLOUD_CRASH_REGISTERS,
    )
    callbacks = CallbackCounter().start()
    client = CloudClient("http://127.0.0.1:1")  # the real port once the service listens
    rng = random.Random(2026)
    stop = threading.Event()
    shop: _Shop | None = None
    worker: threading.Thread | None = None
    killed = 0
    problems: list[str] = []
    reports: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    try:
        server.start()
        client = CloudClient(server.url)
        client.login()
        callbacks.secret = server.callback_key()
        shop = _Shop(client, callbacks.url, CLOUD_CRASH_RATE, stop)
        worker = threading.Thread(target=shop.run, name="soak-cloud-shop")
        worker.start()
        for _ in range(kills):
            time.sleep(rng.uniform(*CLOUD_CRASH_UP_SECONDS))
            server.kill()
            killed += 1
            server.start()
            if killed % 10 == 0:
                bench.log(f"soak cloud-crash: {killed}/{kills} kills, {len(shop.uuids)} accepted")
        time.sleep(1.0)  # a last second of load on a service that stays up
        stop.set()
        bench.log(f"soak cloud-crash: {killed} kills done at {time.monotonic() - started:.0f} s")
        worker.join(60)
        if worker.is_alive():
            raise AssertionError("soak cloud-crash: the shop's thread did not stop (a hang?)")
        bench.log(f"soak cloud-crash: {len(shop.unanswered)} posts to answer yet")
        shop.finish(CLOUD_CRASH_STALL_SECONDS)
        reports = _settle(client, set(shop.uuids.values()), CLOUD_CRASH_STALL_SECONDS)
        bench.log(f"soak cloud-crash: reports settled at {time.monotonic() - started:.0f} s")
        deadline = time.monotonic() + CLOUD_CRASH_STALL_SECONDS
        missing = len(shop.uuids)
        while missing and time.monotonic() < deadline:
            time.sleep(0.2)
            now_missing = len(callbacks.missing(set(shop.uuids.values())))
            if now_missing < missing:
                deadline = time.monotonic() + CLOUD_CRASH_STALL_SECONDS
            missing = now_missing
        bench.log(f"soak cloud-crash: callbacks in at {time.monotonic() - started:.0f} s")
    finally:
        stop.set()
        if worker is not None:
            worker.join(30)
        client.close()
        server.stop()
        callbacks.stop()
    elapsed = time.monotonic() - started
    assert shop is not None

    receipts: list[FnReceipt] = []
    for state in server.emulated_states():
        try:
            receipts += fn_receipts(state)
        except Exception as error:
            problems.append(f"{state.name}: the FN does not read: {type(error).__name__}: {error}")
    uuids = set(shop.uuids.values())
    shared = len(shop.uuids) - len(uuids)
    statuses = Counter(str(report.get("status")) for report in reports.values())
    not_done = [
        f"{uuid}: {report.get('status')} {report.get('error')}"
        for uuid, report in reports.items()
        if report.get("status") != "done"
    ]
    not_done += [f"{uuid}: no report" for uuid in uuids - set(reports)]
    duplicates, lost, mismatched, foreign = _check_fn(shop, reports, receipts)
    missing_callbacks = callbacks.missing(uuids)

    note = f"{killed} kills in {elapsed:.0f} s"
    if server.refused_starts:
        note += f"; {server.refused_starts} restarts failed at first and were retried"
    yield Figure("soak.cloud_crash.kills", killed, "count", note)
    yield Figure("soak.cloud_crash.accepted", len(uuids), "count", f"posted {len(shop.totals)}")
    why = ", ".join(f"{name} {count}" for name, count in shop.failures.most_common(4))
    yield Figure("soak.cloud_crash.resends", shop.resends, "count", f"no answer before: {why}")
    yield Figure("soak.cloud_crash.fn_receipts", len(receipts), "count", "= accepted")
    yield Figure("soak.cloud_crash.not_done", len(not_done), "count", f"must be 0; {statuses}")
    yield Figure("soak.cloud_crash.duplicates", duplicates, "count", "must be 0")
    yield Figure("soak.cloud_crash.lost", len(lost), "count", "must be 0")
    yield Figure("soak.cloud_crash.mismatched", len(mismatched), "count", "must be 0")
    yield Figure("soak.cloud_crash.foreign", len(foreign), "count", "must be 0")
    yield Figure("soak.cloud_crash.callbacks_missing", len(missing_callbacks), "count", "must be 0")
    deliveries = sum(callbacks.counts[uuid] for uuid in uuids)
    yield Figure("soak.cloud_crash.callbacks", deliveries, "count", "at least one per receipt")
    yield Figure("soak.cloud_crash.bad_signatures", callbacks.bad_signatures, "count", "must be 0")

    problems += shop.crashed
    problems += [f"refused: {refusal}" for refusal in shop.refused]
    problems += [f"{external_id}: never answered" for external_id in shop.unanswered]
    if shared:
        problems.append(f"{shared} external id(s) share a uuid with another")
    problems += not_done
    if duplicates:
        problems.append(f"{duplicates} receipt(s) fiscalized more than once")
    problems += lost + mismatched
    if foreign:
        problems.append(f"the FNs hold receipts not accepted: {first_few(foreign)}")
    if missing_callbacks:
        problems.append(
            f"{len(missing_callbacks)} receipt(s) without a callback, e.g. "
            f"{sorted(missing_callbacks)[:3]}"
        )
    if callbacks.bad_signatures:
        problems.append(f"{callbacks.bad_signatures} callback(s) without a good signature header")
    if killed < kills and not problems:
        problems.append(f"only {killed} of {kills} kills happened")
    fail_if("cloud-crash", problems)
