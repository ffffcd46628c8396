"""``kkt demo``: a host and a device Shtrikh-M link talking over an in-memory line.

It shows the protocol core at work before the emulator exists: the host syncs with ENQ, sends
typed commands, and -- in the third exchange -- the line loses the device's ACK to a money-moving
FF46, so the host asks with ENQ and collects the answer instead of sending the sale again.  The
"device" here answers from a fixed script; it is a protocol demo, not the emulator.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TextIO

from kkt.protocols.shtrih import classic, fn
from kkt.protocols.shtrih.frame import Deframer
from kkt.protocols.shtrih.link import (
    AnswerReceived,
    CommandFailed,
    CommandReceived,
    HostSettings,
    Role,
    ShtrikhLink,
)
from kkt.protocols.shtrih.message import Request, decode_request, encode_answer
from kkt.protocols.shtrih.modes import OperationType, TaxRate

from .describe import describe_token

LATENCY = 0.002  # seconds each way


def _scripted_answer(payload: bytes) -> bytes:
    request = decode_request(payload)
    if isinstance(request, classic.GetDeviceType):
        return encode_answer(request.CODE, classic.DeviceType(0, 0, 1, 14, 250, 0, "ШТРИХ-М-01Ф"))
    if isinstance(request, fn.GetFnStatus):
        status = fn.FnStatus(
            3, 0, False, True, 0, dt.datetime(2026, 11, 22, 10, 5), "9999078900012345", 42
        )
        return encode_answer(request.CODE, status)
    return encode_answer(request.CODE, classic.Empty())


def run_demo(out: TextIO) -> int:
    host = ShtrikhLink(Role.HOST, host=HostSettings(ack=0.05, quiet=0.03))
    device = ShtrikhLink(Role.DEVICE)
    executions: list[str] = []
    now = 0.0
    in_flight: list[tuple[float, str, bytes]] = []
    lose_next_device_ack = False
    decoders = {"host": Deframer(), "device": Deframer()}

    def show(side: str, data: bytes, note: str = "") -> None:
        for token in decoders[side].feed(data):
            arrow = "host   ->" if side == "host" else "device ->"
            print(f"{now * 1000:8.1f} ms  {arrow} {describe_token(token)}{note}", file=out)

    def flush() -> None:
        nonlocal lose_next_device_ack
        for side, link in (("host", host), ("device", device)):
            data = link.data_to_send()
            if not data:
                continue
            if side == "device" and lose_next_device_ack and data[:1] == b"\x06":
                lose_next_device_ack = False
                show(side, data[:1], "   (lost on the line)")
                data = data[1:]
            if data:
                show(side, data)
                in_flight.append((now + LATENCY, side, data))

    def run(
        request: Request[Any], note: str = "", before: Callable[[], None] | None = None
    ) -> None:
        nonlocal now
        print(f"\n-- {type(request).__name__}{note}", file=out)
        if before:
            before()
        host.send_command(request.encode(), now, answer_timeout=request.TIMEOUT)
        while True:
            flush()
            times = [t for t in (host.get_timer(), device.get_timer()) if t is not None]
            times += [at for at, _, _ in in_flight]
            now = max(now, min(times))
            for item in [i for i in in_flight if i[0] <= now]:
                in_flight.remove(item)
                _, side, data = item
                target = device if side == "host" else host
                for event in target.receive_data(data, now):
                    if isinstance(event, CommandReceived):
                        executions.append(type(decode_request(event.command)).__name__)
                        device.send_answer(_scripted_answer(event.command), now)
                    if isinstance(event, AnswerReceived | CommandFailed):
                        flush()
                        outcome = (
                            "answer received"
                            if isinstance(event, AnswerReceived)
                            else str(event.error)
                        )
                        print(f"   => {outcome}", file=out)
                        return
            for link in (host, device):
                timer = link.get_timer()
                if timer is not None and timer <= now:
                    link.handle_timer(now)

    def lose_ack() -> None:
        nonlocal lose_next_device_ack
        lose_next_device_ack = True

    print("kkt demo: Shtrikh-M protocol v1, host and device links over an in-memory line", file=out)
    run(classic.GetDeviceType())
    run(fn.GetFnStatus(password=30))
    sale = fn.OperationV2(
        password=30,
        operation=OperationType.INCOME,
        quantity=Decimal("2"),
        price=4_990,
        amount=None,
        tax_amount=None,
        tax_rate=TaxRate.VAT20,
        department=1,
        payment_method=4,
        payment_subject=1,
        name="Кофе",
    )
    run(sale, " (the device's ACK is lost: the host must not sell twice)", before=lose_ack)
    print(f"\nThe device executed: {', '.join(executions)}", file=out)
    sales = executions.count("OperationV2")
    print(
        f"Sales executed: {sales} (exactly once)" if sales == 1 else f"ERROR: {sales} sales",
        file=out,
    )
    return 0 if sales == 1 else 1
