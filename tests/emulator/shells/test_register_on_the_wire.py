"""The emulated Shtrih register served on TCP and on a pty, spoken to in raw bytes.

Frames are built by hand with the frame codec (not the driver): what any Shtrih client would
send.  The register runs on a hand-driven clock so the 24-hour rule can be tested at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kkt.emulator.clock import ManualClock
from kkt.emulator.control import Controls
from kkt.emulator.faults import Faults
from kkt.emulator.shtrih import ShtrihRegister, open_device
from kkt.protocols.ffd import encode_tlv, parse_qr
from kkt.protocols.ofd import (
    P_VERSION_12,
    check_document_message,
    decode_session,
    encode_session,
    operator_ack,
)
from kkt.protocols.shtrih import classic, fn
from kkt.protocols.shtrih.errors import ShtrihDeviceError
from kkt.protocols.shtrih.frame import ACK, ENQ, FILLER, NAK, decode_frame, encode_frame
from kkt.protocols.shtrih.message import Request, request_types
from kkt.protocols.shtrih.modes import OperationType, ReceiptType, TaxRate, TaxSystem
from support.fn import START
from support.shells import PtyClient, RawClient, TcpClient, serve_pty, serve_tcp
from support.strategies import message_strategy

SYS = 30
B_ENQ, B_ACK, B_NAK, B_FILLER = bytes((ENQ,)), bytes((ACK,)), bytes((NAK,)), bytes((FILLER,))


class Wire:
    """A raw client plus the exchange of one command, done by hand."""

    def __init__(self, client: RawClient, *, filler: bool) -> None:
        self.client = client
        self.filler = filler

    async def read_frame(self, timeout: float = 5.0) -> bytes:
        head = await self.client.read(2, timeout)
        assert head[0] == 0x02, f"expected STX, got {head.hex(' ')}"
        rest = await self.client.read(head[1] + 1, timeout)
        return decode_frame(head + rest)

    async def confirm(self) -> None:
        await self.client.send(B_ACK)
        if self.filler:
            await self.client.expect(B_FILLER)

    async def payload(self, request: Request[Any]) -> bytes:
        await self.client.send(encode_frame(request.encode()))
        await self.client.expect(B_ACK)
        answer = await self.read_frame()
        await self.confirm()
        return answer

    async def run(self, request: Request[Any]) -> Any:
        return request.decode_answer(await self.payload(request))

    async def error(self, request: Request[Any]) -> int:
        with pytest.raises(ShtrihDeviceError) as caught:
            await self.run(request)
        return caught.value.code

    async def mode(self) -> tuple[int, int]:
        status = await self.run(classic.GetShortStatus(SYS))
        return status.mode, status.submode


def item(price: int) -> fn.OperationV2:
    return fn.OperationV2(
        SYS, OperationType.INCOME, Decimal(1), price, None, None, TaxRate.VAT20, 1, 4, 1, "Товар"
    )


def close(cash: int) -> fn.CloseReceiptV2:
    return fn.CloseReceiptV2(SYS, (cash,) + (0,) * 15, 0, (0,) * 6, TaxSystem.OSN, "")


class Rig:
    def __init__(self, register: ShtrihRegister, clock: ManualClock, faults: Faults) -> None:
        self.register = register
        self.clock = clock
        self.faults = faults
        self.controls = Controls(register, faults)


@asynccontextmanager
async def served(
    tmp_path: Path, transport: str, *, fiscal_only: bool = False
) -> AsyncIterator[tuple[Rig, Callable[[], Awaitable[Wire]]]]:
    clock = ManualClock(START)
    register = open_device(tmp_path / "state", clock=clock, fiscal_only=fiscal_only)
    faults = Faults()
    clients: list[RawClient] = []
    if transport == "tcp":
        server: Any = await serve_tcp(register, port=0, faults=faults)

        async def connect() -> Wire:
            client = await TcpClient().connect(server.port)
            clients.append(client)
            return Wire(client, filler=True)

    else:
        server = await serve_pty(register, tmp_path / "kkt-tty", faults=faults)

        async def connect() -> Wire:
            client = PtyClient().open(tmp_path / "kkt-tty")
            clients.append(client)
            return Wire(client, filler=False)

    try:
        yield Rig(register, clock, faults), connect
    finally:
        for client in clients:
            await client.close()
        server.close()
        await server.wait_closed()
        register.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["tcp", "pty"])
def test_a_day_in_raw_bytes(tmp_path: Path, transport: str) -> None:
    async def day() -> None:
        async with served(tmp_path, transport) as (rig, connect):
            wire = await connect()
            await wire.client.send(B_ENQ)
            await wire.client.expect(B_NAK)  # idle
            device = await wire.run(classic.GetDeviceType())
            assert (device.model, device.name) == (250, "ШТРИХ-М-01Ф")
            assert (await wire.run(classic.GetLongStatus(SYS))).registrations == 1
            modes = [(await wire.mode())[0]]
            await wire.run(classic.OpenShift(SYS))
            modes.append((await wire.mode())[0])
            await wire.run(classic.OpenReceipt(SYS, ReceiptType.SALE))
            modes.append((await wire.mode())[0])
            for price in (10_000, 2_550, 1_990):
                await wire.run(item(price))
            closed = await wire.run(close(20_000))
            assert closed.change == 20_000 - 14_540 and closed.document_number == 3
            modes.append((await wire.mode())[0])
            found = await wire.run(fn.FindDocument(SYS, closed.document_number))
            assert (found.number, found.fiscal_sign) == (3, closed.fiscal_sign)
            assert found.details() == fn.ReceiptDetails(OperationType.INCOME, 14_540)
            await wire.run(classic.ZReport(SYS))
            modes.append((await wire.mode())[0])
            assert modes == [4, 2, 8, 2, 4]
            assert rig.register.verify().ok

    asyncio.run(day())


@pytest.mark.timeout(60)
def test_an_answer_lost_on_the_line_is_replayed_and_the_command_ran_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with served(tmp_path, "tcp") as (rig, connect):
            wire = await connect()
            await wire.run(classic.OpenShift(SYS))
            await wire.run(item(5_000))
            before = rig.register.fn.status().last_number
            rig.controls.handle({"action": "fault", "drop_answers": 1})
            await wire.client.send(encode_frame(close(5_000).encode()))
            await wire.client.expect(B_ACK)
            await wire.client.expect_silence(0.3)  # the answer frame was lost
            await wire.client.send(B_ENQ)  # "is it coming?"
            await wire.client.expect(B_ACK)
            replay = await wire.read_frame()
            await wire.confirm()
            closed = close(5_000).decode_answer(replay)
            assert closed.document_number == before + 1
            assert rig.register.fn.status().last_number == before + 1  # executed exactly once
            await wire.client.send(B_ENQ)
            await wire.client.expect(B_NAK)

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_a_shift_over_24_hours(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with served(tmp_path, "tcp") as (rig, connect):
            wire = await connect()
            await wire.run(classic.OpenShift(SYS))
            rig.clock.advance(dt.timedelta(hours=25))
            assert (await wire.mode())[0] == 3
            assert await wire.error(item(100)) == 0x4E
            await wire.run(classic.ZReport(SYS))
            assert (await wire.mode())[0] == 4

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_paper_end_mid_receipt_then_continue(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with served(tmp_path, "pty") as (rig, connect):
            wire = await connect()
            await wire.run(classic.OpenShift(SYS))
            await wire.run(item(700))
            rig.controls.handle({"action": "paper", "state": "out"})
            assert await wire.error(item(700)) == 0x6B
            rig.controls.handle({"action": "paper", "state": "in"})
            rig.controls.handle({"action": "paper", "state": "after", "lines": 4})
            closed = await wire.run(close(700))  # fiscalized; the print stops after 4 lines
            assert await wire.mode() == (2, 2)
            rig.controls.handle({"action": "paper", "state": "in"})
            assert await wire.mode() == (2, 3)
            await wire.run(classic.ContinuePrint(SYS))
            assert await wire.mode() == (2, 0)
            tape = rig.controls.handle({"action": "tape"})["lines"]
            assert any("КАССОВЫЙ ЧЕК" in line for line in tape)
            assert any(line.strip().endswith(str(closed.fiscal_sign)) for line in tape)

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_fiscal_only_register(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with served(tmp_path, "tcp", fiscal_only=True) as (rig, connect):
            wire = await connect()
            await wire.run(classic.OpenShift(SYS))
            await wire.run(item(1_500))
            assert await wire.error(close(1_500)) == 0x33
            await wire.run(fn.SendTlv(SYS, encode_tlv([(1008, "buyer@example.org")])))
            closed = await wire.run(close(1_500))
            assert rig.controls.handle({"action": "tape"})["lines"] == []
            qr = parse_qr(
                rig.controls.handle({"action": "qr", "document": closed.document_number})["qr"]
            )
            assert (qr.fd, qr.fp, qr.total) == (closed.document_number, closed.fiscal_sign, 1_500)

    asyncio.run(scenario())


@pytest.mark.timeout(120)
def test_ten_clients_a_hundred_receipts_each(tmp_path: Path) -> None:
    async def client(connect: Callable[[], Awaitable[Wire]], numbers: list[int]) -> None:
        wire = await connect()
        while len(numbers) < 100:
            try:
                await wire.run(item(100))
                numbers.append((await wire.run(close(100_000))).document_number)
            except ShtrihDeviceError as error:
                # Another client's close took this item along (one register, one receipt at a
                # time): this close found no receipt open.  Sell again.
                assert error.code == 0x55, error

    async def scenario() -> None:
        async with served(tmp_path, "tcp") as (rig, connect):
            opener = await connect()
            await opener.run(classic.OpenShift(SYS))
            first = rig.register.fn.status().last_number + 1
            per_client: list[list[int]] = [[] for _ in range(10)]
            await asyncio.gather(*(client(connect, numbers) for numbers in per_client))
            numbers = sorted(n for numbers in per_client for n in numbers)
            assert numbers == list(range(first, first + 1000))
            assert rig.register.verify().ok

    asyncio.run(scenario())


_REQUESTS = sorted(request_types().values(), key=lambda c: c.CODE)
_FRAMES = (
    st.sampled_from(_REQUESTS).flatmap(message_strategy).map(lambda r: encode_frame(r.encode()))
)


@pytest.mark.timeout(300)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.one_of(st.binary(max_size=60), _FRAMES), min_size=1, max_size=12))
def test_a_misbehaving_client_never_crashes_the_server_or_corrupts_the_state(
    tmp_path_factory: pytest.TempPathFactory, chunks: list[bytes]
) -> None:
    tmp_path = tmp_path_factory.mktemp("fuzz")

    async def scenario() -> None:
        async with served(tmp_path, "tcp") as (rig, connect):
            rude = await connect()
            await rude.run(classic.OpenShift(SYS))
            for chunk in chunks:
                await rude.client.send(chunk)
                await asyncio.sleep(0.01)
            await rude.client.close()
            polite = await connect()
            await asyncio.sleep(0.05)
            await polite.client.send(B_ENQ)
            reply = await polite.client.read(1)
            assert reply in (B_NAK, B_ACK)
            assert rig.register.verify().ok

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_device_faults_lose_answer_and_power_loss(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with served(tmp_path, "tcp") as (rig, connect):
            wire = await connect()
            await wire.run(classic.OpenShift(SYS))
            await wire.run(item(300))
            before = rig.register.fn.status().last_number
            # "Execute, then lose the answer": the device forgets; ENQ hears NAK.
            rig.controls.handle({"action": "fault", "lose_answers": 1})
            await wire.client.send(encode_frame(close(300).encode()))
            await wire.client.expect(B_ACK)
            await wire.client.expect_silence(0.3)
            await wire.client.send(B_ENQ)
            await wire.client.expect(B_NAK)
            assert rig.register.fn.status().last_number == before + 1  # it did execute
            # Power loss mid-receipt: the open receipt is gone, the device comes back idle.
            await wire.run(item(400))
            assert (await wire.mode())[0] == 0x08
            assert rig.controls.handle({"action": "power_loss"})["links"] == 1
            await wire.client.send(B_ENQ)
            await wire.client.expect(B_NAK)
            assert (await wire.mode())[0] == 2
            assert await wire.error(classic.Subtotal(SYS)) == 0x55
            assert rig.register.verify().ok

    asyncio.run(scenario())


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "fault", [{"split": True}, {"delay": 0.05}, {"split": True, "delay": 0.002}]
)
def test_split_and_delayed_writes_arrive_whole_and_in_order(
    tmp_path: Path, fault: dict[str, Any]
) -> None:
    async def scenario() -> None:
        async with served(tmp_path, "tcp") as (rig, connect):
            wire = await connect()
            rig.controls.handle({"action": "fault", **fault})
            for _ in range(3):
                assert (await wire.run(classic.GetDeviceType())).model == 250
            rig.controls.handle({"action": "fault", "clear": True})
            assert rig.faults.settings()["split"] is False

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_corrupted_bytes_are_refused_by_the_checksum(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with served(tmp_path, "tcp") as (rig, connect):
            wire = await connect()
            rig.controls.handle({"action": "fault", "corrupt": 1.0, "seed": 7})
            for _ in range(5):
                await wire.client.send(encode_frame(classic.OpenShift(SYS).encode()))
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.2)  # the device drops any partial frame after its byte timeout
            assert not rig.register.fn.state.shift_open  # no damaged frame was ever executed
            rig.controls.handle({"action": "fault", "clear": True})
            fresh = await connect()
            await fresh.run(classic.OpenShift(SYS))
            assert rig.register.fn.state.shift_open

    asyncio.run(scenario())


def test_clock_and_tables_commands(tmp_path: Path) -> None:
    register = open_device(tmp_path / "state", clock=ManualClock(START))
    try:

        def run(request: Request[Any]) -> Any:
            return request.decode_answer(register.execute(request.encode()))

        run(classic.SetTime(SYS, dt.time(15, 30, 0)))
        assert register.clock.now() == dt.datetime.combine(START.date(), dt.time(15, 30))
        run(classic.SetDate(SYS, dt.date(2026, 11, 3)))
        assert run(classic.GetShortStatus(SYS)).mode == 6
        with pytest.raises(ShtrihDeviceError):
            run(classic.ConfirmDate(SYS, dt.date(2026, 11, 4)))
        run(classic.SetDate(SYS, dt.date(2026, 11, 3)))
        run(classic.ConfirmDate(SYS, dt.date(2026, 11, 3)))
        assert register.clock.now().date() == dt.date(2026, 11, 3)
        run(classic.WriteTable(SYS, 2, 1, 2, "Иванова".encode("cp1251")))
        assert run(classic.ReadTable(SYS, 2, 1, 2)).value.rstrip(b"\x00") == "Иванова".encode(
            "cp1251"
        )
        run(classic.WriteTable(SYS, 2, 1, 1, (1234).to_bytes(4, "little")))
        assert run(classic.Beep(1234)).operator == 1
        with pytest.raises(ShtrihDeviceError) as caught:
            run(classic.WriteTable(SYS, 18, 1, 2, b"7700000000"))
        assert caught.value.code == 0x7A
    finally:
        register.close()


# -- the OFD exchange through the driver: FF30-FF33 (fact sheet ofd-cloud-marking.md §1.3) --------


async def _read_buffer(wire: Wire) -> bytes:
    """FF30, then FF31 in the register's block size: what JavaPOS's fsReadBlockData does."""
    status = await wire.run(fn.GetBufferStatus(SYS))
    data = b""
    while len(data) < status.size:
        data += (await wire.run(fn.ReadBufferBlock(SYS, len(data), status.max_block))).data
    assert len(data) == status.size
    return data


async def _write_buffer(wire: Wire, answer: bytes) -> None:
    """FF32, then FF33 blocks: JavaPOS's fsWriteBlockData, the OFD's header included."""
    block = (await wire.run(fn.StartBufferWrite(SYS, len(answer)))).max_block
    for offset in range(0, len(answer), block):
        await wire.run(fn.WriteBufferBlock(SYS, offset, answer[offset : offset + block]))


@pytest.mark.timeout(60)
def test_ofd_exchange_through_the_driver_in_raw_bytes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with served(tmp_path, "tcp") as (rig, connect):
            wire = await connect()
            await wire.run(classic.OpenShift(SYS))
            await wire.run(item(5_000))
            await wire.run(close(5_000))
            fn_state = rig.register.fn.state
            serial, registration = fn_state.config.serial, fn_state.registration
            assert registration is not None
            queued = (await wire.run(fn.GetUnconfirmedCount(SYS))).count
            assert queued == fn_state.last_number == 3
            # interrupted: half the message read, then FF30 again gives the same bytes
            status = await wire.run(fn.GetBufferStatus(SYS))
            await wire.run(fn.ReadBufferBlock(SYS, 0, status.max_block))
            first = await _read_buffer(wire)
            assert (await wire.run(fn.GetOfdExchangeStatus(SYS))).status == 0x07
            delivered, signs = [], {}
            message = first
            while message:
                session = decode_session(message)
                assert session.header.p_version == P_VERSION_12  # FFD 1.2 registered
                assert session.header.fn_serial == serial
                document = check_document_message(session.container)
                when = rig.clock.now()
                ack = operator_ack(serial, document.fd_number, when, registration.ofd_inn)
                await _write_buffer(wire, encode_session(serial, ack))
                delivered.append(document.fd_number)
                signs[document.fd_number] = ack
                message = await _read_buffer(wire)
            assert delivered == [1, 2, 3]
            assert (await wire.run(fn.GetUnconfirmedCount(SYS))).count == 0
            status39 = await wire.run(fn.GetOfdExchangeStatus(SYS))
            assert (status39.status, status39.queue_count, status39.first_document_number) == (
                0,
                0,
                0,
            )  # the transport was set down when FF30 found nothing
            ticket = await wire.run(fn.GetOfdTicket(SYS, 2))
            receipt = rig.register.fn.ofd_receipt(2)
            assert ticket.operator_sign == receipt.sign + bytes(2) and ticket.document_number == 2
            assert ticket.datetime == rig.clock.now().replace(second=0)
            # the last block again: harmless; a receipt for an FD the FN does not await: 20h
            await _write_buffer(wire, encode_session(serial, signs[3]))
            await wire.run(classic.OpenReceipt(SYS, ReceiptType.SALE))
            await wire.run(item(100))
            await wire.run(close(100))
            wrong = encode_session(serial, operator_ack(serial, 9, when, registration.ofd_inn))
            block = (await wire.run(fn.StartBufferWrite(SYS, len(wrong)))).max_block
            last = (len(wrong) - 1) // block * block
            for offset in range(0, last, block):
                await wire.run(fn.WriteBufferBlock(SYS, offset, wrong[offset : offset + block]))
            # FD 9 is not the one awaited: the FN refuses, 20h (reason 3)
            assert await wire.error(fn.WriteBufferBlock(SYS, last, wrong[last:])) == 0x20
            assert (await wire.run(fn.GetUnconfirmedCount(SYS))).count == 1
            assert await wire.error(fn.GetOfdTicket(SYS, 4)) == 0x08  # no receipt yet
            assert rig.register.verify().ok

    asyncio.run(scenario())
