"""The ``kkt`` command through ``main(argv)``, against the emulated register.

Every command runs in its human form and with ``--json``; the JSON shapes asserted here are the
ones the README documents.  Failures must be one line on stderr with the documented exit code:
0 ok, 1 refused, 2 usage or input, 3 no link, 4 outcome unknown, 5 key conflict.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.atol import open_device as open_atol
from kkt.emulator.clock import ManualClock
from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device
from kkt.protocols.atol.charset import encode_text
from kkt.protocols.atol.packet import encode_packet
from kkt.tools import register_cli
from kkt.tools.cli import main
from rich.console import Console as RichConsole

from kkt import errors as kkt_errors
from kkt import register as kkt_register
from kkt.results import Document

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "receipt.json"


class Kkt:
    """Runs ``kkt`` against one register URL and keeps what it printed."""

    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.capsys = capsys

    def __call__(self, *argv: str, code: int = 0) -> str:
        self.capsys.readouterr()
        returned = main(["--url", self.url, *argv])
        out, err = self.capsys.readouterr()
        assert returned == code, f"kkt {' '.join(argv)} -> {returned}: {err or out}"
        if code:
            assert out == "" or "--json" not in argv
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("kkt "), err
            assert "Traceback" not in err
            return err
        assert err == ""
        return out

    def json(self, *argv: str, code: int = 0) -> Any:
        return json.loads(self(*argv, "--json", code=code))


@pytest.fixture
def kkt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Kkt:
    # The directory exists (an empty one: the register is made in it on first use), so no
    # "a new emulated register" note joins the errors these tests read.
    (tmp_path / "register").mkdir()
    return Kkt(f"emulator:{tmp_path / 'register'}", capsys)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServiceThread]:
    device = open_device(tmp_path / "served")
    try:
        with ServiceThread(device, Faults()) as thread:
            yield thread
    finally:
        device.close()


def test_the_readme_quick_start(kkt: Kkt) -> None:
    status = kkt.json("status")
    assert status["shift"]["open"] is False and status["mode"] == 4
    assert "shift closed" in kkt("status")

    opened = kkt.json("shift", "open", "--cashier", "Петрова А.")
    assert opened["fiscalDocumentNumber"] == 2 and opened["shiftNumber"] == 1
    assert "fiscalReceiptNumber" not in opened and "total" not in opened

    sold = kkt.json("sell", str(EXAMPLE))
    assert sold["fiscalDocumentNumber"] == 3
    assert sold["total"] == 648.0 and sold["fiscalReceiptNumber"] == 1
    assert sold["registrationNumber"].startswith("0000000001")
    assert sold["qr"].startswith("t=") and "&s=648.00&" in sold["qr"]
    assert sold["fnsUrl"] == "www.nalog.gov.ru"
    assert isinstance(sold["fiscalDocumentSign"], str)

    fn = kkt.json("fn")
    assert fn["lastDocument"] == 3 and fn["phaseName"] == "fiscal mode"
    assert fn["unsent"]["count"] == 3 and fn["unsent"]["firstNumber"] == 1
    assert fn["unsent"]["daysUntilBlock"] == 30 and fn["warnings"] == []
    assert fn["daysLeft"] > 300

    document = kkt.json("doc", "3")
    assert document["type"] == 3 and document["typeName"] == "кассовый чек"
    assert document["fiscalSign"] == sold["fiscalDocumentSign"]
    tlv = document["tlv"]
    assert tlv["totalSum"] == 64_800 and tlv["operator"] == "Петрова А."
    assert [item["name"] for item in tlv["items"]] == [
        "Кофе капучино 300 мл",
        "Круассан с миндалём",
        "Вода питьевая негазированная",
    ]
    assert tlv["buyerPhoneOrAddress"] == "+79990000000"
    text = kkt("doc", "1")
    assert "отчёт о регистрации" in text and "регистрационный номер ККТ" in text


def test_receipt_kinds_cash_and_reports(kkt: Kkt, tmp_path: Path) -> None:
    kkt("shift", "open")
    # The example is a "sell" task; a file's type must agree with the command (issue 14, 9),
    # and a file without one takes the command's.
    untyped = tmp_path / "untyped.json"
    task = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    del task["type"]
    untyped.write_text(json.dumps(task, ensure_ascii=False), encoding="utf-8")
    for command, operation in (("return", 2), ("buy", 3), ("buy-return", 4)):
        result = kkt.json(command, str(untyped))
        assert result["total"] == 648.0
        assert kkt.json("doc", str(result["fiscalDocumentNumber"]))["tlv"]["operationType"] == (
            operation
        )
    assert kkt.json("cash", "in", "1500.50") == {"direction": "in", "sum": 1500.5}
    assert "cash out: 100.00" in kkt("cash", "out", "100")
    # each receipt pays 300 of its 648 in cash: 1500.50 - 100 - 300 (sale return) - 300 (buy)
    # + 300 (buy return) = 1100.50
    assert kkt.json("report", "x") == {
        "report": "x",
        "printed": True,
        "shift": {"open": True, "number": 1, "receipts": 3},
        "cashInDrawer": 1100.5,
        "cashByOperation": {"sell": 0.0, "buy": 300.0, "sellReturn": 300.0, "buyReturn": 300.0},
        "receiptsByOperation": {"sell": 0, "buy": 1, "sellReturn": 1, "buyReturn": 1},
        "cashIn": 1500.5,
        "cashOut": 100.0,
    }
    assert kkt.json("print", "Добрый день", "line two")["printed"] == 2
    assert kkt.json("cut") == {"cut": True}
    closed = kkt.json("shift", "close")
    assert closed["shiftNumber"] == 1 and "total" not in closed
    assert "shift 2 opened" in kkt("shift", "open")
    assert "shift 2 is already open" in kkt("shift", "open", code=1)
    assert "shift 2 closed (Z report)" in kkt("shift", "close")
    assert "no shift is open" in kkt("shift", "close", code=1)


def test_cash_in_the_drawer_and_the_x_report_figures(kkt: Kkt) -> None:
    """Defect 13 (issue 14): `report x` printed no figures and nothing read the drawer."""
    assert kkt.json("cash") == {"cashInDrawer": 0.0}
    kkt("shift", "open")
    kkt("sell", str(EXAMPLE))
    kkt("cash", "in", "100")
    assert kkt("cash") == "cash in the drawer: 400.00 ₽\n"  # the sale's 300 in cash and 100
    text = kkt("report", "x")
    assert "X report printed" in text and "#1 open, 1 receipt" in text and "1 receipts" not in text
    assert "cash in drawer          400.00 ₽" in text
    assert "cash, sales             300.00 ₽ (1 receipt)" in text
    assert "give the SUM in roubles" in kkt("cash", "out", code=2)


def test_a_correction_from_json(kkt: Kkt, tmp_path: Path) -> None:
    kkt("shift", "open")
    task = tmp_path / "correction.json"
    task.write_text(
        json.dumps(
            {
                "type": "sellCorrection",
                "correctionType": "self",
                "correctionBaseNumber": "12",
                "payments": [{"type": "cash", "sum": 100.5}],
            }
        )
    )
    result = kkt.json("correction", str(task))
    assert result["total"] == 100.5
    assert kkt.json("doc", str(result["fiscalDocumentNumber"]))["type"] == 31
    task.write_text(json.dumps({"type": "sellCorrection", "payments": [{"type": "credit"}]}))
    assert "payments[0]: only cash" in kkt("correction", str(task), code=2)


def test_a_correction_by_order_carries_its_basis(kkt: Kkt, tmp_path: Path) -> None:
    """ATOL's correctionType/correctionBaseDate/correctionBaseNumber become 1173 and 1174."""
    kkt("shift", "open")
    task = tmp_path / "correction.json"
    fields = {"type": "buyCorrection", "payments": [{"type": "cash", "sum": 5}]}
    order = {"correctionType": "instruction", "correctionBaseNumber": "7/1"}
    task.write_text(json.dumps({**fields, **order, "correctionBaseDate": "2026.10.30"}))
    number = kkt.json("correction", str(task))["fiscalDocumentNumber"]
    tlv = kkt.json("doc", str(number))["tlv"]
    assert tlv["tag1173"] == 1
    assert tlv["tag1174"] == {"tag1178": "2026-10-30T00:00:00", "tag1179": "7/1"}
    task.write_text(json.dumps({**fields, "correctionType": "instruction"}))
    assert "needs the order's number" in kkt("correction", str(task), code=2)
    task.write_text(json.dumps({**fields, "correctionBaseDate": "30/10/2026"}))
    assert "correctionBaseDate: a date as YYYY.MM.DD" in kkt("correction", str(task), code=2)
    task.write_text(json.dumps({**fields, "correctionType": "ordered"}))
    assert "correctionType: self or instruction" in kkt("correction", str(task), code=2)


def test_the_idempotency_key_returns_the_first_receipt(kkt: Kkt, tmp_path: Path) -> None:
    kkt("shift", "open")
    journal = str(tmp_path / "journal.sqlite")
    first = kkt.json("sell", str(EXAMPLE), "--key", "order-7", "--journal", journal)
    again = kkt.json("sell", str(EXAMPLE), "--key", "order-7", "--journal", journal)
    assert first["replayed"] is False and again == {**first, "replayed": True}
    assert kkt.json("fn")["lastDocument"] == first["fiscalDocumentNumber"]


def test_a_key_used_again_for_another_receipt_or_register_is_a_conflict(
    kkt: Kkt, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14: `kkt return other.json --key k1` after `kkt sell ... --key k1` printed the sale's
    receipt and exit 0; an ATOL register sharing the default journal returned the Shtrikh one's."""
    kkt("shift", "open")
    journal = str(tmp_path / "journal.sqlite")
    first = kkt.json("sell", str(EXAMPLE), "--key", "k1", "--journal", journal)
    refund_file = tmp_path / "refund.json"  # the example is a "sell" task: a refund's own file
    task = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    task["type"] = "sellReturn"
    refund_file.write_text(json.dumps(task, ensure_ascii=False), encoding="utf-8")
    refund = kkt("return", str(refund_file), "--key", "k1", "--journal", journal, code=5)
    assert "key conflict" in refund and "'k1'" in refund and "nothing was sent" in refund
    (tmp_path / "atol").mkdir()
    atol = Kkt(f"emulator:{tmp_path / 'atol'}", capsys)
    atol("--protocol", "atol", "shift", "open")
    other = atol(
        "--protocol", "atol", "sell", str(EXAMPLE), "--key", "k1", "--journal", journal, code=5
    )
    assert first["fnNumber"] in other and "new key" in other
    assert atol.json("--protocol", "atol", "fn")["lastDocument"] == 2  # nothing sold there
    assert kkt.json("fn")["lastDocument"] == first["fiscalDocumentNumber"]  # nor refunded here
    told = kkt("sell", str(EXAMPLE), "--key", "k1", "--journal", journal)
    assert f"replayed: receipt {first['fiscalReceiptNumber']} was fiscalized earlier" in told
    assert "under key k1" in told


@pytest.mark.parametrize(
    ("name", "code", "said"),
    [
        ("DeviceError", 1, "the register refused"),
        ("ReceiptRejected", 2, "items[0]"),
        ("TransportError", 3, "kkt doctor"),
        ("OutcomeUnknown", 4, "outcome unknown"),
        ("KeyConflict", 5, "key conflict"),
    ],
)
def test_one_exit_code_per_class_of_outcome(
    kkt: Kkt, monkeypatch: pytest.MonkeyPatch, name: str, code: int, said: str
) -> None:
    errors: dict[str, Exception] = {
        "DeviceError": kkt_errors.DeviceError("no paper", code=0x6B),
        "ReceiptRejected": kkt_errors.ReceiptRejected("items[0]: no name"),
        "TransportError": kkt_errors.TransportError("nothing answers"),
        "OutcomeUnknown": kkt_errors.OutcomeUnknown("the line fell silent"),
        "KeyConflict": kkt_errors.KeyConflict("key 'k' is FN 1's", key="k"),
    }
    error = errors[name]

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(kkt_register.Register, "shift_info", fail)
    assert said in kkt("status", code=code)


def test_the_exit_codes_are_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for line in (
        "0 done",
        "1 the register refused",
        "2 a wrong command line or input",
        "3 no link to the register",
        "4 outcome unknown",
        "5 key conflict",
    ):
        assert line in text
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "**4** outcome unknown" in readme and "**5** key conflict" in readme


def test_status_info_and_datetime(kkt: Kkt) -> None:
    kkt("shift", "open")
    status = kkt.json("status")
    assert set(status) == {
        "mode",
        "modeName",
        "submode",
        "shift",
        "paper",
        "coverOpen",
        "drawerOpen",
        "operator",
        "dateTime",
        "receiptItems",
    }
    assert status["shift"]["open"] is True and status["shift"]["ageHours"] >= 0
    assert "#1 open, 0 receipts" in kkt("status")
    info = kkt.json("info")
    assert info["modelName"] == "ШТРИХ-М-01Ф" and info["model"] == 250
    assert info["serial"] == "0012345678" and info["lineWidth"] == 48
    assert info["ffdVersion"] == "1.2" and info["userInn"] == "7701000001"
    assert "ШТРИХ-М-01Ф (model 250)" in kkt("info")
    clock = kkt.json("datetime")
    assert abs(clock["driftSeconds"]) < 5
    assert "drift" in kkt("datetime")


def test_docs_ranges_as_json_lines_and_a_table(kkt: Kkt) -> None:
    kkt("shift", "open")
    kkt("sell", str(EXAMPLE))
    lines = kkt("docs", "1..3", "--json").splitlines()
    assert [json.loads(line)["number"] for line in lines] == [1, 2, 3]
    assert [json.loads(line)["number"] for line in kkt("docs", "2..", "--json").splitlines()] == [
        2,
        3,
    ]
    line = json.loads(kkt("docs", "3"))  # JSON lines without --json too, as the help says
    assert line["typeName"] == "кассовый чек" and line["tlv"]["totalSum"] == 64800
    assert "not a range" in kkt("docs", "x..y", code=2)
    assert "the FN's last document is 3" in kkt("doc", "99", code=2)  # as docs says it


@pytest.mark.parametrize(
    ("receipt", "message"),
    [
        ("[]", "expected a JSON object"),
        ("{not json", "is not JSON"),
        ('{"items": [], "payments": []}', "items"),
        (
            '{"items": [{"type": "position", "name": "x", "price": 1.234, "quantity": 1, '
            '"amount": 1.23, "tax": {"type": "vat20"}}], "payments": [{"type": "cash", "sum": 2}]}',
            "items[0].price",
        ),
    ],
)
def test_a_bad_receipt_is_one_line_naming_the_field(
    kkt: Kkt, tmp_path: Path, receipt: str, message: str
) -> None:
    kkt("shift", "open")
    path = tmp_path / "bad.json"
    path.write_text(receipt)
    assert message in kkt("sell", str(path), code=2)
    assert kkt.json("fn")["lastDocument"] == 2  # nothing was fiscalized


def test_a_file_of_another_receipt_type_is_refused_by_the_command(kkt: Kkt, tmp_path: Path) -> None:
    """Issue 14, defect 9: `kkt sell` of a "sellReturn" file made a sale."""
    kkt("shift", "open")
    task = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    task["type"] = "sellReturn"
    path = tmp_path / "return.json"
    path.write_text(json.dumps(task, ensure_ascii=False), encoding="utf-8")
    said = kkt("sell", str(path), code=2)
    assert '"sellReturn"' in said and '"sell"' in said and "`kkt return FILE`" in said
    assert kkt.json("fn")["lastDocument"] == 2  # nothing was fiscalized
    assert kkt.json("return", str(path))["total"] == 648.0  # the command that agrees
    task["type"] = "sel"
    path.write_text(json.dumps(task), encoding="utf-8")
    assert 'takes a "sellReturn" receipt' in kkt("return", str(path), code=2)
    del task["type"]  # no type: the command's
    path.write_text(json.dumps(task), encoding="utf-8")
    assert kkt.json("buy", str(path))["fiscalDocumentNumber"] == 4


def test_the_doc_header_shows_the_documents_own_1012(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14, defect 10: the header said 04:11:00 (the archive record) and tag 1012 below it
    04:11:28; the QR the sale printed is the one `doc` and the driver agree on."""
    clock = ManualClock(dt.datetime(2026, 11, 22, 4, 11, 28))
    device = open_device(tmp_path / "clocked", clock=clock)
    try:
        with ServiceThread(device, Faults()) as thread:
            kkt = Kkt(f"socket://127.0.0.1:{thread.port}", capsys)
            kkt("shift", "open")
            sold = kkt.json("sell", str(EXAMPLE))
            number = str(sold["fiscalDocumentNumber"])
            text = kkt("doc", number)
            document = kkt.json("doc", number)
            printed = device.qr(int(number))
    finally:
        device.close()
    when = dt.datetime.fromisoformat(document["tlv"]["dateTime"])
    header = text.split("fiscal sign")[0]
    assert f"date-time    {when:%Y-%m-%d %H:%M:%S}" in header
    assert document["dateTime"] == when.isoformat() == sold["fiscalDocumentDateTime"]
    assert sold["qr"].startswith(f"t={when:%Y%m%dT%H%M%S}&") and printed == sold["qr"]


def test_the_doc_header_takes_1012_over_the_archive_record(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A document whose 1012 carries seconds (an archive written before the FN kept minutes, or
    another register's): the header shows 1012, not the record's minute."""
    exact = dt.datetime(2026, 11, 22, 4, 11, 28)
    wrapped = Document(3, 3, exact.replace(second=0), 1, False, [(3, [(1012, exact)])])
    flat = Document(3, 3, exact.replace(second=0), 1, False, [(1012, exact), (1040, 3)])
    bare = Document(3, 3, exact.replace(second=0), 1, False, [(1040, 3)])
    for document, shown in ((wrapped, exact), (flat, exact), (bare, exact.replace(second=0))):
        console = RichConsole(width=100, record=True)
        register_cli._show_document(console, document)
        header = console.export_text().split("fiscal sign")[0]
        assert f"date-time    {shown:%Y-%m-%d %H:%M:%S}" in header


def test_errors_are_one_line_with_the_documented_exit_code(
    kkt: Kkt, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "cannot read" in kkt("sell", str(tmp_path / "missing.json"), code=2)
    assert "the register refused" in kkt("sell", str(EXAMPLE), code=1)  # no shift yet
    assert "roubles" in kkt("cash", "in", "12.345", code=2)
    missing = Kkt(str(tmp_path / "ttyNOPE"), capsys)
    assert "cannot open" in missing("status", code=3)
    refused = Kkt("socket://127.0.0.1:1", capsys)
    assert "kkt doctor" in refused("status", "--json", code=3)
    assert main(["no-such-command"]) == 2
    assert main(["--help"]) == 0
    # values no command field can hold: refused before anything is sent (review findings)
    capsys.readouterr()
    assert main(["--url", kkt.url, "doc", "-1"]) == 2  # argparse's usage line and the error
    assert "nothing was sent" in capsys.readouterr().err
    assert "cannot be written in cp1251" in kkt("print", "😀", code=2)
    assert "nothing was sent" in kkt("cash", "in", "99999999999999", code=2)
    assert "not a port this driver can open" in Kkt("foo://x", capsys)("status", code=3)
    blocked = tmp_path / "no-dir" / "journal.sqlite"
    assert "idempotency journal" in kkt(
        "sell", str(EXAMPLE), "--key", "k", "--journal", str(blocked), code=1
    )


def test_over_tcp_with_a_frame_trace(
    served: ServiceThread, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["-v", "--url", f"socket://127.0.0.1:{served.port}", "status", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["mode"] == 4
    assert " ms -> 05" in err and " ms <- 15" in err  # ENQ out, NAK back, with timings


def test_scan_finds_the_register_on_tcp_and_a_pty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device = open_device(tmp_path / "state")
    try:
        with ServiceThread(device, Faults(), pty=tmp_path / "tty") as thread:
            host = f"127.0.0.1:{thread.port}"
            capsys.readouterr()
            code = main(
                ["scan", str(tmp_path / "tty"), "--host", host, "--bauds", "115200", "--json"]
            )
            found = json.loads(capsys.readouterr().out)
            assert code == 0
            assert [hit["url"] for hit in found] == [str(tmp_path / "tty"), f"socket://{host}"]
            assert found[0]["name"] == "ШТРИХ-М-01Ф" and found[0]["baudrate"] == 115200
            assert main(["scan", str(tmp_path / "nothing"), "--bauds", "115200"]) == 3
            assert "no register answered" in capsys.readouterr().out
    finally:
        device.close()


def test_doctor_on_a_healthy_register(
    served: ServiceThread, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = main(["doctor", "--url", f"socket://127.0.0.1:{served.port}", "--json"])
    checks = {check["check"]: check for check in json.loads(capsys.readouterr().out)}
    assert code == 0, checks
    assert list(checks) == ["network", "protocol", "clock", "fn", "shift", "ofd"]
    assert all(check["ok"] for check in checks.values())
    assert "ШТРИХ-М-01Ф" in checks["protocol"]["detail"]


def test_doctor_says_what_to_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["doctor", "--url", str(tmp_path / "ttyUSB9")]) == 1
    out = capsys.readouterr().out
    assert "FAIL port" in out and "does not exist" in out and "kkt scan" in out
    master, slave = os.openpty()  # a port with nothing behind it
    try:
        assert main(["doctor", "--url", os.ttyname(slave), "--timeout", "0.1", "--json"]) == 1
        checks = json.loads(capsys.readouterr().out)
    finally:
        os.close(master)
        os.close(slave)
    assert [c["check"] for c in checks] == ["port", "permissions", "free", "answers"]
    assert checks[-1]["ok"] is False and "cable" in checks[-1]["fix"]
    assert main(["doctor", "--url", "socket://127.0.0.1:1", "--json"]) == 1
    (network,) = json.loads(capsys.readouterr().out)
    assert network["check"] == "network" and not network["ok"] and "7778" in network["fix"]


SAMPLE_TRACE = """\
     0.1 ms -> 05
     1.1 ms <- 15
     1.3 ms -> 02 05 10 1e 00 00 00 0b
     2.9 ms <- 06 02 11 10 00 1e 82 00 02 00 00 9e a3 00 00 00 1e 00 00 00 bc
     3.1 ms -> 06
"""


def test_decode_reads_a_pasted_trace(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["decode", SAMPLE_TRACE]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["ENQ", "NAK"] and lines[3] == "ACK" and lines[5] == "ACK"
    assert lines[2] == "request GetShortStatus()"  # passwords are not shown
    assert lines[4].startswith("answer GetShortStatus -> ShortStatus(operator=30")
    assert main(["decode", "zz"]) == 2


def test_bench_prints_figures_as_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["bench", "link", "--quick", "--json"]) == 0
    figures = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [f["case"] for f in figures] == [
        "link.tcp.status_per_s",
        "link.pty.status_per_s",
        "link.inproc.status_per_s",
        "codec.frames_per_s",
    ]
    assert all(f["unit"] == "1/s" and f["value"] > 0 for f in figures)
    assert main(["bench", "no-such-case"]) == 2
    assert "known: link, receipts, archive" in capsys.readouterr().err


# -- ATOL -----------------------------------------------------------------------------------------


@pytest.fixture
def served_atol(tmp_path: Path) -> Iterator[ServiceThread]:
    device = open_atol(tmp_path / "atol")
    try:
        with ServiceThread(device, Faults(), protocol="atol") as thread:
            yield thread
    finally:
        device.close()


def test_atol_status_fn_and_sell_over_tcp(
    served_atol: ServiceThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's acceptance: `kkt --protocol atol status / fn / sell` against ATOL on TCP."""
    kkt = Kkt(f"socket://127.0.0.1:{served_atol.port}", capsys)
    status = kkt.json("--protocol", "atol", "status")
    assert status["shift"]["open"] is False and status["modeName"] == "select"
    assert kkt.json("--protocol", "atol", "info")["modelName"] == "АТОЛ 30Ф"
    kkt("--protocol", "atol", "shift", "open", "--cashier", "Петрова А.")
    sold = kkt.json("--protocol", "atol", "sell", str(EXAMPLE))
    assert sold["fiscalDocumentNumber"] == 3 and sold["total"] == 648.0
    assert sold["qr"].startswith("t=") and "&s=648.00&" in sold["qr"]
    fn = kkt.json("--protocol", "atol", "fn")
    assert fn["lastDocument"] == 3 and fn["unsent"]["count"] == 3
    assert len(fn["serial"]) == 16 and fn["daysLeft"] > 300
    tlv = kkt.json("--protocol", "atol", "doc", "3")["tlv"]
    assert tlv["totalSum"] == 64_800 and tlv["buyerPhoneOrAddress"] == "+79990000000"
    # auto tells the protocols apart with status questions only
    assert kkt.json("--protocol", "auto", "status")["shift"]["open"] is True


def test_atol_in_process_and_its_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "atol").mkdir()
    kkt = Kkt(f"emulator:{tmp_path / 'atol'}", capsys)
    assert "refused" in kkt("--protocol", "atol", "sell", str(EXAMPLE), code=1)
    kkt("--protocol", "atol", "shift", "open")
    kkt("--protocol", "atol", "cash", "in", "20.05")
    assert kkt.json("--protocol", "atol", "report", "x") == {
        "report": "x",
        "printed": True,
        "shift": {"open": True, "number": 1, "receipts": 0},
        "cashInDrawer": 20.05,  # 4Dh
        "cashByOperation": None,  # what ATOL's protocol here cannot read
        "receiptsByOperation": None,
        "cashIn": None,
        "cashOut": None,
    }
    assert kkt.json("--protocol", "atol", "cash") == {"cashInDrawer": 20.05}
    assert "cash in drawer  20.05 ₽" in kkt("--protocol", "atol", "report", "x")
    closed = kkt.json("--protocol", "atol", "shift", "close")
    assert closed["shiftNumber"] == 1


def test_decode_reads_atol_packets(capsys: pytest.CaptureFixture[str]) -> None:
    # The fact sheet's v3 packets (Zzzzipper's device dump, atol4j's unit test): an Add of A5h,
    # a Req of its task, an Abort, and an asynchronous result whose CRC is sent escaped.
    capsys.readouterr()
    trace = "FE 06 00 07 C1 01 02 00 00 A5 8D  FE 02 00 08 C3 02 FC  FE 01 00 06 C4 58"
    assert main(["decode", trace, "FE 05 00 F0 A6 57 55 00 00 FD EE"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "packet 07 host: Add TID 02 flags=0x01: GetDeviceType()",
        "packet 08 host: Req TID 02",
        "packet 06 host: Abort (clear the task buffer)",
        "packet F0 device: AsyncResult TID 57: 55 00 00",
    ]
    # A result is decoded as the answer of the command its task carried: here the fact sheet's
    # real A5h answer (Zzzzipper's dump of a "Казначей ФА"), inline in packet 07.
    answer = bytes.fromhex("00 01 01 4C 10 00 03 00 00 21 95") + encode_text("Казначей ФА")
    reply = encode_packet(0x07, b"\xa3" + answer).hex(" ")
    assert main(["decode", "FE 06 00 07 C1 01 02 00 00 A5 8D", reply]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("packet 07 device: Result TID 02: GetDeviceType -> DeviceType(")
    assert "model=76" in lines[1] and "name='Казначей ФА'" in lines[1]
    assert main(["decode", "--protocol", "atol", "02 01 FC FD"]) == 0
    assert capsys.readouterr().out.strip() == "junk 02 01 fc fd"


def test_scan_finds_an_atol_register_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device = open_atol(tmp_path / "atol")
    try:
        with ServiceThread(device, Faults(), pty=tmp_path / "tty", protocol="atol") as thread:
            host = f"127.0.0.1:{thread.port}"
            capsys.readouterr()
            code = main(
                ["scan", str(tmp_path / "tty"), "--host", host, "--bauds", "115200", "--json"]
            )
            found = json.loads(capsys.readouterr().out)
            assert code == 0
            assert [hit["url"] for hit in found] == [str(tmp_path / "tty"), f"socket://{host}"]
            assert {hit["name"] for hit in found} == {"АТОЛ 30Ф"}
            assert found[0]["protocol"].startswith("atol")
    finally:
        device.close()


# -- issue 14: doctor on ATOL, --timeout, progress, scan's defaults ------------------------------


@pytest.mark.parametrize("protocol", ["atol", "auto"])
def test_doctor_checks_an_atol_register_with_atol(
    protocol: str, served_atol: ServiceThread, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    url = f"socket://127.0.0.1:{served_atol.port}"
    started = time.monotonic()
    code = main(["--protocol", protocol, "doctor", "--url", url, "--json"])
    checks = {check["check"]: check for check in json.loads(capsys.readouterr().out)}
    assert time.monotonic() - started < 15  # it failed after 58 s with "no answer to ENQ"
    assert code == 0, checks
    assert list(checks) == ["network", "protocol", "clock", "fn", "shift", "ofd"]
    assert "АТОЛ 30Ф" in checks["protocol"]["detail"]


def test_doctor_checks_an_atol_register_on_a_pty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device = open_atol(tmp_path / "atol")
    try:
        with ServiceThread(device, Faults(), pty=tmp_path / "tty", protocol="atol"):
            for protocol in ("atol", "auto"):
                capsys.readouterr()
                argv = ["--protocol", protocol, "doctor", "--url", str(tmp_path / "tty")]
                code = main([*argv, "--json"])
                checks = {check["check"]: check for check in json.loads(capsys.readouterr().out)}
                assert code == 0, checks  # Shtrih's ENQ got no answer for 58 s
                assert "atol" in checks["answers"]["detail"]
                assert "АТОЛ 30Ф" in checks["protocol"]["detail"]
    finally:
        device.close()


def test_doctor_with_the_wrong_protocol_says_which_one(
    served: ServiceThread, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    url = f"socket://127.0.0.1:{served.port}"
    assert main(["--protocol", "atol", "doctor", "--url", url, "--json"]) == 1
    checks = {check["check"]: check for check in json.loads(capsys.readouterr().out)}
    assert "--protocol shtrih" in checks["protocol"]["detail"]
    assert "--protocol auto" in checks["protocol"]["fix"]


def test_a_wrong_protocol_is_named_within_seconds(
    served: ServiceThread, served_atol: ServiceThread, capsys: pytest.CaptureFixture[str]
) -> None:
    for port, argv, right in (
        (served_atol.port, [], "--protocol atol"),  # 57 s, then "check the cable"
        (served.port, ["--protocol", "atol"], "--protocol shtrih"),  # 13 s, "outcome unknown"
    ):
        kkt = Kkt(f"socket://127.0.0.1:{port}", capsys)
        started = time.monotonic()
        err = kkt(*argv, "status", code=3)
        assert time.monotonic() - started < 10
        assert right in err and "--protocol auto" in err and "outcome unknown" not in err
        assert "kkt doctor" not in err  # the link is fine: the protocol is the way out


@pytest.mark.parametrize("bad", ["-1", "0", "nan", "soon"])
def test_timeout_must_be_a_positive_number(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["--url", "socket://127.0.0.1:1", "--timeout", bad, "status"]) == 2
    err = capsys.readouterr().err
    assert "--timeout" in err and "seconds" in err  # not "within its bound of -189 s"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_timeout_bounds_the_whole_command_with_progress_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts, never answers
        url = f"socket://127.0.0.1:{server.getsockname()[1]}"
        kkt = Kkt(url, capsys)
        started = time.monotonic()
        err = kkt("--timeout", "3", "status", "--json", code=3)
        assert time.monotonic() - started < 8  # one exchange alone took 11 s, a status 57 s
        assert "time limit of 3 s" in err
        terminal = _Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        assert main(["--url", url, "--timeout", "3", "status", "--json"]) == 3
    assert capsys.readouterr().out == ""  # nothing but JSON (here: nothing) on stdout
    shown = terminal.getvalue()
    assert "waiting for the register at" in shown and url in shown


def test_scan_tries_the_default_addresses_and_says_what_it_tried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kkt.tools import scan_cli  # raising=False: the names are new in this fix

    device = open_device(tmp_path / "state")
    try:
        with ServiceThread(device, Faults()) as thread:
            with socket.create_server(("127.0.0.1", 0)) as nobody:  # the "ATOL default": silent
                defaults = (f"127.0.0.1:{thread.port}", f"127.0.0.1:{nobody.getsockname()[1]}")
                monkeypatch.setattr(scan_cli, "DEFAULT_HOSTS", defaults, raising=False)
                no_ports = lambda: ["/dev/ttyNONE0"]  # noqa: E731
                monkeypatch.setattr(scan_cli, "serial_ports", no_ports, raising=False)
                capsys.readouterr()
                assert main(["scan", "--json"]) == 0
                found = json.loads(capsys.readouterr().out)
                assert [hit["url"] for hit in found] == [f"socket://{defaults[0]}"]
    finally:
        device.close()
    monkeypatch.setattr(scan_cli, "DEFAULT_HOSTS", ("127.0.0.1:1",), raising=False)
    assert main(["scan"]) == 3
    out = capsys.readouterr().out
    assert "tried:" in out and "/dev/ttyNONE0" in out and "socket://127.0.0.1:1" in out
