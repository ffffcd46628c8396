"""``kkt bench wire``: how well the driver uses a serial line at 115200 baud.

A register at 115200 baud moves one byte (start bit, 8 data bits, stop bit) every 10 / 115200 s,
about 86.8 us, in each direction.  Here the emulated register -- a serial one: no 0xFF filler after
the host's ACK, serial timings; its FN durable in a real file, so every receipt includes the FN's
fsync -- runs in one process, and a `PacedLine` in another: a small TCP relay that forwards each
direction's bytes no faster than that, and counts them.  The driver connects to the relay with
``kkt.connect("socket://...")`` and its default link timings (those of a real line) and sells
receipts of three items.

Figures (medians of rounds):

* ``wire.115200.receipts_per_s`` -- receipts sold per second;
* ``wire.115200.line_bound_per_s`` -- what the line alone allows: one over the bytes exchanged per
  receipt (both directions, as counted by the relay) times the byte time;
* ``wire.115200.efficiency`` -- the two divided (target >= 0.9);
* ``wire.115200.fsync_share`` -- the share of the receipts' time the register spent executing
  commands (the FN's fsync included), measured in the emulator process;
* ``wire.115200.kkt_3items_per_s``, ``wire.115200.pyshtrih_3items_per_s``,
  ``wire.115200.kkt_over_pyshtrih`` -- this driver's sale against pyshtrih's through the same line
  (`tools.bench.pyshtrih_compare`).

Where the time goes is logged: the line's own time, the register's execution, the rest of the
emulator's CPU and the driver's, how late the relay delivered, and what is left (mostly processes
waiting to be woken) -- and, measured on the line itself, who it waited for: every stretch with
no byte on the line (the protocol is stop-and-wait, so one side always owes the next byte) is
charged to the side whose bytes ended it, the register or the driver, less the part the relay
itself delivered late (`Idle`).
"""

from __future__ import annotations

import ctypes
import platform
import socket
import statistics
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import kkt

from . import RECEIPT, Bench, Figure, case
from .farm import (
    HOST_SETTINGS,
    ChildProcess,
    Counters,
    EmulatorProcess,
    EmulatorStats,
    child_main,
    serve_until_stopped,
)
from .pyshtrih_compare import run_comparison

BAUD = 115200
BYTE_TIME = 10 / BAUD  # start bit, 8 data bits, stop bit
ENQ, ACK = b"\x05", b"\x06"


@dataclass(frozen=True, slots=True)
class WireSize:
    receipts: int  # per round
    rounds: int
    warmup: int  # receipts sold before the first round


QUICK = WireSize(receipts=15, rounds=3, warmup=2)  # about 3 s at the line's ~25 receipts/s
FULL = WireSize(receipts=40, rounds=7, warmup=3)


# -- the paced line -----------------------------------------------------------------------------


@dataclass
class Idle:
    """Seconds the line carried nothing, by whom it waited for: the first byte of each chunk
    ends a wait, charged to its writer; the part of it during which the chunk before was due but
    not yet delivered is the relay's own lateness.  Shared by both directions of a line."""

    for_device: float = 0.0
    for_host: float = 0.0
    for_relay: float = 0.0
    busy_until: float = 0.0  # when the last byte due so far reaches its end
    delivered_at: float = 0.0  # ... and when it was really delivered
    lock: threading.Lock = field(default_factory=threading.Lock)

    def carried(self, writer_is_host: bool, start: float, due: float, delivered: float) -> None:
        """A chunk that took the line from ``start`` to ``due`` was delivered at ``delivered``."""
        with self.lock:
            if self.busy_until and start > self.busy_until:
                late = max(0.0, min(self.delivered_at, start) - self.busy_until)
                self.for_relay += late
                waited = start - self.busy_until - late
                if writer_is_host:
                    self.for_host += waited
                else:
                    self.for_device += waited
            if due > self.busy_until:
                self.busy_until, self.delivered_at = due, delivered


@dataclass
class Flow:
    """One direction of a `PacedLine`: what it carried, and how late it delivered."""

    bytes: int = 0
    chunks: int = 0
    late: float = 0.0  # sum over chunks of (delivered - due) seconds; negative when early
    enquiries: int = 0  # ENQ bytes sent outside a frame


# Linux (x86-64, arm64) can stamp what a socket receives with the time it arrived, which on
# loopback is when the other end wrote it: the line's clock then starts at the write, not when
# this relay's thread woke up to read it (some hundred microseconds later on a busy VM).
_SO_TIMESTAMPNS = 35
_STAMPED = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "aarch64")
_STAMP_SPACE = socket.CMSG_SPACE(16) if _STAMPED else 0


def _stamp_arrivals(sock: socket.socket) -> bool:
    if not _STAMPED:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def _receive(sock: socket.socket, stamped: bool) -> tuple[bytes, float]:
    """What arrived, and when (``time.perf_counter`` seconds)."""
    if not stamped:
        return sock.recv(4096), time.perf_counter()
    data, ancillary, _, _ = sock.recvmsg(4096, _STAMP_SPACE)
    now, wall = time.perf_counter(), time.time()
    for level, kind, raw in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(raw) >= 16:
            seconds, nanoseconds = struct.unpack("qq", raw[:16])
            return data, now - min(0.01, max(0.0, wall - seconds - nanoseconds * 1e-9))
    return data, now


def _fine_timer_slack() -> None:
    """Ask Linux to wake this thread's sleeps within 1 us of their end, not its default 50 us."""
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK, in nanoseconds


class PacedLine:
    """A TCP relay on 127.0.0.1 that behaves like a serial line of ``byte_time`` per byte.

    Each accepted connection is joined to ``target`` (a port on 127.0.0.1).  Each direction has
    its own thread and its own clock: a chunk written at ``t`` (the kernel's arrival stamp, where
    there is one) is delivered when its last byte would have arrived on the line, ``max(t, end of
    the previous chunk) + len * byte_time``.  The thread sleeps that long less its recent oversleep
    (a VM wakes a sleeper some tens of microseconds late); each direction's `Flow` sums how late
    the deliveries were.
    """

    def __init__(self, target: int, byte_time: float) -> None:
        self._target = target
        self._byte_time = byte_time
        self.to_device = Flow()
        self.to_host = Flow()
        self.idle = Idle()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # so the accepting thread sees `close`
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._start(self._accept, "accept")

    def close(self) -> None:
        """Stop accepting, cut every connection, wait for the threads."""
        with self._lock:
            self._closed = True
            for sock in self._sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv
            threads = list(self._threads)
        for thread in threads:
            thread.join(10)
        self._listener.close()
        for sock in self._sockets:
            sock.close()

    def _start(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=f"paced-line-{name}")
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                host, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                device = socket.create_connection(("127.0.0.1", self._target))
            except OSError:
                host.close()
                continue
            for sock in (host, device):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [host, device]
                if self._closed:
                    return  # `close` closes them
                self._start(self._pump, "to-device", host, device, self.to_device)
                self._start(self._pump, "to-host", device, host, self.to_host)

    def _pump(self, source: socket.socket, sink: socket.socket, flow: Flow) -> None:
        _fine_timer_slack()
        free_at = 0.0  # when this direction's last byte so far reaches the other end
        oversleep = 0.0  # how late `time.sleep` has been waking, lately (a moving average)
        # The relay acknowledges at once what it reads: a TCP peer that delays its ACK (40 ms on
        # Linux) would stall a writer whose socket holds back small segments (Nagle) -- a stall
        # of the simulation's TCP plumbing, which no serial line has.
        quick_ack = getattr(socket, "TCP_QUICKACK", None)
        stamped = _stamp_arrivals(source)
        try:
            while True:
                data, arrived = _receive(source, stamped)
                if not data:
                    break
                if quick_ack is not None:
                    source.setsockopt(socket.IPPROTO_TCP, quick_ack, 1)
                now = time.perf_counter()
                start = max(arrived, free_at)
                due = start + len(data) * self._byte_time
                free_at = due
                wait = due - now - oversleep
                if wait > 0:
                    time.sleep(wait)
                    oversleep += 0.2 * (time.perf_counter() - (now + wait) - oversleep)
                sink.sendall(data)
                delivered = time.perf_counter()
                self.idle.carried(flow is self.to_device, start, due, delivered)
                flow.late += delivered - due
                flow.bytes += len(data)
                flow.chunks += 1
                flow.enquiries += data in (ENQ, ACK + ENQ)  # (an ACK, then ENQ, may come as one)
        except OSError:
            pass  # the connection is cut (`close`, or a peer gone)
        finally:
            with suppress(OSError):
                sink.shutdown(socket.SHUT_WR)  # pass the end of the stream on


# -- the line process ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineStats(Counters):
    """Counters of the line process since it started."""

    to_device: int = 0  # bytes carried host -> register
    to_host: int = 0  # ... and register -> host
    late: float = 0.0  # seconds delivered after the due time, summed (negative: early)
    deliveries: int = 0  # chunks delivered
    enquiries: int = 0  # ENQ bytes from the host outside a frame
    cpu: float = 0.0  # CPU seconds of the line process
    waited_device: float = 0.0  # seconds the line carried nothing, waiting for the register
    waited_host: float = 0.0  # ... for the driver
    waited_relay: float = 0.0  # ... for this relay, delivering late


def _line_main(conn: Connection, targets: list[int], byte_time: float) -> None:
    child_main(conn, lambda: _serve_lines(conn, targets, byte_time))


async def _serve_lines(conn: Connection, targets: list[int], byte_time: float) -> None:
    lines: list[PacedLine] = []

    def stats() -> LineStats:
        flows = [(line.to_device, line.to_host) for line in lines]
        return LineStats(
            sum(there.bytes for there, _ in flows),
            sum(back.bytes for _, back in flows),
            sum(there.late + back.late for there, back in flows),
            sum(there.chunks + back.chunks for there, back in flows),
            sum(there.enquiries for there, _ in flows),
            time.process_time(),
            sum(line.idle.for_device for line in lines),
            sum(line.idle.for_host for line in lines),
            sum(line.idle.for_relay for line in lines),
        )

    try:
        lines.extend(PacedLine(target, byte_time) for target in targets)
        await serve_until_stopped(conn, [line.port for line in lines], stats)
    finally:
        for line in lines:
            line.close()


class LineProcess(ChildProcess[LineStats]):
    """`PacedLine`s to the given ports, run by a process of their own: its threads then wake on
    time, instead of waiting for a register's Python code to let go of the GIL.  ``ports``: the
    lines' own ports, one per target."""

    def __init__(self, targets: list[int], byte_time: float) -> None:
        super().__init__("line", _line_main, targets, byte_time)


# -- the case -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Round:
    elapsed: float
    driver_cpu: float  # CPU seconds of the thread that sold (the driver's whole work)
    device: EmulatorStats
    line: LineStats


def run_wire(
    work: Path, size: WireSize, log: Callable[[str], None] | None = None
) -> Iterator[Figure]:
    rounds: list[_Round] = []
    with (
        EmulatorProcess([work / "wire-register"], serial=True, timed=True) as emulator,
        LineProcess(emulator.ports, BYTE_TIME) as line,
    ):
        register = kkt.connect(f"socket://127.0.0.1:{line.ports[0]}", settings=HOST_SETTINGS)
        try:
            register.open_shift()
            for _ in range(size.warmup):
                register.sell(RECEIPT)
            for _ in range(size.rounds):
                device, carried = emulator.stats(), line.stats()
                cpu, started = time.thread_time(), time.perf_counter()
                for _ in range(size.receipts):
                    register.sell(RECEIPT)
                elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
                rounds.append(
                    _Round(elapsed, cpu, emulator.stats() - device, line.stats() - carried)
                )
        finally:
            register.close()
    failures = [f"broken FN archive in {state}" for state in emulator.broken]
    failures += [process.failure for process in (emulator, line) if process.failure]
    if failures:
        raise RuntimeError("; ".join(failures))
    n = size.receipts
    rates = [n / r.elapsed for r in rounds]
    wire_bytes = [(r.line.to_device + r.line.to_host) / n for r in rounds]
    bounds = [1 / (count * BYTE_TIME) for count in wire_bytes]
    efficiency = [rate / bound for rate, bound in zip(rates, bounds, strict=True)]
    executing = [r.device.executing / r.elapsed for r in rounds]
    if log is not None:
        log(_where_the_time_goes(rounds, n * len(rounds)))
    note = f"{statistics.median(wire_bytes):.0f} bytes/receipt; FN fsync in every receipt"
    yield Figure(f"wire.{BAUD}.receipts_per_s", statistics.median(rates), "1/s", note)
    yield Figure(f"wire.{BAUD}.line_bound_per_s", statistics.median(bounds), "1/s", "line only")
    yield Figure(f"wire.{BAUD}.efficiency", statistics.median(efficiency), "ratio", "target >= 0.9")
    yield Figure(
        f"wire.{BAUD}.fsync_share",
        statistics.median(executing),
        "ratio",
        "time executing commands (FN fsync included) / total",
    )


def _where_the_time_goes(rounds: list[_Round], count: int) -> str:
    """One receipt's time, split: the line, the register's work, the driver's, the relay's
    lateness, and what is left -- processes waiting to be woken, mostly."""
    device = sum((r.device for r in rounds), EmulatorStats())
    carried = sum((r.line for r in rounds), LineStats())

    def ms(seconds: float) -> float:
        return seconds / count * 1000

    total = ms(sum(r.elapsed for r in rounds))
    parts = {
        "line": ms((carried.to_device + carried.to_host) * BYTE_TIME),
        "register executing": ms(device.executing),
        "rest of the emulator's CPU": ms(device.cpu - device.executing),
        "driver CPU": ms(sum(r.driver_cpu for r in rounds)),
        "relay lateness": ms(carried.late),
    }
    split = ", ".join(f"{name} {value:.1f}" for name, value in parts.items())
    waited = carried.waited_device + carried.waited_host + carried.waited_relay
    idle = (
        f"; the line idle {ms(waited):.1f} ms: waiting for the register "
        f"{ms(carried.waited_device):.1f}, for the driver "
        f"{ms(carried.waited_host):.1f}, for the relay {ms(carried.waited_relay):.1f}"
    )
    return (
        f"wire.{BAUD}: one receipt {total:.1f} ms: {split}, left (waking processes, OS) "
        f"{total - sum(parts.values()):.1f} ms (below 0: the parts overlap); per receipt "
        f"{device.commands / count:.0f} commands, {carried.to_device / count:.0f} bytes to the "
        f"register and {carried.to_host / count:.0f} back, {carried.enquiries / count:.1f} ENQ, "
        f"{carried.deliveries / count:.0f} deliveries{idle}"
    )


@case("wire")
def wire_case(bench: Bench) -> Iterator[Figure]:
    size = QUICK if bench.quick else FULL
    yield from run_wire(bench.work, size, bench.log)
    yield from run_comparison(
        bench.work,
        LineProcess,
        receipts=size.receipts,
        rounds=size.rounds,
        warmup=size.warmup,
        log=bench.log,
    )
