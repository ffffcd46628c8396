"""Options for the whole suite, and the check that no test leaves anything running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.leaks import Snapshot


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kkt-url",
        default=None,
        help="URL of a real register for the tests marked 'hardware' (they are skipped without it)",
    )


@pytest.fixture
def kkt_url(request: pytest.FixtureRequest) -> str | None:
    value = request.config.getoption("--kkt-url")
    return str(value) if value else None


@pytest.fixture(autouse=True)
def system_health_check() -> Iterator[None]:
    """Fail a test that leaves behind a thread, a task of a loop still running, a socket, a pty
    or a child process (see `support.leaks`).  Autouse at the root: it is set up before, and torn
    down after, every fixture of the test (the suite has only function-scoped fixtures, so
    whatever a fixture opens, it must also have closed by then)."""
    before = Snapshot.take()
    yield
    leaks = before.leaks()
    if leaks:
        pytest.fail("the test left behind:\n  " + "\n  ".join(leaks), pytrace=False)
