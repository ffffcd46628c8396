"""``kkt cloud serve`` as a child process of a bench or a test, and the receipts its emulated
registers' FNs keep: shared by ``kkt bench cloud`` (`cloud`) and its PostgreSQL scale-out
(`cloud_scale`), which would otherwise import each other."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kkt.protocols.ffd import DocumentType

import kkt

from .served import end_process

START_SECONDS = 90.0  # the service must listen within this (four emulated registers start first)

CALLBACK_KEY_FILE = "callback.key"  # the service's callback HMAC key, made once (no config key)


class ServiceExited(AssertionError):
    """The service process ended before it listened."""


class CloudServer:
    """``kkt cloud serve`` as a child process that can be killed and started again.

    The first start takes a free port (``127.0.0.1:0``) and reads the real one from the service's
    ``listening http://127.0.0.1:PORT`` line; every later start asks for the same port, so a
    client's URL stays valid across restarts.  The child's output goes to ``log``.
    """

    def __init__(
        self, state: Path, log: Path, *, emulated: int | None = 4, options: Sequence[str] = ()
    ) -> None:
        """``emulated``: how many emulated registers the service starts (``--emulated N``);
        None: none and no such option (its registers come from ``options``' config)."""
        self.state, self.log, self.emulated = state, log, emulated
        self.options = tuple(options)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.refused_starts = 0  # starts that failed (a port still held) and were tried again
        self.lines: list[str] = []  # what the last start printed before it listened

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                self._start_once()
                self.starts += 1
                return
            except ServiceExited:
                # after a kill -9 the port or a register's state may be held for a moment
                if self.port == 0 or time.monotonic() > deadline:
                    raise
                self.refused_starts += 1
                time.sleep(0.5)

    def _start_once(self) -> None:
        command = [sys.executable, "-m", "kkt", "cloud", "serve", "--state", str(self.state)]
        command += ["--http", f"127.0.0.1:{self.port}"]
        if self.emulated is not None:
            command += ["--emulated", str(self.emulated)]
        command += self.options
        self.log.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log.stat().st_size if self.log.exists() else 0
        # Output to a file, not a pipe: a service that logs much must never block on a full pipe
        # nobody reads after start.
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_SECONDS
        while True:
            with self.log.open("rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
            self.lines = text.splitlines()
            for line in self.lines:
                words = line.split()
                if len(words) >= 2 and words[0] == "listening" and words[1].startswith("http://"):
                    self.port = int(words[1].rsplit(":", 1)[1].rstrip("/"))
                    return
            code = self.process.poll()
            if code is not None:
                self._end(signal.SIGKILL)
                tail = " | ".join(self.lines[-3:]) or "(no output)"
                raise ServiceExited(f"kkt cloud serve exited ({code}) before listening: {tail}")
            if time.monotonic() > deadline:
                self._end(signal.SIGKILL)
                raise AssertionError(f"kkt cloud serve did not listen in {START_SECONDS:g} s")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL (kill -9) and wait."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM (the service stops cleanly), SIGKILL if it does not end in 20 s."""
        self._end(signal.SIGTERM)

    def _end(self, how: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is not None:
            end_process(process, how, patience=20)

    def callback_key(self) -> bytes | None:
        """The HMAC key the service signs callbacks with, kept in its state (None: not made)."""
        try:
            return (self.state / CALLBACK_KEY_FILE).read_text(encoding="ascii").strip().encode()
        except FileNotFoundError:
            return None

    def emulated_states(self) -> list[Path]:
        """The emulated registers' state directories (``STATE/emulated/NN``)."""
        found = (self.state / "emulated").glob("*")  # also holds the emulated OFD's "ofd"
        return sorted(path for path in found if path.is_dir() and path.name.isdigit())


@dataclass(frozen=True, slots=True)
class FnReceipt:
    """One receipt or correction receipt as an emulated register's FN keeps it."""

    state: Path  # the register's state directory
    fn_number: str  # 1041
    number: int  # 1040
    kind: int  # document type: 3 receipt, 31 correction receipt
    fiscal_sign: int  # 1077, printed value
    when: dt.datetime | None  # 1012, to the minute
    tags: dict[int, Any]  # the document's first-level tags

    @property
    def total(self) -> int:
        return int(self.tags.get(1020, 0))

    @property
    def operation(self) -> int:
        return int(self.tags.get(1054, 0))


def fn_receipts(state: Path) -> list[FnReceipt]:
    """Every receipt and correction receipt in the FN kept in ``state`` -- read through the
    driver (``emulator:DIR``), so only while no service holds the directory."""
    found: list[FnReceipt] = []
    with kkt.connect(f"emulator:{state}") as register:
        for number in range(1, register.device.last_document() + 1):
            document = register.document(number)
            if document.type not in (DocumentType.RECEIPT, DocumentType.CORRECTION_RECEIPT):
                continue
            tags = {tag: value for tag, value in document.tlv}
            found.append(
                FnReceipt(
                    state,
                    str(tags.get(1041, "")),
                    document.number,
                    document.type,
                    document.fiscal_sign,
                    document.when,
                    tags,
                )
            )
    return found
