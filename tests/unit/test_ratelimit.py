"""Rules of the shared call budget (pure: the clock is an argument)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from app.ratelimit import CONCURRENCY
from app.ratelimit import OK
from app.ratelimit import PAUSED
from app.ratelimit import QUOTA
from app.ratelimit import WINDOW
from app.ratelimit import Budget
from app.ratelimit import check
from app.ratelimit import headroom
from app.ratelimit import quota_day
from app.ratelimit import quota_resets_at

CHICAGO = ZoneInfo("America/Chicago")
BUDGET = Budget(calls_per_window=3, concurrency=2, daily_quota=10, window_s=20.0)
NOW = 1_700_000_000.0


def test_call_fits_an_empty_budget() -> None:
    """Nothing used means no wait."""
    decision = check(BUDGET, [], 0, 0, NOW)
    assert decision.ok and decision.wait == 0.0 and decision.reason == OK


def test_full_window_waits_until_the_oldest_call_leaves() -> None:
    """With the window full, the wait ends when the oldest call is 20 s old."""
    decision = check(BUDGET, [NOW - 15, NOW - 5, NOW - 1], 0, 3, NOW)
    assert decision.reason == WINDOW
    assert decision.wait == pytest.approx(5.0)


def test_calls_older_than_the_window_do_not_count() -> None:
    """Calls that left the sliding window free their place."""
    assert check(BUDGET, [NOW - 25, NOW - 21, NOW - 1], 0, 3, NOW).ok


def test_window_waits_for_the_right_call_when_over_full() -> None:
    """If others overfilled the window, wait until enough calls have left it (two here)."""
    times = [NOW - 19, NOW - 18, NOW - 10, NOW - 2]
    decision = check(BUDGET, times, 0, 4, NOW)
    assert decision.wait == pytest.approx(2.0)


def test_concurrency_cap_asks_to_look_again_shortly() -> None:
    """All slots in flight: wait a short poll interval, not a window."""
    decision = check(BUDGET, [NOW - 1], 2, 1, NOW)
    assert decision.reason == CONCURRENCY
    assert 0 < decision.wait < 1


def test_pause_wins_over_everything() -> None:
    """A 606 pause holds calls even when the window is empty."""
    decision = check(BUDGET, [], 0, 0, NOW, paused_until=NOW + 12, pause_reason="606")
    assert decision.reason == "606" and decision.wait == pytest.approx(12.0)


def test_past_pause_is_ignored() -> None:
    """A pause that has ended does not block."""
    assert check(BUDGET, [], 0, 0, NOW, paused_until=NOW - 1).ok
    assert check(BUDGET, [], 0, 0, NOW, paused_until=NOW + 1).reason == PAUSED


def test_spent_quota_waits_until_midnight_in_the_reset_zone() -> None:
    """The daily quota parks calls until the next midnight in America/Chicago."""
    now = datetime(2024, 3, 5, 22, 30, tzinfo=CHICAGO).timestamp()
    decision = check(BUDGET, [], 0, 10, now)
    assert decision.reason == QUOTA
    assert decision.wait == pytest.approx(90 * 60)


@pytest.mark.parametrize(
    ("local", "expected_hours"),
    [
        (datetime(2024, 3, 5, 0, 0, 1, tzinfo=CHICAGO), 24 - 1 / 3600),
        (datetime(2024, 3, 9, 23, 0, tzinfo=CHICAGO), 1),  # DST starts 10 March at 2:00
        (datetime(2024, 3, 10, 12, 0, tzinfo=CHICAGO), 12),
        (datetime(2024, 11, 2, 12, 0, tzinfo=CHICAGO), 12),  # the night before DST ends
        (datetime(2024, 11, 3, 0, 30, tzinfo=CHICAGO), 24.5),  # a 25 hour day
    ],
)
def test_quota_reset_is_the_next_local_midnight(local: datetime, expected_hours: float) -> None:
    """The reset is local midnight even across daylight-saving changes."""
    reset = quota_resets_at(local.timestamp(), "America/Chicago")
    back = datetime.fromtimestamp(reset, CHICAGO)
    assert (back.hour, back.minute, back.second) == (0, 0, 0)
    assert back.date() > local.date()
    assert (reset - local.timestamp()) / 3600 == pytest.approx(expected_hours)


def test_quota_day_follows_the_reset_zone() -> None:
    """At 23:30 in Chicago it is already tomorrow in UTC, but still today for the quota."""
    now = datetime(2024, 3, 5, 23, 30, tzinfo=CHICAGO).timestamp()
    assert quota_day(now, "America/Chicago") == "2024-03-05"
    assert quota_day(now, "UTC") == "2024-03-06"


def test_headroom_counts_free_places_in_the_window() -> None:
    """Headroom is the window size minus the calls still inside it."""
    assert headroom(BUDGET, [NOW - 30, NOW - 1], NOW) == 2
    assert headroom(BUDGET, [NOW - 3, NOW - 2, NOW - 1, NOW], NOW) == 0
