"""The emulated FN: documents, numbering, counters, signs, refusals, limits, OFD queue."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from kkt.emulator.clock import ManualClock
from kkt.emulator.fn import (
    KEY_LIFE_36_MONTHS,
    FiscalStorage,
    FnCode,
    FnConfig,
    FnError,
    MemoryStore,
    SqliteStore,
    VatSums,
)
from kkt.protocols.ffd import (
    FnWarning,
    LifePhase,
    Payments,
    WorkMode,
    decode_tlv,
    find,
    fiscal_sign_from_tlv,
)
from support.fn import INN, START, registration

MINUTE = dt.timedelta(minutes=1)
ITEM = [(1059, [(1030, "Хлеб"), (1079, 4500), (1023, Decimal("2")), (1043, 9000)])]


def _refused(code: FnCode, call: object, *args: object, **kwargs: object) -> FnError:
    with pytest.raises(FnError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert caught.value.code is code, str(caught.value)
    return caught.value


def _sell(fn: FiscalStorage, total: int = 9000, operation: int = 1, **kwargs: object):  # type: ignore[no-untyped-def]
    return fn.receipt(
        operation, total, Payments(cash=total), VatSums(vat20=total // 6), ITEM, **kwargs
    )  # type: ignore[arg-type]


def test_a_day_of_documents(registered: FiscalStorage, clock: ManualClock) -> None:
    fn = registered
    opened = fn.open_shift([(1021, "Иванова")])
    assert (opened.number, opened.shift_number) == (2, 1)
    clock.advance(MINUTE)
    first = _sell(fn, 9000)
    second = fn.receipt(2, 500, Payments(electronic=500), VatSums(), ITEM)
    assert (first.number, first.receipt_number, second.number, second.receipt_number) == (
        3,
        1,
        4,
        2,
    )
    closed = fn.close_shift()
    report = fn.state_report()
    assert (closed.number, report.number) == (5, 6)
    assert fn.status().last_number == 6
    counters = fn.state.total_counters
    assert counters.operations[0].count == 1 and counters.operations[0].cash == 9000
    assert counters.operations[0].vat20 == 1500
    assert counters.operations[1].electronic == 500
    assert counters == fn.state.shift_counters
    assert fn.verify().ok


def test_documents_carry_the_tags_the_fn_forms(registered: FiscalStorage) -> None:
    fn = registered
    fn.open_shift()
    formed = _sell(fn)
    record = fn.record(formed.number)
    [(kind, body)] = decode_tlv(record.tlv)
    assert kind == 3
    assert find(body, 1040) == formed.number
    assert find(body, 1038) == 1 and find(body, 1042) == 1
    assert find(body, 1020) == 9000 and find(body, 1054) == 1 and find(body, 1031) == 9000
    assert find(body, 1041) == fn.serial
    assert find(body, 1012) == formed.when
    sign = find(body, 1077)
    assert isinstance(sign, bytes) and len(sign) == 6
    assert fiscal_sign_from_tlv(sign) == formed.fiscal_sign == record.fiscal_sign
    assert find(body, 1059) == ITEM[0][1]


def test_registration_document_and_phase(fn: FiscalStorage) -> None:
    assert fn.status().phase is LifePhase.READY
    _refused(FnCode.WRONG_STATE, fn.open_shift)
    formed = fn.register(registration(work_mode=WorkMode.INTERNET))
    assert formed.number == 1
    assert fn.status().phase is LifePhase.FISCAL
    [(kind, body)] = decode_tlv(fn.record(1).tlv)
    assert kind == 1 and find(body, 1018) == INN.ljust(12) and find(body, 1290) == 1 << 5
    _refused(FnCode.WRONG_STATE, fn.register, registration())


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"inn": "7707083894"}, "INN"),
        ({"rnm": "0000000001000000"}, "RNM"),
        ({"tax_systems": 0}, "tax systems"),
        ({"ofd_inn": "000000000000"}, "OFD"),
        ({"ffd_version": 9}, "FFD"),
        ({"work_mode": 256}, "one byte"),
    ],
)
def test_registration_refusals(fn: FiscalStorage, changes: dict[str, object], words: str) -> None:
    error = _refused(FnCode.BAD_PARAMETER, fn.register, registration(**changes))
    assert words in str(error)
    assert fn.status().last_number == 0


def test_tags_the_fn_forms_are_refused(registered: FiscalStorage) -> None:
    registered.open_shift()
    _refused(
        FnCode.FORBIDDEN_TAG, registered.receipt, 1, 100, Payments(cash=100), VatSums(), [(1040, 7)]
    )
    _refused(
        FnCode.DUPLICATE_TAG,
        registered.receipt,
        1,
        100,
        Payments(cash=100),
        VatSums(),
        [(1031, 100)],
    )
    assert registered.status().last_number == 2


def test_payments_must_match_the_total(registered: FiscalStorage) -> None:
    registered.open_shift()
    _refused(FnCode.MISSING_DATA, registered.receipt, 1, 100, Payments(cash=99), VatSums(), ITEM)
    _refused(FnCode.BAD_PARAMETER, registered.receipt, 5, 100, Payments(cash=100), VatSums(), ITEM)


def test_shift_rules(registered: FiscalStorage, clock: ManualClock) -> None:
    fn = registered
    _refused(FnCode.WRONG_STATE, _sell, fn)
    _refused(FnCode.WRONG_STATE, fn.close_shift)
    fn.open_shift()
    _refused(FnCode.WRONG_STATE, fn.open_shift)
    _refused(FnCode.WRONG_STATE, fn.close_fn)
    clock.advance(dt.timedelta(hours=24))
    _sell(fn)  # exactly 24 h is still allowed
    clock.advance(MINUTE)
    error = _refused(FnCode.SHIFT_EXPIRED, _sell, fn)
    assert "close it" in str(error)
    fn.close_shift()  # closing an expired shift is allowed
    fn.open_shift()
    assert fn.state.shift_number == 2 and fn.state.receipt_number == 0


def test_time_may_not_go_back(registered: FiscalStorage, clock: ManualClock) -> None:
    registered.open_shift()
    clock.advance(-MINUTE * 5)
    _refused(FnCode.BAD_DATETIME, _sell, registered)
    clock.advance(MINUTE * 5)
    _sell(registered)


def test_key_expiry_warnings_and_refusal(clock: ManualClock) -> None:
    fn = FiscalStorage(MemoryStore(), clock, config=FnConfig(key_life_days=40))
    fn.register(registration())
    fn.ofd_confirm(1)  # keep the OFD-timeout flag out of this test
    assert fn.warnings() == FnWarning(0)
    clock.advance(dt.timedelta(days=11))  # 29 days left
    assert fn.warnings() == FnWarning.RESOURCE_ENDS_IN_30_DAYS
    clock.advance(dt.timedelta(days=27))  # 2 days left
    assert fn.warnings() == FnWarning.RESOURCE_ENDS_IN_30_DAYS | FnWarning.REPLACE_IN_3_DAYS
    opened = fn.open_shift()
    [(_, body)] = decode_tlv(fn.record(opened.number).tlv)
    assert find(body, 1050) == 1 and find(body, 1051) == 1 and find(body, 1213) == 2
    fn.close_shift()
    clock.advance(dt.timedelta(days=2))
    _refused(FnCode.RESOURCE_EXHAUSTED, fn.open_shift)
    fn.close_fn()  # closing the FN is still possible
    assert fn.status().phase is LifePhase.POST_FISCAL


def test_archive_capacity(clock: ManualClock) -> None:
    fn = FiscalStorage(MemoryStore(), clock, config=FnConfig(archive_capacity=1000))
    fn.register(registration(work_mode=WorkMode.AUTONOMOUS, ofd_inn="000000000000"))
    fn.open_shift()
    while fn.status().last_number < 989:
        _sell(fn, 100)
    assert FnWarning.MEMORY_90_PERCENT not in fn.warnings()
    _sell(fn, 100)  # document 990: 99 %
    assert FnWarning.MEMORY_90_PERCENT in fn.warnings()
    while fn.status().last_number < 998:
        _sell(fn, 100)
    _refused(FnCode.STORAGE_LIMITED, _sell, fn, 100)
    _refused(FnCode.STORAGE_LIMITED, fn.state_report)
    fn.close_shift()  # the last two places are kept for the shift close and the FN close
    fn.close_fn()
    assert fn.status().last_number == 1000
    assert fn.verify().ok


def test_ofd_queue_warning_block_and_confirmations(
    registered: FiscalStorage, clock: ManualClock
) -> None:
    fn = registered
    fn.open_shift()
    _sell(fn)
    queue = fn.ofd_queue()
    assert (queue.unsent, queue.first_number, queue.first_when) == (3, 1, START)
    clock.advance(dt.timedelta(days=2, minutes=1))
    assert FnWarning.OFD_TIMEOUT in fn.warnings()
    clock.advance(dt.timedelta(days=28))
    error = _refused(FnCode.STORAGE_LIMITED, fn.state_report)
    assert "OFD" in str(error)
    _refused(FnCode.OFD_REPLY_REJECTED, fn.ofd_confirm, 2)
    fn.ofd_confirm(1)
    assert fn.confirmed_at(1) == clock.now()
    assert fn.confirmed_at(2) is None
    assert fn.ofd_queue().unsent == 2 and fn.ofd_queue().first_number == 2
    fn.ofd_confirm(2)
    fn.ofd_confirm(3)
    assert fn.ofd_queue().unsent == 0 and FnWarning.OFD_TIMEOUT not in fn.warnings()
    fn.close_shift()  # the block is lifted
    assert fn.ofd_queue().first_number == 4


def test_autonomous_fn_has_no_queue_and_archives_on_close(fn: FiscalStorage) -> None:
    fn.register(registration(work_mode=WorkMode.AUTONOMOUS, ofd_inn="000000000000"))
    fn.open_shift()
    fn.close_shift()
    assert fn.ofd_queue().unsent == 0
    fn.close_fn()
    assert fn.status().phase is LifePhase.ARCHIVE
    _refused(FnCode.WRONG_STATE, fn.open_shift)


def test_fn_close_then_queue_drains_to_archive_phase(registered: FiscalStorage) -> None:
    fn = registered
    fn.close_fn()
    assert fn.status().phase is LifePhase.POST_FISCAL
    fn.ofd_confirm(1)
    assert fn.status().phase is LifePhase.POST_FISCAL
    fn.ofd_confirm(2)
    assert fn.status().phase is LifePhase.ARCHIVE
    assert fn.record(2).kind == 6


def test_reregistration(registered: FiscalStorage) -> None:
    formed = registered.reregister(registration(tax_systems=2), reasons=0x80)
    [(kind, body)] = decode_tlv(registered.record(formed.number).tlv)
    assert kind == 11 and find(body, 1205) == 0x80 and find(body, 1062) == 2
    _refused(FnCode.BAD_PARAMETER, registered.reregister, registration(ffd_version=3), reasons=1)


def test_correction_receipts_count_twice(registered: FiscalStorage) -> None:
    fn = registered
    fn.open_shift()
    formed = _sell(fn, 300, correction=True)
    assert fn.record(formed.number).kind == 31
    counters = fn.state.total_counters
    assert counters.operations[0].count == 1
    assert counters.corrections.count == 1 and counters.corrections.sums[0] == 300
    assert fn.verify().ok


def test_unknown_document(registered: FiscalStorage) -> None:
    _refused(FnCode.NO_DATA, registered.record, 2)


def test_verify_catches_tampering(registered: FiscalStorage) -> None:
    fn = registered
    fn.open_shift()
    _sell(fn)
    store = fn._store
    assert isinstance(store, MemoryStore)
    original = store._records[3]
    store._records[3] = dataclasses.replace(original, total=1)
    problems = fn.verify().problems
    assert any("signed record" in p for p in problems) and any("counters" in p for p in problems)
    data = bytes((1,)) + (1).to_bytes(5, "little")
    store._records[3] = dataclasses.replace(original, total=1, data=data)
    problems = fn.verify().problems
    assert any("fiscal sign" in p for p in problems)
    store._records[3] = original
    assert fn.verify().ok
    del store._records[2]
    assert any("missing" in p for p in fn.verify().problems)


def test_signs_are_per_fn(clock: ManualClock) -> None:
    signs = []
    for _ in range(2):
        fn = FiscalStorage(MemoryStore(), clock)
        signs.append(fn.register(registration()).fiscal_sign)
    assert signs[0] != signs[1]


def test_sqlite_store_survives_reopening(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "fn.sqlite"
    config = FnConfig(key_life_days=KEY_LIFE_36_MONTHS)
    fn = FiscalStorage(SqliteStore(path), clock, config=config)
    fn.register(registration())
    fn.open_shift()
    sold = _sell(fn, 1234)
    fn.ofd_confirm(1)
    before, sold_record = fn.state, fn.record(sold.number)
    fn.close()
    again = FiscalStorage(SqliteStore(path), clock)
    assert again.state == before
    assert again.record(sold.number) == sold_record
    assert again.confirmed_at(1) == clock.now()
    assert again.verify().ok
    _sell(again, 10)
    assert again.status().last_number == 4
    with pytest.raises(ValueError, match="another configuration"):
        FiscalStorage(SqliteStore(path), clock, config=FnConfig(serial="9999078900000002"))
