"""`kkt mark check CODE`, the marking state in `kkt fn`, and `kkt sell FILE` with a marked item,
against an emulated register served over TCP (the fixture style of test_ways_out.py)."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from kkt.tools.cli import main
from support import served

ROOT = Path(__file__).resolve().parents[2]
MARKED_EXAMPLE = ROOT / "examples" / "receipt-marked.json"
GS = "\x1d"


def code(serial: str, crypto: str = "Q" * 44) -> str:
    """A code the emulated FN checks positive; a crypto code that starts "BAD" it finds forged."""
    return f"0104607012345678215{serial:0>12}{GS}91EE06{GS}92{crypto}"


class Served(served.Served):
    def kkt(self, capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> str:
        """Both streams: a refusal's words and the check's lines alike."""
        out, err = self.run(capsys, *argv, code=code)
        return out + err


def _serve(tmp_path: Path, protocol: str) -> Iterator[Served]:
    for base in served.serve(tmp_path, protocol, Served):
        yield cast(Served, base)


@pytest.fixture
def shtrih(tmp_path: Path) -> Iterator[Served]:
    yield from _serve(tmp_path, "shtrih")


@pytest.fixture
def atol(tmp_path: Path) -> Iterator[Served]:
    yield from _serve(tmp_path, "atol")


def test_an_accepted_code_shows_its_label_bits_and_why(
    shtrih: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    shtrih.kkt(capsys, "shift", "open")
    typed = code("1").replace(GS, "<GS>")  # how a person types it on a command line
    out = shtrih.kkt(capsys, "mark", "check", typed)
    assert "[М+]" in out and "accepted" in out
    assert "yes ОИСМ: the planned status is correct" in out
    data = json.loads(shtrih.kkt(capsys, "mark", "check", code("1"), "--json"))
    assert (data["accepted"], data["itemCheck"], data["label"]) == (True, 15, "[М+]")
    assert data["itemCheckWords"][0] == "yes the FN checked the code's crypto code"
    assert data["code"] == code("1")
    # a check sells nothing: the FN's table holds no accepted code afterwards
    state = json.loads(shtrih.kkt(capsys, "fn", "--json"))["marking"]
    assert state["saved"] == 0 and state["checkState"] == 1


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ("withdrawn", "ОИСМ says the goods may not be sold"),
        ("wrong-status", "ОИСМ says the goods may not be sold"),
        ("offline", "ОИСМ did not answer in time"),
    ],
)
def test_a_code_a_sale_would_not_take_exits_1_with_the_reason(
    shtrih: Served, capsys: pytest.CaptureFixture[str], answer: str, words: str
) -> None:
    shtrih.kkt(capsys, "shift", "open")
    shtrih.ctl(action="oism", answer=answer)
    out = shtrih.kkt(capsys, "mark", "check", code("2"), code=1)
    assert "NOT accepted" in out and words in out
    assert "kkt mark: " in out  # the one line on stderr for scripts
    data = json.loads(
        shtrih.kkt(capsys, "mark", "check", code("2"), "--json", code=1).split("\n}")[0] + "}"
    )
    assert data["accepted"] is False


def test_offline_ok_accepts_a_check_oism_did_not_answer(
    shtrih: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    shtrih.kkt(capsys, "shift", "open")
    shtrih.ctl(action="oism", answer="offline")
    data = json.loads(shtrih.kkt(capsys, "mark", "check", code("3"), "--offline-ok", "--json"))
    assert data["accepted"] is True
    assert "sold without ОИСМ's answer as allowed" in data["explanation"]


def test_a_forged_code_is_the_fns_verdict(
    shtrih: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    shtrih.kkt(capsys, "shift", "open")
    out = shtrih.kkt(capsys, "mark", "check", code("4", "BAD" + "Q" * 41), code=1)
    assert "[М-]" in out and "the FN found the code's crypto code invalid" in out


def test_return_status_base64_and_stdin(
    shtrih: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shtrih.kkt(capsys, "shift", "open")
    encoded = base64.b64encode(code("5").encode()).decode()
    data = json.loads(
        shtrih.kkt(capsys, "mark", "check", encoded, "--base64", "--status", "returned", "--json")
    )
    assert (data["plannedStatus"], data["code"]) == (3, code("5"))
    monkeypatch.setattr("sys.stdin", io.StringIO(code("6") + "\r\n"))
    data = json.loads(shtrih.kkt(capsys, "mark", "check", "-", "--json"))
    assert data["code"] == code("6")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["mark", "check", "not base64!", "--base64"], "--base64: "),
        (["mark", "check", "x", "--part", "4/4"], "--part 4/4: give a part of one unit"),
        (["mark", "check", "0104607012345678" + GS + "91EE06"], "kkt mark: "),
    ],
)
def test_usage_errors_exit_2(
    shtrih: Served, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert message in shtrih.kkt(capsys, *argv, code=2)


def test_kkt_fn_shows_the_marking_state(shtrih: Served, capsys: pytest.CaptureFixture[str]) -> None:
    shtrih.kkt(capsys, "shift", "open")
    out = shtrih.kkt(capsys, "fn")
    assert "marking" in out and "notifications waiting for ОИСМ: 0" in out
    data = json.loads(shtrih.kkt(capsys, "fn", "--json"))
    assert data["marking"]["queued"] == 0
    assert "notification store: under 50 % full (0 %)" in data["marking"]["describe"]


def test_atol_says_why_it_cannot(atol: Served, capsys: pytest.CaptureFixture[str]) -> None:
    atol.kkt(capsys, "shift", "open")
    data = json.loads(atol.kkt(capsys, "fn", "--json"))
    assert data["marking"] is None  # `kkt fn` still answers
    assert "marking" in atol.kkt(capsys, "fn") and "not available" in atol.kkt(capsys, "fn")
    out = atol.kkt(capsys, "mark", "check", code("7"), code=1)
    assert "kkt mark: " in out


def test_kkt_sell_sells_the_marked_example_once(
    shtrih: Served, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shtrih.kkt(capsys, "shift", "open")
    task = json.loads(MARKED_EXAMPLE.read_text(encoding="utf-8"))
    out = shtrih.kkt(capsys, "sell", str(MARKED_EXAMPLE), "--json")
    assert json.loads(out)["fiscalDocumentNumber"] > 0
    # the same code again: ОИСМ knows it sold -- refused before anything fiscal, exit 1
    again = shtrih.kkt(capsys, "sell", str(MARKED_EXAMPLE), code=1)
    assert "kkt sell: " in again and "rejected [М-]" in again and "nothing charged" in again
    assert "checking again" not in again
    # a withdrawn code never reaches a document
    shtrih.ctl(action="oism", answer="withdrawn")
    imc = task["items"][0]["imcParams"]
    imc["imc"] = base64.b64encode(code("8").encode()).decode()
    path = tmp_path / "withdrawn.json"
    path.write_text(json.dumps(task, ensure_ascii=False), encoding="utf-8")
    refused = shtrih.kkt(capsys, "sell", str(path), code=1)
    assert "kkt sell: " in refused


def test_a_sold_code_is_refused_by_the_next_check_and_sale_one_process_per_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The review's reproduction (session 30): `kkt --url=emulator:DIR` opens the register anew
    for every command, so the emulated ОИСМ knows the sale from the FN's store, not from memory."""
    url = f"emulator:{tmp_path / 'rep'}"

    def kkt(*argv: str, code: int = 0) -> tuple[str, str]:
        capsys.readouterr()
        returned = main(["--url", url, *argv])
        out, err = capsys.readouterr()
        assert returned == code, f"kkt {' '.join(argv)} -> {returned}: {err or out}"
        assert "Traceback" not in err
        return out, err

    def last_document() -> int:
        return int(json.loads(kkt("fn", "--json")[0])["lastDocument"])

    kkt("shift", "open")
    kkt("sell", str(MARKED_EXAMPLE))
    sold = last_document()
    imc = json.loads(MARKED_EXAMPLE.read_text(encoding="utf-8"))["items"][0]["imcParams"]["imc"]
    out, err = kkt("mark", "check", "--base64", imc, code=1)
    assert "[М-] 014494550435306821QXYXSALGLMYQQ: NOT accepted" in out
    assert re.search(r"result \(2106\)\s+7 \[М-\]", out)
    assert re.search(r"a sale would take it\s+no", out)
    assert "ОИСМ says the goods may not be sold" in out and "kkt mark: " in err
    with caplog.at_level(logging.WARNING):
        out, err = kkt("sell", str(MARKED_EXAMPLE), code=1)
    assert err.startswith("kkt sell: item 1 ('Молоко 3,2% 930 мл'), code 014494550435306821QXY")
    assert "rejected [М-]" in err and "(tag 2106: 7 [М-])" in err and "nothing charged" in err
    assert "refuses to bind" not in err and "checking again" not in err + caplog.text
    assert last_document() == sold  # nothing fiscal was sent


def test_a_code_the_fn_cannot_identify_is_unknown_to_oism(
    shtrih: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    shtrih.kkt(capsys, "shift", "open")
    data = json.loads(shtrih.kkt(capsys, "mark", "check", "hello", "--json"))
    # the FN: type 0, not checked (reason 4 other); ОИСМ: 2105 = 2 (not recognised), no 2109 --
    # 2106 = 0 [М]: nothing confirmed, nothing negative (a sale takes it, JavaPOS's rule)
    assert (data["codeType"], data["local"], data["localReason"]) == (0, 0, 4)
    assert (data["itemCheck"], data["label"]) == (0, "[М]")
    assert "ОИСМ does not know this code (tag 2105 = 2, not recognised)" in data["explanation"]
    # still settable per code through the control channel
    shtrih.ctl(action="oism", answer="valid", code="hello")
    data = json.loads(shtrih.kkt(capsys, "mark", "check", "hello", "--json"))
    assert data["itemCheck"] == 12  # ОИСМ checked the status and says it is correct
    shtrih.ctl(action="oism", answer="withdrawn", code="hello")
    assert "NOT accepted" in shtrih.kkt(capsys, "mark", "check", "hello", code=1)
