"""The ``fuzz`` soak: for a fixed time, garbage and mutated frames are thrown at the emulator over
TCP (it must keep answering and its FN must verify), and a fake register answers the driver with
garbage and mutated frames (every call must end within its bound with a `kkt.KktError`).

One module for both halves, near 700 lines: they share the seeded `_Mutator` and the fuzz's
budget and seed, and neither half is a soak on its own."""

from __future__ import annotations

import math
import random
import select
import socket
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import ShtrihRegister, open_device
from kkt.protocols.errors import FrameError
from kkt.protocols.shtrih import classic, fn
from kkt.protocols.shtrih.device import ShtrihDeviceLink
from kkt.protocols.shtrih.frame import ACK, ENQ, FILLER, NAK, STX, code_bytes, encode_frame
from kkt.protocols.shtrih.link import CommandReceived, DeviceSettings, Event, HostSettings
from kkt.protocols.shtrih.message import request_types
from kkt.protocols.shtrih.modes import OperationType, ReceiptType, TaxRate, TaxSystem

import kkt
from kkt import Operation, Register
from kkt.journal import Journal
from kkt.transport.session import ShtrihSession
from kkt.vendors.shtrih import ShtrihDevice

from .. import Bench, Figure, case
from .common import SOAK_DEVICE, counts, describe, fail_if, first_few, receipt_for, tally_logs

# -- sizes and timings (module constants: tests shrink them) -------------------------------------

FUZZ_SECONDS_QUICK = 10.0  # the whole fuzz budget: half on the emulator, half on the driver
FUZZ_SECONDS_FULL = 60.0
FUZZ_LIVENESS_SECONDS = 1.0  # how often the emulator must prove it still answers
FUZZ_EXCHANGES_PER_CALL = 1000  # a driver call that needs more exchanges than this hangs
FUZZ_CALL_SECONDS = 30.0  # ... as does one that takes this long in real time
FUZZ_SEED = 54
PROBE_HOST = HostSettings(ack=0.5, byte=0.3, quiet=0.05, probe=0.3, answer=10.0)

PASSWORD = 30


_PASSWORD_BYTES = PASSWORD.to_bytes(4, "little")
_CONTROLS = (STX, ENQ, ACK, NAK, FILLER)


def _known_codes() -> list[bytes]:
    return [code_bytes(code) for code in sorted(request_types())]


def _valid_requests() -> list[bytes]:
    """Well-formed commands to mutate (and to send as they are, so the fuzz reaches the FN)."""
    requests: list[Any] = [
        classic.GetDeviceType(),
        classic.GetShortStatus(PASSWORD),
        classic.GetLongStatus(PASSWORD),
        classic.ReadTable(PASSWORD, 18, 1, 1),
        classic.OpenReceipt(PASSWORD, ReceiptType.SALE),
        classic.Subtotal(PASSWORD),
        classic.CancelReceipt(PASSWORD),
        fn.GetFnStatus(PASSWORD),
        fn.GetShiftParams(PASSWORD),
        fn.FindDocument(PASSWORD, 1),
        fn.RequestDocumentTlv(PASSWORD, 1),
        fn.ReadDocumentTlv(PASSWORD),
        fn.BeginOpenShift(PASSWORD),
        fn.FnOpenShift(PASSWORD),
        fn.OperationV2(
            PASSWORD,
            OperationType.INCOME,
            Decimal(1),
            100,
            None,
            None,
            TaxRate.VAT20,
            1,
            4,
            1,
            "Товар",
        ),
        fn.CloseReceiptV2(PASSWORD, (100,) + (0,) * 15, 0, (0,) * 6, TaxSystem.OSN, ""),
    ]
    return [request.encode() for request in requests]


class _Mutator:
    """Seeded garbage and damaged frames: bit flips, truncations, wrong LRC, bogus lengths,
    stray control bytes, random command codes with random parameters."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.codes = _known_codes()
        self.valid = _valid_requests()

    def garbage(self, low: int, high: int) -> bytes:
        return self.rng.randbytes(self.rng.randint(low, high))

    def payload(self) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.35:
            return rng.choice(self.valid)
        if roll < 0.7:  # a known command with the right password and random parameters
            password = _PASSWORD_BYTES if rng.random() < 0.8 else b""
            return (rng.choice(self.codes) + password + self.garbage(0, 60))[:255]
        if roll < 0.85:  # any code at all
            code = bytes((0xFF, rng.randrange(256))) if rng.random() < 0.5 else self.garbage(1, 1)
            return (code + self.garbage(0, 60))[:255]
        return self.garbage(1, 255)

    def mutate(self, data: bytes) -> bytes:
        """One random damage to ``data`` (a frame, or any bytes)."""
        rng = self.rng
        if len(data) < 2:
            return data + self.garbage(0, 4)
        out = bytearray(data)
        kind = rng.randrange(8)
        if kind == 0:  # bit flips
            for _ in range(rng.randint(1, 3)):
                out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        elif kind == 1:  # cut short
            del out[rng.randrange(1, len(out)) :]
        elif kind == 2:  # wrong LRC
            out[-1] ^= rng.randint(1, 255)
        elif kind == 3:  # a bogus length byte
            out[1] = rng.choice((0, 1, 2, 255, max(0, len(out) - 4), min(255, len(out) - 2)))
        elif kind == 4:  # a control byte in the middle
            out.insert(rng.randrange(len(out)), rng.choice(_CONTROLS))
        elif kind == 5:  # a slice sent twice
            start = rng.randrange(len(out))
            out[start:start] = out[start : start + rng.randint(1, 8)]
        elif kind == 6:  # trailing garbage
            out += self.garbage(1, 40)
        else:  # garbage in the middle
            position = rng.randrange(1, len(out))
            out[position:position] = self.garbage(1, 20)
        return bytes(out)

    def chunk(self) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.3:
            return encode_frame(self.payload())
        if roll < 0.65:
            return self.mutate(encode_frame(self.payload()))
        if roll < 0.8:
            return self.garbage(1, 300)
        if roll < 0.92:
            return bytes(rng.choice(_CONTROLS) for _ in range(rng.randint(1, 12)))
        return bytes((STX,)) + self.garbage(0, 3)  # a frame that never finishes

    def input(self) -> bytes:
        return b"".join(self.chunk() for _ in range(self.rng.choice((1, 1, 1, 2, 3))))


class _EmulatorTarget:
    """Raw TCP connections to the emulator that carry fuzz inputs; a connection lives for a
    random number of inputs, and the emulator's replies are read (and sometimes ACKed)."""

    def __init__(self, port: int, rng: random.Random) -> None:
        self.port = port
        self.rng = rng
        self.connection: socket.socket | None = None
        self.left = 0
        self.inputs = 0
        self.dropped = 0  # connections the emulator closed on us

    def deliver(self, data: bytes) -> None:
        if self.connection is None or self.left <= 0:
            self.close()
            self.connection = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            self.left = self.rng.randint(1, 10)
        self.left -= 1
        self.inputs += 1
        try:
            self.connection.sendall(data)
            self._drain(self.connection)
        except OSError:
            self.dropped += 1
            self.close()

    def _drain(self, connection: socket.socket) -> None:
        deadline = time.monotonic() + 0.05
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([connection], [], [], min(0.004, remaining))
            if not ready:
                return
            reply = connection.recv(65536)
            if not reply:
                raise ConnectionResetError("the emulator closed the connection")
            if STX in reply and self.rng.random() < 0.5:
                connection.sendall(bytes((ACK,)))

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _unanswered(url: str) -> str | None:
    """None when the register at ``url`` answers a device-type query (no password needed, so
    whatever the fuzz wrote into its tables), else what went wrong."""
    try:
        with kkt.connect(url, settings=PROBE_HOST) as register:
            register.raw(classic.GetDeviceType())
        return None
    except kkt.KktError as error:
        return describe(error)


def _hypothesis_inputs(
    deliver: Callable[[bytes], None], until: float, seed: int, scratch: Path
) -> int:
    """Hypothesis-generated inputs until ``until``, in rounds of examples; 0 when hypothesis
    is not installed (it is a test dependency, not the package's)."""
    first_use = "hypothesis" not in sys.modules  # not inside a test run that configured it
    try:
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import seed as fixed_seed
        from hypothesis import strategies as st
    except ImportError:
        return 0
    if first_use:
        # Hypothesis keeps caches in ./.hypothesis: keep `kkt bench` out of the user's directory.
        from hypothesis.configuration import set_hypothesis_home_dir

        set_hypothesis_home_dir(scratch / "hypothesis")
    payloads = st.one_of(
        st.sampled_from(_valid_requests()),
        st.builds(
            lambda code, body: (code + _PASSWORD_BYTES + body)[:255],
            st.sampled_from(_known_codes()),
            st.binary(max_size=64),
        ),
        st.binary(min_size=1, max_size=255),
    )
    frames = payloads.map(encode_frame)

    def damage(frame: bytes, where: int, value: int) -> bytes:
        out = bytearray(frame)
        out[where % len(out)] = value
        return bytes(out)

    chunks = st.one_of(
        frames,
        st.builds(damage, frames, st.integers(0, 300), st.integers(0, 255)),
        st.builds(lambda frame, cut: frame[: 1 + cut % len(frame)], frames, st.integers(0, 300)),
        st.builds(lambda frame: frame[:-1] + bytes((frame[-1] ^ 0xA5,)), frames),
        st.binary(min_size=1, max_size=300),
        st.lists(st.sampled_from(_CONTROLS), min_size=1, max_size=16).map(bytes),
    )
    count = 0

    def one(data: bytes) -> None:
        nonlocal count
        if time.monotonic() < until:
            deliver(data)
            count += 1

    rounds = 0
    while time.monotonic() < until:
        run = settings(
            max_examples=100,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(given(st.lists(chunks, min_size=1, max_size=3).map(b"".join))(one))
        fixed_seed(seed + rounds)(run)()
        rounds += 1
    return count


def _fuzz_emulator(
    bench: Bench, seconds: float, problems: list[str], *, min_inputs: int = 0
) -> Iterator[Figure]:
    """Garbled frames at the emulator for ``seconds`` -- and at least ``min_inputs`` of them, so
    a short run on a loaded machine (the suite's) still sends some instead of finding its time
    gone."""
    device = open_device(bench.work / "fuzz-emulator")
    rng = random.Random(FUZZ_SEED)
    unanswered: list[str] = []
    executed: Counter[str] = Counter()  # what reached the register's command handlers
    execute = device.execute

    def counted(payload: bytes) -> bytes:
        answer = execute(payload)
        error = answer[2:3] if answer[:1] == b"\xff" else answer[1:2]
        executed["done" if error == b"\x00" else "refused"] += 1
        return answer

    device.execute = counted  # type: ignore[method-assign]
    try:
        with (
            tally_logs() as logs,
            ServiceThread(device, Faults(), settings=SOAK_DEVICE) as emulator,
        ):
            url = f"socket://127.0.0.1:{emulator.port}"
            with kkt.connect(url) as register:
                register.open_shift()  # so receipts can get far
            target = _EmulatorTarget(emulator.port, rng)
            started = time.monotonic()
            next_check = started + FUZZ_LIVENESS_SECONDS

            def deliver(data: bytes) -> None:
                nonlocal next_check
                target.deliver(data)
                if time.monotonic() >= next_check:
                    failure = _unanswered(url)
                    if failure is not None:
                        unanswered.append(f"after {target.inputs} inputs: {failure}")
                    next_check = time.monotonic() + FUZZ_LIVENESS_SECONDS

            try:
                generated = _hypothesis_inputs(
                    deliver, started + seconds / 2, FUZZ_SEED, bench.work
                )
                mutator = _Mutator(rng)
                while time.monotonic() < started + seconds or target.inputs < min_inputs:
                    deliver(mutator.input())
            finally:
                target.close()
            failure = _unanswered(url)
            if failure is not None:
                unanswered.append(f"at the end: {failure}")
        verification = device.verify()
    finally:
        device.close()
    yield Figure(
        "soak.fuzz.emulator.inputs",
        target.inputs,
        "count",
        f"{generated} from hypothesis, the rest mutated; {seconds:g} s",
    )
    yield Figure(
        "soak.fuzz.emulator.commands",
        executed.total(),
        "count",
        f"frames that reached the register: {executed['done']} done, {executed['refused']} refused",
    )
    yield Figure("soak.fuzz.emulator.unanswered", len(unanswered), "count", "must be 0")
    yield Figure(
        "soak.fuzz.emulator.internal_errors",
        logs.error_count,
        "count",
        "errors the emulator logged (answered 39h or dropped a link); must be 0",
    )
    yield Figure(
        "soak.fuzz.emulator.links_dropped", target.dropped, "count", "connections it closed on us"
    )
    problems += [f"the emulator stopped answering {text}" for text in unanswered]
    problems += [f"the emulator logged an error: {text}" for text in logs.errors]
    if not verification.ok:
        problems.append(
            f"the FN does not verify after the fuzz: {first_few(list(verification.problems))}"
        )


class _Hang(BaseException):
    """A driver call outlived its bound.  Raised from the fake line's I/O; a BaseException, so
    no ``except Exception`` in the driver can swallow it."""


# How the fake register behaves during one call, with weights.
_PERSONALITIES = {
    "honest": 15,  # the emulator's own answers
    "mixed": 35,  # mostly honest; some answers random or mutated; some bytes damaged
    "mutated": 15,  # every answer mutated, bytes damaged
    "random": 10,  # every answer random (often the right code with random data)
    "silent": 5,  # takes commands, never answers
    "babble": 6,  # ignores the protocol: random bytes back for whatever is written
    "chatter": 4,  # random bytes without end
    "flaky": 10,  # honest, but the port fails now and then (OSError)
}


class _FakeRegisterLine:
    """A port whose far end is a fake register, in virtual time: waiting costs nothing, so a
    timeout of seconds passes at once and thousands of calls fit in a few seconds.

    Commands are executed by an in-process emulated register (so sales get far); what goes back
    depends on the call's personality.  Every read and write checks the bounds: an exchange
    past its hard bound (`HostSettings.exchange_limit`) or a call past its real-time limit is a
    hang (`_Hang`).
    """

    BYTE_TIME = 87e-6  # 115200 baud

    def __init__(self, device: ShtrihRegister, rng: random.Random) -> None:
        self.device = device
        self.rng = rng
        self.mutator = _Mutator(rng)
        self.timeout: float | None = 0.0
        self.now = 0.0
        self.personality = "honest"
        self.out = bytearray()
        self.link = ShtrihDeviceLink(DeviceSettings(byte=0.05, confirm=0.2))
        self.exchange_deadline = math.inf  # virtual
        self.call_deadline = math.inf  # real
        self.exchanges = 0
        self.abort = False

    # -- the port ---------------------------------------------------------------------------------

    @property
    def in_waiting(self) -> int:
        return len(self.out)

    def write(self, data: bytes, /) -> int:
        self._check()
        self._maybe_fail()
        self.now += len(data) * self.BYTE_TIME
        if self.personality == "babble":
            if self.rng.random() < 0.7:
                self.out += self.mutator.chunk()
        else:
            self._handle(self.link.receive_data(bytes(data), self.now))
        return len(data)

    def read(self, size: int = 1, /) -> bytes:
        self._check()
        self._maybe_fail()
        if self.personality == "chatter":
            self.now += 0.01
            return self.mutator.garbage(1, 16)
        if not self.out:
            self._wait()
        chunk = bytes(self.out[:size])
        del self.out[:size]
        self.now += len(chunk) * self.BYTE_TIME
        return chunk

    def close(self) -> None:
        pass

    def reopen(self) -> _FakeRegisterLine:
        """A new connection: the far end starts afresh."""
        self.link = ShtrihDeviceLink(DeviceSettings(byte=0.05, confirm=0.2))
        self.out.clear()
        return self

    def clock(self) -> float:
        return self.now

    # -- calls ------------------------------------------------------------------------------------

    def begin_call(self, personality: str) -> None:
        self.personality = personality
        self.exchanges = 0
        self.call_deadline = time.monotonic() + FUZZ_CALL_SECONDS
        if self.link.executing:  # a silent register "reboots" between calls
            self.link.power_cycle()

    # -- internals --------------------------------------------------------------------------------

    def _check(self) -> None:
        if self.abort:
            raise _Hang("stopped by the watchdog")
        if self.now > self.exchange_deadline:
            raise _Hang(
                f"an exchange ran {self.now - self.exchange_deadline:.1f} s past its hard bound"
            )
        if time.monotonic() > self.call_deadline:
            raise _Hang(f"a call ran for more than {FUZZ_CALL_SECONDS:g} s of real time")

    def _maybe_fail(self) -> None:
        if self.personality == "flaky" and self.rng.random() < 0.03:
            raise OSError("fuzz: the port failed")

    def _wait(self) -> None:
        """Nothing to read: let virtual time run to the far end's next timer or the timeout."""
        limit = None if self.timeout is None else self.now + self.timeout
        due = self.link.get_timer()
        if due is not None and (limit is None or due <= limit):
            self.now = max(self.now, due)
            self._handle(self.link.handle_timer(self.now))
        elif limit is None:
            raise _Hang("the driver waits without a timeout on a line that sends nothing")
        else:
            self.now = limit

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, CommandReceived):
                answer = self._answer(event.command)
                if answer is not None:
                    try:
                        self.link.send_answer(answer, self.now)
                    except FrameError:
                        self.link.power_cycle()
        data = self.link.data_to_send()
        if data:
            damaged = self.personality in ("mixed", "mutated") and self.rng.random() < 0.25
            self.out += self.mutator.mutate(data) if damaged else data
        if self.personality == "mixed" and self.rng.random() < 0.02:
            self.out += encode_frame(self.mutator.payload())  # a frame nobody asked for

    def _answer(self, command: bytes) -> bytes | None:
        honest = self.device.execute(command)
        personality, roll = self.personality, self.rng.random()
        if personality in ("honest", "flaky") or (personality == "mixed" and roll < 0.6):
            return honest
        if personality == "silent":
            return None
        if personality == "random" or (personality == "mixed" and roll < 0.8):
            return self._random_answer(command)
        return self._mutated_answer(honest)

    def _random_answer(self, command: bytes) -> bytes:
        rng = self.rng
        code = command[:2] if command[:1] == b"\xff" else command[:1]
        roll = rng.random()
        if roll < 0.5:
            return code + b"\x00" + self.mutator.garbage(0, 60)  # "done", with nonsense
        if roll < 0.7:
            return code + bytes((rng.randrange(256),))  # any error code
        if roll < 0.85:
            return rng.choice(self.mutator.codes) + self.mutator.garbage(0, 60)
        return self.mutator.garbage(1, 255)

    def _mutated_answer(self, honest: bytes) -> bytes:
        rng = self.rng
        out = bytearray(honest)
        kind = rng.randrange(5)
        if kind == 0:
            for _ in range(rng.randint(1, 3)):
                out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del out[rng.randint(1, len(out)) :]
        elif kind == 2:
            out += self.mutator.garbage(1, 40)
        elif kind == 3:
            out[rng.randrange(len(out))] = rng.randrange(256)
        else:
            error_at = 2 if out[:1] == b"\xff" else 1
            if len(out) > error_at:
                out[error_at] = rng.randrange(256)
        return bytes(out[:255]) or b"\x00"


class _BoundedCommander:
    """The session under test, with each exchange's hard bound armed on the fake line."""

    def __init__(
        self, session: ShtrihSession, line: _FakeRegisterLine, settings: HostSettings
    ) -> None:
        self.session = session
        self.line = line
        self.settings = settings

    asks_ahead = True  # the session's `sync_after`, passed on

    def exchange(
        self,
        payload: bytes,
        *,
        answer_timeout: float,
        resend: bool = True,
        sync_after: bool = False,
    ) -> bytes:
        line = self.line
        line.exchanges += 1
        if line.exchanges > FUZZ_EXCHANGES_PER_CALL:
            raise _Hang(f"a call made more than {FUZZ_EXCHANGES_PER_CALL} exchanges")
        # The link's own safety net fires at exactly the bound; 1 s more is for byte times.
        line.exchange_deadline = line.now + self.settings.exchange_limit(answer_timeout) + 1.0
        try:
            return self.session.exchange(
                payload, answer_timeout=answer_timeout, resend=resend, sync_after=sync_after
            )
        finally:
            line.exchange_deadline = math.inf

    def close(self) -> None:
        self.session.close()


DriverCall = Callable[[Register, random.Random, int], object]

# The driver calls the fuzz makes (sales twice over: they have the most steps).
DRIVER_CALLS: tuple[tuple[str, DriverCall], ...] = (
    ("status", lambda r, rng, n: r.status()),
    ("device_info", lambda r, rng, n: r.device_info()),
    ("fn_info", lambda r, rng, n: r.fn_info()),
    ("shift_info", lambda r, rng, n: r.shift_info()),
    ("clock", lambda r, rng, n: r.clock()),
    ("ofd_status", lambda r, rng, n: r.ofd_status()),
    ("find_document", lambda r, rng, n: r.find_document(rng.randint(0, 60))),
    ("document", lambda r, rng, n: r.document(rng.randint(1, 60))),
    ("registration", lambda r, rng, n: r.registration()),
    ("open_shift", lambda r, rng, n: r.open_shift("Кассир")),
    ("close_shift", lambda r, rng, n: r.close_shift()),
    ("x_report", lambda r, rng, n: r.x_report()),
    ("cash_in", lambda r, rng, n: r.cash_in(rng.randint(1, 10_000))),
    ("sell", lambda r, rng, n: r.sell(receipt_for(100 + n))),
    ("sell", lambda r, rng, n: r.sell(receipt_for(100 + n))),
    ("sell_with_key", lambda r, rng, n: r.sell(receipt_for(100 + n), key=f"fuzz-{n}")),
    ("sell_with_key", lambda r, rng, n: r.sell(receipt_for(100 + n), key=f"fuzz-{n}")),
    ("sell_return", lambda r, rng, n: r.sell_return(receipt_for(100 + n))),
    ("correction", lambda r, rng, n: r.correction(Operation.SELL, 100 + n, reason="fuzz")),
)


@dataclass
class _DriverFuzz:
    line: _FakeRegisterLine
    journal: Journal
    rng: random.Random
    settings: HostSettings = field(default_factory=HostSettings)
    calls: int = 0
    typed: Counter[str] = field(default_factory=Counter)
    untyped: list[str] = field(default_factory=list)  # "ErrorType at file:line", one per call
    examples: dict[str, str] = field(default_factory=dict)  # the first call of each kind
    hangs: list[str] = field(default_factory=list)

    def run(self, until: float) -> None:
        session = self._session()
        names, weights = list(_PERSONALITIES), list(_PERSONALITIES.values())
        while time.monotonic() < until and not self.line.abort:
            name, call = self.rng.choice(DRIVER_CALLS)
            personality = self.rng.choices(names, weights)[0]
            self.line.begin_call(personality)
            commander = _BoundedCommander(session, self.line, self.settings)
            register = Register(ShtrihDevice(commander, password=PASSWORD), journal=self.journal)
            self.calls += 1
            try:
                call(register, self.rng, self.calls)
            except kkt.KktError as error:
                self.typed[type(error).__name__] += 1
            except _Hang as hang:
                self.hangs.append(f"{name} ({personality}): {hang}")
                session = self._session()  # the old one is stuck mid-exchange
            except Exception as error:
                where = traceback.extract_tb(error.__traceback__)[-1]
                kind = f"{type(error).__name__} at {Path(where.filename).name}:{where.lineno}"
                self.untyped.append(kind)
                self.examples.setdefault(kind, f"{name} ({personality}): {str(error)[:200]}")
                session = self._session()

    def _session(self) -> ShtrihSession:
        line = self.line.reopen()
        return ShtrihSession(line, settings=self.settings, clock=line.clock, reopen=line.reopen)


def _fuzz_driver(bench: Bench, seconds: float, problems: list[str]) -> Iterator[Figure]:
    state = bench.work / "fuzz-driver"
    device = open_device(state)
    journal = Journal(bench.work / "fuzz-journal.sqlite")
    rng = random.Random(FUZZ_SEED + 1)
    fuzz = _DriverFuzz(_FakeRegisterLine(device, rng), journal, rng)
    try:
        with tally_logs():
            device.execute(fn.BeginOpenShift(PASSWORD).encode())
            device.execute(fn.FnOpenShift(PASSWORD).encode())
            worker = threading.Thread(
                target=fuzz.run,
                args=(time.monotonic() + seconds,),
                name="soak-fuzz-driver",
                daemon=True,  # a call stuck without I/O cannot be stopped: do not wait on exit
            )
            worker.start()
            worker.join(seconds + FUZZ_CALL_SECONDS + 10)
            if worker.is_alive():
                fuzz.line.abort = True  # a call doing I/O ends at its next read or write
                worker.join(10)
            if worker.is_alive():
                fuzz.hangs.append("a driver call never returned and did no I/O")
    finally:
        journal.close()
        device.close()
    yield Figure(
        "soak.fuzz.driver.calls",
        fuzz.calls,
        "count",
        f"{seconds:g} s; typed errors: {counts(fuzz.typed) or 'none'}",
    )
    yield Figure("soak.fuzz.driver.typed_errors", fuzz.typed.total(), "count", "kkt.KktError")
    yield Figure("soak.fuzz.untyped_errors", len(fuzz.untyped), "count", "must be 0")
    yield Figure("soak.fuzz.hangs", len(fuzz.hangs), "count", "must be 0")
    problems += [
        f"the driver raised {kind} ({count} calls; first: {fuzz.examples[kind]})"
        for kind, count in Counter(fuzz.untyped).most_common()
    ]
    problems += [f"a driver call hung: {text}" for text in fuzz.hangs]


@case("fuzz", soak=True)
def fuzz(bench: Bench) -> Iterator[Figure]:
    """Garbage and mutated frames at the emulator (over TCP) and at the driver (a fake
    register), for a fixed time."""
    seconds = FUZZ_SECONDS_QUICK if bench.quick else FUZZ_SECONDS_FULL
    problems: list[str] = []
    yield from _fuzz_emulator(bench, seconds / 2, problems)
    yield from _fuzz_driver(bench, seconds / 2, problems)
    fail_if("fuzz", problems)
