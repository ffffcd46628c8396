"""Marked receipts in the register pool (`kkt.cloud.marking`): storage lets a register skip them,
ATOL registers leave them to the group's Shtrikh registers, and a group without one fails them
with a clear agent error instead of selling them without their code or keeping them forever."""

from __future__ import annotations

import base64
import copy
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kkt.cloud import jsontext
from kkt.cloud.emulated import EmulatedPool
from kkt.cloud.marking import MARKED_BODY_TEXT, is_marked
from kkt.cloud.service import DB_NAME
from kkt.cloud.storage import open_storage
from kkt.cloud.storage.base import Storage
from kkt.emulator.state import TEST_INN
from support.atol_examples import v5_unmarked
from support.cloud import CloudServer, make_order

import kkt

GS = "\x1d"


def mark(serial: str) -> str:
    """A code the emulated FN checks positive (a code is sold once: each sale its own serial)."""
    return f"0104607012345678215{serial:0>12}{GS}91EE06{GS}92{'Q' * 44}"


def v5_marked(external_id: str, serial: str = "1") -> dict[str, Any]:
    body = v5_unmarked()
    body["external_id"] = external_id
    del body["service"]
    body["receipt"]["company"]["inn"] = TEST_INN
    item = body["receipt"]["items"][0]
    gs1m = base64.b64encode(mark(serial).encode()).decode()
    item.update(payment_object=33, mark_processing_mode="0", mark_code={"gs1m": gs1m})
    return body


def v5_plain(external_id: str) -> dict[str, Any]:
    body = v5_marked(external_id)
    item = body["receipt"]["items"][0]
    del item["mark_code"], item["mark_processing_mode"]
    item["payment_object"] = 1
    # the marker's text inside a string: escaped quotes, so not a marked body
    item["name"] = 'Пакет "mark_code":{'
    return body


def test_is_marked_reads_the_items() -> None:
    assert is_marked(v5_marked("m"))
    assert not is_marked(v5_plain("p"))
    assert not is_marked({"receipt": {"items": [{"mark_code": None}]}})


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "postgres":
        where: str | Path = request.getfixturevalue("postgres_cluster").create_database()
    else:
        where = tmp_path / "state" / "cloud.sqlite"
    store = open_storage(where)
    try:
        yield store
    finally:
        store.close()


def test_claim_skip_marked_leaves_them_queued_in_order(storage: Storage) -> None:
    marked = storage.accept(make_order("m1", body=v5_marked("m1")), idempotency_key=None)
    plain = storage.accept(make_order("p1", body=v5_plain("p1")), idempotency_key=None)
    assert MARKED_BODY_TEXT in jsontext.dumps(v5_marked("x"))  # how storage keeps bodies
    first = storage.claim("atol-1", "demo", skip_marked=True)
    assert first is not None and first.uuid == plain.uuid  # the older marked one is skipped
    assert storage.claim("atol-1", "demo", skip_marked=True) is None
    taken = storage.claim("shtrih-1", "demo")
    assert taken is not None and taken.uuid == marked.uuid


Start = Callable[..., CloudServer]


def test_a_group_without_shtrikh_fails_marked_receipts_clearly(cloud_server: Start) -> None:
    server = cloud_server(emulated=1, emulated_protocol="atol")
    token = server.token()
    answer = server.post("sell", v5_marked("mk-atol"), token=token, api=5)
    assert answer.status_code == 200, answer.text
    report = server.settled(answer.json()["uuid"], token=token, api=5)
    assert report["status"] == "fail", report
    error = report["error"]
    assert (error["code"], error["type"]) == (4, "agent")
    assert "no register of group demo can sell them" in error["text"]
    # the same group still sells unmarked receipts
    plain = server.post("sell", v5_plain("pl-atol"), token=token, api=5)
    assert server.settled(plain.json()["uuid"], token=token, api=5)["status"] == "done"


def control(server: CloudServer, index: int, request: dict[str, Any]) -> dict[str, Any]:
    """One request to emulated register ``index``'s control socket (as ``kkt emulator ctl``)."""
    path = server.service.state_dir / "emulated" / f"{index:02d}" / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
        channel.settimeout(10)
        channel.connect(str(path))
        channel.sendall(json.dumps(request).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = channel.recv(4096)
            assert chunk, "the control channel closed"
            answer += chunk
    result: dict[str, Any] = json.loads(answer)
    return result


def test_in_a_mixed_group_only_shtrikh_registers_take_marked_receipts(cloud_server: Start) -> None:
    server = cloud_server(emulated=2, emulated_protocol="mixed")
    token = server.token()
    protocols = {view.name: view.protocol for view in server.service.pool.views()}
    assert protocols == {"emulated-00": "shtrih", "emulated-01": "atol"}
    uuids = []
    for index in range(3):
        answer = server.post("sell", v5_marked(f"mk-{index}", f"7{index}"), token=token, api=5)
        assert answer.status_code == 200, answer.text
        uuids.append(answer.json()["uuid"])
        plain = server.post("sell", copy.deepcopy(v5_plain(f"pl-{index}")), token=token, api=5)
        assert plain.status_code == 200, plain.text
    for index, uuid in enumerate(uuids):
        report = server.settled(uuid, token=token, api=5)
        assert report["status"] == "done", report
        view = server.service.storage.report(uuid)
        assert view is not None and view.register == "emulated-00", report
        # v5's marks_result: the position, the code in the request's form, tag 2106 ([М+])
        code = base64.b64encode(mark(f"7{index}").encode()).decode()
        assert report["payload"]["marks_result"] == [
            {"position": 0, "mark_code": {"gs1m": code}, "result": 15}
        ]
    # a code ОИСМ reports withdrawn: failed by the request's fault, nothing sold, register ok
    assert control(server, 0, {"action": "oism", "answer": "withdrawn"}).get("ok") is True
    answer = server.post("sell", v5_marked("mk-withdrawn", "99"), token=token, api=5)
    report = server.settled(answer.json()["uuid"], token=token, api=5)
    assert report["status"] == "fail", report
    assert (report["error"]["code"], report["error"]["type"]) == (1, "agent")
    assert report["error"]["text"].startswith("marked goods refused: "), report
    # ОИСМ silent: v5's ism_optional true sells anyway (2106 says how), without it fails
    assert control(server, 0, {"action": "oism", "answer": "offline"}).get("ok") is True
    strict = server.post("sell", v5_marked("mk-strict", "97"), token=token, api=5)
    assert server.settled(strict.json()["uuid"], token=token, api=5)["status"] == "fail"
    optional = server.post(
        "sell", {**v5_marked("mk-optional", "96"), "ism_optional": True}, token=token, api=5
    )
    report = server.settled(optional.json()["uuid"], token=token, api=5)
    assert report["status"] == "done", report
    assert report["payload"]["marks_result"][0]["result"] != 15  # not [М+]: ОИСМ never said so
    assert control(server, 0, {"action": "oism", "reset": True}).get("ok") is True
    again = server.post("sell", v5_marked("mk-after", "98"), token=token, api=5)
    assert server.settled(again.json()["uuid"], token=token, api=5)["status"] == "done"


def test_a_marked_request_an_atol_register_holds_goes_to_the_shtrikh_one(
    cloud_server: Start, tmp_path: Path
) -> None:
    # left assigned to the ATOL register (a pool configured before the Shtrikh one joined):
    # it settles it at start by giving it back, and the group's Shtrikh register sells it
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    storage = open_storage(state / DB_NAME)
    try:
        body = v5_marked("mk-held", "55")
        order = make_order("mk-held", body=body)
        accepted = storage.accept(replace(order, api=5), idempotency_key=None)
        job = storage.claim("emulated-01", "demo")
        assert job is not None and job.uuid == accepted.uuid
    finally:
        storage.close()
    server = cloud_server(state, emulated=2, emulated_protocol="mixed")
    report = server.settled(accepted.uuid, token=server.token(), api=5)
    assert report["status"] == "done", report
    view = server.service.storage.report(accepted.uuid)
    assert view is not None and view.register == "emulated-00"


def test_the_demo_refuses_a_code_it_sold_whichever_register_takes_it(cloud_server: Start) -> None:
    """`kkt cloud serve --emulated 2`: a v5 sell of a code sold before fails by ОИСМ's answer
    (7 [М-], nothing fiscal), on whichever register claims it."""
    server = cloud_server(emulated=2, emulated_protocol="shtrih")
    token = server.token()
    first = server.post("sell", v5_marked("mk-once", "60"), token=token, api=5)
    assert server.settled(first.json()["uuid"], token=token, api=5)["status"] == "done"
    for again in ("mk-again-1", "mk-again-2"):
        answer = server.post("sell", v5_marked(again, "60"), token=token, api=5)
        report = server.settled(answer.json()["uuid"], token=token, api=5)
        assert report["status"] == "fail", report
        assert (report["error"]["code"], report["error"]["type"]) == (1, "agent")
        text = report["error"]["text"]
        assert text.startswith("marked goods refused: ") and "7 [М-]" in text, text
        assert "ОИСМ says the goods may not be sold" in text and "refuses to bind" not in text


def test_a_code_sold_on_one_emulated_register_is_sold_before_on_every_other(
    tmp_path: Path,
) -> None:
    """The registers of one `EmulatedPool` share one ОИСМ's knowledge of sold codes; a restarted
    pool learns it again from the FNs' stores."""
    code = mark("77")
    sale = kkt.Receipt((kkt.Item("Обувь", 10_000, mark_code=code),), kkt.Payments(cash=10_000))
    with EmulatedPool(tmp_path, 3, "shtrih") as pool:
        with kkt.connect(pool.urls[0]) as first, kkt.connect(pool.urls[1]) as second:
            first.open_shift()
            second.open_shift()
            assert second.check_mark(code).accepted  # nobody sold it yet
            first.sell(sale)
            before = second.fn_info().last_document
            for register in (first, second):
                check = register.check_mark(code)
                assert (check.accepted, check.label, check.item_check) == (False, "[М-]", 7)
            with pytest.raises(kkt.MarkRejected) as caught:
                second.sell(sale)
            assert caught.value.item_check == 7 and not isinstance(
                caught.value, kkt.MarkAlreadySold
            )
            assert second.fn_info().last_document == before  # nothing fiscal
    with EmulatedPool(tmp_path, 3, "shtrih") as pool, kkt.connect(pool.urls[2]) as third:
        third.open_shift()
        assert not third.check_mark(code).accepted
