"""The error of a wrong command line or input file (exit code 2: nothing was sent).

Its own small module: ``kkt``'s main catches it for every command without importing the
commands' modules (they load only when their command runs)."""

from __future__ import annotations

from kkt.errors import KktError


class UsageError(KktError):
    """The command line or its input file is wrong (exit code 2)."""
