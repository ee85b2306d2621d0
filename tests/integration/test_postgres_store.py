"""The Store contract, run on SQLite and on PostgreSQL (the parametrised `backend_store`)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.outbox import open_store
from app.outbox.store import Event
from app.outbox.store import Routed
from app.outbox.store import State

T0 = 1_700_000_000.0


@pytest.fixture
def store(backend_store):
    """Every test here runs once per backend."""
    return backend_store


def event(mid: str, anonymous_id: str | None = "anon-1", **payload) -> Event:
    body = {"type": "track", "event": "Order Placed", "messageId": mid, **payload}
    return Event(mid, "track", "key_server", "server", T0, "2023-11-14T22:13:20.000Z",
                 None, anonymous_id, body)  # fmt: skip


def add(store, *mids: str, state: State = State.PENDING, reason=None, now: float = T0):
    return store.add([Routed(event(m), state, reason) for m in mids], now)


def claim_ids(store, now: float = T0, limit: int = 100) -> list[int]:
    return [c.id for c in store.claim(limit, 30, now)]


def test_duplicates_within_and_across_calls_are_reported_and_stored_once(store):
    assert add(store, "a", "b", "b") == [True, True, False]
    assert add(store, "b", "c") == [False, True]
    assert [s.event.message_id for s in store.claim(10, 30, T0)] == ["a", "b", "c"]


def test_a_repeat_after_the_dedupe_window_is_stored_again(store):
    add(store, "a")
    assert add(store, "a", now=T0 + 3599) == [False]
    assert add(store, "a", now=T0 + 3601) == [True]
    assert store.counts(T0 + 3601)["pending"] == 2


def test_payload_round_trips_exactly_including_nul_and_unicode(store):
    store.add([Routed(event("u", note="caf\u00e9 \u0000 \U0001f600", n=[1, 2.5, None]))], T0)
    [claimed] = store.claim(1, 30, T0)
    assert claimed.event.payload["note"] == "caf\u00e9 \u0000 \U0001f600"
    assert claimed.event.payload["n"] == [1, 2.5, None]
    assert claimed.event.anonymous_id == "anon-1"


def test_claims_lease_oldest_first_and_expired_leases_come_back(store):
    store.add([Routed(event(m, anonymous_id=f"anon-{m}")) for m in ("a", "b", "c")], T0)
    assert [s.event.message_id for s in store.claim(2, 30, T0)] == ["a", "b"]
    assert [s.event.message_id for s in store.claim(5, 30, T0)] == ["c"]
    assert store.claim(5, 30, T0 + 29.9) == []
    again = store.claim(5, 30, T0 + 30)
    assert [s.event.message_id for s in again] == ["a", "b", "c"]
    assert {s.state for s in again} == {State.IN_FLIGHT}
    assert again[0].next_attempt_at == T0 + 60


def test_retry_delays_and_charges_unless_told_not_to(store):
    add(store, "a")
    [eid] = claim_ids(store)
    store.retry([eid], at=T0 + 50, error="604: timeout", now=T0)
    assert claim_ids(store, T0 + 49) == []
    assert claim_ids(store, T0 + 50) == [eid]
    store.retry([eid], at=T0 + 50, error="601: token", now=T0 + 50, charge=False)
    got = store.get(eid)
    assert (got.state, got.attempts, got.detail) == (State.PENDING, 1, "601: token")


def test_outcomes_count_by_reason_and_survive_compaction(store):
    add(store, "a", "b", "c", "d")
    add(store, "e", state=State.DROPPED, reason="event_not_mapped")
    ids = claim_ids(store)
    store.ack(ids[:2], T0)
    store.drop(ids[2:3], "disabled_by_integrations", T0)
    store.dead(ids[3:], "marketo_1006", T0, detail="unknown field")
    before = store.counts(T0 + 10)
    assert before["delivered"] == 2
    assert before["dropped"] == {"event_not_mapped": 1, "disabled_by_integrations": 1}
    assert before["dead"] == {"marketo_1006": 1}
    assert store.compact(T0 + 1) == 4
    after = store.counts(T0 + 10)
    assert after == before
    assert store.get(ids[0]) is None and store.get(ids[3]).state is State.DEAD
    assert add(store, "a", now=T0 + 10) == [False]


def test_held_anonymous_ids_are_listed_once_each_in_pages(store):
    held = [("h1", "b"), ("h2", "a"), ("h3", "b"), ("h4", "c")]
    store.add([Routed(event(m, anonymous_id=a), State.HELD) for m, a in held], T0)
    add(store, "p1")
    assert store.held_anonymous_ids("", 2) == ["a", "b"]
    assert store.held_anonymous_ids("b", 2) == ["c"]
    assert store.release_held("b", None, T0) == 2
    assert store.held_anonymous_ids("", 10) == ["a", "c"]


def test_dedupe_is_per_source_key(store):
    from dataclasses import replace

    server = event("same-id")
    browser = replace(server, source_key_id="key_browser", source_kind="browser")
    assert store.add([Routed(server, State.PENDING)], T0) == [True]
    assert store.add([Routed(browser, State.PENDING), Routed(server, State.PENDING)], T0) == [
        True,
        False,
    ]
    assert sorted(s.event.source_key_id for s in store.find("same-id")) == [
        "key_browser",
        "key_server",
    ]


def test_finishing_an_event_twice_counts_it_once(store):
    add(store, "a")
    [eid] = claim_ids(store)
    store.ack([eid], T0)
    store.ack([eid], T0)
    store.drop([eid], "late", T0)
    store.retry([eid], T0, "late", T0)
    counts = store.counts(T0)
    assert (counts["delivered"], counts["dropped"], counts["pending"]) == (1, {}, 0)


def test_held_events_wait_for_their_user_then_expire(store):
    store.add([Routed(event("h1", anonymous_id="x"), State.HELD)], T0)
    store.add([Routed(event("h2", anonymous_id="y"), State.HELD)], T0)
    assert store.claim(10, 30, T0) == [] and store.counts(T0)["held"] == 2
    assert store.release_held("x", "user-9", T0 + 1) == 1
    [released] = store.claim(10, 30, T0 + 1)
    assert (released.event.message_id, released.event.user_id) == ("h1", "user-9")
    assert store.expire_held(before=T0 + 1, now=T0 + 2) == 1
    counts = store.counts(T0 + 2)
    assert (counts["held"], counts["dropped"]) == (0, {"anonymous_expired": 1})


def test_dead_letters_are_listed_newest_first_replayed_and_purged(store):
    add(store, "a", "b", "c")
    ids = claim_ids(store)
    store.dead(ids[:2], "marketo_1006", T0)
    store.dead(ids[2:], "bad_property_type", T0 + 1, "price: not a number")
    assert [d.id for d in store.dead_letters()] == [ids[2], ids[1], ids[0]]
    assert [d.id for d in store.dead_letters(reason="marketo_1006", limit=1, offset=1)] == [ids[0]]
    assert store.dead_letters()[0].detail == "price: not a number"
    assert store.replay(None, "bad_property_type", T0 + 2) == 1
    assert store.replay([ids[0]], None, T0 + 2) == 1
    assert (store.get(ids[0]).state, store.get(ids[0]).attempts) == (State.PENDING, 0)
    assert store.purge_dead(before=T0 + 1) == 1
    assert store.get(ids[1]) is None
    assert store.counts(T0 + 3)["dead"] == {}
    assert store.replay(None, None, T0 + 3) == 0


def test_oldest_pending_age_is_reported(store):
    assert store.counts(T0)["oldest_pending_s"] == 0.0
    add(store, "a")
    assert store.counts(T0 + 42)["oldest_pending_s"] == pytest.approx(42.0)


def test_concurrent_adds_share_commits_and_every_one_lands(store):
    threads, per_thread = 12, 15
    barrier = threading.Barrier(threads)
    results: list[list[bool]] = []

    def produce(n: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            results.append(add(store, f"t{n}-{i}", f"t{n}-{i}"))

    workers = [threading.Thread(target=produce, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert results == [[True, False]] * (threads * per_thread)
    assert store.counts(T0)["pending"] == threads * per_thread
    assert store._committer.commits < threads * per_thread


def test_claims_on_two_stores_keep_one_visitor_in_one_batch(store_url, tmp_path: Path):
    """Two nodes claiming at once never both take events of one visitor."""
    stores = [open_store(store_url, tmp_path, 3600.0) for _ in range(2)]
    try:
        stores[0].add([Routed(event(f"m{i}", anonymous_id=f"v{i % 5}")) for i in range(100)], T0)
        batches: list[list[str]] = []

        def claim(s) -> None:
            for _ in range(10):
                batches.append([c.event.anonymous_id for c in s.claim(3, 60, T0)])

        workers = [threading.Thread(target=claim, args=(s,)) for s in stores * 2]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        visitors = [v for batch in batches for v in set(batch)]
        assert sorted(visitors) == [f"v{i}" for i in range(5)]  # each in exactly one batch
    finally:
        for s in stores:
            s.close()


def test_two_stores_on_one_database_never_claim_the_same_event(store_url, tmp_path: Path):
    stores = [open_store(store_url, tmp_path, 3600.0) for _ in range(2)]
    try:
        stores[0].add([Routed(event(f"m{i}", anonymous_id=f"anon-{i}")) for i in range(300)], T0)
        seen: list[int] = []

        def drain(s) -> None:
            while batch := s.claim(9, 60, T0):
                seen.extend(c.id for c in batch)

        workers = [threading.Thread(target=drain, args=(s,)) for s in stores * 2]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert len(seen) == 300 and len(set(seen)) == 300
    finally:
        for s in stores:
            s.close()


def test_ping_passes_and_a_closed_store_refuses_adds(store):
    store.ping()
    store.close()
    with pytest.raises(Exception, match="closed"):
        add(store, "late")
