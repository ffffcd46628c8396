"""``kkt cloud``: passwd, serve (a real child process stopped by SIGTERM), and the message when
the ``cloud`` extra is not installed."""

from __future__ import annotations

import datetime as dt
import io
import json
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
from kkt.cloud.model import RegisterView
from kkt.cloud.service import CloudService, SharedStorageRefused
from kkt.cloud.storage.base import InstanceView, LeaseView
from kkt.emulator.state import StateLock
from kkt.tools.cli import main
from kkt.tools.cloud_cli import _print_status, status_of

ROOT = Path(__file__).resolve().parents[2]


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


# -- several instances: --db and status -----------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [[], ["--emulated", "2"]],
    ids=["the-demo", "emulated-given"],
)
def test_emulated_registers_on_postgresql_are_refused_before_anything_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str]
) -> None:
    """Refused before the database is even asked (nothing listens at that address) and before
    the state directory is made."""
    state = tmp_path / "state"
    db = "postgresql://kkt@127.0.0.1:9/cloud"
    code = main(["cloud", "serve", "--state", str(state), "--db", db, *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "emulated registers cannot be served on a PostgreSQL database" in err
    assert "kkt emulator serve" in err and "--register URL" in err
    assert not state.exists()


def test_the_service_itself_refuses_emulated_registers_on_postgresql(tmp_path: Path) -> None:
    with pytest.raises(SharedStorageRefused, match="FN serials are not unique"):
        CloudService(demo_config(1), tmp_path / "state", db="postgresql://kkt@127.0.0.1:9/c")
    assert not (tmp_path / "state").exists()


def _view(name: str, state: str = "ok") -> RegisterView:
    return RegisterView(
        name=name,
        group="shop",
        url="socket://127.0.0.1:7778",
        protocol="shtrih",
        state=state,
        detail="",
        fn_serial="9999078900001111",
        fn_expires=None,
        ofd_unsent=0,
        ofd_first_unsent=None,
        paper=True,
        in_flight=0,
        done=3,
        updated_at=dt.datetime.now(dt.UTC),
    )


def test_status_of_a_sqlite_state_names_the_serving_process(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with CloudService(demo_config(0), state) as service:
        service.storage.save_register(_view("kkt-1"))
        assert main(["cloud", "status", "--state", str(state), "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert main(["cloud", "status", "--state", str(state)]) == 0
        table = capsys.readouterr().out
    assert [i["pid"] for i in data["instances"]] == [os.getpid()]
    assert [(r["name"], r["state"], r["lease"]) for r in data["registers"]] == [
        ("kkt-1", "ok", None)
    ]
    assert data["queue"] == {"by_group": {"shop": 0}, "total": 0}
    assert data["counts"] == {"wait": 0, "done": 0, "fail": 0}
    assert "kkt-1" in table and f":{os.getpid()}" in table and "requests: 0 wait" in table
    # served no more: no instance
    assert main(["cloud", "status", "--state", str(state), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["instances"] == []


def test_status_without_state_says_what_to_give(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["cloud", "status", "--state", str(tmp_path / "none")]) == 2
    assert "give --state DIR or --db URL" in capsys.readouterr().err


class SharedState:
    """What `status_of` reads of a storage several instances share."""

    instance = "me:3:cccccc"  # the status command's own: not listed

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def instances(self) -> list[InstanceView]:
        started = self.now - dt.timedelta(hours=1)
        return [
            InstanceView("b:2:bbbbbb", "b", 2, started, self.now - dt.timedelta(seconds=30)),
            InstanceView("a:1:aaaaaa", "a", 1, started, self.now - dt.timedelta(seconds=1)),
            InstanceView(self.instance, "me", 3, self.now, self.now),
        ]

    def leases(self) -> list[LeaseView]:
        return [
            LeaseView("kkt-1", "a:1:aaaaaa", self.now + dt.timedelta(seconds=8), 3),
            LeaseView("kkt-2", "b:2:bbbbbb", self.now - dt.timedelta(seconds=20), 1),
        ]

    def registers(self) -> list[RegisterView]:
        return [_view("kkt-1"), _view("kkt-2", "offline")]

    def queue_depth(self, group: str | None = None) -> int:
        return 7

    def counts(self) -> dict[str, int]:
        return {"wait": 7, "done": 100, "fail": 1}


def test_status_lists_instances_leases_and_queue_depth(tmp_path: Path) -> None:
    now = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
    data = status_of(SharedState(now), now)  # type: ignore[arg-type]
    assert [(i["id"], i["seen_ago_s"], i["live"]) for i in data["instances"]] == [
        ("a:1:aaaaaa", 1.0, True),
        ("b:2:bbbbbb", 30.0, False),
    ]
    leases = {r["name"]: r["lease"] for r in data["registers"]}
    assert leases["kkt-1"]["instance"] == "a:1:aaaaaa" and leases["kkt-1"]["expires_in_s"] == 8
    assert leases["kkt-2"]["expires_in_s"] == -20 and leases["kkt-2"]["epoch"] == 1
    assert data["queue"] == {"by_group": {"shop": 7}, "total": 7}
    out = io.StringIO()
    _print_status(data, out)
    table = out.getvalue()
    assert "instances (2)" in table and "30 s ago (silent)" in table
    assert "in 8 s" in table and "expired 20 s ago" in table
    assert "requests: 7 wait, 100 done, 1 fail" in table


def test_status_of_a_postgresql_database(
    capsys: pytest.CaptureFixture[str], postgres_dsn: str
) -> None:
    from kkt.cloud.storage.postgres import PostgresStorage

    serving = PostgresStorage(postgres_dsn)
    try:
        assert serving.take_lease("kkt-1", 30.0)
        serving.save_register(_view("kkt-1"))
        assert main(["cloud", "status", "--db", postgres_dsn, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert main(["cloud", "status", "--db", postgres_dsn]) == 0
        table = capsys.readouterr().out
    finally:
        serving.close()
    assert [i["id"] for i in data["instances"]] == [serving.instance]  # not the command's own
    (register,) = data["registers"]
    assert register["name"] == "kkt-1" and register["lease"]["instance"] == serving.instance
    assert 0 < register["lease"]["expires_in_s"] <= 30
    assert serving.instance in table and "kkt-1" in table


def test_status_of_an_unreachable_database_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["cloud", "status", "--db", "postgresql://kkt@127.0.0.1:9/none?connect_timeout=2"])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("kkt cloud status: ") and "127.0.0.1" in err


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://kkt:s3cret@127.0.0.1:9/none?connect_timeout=2",
        "host=127.0.0.1 port=9 dbname=none user=kkt password=s3cret connect_timeout=2",
        "postgresql://kkt:s3cret@[::1/none",  # a typo libpq cannot parse
    ],
    ids=["url", "keywords", "malformed"],
)
def test_a_dsn_is_never_printed_with_its_password(
    dsn: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``status`` and ``serve`` with a DSN that holds a password: whatever fails, the password
    is not in what they print, and no SQLite file is made after a keyword DSN."""
    monkeypatch.chdir(tmp_path)
    assert main(["cloud", "status", "--db", dsn]) == 2
    state = tmp_path / "state"
    assert main(["cloud", "serve", "--db", dsn, "--state", str(state), "--emulated", "0"]) == 2
    printed = capsys.readouterr()
    assert "s3cret" not in printed.err + printed.out
    assert "kkt cloud status: " in printed.err and "kkt cloud serve: " in printed.err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["state"]


def test_serve_logs_its_requests_failures_and_callback_attempts(tmp_path: Path) -> None:
    """README: every callback attempt and every refused request is logged -- on stderr,
    time-stamped, without -v."""
    import threading
    import time

    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kkt",
            "cloud",
            "serve",
            "--state",
            str(tmp_path / "state"),
            "--http",
            "127.0.0.1:0",
            "--emulated",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    logged: list[str] = []
    try:
        assert child.stdout is not None and child.stderr is not None
        reader = threading.Thread(target=lambda: logged.extend(child.stderr or ()), daemon=True)
        reader.start()
        line = ""
        while not line.startswith("listening"):
            line = child.stdout.readline()
            assert line, f"serve ended early: {logged}"
        url = line.split()[1] + "/possystem/v4"
        token = httpx.post(f"{url}/getToken", json={"login": "demo", "pass": "demo"}).json()
        body = json.loads((ROOT / "examples" / "atol-online-sell.json").read_text("utf-8"))
        # port 80 of this machine: nothing listens there (ATOL's mask takes no port)
        body["service"] = {"callback_url": "http://127.0.0.1/kkt-test-callback"}
        answer = httpx.post(f"{url}/demo/sell", json=body, headers={"Token": token["token"]})
        assert answer.status_code == 200, answer.text
        refused = httpx.post(f"{url}/demo/sell", json=body, headers={"Token": "not-a-token"})
        assert refused.status_code == 401, refused.text
        deadline = time.monotonic() + 60
        while not any("callback" in text for text in logged) and time.monotonic() < deadline:
            time.sleep(0.1)
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    callbacks = [text for text in logged if "http://127.0.0.1/kkt-test-callback" in text]
    assert callbacks, "".join(logged)
    # time-stamped, with its level and logger: 2026-12-03 12:00:00.123 info kkt.cloud.callbacks:
    stamp, level, name = callbacks[0].split()[1:4]
    assert len(stamp) == 12 and level == "info" and name == "kkt.cloud.callbacks:"
    assert "Traceback" not in "".join(logged)
    # a refused request: one line, its path, status and ATOL's error code
    assert any("POST /possystem/v4/demo/sell answered 401" in text for text in logged), logged
