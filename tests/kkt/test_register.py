"""The Register API against the emulated register: in process, over TCP, over a real pty."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.atol import open_device as open_atol
from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device
from kkt.protocols.atol.link import HostSettings as AtolHostSettings
from kkt.protocols.shtrih import fn
from kkt.protocols.shtrih.link import HostSettings
from support.tap import Send, tap, untap

import kkt
from kkt import Item, Operation, Payments, Receipt, Vat
from kkt.register import _paid

FAST = HostSettings(ack=0.5, quiet=0.05, probe=0.2)
ATOL_FAST = AtolHostSettings(packet=0.5)


def coffee(cash: int = 70_000, **changes: object) -> Receipt:
    items = (
        Item("Кофе", 19_900, Decimal(2), Vat.VAT20),
        Item("Круассан", 14_500, Decimal(1), Vat.VAT10),
        Item("Вода 0,5", 7_000, Decimal("1.5"), Vat.NONE),
    )
    values: dict[str, object] = {"items": items, "payments": Payments(cash=cash)}
    values.update(changes)
    return Receipt(**values)  # type: ignore[arg-type]


OPENERS = {"shtrih": open_device, "atol": open_atol}
HOST_SETTINGS = {"shtrih": FAST, "atol": ATOL_FAST}
# (model, name, serial) each personality reports
IDENTITIES = {"shtrih": (250, "ШТРИХ-М-01Ф", "0012345678"), "atol": (61, "АТОЛ 30Ф", "12345678")}


class Served:
    """An emulated register in a state directory, reachable by URL, speaking ``protocol``."""

    def __init__(self, tmp_path: Path, transport: str, protocol: str = "shtrih") -> None:
        self.state = tmp_path / "state"
        self.faults = Faults()
        self.protocol = protocol
        self.thread: ServiceThread | None = None
        self.device: Any = None
        if transport == "inproc":
            self.url = f"emulator:{self.state}"
        else:
            self.device = OPENERS[protocol](self.state)
            pty = tmp_path / "tty" if transport == "pty" else None
            self.thread = ServiceThread(
                self.device, self.faults, pty=pty, protocol=protocol
            ).__enter__()
            self.url = str(pty) if pty else f"socket://127.0.0.1:{self.thread.port}"

    def connect(self, journal: Path | None = None) -> kkt.Register:
        return kkt.connect(
            self.url,
            journal=journal,
            settings=HOST_SETTINGS[self.protocol],
            protocol=self.protocol,
        )

    def verify(self) -> tuple[bool, int]:
        if self.device is not None:
            result = self.device.verify()
        else:
            device = OPENERS[self.protocol](self.state)
            result = device.verify()
            device.close()
        return result.ok, result.documents

    def close(self) -> None:
        if self.thread is not None:
            self.thread.__exit__(None, None, None)
        if self.device is not None:
            self.device.close()


@pytest.fixture(
    params=[
        (protocol, transport)
        for protocol in ("shtrih", "atol")
        for transport in ("inproc", "tcp", "pty")
    ],
    ids=lambda param: "-".join(param),
)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    protocol, transport = request.param
    rig = Served(tmp_path, transport, protocol)
    yield rig
    rig.close()


@pytest.mark.timeout(120)
def test_the_same_day_on_every_transport(served: Served) -> None:
    with served.connect() as register:
        assert not register.status().shift_open
        info = register.device_info()
        assert (info.model, info.name, info.serial) == IDENTITIES[served.protocol]
        assert register.fn_info().last_document == 1
        opened = register.open_shift(cashier="Петрова А.")
        assert (opened.document_number, opened.shift_number) == (2, 1)
        results = [
            register.sell(coffee(70_000)),
            register.sell(coffee(0, payments=Payments(electronic=coffee().total))),
            register.sell(
                coffee(0, payments=Payments(cash=20_000, electronic=coffee().total - 20_000))
            ),
            register.receipt(
                coffee(operation=Operation.SELL_RETURN, payments=Payments(cash=coffee().total))
            ),
        ]
        register.x_report()
        closed = register.close_shift()
        assert [r.document_number for r in results] == [3, 4, 5, 6] and closed.document_number == 7
        assert [r.receipt_number for r in results] == [1, 2, 3, 4]
        for result in results:
            found = register.find_document(result.document_number)
            assert found.fiscal_sign == result.fiscal_sign
            assert (found.type, found.operation, found.total) == (
                3,
                result.operation,
                coffee().total,
            )
            assert result.qr.startswith("t=") and f"&i={result.document_number}&" in result.qr
        assert results[3].operation == 2
    assert served.verify() == (True, 7)


@pytest.mark.timeout(60)
def test_idempotency_key_returns_the_first_receipt(served: Served, tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    with served.connect(journal) as register:
        register.open_shift()
        first = register.sell(coffee(), key="order-17")
        again = register.sell(coffee(), key="order-17")
        assert again == first
        assert register.fn_info().last_document == first.document_number
    with served.connect(journal) as register:  # a new process would see the same journal
        assert register.sell(coffee(), key="order-17") == first
        assert register.fn_info().last_document == first.document_number


@pytest.mark.timeout(60)
def test_a_pending_key_never_claims_a_receipt_another_key_owns(tmp_path: Path) -> None:
    """Order 1 crashed before its receipt was formed; order 2, of the same total, was sold after
    the restart.  Retrying order 1 must sell it, not hand back order 2's receipt."""
    rig = Served(tmp_path, "inproc")
    journal_path = tmp_path / "journal.sqlite"
    try:
        with rig.connect(journal_path) as register:
            register.open_shift()
            assert register.journal is not None
            before = register.fn_info().last_document
            register.journal.begin("order-1", before, int(Operation.SELL), coffee().total)
            second = register.sell(coffee(), key="order-2")
            first = register.sell(coffee(), key="order-1")
            assert first.document_number == second.document_number + 1
            assert register.sell(coffee(), key="order-1") == first
    finally:
        rig.close()


@pytest.mark.timeout(60)
def test_a_refused_keyed_receipt_frees_its_key(tmp_path: Path) -> None:
    """A refusal means no document: the key is forgotten, and a later document of the same total
    cannot be mistaken for it."""
    rig = Served(tmp_path, "inproc")
    try:
        with rig.connect(tmp_path / "journal.sqlite") as register:
            with pytest.raises(kkt.DeviceError):
                register.sell(coffee(), key="order-3")  # no shift is open: refused
            assert register.journal is not None and register.journal.get("order-3") is None
    finally:
        rig.close()


@pytest.mark.timeout(60)
def test_refusals_are_typed(served: Served) -> None:
    with served.connect() as register:
        with pytest.raises(kkt.WrongMode):
            register.sell(coffee())
        register.open_shift()
        with pytest.raises(kkt.WrongMode):
            register.open_shift()
        with pytest.raises(kkt.ReceiptRejected):
            register.sell(coffee(cash=100))
        with pytest.raises(kkt.ReceiptRejected):
            register.sell(Receipt((), Payments(cash=1)))
        register.sell(coffee())  # nothing was left half-open by the refusals


@pytest.mark.timeout(60)
def test_a_lost_closing_answer_is_settled_from_the_fn(tmp_path: Path) -> None:
    rig = Served(tmp_path, "tcp")
    try:
        with rig.connect() as register:
            register.open_shift()
            before = register.fn_info().last_document
            rig.faults.configure(lose_answers=0)
            # The next command (8D) and the items go through; the closing answer is forgotten by
            # the device after it fiscalized the receipt.
            original = register.device.commander.exchange

            def exchange(payload: bytes, **kwargs: object) -> bytes:
                if payload[:2] == b"\xff\x45":
                    rig.faults.configure(lose_answers=1)
                return original(payload, **kwargs)  # type: ignore[arg-type]

            register.device.commander.exchange = exchange  # type: ignore[method-assign]
            result = register.sell(coffee())
            assert result.document_number == before + 1
            assert register.fn_info().last_document == before + 1  # formed once
            assert register.find_document(result.document_number).fiscal_sign == result.fiscal_sign
    finally:
        rig.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("code", "what", "items"),
    [
        (b"\x8d", "opening", 1),  # 8Dh opens a one-item receipt only
        (b"\xff\x46", "the first item (it opens the receipt)", 3),
        (b"\xff\x46", "an item", 1),
        (b"\x89", "subtotal", 3),
        (b"\xff\x45", "closing", 3),
    ],
)
def test_the_connection_drops_mid_receipt_and_the_driver_reconnects(
    tmp_path: Path, code: bytes, what: str, items: int
) -> None:
    """The register does the work, then the TCP connection drops before its answer (a network
    blip, a reboot).  The driver opens the port again, asks the register and the FN what
    happened, and finishes the one receipt -- no second document, no lost item."""
    sale = coffee()
    sale = replace(sale, items=sale.items[:items])
    sale = replace(sale, payments=Payments(cash=sale.total))
    rig = Served(tmp_path, "tcp")
    try:
        with rig.connect() as register:
            register.open_shift()
            before = register.fn_info().last_document
            original = register.device.commander.exchange
            dropped: list[bytes] = []

            def exchange(payload: bytes, **kwargs: object) -> bytes:
                if payload.startswith(code) and not dropped:
                    dropped.append(payload)
                    rig.faults.configure(hang_up=1)
                return original(payload, **kwargs)  # type: ignore[arg-type]

            register.device.commander.exchange = exchange  # type: ignore[method-assign]
            result = register.sell(sale)
            assert dropped, f"the {what} command was never sent"
            assert register.device.commander.reconnects == 1  # type: ignore[attr-defined]
            assert result.document_number == before + 1
            assert result.total == sale.total
            assert register.fn_info().last_document == before + 1  # formed once
            found = register.find_document(result.document_number)
            assert found.fiscal_sign == result.fiscal_sign
            assert found.total == sale.total
        assert rig.verify()[0]
    finally:
        rig.close()


@pytest.mark.timeout(180)
def test_two_threads_share_one_register(tmp_path: Path) -> None:
    rig = Served(tmp_path, "tcp")
    try:
        with rig.connect() as register:
            register.open_shift()
            first = register.fn_info().last_document + 1
            numbers: list[int] = []

            def seller() -> None:
                for _ in range(200):
                    numbers.append(register.sell(coffee()).document_number)

            threads = [threading.Thread(target=seller) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(numbers) == list(range(first, first + 400))
        assert rig.verify()[0]
    finally:
        rig.close()


@pytest.mark.timeout(60)
def test_more_of_the_api(tmp_path: Path) -> None:
    import datetime as dt

    from kkt.protocols.ffd import decode_tlv, find

    rig = Served(tmp_path, "inproc")
    with rig.connect() as register:
        later = (dt.datetime.now() + dt.timedelta(days=3)).replace(hour=7, minute=8, second=9)
        register.set_datetime(later)
        state = register.status()
        assert (state.mode, state.mode_name, state.shift_open) == (4, "shift closed", False)
        register.open_shift()
        register.cash_in(50_000)
        register.print_text("Спасибо за покупку!\nЖдём снова")
        register.cut()
        register.continue_print()  # nothing waits: a no-op
        weighed = Item(
            "Сыр", 99_000, Decimal("0.350"), Vat.VAT10, measure=11, extra=((1191, "Сорт A"),)
        )
        sold = register.sell(Receipt((weighed,), Payments(cash=40_000)))
        assert sold.when is not None and sold.when.date() == later.date()
        returned = register.sell_return(Receipt((weighed,), Payments(cash=weighed.total)))
        bought = register.buy(coffee())
        register.buy_return(coffee())
        fixed = register.correction(Operation.SELL, 12_300, reason="акт 5")
        assert [r.operation for r in (sold, returned, bought, fixed)] == [1, 2, 3, 1]
        assert register.ofd_status().unsent == register.fn_info().unsent >= 7
        register.cash_out(10_000)
        register.close_shift()
    device = open_device(rig.state)
    try:
        [(_, body)] = decode_tlv(device.fn.record(sold.document_number).tlv)
        item = find(body, 1059)
        assert isinstance(item, list) and find(item, 2108) == 11 and find(item, 1191) == "Сорт A"
        assert device.fn.record(fixed.document_number).kind == 31
    finally:
        device.close()


@pytest.mark.timeout(120)
def test_a_misbehaving_device_yields_only_typed_errors(tmp_path: Path) -> None:
    import asyncio
    import random
    import time

    from kkt.protocols.shtrih import classic
    from support.shells import serve_tcp

    rng = random.Random(5)

    class Liar:
        """Answers every command with random bytes, sometimes with the right code in front."""

        def execute(self, payload: bytes) -> bytes:
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
            return (payload[:1] + junk) if rng.random() < 0.5 else junk

    ready = threading.Event()
    port: list[int] = []
    stop: list[asyncio.Event] = []
    loop_box: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        loop_box.append(asyncio.get_running_loop())
        stop.append(asyncio.Event())
        async with await serve_tcp(Liar(), port=0) as server:
            port.append(server.port)
            ready.set()
            await stop[0].wait()

    thread = threading.Thread(target=lambda: asyncio.run(serve()))
    thread.start()
    try:
        assert ready.wait(10)
        with kkt.connect(f"socket://127.0.0.1:{port[0]}", settings=FAST) as register:
            outcomes: set[str] = set()
            for _ in range(40):
                started = time.monotonic()
                try:
                    register.raw(classic.GetShortStatus(30))
                    outcomes.add("answer")
                except kkt.KktError as error:
                    outcomes.add(type(error).__name__)
                assert time.monotonic() - started < 15, "a call outlived its timeouts"
            assert outcomes - {"answer"}, outcomes  # it did lie
    finally:
        loop_box[0].call_soon_threadsafe(stop[0].set)
        thread.join(10)


@pytest.mark.hardware
def test_the_day_on_a_real_register(kkt_url: str | None) -> None:
    """Runs against real hardware with ``--kkt-url=URL``; a shift is opened and closed."""
    if kkt_url is None:
        pytest.skip("needs a real register: pass --kkt-url=/dev/ttyUSB0 or socket://host:7778")
    with kkt.connect(kkt_url) as register:
        register.status()
        register.fn_info()
        register.open_shift()
        result = register.sell(coffee())
        assert register.find_document(result.document_number).fiscal_sign == result.fiscal_sign
        register.close_shift()


@pytest.mark.timeout(60)
def test_documents_read_whole_with_their_tlv(served: Served) -> None:
    with served.connect() as register:
        register.open_shift(cashier="Петрова А.")
        sold = register.sell(coffee(70_000, cashier="Петрова А."))
        document = register.document(sold.document_number)
        assert (document.number, document.type, document.type_name) == (
            sold.document_number,
            3,
            "кассовый чек",
        )
        assert document.fiscal_sign == sold.fiscal_sign
        data = document.to_json()
        tlv = data["tlv"]
        assert tlv["fiscalDocumentNumber"] == sold.document_number
        assert tlv["totalSum"] == coffee().total
        assert tlv["operator"] == "Петрова А."
        assert [item["name"] for item in tlv["items"]] == ["Кофе", "Круассан", "Вода 0,5"]
        # Each register writes 1023 with its own precision (Shtrih 6 places, ATOL 3): the value
        # is what counts.
        quantities = [Decimal(item["quantity"]) for item in tlv["items"]]
        assert quantities == [Decimal(2), Decimal(1), Decimal("1.5")]
        registration = register.registration()
        assert registration.rnm.startswith("0000000001") and registration.ffd == "1.2"
        assert tlv["kktRegId"].strip() == registration.rnm
        shift = register.shift_info()
        assert (shift.open, shift.number, shift.receipts, shift.expired) == (True, 1, 1, False)
        assert shift.opened_at is not None and shift.opened_at <= (
            register.clock() or shift.opened_at
        )
        with pytest.raises(kkt.DeviceError, match=r"no requested data|not found|no such"):
            register.document(999)


@pytest.mark.timeout(60)
def test_a_garbled_fn_serial_is_a_bad_answer_never_cached(tmp_path: Path) -> None:
    """FF02 answered with a damaged serial: the driver retries the query, and a receipt that the
    FN formed never turns into an error a caller could take for "not sold" (soak finding)."""
    rig = Served(tmp_path, "inproc")
    try:
        with rig.connect() as register:
            register.open_shift()
            garbled = {"left": 2}

            def garble_serial(payload: bytes, send: Send) -> bytes:
                answer = send(payload)
                if payload[:2] == b"\xff\x02" and garbled["left"]:
                    garbled["left"] -= 1
                    answer = answer[:3] + b"99990789\x189408001"
                return answer

            tap(register, garble_serial)
            register.device._fn_serial = None  # type: ignore[attr-defined]
            result = register.sell(coffee())  # two damaged answers, then a good one
            assert result.fn_number.isdigit() and len(result.fn_number) == 16
            assert "&fn=" + result.fn_number in result.qr
            garbled["left"] = 99
            register.device._fn_serial = None  # type: ignore[attr-defined]
            with pytest.raises(kkt.OutcomeUnknown, match="IS fiscal"):
                register.sell(coffee())  # formed; its details unreadable: never "failed"
            assert register.fn_info().last_document == result.document_number + 1
    finally:
        rig.close()


@pytest.mark.timeout(60)
def test_another_writer_on_the_register_is_noticed(tmp_path: Path) -> None:
    """A second connection cancels our receipt and puts its own item in just before our closing
    command: the document formed is not ours, and the driver says so instead of 'done'."""
    from kkt.protocols.shtrih import classic
    from kkt.protocols.shtrih.modes import OperationType, ReceiptType, TaxRate

    rig = Served(tmp_path, "tcp")
    try:
        with rig.connect() as ours, rig.connect() as theirs:
            ours.open_shift()
            fired: list[bool] = []

            def interloper(payload: bytes, send: Send) -> bytes:
                if payload[:2] == b"\xff\x45" and not fired:
                    fired.append(True)
                    theirs.raw(classic.CancelReceipt(30))
                    theirs.raw(classic.OpenReceipt(30, ReceiptType.SALE))
                    theirs.raw(
                        fn.OperationV2(
                            30, OperationType.INCOME, Decimal(1), 500, None, None,
                            TaxRate.VAT20, 1, 4, 1, "их товар",
                        )
                    )  # fmt: skip
                return send(payload)

            tap(ours, interloper)
            with pytest.raises(kkt.OutcomeUnknown, match="not this receipt"):
                ours.sell(coffee())
    finally:
        rig.close()


@pytest.mark.timeout(60)
def test_an_item_damaged_past_the_checksum_never_becomes_fiscal(tmp_path: Path) -> None:
    """Two bit flips in one bit position pass Shtrih's XOR checksum: the register executes an
    item with a damaged price.  The subtotal check cancels the receipt before it is closed (a
    1 % soak once put a receipt of 85.77 into the FN that nobody sold)."""
    rig = Served(tmp_path, "inproc")
    try:
        with rig.connect() as register:
            register.open_shift()
            before = register.fn_info().last_document
            damaged: list[bytes] = []

            def damaged_on_the_line(payload: bytes, send: Send) -> bytes:
                if payload[:2] == b"\xff\x46" and not damaged:
                    # bits 0 and 1 flipped in the price's low byte and in the tax byte: the
                    # frame's XOR checksum is unchanged
                    changed = bytearray(payload)
                    changed[13] ^= 0x03
                    changed[23] ^= 0x03
                    damaged.append(bytes(changed))
                    payload = bytes(changed)
                return send(payload)

            tap(register, damaged_on_the_line)
            with pytest.raises(kkt.NotFiscalized, match="subtotal"):
                register.sell(coffee())
            assert damaged
            assert register.fn_info().last_document == before  # nothing formed
            assert not register.status().receipt_items  # and nothing left open
            assert register.sell(coffee()).total == coffee().total  # the next sale is clean
    finally:
        rig.close()


@pytest.mark.timeout(60)
def test_a_refused_closing_command_is_judged_by_the_fn(tmp_path: Path) -> None:
    """A paper end reported for the closing command after the FN formed the document (real
    firmware prints the fiscal part after forming it): the receipt is fiscal and reported so."""
    rig = Served(tmp_path, "inproc")
    try:
        with rig.connect() as register:
            register.open_shift()
            before = register.fn_info().last_document

            def paper_end_after_forming(payload: bytes, send: Send) -> bytes:
                answer = send(payload)
                if payload[:2] == b"\xff\x45":
                    return b"\xff\x45\x6b"  # "no receipt tape", though the FN formed it
                return answer

            tap(register, paper_end_after_forming)
            result = register.sell(coffee())
            assert result.document_number == before + 1 and result.total == coffee().total
            assert register.fn_info().last_document == before + 1
    finally:
        rig.close()


@pytest.mark.timeout(60)
def test_one_journal_for_two_registers_keeps_their_documents_apart(tmp_path: Path) -> None:
    """The `kkt sell --key` default journal serves every register: a key done on register B must
    not hide register A's pending receipt that carries the same document number."""
    from kkt.protocols.errors import LinkError

    journal = tmp_path / "journal.sqlite"
    a_rig, b_rig = Served(tmp_path / "a", "inproc"), Served(tmp_path / "b", "inproc")
    try:
        with a_rig.connect(journal) as a, b_rig.connect(journal) as b:
            a.open_shift()
            b.open_shift()
            assert a.fn_info().serial != b.fn_info().serial  # each emulated FN has its own

            def answer_lost(payload: bytes, send: Send) -> bytes:
                answer = send(payload)
                if payload[:2] == b"\xff\x45":
                    untap(a)  # the line is back for the retry
                    raise LinkError("answer lost", command=payload, maybe_executed=True)
                return answer

            tap(a, answer_lost)
            sold = a.sell(coffee(), key="A-1")  # settled from the FN at once
            b.sell(coffee(), key="B-1")
            assert a.sell(coffee(), key="A-1") == sold
            assert a.fn_info().last_document == sold.document_number
    finally:
        a_rig.close()
        b_rig.close()


@pytest.mark.timeout(60)
def test_a_pending_key_is_matched_by_its_items_not_its_total_alone(tmp_path: Path) -> None:
    rig = Served(tmp_path, "inproc")
    try:
        with rig.connect(tmp_path / "journal.sqlite") as register:
            register.open_shift()
            assert register.journal is not None
            tea = Receipt(
                (Item("Чай", coffee().total, Decimal(1), Vat.VAT20),), Payments(cash=70_000)
            )
            before = register.fn_info().last_document
            register.journal.begin(
                "order-9",
                before,
                int(Operation.SELL),
                coffee().total,
                register.fn_info().serial,
                coffee().fingerprint(),
            )
            other = register.sell(tea)  # the same total, other items, no key
            mine = register.sell(coffee(), key="order-9")
            assert mine.document_number == other.document_number + 1  # not tea's receipt
    finally:
        rig.close()


@pytest.mark.timeout(60)
def test_a_free_item_lost_on_the_line_is_sent_again_not_skipped(tmp_path: Path) -> None:
    """A zero-priced item leaves the subtotal as it was, so only the receipt's item count tells
    whether the register took it (review finding): here it did not, and it is sent again."""
    from kkt.protocols.errors import LinkError

    rig = Served(tmp_path, "inproc")
    try:
        with rig.connect() as register:
            register.open_shift()
            lost: list[bytes] = []

            def frame_lost(payload: bytes, send: Send) -> bytes:
                if payload[:2] == b"\xff\x46" and b"\xd1\xf3\xe2" in payload and not lost:
                    lost.append(payload)  # the gift's frame never reached the register
                    raise LinkError("no answer", command=payload, maybe_executed=True)
                return send(payload)

            tap(register, frame_lost)
            gift = Item("Сувенир", 0, Decimal(1), Vat.NONE)
            receipt = Receipt((*coffee().items, gift), Payments(cash=70_000))
            sold = register.sell(receipt)
            assert lost
            names = [
                item["name"]
                for item in register.document(sold.document_number).to_json()["tlv"]["items"]
            ]
            assert names == ["Кофе", "Круассан", "Вода 0,5", "Сувенир"]
    finally:
        rig.close()


@pytest.mark.timeout(60)
def test_settling_never_closes_a_receipt_that_is_not_this_one(tmp_path: Path) -> None:
    """The closing command was lost; when the driver looks, the FN formed nothing and *a*
    receipt is open -- but not ours (here another program swapped it).  Closing that one with
    this sale's payments would make a fiscal document nobody sold: it is cancelled instead."""
    from kkt.protocols.errors import LinkError
    from kkt.protocols.shtrih import classic
    from kkt.protocols.shtrih.modes import OperationType, ReceiptType, TaxRate

    rig = Served(tmp_path, "inproc")
    try:
        with rig.connect() as register:
            register.open_shift()
            before = register.fn_info().last_document
            swapped = False

            def swap_then_lose(payload: bytes, send: Send) -> bytes:
                nonlocal swapped
                if payload[:2] == b"\xff\x45" and not swapped:
                    swapped = True
                    send(classic.CancelReceipt(30).encode())
                    send(classic.OpenReceipt(30, ReceiptType.SALE).encode())
                    item = fn.OperationV2(
                        30,
                        OperationType(1),
                        Decimal(1),
                        5_000,
                        5_000,
                        None,
                        TaxRate.VAT20,
                        1,
                        4,
                        1,
                        "Чужой товар",
                    )
                    send(item.encode())
                    raise LinkError("the line dropped", command=payload, maybe_executed=True)
                return send(payload)

            tap(register, swap_then_lose)
            with pytest.raises(kkt.NotFiscalized, match="not this one"):
                register.sell(coffee())
            untap(register)
            assert register.fn_info().last_document == before  # nothing formed
            assert not register.status().receipt_open
    finally:
        rig.close()


@pytest.mark.timeout(60)
def test_a_document_misread_once_is_still_found_to_be_this_receipt(tmp_path: Path) -> None:
    """A soak found it: the closing answer was lost, and while the driver read the document
    back, one block came damaged in a way the XOR checksum cannot see (two flips in one bit
    column) -- the items no longer matched, and a fiscal receipt was reported not fiscal.  Now
    a document that does not match is read again before it is ruled out."""
    from kkt.protocols.errors import LinkError

    rig = Served(tmp_path, "inproc")
    try:
        with rig.connect() as register:
            register.open_shift()
            before = register.fn_info().last_document
            closed = damaged = False

            def lose_then_misread(payload: bytes, send: Send) -> bytes:
                nonlocal closed, damaged
                answer = send(payload)
                if payload[:2] == b"\xff\x45" and not closed:
                    closed = True
                    raise LinkError("answer lost", command=payload, maybe_executed=True)
                name = answer.find(b"\x06\x04", 7)  # tag 1030, an item's name, in a 1059
                if payload[:2] == b"\xff\x3b" and closed and not damaged and name > 0:
                    damaged = True
                    spot = name + 4  # the name's first byte, one letter changed
                    return answer[:spot] + bytes((answer[spot] ^ 0x03,)) + answer[spot + 1 :]
                return answer

            tap(register, lose_then_misread)
            result = register.sell(coffee())
            assert damaged and result.document_number == before + 1
            assert register.fn_info().last_document == before + 1
    finally:
        rig.close()


# -- an idempotency key is bound to its register and its receipt (issue 14, defect 1) ---------


@pytest.mark.timeout(60)
def test_a_key_used_for_another_receipt_is_a_conflict_and_a_replay_says_so(
    tmp_path: Path,
) -> None:
    rig = Served(tmp_path, "inproc")
    try:
        with rig.connect(tmp_path / "journal.sqlite") as register:
            register.open_shift()
            first = register.sell(coffee(), key="k1")
            assert first.replayed is False
            last = register.fn_info().last_document
            tea = Receipt(
                (Item("Чай", coffee().total, Decimal(1), Vat.VAT20),), Payments(cash=70_000)
            )
            for call, other in (
                (register.sell_return, coffee()),  # the same items, another operation
                (register.sell, tea),  # the same total, other items
                (register.sell, coffee(payments=Payments(electronic=64_800))),  # other payments
                (register.buy, coffee()),
            ):
                with pytest.raises(kkt.KeyConflict, match="k1") as conflict:
                    call(other, key="k1")
                assert conflict.value.key == "k1" and conflict.value.pending is False
                said = str(conflict.value)
                assert "nothing was sent" in said and "new key" in said
            assert register.fn_info().last_document == last  # nothing refunded, nothing sold
            again = register.sell(coffee(), key="k1")
            assert again.replayed is True and again == first
            assert again.to_json() == {**first.to_json(), "replayed": True}
            assert register.fn_info().last_document == last
    finally:
        rig.close()


@pytest.mark.timeout(60)
def test_a_key_is_bound_to_its_register_done_or_pending(tmp_path: Path) -> None:
    """One journal for a Shtrikh and an ATOL register (the `kkt --key` default): a key done or
    left pending in one FN is never settled, replayed or sold in the other."""
    journal = tmp_path / "journal.sqlite"
    a_rig, b_rig = Served(tmp_path / "a", "inproc"), Served(tmp_path / "b", "inproc", "atol")
    try:
        with a_rig.connect(journal) as a, b_rig.connect(journal) as b:
            a.open_shift()
            b.open_shift()
            a_fn, b_fn = a.fn_info().serial, b.fn_info().serial
            assert a_fn != b_fn
            a.sell(coffee(), key="k1")
            b_last = b.fn_info().last_document
            with pytest.raises(kkt.KeyConflict, match=a_fn) as conflict:
                b.sell(coffee(), key="k1")
            assert conflict.value.fn == a_fn and conflict.value.pending is False
            # A crash mid-sale on A: the key is pending there, its receipt may be fiscal.
            assert a.journal is not None
            before = a.fn_info().last_document
            a.journal.begin(
                "k2", before, int(Operation.SELL), coffee().total, a_fn, coffee().fingerprint()
            )
            with pytest.raises(kkt.KeyConflict, match=a_fn) as pending:
                b.sell(coffee(), key="k2")
            assert pending.value.pending is True and "may be fiscal" in str(pending.value)
            assert b.fn_info().last_document == b_last  # nothing sold on B
            entry = a.journal.get("k2")
            assert entry is not None and entry.state == "pending"  # still A's to settle
            assert a.sell(coffee(), key="k2").replayed is False  # settled on A: not formed, sold
    finally:
        a_rig.close()
        b_rig.close()


@pytest.mark.timeout(60)
def test_a_pending_key_with_another_receipt_is_a_conflict(tmp_path: Path) -> None:
    rig = Served(tmp_path, "inproc")
    try:
        with rig.connect(tmp_path / "journal.sqlite") as register:
            register.open_shift()
            assert register.journal is not None
            serial = register.fn_info().serial
            before = register.fn_info().last_document
            register.journal.begin(
                "k3", before, int(Operation.SELL), coffee().total, serial, coffee().fingerprint()
            )
            with pytest.raises(kkt.KeyConflict, match="k3") as conflict:
                register.sell_return(coffee(), key="k3")
            assert conflict.value.pending is True
            assert register.fn_info().last_document == before
    finally:
        rig.close()


@pytest.mark.timeout(60)
def test_an_old_journal_file_is_migrated_in_place(tmp_path: Path) -> None:
    """A journal written before keys were bound (no fn, fingerprint, payments columns): its done
    keys still replay, bound by the FN their result names and their operation and total."""
    import json
    import sqlite3

    rig = Served(tmp_path, "inproc")
    old = tmp_path / "old.sqlite"
    try:
        with rig.connect(tmp_path / "new.sqlite") as register:
            register.open_shift()
            first = register.sell(coffee(), key="k1")
        stored = {k: v for k, v in first.to_json().items() if k != "replayed"}
        db = sqlite3.connect(old)
        db.execute(
            "CREATE TABLE receipts (key TEXT PRIMARY KEY, state TEXT NOT NULL, before INTEGER "
            "NOT NULL, operation INTEGER NOT NULL, total INTEGER NOT NULL, result TEXT)"
        )
        db.execute(
            "INSERT INTO receipts VALUES ('k1', 'done', ?, 1, ?, ?)",
            (first.document_number - 1, coffee().total, json.dumps(stored)),
        )
        db.commit()
        db.close()
        with rig.connect(old) as register:
            again = register.sell(coffee(), key="k1")
            assert again.replayed is True and again == first
            with pytest.raises(kkt.KeyConflict):
                register.sell_return(coffee(), key="k1")
            register.sell(coffee(), key="k4")
        db = sqlite3.connect(old)
        columns = {row[1] for row in db.execute("PRAGMA table_info(receipts)")}
        row = db.execute("SELECT fn, payments FROM receipts WHERE key = 'k4'").fetchone()
        db.close()
        assert {"fn", "fingerprint", "payments"} <= columns
        assert row[0] == first.fn_number and row[1]
    finally:
        rig.close()


@pytest.mark.timeout(60)
def test_a_pending_key_found_in_the_fn_is_a_replay(tmp_path: Path) -> None:
    """A crash after the closing command: the receipt is in the FN, the key still pending.  The
    next call with the key finds it and says it sent nothing (replayed)."""
    rig = Served(tmp_path, "inproc")
    try:
        with rig.connect(tmp_path / "journal.sqlite") as register:
            register.open_shift()
            assert register.journal is not None
            before = register.fn_info().last_document
            register.journal.begin(
                "k5",
                before,
                int(Operation.SELL),
                coffee().total,
                register.fn_info().serial,
                coffee().fingerprint(),
                "cash=70000,electronic=0,prepaid=0,credit=0,other=0",
            )
            formed = register.sell(coffee())  # what the crashed process had fiscalized
            found = register.sell(coffee(), key="k5")
            assert found == formed and found.replayed is True and formed.replayed is False
            assert register.fn_info().last_document == formed.document_number
            assert register.sell(coffee(), key="k5").replayed is True
    finally:
        rig.close()


# -- a review's reproductions (each failed before its fix) ----------------------------------------
# Hole 1: the cash tendered is not in the FN (only the cash kept, 1031), so a retry that re-enters
# it otherwise is the same sale; a pending key's receipt is looked for in the FN before anyone is
# told to sell under a new key.  Hole 2: two pending keys of the same items each keep their own
# document (the search for one stops where the next key began).  Hole 3: an ATOL answer that names
# a document not after the receipt's start is not this receipt's (a task another session left).


@pytest.fixture(params=["shtrih", "atol"])
def journaled(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[kkt.Register]:
    """A register in process with a journal and an open shift."""
    rig = Served(tmp_path, "inproc", request.param)
    try:
        with rig.connect(tmp_path / "journal.sqlite") as register:
            register.open_shift()
            yield register
    finally:
        rig.close()


def crashed_sale(register: kkt.Register, key: str, receipt: Receipt) -> int:
    """What a process that crashed mid-sale leaves: its key pending, its receipt fiscal.  The
    document's number."""
    assert register.journal is not None
    fn_info = register.fn_info()
    register.journal.begin(
        key,
        fn_info.last_document,
        int(receipt.operation),
        receipt.total,
        fn_info.serial,
        receipt.fingerprint(),
        _paid(receipt),
    )
    return register.sell(receipt).document_number


def test_a_pending_key_retried_with_other_tendered_cash_is_never_sold_twice(
    journaled: kkt.Register,
) -> None:
    before = journaled.fn_info().last_document
    first = coffee(cash=100_000)  # 648.00 due, 1000.00 tendered
    crashed_sale(journaled, "order-9", first)
    retry = coffee(cash=first.total)  # the same sale, the cash re-entered exactly
    try:
        journaled.sell(retry, key="order-9")
    except kkt.KeyConflict as conflict:
        if "new key" in str(conflict):
            journaled.sell(retry, key="order-9-b")  # as the message says
    assert journaled.fn_info().last_document - before == 1


def test_a_done_key_retried_with_other_tendered_cash_replays(journaled: kkt.Register) -> None:
    first = journaled.sell(coffee(cash=70_000), key="order-10")
    again = journaled.sell(coffee(cash=64_800), key="order-10")
    assert again.replayed and again.document_number == first.document_number


def test_two_pending_keys_of_the_same_items_each_keep_their_own_document(
    journaled: kkt.Register,
) -> None:
    start = journaled.fn_info().last_document
    formed = {key: crashed_sale(journaled, key, coffee()) for key in ("order-A", "order-B")}
    got = {key: journaled.sell(coffee(), key=key).document_number for key in formed}
    assert journaled.fn_info().last_document - start == 2  # two orders, two receipts
    assert got == formed


def test_a_closing_answer_naming_an_old_document_is_settled_not_trusted(tmp_path: Path) -> None:
    """ATOL: session A's closing command is cut by its time limit and its task left un-Acked;
    session B's link starts its task IDs afresh, and when the line loses the first copy of B's
    closing Add, the register's "already exists" hands B the result of A's task.  B must not
    report A's document as its own receipt."""
    rig = Served(tmp_path, "tcp", "atol")
    try:
        with rig.connect() as setup:
            setup.open_shift()
        with rig.connect() as first:
            session: Any = first.device.commander
            original = session.exchange

            def cut_short(payload: bytes, **options: Any) -> bytes:
                if payload[2] == 0x4A:  # the closing command: slow register, short deadline
                    rig.faults.configure(delay=1.5)
                    session.deadline = session._clock() + 0.4
                return original(payload, **options)

            session.exchange = cut_short
            with pytest.raises(kkt.KktError):
                first.sell(coffee())
        rig.faults.clear()
        time.sleep(2)  # the register finishes the first closing command
        with rig.connect() as second:
            session = second.device.commander
            sent = session.exchange
            lose: list[bool] = [False]

            def closing(payload: bytes, **options: Any) -> bytes:
                lose[0] = payload[2] == 0x4A
                return sent(payload, **options)

            session.exchange = closing
            port = session.port
            write = port.write

            def lossy_write(data: bytes) -> int:
                if lose[0] and data[:1] == b"\xfe":
                    lose[0] = False  # the line loses the first copy of the closing Add
                    return len(data)
                return int(write(data))

            port.write = lossy_write
            before = rig.device.fn.state.last_number  # asked of the emulator: B's task IDs
            result = second.sell(coffee())  # must meet A's, as the same steps make them
            assert result.document_number > before  # its own document, not the first sale's
            assert not second.status().receipt_open
            assert second.fn_info().last_document == result.document_number
    finally:
        rig.close()


def test_an_old_journal_opened_by_many_threads_at_once_is_migrated_once(tmp_path: Path) -> None:
    """A cloud register opens one journal file from a worker per register, all at start: the
    migration of an old file runs under one write lock, never "duplicate column name"."""
    import sqlite3
    import threading

    from kkt.journal import Journal

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE receipts (key TEXT PRIMARY KEY, state TEXT NOT NULL, before INTEGER "
        "NOT NULL, operation INTEGER NOT NULL, total INTEGER NOT NULL, result TEXT)"
    )
    db.commit()
    db.close()
    start = threading.Barrier(8)
    failures: list[BaseException] = []
    journals: list[Journal] = []

    def open_one() -> None:
        start.wait()
        try:
            journals.append(Journal(path))
        except BaseException as failure:  # collected: the assertion below names it
            failures.append(failure)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for journal in journals:
        journal.close()
    assert failures == []
    db = sqlite3.connect(path)
    columns = [row[1] for row in db.execute("PRAGMA table_info(receipts)")]
    db.close()
    assert columns.count("payments") == 1 and "fn" in columns
