"""Password hashes, tokens and the users table."""

from __future__ import annotations

import pytest
from kkt.cloud import auth


def test_a_hash_verifies_its_password_only() -> None:
    stored = auth.hash_password("пароль 1")
    assert stored.startswith("scrypt$16384$8$1$")
    assert auth.verify_password("пароль 1", stored)
    assert not auth.verify_password("пароль 2", stored)
    assert auth.hash_password("пароль 1") != stored  # a fresh salt each time


@pytest.mark.parametrize(
    "stored", ["", "demo", "scrypt$1$8$1$AAAA$AAAA", "bcrypt$16384$8$1$AAAA$AAAA", "scrypt$x$8$1$$"]
)
def test_a_malformed_hash_is_refused_with_the_fix(stored: str) -> None:
    with pytest.raises(auth.PasswordFormatError, match="kkt cloud passwd"):
        auth.verify_password("demo", stored)


def test_users_verify_and_name_their_groups() -> None:
    users = auth.Users({"one": (auth.hash_password("s"), frozenset({"shop1"}))})
    assert users.verify("one", "s")
    assert not users.verify("one", "t")
    assert not users.verify("nobody", "")  # checked against a dummy hash, still refused
    assert users.groups("one") == frozenset({"shop1"}) and users.groups("nobody") == frozenset()
    assert dict(users) == {"one": frozenset({"shop1"})}


def test_tokens_are_random_and_hashed() -> None:
    first, second = auth.new_token(), auth.new_token()
    assert first != second and len(first) == 64
    assert auth.token_hash(first) != first and len(auth.token_hash(first)) == 64


def test_a_login_that_passed_is_remembered_for_a_while_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    stored = auth.hash_password("s")
    users = auth.Users({"one": (stored, frozenset({"shop1"}))}, clock=lambda: now[0])
    calls = []
    real = auth.verify_password

    def counting(password: str, hashed: str) -> bool:
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr(auth, "verify_password", counting)
    assert users.verify("one", "s") and users.verify("one", "s")
    assert calls == ["s"]  # the second check was remembered
    assert not users.verify("one", "t") and not users.verify("one", "t")
    assert calls == ["s", "t", "t"]  # a wrong password is checked every time
    now[0] += auth.REMEMBER_SECONDS + 1
    assert users.verify("one", "s")
    assert calls == ["s", "t", "t", "s"]
