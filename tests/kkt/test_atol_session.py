"""`AtolSession` against an ATOL `Service` on 127.0.0.1, one event loop in a thread.

Each connection gets its own pump over the device's one `TaskBuffer`, as the TCP shell gives
them; the device is a fake that records every command.  The port is lost mid-command by
the pump's ``hang_up`` fault (the task runs, then the connection is cut before the reply): the
session reopens the port and the link's Req on the new connection brings back the reply.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

import pytest
from kkt.emulator.faults import Faults
from kkt.emulator.shells import Service
from kkt.protocols.atol.link import DeviceSettings, HostSettings
from kkt.protocols.atol.tasks import TaskBuffer
from kkt.protocols.errors import LinkError

from kkt.errors import TransportError
from kkt.transport.session import AtolSession, PortLost
from kkt.transport.tcp import TcpPort

STATUS = b"\x00\x00\x3f"  # quick: answered on the loop (inline in the Add's reply, if asked)
SETTINGS = HostSettings(packet=0.2, poll=0.05)


@dataclass
class FakeRegister:
    """Runs a command by recording it; answers ``55 00 00`` + the command's parameters."""

    executed: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def execute(self, payload: bytes) -> bytes:
        if payload == STATUS:
            return b"\x44" + bytes(29)
        with self.lock:
            self.executed.append(payload)
        return b"\x55\x00\x00" + payload[3:]

    def quick(self, payload: bytes) -> bool:
        return payload == STATUS


class Device:
    """The register: a `Service` on 127.0.0.1, port 0, run by an event loop in a thread."""

    def __init__(self, register: FakeRegister, faults: Faults, results: str = "async") -> None:
        self.register = register
        self.faults = faults
        self.results = results  # how the device hands results over: F0, or inline
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._service: Service | None = None
        self.port = 0

    def __enter__(self) -> Device:
        self._thread.start()
        self._call(self._start()).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._stop()).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _call(self, coroutine: object) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]

    async def _start(self) -> None:
        self._service = Service(self.register, protocol="atol", faults=self.faults)
        settings = DeviceSettings(inline=0.02, byte=0.1, results=self.results)
        server = await self._service.tcp(settings=settings)
        self.port = server.port

    async def _stop(self) -> None:
        assert self._service is not None
        self._service.close()
        await self._service.wait_closed()

    @property
    def buffer(self) -> TaskBuffer:
        assert self._service is not None and self._service.tasks is not None
        return self._service.tasks.buffer

    def open(self) -> TcpPort:
        return TcpPort("127.0.0.1", self.port)

    def tasks(self) -> int:
        """How many tasks the buffer holds (read on the loop)."""

        async def count() -> int:
            return len(self.buffer)

        return asyncio.run_coroutine_threadsafe(count(), self._loop).result(timeout=10)


@pytest.fixture(params=["async", "inline"])
def device(request: pytest.FixtureRequest) -> Iterator[Device]:
    """Our host works with either way a device delivers results (`DeviceSettings.results`)."""
    with Device(FakeRegister(), Faults(), request.param) as served:
        yield served


def _session(device: Device, **kwargs: object) -> AtolSession:
    return AtolSession(device.open(), settings=SETTINGS, reopen=device.open, **kwargs)  # type: ignore[arg-type]


@pytest.mark.timeout(60)
def test_commands_run_once_and_free_their_slots(device: Device) -> None:
    session = _session(device)
    try:
        assert session.exchange(STATUS, answer_timeout=5.0)[:1] == b"\x44"
        for number in range(20):
            command = b"\x00\x00\x80" + bytes((number,))
            assert session.exchange(command, answer_timeout=5.0, resend=False) == (
                b"\x55\x00\x00" + bytes((number,))
            )
        # Each Ack rode on the next Add (AckAdd): only the last result still holds its slot.
        assert device.tasks() == 1 and session.link.pending_ack is not None
    finally:
        session.close()  # sends that last Ack alone
    assert device.register.executed == [b"\x00\x00\x80" + bytes((n,)) for n in range(20)]
    assert device.tasks() == 0


@pytest.mark.timeout(60)
def test_a_port_lost_mid_command_is_reopened_and_the_reply_fetched_with_req(
    device: Device,
) -> None:
    session = _session(device)
    try:
        session.exchange(STATUS, answer_timeout=5.0)
        device.faults.configure(hang_up=1)  # the task runs; the connection is cut before its reply
        command = b"\x00\x00\x81\x07"
        assert session.exchange(command, answer_timeout=5.0, resend=False) == b"\x55\x00\x00\x07"
        assert session.reconnects == 1
        assert session.exchange(STATUS, answer_timeout=5.0)[:1] == b"\x44"
    finally:
        session.close()
    assert device.register.executed == [command]
    assert device.tasks() == 0


@pytest.mark.timeout(60)
def test_a_port_that_cannot_be_reopened_fails_and_the_next_exchange_settles_the_task(
    device: Device,
) -> None:
    reopen_fails = [True]

    def reopen() -> TcpPort:
        if reopen_fails[0]:
            reopen_fails[0] = False
            raise TransportError("the register is unreachable")
        return device.open()

    session = AtolSession(device.open(), settings=SETTINGS, reopen=reopen, reopen_tries=1)
    try:
        session.exchange(STATUS, answer_timeout=5.0)
        device.faults.configure(hang_up=1)
        first = b"\x00\x00\x82\x01"
        with pytest.raises(PortLost) as caught:
            session.exchange(first, answer_timeout=5.0, resend=False)
        assert isinstance(caught.value, LinkError) and caught.value.maybe_executed
        assert session.link.unresolved_tid is not None
        # The next exchange reopens the port, settles the task (Req, Ack), then runs its own.
        second = b"\x00\x00\x82\x02"
        assert session.exchange(second, answer_timeout=5.0, resend=False) == b"\x55\x00\x00\x02"
        assert session.link.unresolved_tid is None
    finally:
        session.close()
    assert device.register.executed == [first, second]
    assert device.tasks() == 0


@pytest.mark.timeout(60)
def test_retrying_the_failed_command_returns_its_first_reply(device: Device) -> None:
    session = AtolSession(device.open(), settings=SETTINGS, reopen=None)
    try:
        session.exchange(STATUS, answer_timeout=5.0)
        device.faults.configure(hang_up=1)
        command = b"\x00\x00\x83\x05"
        with pytest.raises(PortLost):
            session.exchange(command, answer_timeout=5.0, resend=False)
        with pytest.raises(TransportError):
            session.exchange(command, answer_timeout=5.0, resend=False)  # no way to reopen
        session.port = device.open()  # the caller reconnects by hand
        assert session.exchange(command, answer_timeout=5.0, resend=False) == b"\x55\x00\x00\x05"
    finally:
        session.close()
    assert device.register.executed == [command]
    assert device.tasks() == 0


@pytest.mark.timeout(60)
def test_a_lost_reply_packet_is_recovered_without_running_twice(device: Device) -> None:
    session = _session(device)
    try:
        session.exchange(STATUS, answer_timeout=5.0)
        device.faults.configure(lose_answers=3)
        for number in range(3):
            command = b"\x00\x00\x84" + bytes((number,))
            assert session.exchange(command, answer_timeout=5.0, resend=False) == (
                b"\x55\x00\x00" + bytes((number,))
            )
    finally:
        session.close()
    assert device.register.executed == [b"\x00\x00\x84" + bytes((n,)) for n in range(3)]
    assert device.tasks() == 0


@pytest.mark.timeout(60)
def test_a_closed_session_does_not_reopen(device: Device) -> None:
    session = _session(device)
    session.close()
    with pytest.raises(TransportError):
        session.exchange(STATUS, answer_timeout=1.0)
