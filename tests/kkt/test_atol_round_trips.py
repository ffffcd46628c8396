"""The round trips of a steady 3-item ATOL sale, counted on the wire against the emulator on TCP.

A round trip is one host write that waits for an answer: the packets it carries go out back to
back, and the host then reads.  Each write is listed with what its packets carry (``add 92``: an
Add or AckAdd of command 92h; ``ack``, ``req``: the buffer's own) -- the breakdown
`kkt bench --case receipts` sums as ``receipts.exchanges.atol.round_trips``.  The assertion keeps
the sequence from growing back.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.atol import AtolRegister
from kkt.emulator.shells import Service
from kkt.protocols.atol.buffer import Ack, AckAdd, Add, Req, decode_buffer_command
from kkt.protocols.atol.packet import Packet, PacketDeframer

import kkt
from kkt import Item, Payments, Receipt, TaxSystem, Vat

pytestmark = pytest.mark.timeout(60)

SALE = Receipt(
    items=(
        Item("Кофе", 19_900, 2, Vat.VAT20),
        Item("Круассан", 14_500, 1, Vat.VAT10),
        Item("Вода", 7_000, 1, Vat.NONE),
    ),
    payments=Payments(cash=70_000),
)

# One sale after another, nothing going wrong (the mode, the FN's last document and the shift's
# numbers carried from the previous sale; each task's Ack riding on a later Add as AckAdd):
# open (92h) with its tag 1055 (E8h), each item begun (EAh) and registered (EBh), the subtotal
# (3Fh) written with the last item, the closing (4Ah) with the document's record (91h 34h) --
# a query's Add in the same write as the command before it (`AtolHostLink.follow`).
STEADY_SALE = [
    ["add 92"],
    ["add e8"],
    *[["add ea"], ["add eb"]] * 2,
    ["add ea"],
    ["add eb", "add 3f"],
    ["add 4a", "add 91 34"],
]


def describe(data: bytes) -> list[str]:
    """What one host write carries, packet by packet."""
    tokens, _ = PacketDeframer().read_all(data)
    said = []
    for token in tokens:
        assert isinstance(token, Packet)
        command = decode_buffer_command(token.data)
        if isinstance(command, Add | AckAdd):
            code = command.data[2:3].hex()
            if command.data[2] in (0x91, 0xA4):
                code = command.data[2:4].hex(" ")  # the register or the FN's query
            said.append(f"add {code}")
        elif isinstance(command, Ack):
            said.append("ack")
        elif isinstance(command, Req):
            said.append("req")
        else:
            said.append(type(command).__name__.lower())
    return said


class Served:
    """The emulated ATOL register, `kkt emulator serve --protocol atol`'s service, on TCP."""

    def __init__(self, state: Path) -> None:
        self.device = AtolRegister.open(state)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.service = Service(self.device, protocol="atol")
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    async def _start(self) -> int:
        await self.service.__aenter__()
        listener = await self.service.tcp()
        port: int = listener.port
        return port

    def close(self) -> None:
        stop = self.service.__aexit__(None, None, None)
        asyncio.run_coroutine_threadsafe(stop, self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()
        self.device.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    rig = Served(tmp_path / "state")
    try:
        yield rig
    finally:
        rig.close()


def test_a_steady_three_item_sale_is_these_round_trips(served: Served) -> None:
    with kkt.connect(f"socket://127.0.0.1:{served.port}", protocol="atol") as register:
        register.open_shift()
        register.sell(SALE)
        register.sell(SALE)
        session: Any = register.device.commander
        writes: list[bytes] = []
        write = session.port.write

        def recorded(data: bytes) -> Any:
            writes.append(bytes(data))
            return write(data)

        session.port.write = recorded
        for _ in range(5):  # each alike: no Ack left over for a plain packet of its own
            writes.clear()
            sold = register.sell(SALE)
            breakdown = [describe(data) for data in writes]
            assert breakdown == STEADY_SALE, breakdown
            assert len(breakdown) <= 9
            # Every packet of it is a task of the sale: nothing was sent again.
            assert sum(map(len, breakdown)) == sum(map(len, STEADY_SALE))
        assert register.find_document(sold.document_number).total == SALE.total


def _record(register: kkt.Register) -> list[bytes]:
    session: Any = register.device.commander
    writes: list[bytes] = []
    write = session.port.write

    def recorded(data: bytes) -> Any:
        writes.append(bytes(data))
        return write(data)

    session.port.write = recorded
    return writes


def test_a_refused_closing_is_told_and_its_follow_up_is_freed(served: Served) -> None:
    """4Ah refused (a tax system the FN is not registered for): the refusal reaches the caller,
    nothing is fiscal, and the document's record written with it (91h 34h) -- read after the
    refusal, as the FN is asked whether anything was formed -- frees its slot; the sales after
    it are steady again, and closing the session leaves the buffer empty."""
    with kkt.connect(f"socket://127.0.0.1:{served.port}", protocol="atol") as register:
        register.open_shift()
        register.sell(SALE)
        register.sell(SALE)
        before = register.device.last_document()
        with pytest.raises(kkt.errors.DeviceError):
            register.sell(replace(SALE, tax_system=TaxSystem.PATENT))
        assert register.device.last_document() == before, "nothing was fiscalized"
        register.sell(SALE)
        register.sell(SALE)
        writes = _record(register)
        register.sell(SALE)
        assert [describe(data) for data in writes] == STEADY_SALE
    assert served.service.tasks is not None
    assert len(served.service.tasks.buffer) == 0, "every task of ours was acknowledged"
