"""The root conftest's leak check (`support.leaks`) sees each kind of leak and names it, and lets
a thread that is ending anyway end."""

from __future__ import annotations

import asyncio
import os
import pty
import socket
import subprocess
import sys
import threading
import time

from support.leaks import Snapshot


def test_a_thread_and_its_running_loops_tasks_are_named() -> None:
    before = Snapshot.take()
    started, stop = threading.Event(), threading.Event()

    async def serve() -> None:
        asyncio.get_running_loop().create_task(asyncio.sleep(60), name="left-running")
        started.set()
        while not stop.is_set():
            await asyncio.sleep(0.01)

    thread = threading.Thread(target=lambda: asyncio.run(serve()), name="leaky-loop")
    thread.start()
    try:
        assert started.wait(10)
        leaks = before.leaks(grace=0.2)
    finally:
        stop.set()
        thread.join(10)
    assert any(leak.startswith("thread 'leaky-loop'") for leak in leaks), leaks
    assert any(leak.startswith("asyncio task left-running") for leak in leaks), leaks
    assert before.leaks() == []


def test_a_thread_on_its_way_out_is_given_the_time_to_end() -> None:
    before = Snapshot.take()
    threading.Thread(target=time.sleep, args=(0.3,), name="ending").start()
    assert before.leaks(grace=2.0) == []


def test_a_socket_and_a_pty_are_named_by_their_fd_targets() -> None:
    before = Snapshot.take()
    primary, secondary = pty.openpty()
    try:
        with socket.socket() as probe:
            leaks = before.leaks(grace=0.1)
            expected = [
                f"fd {fd} -> {os.readlink(f'/proc/self/fd/{fd}')}"
                for fd in (primary, secondary, probe.fileno())
            ]
    finally:
        os.close(primary)
        os.close(secondary)
    assert expected[0].endswith("/dev/ptmx") and "/dev/pts/" in expected[1]
    assert "socket:[" in expected[2]
    assert sorted(leaks) == sorted(expected)
    assert before.leaks() == []


def test_a_child_process_is_named_with_its_pid_and_command() -> None:
    before = Snapshot.take()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        leaks = before.leaks(grace=0.1)
    finally:
        child.kill()
        child.wait(10)
    assert any(
        leak.startswith(f"child pid {child.pid} ") and "time.sleep" in leak for leak in leaks
    ), leaks
    assert before.leaks() == []
