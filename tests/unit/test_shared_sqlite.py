"""SharedState on SQLite: one budget, token and lead cache across threads and processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from app.coordination.sqlite import SqliteSharedState
from app.coordination.sqlite import sqlite_path
from app.marketo.token import Token
from app.ratelimit import Budget

NOW = 1_700_000_000.0
BUDGET = Budget(calls_per_window=10, concurrency=3, daily_quota=1000, window_s=20.0)


@pytest.fixture
def shared(tmp_path: Path):
    state = SqliteSharedState(str(tmp_path / "outbox.db"))
    yield state
    state.close()


def _grab(path: str, attempts: int, queue) -> None:
    state = SqliteSharedState(path)
    won = 0
    for _ in range(attempts):
        decision, slot = state.acquire_slot(BUDGET, NOW, 60.0)
        if slot is not None:
            won += 1
            state.release_slot(slot, True, NOW)
    state.close()
    queue.put(won)


def test_processes_share_one_window(tmp_path: Path) -> None:
    """Four processes racing for slots at the same instant get exactly the window's size."""
    path = str(tmp_path / "outbox.db")
    SqliteSharedState(path).close()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_grab, args=(path, 8, queue)) for _ in range(4)]
    for proc in procs:
        proc.start()
    total = sum(queue.get(timeout=30) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
    assert total == BUDGET.calls_per_window


def test_concurrency_counts_unreleased_slots_until_they_expire(shared) -> None:
    """In-flight slots block new calls; a crashed holder's slot frees itself after its ttl."""
    slots = [shared.acquire_slot(BUDGET, NOW, 5.0)[1] for _ in range(3)]
    assert all(slots)
    decision, slot = shared.acquire_slot(BUDGET, NOW, 5.0)
    assert slot is None and decision.reason == "concurrency"
    shared.release_slot(slots[0], True, NOW)
    assert shared.acquire_slot(BUDGET, NOW, 5.0)[1] is not None
    assert shared.acquire_slot(BUDGET, NOW + 6, 5.0)[1] is not None


def test_uncounted_calls_give_back_quota(shared) -> None:
    """A call Marketo refused (response-level error) does not use the daily quota."""
    _, slot = shared.acquire_slot(BUDGET, NOW, 5.0)
    shared.release_slot(slot, False, NOW)
    _, slot = shared.acquire_slot(BUDGET, NOW, 5.0)
    shared.release_slot(slot, True, NOW)
    view = shared.limiter(BUDGET, NOW)
    assert view.calls_today == 1 and view.window_calls == 2 and view.in_flight == 0


def test_daily_count_resets_on_a_new_quota_day(shared) -> None:
    """Yesterday's calls do not count today."""
    shared.set_calls_today(999, BUDGET, NOW)
    _, slot = shared.acquire_slot(BUDGET, NOW, 5.0)
    shared.release_slot(slot, True, NOW)
    assert shared.acquire_slot(BUDGET, NOW + 1, 5.0)[0].reason == "quota"
    assert shared.limiter(BUDGET, NOW + 86_400).calls_today == 0


def test_pause_holds_calls_and_longer_pause_wins(shared) -> None:
    """606 pauses everyone; a shorter pause never cuts a longer one."""
    shared.pause(NOW + 30, "607")
    shared.pause(NOW + 10, "606")
    decision, slot = shared.acquire_slot(BUDGET, NOW, 5.0)
    assert slot is None and decision.reason == "607" and decision.wait == pytest.approx(30)
    view = shared.limiter(BUDGET, NOW)
    assert view.paused_until == NOW + 30 and view.pause_reason == "607"
    assert shared.acquire_slot(BUDGET, NOW + 31, 5.0)[1] is not None
    assert shared.limiter(BUDGET, NOW + 31).paused_until is None


def test_token_is_dropped_only_if_unchanged(shared) -> None:
    """A process dropping a stale token does not remove the one another process just fetched."""
    shared.put_token("k", Token("old", NOW + 100, NOW))
    shared.put_token("k", Token("new", NOW + 3600, NOW + 1))
    shared.drop_token("k", "old")
    assert shared.get_token("k") == Token("new", NOW + 3600, NOW + 1)
    shared.drop_token("k", "new")
    assert shared.get_token("k") is None


def test_reused_token_keeps_its_first_fetch_time(shared) -> None:
    """Marketo hands out the same token until expiry; its age counts from the first fetch."""
    shared.put_token("k", Token("t", NOW + 3600, NOW))
    shared.put_token("k", Token("t", NOW + 3000, NOW + 600))
    assert shared.get_token("k") == Token("t", NOW + 3000, NOW)


def test_lead_cache_is_scoped_evicted_and_repointed(shared) -> None:
    """Identities are cached per Munchkin ID, evicted per lead, repointed on merge."""
    shared.put_leads("AAA", {("email", "a@x.io"): 1, ("userId", "u1"): 1, ("userId", "u2"): 2}, NOW)
    shared.put_leads("BBB", {("email", "a@x.io"): 9}, NOW)
    wanted = [("email", "a@x.io"), ("userId", "u2"), ("userId", "nope")]
    assert shared.get_leads("AAA", wanted) == {("email", "a@x.io"): 1, ("userId", "u2"): 2}
    assert shared.repoint_leads("AAA", [2], 1) == 1
    assert shared.get_leads("AAA", [("userId", "u2")]) == {("userId", "u2"): 1}
    assert shared.evict_lead("AAA", 1) == 3
    assert shared.get_leads("AAA", wanted) == {}
    assert shared.get_leads("BBB", wanted) == {("email", "a@x.io"): 9}


def test_trait_hashes_and_cookies(shared) -> None:
    """Hashes and associated cookies round-trip and are forgotten with the lead."""
    shared.put_trait_hashes("AAA", {1: "h1", 2: "h2"})
    shared.mark_associated("AAA", [("c1", 1)])
    assert shared.get_trait_hashes("AAA", [1, 2, 3]) == {1: "h1", 2: "h2"}
    assert shared.associated("AAA", [("c1", 1), ("c1", 2)]) == {("c1", 1)}
    shared.evict_lead("AAA", 1)
    assert shared.get_trait_hashes("AAA", [1]) == {}
    assert shared.associated("AAA", [("c1", 1)]) == set()


def test_lock_is_exclusive_until_expiry(shared) -> None:
    """Single-flight: one owner at a time, and a dead owner's lock expires."""
    assert shared.try_lock("leads", "a", 10, NOW)
    assert not shared.try_lock("leads", "b", 10, NOW + 1)
    assert shared.try_lock("leads", "b", 10, NOW + 11)
    shared.unlock("leads", "a")
    assert not shared.try_lock("leads", "a", 10, NOW + 12)
    shared.unlock("leads", "b")
    assert shared.try_lock("leads", "a", 10, NOW + 12)


def test_last_error_round_trips(shared) -> None:
    """The last error survives for `flask status` and can be cleared."""
    shared.set_last_error({"code": "606", "message": "rate", "at": NOW})
    assert shared.last_error() == {"code": "606", "message": "rate", "at": NOW}
    shared.set_last_error(None)
    assert shared.last_error() is None


def test_sqlite_path_parses_store_urls() -> None:
    """Absolute paths have four slashes, relative three."""
    assert sqlite_path("sqlite:////tmp/x.db") == "/tmp/x.db"
    assert sqlite_path("sqlite:///instance/outbox.db") == "instance/outbox.db"
    with pytest.raises(ValueError):
        sqlite_path("postgresql://localhost/db")
