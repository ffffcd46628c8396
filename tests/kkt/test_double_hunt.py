"""Issue 20's open safety question: how can one `sell()` put two documents in the FN?

The 2 % lossy soak (`kkt bench --soak lossy`) once saw receipt 10280 fiscalized twice and never
again: its line's timing is the wall clock's.  Here the whole stack -- `Register`, `ShtrihDevice`,
`ShtrihSession`, `ShtrihHostLink` on one end, `ShtrihDeviceLink` and the emulated register (its
real FN) on the other -- runs over a simulated line in *virtual* time (`Wire`): every byte's
fate, every timeout and every execution time come from one seed, so a run is repeatable and a
sweep of seeds explores the line's timings the soak only samples.  Each test below scripts one
path by its exact faults.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from kkt.emulator.shtrih import ShtrihRegister, open_device
from kkt.protocols.shtrih.device import ShtrihDeviceLink
from kkt.protocols.shtrih.link import CommandReceived, DeviceSettings, HostSettings
from support.line import LineFaults, SimulatedChannel

import kkt
from kkt.transport.session import ShtrihSession
from kkt.vendors.shtrih import ShtrihDevice

# The soak's timings (tools/bench/soak/common.py: SOAK_HOST, SOAK_DEVICE).
HOST = HostSettings(ack=0.12, byte=0.1, quiet=0.04, probe=0.15, answer=5.0)
DEVICE = DeviceSettings(byte=0.06, confirm=0.15, filler_after_ack=True)
RECEIPT_KIND = 3  # FFD document type of a receipt
START = dt.datetime(2026, 12, 3, 10, 0, 0)  # the virtual clock's origin


# -- the rig: one virtual clock, a line each way, the device's link and the emulated register ---


@dataclass
class Script:
    """Faults at exact places, on top of (or instead of) the random line.

    ``up``/``down``: called with (the bytes one end writes, the count of such writes so far);
    they return the bytes the line delivers.  ``lose``: called with each executed command;
    True forgets its answer (the register's power flickered after the work: its link starts
    afresh, the host's ENQ gets NAK).  ``exec_time``: seconds a command takes.
    """

    up: Callable[[bytes, int], bytes] | None = None
    down: Callable[[bytes, int], bytes] | None = None
    lose: Callable[[bytes], bool] | None = None
    exec_time: Callable[[bytes], float] | None = None


@dataclass
class Wire:
    """The port the driver's session reads and writes, with the device behind it, in virtual
    time: a read that would wait advances the clock to the next thing that happens."""

    register: ShtrihRegister
    rng: random.Random
    faults: LineFaults
    lose_rate: float = 0.0
    script: Script = field(default_factory=Script)
    now: float = 0.0
    timeout: float | None = None
    reads_available = True
    executed: list[bytes] = field(default_factory=list)
    # Commands the register executed that the host never sent: frames damaged past the XOR
    # checksum (two flips in one bit column), as (the payload executed, the host's nearest).
    forged: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    # Of those, the closings the register accepted: (the sale under way, the document formed,
    # where the payload differed from the host's).
    forged_documents: list[tuple[int, int, str]] = field(default_factory=list)
    sale = 0  # the total of the sale under way (set by `soak`)
    trace: list[str] | None = None
    # The host's process descheduled (a loaded machine): before a read, with this probability,
    # the host is away for up to ``host_away`` seconds while the device and the line go on.
    host_stall: float = 0.0
    host_away: float = 0.0
    # A command that takes long (the emulator's worker thread waiting for a CPU, an fsync).
    slow: float = 0.0
    slow_time: float = 0.0

    def __post_init__(self) -> None:
        self.link = ShtrihDeviceLink(DEVICE)
        self.up = SimulatedChannel(random.Random(self.rng.random()), self.faults)
        self.down = SimulatedChannel(random.Random(self.rng.random()), self.faults)
        self._inbox = bytearray()
        self._due: tuple[float, bytes] | None = None
        self._writes_up = self._writes_down = 0
        self._sent: list[bytes] = []  # the payloads of the host's command frames, in order

    # -- the Port protocol the session uses -------------------------------------------------------

    def clock(self) -> float:
        return self.now

    def write(self, data: bytes) -> int:
        self._writes_up += 1
        self._note(">", data)
        if len(data) >= 4 and data[0] == 0x02 and data[1] == len(data) - 3:
            self._sent.append(bytes(data[2:-1]))
        if self.script.up is not None:
            data = self.script.up(bytes(data), self._writes_up)
        self.up.send(data, self.now)
        return len(data)

    @property
    def in_waiting(self) -> int:
        self._run(self.now)
        return len(self._inbox)

    def read(self, size: int = 1) -> bytes:
        if self.host_stall and self.rng.random() < self.host_stall:
            self.now += self.rng.uniform(0.0, self.host_away)
            self._run_until(self.now)
        until = None if self.timeout is None else self.now + self.timeout
        while True:
            self._run(self.now)
            if self._inbox:
                data = bytes(self._inbox[:size])
                del self._inbox[:size]
                return data
            nxt = self._next()
            if nxt is None or (until is not None and nxt > until):
                if until is None:
                    raise AssertionError("the driver waits forever on a silent line")
                self.now = until
                return b""
            self.now = max(self.now, nxt)

    def close(self) -> None:
        pass

    def _run_until(self, end: float) -> None:
        """The device's side goes on alone until ``end`` (the host is away)."""
        while (nxt := self._next()) is not None and nxt <= end:
            self._run(nxt)
        self._run(end)

    # -- the device's side --------------------------------------------------------------------

    def _next(self) -> float | None:
        times = [
            t
            for t in (
                self.up.next_time(),
                self.down.next_time(),
                self.link.get_timer(),
                self._due[0] if self._due else None,
            )
            if t is not None
        ]
        return min(times) if times else None

    def _run(self, now: float) -> None:
        """Everything due by ``now``, on the device's side and on the line to the host."""
        for _ in range(1000):
            progressed = False
            data = self.up.take(now)
            if data:
                progressed = True
                self._device_events(self.link.receive_data(data, now), now)
            timer = self.link.get_timer()
            if timer is not None and timer <= now:
                progressed = True
                self._device_events(self.link.handle_timer(now), now)
            if self._due is not None and self._due[0] <= now:
                progressed = True
                command = self._due[1]
                self._due = None
                answer = self.register.execute(command)
                self.executed.append(command)
                if command not in self._sent[-3:]:
                    nearest = self._sent[-1] if self._sent else None
                    self.forged.append((command, nearest))
                    if command[:2] == b"\xff\x45" and answer[2:3] == b"\x00" and len(answer) >= 12:
                        number = int.from_bytes(answer[8:12], "little")
                        self.forged_documents.append((self.sale, number, _diff(command, nearest)))
                self._note("X", command)
                if (self.script.lose is not None and self.script.lose(command)) or (
                    self.lose_rate and self.rng.random() < self.lose_rate
                ):
                    self._note("L", answer)
                    self.link.power_cycle()
                else:
                    self.link.send_answer(answer, now)
            out = self.link.data_to_send()
            if out:
                progressed = True
                self._writes_down += 1
                self._note("<", out)
                if self.script.down is not None:
                    out = self.script.down(out, self._writes_down)
                self.down.send(out, now)
            got = self.down.take(now)
            if got:
                self._inbox += got
            if not progressed:
                return
        raise AssertionError("the device side does not settle")

    def _device_events(self, events: list[Any], now: float) -> None:
        for event in events:
            if isinstance(event, CommandReceived):
                command = event.command
                if self.script.exec_time is not None:
                    took = self.script.exec_time(command)
                else:
                    took = self.rng.uniform(0.0, 0.004 if command[:1] in b"\x10\x89" else 0.02)
                    if self.slow and self.rng.random() < self.slow:
                        took += self.rng.uniform(0.0, self.slow_time)
                self._due = (now + took, command)

    def _note(self, what: str, data: bytes) -> None:
        if self.trace is not None:
            self.trace.append(f"{self.now * 1000:10.2f} {what} {data.hex(' ')}")


class _Secrets:
    """`secrets` for a new emulated register, from a seed: its serial and its FN's key, and so
    every fiscal sign, are the same in every run."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"secrets {seed}")

    def token_bytes(self, count: int) -> bytes:
        return self._rng.randbytes(count)

    def randbelow(self, limit: int) -> int:
        return self._rng.randrange(limit)


def open_device_repeatably(state: Path, clock: Any, seed: int) -> ShtrihRegister:
    with (
        mock.patch("kkt.emulator.state.secrets", _Secrets(seed)),
        mock.patch("kkt.emulator.fn.model.secrets", _Secrets(seed + 1)),
    ):
        return open_device(state, clock=clock)


class VirtualClock:
    """The emulator's wall clock, driven by the wire's virtual time: the documents' times, and
    so the answers' bytes, are the same in every run of a seed."""

    def __init__(self) -> None:
        self.wire: Wire | None = None
        self._offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        seconds = self.wire.now if self.wire is not None else 0.0
        return (START + dt.timedelta(seconds=int(seconds)) + self._offset).replace(microsecond=0)

    def advance(self, delta: dt.timedelta) -> None:
        self._offset += delta

    def set(self, when: dt.datetime) -> None:
        self._offset += when - self.now()


def connect(wire: Wire) -> kkt.Register:
    session = ShtrihSession(wire, settings=HOST, clock=wire.clock)  # type: ignore[arg-type]
    return kkt.Register(ShtrihDevice(session, password=30))


def receipt_for(total: int, items: int = 1) -> kkt.Receipt:
    if items <= 1:
        lines = (kkt.Item("Товар", total, Decimal(1), kkt.Vat.VAT20),)
    else:
        share = total // items
        prices = [share] * (items - 1) + [total - share * (items - 1)]
        lines = tuple(
            kkt.Item(f"Товар {n}", p, Decimal(1), kkt.Vat.VAT20) for n, p in enumerate(prices)
        )
    return kkt.Receipt(lines, kkt.Payments(cash=total))


def receipts_by_total(register: ShtrihRegister) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for record in register.fn._store.records():
        if record.kind == RECEIPT_KIND:
            found.setdefault(record.total, []).append(record.number)
    return found


@dataclass
class Soak:
    """One run of the lossy soak in virtual time: what each sale reported, what the FN holds."""

    outcomes: dict[int, str]
    in_fn: dict[int, list[int]]
    forged: list[tuple[bytes, bytes | None]]  # `Wire.forged`
    forged_documents: list[tuple[int, int, str]]  # `Wire.forged_documents`

    @property
    def doubled(self) -> list[int]:
        return [t for t in self.outcomes if len(self.in_fn.get(t, ())) > 1]

    @property
    def lost(self) -> list[int]:
        return [t for t, o in self.outcomes.items() if o == "done" and not self.in_fn.get(t)]

    @property
    def phantom(self) -> list[int]:
        return [t for t, o in self.outcomes.items() if o == "failed" and self.in_fn.get(t)]

    @property
    def unexplained(self) -> list[int]:
        """Doubled, lost or phantom sales no forged closing accounts for: the driver's own."""
        forged = {number for _, number, _ in self.forged_documents}
        return [
            total
            for total in self.doubled + self.lost + self.phantom
            if not set(self.in_fn.get(total, ())) & forged
        ]

    def tally(self) -> Counter[str]:
        return Counter(self.outcomes.values())


def soak(
    state: Path,
    seed: int,
    count: int,
    *,
    rate: float = 0.02,
    lose_rate: float = 0.03,
    items: int = 1,
    trace: list[str] | None = None,
    jitter: float = 0.0005,
    stalls: bool = False,
) -> Soak:
    """`kkt bench --soak lossy` in virtual time: ``count`` receipts (totals 10000...), half the
    damaged bytes dropped, half with a bit flipped, ``lose_rate`` answers lost after the work."""
    clock = VirtualClock()
    device = open_device_repeatably(state, clock, seed)
    try:
        wire = Wire(device, random.Random(seed), LineFaults(latency=0.0002), trace=trace)
        clock.wire = wire
        register = connect(wire)
        register.open_shift()  # on a clean line, as the soak does
        faults = LineFaults(drop=rate / 2, corrupt=rate / 2, latency=0.0002, jitter=jitter)
        wire.up._faults = wire.down._faults = faults  # the rig's own line
        wire.lose_rate = lose_rate
        if stalls:  # a loaded machine: both ends now and then late by up to ~0.4 s
            wire.host_stall, wire.host_away, wire.slow, wire.slow_time = 0.02, 0.4, 0.02, 0.4
        outcomes: dict[int, str] = {}
        for index in range(count):
            total = 10_000 + index
            wire.sale = total
            if trace is not None:
                trace.append(f"---- sale {total}")
            try:
                register.sell(receipt_for(total, items))
                outcomes[total] = "done"
            except kkt.OutcomeUnknown:
                outcomes[total] = "unknown"
            except kkt.KktError:
                outcomes[total] = "failed"
        return Soak(outcomes, receipts_by_total(device), wire.forged, wire.forged_documents)
    finally:
        device.close()


# -- path: the closing command damaged past the checksum (REPRODUCED) ----------------------------

ROUNDING = 2 + 4 + 16 * 5  # FF45's rounding byte: after the code, the password, 16 payments


def damage_once(code: bytes, flips: dict[int, int]) -> Callable[[bytes, int], bytes]:
    """A ``Script.up`` that damages the first frame of command ``code`` the host writes: each
    payload byte ``index`` XOR ``mask``, and the frame's LRC by the XOR of the masks -- so the
    checksum still agrees (two flips in one bit column), as the line does now and then."""
    done: list[bool] = []

    def up(data: bytes, _count: int) -> bytes:
        if done or len(data) < 4 or data[0] != 0x02 or data[2 : 2 + len(code)] != code:
            return data
        done.append(True)
        damaged = bytearray(data)
        column = 0
        for index, mask in flips.items():
            damaged[2 + index] ^= mask
            column ^= mask
        damaged[-1] ^= column
        return bytes(damaged)

    return up


@pytest.fixture
def clean(tmp_path: Path) -> Iterator[tuple[Wire, kkt.Register]]:
    """The rig on a clean line, commands executing in 1 ms; the test scripts its damage."""
    clock = VirtualClock()
    device = open_device_repeatably(tmp_path / "state", clock, 0)
    try:
        wire = Wire(device, random.Random(0), LineFaults(latency=0.0002))
        wire.script.exec_time = lambda _command: 0.001
        clock.wire = wire
        register = connect(wire)
        register.open_shift()
        yield wire, register
    finally:
        device.close()


@pytest.mark.xfail(
    strict=True,
    reason="physics of the XOR checksum: FF45 damaged in its rounding byte closes our receipt "
    "with an earlier sale's total (the soak's 'double')",
)
def test_closing_frame_damaged_in_its_rounding_byte_fiscalizes_an_earlier_total(
    clean: tuple[Wire, kkt.Register],
) -> None:
    """THE SOAK'S DOUBLE, reproduced (sweep: seeds 30 and 59 of this rig at 2 %; seed 30's sale
    10224 closed as total 10216).  FF45 is a 120-byte frame; two flips in one bit column pass
    Shtrih's XOR checksum, and at 2 % damaged bytes about one accepted FF45 in twelve is such a
    forgery.  When one of the two flips hits the rounding byte (payload byte 86, "rounding up
    to 99 kopecks"), the register closes OUR receipt with ``due = total - 2**bit`` and gives the
    difference back as change: the FN holds sale T's receipt with total T - 2**bit -- exactly
    an earlier sale's total in the soak (totals 10000 + index), which it counts as that sale
    doubled.  No sell() closed twice; one closed wrong.  The driver notices (the change is not
    0, the record's total is not ours) and says `OutcomeUnknown` -- blaming "another program".
    Nothing in the frame can be checked by the register, so it cannot be prevented on this
    line; what it must never do is let a retry sell it again (next test)."""
    wire, register = clean
    register.sell(receipt_for(10_000))
    wire.script.up = damage_once(b"\xff\x45", {ROUNDING: 0x08, ROUNDING + 28: 0x08})
    with pytest.raises(kkt.OutcomeUnknown):
        register.sell(receipt_for(10_008))
    fiscal = receipts_by_total(wire.register)
    assert len(fiscal[10_000]) == 1, f"total 10000 in the FN twice: {fiscal}"  # fails: [3, 4]


def test_key_retry_after_a_closing_damaged_in_its_rounding_sells_it_twice(
    clean: tuple[Wire, kkt.Register], tmp_path: Path
) -> None:
    """A TRUE DOUBLE that follows from the one above.  The sale carries an idempotency key; its
    FF45 is damaged past the checksum in the rounding byte, so the FN forms the receipt (our
    items, total 10000 instead of 10008) and the sale ends `OutcomeUnknown`, the key pending.
    The caller does what the driver asks: repeats the call with the same key.
    `settle_pending` -> `find_formed` looks for a document after ``before`` with total 10008,
    finds none (ours reads 10000), returns None -- and `Register.receipt` cancels and sells it
    AGAIN: two fiscal documents for one sale.  Root cause: `kkt.settle.find_formed` (and
    `_may_be`) identify our receipt by operation and total; a closing command damaged on the
    line changes the total but not the items.  Fix (kkt/settle.py, MK3's file): a receipt after
    ``before`` whose total is not ours but whose items are (its fingerprint) is ours, fiscal
    with a damaged total: `OutcomeUnknown` naming it, never "not found"."""
    wire, register = clean
    register.journal = kkt.journal.Journal(tmp_path / "journal")
    try:
        register.sell(receipt_for(10_000), key="a")
        wire.script.up = damage_once(b"\xff\x45", {ROUNDING: 0x08, ROUNDING + 28: 0x08})
        with pytest.raises(kkt.OutcomeUnknown):
            register.sell(receipt_for(10_008), key="b")
        with contextlib.suppress(kkt.OutcomeUnknown):  # what a fixed driver says
            register.sell(receipt_for(10_008), key="b")  # the retry the driver asks for
    finally:
        register.journal.close()
    fiscal = receipts_by_total(wire.register)
    # Sale b is document 4 already (its items, total 10000); sold again it is document 5 too.
    assert fiscal.get(10_008) is None, f"sale b fiscalized twice: {fiscal}"


# -- beside the double: a damaged closing reported done -------------------------------------------

PAYMENTS, TAXES = 2 + 4, 2 + 4 + 16 * 5 + 1  # FF45's payments (16 x 5 bytes), tax sums (6 x 5)


def fn_receipt(wire: Wire, number: int) -> Any:
    """The FN's record of document ``number``."""
    return next(r for r in wire.register.fn._store.records() if r.number == number)


def test_closing_damaged_in_a_payment_is_reported_done(clean: tuple[Wire, kkt.Register]) -> None:
    """Sweep figure: of the closings executed damaged past the checksum, 96 % are reported
    done (12 seeds x 1,000 receipts at 1 %: 76 forged closings formed a document, 72 "done").
    Here the electronic payment (0) becomes 8 kopecks: the register takes 8 kopecks as paid
    electronically and gives 8 back from the cash -- the FN's document says cash 9992 and
    electronic 8 for a sale paid 10000 in cash.  The answer shows it (change 8 where the
    receipt expects 0); `_from_answer` rightly refuses it, but `_result` then checks only the
    record's number, sign, operation and total, and says done.  Fix (kkt/settle.py): a
    `Closed` answer whose ``change`` is not ``payments.total - total`` means the command
    executed was not the one sent -- `OutcomeUnknown` ("IS fiscal as document N, with the
    payments damaged on the line: check and correct it"), never done."""
    wire, register = clean
    register.sell(receipt_for(9_000))
    wire.script.up = damage_once(CLOSE, {PAYMENTS + 5: 0x08})  # slot 2 (electronic), low byte
    try:
        sold = register.sell(receipt_for(10_000))
    except kkt.OutcomeUnknown:
        return  # what a fixed driver says
    record = fn_receipt(wire, sold.document_number)
    assert record.payments == kkt.Payments(cash=10_000), f"done, yet the FN holds {record}"


@pytest.mark.xfail(
    strict=True,
    reason="physics of the XOR checksum: FF45's tax sums damaged past it are not in its answer; "
    "only reading the document back sees them -- connect(..., verify=True), test_verify.py",
)
def test_closing_damaged_in_a_tax_sum_is_reported_done(clean: tuple[Wire, kkt.Register]) -> None:
    """The same with a tax sum (FF45 sends six zeros: "the register computes them"): one
    becomes nonzero, the register takes the command's sums, and the FN's document carries
    VAT 10 % = 1 kopeck instead of VAT 20 % = 1667 kopecks.  The answer
    (change, number, sign, time) is exactly the undamaged one, so nothing short of reading the
    document's tags 1102-1107 back can tell -- the read-back issue 20 removed, which did not
    compare them either."""
    wire, register = clean
    register.sell(receipt_for(9_000))
    wire.script.up = damage_once(CLOSE, {TAXES + 5: 0x01})  # vat10's low byte
    sold = register.sell(receipt_for(10_000))
    record = fn_receipt(wire, sold.document_number)
    assert record.vat.vat10 == 0, f"done, yet the FN holds {record.vat}"


# -- paths ruled out: each scripted, each ends with the sale in the FN once ----------------------

CLOSE, ITEM, OPEN = b"\xff\x45", b"\xff\x46", b"\x8d"


def once(test: Callable[[bytes], bool]) -> Callable[[bytes], bool]:
    """True for the first command ``test`` accepts, False ever after."""
    hit: list[bool] = []

    def check(command: bytes) -> bool:
        if hit or not test(command):
            return False
        hit.append(True)
        return True

    return check


def drop_ack_to(code: bytes) -> Callable[[bytes, int], bytes]:
    """A ``Script.down`` that loses the device's ACK to the first frame of ``code`` (the
    device ACKs a frame in the write right after taking it; the rig sees its payload go by)."""
    state = {"armed": False, "done": False}

    def watch_up(data: bytes, _count: int) -> bytes:
        if not state["done"] and data[:1] == b"\x02" and data[2 : 2 + len(code)] == code:
            state["armed"] = True
        return data

    def down(data: bytes, _count: int) -> bytes:
        if state["armed"] and data[:1] == b"\x06":
            state["armed"], state["done"] = False, True
            return data[1:]
        return data

    down.watch_up = watch_up  # type: ignore[attr-defined]
    return down


def sold_once(
    wire: Wire, register: kkt.Register, total: int, arm: Callable[[], None] = lambda: None
) -> str:
    """Sell ``total`` -- after a clean sale, so numbers are carried, and ``arm()`` (the faults)
    -- and return its outcome, having checked that the FN holds it at most once, once when it
    says done, and not when it says failed."""
    register.sell(receipt_for(total - 1_000))
    arm()
    try:
        register.sell(receipt_for(total))
        outcome = "done"
    except kkt.OutcomeUnknown:
        outcome = "unknown"
    except kkt.KktError:
        outcome = "failed"
    held = receipts_by_total(wire.register).get(total, [])
    assert len(held) <= 1, f"sale {total} in the FN {len(held)} times"
    assert (outcome == "done") <= (len(held) == 1), f"{outcome}, in the FN {len(held)} times"
    assert (outcome == "failed") <= (not held), "failed, yet fiscal"
    return outcome


@pytest.mark.parametrize("code", [OPEN, ITEM, CLOSE], ids=["8Dh", "FF46", "FF45"])
@pytest.mark.parametrize("ack_lost", [False, True], ids=["acked", "ack-lost"])
def test_answer_lost_after_execution(
    clean: tuple[Wire, kkt.Register], code: bytes, ack_lost: bool
) -> None:
    """Path g (the emulator's "lose the answer after execution" with the ENQ guard): the
    register runs the command and forgets its answer; the host's ENQ gets NAK.  With the ACK
    to the frame seen the link says `AnswerLost` (maybe executed); with it lost too the link
    says `NotDelivered` -- "not executed", wrongly.  Neither resends (money-moving commands go
    with ``resend=False``): 8Dh and FF46 are judged by the open receipt (`_open_once`,
    `_add_once`), FF45 by the FN (`settle_receipt`).  Ruled out: the sale is done, once."""
    wire, register = clean
    lost: list[bytes] = []

    def arm() -> None:
        first = once(lambda command: command.startswith(code))
        wire.script.lose = lambda command: first(command) and not lost.append(command)
        if ack_lost:
            down = drop_ack_to(code)
            wire.script.down = down
            wire.script.up = down.watch_up  # type: ignore[attr-defined]

    assert sold_once(wire, register, 10_000, arm) == "done"
    assert lost, "the answer was lost"
    assert sum(command.startswith(code) for command in wire.executed) == 2  # 9000's and ours


def test_closing_answer_damaged_into_a_refusal(clean: tuple[Wire, kkt.Register]) -> None:
    """Path b: FF45's answer damaged past the checksum into a refusal (its error byte and the
    LRC flipped in one bit column).  The driver takes it for "refused" -- but asks the FN
    whether it moved before calling it not fiscal (`formed_since`), and settles.  Ruled out."""
    wire, register = clean
    damaged: list[bool] = []

    def down(data: bytes, _count: int) -> bytes:
        if not damaged and data[:1] == b"\x02" and data[2:5] == b"\xff\x45\x00" and len(data) > 8:
            damaged.append(True)
            out = bytearray(data)
            out[4] ^= 0x01  # error 00 -> 01
            out[-1] ^= 0x01  # the LRC agrees
            return bytes(out)
        return data

    assert sold_once(wire, register, 10_000, lambda: setattr(wire.script, "down", down)) == "done"
    assert damaged


def test_held_answer_nak_turned_into_enq(clean: tuple[Wire, kkt.Register]) -> None:
    """Paths e/f: the host NAKs FF45's first copy to have it again by a bare ENQ; one flipped
    bit makes that NAK (15h) an ENQ (05h), so the device sends the answer twice before the
    host asks, and the extra ACK and copy arrive later -- in the next sale's first exchange.
    A stale ACK taken for the next frame's is what the stale-answer rule must survive (the
    foreign answer then reads `OutcomeUnknown`, and the open receipt decides).  Ruled out."""
    wire, register = clean
    flipped: list[bool] = []
    closing = {"seen": False}

    def up(data: bytes, _count: int) -> bytes:
        if data[:1] == b"\x02" and data[2:4] == CLOSE:
            closing["seen"] = True
        elif closing["seen"] and not flipped and data[:1] == b"\x15":
            # (the host writes the copy's ENQ with that NAK: "15 05" becomes "05 05")
            flipped.append(True)
            return b"\x05" + data[1:]
        return data

    assert sold_once(wire, register, 10_000, lambda: setattr(wire.script, "up", up)) == "done"
    assert flipped
    assert sold_once(wire, register, 12_000) == "done"  # its first exchange meets the copy


# -- the sweep that looks for doubles -----------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_virtual_soak_invariants(tmp_path: Path, seed: int) -> None:
    """A short 2 % soak in virtual time: nothing lost, and every sale in the FN twice (or in it
    though reported failed) is explained by a closing the register executed damaged past the
    checksum -- not by the driver closing twice.  (`_sweep` runs many seeds.)"""
    run = soak(tmp_path / "state", seed, 40)
    assert run.lost == []
    assert run.unexplained == []


def _sweep(
    first: int, last: int, count: int, items: int, stalls: bool = False, rate: float = 0.02
) -> None:
    """Print one line per seed: the outcomes, doubled/lost/phantom sales, the unexplained ones
    and the forged closings.  Run it from the repository, importing `kkt` before ``tests`` joins
    the path (tests/kkt would shadow the package)::

        import importlib.util, sys, kkt
        sys.path.append("tests")
        spec = importlib.util.spec_from_file_location("hunt", "tests/kkt/test_double_hunt.py")
        hunt = importlib.util.module_from_spec(spec); sys.modules["hunt"] = hunt
        spec.loader.exec_module(hunt); hunt._sweep(1, 100, 300, 1)
    """
    import tempfile

    for seed in range(first, last + 1):
        with tempfile.TemporaryDirectory() as tmp:
            run = soak(Path(tmp) / "state", seed, count, items=items, stalls=stalls, rate=rate)
        bad = (run.doubled, run.lost, run.phantom)
        unexplained = run.unexplained
        closed = [
            f"{sale}:{run.outcomes.get(sale)}:doc{n}@{d}" for sale, n, d in run.forged_documents
        ]
        print(
            seed,
            dict(run.tally()),
            "doubled",
            bad[0],
            "lost",
            bad[1],
            "phantom",
            bad[2],
            "UNEXPLAINED",
            unexplained,
            "forged",
            len(run.forged),
            "forged-closings",
            closed,
            flush=True,
        )


def _diff(executed: bytes, sent: bytes | None) -> str:
    """Where an executed payload differs from the host's: "86:00>08,114:00>08"."""
    if sent is None or len(sent) != len(executed):
        return "len"
    return ",".join(
        f"{i}:{a:02x}>{b:02x}"
        for i, (a, b) in enumerate(zip(sent, executed, strict=True))
        if a != b
    )


def test_the_lossy_soak_writes_a_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`LOSSY_TRACE`: the real soak's driver trace (every byte, a line per sale) in a file."""
    from kkt.tools.bench import Bench
    from kkt.tools.bench.soak import lossy

    trace = tmp_path / "trace.log"
    monkeypatch.setattr(lossy, "LOSSY_QUICK", ((0.01, 2),))
    monkeypatch.setattr(lossy, "LOSSY_TRACE", trace)
    figures = {
        f.case: f.value for f in lossy.lossy(Bench(quick=True, work=tmp_path, cache=tmp_path))
    }
    assert figures["soak.lossy.1pct.damaged_documents"] == 0
    text = trace.read_text(encoding="utf-8")
    assert "---- sale 10000 (shtrih 1pct)" in text and "---- sale 10001" in text
    assert " -> 02 " in text  # a command frame as written
