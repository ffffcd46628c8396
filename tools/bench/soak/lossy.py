"""The ``lossy`` soak: the driver sells through an emulated register over a line that drops and
damages bytes and a register that now and then forgets an answer after doing the work.  Every
receipt reported done is in the FN exactly once, none reported failed is in it, an unknown outcome
is there at most once, and the FN verifies."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import astuple, replace
from pathlib import Path
from typing import Any

from kkt.emulator.atol import open_device as open_atol
from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device
from kkt.protocols.atol.link import DeviceSettings as AtolDeviceSettings
from kkt.protocols.atol.link import HostSettings as AtolHostSettings
from kkt.protocols.ffd import Payments as FnPayments
from kkt.protocols.ffd import decode_tlv

import kkt

from ...logs import logging_into
from .. import Bench, Figure, case
from .common import (
    RECEIPT_KIND,
    SOAK_DEVICE,
    SOAK_HOST,
    describe,
    fail_if,
    first_few,
    receipt_for,
    tally_logs,
)

# -- sizes and timings (module constants: tests shrink them) -------------------------------------

# (share of bytes damaged, receipts): half the damaged bytes are dropped, half bit-flipped.
LOSSY_QUICK: tuple[tuple[float, int], ...] = ((0.01, 60),)
LOSSY_FULL: tuple[tuple[float, int], ...] = ((0.01, 1000), (0.05, 300))
# Verifying reads each document back over the same bad line: a sale takes about 2 s at 1 %.
LOSSY_VERIFY_FULL: tuple[tuple[float, int], ...] = ((0.01, 500),)
LOSSY_LOSE_RATE = 0.03  # share of answers the register forgets after doing the work
LOSSY_SECONDS = 1800.0  # a run at one rate stops selling after this long (and says so)
LOSSY_SEED = 11  # the faults' seed: one run is one repeatable sequence of damage
LOSSY_ITEMS = 1  # items a receipt: 2 or more are opened by their first FF46 on Shtrih (no 8Dh)
# A file for the driver's trace of the run (every byte each way, the commands and their answers,
# a line per sale): what it takes to follow one unexpected outcome.  Tens of MB a run.
LOSSY_TRACE: Path | None = None


# ATOL's v3 link on loopback: short packet timeouts, the device's byte timeout below them.
SOAK_ATOL_HOST = AtolHostSettings(packet=0.1, packet_tries=6, poll=0.05)
SOAK_ATOL_DEVICE = AtolDeviceSettings(byte=0.05)


@case("lossy", soak=True)
def lossy(bench: Bench) -> Iterator[Figure]:
    """Exactly-once selling over a lossy line, at each configured share of damaged bytes."""
    problems: list[str] = []
    for rate, count in LOSSY_QUICK if bench.quick else LOSSY_FULL:
        yield from _lossy_run(bench, rate, count, problems)
    fail_if("lossy", problems)


@case("lossy-verify", soak=True)
def lossy_verify(bench: Bench) -> Iterator[Figure]:
    """The Shtrih soak with every receipt's document read back (``connect(..., verify=True)``):
    a closing damaged past the checksum must never be reported done."""
    problems: list[str] = []
    for rate, count in LOSSY_QUICK if bench.quick else LOSSY_VERIFY_FULL:
        yield from _lossy_run(bench, rate, count, problems, verify=True)
    fail_if("lossy-verify", problems)


@case("lossy-atol", soak=True)
def lossy_atol(bench: Bench) -> Iterator[Figure]:
    """The same over ATOL's v3 task buffer (each Ack riding on the next Add: AckAdd)."""
    problems: list[str] = []
    for rate, count in LOSSY_QUICK if bench.quick else LOSSY_FULL:
        yield from _lossy_run(bench, rate, count, problems, protocol="atol")
    fail_if("lossy-atol", problems)


log = logging.getLogger("kkt.soak.lossy")


@contextlib.contextmanager
def _traced(path: Path | None) -> Iterator[None]:
    """The ``kkt`` loggers at DEBUG into ``path`` (appended) while the run lasts (None: off)."""
    if path is None:
        yield
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(relativeCreated)10.1f %(name)s %(message)s"))
    with logging_into(handler):
        yield


def _receipt(total: int) -> kkt.Receipt:
    """`receipt_for` ``total``, in `LOSSY_ITEMS` items (the last one takes the remainder)."""
    receipt = receipt_for(total)
    if LOSSY_ITEMS <= 1:
        return receipt
    item = receipt.items[0]
    share = total // LOSSY_ITEMS
    prices = [share] * (LOSSY_ITEMS - 1) + [total - share * (LOSSY_ITEMS - 1)]
    items = tuple(replace(item, name=f"{item.name} {n}", price=p) for n, p in enumerate(prices))
    return replace(receipt, items=items)


def _receipts_by_sale(device: Any) -> tuple[dict[int, list[int]], dict[int, str]]:
    """The FN's receipts by the sale they hold -- the sum of their items, which the soak's
    totals (10000 + index) name -- and those not as sold: a total, payments or tax sums other
    than the items say (the closing command executed damaged: Shtrih's XOR checksum passes two
    flips in one bit column, and FF45 carries the payments, the rounding and the tax sums).

    Keyed by the receipt's own total, such a receipt would read as another sale's twice: sale
    10224 closed with a damaged rounding of 8 kopecks is "10216 doubled"."""
    by_sale: dict[int, list[int]] = {}
    damaged: dict[int, str] = {}  # sale -> what its document holds
    for record in device.fn._store.records():
        if record.kind != RECEIPT_KIND:
            continue
        members: Any = decode_tlv(record.tlv)[0][1]  # the receipt's STLV: (tag, value) pairs
        fields = dict(members)
        items: list[dict[int, Any]] = [dict(value) for tag, value in members if tag == 1059]
        sale = sum(int(item.get(1043, 0)) for item in items)
        vat = sum(int(item.get(1200, 0)) for item in items)
        tax_system = fields.get(1055)
        by_sale.setdefault(sale, []).append(record.number)
        as_sold = (
            record.total == sale
            and record.payments == FnPayments(cash=sale)
            and (record.vat.vat20, sum(astuple(record.vat))) == (vat, vat)
            and tax_system == 1
        )
        if not as_sold:
            damaged[sale] = (
                f"document {record.number} (sale {sale}): total {record.total}, "
                f"{record.payments}, {record.vat}, tax system {tax_system!r}"
            )
    return by_sale, damaged


def _lossy_run(
    bench: Bench,
    rate: float,
    count: int,
    problems: list[str],
    *,
    protocol: str = "shtrih",
    verify: bool = False,
) -> Iterator[Figure]:
    label = f"{rate * 100:g}pct"
    atol = protocol == "atol"
    name = f"soak.lossy{'.atol' if atol else ''}{'.verify' if verify else ''}.{label}"
    opener: Any = open_atol if atol else open_device
    device = opener(bench.work / f"lossy-{protocol}{'-verify' if verify else ''}-{label}")
    faults = Faults(seed=LOSSY_SEED)
    outcomes: dict[int, str] = {}
    untyped: list[str] = []
    elapsed = 0.0
    try:
        with (
            tally_logs(),
            _traced(LOSSY_TRACE),
            ServiceThread(
                device,
                faults,
                settings=SOAK_ATOL_DEVICE if atol else SOAK_DEVICE,
                protocol=protocol,
            ) as emulator,
        ):
            url = f"socket://127.0.0.1:{emulator.port}"
            host: Any = SOAK_ATOL_HOST if atol else SOAK_HOST
            with kkt.connect(url, protocol=protocol, settings=host, verify=verify) as register:
                register.open_shift()  # on a clean line: the soak is about the receipts
                faults.configure(
                    drop=rate / 2, corrupt=rate / 2, lose_rate=LOSSY_LOSE_RATE, seed=LOSSY_SEED
                )
                started = time.monotonic()
                for index in range(count):
                    if time.monotonic() - started > LOSSY_SECONDS:
                        problems.append(
                            f"{label}: stopped after {index} of {count} receipts "
                            f"({LOSSY_SECONDS:g} s)"
                        )
                        break
                    total = 10_000 + index
                    log.debug("---- sale %d (%s %s)", total, protocol, label)
                    try:
                        register.sell(_receipt(total))
                        outcomes[total] = "done"
                    except kkt.OutcomeUnknown:
                        outcomes[total] = "unknown"
                    except kkt.KktError:
                        outcomes[total] = "failed"
                    except Exception as error:  # not the driver's own: a bug to report
                        outcomes[total] = "untyped"
                        untyped.append(f"receipt {total}: {describe(error)}")
                    if (index + 1) % 100 == 0:
                        bench.log(f"soak lossy {protocol} {label}: {index + 1}/{count} receipts")
                elapsed = time.monotonic() - started
                faults.clear()
        in_fn, damaged = _receipts_by_sale(device)
        verification = device.verify()
    finally:
        device.close()

    tally = Counter(outcomes.values())
    duplicates = sum(
        len(in_fn.get(total, ())) - 1 for total in outcomes if len(in_fn.get(total, ())) > 1
    )
    lost = [
        total for total, outcome in outcomes.items() if outcome == "done" and not in_fn.get(total)
    ]
    phantom = [
        total for total, outcome in outcomes.items() if outcome == "failed" and in_fn.get(total)
    ]
    foreign = sorted(set(in_fn) - set(outcomes))
    note = f"{count} receipts, {rate:.0%} of bytes damaged, {LOSSY_LOSE_RATE:.0%} answers lost"
    yield Figure(f"{name}.done", tally["done"], "count", note)
    yield Figure(f"{name}.failed", tally["failed"], "count", "failed safely: not in the FN")
    yield Figure(f"{name}.unknown", tally["unknown"], "count", "outcome unknown: at most once")
    unknown_fiscal = sum(
        1 for t, outcome in outcomes.items() if outcome == "unknown" and in_fn.get(t)
    )
    yield Figure(f"{name}.unknown_fiscal", unknown_fiscal, "count", "of those, in the FN")
    yield Figure(f"{name}.duplicates", duplicates, "count", "must be 0")
    yield Figure(f"{name}.lost", len(lost), "count", "done but not in the FN; must be 0")
    yield Figure(f"{name}.failed_but_fiscal", len(phantom), "count", "must be 0")
    yield Figure(f"{name}.untyped_errors", len(untyped), "count", "not kkt.KktError; must be 0")
    # Not a double and not the driver's doing: a closing frame damaged past the XOR checksum
    # and executed (a total, payment or tax sum other than sold).  The driver cannot stop the
    # register executing it; it must not call such a sale done when the answer shows it.
    damaged_done = [sale for sale in damaged if outcomes.get(sale) == "done"]
    yield Figure(f"{name}.damaged_documents", len(damaged), "count", "closings damaged on the line")
    yield Figure(f"{name}.damaged_done", len(damaged_done), "count", "of those, reported done")
    if damaged:
        texts = first_few(list(damaged.values()))
        bench.log(f"soak lossy {protocol} {label}: receipts not as sold: {texts}")
    yield Figure(f"{name}.receipts_per_s", len(outcomes) / elapsed if elapsed else 0.0, "1/s")
    if verify and damaged_done:
        problems.append(f"{label}: damaged receipts reported done: {damaged_done[:10]}")
    if duplicates:
        doubled = [total for total in outcomes if len(in_fn.get(total, ())) > 1]
        problems.append(f"{label}: receipts fiscalized more than once: {doubled[:10]}")
    if lost:
        problems.append(f"{label}: receipts reported done but not in the FN: {lost[:10]}")
    if phantom:
        problems.append(f"{label}: receipts reported failed yet in the FN: {phantom[:10]}")
    if foreign:
        problems.append(f"{label}: the FN holds receipts nobody sold: totals {foreign[:10]}")
    problems += [f"{label}: the driver raised an untyped error: {text}" for text in untyped]
    if not verification.ok:
        problems.append(
            f"{label}: the FN does not verify: {first_few(list(verification.problems))}"
        )
