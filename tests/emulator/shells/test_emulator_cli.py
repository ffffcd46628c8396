"""``kkt emulator serve`` and ``kkt emulator verify``: listeners, signals, and clear errors."""

from __future__ import annotations

import io
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kkt.protocols.shtrih.frame import encode_frame
from kkt.tools import emulator_cli
from kkt.tools.cli import main
from support.shells import ACK, ENQ, NAK, FakeDevice

pytestmark = pytest.mark.timeout(30)


@dataclass(frozen=True)
class FakeVerification:
    ok: bool
    documents: int
    problems: tuple[str, ...]


class FakeRegister(FakeDevice):
    def __init__(self, problems: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.problems = problems

    def verify(self) -> FakeVerification:
        return FakeVerification(not self.problems, 7, self.problems)


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch) -> FakeRegister:
    fake = FakeRegister()
    monkeypatch.setattr(emulator_cli, "open_register", lambda state, **_: fake)
    return fake


class SignalOnFlush(io.StringIO):
    """stdout that sends the process a signal once the listener lines are flushed."""

    def __init__(self, number: signal.Signals) -> None:
        super().__init__()
        self.number = number

    def flush(self) -> None:
        if "listening" in self.getvalue():
            os.kill(os.getpid(), self.number)


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_a_signal(
    number: signal.Signals,
    register: FakeRegister,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = SignalOnFlush(number)
    monkeypatch.setattr(sys, "stdout", out)
    link = tmp_path / "tty"
    argv = ["emulator", "serve", "--tcp", "127.0.0.1:0", "--pty", str(link), "--state"]
    assert main([*argv, str(tmp_path / "state")]) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("listening tcp 127.0.0.1:")
    assert not lines[0].endswith(":0")  # the real port, not the one asked for
    assert lines[1].startswith(f"listening pty {link} -> /dev/pts/")
    assert register.closed
    assert not os.path.lexists(link)


def test_bad_address(register: FakeRegister, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("7778", "localhost:", ":7778", "127.0.0.1:http", "127.0.0.1:70000"):
        assert main(["emulator", "serve", "--tcp", bad, "--state", "/nonexistent"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("kkt emulator serve: --tcp takes HOST:PORT"), err


def test_busy_port(register: FakeRegister, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["emulator", "serve", "--tcp", f"127.0.0.1:{port}", "--state", str(tmp_path)])
    assert code == 2
    assert f"127.0.0.1:{port} is already in use" in capsys.readouterr().err
    assert register.closed


def test_unwritable_state(
    register: FakeRegister, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for state in (blocker, blocker / "below"):
        assert main(["emulator", "serve", "--tcp", "127.0.0.1:0", "--state", str(state)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"kkt emulator serve: cannot use {state} as the state directory")
        assert "Traceback" not in err


def test_model_is_shtrihs_alone(
    register: FakeRegister, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["emulator", "serve", "--protocol", "atol", "--model", "ШТРИХ-М-02Ф"]
    assert main([*argv, "--state", str(tmp_path / "state")]) == 2
    assert "--protocol atol is АТОЛ 30Ф (АТОЛ 42ФС with --fiscal-only)" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()  # refused before anything was made
    # a model not known: the usage error names the ones there are
    assert main(["emulator", "serve", "--model", "ШТРИХ-ЛАЙТ-01Ф", "--state", str(tmp_path)]) == 2
    assert "choose from 'ШТРИХ-М-01Ф', 'ШТРИХ-М-02Ф'" in capsys.readouterr().err


def test_pty_link_over_a_file(
    register: FakeRegister, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "file"
    link.write_text("keep me")
    argv = ["emulator", "serve", "--tcp", "127.0.0.1:0", "--pty", str(link)]
    assert main([*argv, "--state", str(tmp_path / "state")]) == 2
    assert "is not a symlink" in capsys.readouterr().err
    assert link.read_text() == "keep me"
    assert register.closed


def test_verify(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setattr(emulator_cli, "open_register", lambda state, **_: FakeRegister())
    assert main(["emulator", "verify", "--state", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "documents: 7\nok\n"
    bad = FakeRegister(("gap after document 3", "counter 1 differs"))
    monkeypatch.setattr(emulator_cli, "open_register", lambda state, **_: bad)
    assert main(["emulator", "verify", "--state", str(tmp_path)]) == 1
    assert capsys.readouterr().out == (
        "documents: 7\nproblem: gap after document 3\nproblem: counter 1 differs\n"
    )
    assert bad.closed
    assert main(["emulator", "verify", "--state", str(tmp_path / "missing")]) == 2
    assert "is not a directory of emulator state" in capsys.readouterr().err


def _read_line(stream: Any, timeout: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        assert selector.select(timeout), "no listener line in time"
    return stream.readline().decode()


def test_serve_subprocess_with_the_real_register(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    command = [sys.executable, "-m", "kkt.tools", "emulator", "serve"]
    with subprocess.Popen(
        [*command, "--tcp", "127.0.0.1:0", "--state", str(state)],
        bufsize=0,  # unbuffered: select() then sees every line that is not read yet
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        try:
            assert process.stdout is not None
            line = _read_line(process.stdout, 20)
            assert line.startswith("listening tcp 127.0.0.1:"), line
            port = int(line.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.sendall(ENQ)
                assert client.recv(1) == NAK
                client.sendall(encode_frame(b"\x10\x1e\x00\x00\x00"))  # GetShortStatus
                reply = b""
                while len(reply) < 4 or len(reply) < reply[2] + 4:
                    chunk = client.recv(512)
                    assert chunk, f"connection closed after {reply.hex(' ')}"
                    reply += chunk
                assert reply[:1] == ACK and reply[1:2] == b"\x02" and reply[3] == 0x10
                client.sendall(ACK)
            control = _read_line(process.stdout, 20)
            assert control.strip() == f"control unix {state / 'control.sock'}"
            ctl = ["emulator", "ctl", "--state", str(state)]
            assert main([*ctl, "clock", "advance", "3600"]) == 0
            assert '"now"' in capsys.readouterr().out
            assert main([*ctl, "paper", "out"]) == 0
            assert main([*ctl, "--json", "status"]) == 0
            status = json.loads(capsys.readouterr().out.split("\n", 1)[1])
            assert status["status"]["paper"] is False and status["status"]["mode"] == 4
            assert main([*ctl, "fault", "wire", "--drop", "0.5", "--seed", "1"]) == 0
            assert '"drop": 0.5' in capsys.readouterr().out
            assert main([*ctl, "fault", "clear"]) == 0
            capsys.readouterr()
            # The emulated ОИСМ: an answer for one code (GS written <GS>), its state, a reset.
            assert main([*ctl, "--json", "oism", "withdrawn", "0104600000000017215abc<GS>93x"]) == 0
            oism = json.loads(capsys.readouterr().out)
            assert oism["ok"] and list(oism["oism"]["codes"].values()) == ["withdrawn"], oism
            assert main([*ctl, "oism", "sideways"]) == 1
            assert "valid, wrong-status" in capsys.readouterr().out
            assert main([*ctl, "oism", "reset"]) == 0
            assert '"default": "valid"' in capsys.readouterr().out
            assert main([*ctl, "--json", "oism", "deliver"]) == 0
            assert json.loads(capsys.readouterr().out)["delivered"] == 0
            assert main([*ctl, "qr", "1"]) == 1  # document 1 is the registration, not a receipt
            assert "refused" in capsys.readouterr().out
            assert main([*ctl, "dance"]) == 2
            assert "unknown control action" in capsys.readouterr().err
            assert main([*ctl, "tape"]) == 0
            capsys.readouterr()
            assert main([*ctl, "tape", "--format", "svg"]) == 0
            assert capsys.readouterr().out.startswith("<svg")
            assert main([*ctl, "status", "--format", "svg"]) == 2  # only the tape is drawn
            # The tape is drawn as printed (48 wide): narrower, its figures would be cut off.
            assert main([*ctl, "tape", "--format", "txt", "--width", "32"]) == 2
            assert "kkt doc N --format txt --width 32" in capsys.readouterr().err
            assert main([*ctl, "tape", "--width", "48"]) == 2
            assert "give --format" in capsys.readouterr().err
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
            assert not (state / "control.sock").exists()
            assert main([*ctl, "status"]) == 2
            assert "no emulator is running" in capsys.readouterr().err
        finally:
            if process.poll() is None:
                process.kill()
        assert process.stderr is not None
        assert b"Traceback" not in process.stderr.read()
    verify = subprocess.run(
        [sys.executable, "-m", "kkt.tools", "emulator", "verify", "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.endswith("ok\n")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("filler", [True, False])
def test_tcp_filler_after_ack_is_optional(filler: bool) -> None:
    import asyncio

    from support.shells import TcpClient, answer_to, serve_tcp

    async def scenario() -> None:
        async with await serve_tcp(FakeDevice(), port=0, filler_after_ack=filler) as server:
            client = await TcpClient().connect(server.port)
            try:
                payload = b"\x10\x1e\x00\x00\x00"
                await client.send(encode_frame(payload))
                await client.expect(ACK + encode_frame(answer_to(payload)))
                await client.send(ACK)
                if filler:
                    await client.expect(b"\xff")
                await client.expect_silence(0.2)
            finally:
                await client.close()

    asyncio.run(scenario())
