"""Passwords and tokens.

Passwords are kept as scrypt hashes (`hash_password`, what ``kkt cloud passwd`` prints) in the
form ``scrypt$N$r$p$salt$hash`` (salt and hash in base64), so the cost can grow later without
invalidating old entries.  `verify_password` compares in constant time and spends the same work
on an unknown login (`Users.verify`), so timing tells nothing about which logins exist.

Tokens (ATOL's getToken): `secrets.token_hex`, valid 24 hours; storage keeps only their SHA-256
(`token_hash`), so a copy of the state file holds no usable token.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta

TOKEN_LIFETIME = timedelta(hours=24)  # ATOL: "each for 24 h from issue"
# scrypt's cost: 16 MiB and ~50 ms a check on a laptop -- a getToken a day per client is cheap,
# a dictionary attack on a stolen config is not
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
REMEMBER_SECONDS = 300.0  # a login that passed skips scrypt this long (see `Users`)
REMEMBER_MAX = 1024
_PREFIX = "scrypt"


class PasswordFormatError(ValueError):
    """A stored password that is not one `hash_password` made."""


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        (_PREFIX, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest))
    )


def check_hash_format(stored: str) -> None:
    """Raise `PasswordFormatError` naming the fix when ``stored`` is no hash of ours."""
    _parse(stored)


def verify_password(password: str, stored: str) -> bool:
    n, r, p, salt, expected = _parse(stored)
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)


def new_token() -> str:
    return secrets.token_hex(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8", "surrogateescape"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=256 * 1024 * 1024,
        dklen=32,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.split("$")
    try:
        if len(parts) != 6 or parts[0] != _PREFIX:
            raise ValueError
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
        if n < 2 or n & (n - 1) or not 0 < r <= 64 or not 0 < p <= 16 or len(digest) != 32:
            raise ValueError
    except ValueError:
        raise PasswordFormatError(
            "not a password hash of ours (scrypt$N$r$p$salt$hash): make one with "
            "`kkt cloud passwd` and paste its output"
        ) from None
    return n, r, p, salt, digest


@functools.cache
def _dummy() -> str:
    """What an unknown login's password is checked against (see the module docstring)."""
    return hash_password("", salt=b"\0" * 16)


class Users(Mapping[str, frozenset[str]]):
    """login -> the groups it may use; `verify` checks a password.

    A login that passed is remembered for `REMEMBER_SECONDS` (in memory, keyed by an HMAC
    under a key of this process, never the password itself): many ATOL clients ask getToken
    before every request, and scrypt's ~50 ms each would cap the service at a few dozen
    requests a second per core.  A wrong password is never remembered: each costs a scrypt."""

    def __init__(
        self,
        entries: Mapping[str, tuple[str, frozenset[str]]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries = dict(entries)  # login -> (password hash, groups)
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._passed: dict[bytes, float] = {}  # tag -> until
        self._lock = threading.Lock()

    def verify(self, login: str, password: str) -> bool:
        entry = self._entries.get(login)
        tag = hmac.new(
            self._key, f"{login}\0{password}".encode("utf-8", "surrogateescape"), "sha256"
        ).digest()
        now = self._clock()
        with self._lock:
            if entry is not None and self._passed.get(tag, 0.0) > now:
                return True
        ok = verify_password(password, entry[0] if entry else _dummy())
        if ok and entry is not None:
            with self._lock:
                if len(self._passed) >= REMEMBER_MAX:  # stale ones go first, then all
                    self._passed = {t: u for t, u in self._passed.items() if u > now}
                    if len(self._passed) >= REMEMBER_MAX:
                        self._passed.clear()
                self._passed[tag] = now + REMEMBER_SECONDS
            return True
        return False

    def groups(self, login: str) -> frozenset[str]:
        entry = self._entries.get(login)
        return entry[1] if entry else frozenset()

    def __getitem__(self, login: str) -> frozenset[str]:
        return self._entries[login][1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
