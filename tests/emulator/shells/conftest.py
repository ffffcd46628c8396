"""Every shell test must leave no thread, socket or pty behind."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    threads, fds = set(threading.enumerate()), _fds()
    yield
    assert set(threading.enumerate()) - threads == set()
    leaked = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in _fds() - fds if _alive(fd)}
    assert leaked == {}


def _alive(fd: str) -> bool:
    try:
        os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:  # the fd of the listdir itself
        return False
    return True
