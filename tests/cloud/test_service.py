"""CloudService: the parts it starts and stops, its state directory and its lock, the callback
key, the wait for the emulated registers' state after a crash."""

from __future__ import annotations

import os
import secrets
import stat
import threading
from pathlib import Path

import httpx
import pytest
from kkt.cloud import service as service_module
from kkt.cloud.config import demo_config
from kkt.cloud.model import RegisterView
from kkt.cloud.service import CloudService, HttpThread, ServiceBusy
from kkt.cloud.storage.base import StorageUnavailable
from kkt.emulator.state import StateLock


class StandInPool:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")

    def views(self) -> list[RegisterView]:
        return []


def test_start_and_stop_run_the_pool_and_close_the_storage(tmp_path: Path) -> None:
    pool = StandInPool()
    service = CloudService(demo_config(0), tmp_path / "state", pool=pool)
    with service:
        assert service.pool is pool and pool.calls == ["start"]
        assert service.storage.counts() == {"wait": 0, "done": 0, "fail": 0}
    assert pool.calls == ["start", "stop"]
    service.stop()  # twice: nothing more happens
    assert pool.calls == ["start", "stop"]
    with pytest.raises(RuntimeError, match="make a new one"):
        service.start()


def test_a_failing_start_stops_what_started(tmp_path: Path) -> None:
    class Broken(StandInPool):
        def start(self) -> None:
            raise OSError("no link")

    service = CloudService(demo_config(0), tmp_path / "state", pool=Broken())
    with pytest.raises(OSError, match="no link"):
        service.start()
    assert service.pool.views() == []


def test_state_directory_is_private_and_the_callback_key_persists(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    first = CloudService(demo_config(0), state)
    key = first.callback_secret()
    first.stop()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "callback.key").stat().st_mode) == 0o600
    second = CloudService(demo_config(0), state)
    assert second.callback_secret() == key and len(key) == 64
    second.stop()


def test_a_second_service_on_the_same_state_is_refused_before_it_starts_anything(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    first = CloudService(demo_config(0), state, pool=StandInPool())
    second_pool = StandInPool()
    try:
        first.start()
        with pytest.raises(ServiceBusy) as refused:
            CloudService(demo_config(0), state, pool=second_pool)
        assert f"another kkt cloud serve (pid {os.getpid()}) uses {state}" in str(refused.value)
        assert "use another --state" in str(refused.value)
        assert second_pool.calls == []  # its workers never ran
    finally:
        first.stop()
    third = CloudService(demo_config(0), state)  # the lock goes with the service
    third.stop()


@pytest.mark.parametrize("torn", ["", "\n", "abc123"])
def test_a_torn_or_short_callback_key_is_replaced(tmp_path: Path, torn: str) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "callback.key").write_text(torn)
    service = CloudService(demo_config(0), state)
    try:
        key = service.callback_secret()
        assert len(key) == 64 and service.callback_secret() == key
        assert (state / "callback.key").read_text().strip().encode() == key
        assert stat.S_IMODE((state / "callback.key").stat().st_mode) == 0o600
        assert [p.name for p in state.iterdir() if p.name.startswith(".")] == []  # no temp left
    finally:
        service.stop()


def test_a_callback_key_made_by_another_at_the_same_moment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    service = CloudService(demo_config(0), state)
    theirs = "f" * 64
    token_hex = secrets.token_hex

    def racing(size: int) -> str:  # another maker writes its key between our read and write
        if not (state / "callback.key").exists():
            (state / "callback.key").write_text(theirs + "\n")
        return token_hex(size)

    monkeypatch.setattr(service_module.secrets, "token_hex", racing)
    try:
        assert service.callback_secret() == theirs.encode()
    finally:
        service.stop()


def test_start_waits_for_the_emulated_registers_state_a_crashed_run_still_holds(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    register = state / "emulated" / "00"
    register.mkdir(parents=True)
    held = StateLock.acquire(register, command="a crashed run's emulator child")
    # the orphan child lets go a moment later (it reads its pipe's end of file, then closes)
    letting_go = threading.Timer(0.5, held.release)
    said: list[str] = []
    service = CloudService(demo_config(1), state)
    try:
        letting_go.start()
        service.start(announce=said.append)
        assert [view.name for view in service.pool.views()] == ["emulated-00"]
    finally:
        service.stop()
        letting_go.cancel()
        letting_go.join()
        held.release()
    assert len(said) == 1 and "waiting up to 10 s" in said[0]
    assert f"process {os.getpid()}" in said[0]


def test_an_unreachable_database_is_a_503_with_retry_after_and_atol_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real HTTP; the storage's calls fail as PostgreSQL's do when it restarts."""

    def unreachable(*args: object, **kwargs: object) -> None:
        raise StorageUnavailable("PostgreSQL at db.example:5432/kkt cannot be reached now (test)")

    with CloudService(demo_config(0), tmp_path / "state") as service:
        for name in ("add_token", "token_login"):
            monkeypatch.setattr(service.storage, name, unreachable)
        with HttpThread(service.app()) as url:
            answer = httpx.get(
                f"{url}/possystem/v4/getToken", params={"login": "demo", "pass": "demo"}
            )
            report = httpx.get(f"{url}/possystem/v4/demo/report/x", headers={"Token": "t"})
    for reply in (answer, report):
        assert reply.status_code == 503 and reply.headers["Retry-After"] == "5"
        body = reply.json()
        assert body["status"] == "fail" and body["error"]["code"] == 1
        assert "send the same request again" in body["error"]["text"]
        assert "db.example" not in body["error"]["text"]  # where the database is stays inside


def test_the_callback_key_of_a_shared_storage_wins_over_the_state_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = secrets.token_bytes(32)
    service = CloudService(demo_config(0), tmp_path / "state")  # not started: no sender yet
    try:
        monkeypatch.setattr(service.storage, "callback_secret", lambda: shared)
        assert service.callback_secret() == shared
        assert not (tmp_path / "state" / service_module.KEY_NAME).exists()
    finally:
        service.stop()
