"""One `Service` serves a device on TCP, a pty and the control channel, and stops clean.

The shells' conftest checks that no thread, socket or pty is left behind; here, besides, no
asyncio task, no control socket and no pty symlink.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.atol import AtolRegister
from kkt.emulator.shells import PROTOCOLS, Service
from kkt.emulator.shtrih import ShtrihRegister
from support.shells import other_tasks

import kkt

pytestmark = pytest.mark.timeout(60)


def _status(url: str, protocol: str) -> bool:
    with kkt.connect(url, protocol=protocol) as register:
        return register.status().shift_open


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_one_service_serves_tcp_pty_and_control_and_stops_clean(
    protocol: str, tmp_path: Path
) -> None:
    personality = AtolRegister if protocol == "atol" else ShtrihRegister
    state = tmp_path / "state"
    device = personality.open(state)
    link = tmp_path / "tty"

    async def main() -> None:
        async with Service(device, protocol=protocol) as service:
            tcp = await service.tcp()
            await service.pty(link)
            control = await service.control(state)
            tcp_url, pty_url = f"socket://127.0.0.1:{tcp.port}", str(link)
            assert await asyncio.to_thread(_status, tcp_url, protocol) is False
            assert await asyncio.to_thread(_status, pty_url, protocol) is False
            reader, writer = await asyncio.open_unix_connection(str(control))
            writer.write(b'{"action": "status"}\n')
            assert json.loads(await reader.readline())["ok"]
            writer.close()
            await writer.wait_closed()
        assert not control.exists() and not os.path.lexists(link)
        assert await other_tasks() == set()

    try:
        asyncio.run(main())
    finally:
        device.close()


def test_an_unknown_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of shtrih, atol"):
        Service(object(), protocol="epson")  # type: ignore[arg-type]


def test_a_trace_sees_every_link_open_bytes_in_and_out_and_close(tmp_path: Path) -> None:
    device = ShtrihRegister.open(tmp_path / "state")
    events: list[tuple[str, str, bytes]] = []

    def trace_of(name: str) -> Any:
        return lambda event, data: events.append((name, event, data))

    async def main() -> None:
        async with Service(device, trace=trace_of) as service:
            tcp = await service.tcp()
            url = f"socket://127.0.0.1:{tcp.port}"
            assert await asyncio.to_thread(_status, url, "shtrih") is False

    try:
        asyncio.run(main())
    finally:
        device.close()
    names = {name for name, _, _ in events}
    assert len(names) == 1 and next(iter(names)).startswith("tcp 127.0.0.1:")
    kinds = [event for _, event, _ in events]
    assert kinds[0] == "open" and kinds[-1] == "close" and {"in", "out"} <= set(kinds)
    assert b"".join(data for _, event, data in events if event == "in").startswith(b"\x05")  # ENQ
    assert b"\x15" in b"".join(data for _, event, data in events if event == "out")  # its NAK
