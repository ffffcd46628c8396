"""An emulated register in its own process, as a test rig runs it: ``kkt emulator serve``.

Benchmarks talk to it from this process, so the figures are what a client of a separate emulator
sees -- no shared interpreter lock between the two ends.  The crash soak kills it with SIGKILL and
starts it again on the same state and port.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

START_SECONDS = 60.0  # the emulator process must listen within this


class EarlyExit(AssertionError):
    """The emulator process ended before it listened."""


def end_process(process: subprocess.Popen[bytes], how: signal.Signals, *, patience: float) -> None:
    """Send ``how`` (SIGTERM: a clean stop, SIGKILL: ``kill -9``) and wait for the child: up to
    ``patience`` seconds after SIGTERM, then SIGKILL; nothing of it outlives this call."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, how)
    try:
        process.wait(patience if how == signal.SIGTERM else 30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class EmulatorServer:
    """``kkt emulator serve`` as a child process that can be killed and started again.

    The first start takes a free TCP port (``port=0``); every later start serves the same one, so
    a client's URL stays valid across restarts.  The child's stderr goes to ``log``.
    """

    def __init__(
        self,
        state: Path,
        log: Path,
        *,
        protocol: str = "shtrih",
        pty: Path | None = None,
        options: Sequence[str] = (),
    ) -> None:
        self.state = state
        self.options = tuple(options)  # more ``serve`` options, such as ``--model NAME``
        self.log = log
        self.protocol = protocol
        self.pty = pty
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.refused_starts = 0  # starts that found the port busy and were tried again

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> None:
        # The port may be held for a moment -- even by the driver: a connect to a port in the
        # ephemeral range while nothing listens there can, rarely, connect the socket to itself.
        # The driver drops that link at its next failed exchange, and the port is free again.
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                self._start_once()
                self.starts += 1
                return
            except EarlyExit:
                if time.monotonic() > deadline:
                    raise
                self.refused_starts += 1
                time.sleep(0.5)

    def _start_once(self) -> None:
        command = [sys.executable, "-m", "kkt", "emulator", "serve", "--state", str(self.state)]
        command += ["--protocol", self.protocol, "--tcp", f"127.0.0.1:{self.port}"]
        if self.pty is not None:
            command += ["--pty", str(self.pty)]
        command += self.options
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
            )
        assert self.process.stdout is not None
        descriptor = self.process.stdout.fileno()
        deadline = time.monotonic() + START_SECONDS
        awaited = {b"tcp"} if self.pty is None else {b"tcp", b"pty"}
        seen = b""
        while awaited:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise AssertionError(
                    f"the emulator did not listen within {START_SECONDS:g} s; see {self.log}"
                )
            ready, _, _ = select.select([descriptor], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(descriptor, 4096)
            if not chunk:
                code = self.process.wait(10)
                self.kill()
                raise EarlyExit(f"the emulator exited ({code}) before listening: {self._tail()}")
            seen += chunk
            *lines, seen = seen.split(b"\n")
            for line in lines:  # "listening tcp 127.0.0.1:PORT", "listening pty LINK -> TTY"
                words = line.split()
                if len(words) >= 3 and words[0] == b"listening" and words[1] in awaited:
                    awaited.discard(words[1])
                    if words[1] == b"tcp":
                        self.port = int(words[2].rsplit(b":", 1)[1])

    def kill(self) -> None:
        """SIGKILL (kill -9) and wait; nothing of the process outlives this."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM (the emulator closes its state), SIGKILL if it does not end in 10 s."""
        self._end(signal.SIGTERM)

    def _end(self, how: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is not None:
            end_process(process, how, patience=10)
            if process.stdout is not None:
                process.stdout.close()

    def _tail(self) -> str:
        try:
            return self.log.read_text(errors="replace").strip().splitlines()[-1]
        except (OSError, IndexError):
            return "(no output)"


@contextmanager
def served_emulator(state: Path, pty: Path, protocol: str = "shtrih") -> Iterator[str]:
    """Start ``kkt emulator serve`` on a free TCP port and a pty, yield the TCP port's URL; stop
    it on the way out."""
    server = EmulatorServer(
        state, state.parent / f"{state.name}-emulator.log", protocol=protocol, pty=pty
    )
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
