"""Scoped logging: a logger's DEBUG records into a handler for one block, then as it was."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def logging_into(handler: logging.Handler, name: str = "kkt") -> Iterator[None]:
    """Logger ``name`` at DEBUG into ``handler`` while the block runs; then its level as before,
    the handler removed and closed (a command may run many times in one process: tests, a
    shell embedding it, a bench's rounds)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
