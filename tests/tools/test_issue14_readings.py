"""Issue 14, defect 11: what the `kkt` command reads and shows (docs, doc, status, info, fn,
datetime set, -vv, plurals), against both emulated personalities."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kkt.tools.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "receipt.json"


class Kkt:
    def __init__(self, url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> None:
        self.url = url
        self.capsys = capsys
        self.extra = extra

    def run(self, *argv: str, code: int = 0) -> tuple[str, str]:
        self.capsys.readouterr()
        returned = main([*self.extra, "--url", self.url, *argv])
        out, err = self.capsys.readouterr()
        assert returned == code, f"kkt {' '.join(argv)} -> {returned}: {err or out}"
        return out, err

    def __call__(self, *argv: str, code: int = 0) -> str:
        return self.run(*argv, code=code)[0]

    def json(self, *argv: str) -> dict[str, object]:
        data = json.loads(self(*argv, "--json"))
        assert isinstance(data, dict)
        return data


@pytest.fixture(params=["shtrih", "atol"])
def kkt(request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Kkt:
    (tmp_path / "register").mkdir()  # made on first use, without the "new register" note
    return Kkt(f"emulator:{tmp_path / 'register'}", capsys, "--protocol", request.param)


@pytest.fixture
def shtrih(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Kkt:
    (tmp_path / "register").mkdir()  # made on first use, without the "new register" note
    return Kkt(f"emulator:{tmp_path / 'register'}", capsys)


def test_docs_past_the_last_document_prints_those_that_exist(kkt: Kkt) -> None:
    kkt("shift", "open")
    kkt("sell", str(EXAMPLE))
    out, err = kkt.run("docs", "2..99")
    assert [json.loads(line)["number"] for line in out.splitlines()] == [2, 3]
    assert "last document is 3" in err and "96 documents after it" in err
    out, err = kkt.run("docs", "50..60", code=2)
    assert out == "" and "last document is 3" in err and "kkt docs 1.." in err


def test_docs_prints_json_lines_as_its_help_says(kkt: Kkt) -> None:
    lines = kkt("docs", "1..").splitlines()  # no --json
    assert [json.loads(line)["number"] for line in lines] == [1]
    assert json.loads(lines[0])["typeName"] == "отчёт о регистрации"


def test_status_after_a_z_counts_the_shifts_receipts_not_its_documents(kkt: Kkt) -> None:
    kkt("shift", "open")
    kkt("sell", str(EXAMPLE))
    open_shift = kkt.json("status")["shift"]
    assert isinstance(open_shift, dict) and open_shift["receipts"] == 1
    kkt("shift", "close")
    shift = kkt.json("status")["shift"]
    assert isinstance(shift, dict)
    assert shift["open"] is False and shift["receipts"] == 1
    kkt("shift", "open")
    assert "#2 open, 0 receipts" in kkt("status")
    kkt("sell", str(EXAMPLE))
    assert "#2 open, 1 receipt," in kkt("status")


def test_inn_and_rnm_come_without_their_padding(kkt: Kkt) -> None:
    tlv = kkt.json("doc", "1")["tlv"]
    assert isinstance(tlv, dict)
    assert tlv["userInn"] == "7701000001"
    assert tlv["kktRegId"] == str(tlv["kktRegId"]).strip() and len(str(tlv["kktRegId"])) == 16


def test_plurals_in_human_output(shtrih: Kkt) -> None:
    assert "1 line printed" in shtrih("print", "hello")
    assert "2 lines printed" in shtrih("print", "a", "b")
    assert "1 documents" not in shtrih("fn") and "1 document" in shtrih("fn")


def test_doc_decodes_money_and_codes_for_people_and_keeps_json_raw(kkt: Kkt) -> None:
    kkt("shift", "open")
    kkt("sell", str(EXAMPLE))
    table = kkt("doc", "3")
    for shown in (
        "648.00 ₽",
        "199.00 ₽",
        "1 (приход)",
        "1 (ОСН)",
        "1 (НДС 20%)",
        "4 (полный расчет)",
    ):
        assert shown in table, shown
    assert "1 (товар)" in table and "41 (л)" in table and "64800" not in table
    tlv = kkt.json("doc", "3")["tlv"]
    assert isinstance(tlv, dict)
    assert tlv["totalSum"] == 64800 and tlv["operationType"] == 1  # JSON: kopecks and codes
    assert "3 (ОСН, УСН доход)" in kkt("doc", "1")  # 1062, a bitmask of tax systems


def test_money_and_codes_as_text() -> None:
    from kkt.protocols.ffd.view import text_value

    assert text_value(54300, 1020) == "543.00 ₽"
    assert text_value(5, 1043) == "0.05 ₽"
    assert text_value(3, 1062) == "3 (ОСН, УСН доход)"
    assert text_value(99, 1054) == "99 (unknown code)"
    assert text_value(7, 1040) == "7"  # a number, not money


def test_vv_adds_the_drivers_reasoning(shtrih: Kkt) -> None:
    _, err = shtrih.run("-v", "status")
    assert "kkt.register" not in err
    _, err = shtrih.run("-vv", "status")
    assert "kkt.register: GetShortStatus(password=30) -> ShortStatus(" in err
    assert "kkt.register: GetShiftParams(" in err
    _, err = shtrih.run("status")
    assert err == ""


def test_datetime_set_refuses_a_clock_the_fn_would_refuse_documents_at(kkt: Kkt) -> None:
    _, err = kkt.run("datetime", "set", "--to", "2020-01-01T00:00:00", code=1)
    assert "last document (1) is dated" in err and "refuses documents dated earlier" in err
    kkt("shift", "open")
    _, err = kkt.run("datetime", "set", "--to", "2099-01-01T00:00:00", code=1)
    assert "shift 1 open" in err and "kkt shift close" in err
    _, err = kkt.run("datetime", "set", "--to", "2020-01-01T00:00:00", code=1)
    assert "last document (2)" in err
    kkt("datetime", "set")  # now: inside the shift, after the last document
    assert kkt.json("sell", str(EXAMPLE))["fiscalDocumentNumber"] == 3  # sales still work


def test_register_set_datetime_raises_clock_refused(tmp_path: Path) -> None:
    import datetime as dt

    import kkt as driver
    from kkt.errors import ClockRefused

    with driver.connect(f"emulator:{tmp_path / 'r'}") as register:
        with pytest.raises(ClockRefused, match="refuses documents dated earlier"):
            register.set_datetime(dt.datetime(2020, 1, 1))
        register.open_shift()
        later = (register.clock() or dt.datetime.now()) + dt.timedelta(hours=25)
        with pytest.raises(ClockRefused, match="close the shift first"):
            register.set_datetime(later)
        register.close_shift()
        register.set_datetime(later)  # the shift is closed: any time after the last document
        assert register.clock() is not None and register.clock() >= later  # type: ignore[operator]


def test_info_and_fn_fill_fn_firmware_phase_and_line_width(kkt: Kkt) -> None:
    info = kkt.json("info")
    assert info["fnVersion"] == "kktkit-fn 1.2" and info["lineWidth"] == 48
    fn = kkt.json("fn")
    assert fn["phase"] == 3 and fn["phaseName"] == "fiscal mode"
    assert fn["version"] == "kktkit-fn 1.2" and fn["warnings"] == []


def test_atol_a4h_30h_and_33h_round_trip() -> None:
    import datetime as dt

    from kkt.protocols.atol import commands as c

    status = c.FnStatus(3, 0, False, True, 0, dt.datetime(2026, 12, 2, 7, 26), "9" * 16, 4)
    request = c.GetFnStatus(0)
    assert request.encode()[2:4] == b"\xa4\x30"
    assert isinstance(c.decode_request(request.encode()), c.GetFnStatus)
    reply = c.encode_answer(0xA4, status)
    assert len(reply) == 2 + 30  # 55 00, then the FN's 30-byte answer
    assert request.decode_answer(reply) == status
    version = c.FnVersion("kktkit-fn 1.2", True)
    assert c.GetFnVersion(0).encode()[2:4] == b"\xa4\x33"
    assert c.GetFnVersion(0).decode_answer(c.encode_answer(0xA4, version)) == version


def test_atol_emulator_a4h_10h_counts_a_closed_shifts_documents_as_the_fn(tmp_path: Path) -> None:
    """The FN's 10h (fact sheet fn-ffd-ofd.md §4.6): the open shift's receipts, a closed shift's
    documents -- as the Shtrih personality's FF40 answers."""
    from decimal import Decimal

    from kkt.protocols.atol import commands as c

    import kkt as driver
    from kkt import Item, Payments, Receipt, Vat

    with driver.connect(f"emulator:{tmp_path / 'r'}", protocol="atol") as register:
        register.open_shift()
        bread = Item("Хлеб", 4500, Decimal(1), Vat.VAT10)
        register.sell(Receipt(items=(bread,), payments=Payments(cash=4500)))
        assert register.raw(c.GetFnShift(0)).receipts == 1
        register.close_shift()
        assert register.raw(c.GetFnShift(0)).receipts == 3  # open, receipt, close
        assert register.shift_info().receipts == 1  # the driver reads the Z report's 1118
