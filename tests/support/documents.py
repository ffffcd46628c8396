"""Real documents of every type, formed by the emulated register and its FN, made repeatable: a
fixed clock and a fixed per-FN signing secret (the emulator draws one at random), so the fiscal
signs -- and the golden renders -- are the same on every run."""

from __future__ import annotations

import datetime as dt
import random
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal

from kkt.emulator.clock import ManualClock
from kkt.emulator.fn import FiscalStorage, MemoryStore
from kkt.emulator.receipt import NO_VAT, VAT0, VAT10, VAT20, VAT20_120, Item, item_tax
from kkt.emulator.register import RegisterModel
from kkt.emulator.settings import RegisterSettings
from kkt.protocols.ffd import Payments, TlvList, decode_tlv

from support.fn import registration

START = dt.datetime(2026, 11, 2, 9, 0, 0)
SECRET = bytes(range(32))
USER = 'ООО "Ромашка и партнёры"'
REGISTRATION_TAGS: TlvList = [
    (1048, USER),
    (1009, "г. Москва, ул. Тверская, д. 7, стр. 1"),
    (1187, 'Кофейня "Ёлка"'),
    (1021, "Администратор"),
    (1013, "0012345678"),
    (1046, 'ООО "Тест ОФД"'),
    (1060, "www.nalog.gov.ru"),
    (1188, "1.0"),
    (1189, 4),
]


@contextmanager
def fixed_secret() -> Iterator[None]:
    original = secrets.token_bytes
    secrets.token_bytes = lambda n=32: SECRET[:n]  # type: ignore[assignment]
    try:
        yield
    finally:
        secrets.token_bytes = original  # type: ignore[assignment]


def new_register(start: dt.datetime = START) -> tuple[RegisterModel, ManualClock]:
    clock = ManualClock(start)
    with fixed_secret():
        fn = FiscalStorage(MemoryStore(), clock)
    settings = RegisterSettings(user_name=USER)
    model = RegisterModel(fn, settings, clock, fiscal_only=False)
    fn.register(registration(), REGISTRATION_TAGS)
    return model, clock


def item(name: str, price: int, quantity: str, vat: int) -> Item:
    amount = int(price * Decimal(quantity))
    return Item(name, price, Decimal(quantity), amount, vat, item_tax(amount, vat))


def tlv(model: RegisterModel, number: int) -> TlvList:
    return decode_tlv(model.fn.record(number).tlv)


def every_document() -> dict[str, tuple[TlvList, int]]:
    """name -> (document TLV, change handed back) for each document type the emulator forms."""
    model, clock = new_register()
    out: dict[str, tuple[TlvList, int]] = {"registration": (tlv(model, 1), 0)}
    step = dt.timedelta(minutes=7)
    clock.advance(step)
    model.operator = 1
    out["shift_open"] = (tlv(model, model.open_shift([]).number), 0)
    clock.advance(step)
    receipt = model.open_receipt(0)
    receipt.items += [
        item("Кофе капучино 300 мл", 19_900, "2", VAT20),
        item("Круассан с миндалём", 14_500, "1", VAT10),
        item('Вода "Шишкин лес" 0,5 л, без газа', 6_000, "1.5", NO_VAT),
    ]
    model.add_receipt_tags([(1008, "buyer@example.org")])
    sale = model.close_receipt(Payments(cash=60_000, electronic=10_000))
    out["receipt_sale"] = (tlv(model, sale.formed.number), sale.change)
    clock.advance(step)
    model.open_receipt(2).items.append(item("Круассан с миндалём", 14_500, "1", VAT10))
    model.add_receipt_tags([(1008, "+79161234567")])
    back = model.close_receipt(Payments(electronic=14_500))
    out["receipt_return"] = (tlv(model, back.formed.number), back.change)
    clock.advance(step)
    model.open_receipt(1).items.append(item("Молоко 3,2 %, 1 л", 8_990, "12", VAT0))
    bought = model.close_receipt(Payments(cash=107_880))
    out["receipt_buy"] = (tlv(model, bought.formed.number), 0)
    clock.advance(step)
    basis: TlvList = [(1174, [(1178, dt.datetime(2026, 11, 1)), (1179, "СП-12/3")])]
    correction = model.correction(1, 25_000, [(1173, 1), *basis])
    out["correction"] = (tlv(model, correction.number), 0)
    clock.advance(step)
    out["state_report"] = (tlv(model, model.state_report([]).number), 0)
    clock.advance(step)
    out["shift_close"] = (tlv(model, model.close_shift([]).number), 0)
    clock.advance(step)
    changed = replace(registration(), tax_systems=3)
    formed = model.fn.reregister(changed, 0x80, [(1048, USER), (1021, "Администратор")])
    out["reregistration"] = (tlv(model, formed.number), 0)
    clock.advance(step)
    out["fn_close"] = (tlv(model, model.fn.close_fn([(1021, "Администратор")]).number), 0)
    model.close()
    return out


def random_receipts(count: int, seed: int) -> Iterator[TlvList]:
    """``count`` receipts of random items, operations, payments and times."""
    chooser = random.Random(seed)
    model, clock = new_register()
    model.open_shift([])
    names = ['Хлеб "Бородинский"', "Сыр", "Яблоки Голден", "Чай зелёный", "Щётка", "Эскимо"]
    for _ in range(count):
        clock.advance(dt.timedelta(seconds=chooser.randrange(60, 1800)))
        receipt = model.open_receipt(chooser.choice((0, 0, 0, 1, 2, 3)))
        for _ in range(chooser.randrange(1, 4)):
            receipt.items.append(
                item(
                    chooser.choice(names),
                    chooser.randrange(1, 2_000_000),
                    str(chooser.randrange(1, 5)),
                    chooser.choice((VAT20, VAT10, VAT0, NO_VAT, VAT20_120)),
                )
            )
        total = receipt.total
        cash = chooser.randrange(0, total + 1)
        closed = model.close_receipt(Payments(cash=cash, electronic=total - cash))
        yield tlv(model, closed.formed.number)
    model.close()
