"""Prometheus metrics on a per-app registry; other subsystems add collectors to the same one."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Histogram
from prometheus_client import Metric
from prometheus_client import multiprocess
from prometheus_client import values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Intake answers in milliseconds; these buckets resolve the 50 ms p99 goal.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


def metrics_registry(app: Flask) -> CollectorRegistry:
    """Return the app's registry (tests build many apps, so never the global one)."""
    return app.extensions.setdefault("metrics_registry", CollectorRegistry(auto_describe=True))


def multiprocess_mode() -> bool:
    """True when prometheus-client keeps values in PROMETHEUS_MULTIPROC_DIR (set before start)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


class WorkerSum(Collector):
    """Counters and histograms summed over every worker process, then the app's own collectors.

    Under gunicorn each worker counts in its own memory, so a scrape would see whichever worker
    answered. With PROMETHEUS_MULTIPROC_DIR set, every process writes its values to files there;
    this reads them all and adds the families only the app registry has (store-read gauges).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._files = multiprocess.MultiProcessCollector(None)

    def collect(self) -> Iterator[Metric]:
        """Yield the summed families, then the app's families they do not cover."""
        summed = list(self._files.collect())
        names = {family.name for family in summed}
        yield from summed
        yield from (family for family in self._registry.collect() if family.name not in names)


def scrape_registry(app: Flask) -> CollectorRegistry:
    """Return what `/metrics` serves: the app's registry, summed over workers when configured."""
    registry = metrics_registry(app)
    if not multiprocess_mode():
        return registry
    merged = CollectorRegistry(auto_describe=False)
    merged.register(WorkerSum(registry))
    return merged


class IntakeMetrics:
    """Counters intake updates: accepted by type and source kind, rejected by code, latency."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "gateway_events_accepted",
            "Events accepted and committed to the outbox",
            ["type", "source"],
            registry=registry,
        )
        self.duplicates = Counter(
            "gateway_events_duplicate",
            "Events acknowledged as repeats of a messageId inside the dedupe window",
            registry=registry,
        )
        self.rejected = Counter(
            "gateway_events_rejected",
            "Requests or batch items refused at intake, by error code",
            ["code"],
            registry=registry,
        )
        self.latency = Histogram(
            "gateway_intake_seconds",
            "Time from request start to answer on the intake routes",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """Return `metric.labels(*labels)`, cached: labels() takes a lock and builds a key."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found


def intake_metrics(app: Flask) -> IntakeMetrics:
    """Return the app's intake metrics, creating them on first use."""
    found = app.extensions.get("intake_metrics")
    if found is None:
        found = app.extensions["intake_metrics"] = IntakeMetrics(metrics_registry(app))
    return found


class OutboxCollector(Collector):
    """Read outbox depth and outcome counts from the store at scrape time (all processes)."""

    def __init__(self, counts: Callable[[], dict[str, Any]]) -> None:
        self._counts = counts

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Name the metrics without reading the store, so registering never opens it."""
        yield GaugeMetricFamily("gateway_outbox_events", "", labels=["state", "reason"])
        yield GaugeMetricFamily("gateway_outbox_oldest_pending_seconds", "")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield depth by state and outcome totals by reason."""
        counts = self._counts()
        depth = GaugeMetricFamily(
            "gateway_outbox_events", "Outbox events by state and reason", labels=["state", "reason"]
        )
        for state in ("pending", "held", "in_flight", "delivered"):
            depth.add_metric([state, ""], float(counts.get(state, 0)))
        for state in ("dropped", "dead"):
            for reason, n in sorted(counts.get(state, {}).items()):
                depth.add_metric([state, reason], float(n))
        yield depth
        oldest = GaugeMetricFamily(
            "gateway_outbox_oldest_pending_seconds", "Age of the oldest pending event"
        )
        oldest.add_metric([], float(counts.get("oldest_pending_s") or 0.0))
        yield oldest


def register_outbox_collector(app: Flask, counts: Callable[[], dict[str, Any]]) -> None:
    """Expose the outbox counts on the app's registry."""
    metrics_registry(app).register(OutboxCollector(counts))
