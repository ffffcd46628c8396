"""``kkt ofd serve|docs|ctl|stop``: a served OFD in a child process, steered and read through the
command line, owning its state like ``kkt emulator serve``."""

from __future__ import annotations

import contextlib
import json
import selectors
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from kkt.tools.cli import main
from support.ofd_client import FN, exchange, fd_session

pytestmark = pytest.mark.timeout(60)


def _read_line(stream: IO[bytes], timeout: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        assert selector.select(timeout), "no line from the OFD in time"
    return stream.readline().decode()


@contextlib.contextmanager
def serving(state: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``kkt ofd serve`` on a free port in a child process: (it, its port)."""
    command = [sys.executable, "-m", "kkt.tools", "ofd", "serve", "--tcp", "127.0.0.1:0"]
    with subprocess.Popen(
        [*command, "--state", str(state)], bufsize=0, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        try:
            assert process.stdout is not None
            line = _read_line(process.stdout, 20)
            assert line.startswith("listening tcp 127.0.0.1:"), line
            assert _read_line(process.stdout, 20) == f"control unix {state / 'control.sock'}\n"
            yield process, int(line.rsplit(":", 1)[1])
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def test_serve_docs_ctl_stop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "ofd"
    with serving(state) as (server, port):
        assert exchange(port, fd_session(1)) is not None
        # ctl: a fault, then the status that shows it
        assert main(["ofd", "ctl", "--state", str(state), "drop-ack", "1"]) == 0
        assert json.loads(capsys.readouterr().out)["faults"]["drop_ack"] == 1
        assert exchange(port, fd_session(2)) is None
        assert main(["ofd", "ctl", "--state", str(state), "--json", "status"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["ok"] and status["documents"] == 2 and status["stats"]["acks_dropped"] == 1
        # docs while it runs: FD 1 acknowledged, FD 2 stored without an ack
        assert main(["ofd", "docs", "--state", str(state), "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert [(r["fn"], r["fd"], r["type"], r["acked"]) for r in rows] == [
            (FN, 1, 3, True),
            (FN, 2, 3, False),
        ]
        assert all(r["received_at"] for r in rows)
        assert main(["ofd", "docs", "--state", str(state)]) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0].split() == ["FN", "FD", "type", "received", "at", "acked"]
        assert table[1].split()[:3] == [FN, "1", "3"] and table[2].split()[-1] == "no"
        assert table[-1] == "2 documents"
        # one owner: a second server is refused, naming the first and the way out
        assert main(["ofd", "serve", "--state", str(state), "--tcp", "127.0.0.1:0"]) == 2
        err = capsys.readouterr().err
        assert f"in use by process {server.pid}" in err and "kkt ofd stop --state" in err
        # stop: SIGTERM through the pidfile, waits until the state is free
        assert main(["ofd", "stop", "--state", str(state)]) == 0
        assert f"stopped process {server.pid}" in capsys.readouterr().out
        assert server.wait(10) == 0
    assert not (state / "control.sock").exists()
    assert main(["ofd", "stop", "--state", str(state)]) == 1
    assert "nothing serves" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["explode"], "unknown action 'explode'"),
        (["delay"], "delay takes 1..1 arguments"),
        (["delay", "soon"], "SECONDS must be a number"),
        (["reject", "-3"], "CODE must not be negative"),
        (["status", "now"], "status takes 0..0 arguments"),
    ],
)
def test_ctl_refuses_bad_words_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], words: list[str], message: str
) -> None:
    assert main(["ofd", "ctl", "--state", str(tmp_path), *words]) == 2
    assert message in capsys.readouterr().err


def test_commands_without_a_running_ofd_say_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ofd", "ctl", "--state", str(tmp_path), "status"]) == 2
    assert "no OFD is running" in capsys.readouterr().err
    assert main(["ofd", "docs", "--state", str(tmp_path)]) == 2
    assert "kkt ofd serve --state" in capsys.readouterr().err


def test_serve_refuses_a_bad_address_or_inn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ofd", "serve", "--state", str(tmp_path), "--tcp", "localhost"]) == 2
    assert "--tcp takes HOST:PORT" in capsys.readouterr().err
    assert main(["ofd", "serve", "--state", str(tmp_path), "--ofd-inn", "1234567890"]) == 2
    assert "not a valid INN" in capsys.readouterr().err
