"""The ``ofd`` bench case at its quick size: both figures, no errors, nothing left running."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest
from kkt.tools.bench import CASE_MODULES, Bench, ofd


@pytest.mark.timeout(120)
def test_ofd_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "ofd" in CASE_MODULES
    monkeypatch.setattr(Bench, "size", lambda self, quick, full: 5)
    threads = set(threading.enumerate())
    work = tmp_path / "work"
    work.mkdir()
    figures = {f.case: f for f in ofd.ofd_case(Bench(quick=True, work=work, cache=tmp_path))}
    assert set(figures) == {"ofd.docs_per_s", "ofd.docs_per_s.one_connection"}
    assert all(figure.value > 0 and figure.unit == "1/s" for figure in figures.values())
    assert multiprocessing.active_children() == []
    assert set(threading.enumerate()) <= threads
