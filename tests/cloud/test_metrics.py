"""The Prometheus exposition, read back with prometheus_client's own parser."""

from __future__ import annotations

import pytest
from kkt.cloud.metrics import CONTENT_TYPE, Latencies, metrics_text
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from support.cloud_fakes_web import FakeStorage, register_view, report_view


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_every_metric_reads_back() -> None:
    storage = FakeStorage()
    storage.queued = {"demo": 3, "shop": 1}
    for n, status in enumerate(["done", "done", "fail", "wait"]):
        storage.add_report(report_view(f"u-{n}", status=status))
    storage.add_callback("u-0", "http://127.0.0.1:1/cb", b"{}")
    storage.add_callback("u-2", "http://127.0.0.1:1/cb", b"{}")
    views = [
        register_view("KKT-1", ofd_unsent=4),
        register_view("KKT-2", state="failing", detail="paper out"),
    ]
    latencies = Latencies()
    for seconds in (0.04, 0.3, 0.5, 45.0):
        latencies.observe("KKT-1", seconds)

    got = samples(metrics_text(storage, views, latencies, groups=["shop"]))

    assert got[("kkt_cloud_queue_depth", (("group", "demo"),))] == 3
    assert got[("kkt_cloud_queue_depth", (("group", "shop"),))] == 1
    assert got[("kkt_cloud_receipts", (("status", "done"),))] == 2
    assert got[("kkt_cloud_receipts", (("status", "fail"),))] == 1
    assert got[("kkt_cloud_receipts", (("status", "wait"),))] == 1
    assert got[("kkt_cloud_register_up", (("register", "KKT-1"),))] == 1
    assert got[("kkt_cloud_register_up", (("register", "KKT-2"),))] == 0
    assert got[("kkt_cloud_ofd_backlog", (("register", "KKT-1"),))] == 4
    assert got[("kkt_cloud_ofd_backlog", (("register", "KKT-2"),))] == 0
    assert got[("kkt_cloud_callbacks_pending", ())] == 2

    def bucket(le: str) -> float:
        return got[
            ("kkt_cloud_register_fiscalize_seconds_bucket", (("le", le), ("register", "KKT-1")))
        ]

    assert bucket("0.05") == 1
    assert bucket("0.5") == 3  # 0.5 itself is "less or equal"
    assert bucket("30.0") == 3
    assert bucket("+Inf") == 4
    assert got[("kkt_cloud_register_fiscalize_seconds_count", (("register", "KKT-1"),))] == 4
    assert got[("kkt_cloud_register_fiscalize_seconds_sum", (("register", "KKT-1"),))] == sum(
        (0.04, 0.3, 0.5, 45.0)
    )


def test_an_empty_service_still_exports_its_families_and_not_in_the_global_registry() -> None:
    text = metrics_text(FakeStorage(), [], Latencies())
    names = {family.name for family in text_string_to_metric_families(text.decode())}
    assert names == {
        "kkt_cloud_queue_depth",
        "kkt_cloud_receipts",
        "kkt_cloud_register_up",
        "kkt_cloud_register_fiscalize_seconds",
        "kkt_cloud_ofd_backlog",
        "kkt_cloud_callbacks_pending",
    }
    assert samples(text)[("kkt_cloud_receipts", (("status", "done"),))] == 0
    assert REGISTRY.get_sample_value("kkt_cloud_callbacks_pending") is None
    assert CONTENT_TYPE.startswith("text/plain")


def test_storage_own_pending_count_is_used_when_it_has_one() -> None:
    class Counting(FakeStorage):
        def pending_callbacks(self) -> int:
            return 12345

    got = samples(metrics_text(Counting(), [], Latencies()))
    assert got[("kkt_cloud_callbacks_pending", ())] == 12345


def test_the_pools_sliding_window_is_refused_but_the_rest_is_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def window(name: str) -> list[float]:  # what RegisterPool.latencies is
        return [0.1, 0.2]

    with caplog.at_level("ERROR", logger="kkt.cloud.metrics"):
        got = samples(metrics_text(FakeStorage(), [register_view("KKT-1")], window))  # type: ignore[arg-type]
    assert got[("kkt_cloud_register_up", (("register", "KKT-1"),))] == 1
    assert not [name for name, _ in got if name.startswith("kkt_cloud_register_fiscalize")]
    assert "on_latency" in caplog.text
