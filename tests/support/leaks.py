"""What a test may not leave behind: threads, tasks of a loop still running, sockets, ptys and
child processes.

`Snapshot.take()` records them before a test; `Snapshot.leaks()` lists what is new after it,
waiting up to a grace period for what is ending anyway (a thread on its way out, a socket its
thread is closing, a child being reaped).  The root conftest fails every test with a leak.

The process's open files come from /proc/self/fd (a socket reads ``socket:[inode]``, a pty
``/dev/ptmx`` or ``/dev/pts/N``), its children from /proc/self/task/*/children: Linux only, and
the check does nothing where /proc is missing.  Not leaks: what existed before the test, and
multiprocessing's own helper processes (`process_helpers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc/self")
GRACE_SECONDS = 2.0  # a loaded 2-core machine: a thread told to stop may need a moment


def _watched(target: str) -> bool:
    return target.startswith("socket:") or target == "/dev/ptmx" or target.startswith("/dev/pts/")


def open_files() -> dict[int, str]:
    """fd -> target for the process's sockets and ptys."""
    found: dict[int, str] = {}
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(PROC / "fd"):
            try:
                target = os.readlink(PROC / "fd" / name)
            except OSError:  # closed meanwhile (the listing's own fd, or another thread's)
                continue
            if _watched(target):
                found[int(name)] = target
    return found


def children() -> set[int]:
    """PIDs of the process's children (those of every thread), running or not yet reaped."""
    pids: set[int] = set()
    with contextlib.suppress(FileNotFoundError):
        for task in os.listdir(PROC / "task"):
            with contextlib.suppress(OSError):
                listed = (PROC / "task" / task / "children").read_text()
                pids |= {int(pid) for pid in listed.split()}
    return pids


def process_helpers() -> set[int]:
    """PIDs of multiprocessing's own helper processes: the resource tracker (started by the first
    "spawn" or "forkserver" process, it serves every later one) and the fork server.  They live
    as long as the interpreter by design and have no public way to stop, so a test that starts
    one has not leaked it.  Read from multiprocessing's singletons, only if it is loaded."""
    helpers: set[int] = set()
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    if tracker is not None:
        helpers.add(getattr(tracker._resource_tracker, "_pid", None) or 0)
    forkserver = sys.modules.get("multiprocessing.forkserver")
    if forkserver is not None:
        helpers.add(getattr(forkserver._forkserver, "_forkserver_pid", None) or 0)
    return helpers - {0}


def describe_child(pid: int) -> str:
    try:
        command = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")).decode()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return f"pid {pid} (gone)"
    what = "exited, never waited for" if state == "Z" else f"state {state}"
    return f"pid {pid} ({what}): {command.strip() or '?'}"


def running_tasks() -> set[asyncio.Task[object]]:
    """Unfinished tasks of every event loop still running in some thread.  A loop runs in a
    thread, so with no thread but the main one (which runs no loop between tests) there is none
    and the costly search for loops is skipped."""
    if threading.active_count() <= 1:
        return set()
    tasks: set[asyncio.Task[object]] = set()
    for thing in gc.get_objects():
        if isinstance(thing, asyncio.AbstractEventLoop) and thing.is_running():
            with contextlib.suppress(RuntimeError):  # the loop's thread changed its task set
                tasks |= {task for task in asyncio.all_tasks(thing) if not task.done()}
    return tasks


def _task_name(task: asyncio.Task[object]) -> str:
    coroutine = task.get_coro()
    code = getattr(coroutine, "__qualname__", None) or repr(coroutine)
    return f"{task.get_name()} ({code})"


@dataclass(frozen=True)
class Snapshot:
    threads: frozenset[threading.Thread]
    tasks: frozenset[asyncio.Task[object]]
    files: frozenset[tuple[int, str]]
    children: frozenset[int]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(
            frozenset(threading.enumerate()),
            frozenset(running_tasks()),
            frozenset(open_files().items()),
            frozenset(children()),
        )

    def leaks(self, grace: float = GRACE_SECONDS) -> list[str]:
        """What is alive now and was not in this snapshot, after waiting up to ``grace``
        seconds for it to end; an empty list when nothing leaked."""
        deadline = time.monotonic() + grace
        while True:
            new_threads = [t for t in threading.enumerate() if t not in self.threads]
            for thread in new_threads:  # give a thread on its way out the time to end
                thread.join(max(0.0, min(0.2, deadline - time.monotonic())))
            found = self._compare()
            if not found or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def _compare(self) -> list[str]:
        found: list[str] = []
        threads = [t for t in threading.enumerate() if t not in self.threads and t.is_alive()]
        found += [
            f"thread {t.name!r} ({'daemon' if t.daemon else 'not daemon'}, target {_target(t)})"
            for t in threads
        ]
        tasks = running_tasks() - self.tasks
        found += [f"asyncio task {_task_name(task)}" for task in tasks]
        files = sorted(set(open_files().items()) - self.files)
        found += [f"fd {fd} -> {target}" for fd, target in files]
        new_children = children() - self.children - process_helpers()
        found += [f"child {describe_child(pid)}" for pid in sorted(new_children)]
        return found


def _target(thread: threading.Thread) -> str:
    target = getattr(thread, "_target", None)
    if target is None:
        return type(thread).__qualname__
    return getattr(target, "__qualname__", None) or repr(target)
