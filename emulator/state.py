"""The state directory of an emulated register: the format every personality serves.

A directory holds the FN's archive (``fn.sqlite``) and the register's settings (``register.json``);
it belongs to no protocol, so one directory may be served by either personality, one at a time.

One directory has one owner: `open_model` takes an OS-level lock (``flock``) on the directory's
``owner.pid`` before it touches anything else, and every other opener -- a second ``kkt emulator
serve``, an ``emulator:DIR`` URL, ``kkt emulator verify`` -- gets `StateBusy`, naming the owner's
PID and what to do, before it reads or writes a byte of the archive.  The lock file doubles as the
pidfile: its first line is the owner's PID, its second a JSON object saying who it is (and, for a
server, where it listens).  The kernel drops the lock when the owner's process ends, however it
ends (``kill -9`` included), so a stale file never blocks anyone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kkt.protocols.ffd import LifePhase, WorkMode, inn_is_valid, make_rnm

if sys.platform != "win32":
    from fcntl import LOCK_EX, LOCK_NB, LOCK_SH, flock
else:  # no flock on Windows: a state directory is not locked there (as before)
    LOCK_EX, LOCK_NB, LOCK_SH = 2, 4, 1

    def flock(fd: int, operation: int, /) -> None:
        pass


from .clock import Clock, SystemClock
from .fn import FiscalStorage, FnConfig, Registration, SqliteStore
from .register import SYSADMIN, RegisterModel, registration_tags
from .settings import RegisterSettings

FFD_CODES = {"1.05": 2, "1.2": 4}


def _with_check_digit(prefix: str) -> str:
    """A synthetic 10-digit INN: the prefix and the check digit that makes it valid."""
    for digit in "0123456789":
        if inn_is_valid(prefix + digit):
            return prefix + digit
    raise ValueError(f"no check digit fits {prefix}")


TEST_INN = _with_check_digit("770100000")  # test-only INNs: valid check digits, nobody's
TEST_OFD_INN = _with_check_digit("770200000")


LOCK_NAME = "owner.pid"  # the state's lock, and the pidfile of the process that holds it
_LOCK_RETRY = 0.2  # seconds a busy lock is retried (another process may only be probing it)


@dataclass(frozen=True, slots=True)
class Owner:
    """Who holds a state directory: its process, its command line, and where it serves it."""

    pid: int | None  # None: the owner has not written its pidfile yet
    command: str = ""
    serving: bool = False  # a `kkt emulator serve`
    urls: tuple[str, ...] = ()  # where a server listens, as the driver's --url
    protocol: str = ""  # the personality a server speaks

    def __str__(self) -> str:
        pid = f"process {self.pid}" if self.pid is not None else "another process"
        return f"{pid} ({self.command})" if self.command else pid


class StateBusy(Exception):
    """The state directory belongs to another process (or another opener in this one): nothing
    in it was read or changed.  ``owner`` says who holds it."""

    def __init__(self, state: Path, owner: Owner) -> None:
        self.state = state
        self.owner = owner
        stop = f"`kkt emulator stop --state {state}`"
        if owner.serving:
            use = ""
            if owner.urls:
                protocol = f" --protocol {owner.protocol}" if owner.protocol == "atol" else ""
                use = f"use --url {owner.urls[0]}{protocol}, or "
            text = f"the state {state} is served by {owner}: {use}stop it with {stop}"
        else:
            end = f" (`kill {owner.pid}` ends it)" if owner.pid is not None else ""
            text = (
                f"the state {state} is in use by {owner}: one state directory has one owner; "
                f"wait until it closes the register{end}, or serve the state once with "
                f"`kkt emulator serve --state {state}` and reach it with --url socket://HOST:PORT"
            )
        super().__init__(text)


class StateLock:
    """The held lock of a state directory (see the module docstring); `release` lets go."""

    def __init__(self, state: Path, fd: int) -> None:
        self.state = state
        self.path = state / LOCK_NAME
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state: Path, *, command: str | None = None) -> StateLock:
        """Take ``state``'s lock and write this process into the pidfile; raises `StateBusy`
        (the directory must exist)."""
        fd = os.open(state / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + _LOCK_RETRY
            while True:
                try:
                    flock(fd, LOCK_EX | LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StateBusy(state, _read_owner(state / LOCK_NAME)) from None
                    time.sleep(0.02)
        except BaseException:
            os.close(fd)
            raise
        lock = cls(state, fd)
        lock.announce(command=command)
        return lock

    def announce(
        self,
        *,
        command: str | None = None,
        serving: bool = False,
        urls: tuple[str, ...] = (),
        protocol: str = "",
    ) -> None:
        """Say in the pidfile who holds the state (``command``: this process's command line)
        and, for a server, where it listens."""
        if self._fd is None:
            raise RuntimeError("the state's lock is released")
        about: dict[str, Any] = {"command": command or _command_line()}
        if serving:
            about.update(serving=True, urls=list(urls), protocol=protocol)
        text = f"{os.getpid()}\n{json.dumps(about, ensure_ascii=False)}\n".encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text, 0)

    def release(self) -> None:
        """Let go of the state (the pidfile stays: without the lock it names nobody)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor drops the flock


def state_owner(state: Path) -> Owner | None:
    """Who holds ``state`` now; None when nobody does."""
    path = state / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):  # no state, or no lock file: nobody
        return None
    try:
        try:
            flock(fd, LOCK_SH | LOCK_NB)
        except BlockingIOError:
            return _read_owner(path)
        return None  # free: the shared lock just taken goes with the descriptor
    finally:
        os.close(fd)


def _read_owner(path: Path) -> Owner:
    # The owner writes its pidfile just after taking the lock: give it a moment.
    for _ in range(10):
        with contextlib.suppress(OSError, ValueError):
            first, _, rest = path.read_text(encoding="utf-8").partition("\n")
            if first.strip():
                about = json.loads(rest) if rest.strip() else {}
                return Owner(
                    pid=int(first),
                    command=str(about.get("command", "")),
                    serving=bool(about.get("serving", False)),
                    urls=tuple(str(url) for url in about.get("urls", ())),
                    protocol=str(about.get("protocol", "")),
                )
        time.sleep(0.02)
    return Owner(pid=None)


def _command_line() -> str:
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if program == "__main__.py" and spec is not None:  # python -m PACKAGE
        program = "python -m " + spec.name.removesuffix(".__main__")
    words = [program, *sys.argv[1:]]
    text = " ".join(words)
    return text if len(text) <= 200 else text[:199] + "…"


def open_model(
    state: Path,
    *,
    fiscal_only: bool = False,
    ffd: str = "1.2",
    clock: Clock | None = None,
    inn: str | None = None,
) -> RegisterModel:
    """The vendor-neutral register kept in the directory ``state``, held by this opener until
    the model is closed (raises `StateBusy` when another holds it; see the module docstring).

    A new directory starts as a registered register: the user's INN ``inn`` (None: a test INN)
    and an RNM made for it and the register's serial, FN in fiscal mode, shift closed.
    Reopening one continues it; ``fiscal_only``, ``ffd`` and ``inn`` only matter the first time
    (a registration is the FN's: changing the owner's INN takes a new FN).
    """
    if ffd not in FFD_CODES:
        raise ValueError(f"FFD version must be one of {', '.join(FFD_CODES)}, not {ffd!r}")
    if inn is not None and not inn_is_valid(inn):
        raise ValueError(
            f"INN {inn!r} is not valid: an INN is 10 digits (a company) or 12 (a person) "
            "ending in its check digits"
        )
    state.mkdir(parents=True, exist_ok=True)
    lock = StateLock.acquire(state)  # before anything in the directory is read or written
    try:
        model = _open_model(state, fiscal_only=fiscal_only, ffd=ffd, clock=clock, inn=inn)
    except BaseException:
        lock.release()
        raise
    model.owner = lock
    return model


def _open_model(
    state: Path, *, fiscal_only: bool, ffd: str, clock: Clock | None, inn: str | None = None
) -> RegisterModel:
    settings = RegisterSettings.load(state / "register.json")
    first_time = "fiscal_only" not in settings.extra
    if first_time:
        settings.extra["fiscal_only"] = fiscal_only
        settings.save()
    fiscal_only = bool(settings.extra["fiscal_only"])
    if clock is None:
        clock = SystemClock(dt.timedelta(seconds=settings.clock_offset))
    if "fn_serial" not in settings.extra:
        # Each new emulated FN gets its own serial in the test range, so a farm of emulators
        # looks like a farm (journals and OFDs tell FNs apart by serial); an FN created before
        # serials were drawn keeps the one it has.
        fresh = not (state / "fn.sqlite").exists()
        default = FnConfig().serial
        settings.extra["fn_serial"] = (
            default[:8] + f"{secrets.randbelow(10**8):08d}" if fresh else default
        )
        settings.save()
    config = FnConfig(serial=str(settings.extra["fn_serial"]))
    storage = FiscalStorage(SqliteStore(state / "fn.sqlite"), clock, config=config)
    if storage.status().phase is LifePhase.READY:
        mode = WorkMode.INTERNET | WorkMode.AUTOMATIC if fiscal_only else WorkMode(0)
        owner = inn or TEST_INN
        registration = Registration(
            inn=owner,
            rnm=make_rnm("0000000001", owner, settings.serial),
            kkt_serial=settings.serial,
            tax_systems=0x03,  # ОСН and УСН доход
            work_mode=int(mode),
            ofd_inn=TEST_OFD_INN,
            ffd_version=FFD_CODES[ffd],
        )
        storage.register(
            registration,
            registration_tags(settings, registration, settings.operator_name(SYSADMIN)),
        )
    return RegisterModel(storage, settings, clock, fiscal_only=fiscal_only)
