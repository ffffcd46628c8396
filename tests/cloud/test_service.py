"""CloudService: the parts it starts and stops, its state directory, the callback key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from kkt.cloud.config import demo_config
from kkt.cloud.model import RegisterView
from kkt.cloud.service import CloudService


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
