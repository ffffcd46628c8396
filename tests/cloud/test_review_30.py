"""Session 30's second read (task RV), the cloud's side: a damaged receipt in the pool.

Over the emulated pool and `LeasedStorage` of test_pool.  The hole it found (a damaged receipt
whose read-back failed, sold again by the pool's retry) was fixed in the same session and runs as
a plain test; the rest pin what was checked and found sound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from kkt.cloud.emulated import EmulatedPool
from kkt.cloud.model import Job
from kkt.cloud.pool import RegisterPool, Work

import kkt
from kkt.errors import TransportError
from kkt.results import Document, FiscalResult

from .test_pool import FAST, LeasedStorage, body, emulated, receipt_of, shift_receipts, storage

__all__ = ["emulated", "storage"]  # fixtures, used by their names


class NameDamagingLine:
    """Between a driver and its link: every command passes, but the first item line (FF46) goes
    out with bit 0 of two bytes of the item's name flipped -- one bit column, which Shtrih's XOR
    checksum lets through (test_double_hunt makes such damage on its simulated line).  Put into
    the payload here, so the register's frame checks out.  Price, quantity and total untouched."""

    def __init__(self, inner: Any, name: str) -> None:
        self.inner = inner
        self.name = name.encode("cp1251")
        self.damaged = False

    @property
    def asks_ahead(self) -> bool:
        return bool(getattr(self.inner, "asks_ahead", False))

    def exchange(self, payload: bytes, **options: Any) -> bytes:
        at = payload.find(self.name)
        if not self.damaged and payload[:2] == b"\xff\x46" and at >= 0:
            self.damaged = True
            spoiled = bytearray(payload)
            spoiled[at + 1] ^= 0x01
            spoiled[at + 2] ^= 0x01
            payload = bytes(spoiled)
        return bytes(self.inner.exchange(payload, **options))

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def damaged_and_unread_work() -> Callable[[Job], Work]:
    """`simple_work`, but the first sale goes out with an item's name damaged past the
    checksum, and the read-back of that first sale fails on the line (the driver's
    `OutcomeUnknown`, "IS fiscal ... repeat the call with the same key")."""
    runs: list[bool] = []

    def work(job: Job) -> Work:
        return Work(job.body["inn"], lambda register, key: run(register, key, receipt_of(job)))

    def run(register: kkt.Register, key: str, receipt: kkt.Receipt) -> FiscalResult:
        if runs:
            return register.receipt(receipt, key=key)
        runs.append(True)
        register.device.commander = NameDamagingLine(  # type: ignore[assignment]
            register.device.commander, receipt.items[0].name
        )
        device: Any = register.device

        def unreadable(number: int) -> Document:
            raise TransportError("the line keeps spoiling long answers (test)")

        device.read_document = unreadable
        try:
            return register.receipt(receipt, key=key)
        finally:
            del device.read_document  # the class's own again: the line mended

    return work


def test_a_damaged_receipt_whose_read_back_failed_is_held_not_sold_again(
    storage: LeasedStorage, emulated: EmulatedPool
) -> None:
    (spec,) = emulated.specs("demo")
    spec = replace(spec, verify=True)
    with RegisterPool(storage, [spec], work_of=damaged_and_unread_work(), **FAST):
        uuid = storage.add(body())
        storage.wait_until(lambda: storage.ended(uuid) or storage.records[uuid].error is not None)
    record = storage.records[uuid]
    # One request, one fiscal document: held for the operator (its document damaged), never a
    # second receipt sold and reported done.
    assert shift_receipts(spec) == 1, (record.status, record.result, record.error)
    assert record.status == "assigned" and record.completions == 0
