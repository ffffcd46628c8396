"""Prometheus metrics of the cloud service, read fresh from storage and the pool at each scrape.

A custom collector on a `CollectorRegistry` of its own: the process-wide default registry would
mix in whatever else the process registered (and two services in one test process would
collide).  `metrics_text()` is what ``GET /metrics`` answers, with `CONTENT_TYPE`.

* ``kkt_cloud_queue_depth{group}`` -- requests accepted and not finished (queued or on a
  register), as `Storage.queue_depth` counts them
* ``kkt_cloud_receipts{status}`` -- requests by status (wait, done, fail), all groups
* ``kkt_cloud_register_up{register}`` -- 1 while the register takes work (state "ok")
* ``kkt_cloud_register_fiscalize_seconds{register}`` -- histogram of one fiscalization's time
* ``kkt_cloud_ofd_backlog{register}`` -- documents the register's FN has not sent to the OFD
* ``kkt_cloud_callbacks_pending`` -- callbacks neither delivered nor given up

The fiscalization times come from the pool: give it ``on_latency=latencies.observe`` (its hook,
called after each document) and pass the same `Latencies` here.  The pool's own
``pool.latencies(name)`` is a sliding window, whose counts drop as it slides: no Prometheus
histogram can be made of it, so it is refused (logged, the histogram left empty).
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Collection, Iterable, Iterator
from datetime import UTC, datetime
from typing import Protocol

from kkt.cloud.model import RegisterView
from kkt.cloud.storage.base import Callback
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
log = logging.getLogger(__name__)

# A register answers a receipt in about a tenth of a second to a few seconds (a printed tape, a
# slow serial line); beyond 30 s something is wrong, and the +Inf bucket shows it.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Without a counting method in storage, pending callbacks are counted by listing them: the
# count stops at this many (the gauge then reads "at least").
PENDING_CAP = 10_000
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


class Latencies:
    """Per-register histogram of fiscalization seconds; thread-safe (the pool's workers each
    observe their own register, the scrape reads all)."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self._buckets = buckets
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}  # per bucket, not cumulative; last is +Inf
        self._sums: dict[str, float] = {}

    def observe(self, register: str, seconds: float) -> None:
        with self._lock:
            counts = self._counts.setdefault(register, [0] * (len(self._buckets) + 1))
            counts[bisect.bisect_left(self._buckets, seconds)] += 1
            self._sums[register] = self._sums.get(register, 0.0) + seconds

    def snapshot(self) -> dict[str, tuple[list[tuple[str, float]], float]]:
        """register -> (cumulative buckets as Prometheus names them, sum of seconds)."""
        with self._lock:
            found: dict[str, tuple[list[tuple[str, float]], float]] = {}
            for register, counts in self._counts.items():
                bounds = [str(b) for b in self._buckets] + ["+Inf"]
                cumulative, running = [], 0
                for bound, count in zip(bounds, counts, strict=True):
                    running += count
                    cumulative.append((bound, float(running)))
                found[register] = (cumulative, self._sums[register])
            return found


class MetricsStorage(Protocol):
    """The part of `kkt.cloud.storage.base.Storage` the metrics read."""

    def queue_depth(self, group: str | None = None) -> int: ...
    def counts(self) -> dict[str, int]: ...
    def due_callbacks(self, now: datetime, limit: int) -> list[Callback]: ...


def pending_callbacks(storage: MetricsStorage) -> int:
    """Callbacks not yet delivered nor given up: storage's own count if it has one
    (``pending_callbacks()``), else those due at any time to come, up to `PENDING_CAP`."""
    count = getattr(storage, "pending_callbacks", None)
    if callable(count):
        return int(count())
    return len(storage.due_callbacks(_FAR_FUTURE, PENDING_CAP))


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.error("%s", message)


STATUSES = ("wait", "done", "fail")  # always exported, 0 or not: a rate() needs the series


class CloudCollector(Collector):
    def __init__(
        self,
        storage: MetricsStorage,
        pool_views: Iterable[RegisterView],
        latencies: Latencies | object,
        groups: Collection[str] = (),
    ) -> None:
        self._storage = storage
        self._views = list(pool_views)
        self._latencies = latencies
        self._groups = sorted(set(groups) | {view.group for view in self._views})

    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        depth = GaugeMetricFamily(
            "kkt_cloud_queue_depth",
            "Requests accepted and not finished yet",
            labels=["group"],
        )
        for group in self._groups:
            depth.add_metric([group], self._storage.queue_depth(group))
        yield depth

        receipts = GaugeMetricFamily(
            "kkt_cloud_receipts", "Requests by status, all groups", labels=["status"]
        )
        counts = self._storage.counts()
        for status in sorted(set(STATUSES) | set(counts)):
            receipts.add_metric([status], counts.get(status, 0))
        yield receipts

        up = GaugeMetricFamily(
            "kkt_cloud_register_up", "1 while the register takes work", labels=["register"]
        )
        backlog = GaugeMetricFamily(
            "kkt_cloud_ofd_backlog",
            "Documents in the register's FN not yet sent to the OFD",
            labels=["register"],
        )
        for view in self._views:
            up.add_metric([view.name], 1 if view.state == "ok" else 0)
            backlog.add_metric([view.name], view.ofd_unsent)
        yield up
        yield backlog

        seconds = HistogramMetricFamily(
            "kkt_cloud_register_fiscalize_seconds",
            "Time a register took to fiscalize one document",
            labels=["register"],
        )
        if isinstance(self._latencies, Latencies):
            for register, (buckets, total) in sorted(self._latencies.snapshot().items()):
                seconds.add_metric([register], buckets, total)
        else:  # the rest of the page is still worth scraping: say what is wrong, once
            _warn_once(
                "kkt_cloud_register_fiscalize_seconds left empty: metrics_text wants a "
                f"kkt.cloud.metrics.Latencies fed by the pool's on_latency hook, not "
                f"{self._latencies!r}"
            )
        yield seconds

        yield GaugeMetricFamily(
            "kkt_cloud_callbacks_pending",
            "Callbacks neither delivered nor given up",
            value=pending_callbacks(self._storage),
        )


def metrics_text(
    storage: MetricsStorage,
    pool_views: Iterable[RegisterView],
    latencies: Latencies,
    *,
    groups: Collection[str] = (),
) -> bytes:
    """The exposition ``GET /metrics`` answers (content type `CONTENT_TYPE`).  `groups`: those
    to report a queue depth for besides the registers' own (a group with no register yet)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CloudCollector(storage, pool_views, latencies, groups))
    return generate_latest(registry)
