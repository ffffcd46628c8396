"""Issue 21, the driver: marked goods sold on the emulated Shtrih register over TCP -- each code
checked by the FN and ОИСМ (FF61) and accepted (FF69) before the receipt opens, bound (FF67)
right before its item; a rejected code never reaches a document, a code is sold once, the FN's
marking state is never left unknown; ATOL refuses marked goods before sending anything."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.atol import open_device as open_atol
from kkt.emulator.control import Controls
from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device
from kkt.protocols.errors import LinkError
from kkt.protocols.ffd import TlvList, find
from kkt.protocols.ffd.marking import ItemCheck, LocalCheck, PlannedStatus, parse_mark_code
from kkt.protocols.shtrih import marking as mk
from support.tap import Send, tap, untap

import kkt
from kkt import Item, Payments, Receipt, Vat
from kkt.journal import Journal

from .test_carried_numbers import Log, coffee

GS = "\x1d"
ANSWERS = ("valid", "wrong-status", "withdrawn", "unknown", "offline", "corrupt")


def code(serial: str, crypto: str = "Q" * 44) -> str:
    return f"0104607012345678215{serial:0>12}{GS}91EE06{GS}92{crypto}"


def forged(serial: str) -> str:
    """A code the emulated FN's local check finds negative (its crypto code begins "BAD")."""
    return code(serial, "BAD" + "Q" * 41)


def product(mark: str) -> str:
    """Tag 1305 of a code: what its document holds of it (the FN takes 2000 out)."""
    value = parse_mark_code(mark).product_code
    assert value is not None
    return value


def shoes(mark: str | None, price: int = 10_000, **extra: Any) -> Item:
    return Item("Обувь", price, Decimal(1), Vat.NONE, mark_code=mark, **extra)


def tea(price: int = 5_000) -> Item:
    return Item("Чай", price, Decimal(1), Vat.VAT10)


def receipt(*items: Item) -> Receipt:
    return Receipt(tuple(items), Payments(cash=sum(i.total for i in items)))


@dataclass
class Served:
    register: kkt.Register
    device: Any
    controls: Controls

    def oism(self, answer: str, mark: str | None = None) -> None:
        request: dict[str, Any] = {"action": "oism", "answer": answer}
        if mark is not None:
            request["code"] = mark
        assert self.controls.handle(request)["ok"]

    def deliver(self) -> int:
        delivered = self.controls.handle({"action": "oism", "deliver": "all"})
        return int(delivered.get("delivered", 0))

    def last(self) -> int:
        return self.register.fn_info().last_document


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    device = open_device(tmp_path / "state")
    faults = Faults()
    with ServiceThread(device, faults) as emulator:
        with kkt.connect(f"socket://127.0.0.1:{emulator.port}") as register:
            register.open_shift()
            yield Served(register, device, Controls(device, faults))
    device.close()


def items_of(register: kkt.Register, number: int) -> list[TlvList]:
    """The items (1059) of document ``number`` as the driver reads it back."""
    return [body for tag, body in register.document(number).tlv if tag == 1059]  # type: ignore[misc]


def clean(register: kkt.Register) -> None:
    """The FN keeps nothing of a check: no code pending, none saved."""
    state = register.marking_state()
    assert (state.check_state, state.saved) == (1, 0), state.describe()


# -- check_mark -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "accepted", "item_check", "fn_code"),
    [
        ("valid", True, 15, mk.FN_CODE_OK),
        ("wrong-status", False, 7, mk.FN_CODE_OK),
        ("withdrawn", False, 7, mk.FN_CODE_OK),
        ("unknown", True, 3, mk.FN_CODE_OK),  # not negative (JavaPOS's rule): [М]
        ("offline", False, 3, mk.FN_CODE_NO_ANSWER),  # ОИСМ silent: not without allow_offline
        ("corrupt", False, None, mk.FN_CODE_ANSWER_REFUSED),
    ],
)
def test_check_mark_for_each_oism_answer(
    served: Served, answer: str, accepted: bool, item_check: int | None, fn_code: int
) -> None:
    mark = code("100")
    served.oism(answer, mark)
    last = served.last()
    check = served.register.check_mark(mark)
    assert check.accepted is accepted, check.explanation
    assert check.item_check == (None if item_check is None else ItemCheck(item_check))
    assert check.online is not None and check.online.fn_code == fn_code
    assert check.local == LocalCheck.CHECKED | LocalCheck.POSITIVE and check.code_type == 4
    assert check.explanation.startswith("accepted" if accepted else "rejected")
    assert check.short == product(mark) and check.to_json()["accepted"] is accepted
    if answer in ("offline", "corrupt"):
        assert served.register.check_mark(mark, allow_offline=True).accepted
    clean(served.register)  # FF69 reject after the check: nothing saved, nothing pending
    assert served.last() == last  # a check forms no document


def test_check_mark_forged_code_and_bad_input(served: Served) -> None:
    check = served.register.check_mark(forged("101"))
    assert not check.accepted and check.local == LocalCheck.CHECKED
    assert check.item_check is not None and check.item_check.negative and check.label == "[М-]"
    assert "crypto code invalid" in check.explanation
    with pytest.raises(kkt.BadMarkCode, match="AI 92 crypto tail is 5 characters"):
        served.register.check_mark(f"0104607012345678215000000000102{GS}91EE06{GS}92SHORT")
    with pytest.raises(kkt.BadMarkCode, match="planned_status"):
        served.register.check_mark(code("103"), 1)  # type: ignore[arg-type]
    with pytest.raises(kkt.BadMarkCode, match="quantity"):
        served.register.check_mark(code("103"), quantity=(3, 2))
    returned = served.register.check_mark(code("104"), PlannedStatus.PIECE_RETURNED)
    assert returned.planned_status is PlannedStatus.PIECE_RETURNED
    part = served.register.check_mark(code("105"), PlannedStatus.MEASURED_IN_SALE, quantity=(1, 4))
    assert part.accepted
    state = served.register.marking_state()
    assert state.queued == 0 and not state.pending_check
    assert any("no code is being checked" in line for line in state.describe())
    clean(served.register)


# -- selling --------------------------------------------------------------------------------------


def test_a_sale_with_marked_and_unmarked_items(served: Served) -> None:
    register = served.register
    first, second = code("200"), code("201")
    served.oism("unknown", second)  # ОИСМ does not know it: [М], still sold
    sold = register.sell(receipt(shoes(first), tea(), shoes(second, 12_000)))
    assert [(m.item, m.code, m.item_check, m.label) for m in sold.marks] == [
        (0, first, 15, "[М+]"),
        (2, second, 3, "[М]"),
    ]
    items = items_of(register, sold.document_number)
    assert len(items) == 3
    for body, mark, value in ((items[0], first, 15), (items[2], second, 3)):
        assert find(body, 2106) == value
        assert find(body, 2115) == parse_mark_code(mark).control_code
        assert find(body, 1163) == [(1305, product(mark))]
        assert all(tag != 2000 for tag, _ in body)  # the FN takes the code out
    assert all(find(items[1], tag) is None for tag in (2106, 2115, 1163))
    # the journal's JSON keeps the marks
    assert kkt.FiscalResult.from_json(sold.to_json()) == sold
    state = register.marking_state()
    assert (state.saved, state.queued) == (0, 1)  # one notification for the receipt
    assert served.deliver() == 1 and register.marking_state().queued == 0


def test_marked_items_go_out_as_1212_33_and_31(served: Served) -> None:
    """Goods with a marking code are 1212 = 33 «ТМ», excise goods with one 31 «АТМ» (fact sheet
    fn-ffd-ofd.md, tag 1212; ATOL's commodityWithMarking / exciseWithMarking), in the FN's
    document as read back; an unmarked item keeps 1."""
    register = served.register
    sold = register.sell(
        receipt(shoes(code("210")), tea(), shoes(code("211"), 12_000, payment_subject=2))
    )
    items = items_of(register, sold.document_number)
    assert [find(body, 1212) for body in items] == [33, 1, 31]


@pytest.mark.parametrize("answer", ["wrong-status", "withdrawn", "offline", "corrupt", "forged"])
def test_a_rejected_code_never_reaches_a_document(served: Served, answer: str) -> None:
    register = served.register
    good, bad = code("300"), forged("301") if answer == "forged" else code("301")
    if answer != "forged":
        served.oism(answer, bad)
    last = served.last()
    log = Log(register)
    with pytest.raises(kkt.MarkRejected) as caught:
        register.sell(receipt(shoes(good), tea(), shoes(bad)))
    sent = log.take()
    untap(register)
    error = caught.value
    assert (error.item, error.code) == (2, product(bad)) and "nothing was sent" in str(error)
    assert error.item_check in (3, 5, 7, None) and error.reason
    assert not {"8d", "ff67", "ff46", "ff45"} & set(sent), sent  # nothing fiscal went out
    assert served.last() == last
    clean(register)  # the code accepted before it was cleared too
    sold = register.sell(receipt(shoes(good), tea()))  # without the item, as the error says
    assert [m.code for m in sold.marks] == [good]
    assert served.last() == last + 1


def test_offline_code_sold_when_allowed(served: Served) -> None:
    mark = code("350")
    served.oism("offline", mark)
    with pytest.raises(kkt.MarkRejected, match="did not answer in time"):
        served.register.sell(receipt(shoes(mark)))
    sold = served.register.sell(receipt(shoes(mark)), allow_offline_marks=True)
    assert [m.item_check for m in sold.marks] == [3]  # the FN's check only: [М]
    assert find(items_of(served.register, sold.document_number)[0], 2106) == 3


def test_the_same_code_is_sold_once(served: Served) -> None:
    register = served.register
    mark = code("400")
    register.sell(receipt(shoes(mark)))
    last = served.last()
    # The emulated ОИСМ learnt the sale as its receipt was formed (its notification still waits
    # in the FN): the next sale's check is negative, refused before anything fiscal is sent --
    # MarkRejected naming the code, not the FN's refusal to bind it.
    assert register.marking_state().queued == 1
    with pytest.raises(kkt.MarkRejected) as caught:
        register.sell(receipt(shoes(mark), tea()))
    assert not isinstance(caught.value, kkt.MarkAlreadySold)
    assert (caught.value.item, caught.value.code, caught.value.item_check) == (0, product(mark), 7)
    check = register.check_mark(mark)
    assert (check.accepted, check.label) == (False, "[М-]")
    assert int(check.item_check or 0) == 7  # the FN's check positive, ОИСМ: status incorrect
    # ОИСМ told to say "valid" for this code anyway: the FN, which sold it, refuses to bind it
    served.oism("valid", mark)
    with pytest.raises(kkt.MarkAlreadySold, match="sold that code before") as sold_before:
        register.sell(receipt(shoes(mark), tea()))
    assert sold_before.value.item == 0 and sold_before.value.code == product(mark)
    assert served.controls.handle({"action": "oism", "reset": True})["ok"]
    assert served.last() == last  # one document for the code
    assert not register.status().receipt_open
    clean(register)
    # a sale return gives it back at once, and it sells again
    returned = register.sell_return(receipt(shoes(mark)))
    assert returned.marks[0].item_check in (15, 3)
    assert register.check_mark(mark).accepted
    # the sale's notification reaching ОИСМ after the return does not undo the return
    assert served.controls.handle({"action": "oism", "deliver": 1})["delivered"] == 1
    assert register.sell(receipt(shoes(mark))).marks[0].code == mark
    assert served.deliver() == 2  # the return's and the second sale's
    with pytest.raises(kkt.MarkRejected):
        register.sell(receipt(shoes(mark)))


def test_atol_refuses_marked_goods_before_sending_anything(tmp_path: Path) -> None:
    device = open_atol(tmp_path / "atol")
    with ServiceThread(device, Faults(), protocol="atol") as emulator:
        url = f"socket://127.0.0.1:{emulator.port}"
        with kkt.connect(url, protocol="atol") as register:
            register.open_shift()
            last = register.fn_info().last_document
            log = Log(register)
            with pytest.raises(kkt.NotSupported, match=r"protocol-3\.1 marking commands"):
                register.sell(receipt(shoes(code("500")), tea()))
            with pytest.raises(kkt.NotSupported, match="not public"):
                register.check_mark(code("500"))
            with pytest.raises(kkt.NotSupported):
                register.marking_state()
            assert log.take() == []  # not one command
            untap(register)
            assert register.fn_info().last_document == last
            register.sell(receipt(tea()))  # unmarked goods sell as ever
    device.close()


# -- exchanges ------------------------------------------------------------------------------------


def test_exchange_counts(tmp_path: Path) -> None:
    """An unmarked 3-item sale stays 5 commands; a marked one adds FF61 + FF69 per code, 8Dh
    (the bind goes into an open receipt) and FF67 per code."""
    with kkt.connect(f"emulator:{tmp_path / 'state'}") as register:
        register.open_shift()
        register.sell(coffee())
        log = Log(register)
        register.sell(coffee())
        assert [c for c in log.take() if c != "enq"] == ["ff46", "ff46", "ff46", "89", "ff45"]
        marked = receipt(shoes(code("600")), tea(), tea(7_000))
        register.sell(marked)
        assert [c for c in log.take() if c != "enq"] == [
            *("ff61", "ff69", "8d", "ff67", "ff46", "ff46", "ff46", "89", "ff45"),
        ]
        register.sell(coffee())  # and the unmarked one after it is 5 again
        assert [c for c in log.take() if c != "enq"] == ["ff46", "ff46", "ff46", "89", "ff45"]


# -- lost answers: the FN's marking state is never left unknown -----------------------------------


def _lose_once(command: bytes) -> Any:
    """A tap that executes ``command`` once and loses its answer (maybe executed)."""
    lost: list[bytes] = []

    def through(payload: bytes, send: Send) -> bytes:
        answer = send(payload)
        if payload[:2] == command and not lost:
            lost.append(payload)
            raise LinkError("the answer was lost", command=payload, maybe_executed=True)
        return answer

    return through, lost


@pytest.mark.parametrize("command", [b"\xff\x61", b"\xff\x69"])
def test_a_lost_check_or_decision_is_settled_by_ff70(served: Served, command: bytes) -> None:
    register = served.register
    through, lost = _lose_once(command)
    tap(register, through)
    log = Log(register)
    sold = register.sell(receipt(shoes(code("700")), tea()))
    untap(register)
    untap(register)
    assert lost and "ff70" in log.take()
    assert [m.item_check for m in sold.marks] == [15]
    assert find(items_of(register, sold.document_number)[0], 2106) == 15
    clean(register)


def test_a_check_left_pending_by_a_crashed_driver_is_rejected_first(served: Served) -> None:
    register = served.register
    register.raw(mk.CheckMarkCode(register.password, PlannedStatus.PIECE_SOLD, 0, b"0" * 20))
    assert register.marking_state().pending_check  # a driver died between FF61 and FF69
    sold = register.sell(receipt(shoes(code("710"))))  # A1h -> FF69 reject -> FF61 again
    assert [m.code for m in sold.marks] == [code("710")]
    clean(register)


def test_a_lost_bind_cancels_the_receipt(served: Served) -> None:
    register = served.register
    last = served.last()
    through, _ = _lose_once(b"\xff\x67")
    tap(register, through)
    with pytest.raises(kkt.NotFiscalized, match="binding the marking code"):
        register.sell(receipt(tea(), shoes(code("720"))))
    untap(register)
    assert served.last() == last and not register.status().receipt_open
    clean(register)  # the accepted code cleared: nothing of the failed sale is left
    assert register.sell(receipt(tea(), shoes(code("720")))).marks[0].item == 1


def test_a_key_settled_after_a_lost_close_keeps_its_marks(tmp_path: Path) -> None:
    """The closing answer is lost and nothing more gets through: the key stays pending.  The
    same call again settles it from the FN -- no code checked or bound again -- and reads the
    document's 2106 for its marks."""
    device = open_device(tmp_path / "state")
    with ServiceThread(device, Faults()) as emulator:
        url = f"socket://127.0.0.1:{emulator.port}"
        journal = tmp_path / "journal.sqlite"
        sale = receipt(shoes(code("800")), tea())
        with kkt.connect(url, journal=journal) as register:
            register.open_shift()
            closed: list[bytes] = []

            def through(payload: bytes, send: Send) -> bytes:
                if closed:
                    raise LinkError("the line is down", command=payload, maybe_executed=False)
                answer = send(payload)
                if payload[:2] == b"\xff\x45":
                    closed.append(payload)
                    raise LinkError("the answer was lost", command=payload, maybe_executed=True)
                return answer

            tap(register, through)
            with pytest.raises(kkt.OutcomeUnknown):
                register.sell(sale, key="order-1")
            untap(register)
        pending = Journal(journal)
        assert pending.get("order-1").state != "done"  # type: ignore[union-attr]
        pending.close()
        with kkt.connect(url, journal=journal) as register:
            log = Log(register)
            again = register.sell(sale, key="order-1")
            assert again.replayed and not {"ff61", "ff67", "ff69"} & set(log.take())
            assert [(m.item, m.item_check) for m in again.marks] == [(0, 15)]
            repeat = register.sell(sale, key="order-1")
            assert repeat == again and repeat.marks == again.marks
    device.close()


# -- a day ----------------------------------------------------------------------------------------


def test_a_day_of_fifty_receipts_over_tcp(served: Served) -> None:
    """50 receipts mixing marked and unmarked items, each ОИСМ answer kind (and a forged code)
    more than once; a rejected code's receipt is sold again without it.  Afterwards: every
    accepted code in exactly one sale with its tags, no rejected code in any document, and the
    FN's notification queue drained to ОИСМ."""
    register = served.register
    kinds = [*ANSWERS, "forged", "valid", "valid", "unknown"]
    accepted: dict[str, int] = {}  # code -> document
    rejected: set[str] = set()
    documents: list[int] = []
    for number in range(50):
        kind = kinds[number % len(kinds)]
        items: list[Item] = [tea(5_000 + number)]
        marks: list[str] = []
        if number % 5 != 4:  # every fifth receipt unmarked
            mark = forged(f"9{number}") if kind == "forged" else code(f"9{number}")
            if kind != "forged":
                served.oism(kind, mark)
            items.insert(0, shoes(mark, 10_000 + number))
            marks.append(mark)
            if number % 3 == 0:  # a second, valid code in the same receipt
                items.append(shoes(code(f"8{number}"), 20_000))
                marks.append(code(f"8{number}"))
        try:
            sold = register.sell(receipt(*items))
        except kkt.MarkRejected as error:
            assert kind in ("wrong-status", "withdrawn", "offline", "corrupt", "forged")
            rejected.add(marks[error.item] if error.item == 0 else marks[-1])
            left = [item for i, item in enumerate(items) if i != error.item]
            sold = register.sell(receipt(*left))
        for mark_item in sold.marks:
            accepted[mark_item.code] = sold.document_number
        documents.append(sold.document_number)
        if number % 10 == 9:
            served.deliver()
    assert len(documents) == 50 and len(rejected) >= 6 and len(accepted) >= 30
    assert not set(accepted) & rejected
    in_documents: dict[str, list[int]] = {}
    for number in documents:
        for body in items_of(register, number):
            value = find(body, 1163)
            if value is not None:
                assert find(body, 2106) in (3, 15) and find(body, 2115) is not None
                in_documents.setdefault(value[0][1], []).append(number)  # type: ignore[index]
    assert in_documents == {product(mark): [fd] for mark, fd in accepted.items()}
    assert not {product(mark) for mark in rejected} & set(in_documents)
    served.deliver()
    state = register.marking_state()
    assert (state.queued, state.saved, state.check_state) == (0, 0, 1), state.describe()


def test_one_code_on_two_items_is_refused_before_anything_is_sent(served: Served) -> None:
    log = Log(served.register)
    with pytest.raises(kkt.ReceiptRejected, match=r"items\[2\]\.mark_code: the same code"):
        served.register.sell(receipt(shoes(code("900")), tea(), shoes(code("900"))))
    assert log.take() == []


# -- the vocabulary -------------------------------------------------------------------------------


def test_planned_status_follows_the_operation() -> None:
    from kkt.marking import planned_status

    piece, part = shoes(code("1")), shoes(code("1"), mark_quantity=(1, 4))
    own = shoes(code("1"), planned_status=PlannedStatus.PIECE_IN_SALE)
    assert [planned_status(piece, op) for op in kkt.Operation] == [
        PlannedStatus.PIECE_SOLD,
        PlannedStatus.PIECE_RETURNED,
        PlannedStatus.UNCHANGED,
        PlannedStatus.UNCHANGED,
    ]
    assert planned_status(part, kkt.Operation.SELL) is PlannedStatus.MEASURED_IN_SALE
    assert planned_status(part, kkt.Operation.SELL_RETURN) is PlannedStatus.MEASURED_RETURNED
    assert planned_status(own, kkt.Operation.SELL) is PlannedStatus.PIECE_IN_SALE


def test_an_autonomous_check_and_an_old_journal_result() -> None:
    check = kkt.MarkCheck.judge(code("2"), PlannedStatus.PIECE_SOLD, LocalCheck(3), 0, 4, None)
    assert check.accepted and check.item_check == ItemCheck(19) and check.label == "[М]"
    assert "autonomous" in check.explanation
    old = {  # a journal written before marking: no "marks"
        "document_number": 7,
        "fiscal_sign": 1,
        "fn_number": "9999078900000001",
        "shift_number": 1,
        "receipt_number": 2,
        "when": None,
        "total": 100,
        "operation": 1,
        "qr": "",
        "replayed": False,
    }
    assert kkt.FiscalResult.from_json(old).marks == ()
    state = kkt.MarkingState(3, 2, 0, 5, 5, 4, 1000)
    lines = state.describe()
    assert state.pending_check and any("full" in line for line in lines)
    assert state.to_json()["queued"] == 1000


def test_a_check_of_a_damaged_code_is_caught_at_the_bind(served: Served) -> None:
    """FF61 damaged on the line past the checksum: the FN checks and saves another code, and
    refuses ours at FF67 (A5h).  The receipt is cancelled, the codes checked again, the sale
    goes through once -- and the damaged code's check is not left in the FN."""
    register = served.register
    mark = code("950")
    damaged: list[bytes] = []

    def through(payload: bytes, send: Send) -> bytes:
        if payload[:2] == b"\xff\x61" and not damaged:
            damaged.append(payload)
            return send(payload.replace(b"950", b"951"))  # one digit of the serial
        return send(payload)

    tap(register, through)
    log = Log(register)
    last = served.last()
    sold = register.sell(receipt(shoes(mark), tea()))
    sent = log.take()
    untap(register)
    untap(register)
    assert damaged and sent.count("ff61") == 2 and sent.count("ff67") == 2
    assert [m.code for m in sold.marks] == [mark] and sold.document_number == last + 1
    [body, _] = items_of(register, sold.document_number)
    assert find(body, 1163) == [(1305, product(mark))]
    clean(register)
