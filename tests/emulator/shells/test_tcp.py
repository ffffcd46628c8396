"""The TCP shell over real loopback sockets, against a fake device."""

from __future__ import annotations

import asyncio
import os
import random
import socket

import pytest
from kkt.protocols.shtrih.frame import encode_frame
from kkt.protocols.shtrih.link import DeviceSettings
from support.shells import (
    ACK,
    ENQ,
    FILLER,
    NAK,
    FakeDevice,
    TcpClient,
    answer_to,
    other_tasks,
    serve_tcp,
)

pytestmark = pytest.mark.timeout(30)

STATUS = b"\x10\x1e\x00\x00\x00"  # GetShortStatus, password 30


def test_enq_frame_ack_filler() -> None:
    device = FakeDevice()

    async def main() -> None:
        async with await serve_tcp(device, port=0) as server:
            assert server.addresses == [("127.0.0.1", server.port)]
            client = await TcpClient().connect(server.port)
            await client.send(ENQ)
            await client.expect(NAK)
            await client.send(encode_frame(STATUS))
            await client.expect(ACK)
            await client.expect(encode_frame(answer_to(STATUS)))
            await client.send(ACK)
            await client.expect(FILLER)  # network models: one 0xFF after the host's ACK
            await client.send(ENQ)
            await client.expect(NAK)
            await client.close()
        assert await other_tasks() == set()

    asyncio.run(main())
    assert device.executed == [STATUS]


def test_filler_can_be_switched_off() -> None:
    device = FakeDevice()

    async def main() -> None:
        async with await serve_tcp(device, port=0, filler_after_ack=False) as server:
            client = await TcpClient().connect(server.port)
            await client.command(b"\xff\x01\x1e\x00\x00\x00", filler=False)
            await client.send(ENQ)
            await client.expect(NAK)  # no FF before it
            await client.close()

    asyncio.run(main())


def test_withheld_ack_replays_the_answer_without_executing_again() -> None:
    device = FakeDevice()
    sale = b"\xff\x46" + bytes(range(20))

    async def main() -> None:
        async with await serve_tcp(device, port=0) as server:
            client = await TcpClient().connect(server.port)
            await client.send(encode_frame(sale))
            await client.expect(ACK)
            answer = encode_frame(answer_to(sale))
            await client.expect(answer)
            for _ in range(3):  # "the answer got lost": ask again, and again
                await client.send(ENQ)
                await client.expect(ACK + answer)
            await client.send(ACK)
            await client.expect(FILLER)
            await client.send(ENQ)
            await client.expect(NAK)
            await client.close()

    asyncio.run(main())
    assert device.executed == [sale]


def test_enq_while_executing_is_acked_then_the_answer_follows() -> None:
    device = FakeDevice(delay=0.3)

    async def main() -> None:
        async with await serve_tcp(device, port=0) as server:
            client = await TcpClient().connect(server.port)
            await client.send(encode_frame(STATUS))
            await client.expect(ACK)
            await asyncio.sleep(0.05)
            await client.send(ENQ)  # the loop is free while the device works
            # "The answer is being prepared": ACK before the answer, not the answer first (as it
            # would be if the device ran on the loop and blocked it).
            await client.expect(ACK)
            await client.expect(encode_frame(answer_to(STATUS)))
            await client.close()

    asyncio.run(main())


@pytest.mark.parametrize("clients", [2, 10])
def test_concurrent_clients_never_interleave(clients: int) -> None:
    device = FakeDevice(delay=0.005)
    per_client = 5

    async def session(port: int, number: int) -> None:
        client = await TcpClient().connect(port)
        await client.send(ENQ)
        await client.expect(NAK)
        for index in range(per_client):
            # command() checks this client gets its own parameters back, never another's
            await client.command(bytes((0x10, number, index)), filler=True)
        await client.close()

    async def main() -> None:
        async with await serve_tcp(device, port=0) as server:
            await asyncio.gather(*(session(server.port, n) for n in range(clients)))

    asyncio.run(main())
    assert device.overlaps == 0
    assert sorted(device.executed) == sorted(
        bytes((0x10, n, i)) for n in range(clients) for i in range(per_client)
    )


def test_garbage_and_a_vanishing_client_do_not_disturb_another() -> None:
    device = FakeDevice()
    rng = random.Random(7)

    async def vandal(port: int) -> None:
        for _ in range(5):
            client = await TcpClient().connect(port)
            await client.send(rng.randbytes(rng.randrange(1, 600)))
            await client.send(b"\x02\x30\x10\x1e")  # a frame cut short: the client vanishes
            await client.close()

    async def good(port: int) -> None:
        client = await TcpClient().connect(port)
        for index in range(20):
            await client.command(bytes((0x11, index)), filler=True)
        await client.close()

    async def main() -> None:
        async with await serve_tcp(device, port=0) as server:
            await asyncio.gather(vandal(server.port), good(server.port))
            await good(server.port)  # the server still takes new clients

    asyncio.run(main())
    assert [p for p in device.executed if p[0] == 0x11] == [bytes((0x11, i)) for i in range(20)] * 2


def test_a_partial_frame_is_dropped_after_the_byte_timeout() -> None:
    device = FakeDevice()

    async def main() -> None:
        settings = DeviceSettings(byte=0.1, confirm=0.1)
        async with await serve_tcp(device, port=0, settings=settings) as server:
            client = await TcpClient().connect(server.port)
            await client.send(b"\x02\x05\x10")  # STX LEN CMD ... and nothing more
            await client.expect_silence(0.3)  # dropped silently by the link timer
            await client.send(ENQ)
            await client.expect(NAK)
            await client.command(STATUS, filler=True)
            await client.close()

    asyncio.run(main())
    assert device.executed == [STATUS]


def test_a_client_gone_mid_command_leaves_the_device_consistent() -> None:
    device = FakeDevice(delay=0.2)

    async def main() -> None:
        async with await serve_tcp(device, port=0) as server:
            client = await TcpClient().connect(server.port)
            await client.send(encode_frame(STATUS))
            await client.expect(ACK)
            await client.close()  # the command still runs to its end; its answer is dropped
            other = await TcpClient().connect(server.port)
            await other.send(ENQ)
            await other.expect(NAK)  # a new connection has its own, idle, link
            await other.command(b"\x11\x01", filler=True)
            await other.close()

    asyncio.run(main())
    assert device.executed == [STATUS, b"\x11\x01"]
    assert device.overlaps == 0


def test_close_waits_for_a_running_command() -> None:
    device = FakeDevice(delay=0.2)

    async def main() -> None:
        server = await serve_tcp(device, port=0)
        client = await TcpClient().connect(server.port)
        await client.send(encode_frame(STATUS))
        await client.expect(ACK)
        server.close()
        await server.wait_closed()
        assert device.executed == [STATUS]  # finished, not abandoned on its thread
        await client.close()
        assert await other_tasks() == set()

    asyncio.run(main())


@pytest.mark.parametrize("bad", [None, b""])
def test_a_failing_device_reboots_the_link(bad: bytes | None) -> None:
    def fail(payload: bytes) -> bytes | None:
        if payload[0] != 0x13:
            return None
        if bad is None:
            raise RuntimeError("device bug")
        return bad  # an empty answer no frame can carry

    device = FakeDevice(fail=fail)

    async def main() -> None:
        async with await serve_tcp(device, port=0) as server:
            client = await TcpClient().connect(server.port)
            await client.send(encode_frame(b"\x13\x1e\x00\x00\x00"))
            await client.expect(ACK)
            await client.expect_silence(0.1)
            await client.send(ENQ)
            await client.expect(NAK)  # forgotten, as after a power cycle: the host can tell
            await client.command(STATUS, filler=True)
            await client.close()

    asyncio.run(main())


def test_busy_port_raises_oserror_and_leaves_nothing_behind() -> None:
    async def main() -> None:
        async with await serve_tcp(FakeDevice(), port=0) as server:
            with pytest.raises(OSError):
                await serve_tcp(FakeDevice(), port=server.port)

    asyncio.run(main())


@pytest.mark.parametrize("turns", range(6))
def test_a_connection_accepted_while_closing_is_closed_too(turns: int) -> None:
    """A client connecting just before `close` is accepted by the loop a few turns later; that
    socket must be closed by the time `wait_closed` returns (the leak check counts sockets)."""

    async def main() -> None:
        before = _sockets()
        served = await serve_tcp(FakeDevice(), port=0)
        client = socket.create_connection(("127.0.0.1", served.port))
        try:
            for _ in range(turns):  # the accept, the transport, connection_made: turn by turn
                await asyncio.sleep(0)
            served.close()
            await served.wait_closed()
            assert _sockets() - before == {client.fileno()}  # the client's own, nothing else
        finally:
            client.close()

    asyncio.run(main())


def _sockets() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd") if _is_socket(fd)}


def _is_socket(fd: str) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    except OSError:
        return False
