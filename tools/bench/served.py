"""An emulated register in its own process, as a test rig runs it: ``kkt emulator serve``.

Benchmarks talk to it from this process, so the figures are what a client of a separate emulator
sees -- no shared interpreter lock between the two ends.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def served_emulator(state: Path, pty: Path, protocol: str = "shtrih") -> Iterator[str]:
    """Start ``kkt emulator serve`` on a free TCP port and a pty, yield the TCP port's URL; stop
    it on the way out."""
    argv = [sys.executable, "-m", "kkt", "emulator", "serve", "--state", str(state)]
    argv += ["--protocol", protocol, "--tcp", "127.0.0.1:0", "--pty", str(pty)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        tcp_url = ""
        while not tcp_url or not pty.exists():
            line = process.stdout.readline()
            if not line:
                error = process.stderr.read() if process.stderr else ""
                raise RuntimeError(f"the emulator did not start: {error.strip()}")
            if line.startswith("listening tcp "):
                tcp_url = "socket://" + line.split()[2]
        yield tcp_url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
