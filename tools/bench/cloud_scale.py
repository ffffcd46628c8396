"""The cloud register scaled out, as ``kkt bench cloud`` and the scale-out tests run it: several
``kkt cloud serve --db postgresql://…`` processes sharing one database and one config, driving
registers served apart from them.

* `Registers` -- the emulated registers (and their emulated OFD) served by a process of their
  own (`kkt.cloud.emulated.EmulatedPool`, what ``kkt cloud serve --emulated`` starts), so they
  outlive any instance killed with SIGKILL, and their FNs are read afterwards through the driver;
* `write_config` -- the one TOML config every instance is started with: the same register names
  and URLs (a register's name is its key in the shared database), the demo group and login;
* `ScaleOut` -- the instances (`cloud.CloudServer` each: a child process with its own state
  directory, killable, restartable on its port).
"""

from __future__ import annotations

import contextlib
import importlib.util
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from kkt.emulator.state import TEST_INN

from . import Bench, Figure
from .cloud_server import CloudServer, FnReceipt, fn_receipts
from .postgres import PostgresMissing, PrivatePostgres

GROUP = "demo"  # the clients' group and login (password the same): `CloudClient`'s defaults
REGISTERS, INSTANCES = 4, 2  # the bench's (issue 19)
BALANCE_SECONDS = 120.0  # the instances must share the registers within this


class Client(Protocol):
    """What the figure needs of a shop's HTTP client (`cloud.CloudClient`)."""

    def login(self) -> None: ...

    def close(self) -> None: ...


ClientT = TypeVar("ClientT", bound=Client)


class Registers:
    """``count`` emulated Shtrih registers and one emulated OFD in a child process of this one."""

    def __init__(self, root: Path, count: int) -> None:
        from kkt.cloud.emulated import EmulatedPool  # the cloud extra's, wanted only here

        self.pool = EmulatedPool(root, count)
        self.count = count
        self.running = False

    def start(self) -> None:
        self.pool.start()
        self.running = True

    def stop(self) -> None:
        self.pool.stop()
        self.running = False

    @property
    def urls(self) -> list[str]:
        return self.pool.urls

    def names(self) -> list[str]:
        return [f"reg-{index:02d}" for index in range(self.count)]

    def state(self, index: int) -> Path:
        return self.pool.state(index)

    def fn_receipts(self) -> list[FnReceipt]:
        """Every receipt in every register's FN, read through the driver: stop them first (a
        served state belongs to its server)."""
        assert not self.running, "stop the registers first: their server holds the states"
        return [receipt for i in range(self.count) for receipt in fn_receipts(self.state(i))]


def write_config(path: Path, registers: Sequence[tuple[str, str]]) -> Path:
    """The instances' config: ``registers`` (name, URL) in group ``demo``, user demo/demo."""
    from kkt.cloud.auth import hash_password

    lines = [
        "[server]",
        'duplicates = "strict"',
        "",
        "[[groups]]",
        f'code = "{GROUP}"',
        f'inn = "{TEST_INN}"',
        'email = "shop@example.org"',
        'payment_address = "shop.example.org"',
        "",
        "[[users]]",
        f'login = "{GROUP}"',
        f'password = "{hash_password(GROUP)}"',
        f'groups = ["{GROUP}"]',
    ]
    for name, url in registers:
        lines += ["", "[[registers]]", f'name = "{name}"', f'url = "{url}"']
        lines += [f'group = "{GROUP}"', 'protocol = "shtrih"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class ScaleOut:
    """``instances`` services on the database ``dsn``, each with the config at ``config``
    (``dsn`` None: one instance on SQLite in its state directory, the default storage)."""

    def __init__(
        self,
        work: Path,
        dsn: str | None,
        config: Path,
        *,
        instances: int = INSTANCES,
        options: Sequence[str] = (),
    ) -> None:
        self.dsn = dsn
        self.servers = [
            CloudServer(
                work / f"instance-{index}",
                work / f"instance-{index}.log",
                emulated=None,
                options=("--config", str(config), *(("--db", dsn) if dsn else ()), *options),
            )
            for index in range(instances)
        ]

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def pids(self) -> dict[int, int]:
        """index -> PID of every instance running now."""
        return {
            index: server.process.pid
            for index, server in enumerate(self.servers)
            if server.process is not None
        }

    def start(self) -> None:
        for server in self.servers:
            server.start()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def live_holders(dsn: str) -> dict[str, int]:
    """register -> PID of the instance holding its lease now (unexpired, by the database's
    clock); read with one query, cheap enough to poll."""
    import psycopg  # the cloud extra's

    with psycopg.connect(dsn, connect_timeout=10) as connection:
        rows = connection.execute(
            "SELECT register, instance FROM cloud_leases WHERE expires_at > now()"
        ).fetchall()
    return {str(register): int(str(instance).split(":")[1]) for register, instance in rows}


def balanced(dsn: str, registers: Sequence[str], pids: Sequence[int]) -> bool:
    """Every register leased, each instance holding its share (all: ceil(registers/instances))."""
    holders = live_holders(dsn)
    share = -(-len(registers) // len(pids))
    held = Counter(holders.values())
    return set(holders) == set(registers) and all(held[pid] == share for pid in pids)


def wait_balanced(dsn: str, registers: Sequence[str], pids: Sequence[int]) -> None:
    """Until the instances share the registers (they balance by themselves within seconds)."""
    deadline = time.monotonic() + BALANCE_SECONDS
    while not balanced(dsn, registers, pids):
        if time.monotonic() > deadline:
            raise AssertionError(f"the instances never shared the registers: {live_holders(dsn)}")
        time.sleep(0.2)


@contextlib.contextmanager
def scaled_out(
    work: Path,
    dsn: str,
    *,
    registers: int = REGISTERS,
    instances: int = INSTANCES,
    route: Callable[[list[str]], list[str]] = lambda urls: urls,
) -> Iterator[tuple[Registers, ScaleOut]]:
    """The registers and the instances running; everything stopped after (the instances first:
    the registers' FNs are read afterwards).  ``route`` maps the registers' URLs to the ones the
    config gives (a test puts a relay between)."""
    served = Registers(work / "registers", registers)
    served.start()
    try:
        named = list(zip(served.names(), route(served.urls), strict=True))
        cluster = ScaleOut(work, dsn, write_config(work / "cloud.toml", named), instances=instances)
        try:
            cluster.start()
            yield served, cluster
        finally:
            cluster.stop()
    finally:
        served.stop()


def pg_receipts_per_s(
    bench: Bench,
    receipts: tuple[int, int],
    rounds: tuple[int, int],
    sqlite_rate: float | None,
    *,
    make_client: Callable[[str], ClientT],
    throughput: Callable[[Sequence[ClientT], int, int], float],
) -> Iterator[Figure]:
    """``cloud.pg.receipts_per_s``: two instances on a private PostgreSQL cluster, four
    emulated registers; shops post to both instances in turn (sizes as the SQLite figure's).
    ``make_client`` and ``throughput``: the SQLite figure's own (`cloud.CloudClient`,
    `cloud._throughput`), passed in so the two modules need not import each other."""
    if importlib.util.find_spec("psycopg") is None:
        bench.log("cloud.pg: skipped, PostgreSQL storage needs pip install 'kktkit[cloud]'")
        return
    try:
        postgres = PrivatePostgres()  # in /tmp: a short socket path
    except PostgresMissing as missing:
        bench.log(f"cloud.pg: skipped, {missing}")
        return
    clients: list[ClientT] = []
    with postgres:
        dsn = postgres.create_database()
        with scaled_out(bench.work / "cloud-pg", dsn) as (served, cluster):
            try:
                clients = [make_client(url) for url in cluster.urls]
                for client in clients:
                    client.login()
                wait_balanced(dsn, served.names(), list(cluster.pids().values()))
                throughput(clients, 40, 4)  # warm up: shifts open, connections made
                count = bench.size(*receipts)
                rates = [throughput(clients, count, 8) for _ in range(bench.size(*rounds))]
            finally:
                for client in clients:
                    client.close()
    per_s = statistics.median(rates)
    note = f"{len(cluster.servers)} instances, {REGISTERS} emulated, PostgreSQL {postgres.version}"
    if sqlite_rate:
        note += f"; x{per_s / sqlite_rate:.2f} of SQLite's"
    yield Figure("cloud.pg.receipts_per_s", per_s, "1/s", note)
