"""How the dispatcher paces batches: how long a partial batch lingers, when it may go early,
and how many batches one process keeps in flight. Pure functions of the settings and the view of
the shared budget."""

from __future__ import annotations

from typing import Any

from app.coordination.state import LimiterView

#: A partial batch goes before its linger ends once no event came for this long (and the
#: budget has headroom): the stream has paused, waiting longer would only add latency.
QUIET_S = 0.15

#: Batches one process keeps in flight at most (Marketo answers 615 above 10 calls).
MAX_LANES = 10


def linger_s(limits: Any) -> float:
    """Return how long a partial batch may wait for more events: `linger_ms`, capped by
    `batch_wait_s` (0 sends whatever a claim found at once)."""
    return min(float(limits.linger_ms) / 1000.0, float(limits.batch_wait_s))


def headroom(view: LimiterView, limits: Any) -> bool:
    """Tell whether the shared budget can spend a call on a partial batch now.

    Under half the 20 s window used (calls made plus in flight) and under 90% of the daily
    quota: latency then matters more than filling the call. Otherwise partial batches wait
    their whole linger, so calls go out fuller when the window or the quota is what limits us.
    """
    used = view.window_calls + view.in_flight
    return used * 2 < int(limits.calls_per_20s) and view.calls_today < 0.9 * limits.daily_quota


def lanes_for(limits: Any) -> int:
    """Return how many batches one process keeps in flight: `limits.concurrency`, bounded."""
    return max(1, min(int(limits.concurrency), MAX_LANES))
