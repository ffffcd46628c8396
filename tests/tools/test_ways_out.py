"""Every refusal names the cause and a command that gets the user out (issue 14, defects 4, 7, 8).

Paper ending mid-receipt (`kkt continue`), an OFD backlog older than 30 days (`kkt emulator ctl
... ofd deliver`, `doctor`'s OFD check), the misleading codes (ATOL D4h without a shift, Shtrih 6Bh
with the cover open, 33h/19h/E7h for a receipt the registration refuses), and bad numbers on the
command line (`--url` without a scheme, `--baud`, `ctl` probabilities).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.atol import open_device as open_atol
from kkt.emulator.control import ControlError
from kkt.emulator.faults import Faults
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device
from kkt.tools.cli import main
from support.served import Served, serve

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "receipt.json"
DAY = 86_400


@pytest.fixture(params=["shtrih", "atol"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    yield from serve(tmp_path, request.param)


@pytest.fixture
def shtrih(tmp_path: Path) -> Iterator[Served]:
    yield from serve(tmp_path, "shtrih")


# -- 4: dead ends ---------------------------------------------------------------------------------


def test_paper_ending_mid_receipt_names_kkt_continue_which_finishes_it(
    shtrih: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    shtrih.kkt(capsys, "shift", "open")
    shtrih.device.printer.paper_left = 3  # the roll ends three lines into the receipt
    shtrih.kkt(capsys, "sell", str(EXAMPLE))  # fiscalized; the printout waits
    shtrih.device.printer.paper = False
    refused = shtrih.kkt(capsys, "print", "x", code=1)
    assert "kkt continue" in refused and "B0h" not in refused
    assert "kkt continue" in shtrih.kkt(capsys, "continue", code=1)  # still no paper
    shtrih.device.printer.paper = True
    assert "printing continued" in shtrih.kkt(capsys, "continue")
    shtrih.kkt(capsys, "print", "x")
    assert shtrih.device.tape()[-1].strip() == "x"


def test_an_ofd_backlog_past_30_days_says_how_out_and_ofd_deliver_gets_out(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    served.kkt(capsys, "shift", "open")
    served.kkt(capsys, "sell", str(EXAMPLE))
    served.ctl(action="clock", advance=31 * DAY)
    refused = served.kkt(capsys, "shift", "close", code=1)
    assert "ofd deliver" in refused and "OFD" in refused
    assert "replace" not in refused
    delivered = served.ctl(action="ofd", deliver="all")
    assert delivered == {"ok": True, "delivered": 3, "unsent": 0}
    served.kkt(capsys, "shift", "close")
    served.kkt(capsys, "shift", "open")
    served.kkt(capsys, "sell", str(EXAMPLE))


def test_doctor_fails_the_ofd_check_of_a_blocked_queue_with_its_fix(
    shtrih: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    shtrih.kkt(capsys, "shift", "open")
    shtrih.kkt(capsys, "sell", str(EXAMPLE))
    shtrih.ctl(action="clock", advance=31 * DAY)
    capsys.readouterr()
    assert main(["doctor", "--url", shtrih.url, "--json"]) == 1
    checks = {check["check"]: check for check in json.loads(capsys.readouterr().out)}
    assert not checks["ofd"]["ok"], checks["ofd"]
    assert "31 days" in checks["ofd"]["detail"] and "ofd deliver" in checks["ofd"]["fix"]
    assert "replacement" not in (checks["fn"]["fix"] or "")  # the FN itself is fine
    shtrih.ctl(action="ofd", deliver="all")
    assert main(["doctor", "--url", shtrih.url, "--json"]) == 1  # the clock and shift still
    checks = {check["check"]: check for check in json.loads(capsys.readouterr().out)}
    assert checks["ofd"]["ok"] and checks["fn"]["ok"]


def test_doctor_warns_before_the_block(shtrih: Served, capsys: pytest.CaptureFixture[str]) -> None:
    shtrih.kkt(capsys, "shift", "open")
    shtrih.ctl(action="clock", advance=27 * DAY)
    capsys.readouterr()
    main(["doctor", "--url", shtrih.url, "--json"])
    checks = {check["check"]: check for check in json.loads(capsys.readouterr().out)}
    assert not checks["ofd"]["ok"] and "27 days" in checks["ofd"]["detail"]


def test_the_ofd_action_checks_its_count(shtrih: Served) -> None:
    shtrih.device.model.open_shift([])
    assert shtrih.ctl(action="ofd", deliver=1) == {"ok": True, "delivered": 1, "unsent": 1}
    for bad in (0, -1, "some", True):
        with pytest.raises(ControlError, match="deliver"):
            shtrih.ctl(action="ofd", deliver=bad)


# -- 7: messages that mislead ---------------------------------------------------------------------


def test_atol_without_a_shift_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    url = f"emulator:{tmp_path / 'atol'}"
    assert main(["--url", url, "--protocol", "atol", "sell", str(EXAMPLE)]) == 1
    err = capsys.readouterr().err
    assert "no shift is open" in err and "kkt shift open" in err
    assert "call service" not in err


def test_shtrih_with_the_cover_open_says_cover(
    shtrih: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    shtrih.kkt(capsys, "shift", "open")
    shtrih.device.printer.cover_open = True
    refused = shtrih.kkt(capsys, "sell", str(EXAMPLE), code=1)
    assert "cover is open" in refused and "close the cover" in refused
    # refused before the FN formed the receipt: the way out is to sell it again, not to continue
    assert "sell it again" in refused and "kkt continue" not in refused
    shtrih.device.printer.cover_open = False
    shtrih.kkt(capsys, "sell", str(EXAMPLE))


def _receipt(tmp_path: Path, **changes: Any) -> str:
    task = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    for name, value in changes.items():
        if value is None:
            task.pop(name)
        else:
            task[name] = value
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(task, ensure_ascii=False), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
def test_a_receipt_the_registration_refuses_names_the_field(
    protocol: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opener = open_atol if protocol == "atol" else open_device
    opener(tmp_path / "fiscal-only", fiscal_only=True).close()
    url = f"emulator:{tmp_path / 'fiscal-only'}"

    def kkt(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["--url", url, "--protocol", protocol, *argv])
        return code, capsys.readouterr().err

    assert kkt("shift", "open")[0] == 0
    code, err = kkt("sell", _receipt(tmp_path, clientInfo=None))
    assert code == 1 and "emailOrPhone" in err and "1008" in err, err
    assert "check lengths" not in err
    code, err = kkt("sell", _receipt(tmp_path, taxationType="patent"))
    assert code == 1 and "taxationType" in err and "osn" in err, err
    assert "check lengths" not in err
    assert kkt("sell", str(EXAMPLE))[0] == 0  # the receipts left nothing behind


# -- 8: bad numbers and addresses -----------------------------------------------------------------


def test_an_address_without_its_scheme_suggests_socket(
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    assert main(["--url", "127.0.0.1:7778", "status"]) == 3
    assert "did you mean socket://127.0.0.1:7778" in capsys.readouterr().err


@pytest.mark.parametrize("baud", ["-5", "0", "fast"])
def test_a_bad_baud_rate_is_a_usage_error(baud: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["--url", "/dev/ttyUSB0", "--baud", baud, "status"]) == 2
    err = capsys.readouterr().err
    assert "--baud" in err and "serial speed" in err and "/dev/ttyUSB0" not in err


@pytest.mark.parametrize(
    "words",
    [
        ["fault", "wire", "--drop", "2"],
        ["fault", "wire", "--corrupt", "-0.1"],
        ["fault", "wire", "--drop", "nan"],
        ["fault", "wire", "--delay", "-1"],
        ["fault", "drop-answer", "-1"],
        ["paper", "after", "0"],
        ["ofd", "deliver", "0"],
        ["clock", "advance", "inf"],
    ],
)
def test_ctl_refuses_numbers_out_of_range(
    words: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["emulator", "ctl", "--state", str(tmp_path), *words]) == 2
    err = capsys.readouterr().err
    assert "from" in err or ">=" in err, err
    assert "no emulator is running" not in err  # refused before looking for one


def test_the_control_channel_refuses_impossible_faults(shtrih: Served) -> None:
    for request in ({"drop": 2}, {"corrupt": -1}, {"lose_rate": 1.5}, {"hang_up": -2}):
        with pytest.raises(ControlError, match="fault"):
            shtrih.ctl(action="fault", **request)
    assert shtrih.ctl(action="fault", drop=0.25)["faults"]["drop"] == 0.25


def test_doctor_counts_the_ofd_age_by_the_register_clock(
    shtrih: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    # doctor's OFD age is the register's (the FN counts by it), not this computer's
    shtrih.kkt(capsys, "shift", "open")
    shtrih.ctl(action="clock", advance=5 * DAY)
    capsys.readouterr()
    main(["doctor", "--url", shtrih.url, "--json"])
    checks = {check["check"]: check for check in json.loads(capsys.readouterr().out)}
    ofd = checks["ofd"]
    assert "5 days" in ofd["detail"] and "OFD timeout" in ofd["detail"]  # the FN's own flag
    assert not ofd["ok"] and "ofd deliver" in ofd["fix"]


def test_atol_with_the_cover_open_says_cover(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device = open_atol(tmp_path / "atol")
    try:
        with ServiceThread(device, Faults(), protocol="atol") as thread:
            atol = Served(device, thread, "atol")
            atol.kkt(capsys, "shift", "open")
            device.printer.cover_open = True
            refused = atol.kkt(capsys, "sell", str(EXAMPLE), code=1)
            assert "cover is open" in refused and "close the cover" in refused
            assert "sell it again" in refused and "kkt continue" not in refused
            device.printer.cover_open = False
            atol.kkt(capsys, "sell", str(EXAMPLE))
    finally:
        device.close()


def test_doctor_counts_in_words(shtrih: Served, capsys: pytest.CaptureFixture[str]) -> None:
    # issue 14 (11): "1 documents" -- the one unsent registration report, a day old
    shtrih.ctl(action="clock", advance=DAY)
    capsys.readouterr()
    main(["doctor", "--url", shtrih.url, "--json"])
    checks = {check["check"]: check for check in json.loads(capsys.readouterr().out)}
    assert checks["ofd"]["detail"].startswith("1 document unsent"), checks["ofd"]["detail"]
    assert "for 1 day" in checks["ofd"]["detail"]


def test_no_paper_before_the_receipt_forms_says_sell_it_again(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    # A paper end refuses the sale before the FN forms anything: `kkt continue` would finish
    # nothing; the way out is to load paper and sell again (a second review's finding).
    served.kkt(capsys, "shift", "open")
    before = served.device.fn.state.last_number
    served.device.printer.paper = False
    refused = served.kkt(capsys, "sell", str(EXAMPLE), code=1)
    assert "not fiscalized" in refused and "sell it again" in refused
    assert "kkt continue" not in refused
    assert served.device.fn.state.last_number == before  # indeed nothing was formed
    served.device.printer.paper = True
    served.kkt(capsys, "sell", str(EXAMPLE))
    assert served.device.fn.state.last_number == before + 1
