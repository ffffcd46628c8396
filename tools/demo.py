"""``kkt demo``: start an emulated register and query it.

An emulated ШТРИХ-М-01Ф (registered, FN in fiscal mode, in a temporary state directory) is served
on a free TCP port on 127.0.0.1; a host session connects to it through pyserial's ``socket://`` --
as it would to a real network register on port 7778 -- asks who it is, opens a shift, sells, and
closes the shift.  Before the receipt is closed the emulator is told to lose that answer on the
line: the host asks with ENQ, collects the answer, and the FN shows the receipt was formed once.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from kkt.emulator.faults import Faults
from kkt.emulator.shells import serve_pty, serve_tcp
from kkt.emulator.shtrih import ShtrihRegister, open_device
from kkt.protocols.shtrih import classic, fn
from kkt.protocols.shtrih.link import HostSettings
from kkt.protocols.shtrih.modes import OperationType, ReceiptType, TaxRate, TaxSystem, decode_mode

from kkt.transport.ports import open_port
from kkt.transport.session import ShtrihSession

SYS = 30


class EmulatorThread:
    """An emulated register served on TCP (and a pty) from a background thread's event loop.

    ``protocol`` is the register's personality: "shtrih" or "atol" (pass the matching device).
    """

    def __init__(
        self,
        register: Any,
        faults: Faults,
        *,
        pty: Path | None = None,
        settings: Any = None,
        protocol: str = "shtrih",
    ) -> None:
        self._register = register
        self._faults = faults
        self._pty = pty
        self._settings = settings  # the TCP shell's link timing (the protocol's default if None)
        self._protocol = protocol
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main()), name="kkt-emulator"
        )

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        lock = asyncio.Lock()
        async with await serve_tcp(
            self._register,
            port=0,
            faults=self._faults,
            lock=lock,
            settings=self._settings,
            protocol=self._protocol,
        ) as server:
            self.port = server.port
            if self._pty is None:
                self._ready.set()
                await self._stop.wait()
                return
            async with await serve_pty(
                self._register, self._pty, faults=self._faults, lock=lock, protocol=self._protocol
            ):
                self._ready.set()
                await self._stop.wait()

    def __enter__(self) -> EmulatorThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the emulator did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def run_demo(out: TextIO) -> int:
    with tempfile.TemporaryDirectory(prefix="kkt-demo-") as state:
        register = open_device(Path(state))
        faults = Faults()
        try:
            with EmulatorThread(register, faults) as emulator:
                url = f"socket://127.0.0.1:{emulator.port}"
                print(f"emulated register listening on tcp 127.0.0.1:{emulator.port}", file=out)
                session = ShtrihSession(open_port(url), settings=HostSettings(ack=0.5, quiet=0.1))
                try:
                    _conversation(session, faults, register, url, out)
                finally:
                    session.close()
            verification = register.verify()
        finally:
            register.close()
    verdict = "ok" if verification.ok else "BROKEN"
    print(f"FN archive verified: {verification.documents} documents, {verdict}", file=out)
    return 0 if verification.ok else 1


def _conversation(
    session: ShtrihSession, faults: Faults, register: ShtrihRegister, url: str, out: TextIO
) -> None:
    def ask(label: str, request: Any, show: Callable[[Any], str]) -> Any:
        answer = session.execute(request)
        print(f"  {label:28} {show(answer)}", file=out)
        return answer

    print(f"host session on {url}", file=out)
    ask("device type (FCh)", classic.GetDeviceType(), lambda a: f"{a.name}, model {a.model}")

    def mode(answer: classic.ShortStatus) -> str:
        return str(decode_mode(answer.mode))

    ask("status (10h)", classic.GetShortStatus(SYS), mode)
    ask(
        "FN status (FF01h)",
        fn.GetFnStatus(SYS),
        lambda a: f"FN {a.fn_serial}, last document {a.last_document_number}",
    )
    ask("open shift (E0h)", classic.OpenShift(SYS), lambda a: "shift open")
    ask("open receipt (8Dh)", classic.OpenReceipt(SYS, ReceiptType.SALE), lambda a: "sale")
    for name, price, quantity in (("Кофе", 19_900, "2"), ("Круассан", 14_500, "1")):
        item = fn.OperationV2(
            SYS,
            OperationType.INCOME,
            Decimal(quantity),
            price,
            None,
            None,
            TaxRate.VAT20,
            1,
            4,
            1,
            name,
        )
        session.execute(item)
        print(f"  {'item (FF46h)':28} {name} {quantity} x {price / 100:.2f}", file=out)
    ask("status (10h)", classic.GetShortStatus(SYS), mode)
    before = register.fn.status().last_number
    faults.configure(drop_answers=1)  # the line will lose the next answer
    payments = (60_000,) + (0,) * 15
    closed = ask(
        "close receipt (FF45h)",
        fn.CloseReceiptV2(SYS, payments, 0, (0,) * 6, TaxSystem.OSN, ""),
        lambda a: f"FD {a.document_number}, FP {a.fiscal_sign}, change {a.change / 100:.2f}",
    )
    formed = register.fn.status().last_number - before
    note = "its answer was lost on the line and collected with ENQ"
    print(f"  {'':28} ({note}; receipts formed: {formed})", file=out)
    ask(
        "find document (FF0Ah)",
        fn.FindDocument(SYS, closed.document_number),
        lambda a: (
            f"type {a.document_type}, FP {a.fiscal_sign}, total {a.details().total / 100:.2f}"
        ),
    )
    print(f"  {'QR':28} {register.qr(closed.document_number)}", file=out)
    ask("Z report (41h)", classic.ZReport(SYS), lambda a: "shift closed")
    ask("status (10h)", classic.GetShortStatus(SYS), mode)
