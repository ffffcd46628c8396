"""The pty shell: a device served on a pseudo-terminal, opened by testers like a COM port.

The pty's slave end gets a stable symlink (say ``/tmp/kkt-shtrih``) so a host can be configured
once and the emulator restarted at will.  The slave is put in raw mode (no echo, no line editing:
protocol bytes such as 0x05 or 0x15 must pass untouched), and this process keeps the slave open
itself: with no other holder of the slave, Linux fails reads on the master with EIO, which would
turn every host disconnect into a dead emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import tty
from pathlib import Path

from .listener import Listener, PumpFactory
from .pump import Pump

log = logging.getLogger(__name__)

_READ_SIZE = 4096


def point_link(link: Path, target: str) -> None:
    """Make ``link`` a symlink to ``target``, replacing a symlink but never any other file.

    Any existing symlink is taken as stale: a pty number freed by a crashed emulator is soon
    reused by some terminal, so "its target exists" proves nothing.
    """
    if os.path.lexists(link) and not link.is_symlink():
        raise FileExistsError(
            errno.EEXIST,
            f"{link} exists and is not a symlink; refusing to replace it (choose another path)",
            str(link),
        )
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    os.symlink(target, temporary)
    os.replace(temporary, link)  # atomic: a host never sees the link missing


class PtyServer(Listener):
    """One pseudo-terminal and its symlink; one link, since a serial line has one host."""

    def __init__(self, make_pump: PumpFactory, link: Path) -> None:
        self.link = link
        self._make_pump = make_pump
        self._master = -1
        self._slave = -1
        self.tty_name = ""
        self._pump: Pump | None = None
        self._pumps: list[Pump] = []  # every pump made, so wait_closed sees running commands
        self._reading = False

    def start(self) -> None:
        """Open the pty, point the link at it and start reading; raises `OSError`."""
        loop = asyncio.get_running_loop()
        self._master, self._slave = os.openpty()
        try:
            tty.setraw(self._slave)
            os.set_blocking(self._master, False)
            self.tty_name = os.ttyname(self._slave)
            point_link(self.link, self.tty_name)
        except BaseException:
            self._close_fds()
            raise
        self._new_pump()
        loop.add_reader(self._master, self._readable)
        self._reading = True

    def close(self) -> None:
        """Stop reading, remove the symlink (if still ours) and close the pty."""
        if self._reading:
            asyncio.get_running_loop().remove_reader(self._master)
            self._reading = False
        for pump in self._pumps:
            pump.close()
        with contextlib.suppress(OSError):
            if self.tty_name and os.readlink(self.link) == self.tty_name:
                self.link.unlink()
        self._close_fds()

    async def wait_closed(self) -> None:
        """Wait for a command still running."""
        await asyncio.gather(*(pump.wait_closed() for pump in self._pumps))

    # -- internals ------------------------------------------------------------------------------

    def _new_pump(self) -> None:
        # A link that failed is replaced, as a register reboots: the pty itself stays up.
        self._pumps = [pump for pump in self._pumps if pump.task and not pump.task.done()]
        self._pump = self._make_pump(self._write, f"pty {self.tty_name}", self._new_pump)
        self._pumps.append(self._pump)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            # EIO means no one holds the slave; we do, so this is unexpected: stop, don't spin.
            log.warning("pty %s: read failed (%s); no longer serving it", self.tty_name, exc)
            asyncio.get_running_loop().remove_reader(self._master)
            self._reading = False
            return
        if data and self._pump is not None:
            self._pump.feed(data)

    def _write(self, data: bytes) -> None:
        try:
            written = os.write(self._master, data)
        except OSError:  # BlockingIOError: the pty buffer is full
            written = 0
        if written < len(data):
            # No one reads the other end; a serial line with no listener loses bytes as well.
            log.debug("pty %s: %d bytes not delivered", self.tty_name, len(data) - written)

    def _close_fds(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1
