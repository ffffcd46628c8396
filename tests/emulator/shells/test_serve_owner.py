"""``kkt emulator serve`` owns its state: a second opener is told who serves it, ``kkt emulator
stop`` stops it, and ``kkt -v emulator serve`` / ``--trace FILE`` shows every frame decoded."""

from __future__ import annotations

import contextlib
import re
import selectors
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from kkt.tools.cli import main

import kkt
from kkt.errors import PortBusy

pytestmark = pytest.mark.timeout(60)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _read_line(stream: IO[bytes], timeout: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        assert selector.select(timeout), "no line from the emulator in time"
    return stream.readline().decode()


@contextlib.contextmanager
def serving(state: Path, *options: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``kkt [options] emulator serve`` on a free TCP port, in a child process: (it, its URL)."""
    before = [word for word in options if word == "-v"]
    after = [word for word in options if word != "-v"]
    command = [sys.executable, "-m", "kkt.tools", *before, "emulator", "serve"]
    with subprocess.Popen(
        [*command, "--state", str(state), "--tcp", "127.0.0.1:0", *after],
        bufsize=0,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        try:
            assert process.stdout is not None
            line = _read_line(process.stdout, 20)
            assert line.startswith("listening tcp 127.0.0.1:"), line
            assert _read_line(process.stdout, 20).startswith("control unix ")
            yield process, "socket://" + line.split()[-1]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def test_a_served_state_has_one_owner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "kkt1"
    with serving(state) as (server, url):
        stop = f"`kkt emulator stop --state {state}`"
        served_by = f"the state {state} is served by process {server.pid}"
        # The in-process URL: refused, naming the owner, the URL to use and how to stop it.
        with pytest.raises(PortBusy) as refused:
            kkt.connect(f"emulator:{state}")
        assert served_by in str(refused.value)
        assert f"use --url {url}" in str(refused.value) and stop in str(refused.value)
        assert main(["--url", f"emulator:{state}", "status"]) == 3
        busy = capsys.readouterr().err
        assert served_by in busy
        assert "kkt doctor" not in busy  # the link is fine: the way out is the owner's URL
        # A second server: refused before it opens anything; the first's socket survives.
        assert main(["emulator", "serve", "--state", str(state), "--tcp", "127.0.0.1:0"]) == 2
        err = capsys.readouterr().err
        assert served_by in err and stop in err
        assert (state / "control.sock").is_socket()
        assert main(["emulator", "ctl", "--state", str(state), "status"]) == 0
        # verify wants the state to itself.
        assert main(["emulator", "verify", "--state", str(state)]) == 2
        assert "verify needs it to itself" in capsys.readouterr().err
        # The server's archive was not damaged: it sells on.
        assert main(["--url", url, "shift", "open"]) == 0
        assert main(["--url", url, "sell", str(EXAMPLES / "receipt.json")]) == 0
        capsys.readouterr()
        # kkt emulator stop: SIGTERM through the pidfile, and wait.
        assert main(["emulator", "stop", "--state", str(state)]) == 0
        assert f"stopped process {server.pid}" in capsys.readouterr().out
        assert server.poll() == 0  # stop waited until it exited
        assert not (state / "control.sock").exists()
        assert server.stderr is not None and b"Traceback" not in server.stderr.read()
    assert main(["emulator", "stop", "--state", str(state)]) == 1
    assert f"nothing serves {state}" in capsys.readouterr().err
    assert main(["emulator", "verify", "--state", str(state)]) == 0
    assert capsys.readouterr().out.endswith("ok\n")


def test_stop_does_not_signal_an_opener_that_is_not_a_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kkt.emulator.shtrih import open_device

    state = tmp_path / "kkt"
    device = open_device(state)  # this process holds it: stop must not SIGTERM us
    try:
        assert main(["emulator", "stop", "--state", str(state)]) == 1
        assert "not by `kkt emulator serve`" in capsys.readouterr().err
    finally:
        device.close()


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
def test_serve_traces_every_frame_decoded(
    protocol: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, trace = tmp_path / "kkt", tmp_path / "trace.log"
    with serving(state, "-v", "--protocol", protocol, "--trace", str(trace)) as (server, url):
        client = ["--protocol", protocol, "--url", url]
        assert main([*client, "status"]) == 0
        assert main([*client, "sell", str(EXAMPLES / "receipt.json")]) == 1  # shift closed
        assert "refused" in capsys.readouterr().err
        assert main(["emulator", "stop", "--state", str(state)]) == 0
        assert server.stderr is not None
        shown = server.stderr.read().decode()
    written = trace.read_text()
    for text in (shown, written):  # -v on stderr, and the file: the same lines
        lines = text.splitlines()
        assert any(line.endswith(" connected") for line in lines)
        assert any(line.endswith(" closed") for line in lines)
        if protocol == "shtrih":
            assert any(">> request GetShortStatus()" in line for line in lines)
            assert any("<< answer GetShortStatus -> ShortStatus(" in line for line in lines)
            # The example's receipt has several items: its first FF46 opens it (no 8Dh).
            refusal = "<< answer OperationV2 -> refused: command 0xff46 refused with 3Dh"
        else:
            assert any(">> packet" in line and "host: Add TID" in line for line in lines)
            assert any("<< packet" in line and "device: Result" in line for line in lines)
            # The reply to an Ack is the task's bare state, not a malformed answer.
            assert any("<< packet" in line and "acknowledged" in line for line in lines)
            assert not any("malformed" in line for line in lines), text
            # The result comes in the F0 packet (`--atol-results async`, the default).
            refusal = ": OpenReceipt -> refused: ATOL error 0x"
            async_refusal = re.compile(r"device: AsyncError TID [0-9A-F]{2}" + re.escape(refusal))
            assert any(async_refusal.search(line) for line in lines), text
        assert any(refusal in line for line in lines), text
        assert all(
            line[:2].isdigit() and line[2] == ":" and " tcp 127.0.0.1:" in line for line in lines
        )
    assert "Traceback" not in shown
