"""Fixtures of the cloud service's tests.

`cloud_server(state, emulated=N, **server_options)` starts the service with its HTTP on
127.0.0.1:0 and returns a `support.cloud.CloudServer` (``.url``, ``.service``, ``.client``,
``.token()``, ``.post()``); everything it started stops when the test ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cloud import CloudServer, running
from support.postgres import postgres_cluster, postgres_dsn  # noqa: F401  (fixtures)


@pytest.fixture
def cloud_server(tmp_path: Path) -> Iterator[Callable[..., CloudServer]]:
    with contextlib.ExitStack() as stack:

        def start(state: Path | None = None, *, emulated: int = 0, **options: Any) -> CloudServer:
            return stack.enter_context(
                running(state or tmp_path / "state", emulated=emulated, **options)
            )

        yield start
