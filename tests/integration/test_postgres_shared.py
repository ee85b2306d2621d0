"""The SharedState contract on SQLite and PostgreSQL: one budget, token and cache for all nodes.

"Nodes" here are separate SharedState objects on one database, each with its own connections,
racing from threads: exactly what separate gateway processes do to the database.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.coordination import open_shared
from app.marketo.token import Token
from app.ratelimit import Budget

NOW = 1_700_000_000.0
BUDGET = Budget(calls_per_window=12, concurrency=4, daily_quota=1000, window_s=20.0)


@pytest.fixture
def shared(backend_shared):
    """Every test here runs once per backend."""
    return backend_shared


def test_racing_nodes_get_exactly_one_window_of_calls(store_url, tmp_path: Path):
    nodes = [open_shared(store_url, tmp_path) for _ in range(4)]
    barrier = threading.Barrier(len(nodes))
    won: list[int] = []

    def race(node) -> None:
        barrier.wait()
        for _ in range(8):
            _, slot = node.acquire_slot(BUDGET, NOW, 60.0)
            if slot is not None:
                won.append(slot.id)
                node.release_slot(slot, True, NOW)

    threads = [threading.Thread(target=race, args=(n,)) for n in nodes]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == BUDGET.calls_per_window
        assert nodes[0].limiter(BUDGET, NOW).window_calls == BUDGET.calls_per_window
        assert nodes[1].acquire_slot(BUDGET, NOW + 20.1, 60.0)[1] is not None
    finally:
        for n in nodes:
            n.close()


def test_in_flight_slots_cap_concurrency_until_released_or_expired(shared):
    slots = [shared.acquire_slot(BUDGET, NOW, 5.0)[1] for _ in range(BUDGET.concurrency)]
    assert all(slots)
    decision, none = shared.acquire_slot(BUDGET, NOW, 5.0)
    assert none is None and decision.reason == "concurrency"
    assert shared.limiter(BUDGET, NOW).in_flight == BUDGET.concurrency
    shared.release_slot(slots[0], True, NOW)
    assert shared.acquire_slot(BUDGET, NOW, 5.0)[1] is not None
    assert shared.acquire_slot(BUDGET, NOW + 5.1, 5.0)[1] is not None


def test_uncounted_calls_return_their_quota_unit(shared):
    for counted in (False, True, True):
        _, slot = shared.acquire_slot(BUDGET, NOW, 5.0)
        shared.release_slot(slot, counted, NOW)
    view = shared.limiter(BUDGET, NOW)
    assert (view.calls_today, view.window_calls, view.in_flight) == (2, 3, 0)


def test_quota_blocks_until_the_next_quota_day(shared):
    shared.set_calls_today(BUDGET.daily_quota, BUDGET, NOW)
    decision, slot = shared.acquire_slot(BUDGET, NOW, 5.0)
    assert slot is None and decision.reason == "quota" and decision.wait > 0
    assert shared.limiter(BUDGET, NOW + 86_400).calls_today == 0
    assert shared.acquire_slot(BUDGET, NOW + 86_400, 5.0)[1] is not None


def test_a_pause_holds_every_node_and_the_longer_pause_wins(shared):
    shared.pause(NOW + 30, "rate_limited")
    shared.pause(NOW + 10, "shorter")
    decision, slot = shared.acquire_slot(BUDGET, NOW, 5.0)
    assert slot is None and decision.reason == "rate_limited"
    assert decision.wait == pytest.approx(30.0)
    view = shared.limiter(BUDGET, NOW)
    assert (view.paused_until, view.pause_reason) == (NOW + 30, "rate_limited")
    assert shared.acquire_slot(BUDGET, NOW + 30, 5.0)[1] is not None
    assert shared.limiter(BUDGET, NOW + 31).paused_until is None


def test_one_token_is_seen_by_every_node_and_only_its_holder_value_is_dropped(
    store_url, tmp_path: Path
):
    one, two = open_shared(store_url, tmp_path), open_shared(store_url, tmp_path)
    try:
        one.put_token("client", Token("tok-1", NOW + 3600, NOW))
        assert two.get_token("client") == Token("tok-1", NOW + 3600, NOW)
        two.put_token("client", Token("tok-1", NOW + 3700, NOW + 100))
        assert one.get_token("client").fetched_at == NOW  # same token: first fetch time kept
        two.drop_token("client", "stale-token")
        assert one.get_token("client") is not None
        two.drop_token("client", "tok-1")
        assert one.get_token("client") is None
    finally:
        one.close()
        two.close()


def test_lead_cache_put_get_repoint_and_evict(shared):
    shared.put_leads("123-ABC-456", {("email", "a@x.io"): 1, ("userId", "u1"): 1}, NOW)
    shared.put_leads("123-ABC-456", {("email", "b@x.io"): 2, ("email", "a@x.io"): 1}, NOW)
    shared.put_leads("other", {("email", "a@x.io"): 9}, NOW)
    wanted = [("email", "a@x.io"), ("email", "b@x.io"), ("email", "c@x.io"), ("userId", "u1")]
    assert shared.get_leads("123-ABC-456", wanted) == {
        ("email", "a@x.io"): 1,
        ("email", "b@x.io"): 2,
        ("userId", "u1"): 1,
    }
    shared.put_trait_hashes("123-ABC-456", {1: "h1", 2: "h2"})
    assert shared.repoint_leads("123-ABC-456", [1], 2) == 2
    assert shared.get_leads("123-ABC-456", [("userId", "u1")]) == {("userId", "u1"): 2}
    assert shared.get_trait_hashes("123-ABC-456", [1, 2]) == {}
    shared.mark_associated("123-ABC-456", [("cookie-1", 2)])
    assert shared.evict_lead("123-ABC-456", 2) == 3
    assert shared.get_leads("123-ABC-456", wanted) == {}
    assert shared.associated("123-ABC-456", [("cookie-1", 2)]) == set()
    assert shared.get_leads("other", wanted[:1]) == {("email", "a@x.io"): 9}


def test_trait_hashes_and_associated_cookies_are_remembered(shared):
    shared.put_trait_hashes("s", {5: "aaa"})
    shared.put_trait_hashes("s", {5: "bbb", 6: "ccc"})
    assert shared.get_trait_hashes("s", [5, 6, 7]) == {5: "bbb", 6: "ccc"}
    shared.mark_associated("s", [("ck", 5), ("ck", 5)])
    shared.mark_associated("s", [("ck", 5)])
    assert shared.associated("s", [("ck", 5), ("ck", 6), ("other", 5)]) == {("ck", 5)}


def test_named_lease_has_one_holder_until_released_or_expired(shared):
    assert shared.try_lock("lead-create", "node-a", 10.0, NOW)
    assert not shared.try_lock("lead-create", "node-b", 10.0, NOW + 5)
    assert shared.try_lock("lead-create", "node-a", 10.0, NOW + 5)  # renew own lease
    shared.unlock("lead-create", "node-b")  # not the holder: no effect
    assert not shared.try_lock("lead-create", "node-b", 10.0, NOW + 14)
    assert shared.try_lock("lead-create", "node-b", 10.0, NOW + 15)
    shared.unlock("lead-create", "node-b")
    assert shared.try_lock("lead-create", "node-c", 10.0, NOW + 16)


def test_last_error_round_trips_and_clears(shared):
    assert shared.last_error() is None
    shared.set_last_error({"code": "606", "message": "Max rate limit exceeded", "at": NOW})
    assert shared.last_error() == {"code": "606", "message": "Max rate limit exceeded", "at": NOW}
    shared.set_last_error(None)
    assert shared.last_error() is None
