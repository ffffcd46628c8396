"""A sale in the fewest exchanges: what the session carries from its own last receipt, and when
it stops trusting it.

In the steady state a Shtrih sale of three items is the items (FF46, the first opening the
receipt), the subtotal check (89h) and the closing (FF45) with its answer's second copy (an ENQ
replay, no command): the FN's last document number before it, the shift's numbers and the
document's record come from the previous receipt and the closing answer
(`Device.last_sale`, `kkt.settle._from_answer`).  Anything else on the register -- a shift closed,
cash in, a failed exchange, a reconnect, another program's receipt -- makes the next sale ask the
FN again, and every result is the one the FN keeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.atol import open_device as open_atol
from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device
from kkt.protocols.errors import LinkError
from kkt.protocols.shtrih import fn
from kkt.protocols.shtrih.link import HostSettings
from kkt.protocols.shtrih.modes import OperationType, TaxRate
from support.tap import Send, tap, untap

import kkt
from kkt import FiscalResult, Item, Payments, Receipt, Vat

FAST = HostSettings(ack=0.5, quiet=0.05, probe=0.2)
# open, items, subtotal check, closing and its answer's second copy (no command)
STEADY = ["ff46", "ff46", "ff46", "89", "ff45", "enq"]


def coffee(cash: int = 70_000) -> Receipt:
    return Receipt(
        items=(
            Item("Кофе", 19_900, Decimal(2), Vat.VAT20),
            Item("Круассан", 14_500, Decimal(1), Vat.VAT10),
            Item("Вода 0,5", 7_000, Decimal("1.5"), Vat.NONE),
        ),
        payments=Payments(cash=cash),
    )


def code(payload: bytes) -> str:
    if not payload:
        return "enq"  # the closing answer's second copy: a bare ENQ, no command
    return payload[:2].hex() if payload[0] == 0xFF else payload[:1].hex()


class Log:
    """The command codes a register sends, through a tap that can also change an answer."""

    def __init__(self, register: kkt.Register) -> None:
        self.sent: list[str] = []
        self.answer_hook: Any = None
        tap(register, self._through)

    def _through(self, payload: bytes, send: Send) -> bytes:
        self.sent.append(code(payload))
        answer = send(payload)
        return self.answer_hook(payload, answer) if self.answer_hook else answer

    def take(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent


def as_the_fn_says(register: kkt.Register, result: FiscalResult) -> None:
    """``result`` is the FN's own: its document's record and the shift's numbers read now."""
    found = register.find_document(result.document_number)
    assert (found.fiscal_sign, found.when, found.total) == (
        result.fiscal_sign,
        result.when,
        result.total,
    )
    assert found.is_receipt and found.operation == result.operation
    state = register.shift_state()
    assert (state.number, state.receipts) == (result.shift_number, result.receipt_number)
    assert register.fn_info().last_document == result.document_number


@pytest.fixture
def register(tmp_path: Path) -> Iterator[kkt.Register]:
    with kkt.connect(f"emulator:{tmp_path / 'state'}") as register:
        register.open_shift()
        yield register


def test_a_steady_sale_is_five_commands_and_its_result_is_the_fns(
    register: kkt.Register,
) -> None:
    log = Log(register)
    first = register.sell(coffee())
    assert log.take()[0] == "ff01"  # after the shift's opening: the FN is asked
    as_the_fn_says(register, first)
    log.take()
    for _ in range(3):
        sold = register.sell(coffee())
        assert log.take() == STEADY
        as_the_fn_says(register, sold)
        log.take()  # (the reads above keep the carried numbers: they form nothing)


@pytest.mark.parametrize(
    "between",
    [
        pytest.param(lambda r: (r.close_shift(), r.open_shift()), id="shift-closed-and-opened"),
        pytest.param(lambda r: r.cash_in(10_000), id="cash-in"),
        pytest.param(
            lambda r: r.correction(kkt.Operation.SELL, 5_000, reason="1"), id="correction"
        ),
    ],
)
def test_anything_else_on_the_register_makes_the_next_sale_ask_the_fn(
    register: kkt.Register, between: Any
) -> None:
    register.sell(coffee())
    log = Log(register)
    register.sell(coffee())
    assert log.take() == STEADY
    between(register)
    log.take()
    sold = register.sell(coffee())
    assert log.take()[:2] == ["ff01", "10"]  # the FN's last number, the register's state
    as_the_fn_says(register, sold)
    log.take()
    assert log.take() == [] and register.sell(coffee()) and log.take() == STEADY


def test_reads_and_printing_keep_the_steady_state(register: kkt.Register) -> None:
    """Queries, an X report and printed text form no fiscal document (Shtrih marks them
    repeatable): the next sale still starts from the carried numbers."""
    register.sell(coffee())
    register.status()
    register.fn_info()
    register.shift_info()
    register.x_report()
    register.print_text("спасибо")
    log = Log(register)
    sold = register.sell(coffee())
    assert log.take() == STEADY
    as_the_fn_says(register, sold)


def test_a_closed_shift_between_two_sales_gives_the_new_shifts_numbers(
    register: kkt.Register,
) -> None:
    before = register.sell(coffee())
    register.sell(coffee())
    register.close_shift()
    register.open_shift()
    sold = register.sell(coffee())
    assert (sold.shift_number, sold.receipt_number) == (before.shift_number + 1, 1)
    as_the_fn_says(register, sold)
    again = register.sell(coffee())
    assert (again.shift_number, again.receipt_number) == (sold.shift_number, 2)
    as_the_fn_says(register, again)


def test_an_outcome_unknown_then_a_sale_asks_the_fn(register: kkt.Register) -> None:
    """The closing answer is lost and the FN cannot be read: `OutcomeUnknown`.  The next sale
    does not take the carried number for granted (the unknown receipt may be fiscal)."""
    register.sell(coffee())
    log = Log(register)
    register.sell(coffee())
    assert log.take() == STEADY
    lost = [False]

    def hook(payload: bytes, answer: bytes) -> bytes:
        if payload[:2] == b"\xff\x45":
            lost[0] = True
        if lost[0] and payload[:2] in (b"\xff\x45", b"\xff\x01", b"\xff\x0a"):
            raise LinkError("the line dropped", command=payload, maybe_executed=True)
        return answer

    log.answer_hook = hook
    with pytest.raises(kkt.OutcomeUnknown):
        register.sell(coffee(70_100))
    log.answer_hook = None
    log.take()
    sold = register.sell(coffee())
    assert log.take()[0] == "ff01"
    as_the_fn_says(register, sold)


def test_a_lost_closing_answer_is_settled_and_the_next_sale_asks_the_fn(
    register: kkt.Register,
) -> None:
    register.sell(coffee())
    log = Log(register)
    register.sell(coffee())
    log.take()

    def hook(payload: bytes, answer: bytes) -> bytes:
        if payload[:2] == b"\xff\x45":
            log.answer_hook = None
            raise LinkError("the line dropped", command=payload, maybe_executed=True)
        return answer

    log.answer_hook = hook
    settled = register.sell(coffee())
    as_the_fn_says(register, settled)
    log.take()
    sold = register.sell(coffee())
    assert log.take()[0] == "ff01"
    assert sold.document_number == settled.document_number + 1
    as_the_fn_says(register, sold)


def test_a_refused_item_makes_the_next_sale_ask_the_fn(register: kkt.Register) -> None:
    register.sell(coffee())
    log = Log(register)
    # The register refuses the second item (33h, incorrect parameters).
    log.answer_hook = lambda payload, answer: (
        b"\xff\x46\x33" if payload[:2] == b"\xff\x46" and log.sent.count("ff46") == 2 else answer
    )
    with pytest.raises(kkt.DeviceError):
        register.sell(coffee())
    log.answer_hook = None
    log.take()
    sold = register.sell(coffee())
    assert log.take()[0] == "ff01"
    as_the_fn_says(register, sold)


def test_a_closing_answer_without_its_time_has_the_document_read(
    register: kkt.Register,
) -> None:
    """FF45's short answer (LEN 16, older firmware) carries no time: the document's record is
    read (FF0A) -- and the result is still the FN's."""
    register.sell(coffee())
    log = Log(register)
    log.answer_hook = lambda payload, answer: (
        answer[:-5] if payload[:2] == b"\xff\x45" or not payload else answer  # both copies
    )
    sold = register.sell(coffee())
    assert log.take() == [*STEADY, "ff0a"]
    as_the_fn_says(register, sold)


def test_a_closing_answer_with_another_change_is_not_trusted(register: kkt.Register) -> None:
    """The change FF45 names says which total the register closed: one that does not fit this
    receipt (here damaged past the checksum) sends the driver to the FN, whose record decides --
    this receipt, after all."""
    register.sell(coffee())

    def hook(payload: bytes, answer: bytes) -> bytes:
        if payload[:2] == b"\xff\x45" or not payload:  # both copies: as the register said it
            return answer[:3] + (1).to_bytes(5, "little") + answer[8:]
        return answer

    log = Log(register)
    log.answer_hook = hook
    sold = register.sell(coffee())
    exchanges = log.take()
    # The document's payments read back (FF3A/FF3B: was the answer or the command damaged?),
    # then its record and the shift's numbers; no second closing.
    assert exchanges[: len(STEADY)] == STEADY and exchanges[len(STEADY)] == "ff3a"
    assert exchanges[-2:] == ["ff0a", "ff40"] and "ff45" not in exchanges[len(STEADY) :]
    as_the_fn_says(register, sold)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, Faults, str]]:
    device = open_device(tmp_path / "state")
    faults = Faults()
    try:
        with ServiceThread(device, faults) as thread:
            yield device, faults, f"socket://127.0.0.1:{thread.port}"
    finally:
        device.close()


def test_another_program_selling_between_two_sales_is_noticed(
    served: tuple[Any, Faults, str],
) -> None:
    """One writer per register -- yet should another program sell between two of ours, the
    closing answer names a document beyond the next one: the FN is asked, and the result is
    still this receipt's, with the shift's true numbers."""
    _, _, url = served
    with kkt.connect(url, settings=FAST) as ours, kkt.connect(url, settings=FAST) as theirs:
        ours.open_shift()
        ours.sell(coffee())
        ours.sell(coffee())
        theirs.sell(coffee(80_000))
        log = Log(ours)
        sold = ours.sell(coffee())
        assert log.take() == [*STEADY, "ff0a", "ff40"]
        as_the_fn_says(ours, sold)


def test_another_writers_receipt_closed_by_ours_in_the_steady_state_is_noticed(
    served: tuple[Any, Faults, str],
) -> None:
    """Another program swaps its own receipt in just before our closing command (here on the
    steady-state path, where the closing answer would stand for the record): the change gives it
    away, the FN is asked, and the driver says the document is not this receipt."""
    from kkt.protocols.shtrih import classic

    _, _, url = served
    with kkt.connect(url, settings=FAST) as ours, kkt.connect(url, settings=FAST) as theirs:
        ours.open_shift()
        ours.sell(coffee())
        fired: list[bool] = []

        def interloper(payload: bytes, send: Send) -> bytes:
            if payload[:2] == b"\xff\x45" and not fired:
                fired.append(True)
                theirs.raw(classic.CancelReceipt(30))
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
        untap(ours)


def test_a_reconnect_between_two_sales_makes_the_next_ask_the_fn(
    served: tuple[Any, Faults, str],
) -> None:
    """The port was reopened (here during a read): another program may have used the register
    meanwhile, so the next sale asks the FN."""
    _, faults, url = served
    with kkt.connect(url, settings=FAST) as register:
        register.open_shift()
        register.sell(coffee())
        assert register.device.last_sale() is not None
        faults.configure(hang_up=1)  # the next command runs, then the connection is cut
        register.status()  # a read: asked again on the reopened port
        faults.clear()
        session: Any = register.device.commander
        assert session.reconnects == 1
        sent: list[str] = []
        exchange = session.exchange

        def counted(payload: bytes, **options: Any) -> bytes:
            sent.append(code(payload))
            answer: bytes = exchange(payload, **options)
            return answer

        session.exchange = counted
        sold = register.sell(coffee())
        assert sent[0] == "ff01"
        as_the_fn_says(register, sold)


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
def test_carried_results_stay_the_fns_over_many_sales(tmp_path: Path, protocol: str) -> None:
    """Fast results (from the closing answer and the carried numbers) equal what the FN says,
    sale after sale, on both vendors -- returns and purchases among them."""
    state = tmp_path / "state"
    with kkt.connect(f"emulator:{state}", protocol=protocol) as register:
        register.open_shift()
        results = [
            register.receipt(Receipt(coffee().items, Payments(cash=70_000), operation=operation))
            for operation in [kkt.Operation.SELL] * 3
            + [kkt.Operation.SELL_RETURN, kkt.Operation.SELL]
        ]
        for result in results:
            found = register.find_document(result.document_number)
            assert (found.fiscal_sign, found.when, found.total, found.operation) == (
                result.fiscal_sign,
                result.when,
                result.total,
                result.operation,
            )
        numbers = [(r.shift_number, r.receipt_number) for r in results]
        assert numbers == [(1, n) for n in range(1, 6)]
        assert [r.document_number for r in results] == list(
            range(results[0].document_number, results[0].document_number + 5)
        )
    device = (open_atol if protocol == "atol" else open_device)(state)
    try:
        assert device.verify().ok
    finally:
        device.close()


def test_a_keyed_sale_records_the_carried_number_and_settles_from_it(tmp_path: Path) -> None:
    """The journal's ``before`` of a steady-state sale is the carried number -- the FN's last
    document, exactly as asking would have said -- and a key left pending after an unknown
    outcome settles from it: found in the FN, replayed, never sold twice."""
    journal = tmp_path / "journal.db"
    with kkt.connect(f"emulator:{tmp_path / 'state'}", journal=journal) as register:
        register.open_shift()
        previous = register.sell(coffee(), key="k1")
        log = Log(register)
        sold = register.sell(coffee(), key="k2")
        assert log.take() == STEADY  # the journal is local: no exchange
        assert register.journal is not None
        entry = register.journal.get("k2")
        assert entry is not None and entry.before == previous.document_number
        as_the_fn_says(register, sold)
        log.take()
        lost = [False]

        def hook(payload: bytes, answer: bytes) -> bytes:
            if payload[:2] == b"\xff\x45":
                lost[0] = True
            if lost[0] and payload[:2] in (b"\xff\x45", b"\xff\x01", b"\xff\x0a"):
                raise LinkError("the line dropped", command=payload, maybe_executed=True)
            return answer

        log.answer_hook = hook
        with pytest.raises(kkt.OutcomeUnknown):
            register.sell(coffee(), key="k3")
        log.answer_hook = None
        pending = register.journal.get("k3")
        assert pending is not None and pending.state == "pending"
        assert pending.before == sold.document_number
        replayed = register.sell(coffee(), key="k3")
        assert replayed.replayed and replayed.document_number == sold.document_number + 1
        assert register.fn_info().last_document == replayed.document_number  # formed once


def test_over_a_line_the_closing_answer_is_read_twice_without_a_command(
    served: tuple[Any, Faults, str],
) -> None:
    """Over a real link the second copy of FF45's answer is the register's ENQ replay: no
    command is sent for it, and a copy damaged on the way (two flips in one bit column, past
    the XOR) sends the driver to the FN -- the result is the FN's either way."""
    _, _, url = served
    with kkt.connect(url, settings=FAST) as register:
        register.open_shift()
        register.sell(coffee())
        log = Log(register)
        sold = register.sell(coffee())
        assert log.take() == STEADY
        as_the_fn_says(register, sold)
        log.take()

        def damaged(payload: bytes, answer: bytes) -> bytes:
            if payload[:2] != b"\xff\x45":
                return answer
            out = bytearray(answer)
            out[12] ^= 0x10  # the fiscal sign's bytes, one column: the XOR cannot see it
            out[13] ^= 0x10
            return bytes(out)

        log.answer_hook = damaged
        sold = register.sell(coffee())
        log.answer_hook = None
        assert log.take()[: len(STEADY)] == STEADY  # then the FN's archive decides
        as_the_fn_says(register, sold)
