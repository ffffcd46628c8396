"""One lock per command: `Register` holds it around everything its device sends; the device and
the link under it take none of their own."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path

from kkt import Item, Payments, Receipt, Register, Vat
from kkt.transport.inprocess import InProcess
from kkt.vendors.atol import AtolDevice
from kkt.vendors.shtrih import ShtrihDevice


class Watched:
    """A commander that notes whether the register's lock is held at every exchange."""

    def __init__(self, state: Path, protocol: str) -> None:
        self.inner = InProcess(state, protocol=protocol)
        self.lock: threading.RLock | None = None
        self.held: list[bool] = []

    def exchange(self, payload: bytes, *, answer_timeout: float, resend: bool = True) -> bytes:
        assert self.lock is not None
        self.held.append(self.lock._is_owned())  # type: ignore[attr-defined]
        return self.inner.exchange(payload, answer_timeout=answer_timeout, resend=resend)

    def close(self) -> None:
        self.inner.close()


def test_every_exchange_runs_under_the_register_lock(tmp_path: Path) -> None:
    for protocol, device_class in (("shtrih", ShtrihDevice), ("atol", AtolDevice)):
        watched = Watched(tmp_path / protocol, protocol)
        register = Register(device_class(watched))
        watched.lock = register._lock
        register.status()
        register.fn_info()
        register.print_text("one lock")
        register.cut(partial=True)
        register.open_shift()
        register.shift_info()
        sold = register.sell(
            Receipt(
                items=(Item("Чай", 5_000, Decimal(1), Vat.VAT20),),
                payments=Payments(cash=5_000),
            )
        )
        assert register.find_document(sold.document_number).total == 5_000
        register.cash_in(2_000)  # the drawer read before and after: all under the lock
        register.cash_out(1_000)
        register.close()
        assert len(watched.held) > 10 and all(watched.held), protocol
