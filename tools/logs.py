"""Where the ``kkt`` command sends the library's log records, and how they look.

A command (``kkt sell``, ``kkt status`` ...) keeps the driver's news to itself unless asked: a line
fault the driver recovered from is not the user's news, and a bare ``log.warning`` line under a
successful result reads like a failure.  So by default only ERROR records reach standard error,
as ``kkt: error: ...``; ``-v`` adds the driver's INFO and warnings (``kkt: warning: ...``) and the
frame trace; ``-vv`` everything (the driver's reasoning).

A server (``kkt cloud serve``, ``kkt emulator serve``, ``kkt ofd serve``) is watched through its
log: its own package's INFO records (requests failed, callbacks attempted, documents stored ...)
and every warning, time-stamped, by default; ``-v`` adds the raw frames, ``-vv`` everything.

Everything is undone when the block ends (``main`` may run many times in one process: tests, a
shell embedding it, a bench's rounds).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping

TRACE = "kkt.trace"  # every frame on the wire (the driver's, and the emulator's server trace)


@contextlib.contextmanager
def logging_into(handler: logging.Handler, name: str = "kkt") -> Iterator[None]:
    """Logger ``name`` at DEBUG into ``handler`` while the block runs; then its level as before,
    the handler removed and closed."""
    with _configured(handler, name, {name: logging.DEBUG}):
        yield


@contextlib.contextmanager
def _configured(handler: logging.Handler, name: str, levels: Mapping[str, int]) -> Iterator[None]:
    """``handler`` on logger ``name`` and the loggers' ``levels`` for the block; then as before."""
    saved = {logger: logging.getLogger(logger).level for logger in levels}
    owner = logging.getLogger(name)
    owner.addHandler(handler)
    for logger, level in levels.items():
        logging.getLogger(logger).setLevel(level)
    try:
        yield
    finally:
        owner.removeHandler(handler)
        for logger, level in saved.items():
            logging.getLogger(logger).setLevel(level)
        handler.close()


class CommandFormat(logging.Formatter):
    """A command's lines: ``kkt: warning: ...``; trace lines bare (`kkt decode` reads them
    back); with ``named`` (-vv) the driver's reasoning prefixed with its logger, e.g.
    ``kkt.register: GetShortStatus(...) -> ...`` as before."""

    def __init__(self, *, named: bool = False) -> None:
        super().__init__()
        self.named = named

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            message += f" ({record.exc_info[1]!r})"  # one line: the cause, never a traceback
        if record.name == TRACE:
            return message
        if self.named:
            return f"{record.name}: {message}"
        return f"kkt: {record.levelname.lower()}: {message}"


class ServerFormat(logging.Formatter):
    """A server's lines: ``2026-12-03 12:00:00.123 info kkt.cloud.callbacks: ...``; the
    emulator's frame trace (time-stamped by itself) bare."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
                         datefmt="%Y-%m-%d %H:%M:%S")  # fmt: skip

    def format(self, record: logging.LogRecord) -> str:
        if record.name == f"{TRACE}.emulator":
            return record.getMessage()
        record.levelname = record.levelname.lower()
        return super().format(record)


@contextlib.contextmanager
def command_logging(handler: logging.Handler, verbosity: int) -> Iterator[None]:
    """A command's log (see the module's doc) into ``handler`` while the block runs."""
    if verbosity >= 2:
        handler.setFormatter(CommandFormat(named=True))
        levels = {"kkt": logging.DEBUG}
    elif verbosity == 1:
        handler.setFormatter(CommandFormat())
        levels = {"kkt": logging.INFO, TRACE: logging.DEBUG}
    else:
        handler.setFormatter(CommandFormat())
        # Records below ERROR still find this handler, so Python's last-resort handler never
        # prints them as bare lines; the handler lets none of them through.
        handler.setLevel(logging.ERROR)
        levels = {}
    with _configured(handler, "kkt", levels):
        yield


@contextlib.contextmanager
def server_logging(handler: logging.Handler, package: str, verbosity: int) -> Iterator[None]:
    """A server's log (see the module's doc): ``package``'s INFO, every warning, time-stamped;
    ``verbosity`` 1 adds the frames, 2 everything."""
    handler.setFormatter(ServerFormat())
    if verbosity >= 2:
        levels = {"kkt": logging.DEBUG}
    else:
        levels = {"kkt": logging.WARNING, package: logging.INFO}
        if verbosity == 1:
            levels[TRACE] = logging.DEBUG
        else:
            # `kkt emulator serve --trace FILE` turns the trace on for its file only: not here.
            handler.setLevel(logging.INFO)
    with _configured(handler, "kkt", levels):
        yield
