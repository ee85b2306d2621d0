"""The per-IP token buckets: cost per event, IPv6 per /64, and bounded memory without amnesty."""

from __future__ import annotations

from app.http import IpRateLimiter

RULE = (2, 60.0)  # 2 events a minute


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_refused_caller_stays_refused_while_the_table_fills_up():
    """Many other callers make the table evict idle and old buckets, not the busy one."""
    clock = Clock()
    limiter = IpRateLimiter(clock, max_entries=8)
    assert limiter.hit("k", "198.51.100.1", RULE, cost=2) == 0
    for n in range(40):
        clock.now += 0.01
        limiter.hit("k", f"203.0.113.{n}", RULE)
        assert limiter.hit("k", "198.51.100.1", RULE) > 0  # still over its budget
    assert len(limiter) <= 8


def test_idle_buckets_are_forgotten_first():
    """A bucket idle for a whole period is full again, so dropping it changes nothing."""
    clock = Clock()
    limiter = IpRateLimiter(clock, max_entries=2)
    limiter.hit("k", "192.0.2.1", RULE)
    clock.now += 61.0
    limiter.hit("k", "192.0.2.2", RULE)
    limiter.hit("k", "192.0.2.3", RULE)
    assert len(limiter) == 2
    # The two recent callers kept their buckets (one event spent each, one left), so a second
    # event passes and a third is refused; the idle caller starts full.
    for ip in ("192.0.2.2", "192.0.2.3"):
        assert limiter.hit("k", ip, RULE) == 0
        assert limiter.hit("k", ip, RULE) > 0
    assert limiter.hit("k", "192.0.2.1", RULE, cost=2) == 0


def test_cost_and_wait():
    """A batch spends one unit per event; the wait says when that many are back."""
    clock = Clock()
    limiter = IpRateLimiter(clock)
    assert limiter.hit("k", "192.0.2.9", RULE, cost=2) == 0
    assert limiter.hit("k", "192.0.2.9", RULE, cost=1) == 30.0
