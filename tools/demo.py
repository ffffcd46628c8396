"""``kkt demo``: start an emulated register and drive it through the public API.

An emulated ШТРИХ-М-01Ф (registered, FN in fiscal mode, in a temporary state directory) is served
on a free TCP port on 127.0.0.1; the driver connects to it with ``kkt.connect("socket://...")``
-- as it would to a real network register on port 7778 -- asks who it is, opens a shift, sells
two items and closes the shift.  The emulator is told to lose the answer to the command that
forms the receipt: the host collects it with ENQ, and the FN shows the receipt was formed once.
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from kkt.emulator.faults import Faults
from kkt.emulator.personality import Personality
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device
from kkt.protocols.shtrih.link import HostSettings

import kkt


class LoseTheReceiptsAnswer:
    """The register, told once (``armed``) to lose on the line the answer to the command that
    forms the next fiscal document (the host's ENQ collects it)."""

    def __init__(self, register: Personality, faults: Faults) -> None:
        self.register = register
        self.faults = faults
        self.armed = False

    def execute(self, payload: bytes) -> bytes:
        before = self.register.fn.state.last_number
        answer = self.register.execute(payload)
        if self.armed and self.register.fn.state.last_number != before:
            self.armed = False
            self.faults.configure(drop_answers=1)
        return answer

    def quick(self, payload: bytes) -> bool:
        return self.register.quick(payload)


def run_demo(out: TextIO) -> int:
    with tempfile.TemporaryDirectory(prefix="kkt-demo-") as state:
        register = open_device(Path(state))
        device = LoseTheReceiptsAnswer(register, Faults())
        try:
            with ServiceThread(device, device.faults) as emulator:
                url = f"socket://127.0.0.1:{emulator.port}"
                print(f"emulated register listening on tcp 127.0.0.1:{emulator.port}", file=out)
                with kkt.connect(url, settings=HostSettings(ack=0.5, quiet=0.1)) as host:
                    print(f"host connected to {url}", file=out)
                    _conversation(host, device, out)
            verification = register.verify()
        finally:
            register.close()
    verdict = "ok" if verification.ok else "BROKEN"
    print(f"FN archive verified: {verification.documents} documents, {verdict}", file=out)
    return 0 if verification.ok else 1


def _conversation(host: kkt.Register, device: LoseTheReceiptsAnswer, out: TextIO) -> None:
    def say(label: str, text: str) -> None:
        print(f"  {label:28} {text}", file=out)

    info = host.device_info()
    say("device_info()", f"{info.name}, model {info.model}")
    say("status()", host.status().mode_name)
    fn = host.fn_info()
    say("fn_status()", f"FN {fn.serial}, last document {fn.last_document}")
    opened = host.open_shift()
    say("open_shift()", f"shift {opened.shift_number} open, FD {opened.document_number}")
    items = (
        kkt.Item("Кофе", 19_900, Decimal(2), kkt.Vat.VAT20),
        kkt.Item("Круассан", 14_500, Decimal(1), kkt.Vat.VAT20),
    )
    for item in items:
        say("  item", f"{item.name} {item.quantity} x {item.price / 100:.2f}")
    register = device.register
    before = register.fn.status().last_number
    device.armed = True  # the line will lose the answer that forms the receipt
    sold = host.sell(kkt.Receipt(items, kkt.Payments(cash=60_000)))
    change = 60_000 - sold.total
    say("sell()", f"FD {sold.document_number}, FP {sold.fiscal_sign}, change {change / 100:.2f}")
    formed = register.fn.status().last_number - before
    note = "its answer was lost on the line and collected with ENQ"
    say("", f"({note}; receipts formed: {formed})")
    found = host.find_document(sold.document_number)
    total = (found.total or 0) / 100
    say("find_document()", f"type {found.type}, FP {found.fiscal_sign}, total {total:.2f}")
    say("QR", sold.qr)
    closed = host.close_shift()
    say("close_shift()", f"shift {closed.shift_number} closed, FD {closed.document_number}")
    say("status()", host.status().mode_name)
