"""Helpers for the shell tests: a fake device and raw byte clients for TCP and a pty."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from kkt.emulator.shells import Service
from kkt.emulator.shells.listener import Listener
from kkt.emulator.shells.runner import Emulated
from kkt.protocols.shtrih.frame import encode_frame

ENQ, ACK, NAK, FILLER = b"\x05", b"\x06", b"\x15", b"\xff"


def answer_to(payload: bytes) -> bytes:
    """The fake device's answer: the command code, error 0, then the parameters echoed back."""
    size = 2 if payload[0] == 0xFF else 1
    return payload[:size] + b"\x00" + payload[size:]


class FakeDevice:
    """Answers `answer_to(payload)`, counts executions, and notices being re-entered.

    ``delay`` keeps each command busy (on the runner's worker thread) long enough for a second
    command to overlap it if the shells did not serialise; the ``busy`` flag needs no lock since
    any overlap at all is the failure being looked for.
    """

    def __init__(self, delay: float = 0.0, fail: Callable[[bytes], bytes | None] | None = None):
        self.delay = delay
        self.fail = fail
        self.executed: list[bytes] = []
        self.busy = False
        self.overlaps = 0
        self.closed = False

    def execute(self, payload: bytes) -> bytes:
        if self.busy:
            self.overlaps += 1
        self.busy = True
        try:
            if self.delay:
                time.sleep(self.delay)
            self.executed.append(payload)
            if self.fail is not None:
                special = self.fail(payload)
                if special is not None:
                    return special
            return answer_to(payload)
        finally:
            self.busy = False

    def close(self) -> None:
        self.closed = True


class Served:
    """One listener of a `Service` of its own: the listener's attributes (``port``, ``link``...);
    closing it closes the service."""

    def __init__(self, service: Service, listener: Listener) -> None:
        self.service = service
        self.listener = listener

    def __getattr__(self, name: str) -> Any:
        return getattr(self.listener, name)

    def close(self) -> None:
        self.service.close()

    async def wait_closed(self) -> None:
        await self.service.wait_closed()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        await self.wait_closed()


async def serve_tcp(
    device: Emulated,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    protocol: str = "shtrih",
    faults: Any = None,
    **options: Any,
) -> Served:
    """``device`` served on TCP alone (`Service.tcp`'s ``options``)."""
    service = Service(device, protocol=protocol, faults=faults)
    try:
        return Served(service, await service.tcp(host, port, **options))
    except BaseException:
        service.close()
        await service.wait_closed()
        raise


async def serve_pty(
    device: Emulated, link: Path, *, protocol: str = "shtrih", faults: Any = None, **options: Any
) -> Served:
    """``device`` served on a pty alone (`Service.pty`'s ``options``)."""
    service = Service(device, protocol=protocol, faults=faults)
    try:
        return Served(service, await service.pty(link, **options))
    except BaseException:
        service.close()
        await service.wait_closed()
        raise


class RawClient:
    """Bytes in, bytes out, with a deadline on every read; over a TCP socket or a pty."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._arrived = asyncio.Event()

    def _received(self, data: bytes) -> None:
        self._buffer += data
        self._arrived.set()

    async def send(self, data: bytes) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def read(self, size: int, timeout: float = 5.0) -> bytes:
        """Exactly ``size`` bytes, or AssertionError with what did arrive."""
        async with asyncio.timeout(timeout):
            while len(self._buffer) < size:
                self._arrived.clear()
                try:
                    await self._arrived.wait()
                except TimeoutError:
                    raise AssertionError(f"got only {bytes(self._buffer).hex(' ')}") from None
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def expect(self, data: bytes, timeout: float = 5.0) -> None:
        got = await self.read(len(data), timeout)
        assert got == data, f"expected {data.hex(' ')}, got {got.hex(' ')}"

    async def expect_silence(self, duration: float = 0.2) -> None:
        await asyncio.sleep(duration)
        assert not self._buffer, f"unexpected {bytes(self._buffer).hex(' ')}"

    async def command(self, payload: bytes, *, filler: bool) -> bytes:
        """One full exchange on an idle link: frame -> ACK + answer -> our ACK (-> FF)."""
        await self.send(encode_frame(payload))
        await self.expect(ACK)
        answer = encode_frame(answer_to(payload))
        await self.expect(answer)
        await self.send(ACK)
        if filler:
            await self.expect(FILLER)
        return answer


class TcpClient(RawClient):
    async def connect(self, port: int) -> TcpClient:
        loop = asyncio.get_running_loop()
        client = self

        class _Protocol(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                client._received(data)

        self._transport, _ = await loop.create_connection(_Protocol, "127.0.0.1", port)
        return self

    async def send(self, data: bytes) -> None:
        self._transport.write(data)

    async def close(self) -> None:
        self._transport.abort()
        await asyncio.sleep(0)


class PtyClient(RawClient):
    """Opens the link as a host opens a COM port."""

    def open(self, link: Path) -> PtyClient:
        self._fd = os.open(link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        asyncio.get_running_loop().add_reader(self._fd, self._readable)
        return self

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        self._received(data)

    async def send(self, data: bytes) -> None:
        os.write(self._fd, data)

    async def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self._fd)
        os.close(self._fd)


def threads() -> set[threading.Thread]:
    return set(threading.enumerate())


async def other_tasks() -> set[asyncio.Task[object]]:
    """Tasks left besides the test's own (give finished callbacks a turn first)."""
    await asyncio.sleep(0)
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
