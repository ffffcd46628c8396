"""The ``kkt`` command as a newcomer meets it: what reaches the terminal, and how it reads
(session 30's review: logging, messages, help texts)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.clock import ManualClock
from kkt.emulator.faults import Faults
from kkt.emulator.personality import Personality
from kkt.emulator.shells import ServiceThread
from kkt.emulator.shtrih import open_device
from kkt.tools import cli, register_cli, scan_cli
from kkt.tools.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "receipt.json"


class ForgetTheClosingAnswer:
    """The register forgets the answer to the command that forms the next fiscal document once
    ``armed``: the driver's ENQ gets NAK, it logs a warning and settles the sale from the FN."""

    def __init__(self, register: Personality, faults: Faults) -> None:
        self.register = register
        self.faults = faults
        self.armed = False

    def execute(self, payload: bytes) -> bytes:
        before = self.register.fn.state.last_number
        answer = self.register.execute(payload)
        if self.armed and self.register.fn.state.last_number != before:
            self.armed = False
            self.faults.configure(lose_answers=1)  # this very answer (checked after execute)
        return answer

    def quick(self, payload: bytes) -> bool:
        return self.register.quick(payload)


@pytest.fixture
def forgetful(tmp_path: Path) -> Iterator[tuple[str, ForgetTheClosingAnswer]]:
    device = open_device(tmp_path / "served")
    faults = Faults()
    box = ForgetTheClosingAnswer(device, faults)
    try:
        with ServiceThread(box, faults) as thread:
            yield f"socket://127.0.0.1:{thread.port}", box
    finally:
        device.close()


@pytest.mark.parametrize(
    ("flags", "shown"),
    [((), False), (("-v",), True)],
)
def test_a_recovered_fault_is_no_news_without_v(
    forgetful: tuple[str, ForgetTheClosingAnswer],
    capsys: pytest.CaptureFixture[str],
    flags: tuple[str, ...],
    shown: bool,
) -> None:
    url, box = forgetful
    assert main(["--url", url, "shift", "open", "--json"]) == 0
    box.armed = True
    capsys.readouterr()
    assert main([*flags, "--url", url, "sell", str(EXAMPLE), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["fiscalDocumentNumber"] == 3  # settled from the FN: sold once
    # The driver says what happened and what it did (INFO: the sale went on fine).
    news = [line for line in err.splitlines() if "did not come through the line" in line]
    if shown:
        assert len(news) == 1 and news[0].startswith("kkt: info: the closing command's answer")
    else:
        assert err == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 h 00 min"),
        (59, "0 h 00 min"),
        (3_900, "1 h 05 min"),
        (-540, "-0 h 09 min"),
        (-3_900, "-1 h 05 min"),
        (-30, "0 h 00 min"),
    ],
)
def test_shift_ages_of_either_sign(seconds: int, text: str) -> None:
    assert register_cli._hours(dt.timedelta(seconds=seconds)) == text


def test_status_of_a_shift_opened_after_the_clock_now_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = ManualClock(dt.datetime(2026, 12, 3, 12, 0, 0))
    device = open_device(tmp_path / "clocked", clock=clock)
    try:
        with ServiceThread(device, Faults()) as thread:
            url = f"socket://127.0.0.1:{thread.port}"
            assert main(["--url", url, "shift", "open"]) == 0
            clock.advance(dt.timedelta(seconds=-540))  # `ctl clock advance -540`
            capsys.readouterr()
            assert main(["--url", url, "status", "--json"]) == 0
            assert json.loads(capsys.readouterr().out)["shift"]["ageHours"] == -0.15
            assert main(["--url", url, "status"]) == 0
            out = capsys.readouterr().out
    finally:
        device.close()
    assert "-0 h 09 min old" in out and "-1 h" not in out


def test_doc_0_is_refused_before_anything_is_sent(capsys: pytest.CaptureFixture[str]) -> None:
    # nothing listens on port 1: a command that tried to connect would exit 3
    assert main(["--url", "socket://127.0.0.1:1", "doc", "0"]) == 2
    err = capsys.readouterr().err
    assert "from 1; nothing was sent" in err and "usage: kkt doc" in err


def test_doc_past_the_last_names_the_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"emulator:{tmp_path / 'register'}"
    assert main(["--url", url, "doc", "99"]) == 2
    note, err = capsys.readouterr().err.strip().splitlines()
    assert note.startswith(f"kkt: a new emulated register in {tmp_path / 'register'} (")
    assert err == (
        "kkt doc: 99: no such document yet: the FN's last document is 1 "
        "(`kkt docs 1..` lists them all)"
    )
    assert main(["--url", url, "doc", "1", "--json"]) == 0  # the last one still reads


def test_sell_verify_json_says_verified(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"emulator:{tmp_path / 'register'}"
    assert main(["--url", url, "shift", "open", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is False
    assert main(["--url", url, "sell", str(EXAMPLE), "--verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True
    assert main(["--url", url, "sell", str(EXAMPLE), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is False
    correction = tmp_path / "correction.json"
    correction.write_text('{"type": "sellCorrection", "payments": [{"type": "cash", "sum": 10}]}')
    assert main(["--url", url, "correction", str(correction), "--verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True


def test_cash_out_of_more_than_the_drawer_says_how_much_it_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"emulator:{tmp_path / 'register'}"
    assert main(["--url", url, "shift", "open"]) == 0
    assert main(["--url", url, "cash", "in", "150.50"]) == 0
    capsys.readouterr()
    assert main(["--url", url, "cash", "out", "999999"]) == 1
    err = capsys.readouterr().err
    assert "not enough cash" in err and "the drawer holds 150.50 ₽, 999999.00 ₽ asked for" in err
    assert main(["--url", url, "cash", "out", "150.50"]) == 0  # all of it may go


def test_the_tape_of_a_register_without_a_printer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    open_device(tmp_path / "fiscal-only", fiscal_only=True).close()
    assert main(["emulator", "ctl", "--state", str(tmp_path / "fiscal-only"), "tape"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "has no printer" in err and "kkt docs 1.." in err
    open_device(tmp_path / "printing").close()  # a printer: the running server is asked
    assert main(["emulator", "ctl", "--state", str(tmp_path / "printing"), "tape"]) == 2
    assert "no emulator is running" in capsys.readouterr().err


def _doctor_clock(url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    main(["doctor", "--url", url, "--json"])
    checks = {check["check"]: check for check in json.loads(capsys.readouterr().out)}
    return checks["clock"]


def test_doctors_clock_advice_is_what_datetime_set_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = ManualClock(dt.datetime.now().replace(microsecond=0))
    device = open_device(tmp_path / "clocked", clock=clock)
    try:
        with ServiceThread(device, Faults()) as thread:
            url = f"socket://127.0.0.1:{thread.port}"
            assert main(["--url", url, "shift", "open"]) == 0
            # a day ahead, no document since: this computer's time is inside the shift
            clock.advance(dt.timedelta(seconds=90_000))
            check = _doctor_clock(url, capsys)
            assert (
                not check["ok"] and check["fix"] == "kkt datetime set (inside shift 1's 24 hours)"
            )
            assert main(["--url", url, "datetime", "set"]) == 0
            assert _doctor_clock(url, capsys)["ok"]
            # two hours ahead and a sale made then: the clock cannot go back past it
            clock.advance(dt.timedelta(hours=2))
            assert main(["--url", url, "sell", str(EXAMPLE)]) == 0
            fix = _doctor_clock(url, capsys)["fix"]
            assert "the FN's last document (3) is dated" in fix
            assert main(["--url", url, "datetime", "set"]) == 1  # as the advice says
            to = fix.split("--to ")[1].split("`")[0]
            assert main(["--url", url, "datetime", "set", "--to", to]) == 0
    finally:
        device.close()


def test_doctor_at_the_emulators_address_suggests_the_emulator(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "127.0.0.1:7778" in scan_cli.DEFAULT_HOSTS  # what `kkt emulator serve` takes
    # The emulator's default address stood in for by port 1 (nothing listens there; 7778 may be
    # another program's on a shared machine).
    monkeypatch.setattr(scan_cli, "DEFAULT_HOSTS", ("127.0.0.1:1",))
    assert main(["doctor", "--url", "socket://127.0.0.1:1", "--json"]) == 1
    (network,) = json.loads(capsys.readouterr().out)
    assert "7778" in network["fix"]  # the Shtrih network port, as before
    assert "127.0.0.1:1 is where `kkt emulator serve --state DIR` listens" in network["fix"]
    monkeypatch.setattr(scan_cli, "DEFAULT_HOSTS", ())
    assert main(["doctor", "--url", "socket://127.0.0.1:1", "--json"]) == 1
    assert "kkt emulator serve" not in capsys.readouterr().out


def test_a_new_emulated_register_is_announced_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"emulator:{tmp_path / 'typo'}"
    assert main(["--url", url, "status", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["mode"] == 4  # made, registered, and the JSON untouched
    assert err == (
        f"kkt: a new emulated register in {tmp_path / 'typo'} (there was no such directory; "
        "check the path if you meant an existing register)\n"
    )
    assert main(["--url", url, "status", "--json"]) == 0
    assert capsys.readouterr().err == ""  # the second time it is the same register


def test_an_atol_online_request_is_named_and_sent_where_it_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"emulator:{tmp_path / 'register'}"
    assert main(["--url", url, "shift", "open"]) == 0
    capsys.readouterr()
    online = ROOT / "examples" / "atol-online-sell.json"
    assert main(["--url", url, "sell", str(online)]) == 2
    err = capsys.readouterr().err
    assert "is an ATOL Online request (external_id and receipt)" in err
    assert "kkt cloud serve" in err and "libfptr JSON task" in err
    assert "unknown field" not in err
    assert main(["--url", url, "fn", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lastDocument"] == 2  # nothing was sold


def test_allowed_fields_do_not_offer_the_refused_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    task["items"][0]["colour"] = "red"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(task, ensure_ascii=False), encoding="utf-8")
    url = f"emulator:{tmp_path / 'register'}"
    assert main(["--url", url, "shift", "open"]) == 0
    capsys.readouterr()
    assert main(["--url", url, "sell", str(bad)]) == 2
    err = capsys.readouterr().err
    allowed, _, refused = err.partition("known but not supported yet:")
    assert "items[0].colour: unknown field" in allowed and '"name"' in allowed
    for name in ("agentInfo", "markingCode", "nomenclatureCode"):
        assert f'"{name}"' not in allowed and f'"{name}"' in refused


def test_a_line_longer_than_the_paper_is_wrapped_and_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device = open_device(tmp_path / "printing")
    long = " ".join(f"word{n:02d}" for n in range(16))  # 16 x 6 + 15 = 111 characters
    try:
        with ServiceThread(device, Faults()) as thread:
            url = f"socket://127.0.0.1:{thread.port}"
            capsys.readouterr()
            assert main(["--url", url, "print", long, "short", "--json"]) == 0
            data = json.loads(capsys.readouterr().out)
            assert main(["--url", url, "print", long]) == 0
            said = capsys.readouterr().out
        tape = [line.rstrip() for line in device.tape()]
    finally:
        device.close()
    width = data["lineWidth"]
    assert width == device.line_width and data["wrapped"] == 1
    printed = tape[: data["printed"]]
    assert " ".join(printed[:-1]) == long and printed[-1] == "short"  # nothing lost
    assert all(len(line) <= width for line in printed)
    assert f"1 line longer than the register's {width} characters wrapped" in said


def _commands(
    parser: argparse.ArgumentParser, path: str = "kkt"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, f"{path} {name}")


def test_every_command_describes_itself_and_its_arguments() -> None:
    missing = []
    for path, parser in _commands(build_parser()):
        if not parser.description:
            missing.append(f"{path}: no description")
        for action in parser._actions:
            subcommands = isinstance(action, argparse._SubParsersAction)  # each has its help
            if not action.option_strings and not action.help and not subcommands:
                missing.append(f"{path} {action.dest}: no help")
            if action.option_strings and action.default not in (None, False, [], 0, "==SUPPRESS=="):
                text = action.help or ""
                if "default" not in text and action.dest not in ("help", "version"):
                    missing.append(f"{path} {action.option_strings[0]}: no default shown")
    assert missing == []


def test_mark_check_usage_names_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mark", "check", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: kkt mark check ")


def test_power_loss_says_what_happened(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "served"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kkt",
            "emulator",
            "serve",
            "--state",
            str(state),
            "--tcp",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = ""
        while not line.startswith("control unix"):
            line = child.stdout.readline()
            assert line, "the emulator ended early"
        capsys.readouterr()
        assert main(["emulator", "ctl", "--state", str(state), "power-loss"]) == 0
        said = capsys.readouterr().out
        assert said == (
            "power cut and back: 0 open connections dropped; an open receipt or unfinished "
            "print is lost, the FN's archive kept\n"
        )
        assert main(["emulator", "stop", "--state", str(state)]) == 0
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_the_listed_help_is_each_commands_own() -> None:
    full = {
        name: parser.description or ""
        for path, parser in _commands(build_parser())
        if path.startswith("kkt ") and " " not in (name := path.removeprefix("kkt "))
    }
    listed = {name: text for _, names in cli.GROUPS for name, text in names.items()}
    assert set(listed) == set(full)
    actions = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    helps = {choice.dest: choice.help for choice in actions._choices_actions}
    assert helps == listed  # what `kkt --help` lists unloaded is what the module says


def test_a_command_loads_only_its_own_module() -> None:
    probe = (
        "import sys; from kkt.tools.cli import main; main(sys.argv[1:]); "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('kkt.tools.', "
        "'kkt.cloud', 'kkt.render', 'rich')))))"
    )

    def loaded(*argv: str) -> set[str]:
        run = subprocess.run(
            [sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120
        )
        return set(run.stdout.split("\n")[-2].split())

    version = loaded("--version")
    assert not any(
        name.startswith(("kkt.tools.register", "kkt.render", "rich")) for name in version
    )
    status = loaded("--url", "socket://127.0.0.1:1", "status")  # exit 3: nothing listens
    assert "kkt.tools.register_cli" in status
    assert not any(
        name.startswith(
            ("kkt.tools.emulator_cli", "kkt.tools.cloud_cli", "kkt.cloud", "kkt.tools.scan")
        )
        for name in status
    )
    # argparse's abbreviation (--ur for --url) hides the command's name from the first guess
    assert "kkt.tools.register_cli" in loaded("--ur", "socket://127.0.0.1:1", "status")
