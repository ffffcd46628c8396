"""``kkt bench farm``: many emulated registers in one emulator process, one client each, all
selling at once -- a shop's or a test lab's farm.

The registers live in another process (`EmulatorProcess`: one asyncio loop, one TCP server and
one durable FN per register, each in its own state directory), so the clients and the emulator do
not share one GIL, as on a real farm.  Each client is a thread of this process with its own
``kkt.connect("socket://127.0.0.1:PORT")``; it opens a shift, then, in rounds that start together,
sells receipts of three items.  Only the sells are timed.

Figures, for each number of registers ``N`` (10, and 100 in the full size):

* ``farm.<N>.receipts_per_s`` -- receipts of all clients per second of the round (median of the
  rounds; the target for 100 registers is >= 500);
* ``farm.<N>.p50_ms`` and ``farm.<N>.p99_ms`` -- one sell's latency, over every sell of the run;
* ``farm.<N>.errors`` -- exceptions in the clients, and registers whose FN archive fails its check
  at the end (anything but 0 is a bug).

`ChildProcess` and `EmulatorProcess` serve the ``wire`` case too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import statistics
import threading
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

from kkt.emulator.shells import Service
from kkt.emulator.shells.runner import Emulated
from kkt.emulator.shells.shtrih import PTY_SETTINGS
from kkt.emulator.shtrih import ShtrihRegister, open_device
from kkt.protocols.shtrih.link import HostSettings

import kkt

from . import RECEIPT, Bench, Figure, case, percentile


@dataclasses.dataclass(frozen=True, slots=True)
class FarmSize:
    registers: int
    receipts: int  # per client and round
    rounds: int


# The sizes (tests shrink them).  Quick: about 10 s in all, most of it starting the registers.
QUICK: tuple[FarmSize, ...] = (FarmSize(10, 20, 3),)
FULL: tuple[FarmSize, ...] = (FarmSize(10, 40, 5), FarmSize(100, 10, 5))

# The driver's own defaults: what a farm's clients would use on a network.
HOST_SETTINGS = HostSettings()
START_TIMEOUT = 300.0  # starting 100 registers creates 100 FNs, each with its fsyncs
ROUND_TIMEOUT = 600.0  # a round that takes longer has hung: the clients are torn down


# -- helper processes ---------------------------------------------------------------------------


class Counters:
    """Dataclass counters that add and subtract field by field (a round's: after - before)."""

    __slots__ = ()

    def __add__(self, other: Self) -> Self:
        return type(self)(*(a + b for a, b in zip(_values(self), _values(other), strict=True)))

    def __sub__(self, other: Self) -> Self:
        return type(self)(*(a - b for a, b in zip(_values(self), _values(other), strict=True)))


def _values(counters: Any) -> list[Any]:
    return [getattr(counters, item.name) for item in dataclasses.fields(counters)]


StatsT = TypeVar("StatsT", bound=Counters)


class ChildProcess(Generic[StatsT]):
    """A helper process (``target(conn, *args)``) that talks over a pipe, torn down for sure.

    The child sends ``("ready", value)`` once serving, answers ``"stats"`` with ``("stats",
    value)``, and ``"stop"`` -- or the pipe's end, when this process is gone -- with
    ``("closed", value)``; any failure with ``("error", traceback)``.  Leaving the ``with`` block
    stops it: asked first, then terminated, then killed.
    """

    def __init__(self, name: str, target: Callable[..., None], *args: object) -> None:
        self.name = name
        context = multiprocessing.get_context("spawn")  # never fork a process running threads
        self._conn, self._child = context.Pipe()
        self._process = context.Process(
            target=target, args=(self._child, *args), name=name, daemon=True
        )
        self.ready: Any = None  # what the child sent when it was ready
        self.closed: Any = None  # what it sent when it stopped
        self.failure = ""  # what went wrong in it, if anything
        self._started = self._stopped = False

    def __enter__(self) -> Self:
        self._process.start()
        self._started = True
        self._child.close()  # only the child holds its end now: its exit means EOF here
        try:
            self.ready = self._expect("ready", START_TIMEOUT)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def ports(self) -> list[int]:
        """The TCP ports it serves (what it sent when ready)."""
        ports: list[int] = self.ready
        return ports

    def stats(self) -> StatsT:
        try:
            self._conn.send("stats")
        except OSError as error:
            self._process.join(5)
            raise RuntimeError(
                f"the {self.name} process is gone (exit code {self._process.exitcode}): {error}"
            ) from None
        stats: StatsT = self._expect("stats", 60.0)
        return stats

    def close(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if not self._started:
            self._child.close()
            self._conn.close()
            return
        try:
            self._conn.send("stop")
            self.closed = self._expect("closed", 120.0)
        except (OSError, RuntimeError) as error:
            self.failure = str(error)  # what matters now is that the process is gone
        finally:
            self._process.join(10)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._conn.close()

    def _expect(self, kind: str, timeout: float) -> Any:
        try:
            if not self._conn.poll(timeout):
                raise RuntimeError(f"the {self.name} process sent no {kind!r} in {timeout:.0f} s")
            tag, value = self._conn.recv()
        except EOFError:
            self._process.join(5)
            raise RuntimeError(
                f"the {self.name} process died (exit code {self._process.exitcode})"
            ) from None
        if tag == "error":
            raise RuntimeError(f"the {self.name} process failed:\n{value}")
        if tag != kind:
            raise RuntimeError(f"the {self.name} process sent {tag!r}, expected {kind!r}")
        return value


def child_main(conn: Connection, serve: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """Run a child's ``serve()`` and report its end (or failure) over ``conn``."""
    try:
        result: Any = asyncio.run(serve())
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    else:
        conn.send(("closed", result))
    finally:
        conn.close()


async def serve_until_stopped(conn: Connection, ports: list[int], stats: Callable[[], Any]) -> None:
    """Tell the parent the ``ports`` served, then answer ``"stats"`` on ``conn`` until ``"stop"``
    (or the parent is gone)."""
    conn.send(("ready", ports))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_message() -> None:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = "stop"  # the parent is gone
        if message == "stats":
            conn.send(("stats", stats()))
        else:
            stop.set()

    loop.add_reader(conn.fileno(), on_message)
    try:
        await stop.wait()
    finally:
        loop.remove_reader(conn.fileno())


# -- the emulator process -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class EmulatorStats(Counters):
    """Counters of the emulator process since it started."""

    executing: float = 0.0  # seconds the registers spent executing commands (FN fsyncs included)
    commands: int = 0  # (both only when the process was asked to time them)
    cpu: float = 0.0  # CPU seconds of the whole process (its event loop, workers, FN)


class _TimedDevice:
    """A register whose command execution time is summed (the register itself is untouched)."""

    def __init__(self, device: Emulated) -> None:
        self._device = device
        self.executing = 0.0
        self.commands = 0

    def execute(self, payload: bytes) -> bytes:
        started = time.perf_counter()
        try:
            return self._device.execute(payload)
        finally:
            self.executing += time.perf_counter() - started
            self.commands += 1

    def quick(self, payload: bytes) -> bool:
        """Whatever the register says: may this command run on the shell's event loop?"""
        quick = getattr(self._device, "quick", None)
        return bool(quick(payload)) if quick is not None else False


def _emulator_main(conn: Connection, states: list[str], serial: bool, timed: bool) -> None:
    child_main(conn, lambda: _serve(conn, states, serial, timed))


async def _serve(conn: Connection, states: list[str], serial: bool, timed: bool) -> list[str]:
    """Serve one TCP server per state directory; returns the registers whose archive is broken."""
    registers: list[ShtrihRegister] = []
    services: list[Service] = []
    ports: list[int] = []
    devices: list[_TimedDevice] = []  # when ``timed``

    def stats() -> EmulatorStats:
        return EmulatorStats(
            sum(device.executing for device in devices),
            sum(device.commands for device in devices),
            time.process_time(),
        )

    try:
        for state in states:
            registers.append(open_device(Path(state)))
            device: Emulated = registers[-1]
            if timed:
                devices.append(_TimedDevice(registers[-1]))
                device = devices[-1]
            services.append(Service(device))
            if serial:  # no 0xFF filler after the host's ACK, a serial register's timings
                server = await services[-1].tcp(filler_after_ack=False, settings=PTY_SETTINGS)
            else:  # a network register
                server = await services[-1].tcp()
            ports.append(server.port)
        await serve_until_stopped(conn, ports, stats)
    finally:
        for service in services:
            service.close()
        for service in services:
            await service.wait_closed()
        broken = []
        for state, register in zip(states, registers, strict=False):
            if not register.verify().ok:
                broken.append(state)
            register.close()
    return broken


class EmulatorProcess(ChildProcess[EmulatorStats]):
    """Emulated registers (one per state directory, each a durable FN) served on 127.0.0.1 by a
    child process's event loop; ``ports`` lists their TCP ports.  ``serial`` serves them as serial
    registers (no filler after ACK, serial timings) instead of network ones; ``timed`` sums the
    time they spend executing commands (`EmulatorStats.executing`)."""

    def __init__(
        self, states: Sequence[Path], *, serial: bool = False, timed: bool = False
    ) -> None:
        paths = [str(state) for state in states]
        super().__init__("emulator", _emulator_main, paths, serial, timed)

    @property
    def broken(self) -> list[str]:
        """After `close`: the registers whose FN archive failed its check."""
        broken: list[str] = self.closed or []
        return broken


# -- the clients --------------------------------------------------------------------------------


@dataclasses.dataclass
class _Client:
    port: int
    latencies: list[float] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)


def _client(client: _Client, size: FarmSize, barrier: threading.Barrier) -> None:
    register = None
    try:
        register = kkt.connect(f"socket://127.0.0.1:{client.port}", settings=HOST_SETTINGS)
        register.open_shift()
        for _ in range(size.rounds):
            barrier.wait(ROUND_TIMEOUT)
            for _ in range(size.receipts):
                started = time.perf_counter()
                try:
                    register.sell(RECEIPT)
                except Exception as error:
                    client.errors.append(f"sell: {type(error).__name__}: {error}")
                else:
                    client.latencies.append(time.perf_counter() - started)
            barrier.wait(ROUND_TIMEOUT)
    except threading.BrokenBarrierError:
        pass  # the run is being torn down (another client failed, or a round hung)
    except Exception as error:
        client.errors.append(f"{type(error).__name__}: {error}")
        barrier.abort()  # the others must not wait for this one
    finally:
        if register is not None:
            register.close()


def run_farm(
    work: Path, size: FarmSize, log: Callable[[str], None] | None = None
) -> Iterator[Figure]:
    """One farm of ``size.registers`` registers: start, sell in rounds, tear down, report."""
    n = size.registers
    states = [work / f"farm-{n}" / f"register-{index:03}" for index in range(n)]
    rates: list[float] = []
    clients = [_Client(0) for _ in range(n)]
    barrier = threading.Barrier(n + 1)
    threads: list[threading.Thread] = []
    clients_cpu, device_used = 0.0, EmulatorStats()  # what the rounds cost either side
    failure = ""
    emulator = EmulatorProcess(states)
    with emulator:
        try:
            for client, port in zip(clients, emulator.ports, strict=True):
                client.port = port
                thread = threading.Thread(
                    target=_client, args=(client, size, barrier), name=f"farm-client-{port}"
                )
                thread.start()
                threads.append(thread)
            for _ in range(size.rounds):
                device, cpu = emulator.stats(), time.process_time()
                barrier.wait(START_TIMEOUT if not rates else ROUND_TIMEOUT)
                started = time.perf_counter()
                barrier.wait(ROUND_TIMEOUT)
                rates.append(n * size.receipts / (time.perf_counter() - started))
                clients_cpu += time.process_time() - cpu
                device_used += emulator.stats() - device
        except (threading.BrokenBarrierError, RuntimeError) as error:
            failure = f"{type(error).__name__}: {error}"  # reported below, with the clients' errors
        finally:
            barrier.abort()
            emulator.close()  # first: a client stuck in an exchange then fails at once
            for thread in threads:
                thread.join()
    errors = [error for client in clients for error in client.errors]
    errors += [f"FN archive check failed: {state}" for state in emulator.broken]
    if emulator.failure:
        errors.append(emulator.failure)
    if errors and log is not None:
        shown = "; ".join(errors[:5]) + (" ..." if len(errors) > 5 else "")
        log(f"farm.{n}: {len(errors)} errors: {shown}")
    if len(rates) < size.rounds:
        raise RuntimeError(f"farm.{n}: the run broke off ({failure}); errors: {errors[:3]}")
    latencies = [latency for client in clients for latency in client.latencies]
    if log is not None:
        count = n * size.receipts * size.rounds
        log(
            f"farm.{n}: CPU per receipt: {clients_cpu / count * 1000:.2f} ms in the clients' "
            f"process, {device_used.cpu / count * 1000:.2f} ms in the emulator's"
        )
    note = f"{n} registers in one emulator process, {size.receipts} receipts x {size.rounds} rounds"
    if n == 100:
        note += "; target >= 500"
    yield Figure(f"farm.{n}.receipts_per_s", statistics.median(rates), "1/s", note)
    yield Figure(f"farm.{n}.p50_ms", percentile(latencies, 0.5) * 1000, "ms", "one sell")
    yield Figure(f"farm.{n}.p99_ms", percentile(latencies, 0.99) * 1000, "ms", "one sell")
    yield Figure(f"farm.{n}.errors", len(errors), "count", "must be 0")


@case("farm")
def farm_case(bench: Bench) -> Iterator[Figure]:
    for size in QUICK if bench.quick else FULL:
        yield from run_farm(bench.work, size, bench.log)
