"""The service's configuration: a TOML file (`load_config`) or the demo (`demo_config`).

```toml
[server]
listen = "127.0.0.1:8080"        # HOST:PORT; port 0 picks a free one
duplicates = "strict"            # or "atol": a repeated external_id -> code 33 + uuid, HTTP 400
max_queue = 10000                # requests waiting (all groups) before 429 + Retry-After
max_body = 524288                # bytes; a bigger body -> 413
callback_secret = "…"            # HMAC key of the callbacks (default: made once, kept in the state)

[[groups]]
code = "shop1"                   # the ATOL group_code in the URLs
inn = "7700000000"               # optional: else read from the group's registers
email = "shop@example.org"       # company e-mail (1117)
payment_address = "shop.example.org"
sno = "osn"                      # optional

[[users]]
login = "shop1"
password = "scrypt$16384$8$1$…"  # made by `kkt cloud passwd`, never the password itself
groups = ["shop1"]

[[registers]]
url = "socket://10.0.0.5:7778"
protocol = "shtrih"              # shtrih | atol | auto
group = "shop1"
name = "KKT-1"                   # optional: default "<group>-<n>"
verify = true                    # optional: read each receipt back (a serial line; see below)

[emulated]                       # optional: emulated registers started by the service
count = 2
protocol = "shtrih"              # shtrih | atol | mixed
group = "shop1"
```

``verify`` makes the register read each receipt's document back and compare it with the request
(`kkt.connect(..., verify=True)`): for a register on a serial line, whose checksum lets some damage
through.  A receipt read back otherwise than sold is held for the operator, never reported done.

Every mistake is a `ConfigError` naming the file, the key and the fix.  Without a file the
service runs the demo: group ``demo``, login ``demo`` with password ``demo``, emulated registers
only (a demo password must never guard real registers).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .auth import PasswordFormatError, Users, check_hash_format, hash_password

DUPLICATES = ("strict", "atol")
PROTOCOLS = ("shtrih", "atol", "auto")
EMULATED_PROTOCOLS = ("shtrih", "atol", "mixed")
SNO = ("osn", "usn_income", "usn_income_outcome", "envd", "esn", "patent")
DEMO = "demo"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
DEFAULT_MAX_QUEUE = 10_000
DEFAULT_MAX_BODY = 512 * 1024  # ATOL's largest receipt (100 items, every field) is ~100 KB


class ConfigError(Exception):
    """A configuration mistake: the message names the file, the key and the fix."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    duplicates: str = "strict"
    max_queue: int = DEFAULT_MAX_QUEUE
    max_body: int = DEFAULT_MAX_BODY
    callback_secret: str | None = None


@dataclass(frozen=True, slots=True)
class GroupConfig:
    code: str
    inn: str | None = None
    email: str | None = None
    payment_address: str | None = None
    sno: str | None = None


@dataclass(frozen=True, slots=True)
class UserConfig:
    login: str
    password_hash: str
    groups: frozenset[str]


@dataclass(frozen=True, slots=True)
class RegisterConfig:
    url: str
    protocol: str
    group: str
    name: str
    verify: bool = False


@dataclass(frozen=True, slots=True)
class EmulatedConfig:
    count: int
    protocol: str = "shtrih"
    group: str = DEMO


@dataclass(frozen=True, slots=True)
class CloudConfig:
    server: ServerConfig = field(default_factory=ServerConfig)
    groups: tuple[GroupConfig, ...] = ()
    users: tuple[UserConfig, ...] = ()
    registers: tuple[RegisterConfig, ...] = ()
    emulated: EmulatedConfig | None = None
    demo: bool = False  # the built-in demo: its login is printed at start
    source: str = "(built-in demo)"

    def user_table(self) -> Users:
        return Users({u.login: (u.password_hash, u.groups) for u in self.users})

    def group(self, code: str) -> GroupConfig | None:
        return next((g for g in self.groups if g.code == code), None)

    def with_overrides(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        duplicates: str | None = None,
        max_queue: int | None = None,
        max_body: int | None = None,
        emulated: int | None = None,
        emulated_protocol: str | None = None,
        register_urls: tuple[str, ...] = (),
    ) -> CloudConfig:
        """The command line's options over the file's (a given option wins)."""
        server = replace(
            self.server,
            host=host if host is not None else self.server.host,
            port=port if port is not None else self.server.port,
            duplicates=duplicates or self.server.duplicates,
            max_queue=max_queue if max_queue is not None else self.server.max_queue,
            max_body=max_body if max_body is not None else self.server.max_body,
        )
        group = self.groups[0].code if self.groups else DEMO
        registers = self.registers + tuple(
            RegisterConfig(url, "auto", group, f"{group}-{len(self.registers) + n + 1}")
            for n, url in enumerate(register_urls)
        )
        current = self.emulated
        if emulated is not None:
            current = (
                EmulatedConfig(emulated, emulated_protocol or "shtrih", group) if emulated else None
            )
        elif emulated_protocol and current is not None:
            current = replace(current, protocol=emulated_protocol)
        check_distinct_urls(registers)
        if self.demo and registers:
            raise ConfigError(
                "the demo (no --config) serves emulated registers only: its password is public; "
                "give --config FILE with your users to serve real registers"
            )
        return replace(self, server=server, registers=registers, emulated=current)


def normalised_url(url: str) -> str:
    """A register URL as one register has one spelling: scheme and host lower case, no trailing
    slash, ``localhost`` as ``127.0.0.1`` (a device path keeps its case: Linux paths have it)."""
    url = url.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    host = host.lower()
    if host == "localhost" or host.startswith("localhost:"):
        host = "127.0.0.1" + host[len("localhost") :]
    return f"{scheme.lower()}://{host}{slash}{path}"


def check_distinct_urls(registers: Sequence[RegisterConfig]) -> None:
    """Two names for one register would make two writers of one FN (each cancels the other's
    open receipt): refused with both names."""
    seen: dict[str, str] = {}
    for register in registers:
        key = normalised_url(register.url)
        if key in seen:
            raise ConfigError(
                f"registers {seen[key]!r} and {register.name!r} have the same URL "
                f"{register.url!r}: one register has one writer -- list it once"
            )
        seen[key] = register.name


def demo_config(emulated: int = 1) -> CloudConfig:
    return CloudConfig(
        groups=(GroupConfig(DEMO, email="demo@example.org", payment_address="kkt.example.org"),),
        users=(UserConfig(DEMO, hash_password(DEMO), frozenset({DEMO})),),
        emulated=EmulatedConfig(emulated, "shtrih", DEMO),
        demo=True,
    )


def load_config(path: str | Path) -> CloudConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; give --config an existing TOML file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read it ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error}); fix the syntax there") from None
    return _Reader(str(path)).config(raw)


class _Reader:
    """Reads one parsed file; every error names ``file: key``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {problem}")

    def table(self, raw: Mapping[str, Any], key: str, known: set[str]) -> Mapping[str, Any]:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table: write it as [" + key + "]")
        self.unknown(value, key, known)
        return value

    def array(self, raw: Mapping[str, Any], key: str, known: set[str]) -> list[Mapping[str, Any]]:
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(key, f"must be an array of tables: write each as [[{key}]]")
        for index, entry in enumerate(value):
            self.unknown(entry, f"{key}[{index}]", known)
        return value

    def unknown(self, value: Mapping[str, Any], where: str, known: set[str]) -> None:
        extra = sorted(set(value) - known)
        if extra:
            raise self.fail(
                f"{where}.{extra[0]}", f"unknown key; the keys here are {', '.join(sorted(known))}"
            )

    def string(
        self, value: Mapping[str, Any], where: str, key: str, *, required: bool = False
    ) -> str | None:
        item = value.get(key)
        if item is None:
            if required:
                raise self.fail(f"{where}.{key}", "missing: this key is required")
            return None
        if not isinstance(item, str) or not item:
            raise self.fail(f"{where}.{key}", f"must be a non-empty string, not {item!r}")
        return item

    def need(self, value: Mapping[str, Any], where: str, key: str) -> str:
        item = self.string(value, where, key, required=True)
        assert item is not None
        return item

    def choice(
        self, value: Mapping[str, Any], where: str, key: str, default: str, options: tuple[str, ...]
    ) -> str:
        item = self.string(value, where, key) or default
        if item not in options:
            raise self.fail(f"{where}.{key}", f"{item!r} is not one of {', '.join(options)}")
        return item

    def boolean(self, value: Mapping[str, Any], where: str, key: str, default: bool) -> bool:
        item = value.get(key, default)
        if not isinstance(item, bool):
            raise self.fail(f"{where}.{key}", f"must be true or false, not {item!r}")
        return item

    def integer(
        self, value: Mapping[str, Any], where: str, key: str, default: int, least: int
    ) -> int:
        item = value.get(key, default)
        if isinstance(item, bool) or not isinstance(item, int) or item < least:
            raise self.fail(f"{where}.{key}", f"must be a whole number ≥ {least}, not {item!r}")
        return item

    def config(self, raw: Mapping[str, Any]) -> CloudConfig:
        self.unknown(raw, "(top level)", {"server", "groups", "users", "registers", "emulated"})
        server = self.server(
            self.table(
                raw, "server", {"listen", "duplicates", "max_queue", "max_body", "callback_secret"}
            )
        )
        groups = tuple(
            self.group_entry(g, f"groups[{i}]")
            for i, g in enumerate(
                self.array(raw, "groups", {"code", "inn", "email", "payment_address", "sno"})
            )
        )
        codes = [g.code for g in groups]
        if not groups:
            raise self.fail("groups", 'no group: add a [[groups]] table with code = "…"')
        if len(set(codes)) != len(codes):
            raise self.fail("groups", f"a group code is given twice: {codes}")
        users = tuple(
            self.user(u, f"users[{i}]", set(codes))
            for i, u in enumerate(self.array(raw, "users", {"login", "password", "groups"}))
        )
        if not users:
            raise self.fail("users", "no user: add a [[users]] table (login, password, groups)")
        logins = [u.login for u in users]
        if len(set(logins)) != len(logins):
            raise self.fail("users", f"a login is given twice: {logins}")
        registers = tuple(
            self.register(r, f"registers[{i}]", set(codes), i)
            for i, r in enumerate(
                self.array(raw, "registers", {"url", "protocol", "group", "name", "verify"})
            )
        )
        names = [r.name for r in registers]
        if len(set(names)) != len(names):
            raise self.fail("registers", f"two registers have one name: {names}; name each")
        try:
            check_distinct_urls(registers)
        except ConfigError as error:
            raise self.fail("registers", str(error)) from None
        emulated = None
        if "emulated" in raw:
            table = self.table(raw, "emulated", {"count", "protocol", "group"})
            emulated = EmulatedConfig(
                self.integer(table, "emulated", "count", 1, 0),
                self.choice(table, "emulated", "protocol", "shtrih", EMULATED_PROTOCOLS),
                self.string(table, "emulated", "group") or codes[0],
            )
            if emulated.group not in codes:
                raise self.fail("emulated.group", f"{emulated.group!r} is not a [[groups]] code")
        return CloudConfig(server, groups, users, registers, emulated, False, self.source)

    def server(self, table: Mapping[str, Any]) -> ServerConfig:
        host, port = DEFAULT_HOST, DEFAULT_PORT
        listen = self.string(table, "server", "listen")
        if listen is not None:
            try:
                host, port = parse_listen(listen)
            except ValueError as error:
                raise self.fail("server.listen", str(error)) from None
        return ServerConfig(
            host,
            port,
            self.choice(table, "server", "duplicates", "strict", DUPLICATES),
            self.integer(table, "server", "max_queue", DEFAULT_MAX_QUEUE, 1),
            self.integer(table, "server", "max_body", DEFAULT_MAX_BODY, 1024),
            self.string(table, "server", "callback_secret"),
        )

    def group_entry(self, table: Mapping[str, Any], where: str) -> GroupConfig:
        inn = self.string(table, where, "inn")
        if inn is not None and not (inn.isdigit() and len(inn) in (10, 12)):
            raise self.fail(f"{where}.inn", f"{inn!r}: an INN is 10 or 12 digits")
        sno = self.string(table, where, "sno")
        if sno is not None and sno not in SNO:
            raise self.fail(f"{where}.sno", f"{sno!r} is not one of {', '.join(SNO)}")
        return GroupConfig(
            self.need(table, where, "code"),
            inn,
            self.string(table, where, "email"),
            self.string(table, where, "payment_address"),
            sno,
        )

    def user(self, table: Mapping[str, Any], where: str, codes: set[str]) -> UserConfig:
        login = self.need(table, where, "login")
        password = self.need(table, where, "password")
        try:
            check_hash_format(password)
        except PasswordFormatError as error:
            raise self.fail(f"{where}.password", str(error)) from None
        groups = table.get("groups")
        if (
            not isinstance(groups, list)
            or not groups
            or not all(isinstance(g, str) for g in groups)
        ):
            raise self.fail(f"{where}.groups", 'must be a list of group codes, e.g. ["shop1"]')
        unknown = sorted(set(groups) - codes)
        if unknown:
            raise self.fail(f"{where}.groups", f"{unknown[0]!r} is not a [[groups]] code")
        return UserConfig(login, password, frozenset(groups))

    def register(
        self, table: Mapping[str, Any], where: str, codes: set[str], index: int
    ) -> RegisterConfig:
        group = self.need(table, where, "group")
        if group not in codes:
            raise self.fail(f"{where}.group", f"{group!r} is not a [[groups]] code")
        return RegisterConfig(
            self.need(table, where, "url"),
            self.choice(table, where, "protocol", "auto", PROTOCOLS),
            group,
            self.string(table, where, "name") or f"{group}-{index + 1}",
            self.boolean(table, where, "verify", False),
        )


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); port 0 = any free port."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)
