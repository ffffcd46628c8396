"""The OFD soaks (`kkt.tools.bench.soak.ofd`) at sizes the suite affords: 40 documents through
every fault of the OFD link (the full soak: 1,000) and 2 kills of the register mid-exchange (the
full soak: 20).  Each raises `AssertionError` when a document is lost, stored twice or left
without its receipt, or when a fault never bit."""

from __future__ import annotations

from pathlib import Path

import pytest
from kkt.emulator.shtrih import ShtrihRegister
from kkt.tools.bench import Bench, Figure
from kkt.tools.bench.soak import ofd

pytestmark = pytest.mark.timeout(180)


def values(figures: list[Figure]) -> dict[str, float]:
    return {figure.case: figure.value for figure in figures}


def bench(tmp_path: Path) -> Bench:
    return Bench(quick=True, work=tmp_path, cache=tmp_path)


def test_faults_soak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ofd, "FAULTS_DOCUMENTS_QUICK", 40)
    monkeypatch.setattr(ofd, "FAULTS_EVERY", 6)  # every phase still reached
    figures = values(list(ofd.ofd_faults(bench(tmp_path))))
    assert figures["soak.ofd_faults.documents"] == figures["soak.ofd_faults.at_ofd"] == 40
    assert figures["soak.ofd_faults.sessions"] > 40  # documents sent again after the faults
    assert figures["soak.ofd_faults.problems"] == 0


def test_crash_soak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ofd, "CRASH_KILLS_QUICK", 2)
    figures = values(list(ofd.ofd_crash(bench(tmp_path))))
    assert figures["soak.ofd_crash.kills"] == 2
    assert figures["soak.ofd_crash.mid_exchange"] >= 1
    assert figures["soak.ofd_crash.problems"] == 0


def test_the_invariant_sees_a_document_missing_at_the_ofd(tmp_path: Path) -> None:
    """The check the soaks end with fails when the OFD lacks a document the FN formed."""
    ShtrihRegister.open(tmp_path / "register").close()  # one document: the registration report
    formed, problems = ofd.delivery_problems(tmp_path / "register", "shtrih", [])
    assert formed == 1
    assert any("the OFD lacks documents [1]" in problem for problem in problems)
    assert any("still wait in the FN" in problem for problem in problems)
