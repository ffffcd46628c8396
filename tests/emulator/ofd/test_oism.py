"""The emulated ОИСМ: each answer kind, per code and for all codes, through the register's
one-command check and the control channel; notifications drained into it."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.clock import ManualClock
from kkt.emulator.control import ControlError, Controls
from kkt.emulator.faults import Faults
from kkt.emulator.fn import FnCode, FnError
from kkt.emulator.fn.marking_wire import parse_tlv
from kkt.emulator.ofd import OfdThread
from kkt.emulator.ofd.oism import Answer, Circulation, Oism, OismError, answer_named
from kkt.emulator.receipt import Item
from kkt.emulator.register import NO_ANSWER
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shells.ofdlink import OfdAddress
from kkt.emulator.shtrih import ShtrihRegister, open_device
from kkt.protocols.ffd import Payments
from kkt.protocols.ffd.marking import PlannedStatus
from kkt.protocols.shtrih import classic, fn
from kkt.protocols.shtrih import marking as mk
from kkt.protocols.shtrih.modes import OperationType, ReceiptType, TaxRate
from kkt.tools.bench.soak.common import SOAK_HOST
from support.fn import START

import kkt

GS = "\x1d"


def code(serial: str) -> str:
    return f"0104607012345678215{serial:0>12}{GS}91EE06{GS}92{'Q' * 44}"


@pytest.fixture
def register(tmp_path: Path) -> Iterator[ShtrihRegister]:
    device = open_device(tmp_path / "kkt", clock=ManualClock(START))
    device.model.open_shift([])
    yield device
    device.close()


@pytest.mark.parametrize(
    ("answer", "online", "verdict", "status"),
    [
        (Answer.VALID, 0, 15, 1),
        (Answer.WRONG_STATUS, 0, 7, 2),
        (Answer.WITHDRAWN, 0, 7, 3),
        (Answer.UNKNOWN, 0, 3, None),
        (Answer.OFFLINE, NO_ANSWER, 3, None),
        (Answer.CORRUPT, 0x20, 3, None),
    ],
)
def test_each_answer_kind(
    register: ShtrihRegister, answer: Answer, online: int, verdict: int, status: int | None
) -> None:
    model = register.model
    model.oism.set(answer)
    check = model.check_mark(code("1").encode(), 1)
    assert (check.result, check.online, check.verdict) == (3, online, verdict)
    assert check.online_reason == (5 if answer is Answer.CORRUPT else 0)  # B6h: bad CRC
    tags = parse_tlv(check.server_tags)
    assert tags.get(2109) == (None if status is None else bytes((status,)))
    assert model.decide_mark(True) == verdict


def test_per_code_answers_and_reset(register: ShtrihRegister) -> None:
    oism = register.model.oism
    oism.set(Answer.WITHDRAWN, code("2").encode())
    assert oism.answer_for(code("1").encode()) is Answer.VALID
    assert oism.answer_for(code("2").encode()) is Answer.WITHDRAWN
    oism.set(Answer.OFFLINE)
    assert oism.answer_for(code("1").encode()) is Answer.OFFLINE
    oism.reset()
    assert oism.answer_for(code("2").encode()) is Answer.VALID
    with pytest.raises(OismError, match="valid, wrong-status"):
        answer_named("gone")


def test_the_control_channel_switches_answers_and_drains_notifications(
    register: ShtrihRegister,
) -> None:
    controls = Controls(register, Faults())
    model = register.model
    answer = controls.handle({"action": "oism", "code": code("9"), "answer": "unknown"})
    assert answer["oism"]["codes"] == {code("9"): "unknown"}
    assert model.check_mark(code("9").encode(), 1).verdict == 3
    model.decide_mark(False)
    controls.handle({"action": "oism", "answer": "withdrawn"})
    assert model.check_mark(code("1").encode(), 1).verdict == 7
    model.decide_mark(False)
    controls.handle({"action": "oism", "reset": True})
    for serial in ("1", "2"):
        mark = code(serial).encode()
        assert model.check_mark(mark, 1, Decimal(1), 0).verdict == 15
        model.decide_mark(True)
        model.open_receipt(0)
        model.bind_mark(mark)
        model.add_item(model.take_mark(Item("Туфли", 100, Decimal(1), 100, 6, 0)))
        model.close_receipt(Payments(cash=100))
    answer = controls.handle({"action": "oism", "deliver": 1})
    assert answer["delivered"] == 1 and answer["marking"]["queued"] == 1
    answer = controls.handle({"action": "oism", "deliver": "all"})
    assert answer["delivered"] == 1 and answer["marking"]["queued"] == 0
    assert answer["oism"]["notifications"] == 2 and answer["oism"]["sold"] == 2
    # A code the OISM saw sold is answered "wrong status" when checked for a sale again.
    assert model.check_mark(code("1").encode(), 1).verdict == 7
    for bad in (
        {"action": "oism", "answer": "nope"},
        {"action": "oism", "answer": "valid", "code": 5},
        {"action": "oism", "deliver": 0},
    ):
        with pytest.raises(ControlError):
            controls.handle(bad)


def sell_marked(model: Any, mark: bytes, *, returned: bool = False) -> None:
    """Check, accept, bind and sell (or return) ``mark`` in one receipt."""
    planned = 3 if returned else 1
    model.check_mark(mark, planned, Decimal(1), 0)
    model.decide_mark(True)
    model.open_receipt(2 if returned else 0)  # income / return of income
    model.bind_mark(mark)
    model.add_item(model.take_mark(Item("Туфли", 100, Decimal(1), 100, 6, 0)))
    model.close_receipt(Payments(cash=100))


def test_a_sale_is_learnt_when_its_receipt_is_formed(register: ShtrihRegister) -> None:
    model = register.model
    mark = code("40").encode()
    sell_marked(model, mark)
    assert len(model.fn.marking.queue) == 1  # its notification has not gone out
    assert model.oism.answer_for(mark) is Answer.WRONG_STATUS
    assert model.oism.settings()["sold"] == 1
    assert model.check_mark(mark, 1).verdict == 7  # [М-]
    model.decide_mark(False)
    # a return is not a sale: its check is answered as before
    assert model.oism.answer_for(mark, planned=3) is Answer.VALID
    # an answer set for the code still wins (testing the FN's own refusal, 3Eh)
    model.oism.set(Answer.VALID, mark)
    assert model.oism.answer_for(mark) is Answer.VALID
    model.oism.reset()
    sell_marked(model, mark, returned=True)
    assert model.oism.answer_for(mark) is Answer.VALID  # back on the shelf
    assert model.oism.settings()["sold"] == 0


def test_a_reopened_register_knows_what_its_fn_sold(tmp_path: Path) -> None:
    mark = code("41").encode()
    device = open_device(tmp_path / "kkt", clock=ManualClock(START))
    try:
        device.model.open_shift([])
        sell_marked(device.model, mark)
    finally:
        device.close()
    device = open_device(tmp_path / "kkt", clock=ManualClock(START))
    try:
        assert device.model.oism.answer_for(mark) is Answer.WRONG_STATUS
    finally:
        device.close()


def test_registers_sharing_a_circulation(tmp_path: Path) -> None:
    mark = code("42").encode()
    shared = Circulation()
    devices = [open_device(tmp_path / name, clock=ManualClock(START)) for name in ("a", "b")]
    try:
        for device in devices:
            device.model.oism.share(shared)
            device.model.open_shift([])
        first, second = (device.model for device in devices)
        assert second.oism.answer_for(mark) is Answer.VALID
        sell_marked(first, mark)
        assert second.oism.answer_for(mark) is Answer.WRONG_STATUS
        # each register keeps its own settings
        second.oism.set(Answer.OFFLINE)
        assert first.oism.answer_for(code("43").encode()) is Answer.VALID
        # a return on the other register gives it back for both
        second.oism.reset()
        sell_marked(second, mark, returned=True)
        assert first.oism.answer_for(mark) is Answer.VALID
        assert shared.watched() == [first.fn.marking, second.fn.marking]
    finally:
        for device in devices:
            device.close()


@pytest.mark.parametrize("text", [b"hello", b"0104607012345678"])
def test_a_code_the_fn_cannot_identify_is_unknown_by_default(text: bytes) -> None:
    oism = Oism(lambda: dt.datetime(2026, 1, 1))
    assert oism.answer_for(text) is Answer.UNKNOWN
    assert oism.answer_for(code("44").encode()) is Answer.VALID
    oism.set(Answer.WITHDRAWN)  # an answer for all codes: still unknown, it knows no such code
    assert oism.answer_for(text) is Answer.UNKNOWN
    for network in (Answer.OFFLINE, Answer.CORRUPT):  # the network's doing, whatever the code
        oism.set(network)
        assert oism.answer_for(text) is network
    oism.set(Answer.VALID, text)  # its own answer wins
    assert oism.answer_for(text) is Answer.VALID


def test_a_request_that_is_not_one_is_refused() -> None:
    with pytest.raises(FnError) as caught:
        Oism(lambda: dt.datetime(2026, 1, 1)).answer(b"\x04\x00\x00\x00")
    assert caught.value.code is FnCode.OFD_REPLY_REJECTED


@pytest.mark.timeout(60)
def test_notifications_travel_the_ofd_link_to_the_emulated_ofd(tmp_path: Path) -> None:
    """A served register with an OFD link: the marked receipt goes to the OFD, then its
    notification, receipted by the OFD's ОИСМ; the FN's marking queue drains by itself."""
    register = ShtrihRegister.open(tmp_path / "register")
    mark = code("77").encode()
    try:
        with OfdThread(tmp_path / "ofd") as ofd:
            address = OfdAddress("127.0.0.1", ofd.port, retry=3600.0)
            with ServiceThread(register, Faults(), ofd=address) as served:
                url = f"socket://127.0.0.1:{served.port}"
                with kkt.connect(url, settings=SOAK_HOST) as driver:
                    driver.open_shift()
                    device: Any = driver.device
                    raw, password = device.raw, device.password
                    planned = PlannedStatus.PIECE_SOLD
                    checked = raw(mk.CheckMarkCode(password, planned, 0, mark, b""))
                    assert checked.online.item_check == 15
                    raw(mk.DecideMarkCode(password, mk.MarkDecision.ACCEPT))
                    raw(classic.OpenReceipt(password, ReceiptType.SALE))
                    raw(mk.BindMarkCode(password, mark))
                    raw(
                        fn.OperationV2(
                            password,
                            OperationType.INCOME,
                            Decimal(1),
                            100,
                            None,
                            None,
                            TaxRate.NO_VAT,
                            1,
                            4,
                            1,
                            "Туфли",
                        )
                    )
                    raw(fn.CloseReceiptV2(password, (100,) + (0,) * 15, 0, (0,) * 6, 1, ""))
                    eventually(lambda: not register.fn.marking.queue)
                    eventually(lambda: register.fn.exchange_status().queued == 0)
            assert ofd.service.server is not None
            assert ofd.service.server.stats.notifications == 1
            circulation = ofd.service.server.oism.circulation
            assert circulation.withdrawn(mark) and len(circulation) == 1
    finally:
        register.close()


def eventually(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.02)


def test_a_refused_request_drops_the_check_whole(register: ShtrihRegister) -> None:
    model = register.model
    with pytest.raises(FnError) as caught:
        model.check_mark(code("5").encode(), 9)  # 2003 = 9 is no planned status
    assert caught.value.code is FnCode.MARKING_DATA_MISSING
    assert model.check_mark(code("5").encode(), 1).verdict == 15  # the sequence is free again
