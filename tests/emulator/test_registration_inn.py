"""The user's INN an emulated register is registered for, chosen when its state is created."""

from __future__ import annotations

from pathlib import Path

import pytest
from kkt.emulator.atol import open_device as open_atol
from kkt.emulator.shtrih import open_device
from kkt.emulator.state import TEST_INN
from kkt.protocols.ffd import rnm_is_valid
from kkt.tools.cli import main

import kkt

SBERBANK = "7707083893"  # a real company's INN: valid check digits
PERSON = "500100732259"  # 12 digits, valid check digits


@pytest.mark.parametrize(("opener", "protocol"), [(open_device, "shtrih"), (open_atol, "atol")])
def test_a_new_register_is_registered_for_the_inn_given(
    tmp_path: Path, opener: object, protocol: str
) -> None:
    state = tmp_path / "state"
    device = opener(state, inn=SBERBANK)  # type: ignore[operator]
    device.close()
    with kkt.connect(f"emulator:{state}", protocol=protocol) as register:
        registration = register.registration()
    assert registration.inn == SBERBANK
    # Reopened, it stays registered as it was: the INN only matters the first time.
    device = opener(state, inn=PERSON)  # type: ignore[operator]
    try:
        kept = device.fn.state.registration
        assert kept is not None and kept.inn == SBERBANK and kept.rnm == registration.rnm
        assert rnm_is_valid(registration.rnm, SBERBANK, device.settings.serial)
    finally:
        device.close()


def test_without_an_inn_the_register_has_the_test_inn(tmp_path: Path) -> None:
    device = open_device(tmp_path / "state")
    try:
        registration = device.fn.state.registration
        assert registration is not None and registration.inn == TEST_INN
    finally:
        device.close()


def test_an_invalid_inn_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="check digits"):
        open_device(tmp_path / "state", inn="7707083894")
    assert not (tmp_path / "state" / "fn.sqlite").exists()


def test_serve_refuses_an_invalid_inn_saying_what_an_inn_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    code = main(
        ["emulator", "serve", "--state", str(state), "--inn", "12345", "--tcp", "127.0.0.1:0"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--inn '12345' is not a valid INN" in err and "10 digits" in err
    assert not (state / "fn.sqlite").exists()
