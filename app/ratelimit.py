"""Marketo's call budget as data: a sliding 20 s window, a concurrency cap and a daily quota.

Pure functions only: callers pass past call times, the in-flight count, today's count and `now`,
and get back how long to wait. The shared state that feeds them lives in the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from zoneinfo import ZoneInfo

# Marketo allows 100 calls in any rolling 20 s window per instance (606 above that).
WINDOW_S = 20.0
# Marketo counts a call when it arrives, we when it leaves; the margin absorbs the difference.
WINDOW_MARGIN_S = 0.5
# How soon to look again when every concurrency slot is taken (calls last milliseconds to seconds).
CONCURRENCY_POLL_S = 0.05

OK = "ok"
PAUSED = "paused"
QUOTA = "quota"
WINDOW = "window"
CONCURRENCY = "concurrency"
# Why the shared limiter is paused (`flask status` shows it): Marketo's 606/615 back-off uses
# the code itself; these are the gateway's own reasons.
PAUSE_QUOTA = "607"
PAUSE_CREDENTIALS = "credentials"
PAUSE_OUTAGE = "marketo_unavailable"
#: Decision reasons that mean "nothing before the daily quota resets".
QUOTA_REASONS = frozenset({QUOTA, PAUSE_QUOTA})


@dataclass(frozen=True)
class Budget:
    """The limits one gateway (all its threads and processes) keeps towards one Marketo instance."""

    calls_per_window: int = 90
    concurrency: int = 8
    daily_quota: int = 45000
    reset_tz: str = "America/Chicago"
    window_s: float = WINDOW_S + WINDOW_MARGIN_S

    @classmethod
    def from_limits(cls, limits: object) -> Budget:
        """Build a budget from a settings `Limits` object."""
        return cls(
            calls_per_window=int(limits.calls_per_20s),  # type: ignore[attr-defined]
            concurrency=int(limits.concurrency),  # type: ignore[attr-defined]
            daily_quota=int(limits.daily_quota),  # type: ignore[attr-defined]
            reset_tz=str(limits.quota_reset_tz),  # type: ignore[attr-defined]
        )


@dataclass(frozen=True)
class Decision:
    """Whether a call may start now; if not, how long to wait and which limit says so."""

    wait: float
    reason: str = OK

    @property
    def ok(self) -> bool:
        """Tell whether the call may start now."""
        return self.reason == OK


def check(
    budget: Budget,
    call_times: Iterable[float],
    in_flight: int,
    day_count: int,
    now: float,
    paused_until: float | None = None,
    pause_reason: str = PAUSED,
) -> Decision:
    """Decide whether one more call fits the budget at `now`.

    A pause (606/615 back-off, 607 parking) wins; then the daily quota (wait until it resets),
    then the sliding window (wait until the oldest call that blocks us leaves it), then
    concurrency (look again shortly, since we cannot know when a call returns).
    """
    if paused_until is not None and paused_until > now:
        return Decision(paused_until - now, pause_reason)
    if day_count >= budget.daily_quota:
        return Decision(max(quota_resets_at(now, budget.reset_tz) - now, 0.0), QUOTA)
    horizon = now - budget.window_s
    recent = sorted(t for t in call_times if t > horizon)
    if len(recent) >= budget.calls_per_window:
        blocker = recent[len(recent) - budget.calls_per_window]
        return Decision(max(blocker + budget.window_s - now, 0.0), WINDOW)
    if in_flight >= budget.concurrency:
        return Decision(CONCURRENCY_POLL_S, CONCURRENCY)
    return Decision(0.0, OK)


def headroom(budget: Budget, call_times: Iterable[float], now: float) -> int:
    """Return how many calls could start now as far as the sliding window is concerned."""
    horizon = now - budget.window_s
    return max(0, budget.calls_per_window - sum(1 for t in call_times if t > horizon))


#: Within this long after our computed quota reset, a 607 means Marketo's clock differs: probe.
QUOTA_RESET_TOLERANCE_S = 3600.0
#: Probe interval while parked on 607 near the reset time.
QUOTA_PROBE_S = 900.0


def park_until(now: float, resets_at: float | None, tz: str) -> float:
    """Return when to look again after a 607: the quota reset, or a probe soon after one."""
    resets = resets_at or quota_resets_at(now, tz)
    since_reset = now - (resets - 86_400.0)
    return now + QUOTA_PROBE_S if since_reset < QUOTA_RESET_TOLERANCE_S else resets


def quota_day(now: float, tz: str) -> str:
    """Return the quota day (ISO date in the reset time zone) that `now` falls in."""
    return datetime.fromtimestamp(now, ZoneInfo(tz)).date().isoformat()


def quota_resets_at(now: float, tz: str) -> float:
    """Return the epoch time of the next midnight in `tz` after `now` (daylight-aware)."""
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(now, zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone) + timedelta(days=1)
    return midnight.timestamp()
