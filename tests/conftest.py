"""Options for the whole suite."""

from __future__ import annotations

import pytest


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
