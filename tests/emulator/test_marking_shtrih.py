"""Marked goods on the emulated Shtrih register, spoken to in the protocol's bytes with the host
side's codecs (`kkt.protocols.shtrih.marking`): FF61 check, FF69 decide, FF67 bind, FF46 sell,
FF70/FF68 status, FF71-FF73 export; each OISM answer; kill -9 in the middle of the flow."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kkt.emulator.clock import ManualClock
from kkt.emulator.faults import Faults
from kkt.emulator.fn import FiscalStorage, MemoryStore
from kkt.emulator.fn.marking_wire import block_crc, parse_tlv, read_notification
from kkt.emulator.ofd.oism import Answer
from kkt.emulator.register import RegisterModel
from kkt.emulator.settings import RegisterSettings
from kkt.emulator.shtrih import ShtrihRegister, open_device
from kkt.protocols.ffd import WorkMode, decode_tlv, encode_tlv, find
from kkt.protocols.ffd.marking import ItemCheck, LocalCheck, PlannedStatus
from kkt.protocols.shtrih import classic, fn
from kkt.protocols.shtrih import marking as mk
from kkt.protocols.shtrih.errors import ShtrihDeviceError
from kkt.protocols.shtrih.frame import ACK, FILLER, decode_frame, encode_frame
from kkt.protocols.shtrih.message import Request
from kkt.protocols.shtrih.modes import OperationType, ReceiptType, TaxRate, TaxSystem
from support.fn import START, registration
from support.shells import TcpClient, serve_tcp

SYS = 30
GS = "\x1d"


def code(serial: str, crypto: str = "Q" * 44) -> bytes:
    return f"0104607012345678215{serial:0>12}{GS}91EE06{GS}92{crypto}".encode()


def run(register: ShtrihRegister, request: Request[Any]) -> Any:
    return request.decode_answer(register.execute(request.encode()))


def refused(register: ShtrihRegister, request: Request[Any]) -> int:
    with pytest.raises(ShtrihDeviceError) as caught:
        run(register, request)
    return caught.value.code


def item(price: int = 10_000, operation: OperationType = OperationType.INCOME) -> fn.OperationV2:
    return fn.OperationV2(
        SYS, operation, Decimal(1), price, None, None, TaxRate.NO_VAT, 1, 4, 1, "Обувь"
    )


def close(cash: int) -> fn.CloseReceiptV2:
    return fn.CloseReceiptV2(SYS, (cash,) + (0,) * 15, 0, (0,) * 6, TaxSystem.OSN, "")


def check(mark: bytes, planned: PlannedStatus = PlannedStatus.PIECE_SOLD) -> mk.CheckMarkCode:
    tlv = encode_tlv([(2108, 0), (1023, Decimal(1))])
    return mk.CheckMarkCode(SYS, planned, 0, mark, tlv)


def accept(register: ShtrihRegister, mark: bytes) -> mk.MarkCheckResult:
    result = run(register, check(mark))
    run(register, mk.DecideMarkCode(SYS, mk.MarkDecision.ACCEPT))
    return result  # type: ignore[no-any-return]


def sell(register: ShtrihRegister, *marks: bytes | None, returning: bool = False) -> int:
    kind = ReceiptType.SALE_RETURN if returning else ReceiptType.SALE
    op = OperationType.INCOME_RETURN if returning else OperationType.INCOME
    run(register, classic.OpenReceipt(SYS, kind))
    for mark in marks:
        if mark is not None:
            run(register, mk.BindMarkCode(SYS, mark))
        run(register, item(operation=op))
    closed = run(register, close(10_000 * len(marks)))
    return int(closed.document_number)


def items_of(register: ShtrihRegister, number: int) -> list[Any]:
    [(_kind, body)] = decode_tlv(register.fn.record(number).tlv)
    return [value for tag, value in body if tag == 1059]  # type: ignore[union-attr]


@pytest.fixture
def register(tmp_path: Path) -> Iterator[ShtrihRegister]:
    device = open_device(tmp_path / "kkt", clock=ManualClock(START))
    run(device, classic.OpenShift(SYS))
    yield device
    device.close()


def test_check_accept_sell_puts_the_tags_in_the_document(register: ShtrihRegister) -> None:
    mark = code("1")
    result = accept(register, mark)
    assert result.local == LocalCheck.CHECKED | LocalCheck.POSITIVE and result.code_type == 4
    assert result.online is not None and result.online.fn_code == mk.FN_CODE_OK
    assert result.online.item_check == ItemCheck(15)
    status = run(register, mk.GetMarkingStatus(SYS))
    assert (status.check_state, status.saved_results) == (1, 1)
    run(register, classic.OpenReceipt(SYS, ReceiptType.SALE))
    bound = run(register, mk.BindMarkCode(SYS, mark))
    assert bound.matrix_type is mk.DataMatrixType.KM_44 and bound.check is None
    run(register, item())  # FF67 bound the code to this item
    run(register, item())  # and not to this one
    number = int(run(register, close(20_000)).document_number)
    marked, plain = items_of(register, number)
    assert find(marked, 2106) == 15 and find(marked, 2108) == 0
    assert find(marked, 2115) is not None and find(marked, 1163) is not None
    assert all(tag != 2000 for tag, _ in marked)
    assert find(plain, 2106) is None and find(plain, 1163) is None
    assert run(register, mk.GetMarkingStatus(SYS)).notifications_queued == 1
    note = run(register, mk.GetNotificationStatus(SYS))
    assert (note.state, note.queued, note.current_number) == (0, 1, 1)
    assert read_notification(register.fn.marking.queue[0].message).codes == (mark,)
    tape = register.model.tape()
    assert "[М+] Обувь" in tape and tape.count("Обувь") == 1  # the plain item: no label


def test_a_rejected_code_never_reaches_a_document(register: ShtrihRegister) -> None:
    register.model.oism.set(Answer.WITHDRAWN)
    mark = code("2")
    result = run(register, check(mark))
    assert result.online.item_check == ItemCheck(7) and result.online.item_check.negative
    assert run(register, mk.DecideMarkCode(SYS, mk.MarkDecision.REJECT)).item_check is None
    assert refused(register, mk.BindMarkCode(SYS, mark)) == 0xA5
    last = register.fn.status().last_number
    number = sell(register, None)
    assert number == last + 1 and all(
        find(body, 2106) is None for body in items_of(register, number)
    )


def test_the_same_code_is_sold_once(register: ShtrihRegister) -> None:
    mark = code("3")
    accept(register, mark)
    sell(register, mark)
    assert refused(register, mk.BindMarkCode(SYS, mark)) == 0xA5  # the table was cleared
    register.model.oism.set(Answer.VALID, mark)  # even with the OISM saying "valid" again ...
    accept(register, mark)
    assert refused(register, mk.BindMarkCode(SYS, mark)) == 0xA5  # ... the FN refuses
    sell(register, mark, returning=True)  # a return gives it back
    accept(register, mark)
    sell(register, mark)


@pytest.mark.parametrize(
    ("answer", "fn_code", "result", "tag2109"),
    [
        (Answer.VALID, mk.FN_CODE_OK, 15, 1),
        (Answer.WRONG_STATUS, mk.FN_CODE_OK, 7, 2),
        (Answer.WITHDRAWN, mk.FN_CODE_OK, 7, 3),
        (Answer.UNKNOWN, mk.FN_CODE_OK, 3, None),
        (Answer.OFFLINE, mk.FN_CODE_NO_ANSWER, 3, None),
        (Answer.CORRUPT, mk.FN_CODE_ANSWER_REFUSED, 5, None),  # result: B6h's reason, bad CRC
    ],
)
def test_each_oism_answer_on_the_wire(
    register: ShtrihRegister, answer: Answer, fn_code: int, result: int, tag2109: int | None
) -> None:
    mark = code("4")
    register.model.oism.set(answer, mark)
    checked = run(register, check(mark))
    assert checked.online.fn_code == fn_code and checked.online.result == result
    tags = parse_tlv(checked.online.tlv)
    assert tags.get(2109) == (None if tag2109 is None else bytes((tag2109,)))
    saved = 3 if fn_code == mk.FN_CODE_ANSWER_REFUSED else result  # refused: the FN's check only
    assert run(register, mk.DecideMarkCode(SYS, mk.MarkDecision.ACCEPT)).item_check == saved


def test_local_check_results_and_sequence_errors(register: ShtrihRegister) -> None:
    bad = run(register, check(code("5", crypto="BAD" + "Q" * 41)))
    assert bad.local == LocalCheck.CHECKED  # the emulator's bad-crypto marker: negative
    assert bad.online.item_check == ItemCheck(5) and bad.online.item_check.negative
    assert refused(register, check(code("6"))) == 0xA1  # FF69 first
    run(register, mk.DecideMarkCode(SYS, mk.MarkDecision.REJECT))
    unknown_key = run(register, check(code("7").replace(b"91EE06", b"910000")))
    assert (unknown_key.local, unknown_key.reason) == (LocalCheck(0), 2)
    run(register, mk.DecideMarkCode(SYS, mk.MarkDecision.CLEAR))
    assert run(register, mk.GetMarkingStatus(SYS)).check_state == 1
    assert refused(register, mk.DecideMarkCode(SYS, mk.MarkDecision.ACCEPT)) == 0xA1


def test_autonomous_register_exports_notifications_ff71_ff73(tmp_path: Path) -> None:
    clock = ManualClock(START)
    storage = FiscalStorage(MemoryStore(), clock)
    storage.register(registration(work_mode=int(WorkMode.AUTONOMOUS), ofd_inn="000000000000"))
    settings = RegisterSettings.load(tmp_path / "register.json")
    device = ShtrihRegister(RegisterModel(storage, settings, clock, fiscal_only=False))
    run(device, classic.OpenShift(SYS))
    marks = [code("a1"), code("a2")]
    for mark in marks:
        result = accept(device, mark)
        assert result.online is None  # autonomous: no OISM
        sell(device, mark)
    assert refused(device, mk.GetNotificationStatus(SYS)) == 0x02  # BAh: not when autonomous
    assert refused(device, mk.ReadNotificationBlock(SYS)) == 0x08  # FF71 first
    export = run(device, mk.StartNotificationExport(SYS))
    assert (export.count, export.first_number) == (2, 1)
    seen: dict[int, bytes] = {}
    while True:
        try:
            block = run(device, mk.ReadNotificationBlock(SYS))
        except ShtrihDeviceError as error:
            assert error.code == 0x08
            break
        seen[block.number] = seen.get(block.number, b"") + block.data
        assert len(block.data) <= 128
        if len(seen[block.number]) == block.size:
            crc = block_crc(seen[block.number])
            wrong = mk.ConfirmNotification(SYS, block.number, crc ^ 1)
            assert refused(device, wrong) == 0x09  # D6h: the CRC does not match
            run(device, mk.ConfirmNotification(SYS, block.number, crc))
    assert [read_notification(seen[n]).codes for n in sorted(seen)] == [(m,) for m in marks]
    assert run(device, mk.GetMarkingStatus(SYS)).notifications_queued == 0
    assert find(items_of(device, device.fn.status().last_number)[0], 2106) == 19


def test_tcp_day_with_marked_items(tmp_path: Path) -> None:
    """Over a real TCP connection: checks of each kind, sales, and the queue drained."""

    async def day() -> None:
        register = open_device(tmp_path / "tcp", clock=ManualClock(START))
        server = await serve_tcp(register, port=0, faults=Faults())
        client = await TcpClient().connect(server.port)

        async def call(request: Request[Any]) -> Any:
            await client.send(encode_frame(request.encode()))
            await client.expect(bytes((ACK,)))
            head = await client.read(2, 5.0)
            payload = decode_frame(head + await client.read(head[1] + 1, 5.0))
            await client.send(bytes((ACK,)))
            await client.expect(bytes((FILLER,)))  # TCP: the register's filler after our ACK
            return request.decode_answer(payload)

        try:
            await call(classic.OpenShift(SYS))
            sold: list[int] = []
            for n, answer in enumerate(Answer):
                register.model.oism.set(answer)
                mark = code(f"9{n}")
                result = await call(check(mark))
                positive = not result.online.item_check or not result.online.item_check.negative
                decision = mk.MarkDecision.ACCEPT if positive else mk.MarkDecision.REJECT
                await call(mk.DecideMarkCode(SYS, decision))
                await call(classic.OpenReceipt(SYS, ReceiptType.SALE))
                if positive:
                    await call(mk.BindMarkCode(SYS, mark))
                await call(item())
                closed = await call(close(10_000))
                if positive:
                    sold.append(int(closed.document_number))
            # valid, unknown, offline, corrupt (the FN's check alone) sold; wrong status and
            # withdrawn rejected
            assert len(sold) == 4
            status = await call(mk.GetMarkingStatus(SYS))
            assert status.notifications_queued == 4
            register.model.oism.reset()
            assert register.model.oism.deliver(register.fn.marking) == 4
            assert (await call(mk.GetMarkingStatus(SYS))).notifications_queued == 0
        finally:
            await client.close()
            server.close()
            await server.wait_closed()
            register.close()

    asyncio.run(day())


CHILD = r"""
import sys
sys.path.insert(0, {tests!r})
from decimal import Decimal
from kkt.emulator.shtrih import open_device
from kkt.protocols.ffd import encode_tlv
from kkt.protocols.ffd.marking import PlannedStatus
from kkt.protocols.shtrih import classic, fn
from kkt.protocols.shtrih import marking as mk
from kkt.protocols.shtrih.modes import OperationType, ReceiptType, TaxRate, TaxSystem

from pathlib import Path
register = open_device(Path({state!r}))
def run(request):
    return request.decode_answer(register.execute(request.encode()))
if not register.fn.state.shift_open:
    run(classic.OpenShift(30))
print("ready", flush=True)
n = {start}
while True:
    n += 1
    mark = ("0104607012345678215" + str(n).rjust(12, "0") + "\x1d91EE06\x1d92" + "Q" * 44).encode()
    run(mk.CheckMarkCode(30, PlannedStatus.PIECE_SOLD, 0, mark, b""))
    run(mk.DecideMarkCode(30, mk.MarkDecision.ACCEPT))
    run(classic.OpenReceipt(30, ReceiptType.SALE))
    run(mk.BindMarkCode(30, mark))
    run(fn.OperationV2(30, OperationType.INCOME, Decimal(1), 100, None, None, TaxRate.NO_VAT,
                       1, 4, 1, "x"))
    closed = run(fn.CloseReceiptV2(30, (100,) + (0,) * 15, 0, (0,) * 6, TaxSystem.OSN, ""))
    print("sold", closed.document_number, n, flush=True)
"""

KILLS = 12


@pytest.mark.timeout(300)
def test_kill_9_mid_flow_keeps_the_table_the_queue_and_the_documents_consistent(
    tmp_path: Path,
) -> None:
    state = tmp_path / "kkt"
    open_device(state).close()
    rng = random.Random(27)
    reported: dict[int, int] = {}  # FD -> code serial
    killed_mid_run = 0
    for kill in range(KILLS):
        script = CHILD.format(
            tests=str(Path(__file__).parent.parent), state=str(state), start=kill * 10_000
        )
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
        lines = [line.split() for line in out.split("\n")[:-1] if line.startswith("sold ")]
        killed_mid_run += bool(lines)
        reported.update({int(fd): int(n) for _, fd, n in lines})

        register = open_device(state)
        try:
            assert register.verify().ok
            marking = register.fn.marking
            # Every receipt with a marked item has its notification, and each code is in one.
            notified: dict[int, bytes] = {}
            for note in marking.queue:
                info = read_notification(note.message)
                assert len(info.codes) == 1
                notified[note.fd] = info.codes[0]
            marked_fds = [
                r.number
                for r in register.fn._store.records()
                if r.kind == 3
                and any(find(body, 2106) == 15 for body in items_of(register, r.number))
            ]
            assert sorted(notified) == marked_fds
            assert len(set(notified.values())) == len(notified)  # no code in two receipts
            assert set(reported) <= set(notified)  # reported sold: kept
            for fd, mark in notified.items():
                assert marking.sold_in(mark) == fd
            # The table never holds a code already sold (the receipt clears it atomically).
            assert all(marking.sold_in(c.code) is None for c in marking.state.codes)
            status = marking.status()
            assert status.step in (0, 1) and status.queued == len(notified)
        finally:
            register.close()
    assert killed_mid_run >= KILLS // 2, (
        "the child was rarely killed mid-run; the test proves little"
    )


_MARKING_CODES = (0xFF61, 0xFF67, 0xFF68, 0xFF69, 0xFF70, 0xFF71, 0xFF72, 0xFF73)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.sampled_from(_MARKING_CODES), st.binary(max_size=120)),
        min_size=1,
        max_size=12,
    )
)
def test_garbage_marking_commands_are_refused_never_crash(
    register: ShtrihRegister, commands: list[tuple[int, bytes]]
) -> None:
    """Any bytes after a marking command's code: an answer or a refusal, never the register's
    internal-failure code (39h), and the FN's archive and marking state stay whole."""
    password = (SYS).to_bytes(4, "little")
    for code_, body in commands:
        payload = code_.to_bytes(2, "big") + password + body
        answer = register.execute(payload)
        assert answer[:2] == payload[:2] and len(answer) >= 3
        assert answer[2] != 0x39, f"internal failure on {payload.hex(' ')}"
    assert register.fn.verify().ok
    assert register.fn.marking.status().step in (0, 1, 2, 3, 4)


def test_a_day_of_fifty_receipts_mixing_marked_and_plain_items(register: ShtrihRegister) -> None:
    """Each OISM answer kind several times: a POS that rejects what 2106 calls negative sells
    only the accepted codes; each appears once with its 2106, the rest never; the queue drains."""
    rng = random.Random(50)
    answers = list(Answer)
    accepted: dict[bytes, int] = {}
    rejected: set[bytes] = set()
    for n in range(50):
        marks: list[bytes | None] = []
        for k in range(rng.randint(0, 3)):
            mark = code(f"{n:03d}{k}")
            register.model.oism.set(answers[(n + k) % len(answers)], mark)
            result = run(register, check(mark))
            negative = result.online.item_check is not None and result.online.item_check.negative
            decision = mk.MarkDecision.REJECT if negative else mk.MarkDecision.ACCEPT
            decided = run(register, mk.DecideMarkCode(SYS, decision))
            if negative:
                rejected.add(mark)
            else:
                accepted[mark] = int(decided.item_check)
                marks.append(mark)
        marks += [None] * rng.randint(0 if marks else 1, 2)
        rng.shuffle(marks)
        sell(register, *marks)
    seen: dict[str, int] = {}
    for record in register.fn._store.records():
        if record.kind == 3:
            for body in items_of(register, record.number):
                if find(body, 2106) is not None:
                    product = find(body, 1163)
                    assert isinstance(product, list)
                    seen[str(find(product, 1305))] = int(find(body, 2106))  # type: ignore[arg-type]
    product_of = {mark: mark.split(b"\x1d")[0].decode() for mark in (*accepted, *rejected)}
    assert seen == {product_of[mark]: value for mark, value in accepted.items()}
    assert not {product_of[mark] for mark in rejected} & set(seen)
    assert set(accepted.values()) == {3, 15} and len(rejected) >= 10  # 7: wrong status, withdrawn
    queued = len(register.fn.marking.queue)
    assert register.model.oism.deliver(register.fn.marking) == queued
    assert register.fn.marking.queue == () and register.fn.verify().ok


_POOL = [code(f"p{n}") for n in range(4)] + [code("pbad", crypto="BAD" + "Q" * 41)]
_STEP = st.one_of(
    st.tuples(st.just("check"), st.sampled_from(_POOL), st.sampled_from(list(Answer))),
    st.tuples(st.just("decide"), st.sampled_from(list(mk.MarkDecision)), st.none()),
    st.tuples(
        st.just("sell"), st.lists(st.sampled_from([*_POOL, None]), max_size=3), st.booleans()
    ),
    st.tuples(st.just("power-loss"), st.none(), st.none()),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_STEP, max_size=30))
def test_any_sequence_never_sells_a_code_twice_or_an_unaccepted_one(
    tmp_path: Path, steps: list[tuple[str, Any, Any]]
) -> None:
    """Valid commands in any order (refusals allowed): a code is in at most one sale, and every
    marked item in a document was checked and accepted since the last receipt."""
    device = open_device(
        tmp_path / f"seq-{len(list(tmp_path.iterdir()))}", clock=ManualClock(START)
    )
    try:
        run(device, classic.OpenShift(SYS))
        accepted: set[bytes] = set()  # since the last receipt (the FN's table)
        sold: dict[bytes, int] = {}
        for kind, first, second in steps:
            try:
                if kind == "check":
                    device.model.oism.set(second, first)
                    run(device, check(first))
                elif kind == "decide":
                    run(device, mk.DecideMarkCode(SYS, first))
                elif kind == "power-loss":
                    device.power_loss()
                else:
                    marks = [m for m in first if m is None or m in accepted]
                    if not marks:
                        continue
                    run(device, classic.OpenReceipt(SYS, ReceiptType.SALE))
                    for mark in marks:
                        if mark is not None:
                            run(device, mk.BindMarkCode(SYS, mark))
                        run(device, item())
                    number = int(run(device, close(10_000 * len(marks))).document_number)
                    for mark in marks:
                        if mark is not None:
                            assert mark not in sold, "a code sold twice"
                            sold[mark] = number
            except ShtrihDeviceError:
                if device.model.receipt is not None:
                    run(device, classic.CancelReceipt(SYS))
            accepted = {c.code for c in device.fn.marking.state.codes}
        for mark, number in sold.items():
            assert device.fn.marking.sold_in(mark) == number
        marked = sum(
            1
            for r in device.fn._store.records()
            if r.kind == 3
            for body in items_of(device, r.number)
            if find(body, 2106) is not None
        )
        assert marked == len(sold) and device.fn.verify().ok
    finally:
        device.close()
