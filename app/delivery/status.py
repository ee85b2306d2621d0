"""What operators see of delivery: the `marketo` part of `flask status` and Prometheus metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.coordination.state import SharedState
from app.delivery.leads import BROWSER_LOOKUPS_DEFERRED
from app.delivery.leads import IDENTITY_CONFLICT
from app.ratelimit import Budget
from app.ratelimit import headroom
from app.ratelimit import quota_resets_at
from app.settings import Settings

# Marketo answers in tens of milliseconds to tens of seconds (server timeouts 30–180 s).
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 90.0)


def iso(ts: float | None) -> str | None:
    """Return an epoch time as ISO-8601 UTC, or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


# `flask status` shows the last error for this long; an older one no longer describes the present.
LAST_ERROR_SHOWN_S = 3600.0


def shown_error(error: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    """Return the last error with an ISO time and its age, or None once it is an hour old."""
    if not error:
        return None
    at = error.get("at")
    if not isinstance(at, int | float):
        return dict(error)
    if now - at > LAST_ERROR_SHOWN_S:
        return None
    return {**error, "at": iso(at), "age_s": round(max(0.0, now - at), 1)}


def marketo_status(
    settings: Settings, shared: SharedState, token_age: float | None, now: float
) -> dict[str, Any]:
    """Return `{"marketo": {...}}` as SPEC §4 `flask status` shows it."""
    budget = Budget.from_limits(settings.limits)
    view = shared.limiter(budget, now)
    counters = shared.counters()
    return {
        "marketo": {
            "calls_today": view.calls_today,
            "daily_quota": budget.daily_quota,
            "quota_resets_at": iso(quota_resets_at(now, budget.reset_tz)),
            "parked_until": iso(view.paused_until),
            "pause_reason": view.pause_reason,
            "calls_in_window": view.window_calls,
            "window_headroom": max(0, budget.calls_per_window - view.window_calls),
            "in_flight": view.in_flight,
            "concurrency": budget.concurrency,
            "token_age_s": None if token_age is None else round(token_age, 1),
            "last_error": shown_error(shared.last_error(), now),
            "credentials": settings.has_credentials,
            # Server events whose identifiers named two different leads (SPEC §5.4, README).
            "identity_conflicts": counters.get(IDENTITY_CONFLICT, 0),
            # Cookie lookups for browser events refused by limits.browser_lookups_per_hour.
            "browser_lookups_deferred": counters.get(BROWSER_LOOKUPS_DEFERRED, 0),
        }
    }


class MarketoMetrics:
    """Counters the client and dispatcher feed: calls by endpoint and code, deliveries, latency."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "gateway_marketo_calls",
            "Marketo REST calls by endpoint and result code",
            ["endpoint", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "gateway_marketo_call_seconds",
            "Marketo REST call latency",
            ["endpoint"],
            buckets=CALL_BUCKETS,
            registry=registry,
        )
        self.deliveries = Counter(
            "gateway_deliveries",
            "Events settled by the dispatcher, by outcome and reason",
            ["outcome", "reason"],
            registry=registry,
        )

    def observe_call(self, endpoint: str, code: str, seconds: float) -> None:
        """Count one Marketo call (the client's observer hook)."""
        self.calls.labels(endpoint, code).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_outcome(self, outcome: str, reason: str | None, n: int) -> None:
        """Count settled events (the dispatcher's hook)."""
        self.deliveries.labels(outcome, reason or "").inc(n)


QUOTA_GAUGES = (
    "gateway_marketo_quota_used",
    "gateway_marketo_daily_quota",
    "gateway_marketo_window_calls",
    "gateway_marketo_window_headroom",
    "gateway_marketo_paused",
    "gateway_identity_conflicts",
)


class QuotaCollector(Collector):
    """Reads the shared limiter at scrape time: quota used, window use, pause."""

    def __init__(self, settings: Callable[[], Settings], shared: Callable[[], SharedState]) -> None:
        self.settings = settings
        self.shared = shared

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Name the gauges without reading the store, so registering never connects to it."""
        for name in QUOTA_GAUGES:
            yield GaugeMetricFamily(name, "")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the limiter gauges."""
        now = time.time()
        try:
            budget = Budget.from_limits(self.settings().limits)
            view = self.shared().limiter(budget, now)
        except Exception:  # invalid settings or no store yet: scrape the other metrics anyway
            return
        yield GaugeMetricFamily(
            "gateway_marketo_quota_used", "Marketo calls counted today", value=view.calls_today
        )
        yield GaugeMetricFamily(
            "gateway_marketo_daily_quota", "Configured daily quota", value=budget.daily_quota
        )
        yield GaugeMetricFamily(
            "gateway_marketo_window_calls",
            "Calls in the current 20 s window",
            value=view.window_calls,
        )
        yield GaugeMetricFamily(
            "gateway_marketo_window_headroom",
            "Calls still allowed in the current window",
            value=headroom(budget, [now] * view.window_calls, now),
        )
        yield GaugeMetricFamily(
            "gateway_identity_conflicts",
            "Events whose identifiers named two different leads (the lookup order decided)",
            value=self.shared().counters().get(IDENTITY_CONFLICT, 0),
        )
        yield GaugeMetricFamily(
            "gateway_browser_lookups_deferred",
            "Cookie lookups for browser events that waited for the next hour's budget",
            value=self.shared().counters().get(BROWSER_LOOKUPS_DEFERRED, 0),
        )
        yield GaugeMetricFamily(
            "gateway_marketo_paused",
            "1 while the limiter is paused (606/615 back-off or 607 parking)",
            value=1.0 if view.paused_until else 0.0,
        )
