"""The pty shell on a real pseudo-terminal, opened through its symlink like a COM port."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from kkt.emulator.shells import Service
from kkt.protocols.shtrih.frame import encode_frame
from support.shells import (
    ACK,
    ENQ,
    NAK,
    FakeDevice,
    PtyClient,
    TcpClient,
    answer_to,
    other_tasks,
    serve_pty,
)

pytestmark = pytest.mark.timeout(30)

STATUS = b"\x10\x1e\x00\x00\x00"


def test_exchange_through_the_symlink(tmp_path: Path) -> None:
    device = FakeDevice()
    link = tmp_path / "kkt-shtrih"

    async def main() -> None:
        async with await serve_pty(device, link) as server:
            assert link.is_symlink()
            assert os.readlink(link) == server.tty_name
            assert server.tty_name.startswith("/dev/pts/")
            client = PtyClient().open(link)
            await client.send(ENQ)
            await client.expect(NAK)
            await client.send(encode_frame(STATUS))
            await client.expect(ACK)
            await client.expect(encode_frame(answer_to(STATUS)))
            await client.send(ACK)
            await client.send(ENQ)
            await client.expect(NAK)  # serial models send no 0xFF after the host's ACK
            await client.expect_silence(0.1)
            await client.close()
        assert not os.path.lexists(link)
        assert await other_tasks() == set()

    asyncio.run(main())
    assert device.executed == [STATUS]


def test_raw_mode_passes_every_byte(tmp_path: Path) -> None:
    # 0x03, 0x0A, 0x0D, 0x11, 0x13, 0x1A, 0x7F would be eaten or translated by a cooked tty.
    payload = b"\x17" + bytes(range(1, 200))
    device = FakeDevice()

    async def main() -> None:
        async with await serve_pty(device, tmp_path / "tty") as server:
            client = PtyClient().open(server.link)
            await client.command(payload, filler=False)
            await client.close()

    asyncio.run(main())
    assert device.executed == [payload]


def test_withheld_ack_replays_the_answer(tmp_path: Path) -> None:
    device = FakeDevice()
    sale = b"\xff\x46" + bytes(30)

    async def main() -> None:
        async with await serve_pty(device, tmp_path / "tty") as server:
            client = PtyClient().open(server.link)
            await client.send(encode_frame(sale))
            answer = encode_frame(answer_to(sale))
            await client.expect(ACK + answer)
            await client.send(ENQ)
            await client.expect(ACK + answer)
            await client.send(ACK)
            await client.send(ENQ)
            await client.expect(NAK)
            await client.close()

    asyncio.run(main())
    assert device.executed == [sale]


def test_hosts_come_and_go(tmp_path: Path) -> None:
    # No EIO on the master when the last host closes: the server keeps the slave open itself.
    device = FakeDevice()

    async def main() -> None:
        async with await serve_pty(device, tmp_path / "tty") as server:
            for index in range(3):
                client = PtyClient().open(server.link)
                await client.send(b"\x02\x09\x10")  # a torn frame, then the host goes away
                await client.close()
                await asyncio.sleep(0.1)  # past the 50 ms byte timeout: dropped
                client = PtyClient().open(server.link)
                await client.command(bytes((0x11, index)), filler=False)
                await client.close()

    asyncio.run(main())
    assert device.executed == [b"\x11\x00", b"\x11\x01", b"\x11\x02"]


def test_a_stale_symlink_is_replaced_and_a_file_is_refused(tmp_path: Path) -> None:
    stale = tmp_path / "stale"
    stale.symlink_to("/dev/pts/nonexistent")
    precious = tmp_path / "precious"
    precious.write_text("not a link")

    async def main() -> None:
        async with await serve_pty(FakeDevice(), stale) as server:
            assert os.readlink(stale) == server.tty_name
        with pytest.raises(FileExistsError, match="not a symlink"):
            await serve_pty(FakeDevice(), precious)

    asyncio.run(main())
    assert not os.path.lexists(stale)
    assert precious.read_text() == "not a link"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious"]


def test_pty_and_tcp_share_one_device_one_command_at_a_time(tmp_path: Path) -> None:
    device = FakeDevice(delay=0.005)

    async def over_tcp(port: int) -> None:
        client = await TcpClient().connect(port)
        for index in range(10):
            await client.command(bytes((0x12, index)), filler=True)
        await client.close()

    async def over_pty(link: Path) -> None:
        client = PtyClient().open(link)
        for index in range(10):
            await client.command(bytes((0x13, index)), filler=False)
        await client.close()

    async def main() -> None:
        async with Service(device) as service:  # one device, one lock, two shells
            tcp = await service.tcp(port=0)
            pty = await service.pty(tmp_path / "tty")
            await asyncio.gather(over_tcp(tcp.port), over_pty(pty.link))

    asyncio.run(main())
    assert device.overlaps == 0
    assert len(device.executed) == 20
