"""`TokenCache`: which login a token belongs to, remembered between requests.

Every API request names its token; asking storage each time cost a database read and a hop to
a worker thread per request -- a fifth of the HTTP side's time under load.  Tokens are never
revoked, only outlived (24 h), so a login once found stays right until the token's expiry; the
cache keeps each answer no longer than storage has confirmed it:

* a token this process issued is remembered with its exact expiry (`issued`);
* a token found in storage (issued by another instance, or before a restart) is asked for at
  ``now + CONFIRM_SECONDS`` first: valid then, it is remembered until then; not, it is asked
  for at ``now`` and not remembered (it ends within that window: ask storage each time).

Unknown tokens are never remembered (a token made later elsewhere must be found).  The cache
holds at most `MAX_TOKENS`; past that it starts again empty (a day's logins are few).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

CONFIRM_SECONDS = 60.0
MAX_TOKENS = 10_000

Lookup = Callable[[str, datetime], "str | None"]  # storage.token_login


class TokenCache:
    def __init__(self, lookup: Lookup, *, confirm: float = CONFIRM_SECONDS) -> None:
        self._lookup = lookup
        self._confirm = timedelta(seconds=confirm)
        self._known: dict[str, tuple[str, datetime]] = {}  # token hash -> (login, valid until)
        self._lock = threading.Lock()

    def known(self, token_hash: str, now: datetime) -> str | None:
        """The login of a remembered token still valid at ``now``; None: ask `lookup`."""
        with self._lock:
            found = self._known.get(token_hash)
            if found is not None and now >= found[1]:
                del self._known[token_hash]
                found = None
        return found[0] if found is not None else None

    def issued(self, token_hash: str, login: str, expires_at: datetime) -> None:
        """A token this process stored: valid until ``expires_at``."""
        self._remember(token_hash, login, expires_at)

    def lookup(self, token_hash: str, now: datetime) -> str | None:
        """The token's login at ``now`` from storage (blocking: call it off the event loop),
        remembered as the module says."""
        later = now + self._confirm
        login = self._lookup(token_hash, later)
        if login is not None:
            self._remember(token_hash, login, later)
            return login
        return self._lookup(token_hash, now)

    def login(self, token_hash: str, now: datetime) -> str | None:
        """`known`, else `lookup`."""
        return self.known(token_hash, now) or self.lookup(token_hash, now)

    def _remember(self, token_hash: str, login: str, until: datetime) -> None:
        with self._lock:
            if len(self._known) >= MAX_TOKENS:
                self._known.clear()
            self._known[token_hash] = (login, until)
