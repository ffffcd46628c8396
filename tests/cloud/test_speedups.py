"""The service's shortcuts keep its answers: JSON text (`jsontext.dumps`), the token cache
(`TokenCache`) and the hand-over of conversions (`Prepared`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("fastapi")

from kkt.cloud import jsontext
from kkt.cloud.prepared import Prepared
from kkt.cloud.tokens import TokenCache


def _slow(value: Any) -> str:
    parts: list[str] = []
    jsontext._write(value, parts)
    return "".join(parts)


MARK = "\x00kkt-decimal\x00"


@pytest.mark.parametrize(
    "value",
    [
        {"a": Decimal("1.10"), "b": [1, 2.5, None, True, {"c": Decimal("0.1")}], "é": 'ü"\\\n'},
        {"text": MARK, "sum": Decimal("3")},  # a string holding the marker: written the slow way
        {"sum": Decimal("3"), "text": f"x{MARK}y"},
        [Decimal("1E+2"), Decimal("-0.00"), (1, 2)],
        {"nested": {"empty": [], "none": None}},
        "plain",
    ],
)
def test_dumps_writes_what_the_plain_writer_writes(value: Any) -> None:
    assert jsontext.dumps(value) == _slow(value)
    assert jsontext.loads(jsontext.dumps(value)) == jsontext.loads(_slow(value))


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({1: 2}, TypeError),
        ({"a": Decimal("NaN")}, ValueError),
        ({"a": float("inf")}, ValueError),
        ({"a": object()}, TypeError),
    ],
)
def test_dumps_refuses_what_has_no_json_form(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        jsontext.dumps(value)


class Tokens:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, datetime]] = {}
        self.asked = 0

    def login(self, token_hash: str, now: datetime) -> str | None:
        self.asked += 1
        row = self.rows.get(token_hash)
        return row[0] if row is not None and row[1] > now else None


def test_a_token_issued_here_is_known_until_it_expires() -> None:
    storage = Tokens()
    cache = TokenCache(storage.login)
    now = datetime.now(UTC)
    cache.issued("h", "demo", now + timedelta(hours=1))
    assert cache.known("h", now) == "demo"
    assert cache.known("h", now + timedelta(hours=1)) is None  # expired: asked again
    assert storage.asked == 0


def test_a_token_from_storage_is_kept_only_as_long_as_storage_confirmed_it() -> None:
    storage = Tokens()
    cache = TokenCache(storage.login, confirm=60)
    now = datetime.now(UTC)
    storage.rows["long"] = ("demo", now + timedelta(hours=1))
    storage.rows["short"] = ("demo", now + timedelta(seconds=10))
    assert cache.login("long", now) == "demo"
    assert cache.known("long", now + timedelta(seconds=59)) == "demo"
    assert cache.known("long", now + timedelta(seconds=60)) is None
    assert cache.login("short", now) == "demo"  # valid now, not in 60 s: not remembered
    assert cache.known("short", now) is None
    assert cache.login("short", now + timedelta(seconds=10)) is None
    assert cache.login("unknown", now) is None
    storage.rows["unknown"] = ("demo", now + timedelta(hours=1))  # made later elsewhere
    assert cache.login("unknown", now) == "demo"


def test_prepared_hands_each_conversion_over_once_and_stays_bounded() -> None:
    prepared = Prepared(limit=2)
    prepared.put("a", "A")
    prepared.put("none", None)  # nothing to hand over: not kept
    prepared.put("b", "B")
    prepared.put("c", "C")  # the oldest ("a") goes
    assert len(prepared) == 2
    assert prepared.take("a") is None
    assert prepared.take("b") == "B"
    assert prepared.take("b") is None
    assert prepared.take("none") is None


def test_accepts_at_once_share_commits_and_still_store_each_request_once(tmp_path: Any) -> None:
    import threading

    from kkt.cloud.model import Order
    from kkt.cloud.storage.sqlite import SqliteStorage

    storage = SqliteStorage(tmp_path / "cloud.sqlite")
    try:
        # 40 external ids, each posted 3 times (the third with another body), from 12 threads
        orders = [
            Order(4, "demo", "sell", f"e{n}", {"n": n}, f"fp{n}-{take // 2}", None, "")
            for n in range(40)
            for take in range(3)
        ]
        answers: dict[int, Any] = {}
        start = threading.Barrier(12)

        def post(share: int) -> None:
            start.wait()
            for index in range(share, len(orders), 12):
                answers[index] = storage.accept(orders[index], idempotency_key=None)

        threads = [threading.Thread(target=post, args=(share,)) for share in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(answers) == len(orders)
        for n in range(40):
            mine = [(answers[i], orders[i]) for i in range(len(orders)) if orders[i].body["n"] == n]
            assert len({answer.uuid for answer, _ in mine}) == 1  # one request per external id
            assert sum(answer.created for answer, _ in mine) == 1
            first = next(order for answer, order in mine if answer.created)
            for answer, order in mine:
                if not answer.created:
                    assert answer.same_body == (order.fingerprint == first.fingerprint)
        assert storage.counts()["wait"] == 40
    finally:
        storage.close()
