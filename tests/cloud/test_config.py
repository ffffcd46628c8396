"""The TOML config: what it reads, and that every mistake names the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from kkt.cloud import auth
from kkt.cloud.config import ConfigError, demo_config, load_config

HASH = auth.hash_password("secret")

GOOD = f"""
[server]
listen = "127.0.0.1:0"
duplicates = "atol"
max_queue = 50
max_body = 4096
callback_secret = "s3cret"

[[groups]]
code = "shop1"
inn = "7700000000"
email = "shop@example.org"
payment_address = "shop.example.org"
sno = "usn_income"

[[users]]
login = "one"
password = "{HASH}"
groups = ["shop1"]

[[registers]]
url = "socket://127.0.0.1:7778"
protocol = "shtrih"
group = "shop1"
verify = true

[emulated]
count = 2
protocol = "mixed"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cloud.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_config_is_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert (config.server.host, config.server.port, config.server.duplicates) == (
        "127.0.0.1",
        0,
        "atol",
    )
    assert (config.server.max_queue, config.server.max_body) == (50, 4096)
    assert config.server.callback_secret == "s3cret"
    group = config.group("shop1")
    assert group is not None and group.inn == "7700000000" and group.sno == "usn_income"
    assert config.user_table().verify("one", "secret")
    assert config.user_table().groups("one") == frozenset({"shop1"})
    [register] = config.registers
    assert (register.name, register.protocol, register.group) == ("shop1-1", "shtrih", "shop1")
    assert register.verify is True
    assert config.emulated is not None
    assert (config.emulated.count, config.emulated.protocol, config.emulated.group) == (
        2,
        "mixed",
        "shop1",
    )
    assert not config.demo


@pytest.mark.parametrize(
    ("change", "key", "hint"),
    [
        (('duplicates = "atol"', 'duplicates = "loose"'), "server.duplicates", "strict, atol"),
        (('listen = "127.0.0.1:0"', 'listen = "nowhere"'), "server.listen", "HOST:PORT"),
        (("max_queue = 50", "max_queue = 0"), "server.max_queue", "≥ 1"),
        (('inn = "7700000000"', 'inn = "77"'), "groups[0].inn", "10 or 12 digits"),
        ((f'password = "{HASH}"', 'password = "secret"'), "users[0].password", "passwd"),
        (('groups = ["shop1"]', 'groups = ["shop9"]'), "users[0].groups", "shop9"),
        (('group = "shop1"\n', 'group = "shop2"\n'), "registers[0].group", "shop2"),
        (('protocol = "shtrih"', 'protocol = "usb"'), "registers[0].protocol", "shtrih"),
        (("count = 2", "count = -1"), "emulated.count", "≥ 0"),
        (("verify = true", 'verify = "yes"'), "registers[0].verify", "true or false"),
        (("[server]", "[server]\nport = 1"), "server.port", "unknown key"),
    ],
)
def test_a_mistake_names_the_file_and_key(
    tmp_path: Path, change: tuple[str, str], key: str, hint: str
) -> None:
    assert change[0] in GOOD
    path = write(tmp_path, GOOD.replace(change[0], change[1], 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert hint in message


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "none.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[server"))
    with pytest.raises(ConfigError, match=r"groups: no group"):
        load_config(write(tmp_path, ""))


def test_command_line_overrides_and_the_demo() -> None:
    demo = demo_config(2)
    assert demo.demo and demo.emulated is not None and demo.emulated.count == 2
    assert demo.user_table().verify("demo", "demo")
    changed = demo.with_overrides(host="127.0.0.1", port=0, duplicates="atol", max_queue=5)
    assert (changed.server.port, changed.server.duplicates, changed.server.max_queue) == (
        0,
        "atol",
        5,
    )
    with pytest.raises(ConfigError, match="emulated registers only"):
        demo.with_overrides(register_urls=("socket://10.0.0.5:7778",))


def test_one_register_url_under_two_names_is_refused(tmp_path: Path) -> None:
    # Two names for one register = two writers of one FN, cancelling each other's receipts.
    twice = GOOD + '\n[[registers]]\nurl = "SOCKET://localhost:7778/"\ngroup = "shop1"\n'
    with pytest.raises(ConfigError, match="same URL"):
        load_config(write(tmp_path, twice))
    config = load_config(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="same URL"):
        config.with_overrides(register_urls=("socket://127.0.0.1:7778",))
