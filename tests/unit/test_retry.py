"""Rules of the backoff policy and Retry-After parsing (pure: no clock, no sleeping)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from app.retry import MAX_RETRY_AFTER_S
from app.retry import RetryPolicy
from app.retry import parse_retry_after

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 2.0), (2, 4.0), (3, 8.0), (9, 512.0), (10, 600.0), (500, 600.0)],
)
def test_backoff_doubles_until_the_cap(attempt: int, expected: float) -> None:
    """Each failure doubles the delay, and no delay passes the 10 minute cap."""
    assert RetryPolicy().backoff(attempt) == expected


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 4.0), (0.5, 6.0), (1.0, 8.0), (7.0, 8.0)])
def test_jitter_spreads_between_half_and_full_backoff(rand: float, expected: float) -> None:
    """The random number picks a delay between half and all of the backoff."""
    assert RetryPolicy().delay(3, None, rand) == pytest.approx(expected)


def test_retry_after_is_a_floor_under_the_backoff() -> None:
    """A server asking for longer than the backoff is obeyed."""
    assert RetryPolicy().delay(1, 30.0, 0.0) == 30.0


def test_retry_after_never_shortens_the_backoff() -> None:
    """A short Retry-After does not make a late attempt retry early."""
    assert RetryPolicy().delay(5, 1.0, 1.0) == 32.0


def test_retry_after_is_capped() -> None:
    """A Retry-After of a day cannot park an event beyond the cap."""
    assert RetryPolicy(cap_s=600.0).delay(1, 86_400.0, 0.5) == 600.0


def test_budget_is_spent_at_max_attempts() -> None:
    """The attempt that reaches max_attempts exhausts the budget, not the one before."""
    policy = RetryPolicy(max_attempts=3)
    assert not policy.exhausted(2)
    assert policy.exhausted(3)


def test_policy_is_immutable() -> None:
    """One policy is shared by every thread, so it cannot change."""
    with pytest.raises(FrozenInstanceError):
        RetryPolicy().max_attempts = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("99999", MAX_RETRY_AFTER_S),
        ("Tue, 14 Nov 2023 22:15:00 GMT", 100.0),
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),
        ("Tue, 14 Nov 2023 22:13:30 GMT", 10.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    """Delta seconds and HTTP dates are read relative to `now`, clamped to [0, cap]."""
    assert parse_retry_after(header, NOW) == expected
