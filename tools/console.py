"""Output of the ``kkt`` command: tables for a person, plain JSON for a script.

Every command builds one JSON-ready result and, for people, a way to show it.  With ``--json`` the
result is printed as it is (one object; ``docs`` prints one object per line) and nothing else goes
to standard output, so scripts can parse it; errors then go to standard error as one line.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from rich.console import Console as RichConsole
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

Rows = Iterable[tuple[str, Any]]


def _json_default(value: object) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot show {type(value).__name__} as JSON")


def to_json_text(data: Any, *, compact: bool = False) -> str:
    if compact:
        return json.dumps(data, ensure_ascii=False, default=_json_default, separators=(",", ":"))
    return json.dumps(data, ensure_ascii=False, default=_json_default, indent=2)


def show(value: Any) -> str:
    """One value as a person reads it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list | tuple):
        return ", ".join(show(v) for v in value) or "none"
    return str(value)


class Output:
    """Where a command's result goes: ``as_json`` picks the form."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        # Resolved at each call, so tests that capture sys.stdout see the output.
        self._width = 100

    @property
    def console(self) -> RichConsole:
        return RichConsole(file=sys.stdout, width=None if sys.stdout.isatty() else self._width)

    def result(self, data: Any, human: Callable[[RichConsole], None]) -> None:
        if self.as_json:
            print(to_json_text(data))
        else:
            human(self.console)

    def pairs(self, data: Any, title: str | None, rows: Rows) -> None:
        """``data``, or for a person ``rows`` as a table of names and values."""
        self.result(data, lambda console: console.print(pairs(title, rows)))

    def line(self, data: Any) -> None:
        """One JSON line (``docs``)."""
        print(to_json_text(data, compact=True), flush=True)

    @contextmanager
    def progress(self, total: int, what: str) -> Iterator[Callable[[], None]]:
        """A progress bar on standard error while a person watches; nothing otherwise."""
        if not sys.stderr.isatty():
            yield lambda: None
            return
        with Progress(console=RichConsole(file=sys.stderr), transient=True) as bar:
            task = bar.add_task(what, total=total)
            yield lambda: bar.advance(task)


def plural(count: int, one: str, many: str | None = None) -> str:
    """``1 document``, ``2 documents``, ``0 documents`` (English: one form for 1, another else)."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


PROGRESS_AFTER = 2.0  # seconds of waiting before a person is shown that something is going on


@contextmanager
def waiting(what: str, *, after: float = PROGRESS_AFTER) -> Iterator[Callable[[str], None]]:
    """A transient status line on standard error -- ``what``, a spinner and the time elapsed --
    once the block has run ``after`` seconds, and only when standard error is a terminal
    (nothing for scripts, nothing on standard output).  Yields ``update(text)`` for a new text."""
    if not sys.stderr.isatty():
        yield lambda text: None
        return
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=RichConsole(file=sys.stderr),
        transient=True,
    )
    task = bar.add_task(what, total=None)
    lock = threading.Lock()
    state = {"shown": False, "done": False}

    def show() -> None:
        with lock:
            if not state["done"]:
                bar.start()
                state["shown"] = True

    timer = threading.Timer(after, show)
    timer.daemon = True
    timer.start()
    try:
        yield lambda text: bar.update(task, description=text)
    finally:
        with lock:
            state["done"] = True
        timer.cancel()
        timer.join()
        if state["shown"]:
            bar.stop()


def pairs(title: str | None, rows: Rows) -> Table:
    """A two-column table of names and values."""
    table = Table(title=title, show_header=False, title_justify="left", box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        table.add_row(name, show(value))
    return table


def grid(title: str | None, header: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> Table:
    table = Table(title=title, title_justify="left")
    for name in header:
        table.add_column(name)
    for row in rows:
        table.add_row(*(show(value) for value in row))
    return table
