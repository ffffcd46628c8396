"""``kkt cloud``: passwd, serve (a real child process stopped by SIGTERM), and the message when
the ``cloud`` extra is not installed."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from kkt.cloud import service as service_module
from kkt.cloud.auth import verify_password
from kkt.cloud.config import demo_config
from kkt.cloud.service import CloudService
from kkt.emulator.state import StateLock
from kkt.tools.cli import main


def test_passwd_prints_a_hash_of_the_piped_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret\n"))
    assert main(["cloud", "passwd"]) == 0
    printed = capsys.readouterr().out.strip()
    assert verify_password("s3cret", printed) and not verify_password("s3cret\n", printed)


def test_passwd_refuses_an_empty_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert main(["cloud", "passwd"]) == 2
    assert "empty password" in capsys.readouterr().err


def test_without_the_extra_it_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi -> ImportError
    assert main(["cloud", "serve", "--emulated", "0"]) == 2
    assert "pip install 'kktkit[cloud]'" in capsys.readouterr().err


def test_real_registers_need_a_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["cloud", "serve", "--state", str(tmp_path), "--register", "socket://127.0.0.1:9"])
    assert code == 2 and "--config" in capsys.readouterr().err


def test_import_kkt_does_not_import_the_web_stack(tmp_path: Path) -> None:
    code = (
        "import sys, kkt, kkt.tools.cli; print(sorted({'fastapi', 'uvicorn'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_serve_prints_its_lines_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kkt",
            "cloud",
            "serve",
            "--state",
            str(state),
            "--http",
            "127.0.0.1:0",
            "--emulated",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert child.stdout is not None
        lines = []
        while not (lines and lines[-1].startswith("listening")):
            line = child.stdout.readline()
            assert line, f"serve ended early: {child.stderr.read() if child.stderr else ''}"
            lines.append(line.strip())
        assert lines[0] == "registers 0 (none)"
        # the INN the emulated registers have: requests send it as company.inn
        assert "demo login: demo password: demo group: demo inn: 7701000001" in lines
        url = lines[-1].removeprefix("listening ")
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        answer = httpx.post(f"{url}/possystem/v4/getToken", json={"login": "demo", "pass": "demo"})
        assert answer.status_code == 200 and answer.json()["token"]
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert (state / "cloud.sqlite").exists()


def test_a_second_serve_on_the_same_state_exits_2_naming_the_first(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with CloudService(demo_config(0), state):
        code = main(["cloud", "serve", "--state", str(state), "--http", "127.0.0.1:0"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"another kkt cloud serve (pid {os.getpid()}) uses {state}" in err
    assert not (state / "emulated").exists()  # its registers never started


def test_the_port_is_bound_before_any_register_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = main(["cloud", "serve", "--state", str(state), "--http", f"127.0.0.1:{port}"])
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert not (state / "emulated").exists()  # no emulated register was started


def test_emulated_registers_that_cannot_start_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    register = state / "emulated" / "00"
    register.mkdir(parents=True)
    monkeypatch.setattr(service_module, "EMULATED_LOCK_WAIT", 0.0)  # the holder never lets go
    held = StateLock.acquire(register, command="someone else")
    try:
        code = main(["cloud", "serve", "--state", str(state), "--http", "127.0.0.1:0"])
    finally:
        held.release()
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("kkt cloud serve: ") and "someone else" in lines[0]
