"""The console's store queries on both backends: recent events with filters, activity, purge."""

from __future__ import annotations

import pytest

from app.outbox.store import Attempt
from app.outbox.store import Call
from app.outbox.store import Event
from app.outbox.store import Routed
from app.outbox.store import State

NOW = 1_800_000_000.0


def routed(i: int, received: float, state: State = State.PENDING) -> Routed:
    """Event i of user u{i % 3}, visitor a{i}."""
    payload = {"type": "track", "event": f"E{i}", "messageId": f"m{i}"}
    event = Event(f"m{i}", "track", "k", "server", received, "t", f"u{i % 3}", f"a{i}", payload)
    reason = "event_not_mapped" if state is State.DROPPED else None
    return Routed(event, state, reason)


@pytest.fixture
def filled(backend_store):
    """Nine events a minute apart, the last one dropped, two of the first three dead."""
    backend_store.add([routed(i, NOW - 540 + 60 * i) for i in range(8)], NOW)
    backend_store.add([routed(8, NOW, State.DROPPED)], NOW)
    claimed = backend_store.claim(3, 60, NOW)
    backend_store.ack([claimed[0].id], NOW)
    backend_store.dead([c.id for c in claimed[1:]], "marketo_1006", NOW, detail="no field")
    return backend_store, claimed


def test_recent_filters_newest_first(filled):
    """Each filter narrows the list, newest first; unknown filters and states are refused."""
    store, claimed = filled
    assert [s.event.message_id for s in store.recent({}, 3)] == ["m8", "m7", "m6"]
    assert [s.event.message_id for s in store.recent({"user_id": "u1"})] == ["m7", "m4", "m1"]
    assert [s.event.message_id for s in store.recent({"anonymous_id": "a5"})] == ["m5"]
    assert [s.event.message_id for s in store.recent({"message_id": "m2"}, keys=["k"])] == ["m2"]
    assert store.recent({"message_id": "m2"}, keys=["other"]) == []  # another key's window
    assert {s.id for s in store.recent({"state": "dead"})} == {c.id for c in claimed[1:]}
    assert store.recent({"state": "dead", "user_id": "u0"}) == []
    assert [s.event.message_id for s in store.recent({"state": "dropped"})] == ["m8"]
    with pytest.raises(ValueError):
        store.recent({"state": "bogus"})
    with pytest.raises(ValueError):
        store.recent({"payload": "x"})


def test_activity_counts_per_minute(filled):
    """Received per minute of arrival; outcomes per minute of their last change."""
    store, _ = filled
    series = store.activity(NOW - 300)
    minute = int(NOW // 60)
    assert sum(series["received"].values()) == 5  # m4..m8 arrived in the last 5 minutes
    assert series["received"][minute] == 1
    assert series["delivered"] == {minute: 1}
    assert series["dead"] == {minute: 2}
    assert series["dropped"] == {minute: 1}


def test_purge_by_id_then_by_reason(filled):
    """Purge removes only dead events: one by id, then the rest of a reason."""
    store, claimed = filled
    assert store.purge([claimed[0].id], None) == 0  # delivered, not dead
    assert store.purge([claimed[1].id], None) == 1
    assert store.get(claimed[1].id) is None
    assert store.purge(None, "marketo_1006") == 1
    assert store.recent({"state": "dead"}) == []
    assert store.get(claimed[0].id).state is State.DELIVERED


def test_message_id_filter_finds_each_keys_event_in_a_shared_commit(backend_store):
    """Events stored in one commit, with repeats and two keys, are each found by messageId:
    the dedupe entry names the very row it stored."""
    first = [routed(i, NOW) for i in range(5)]
    again = Event("m3", "track", "k", "server", NOW, "t", "u9", "a9", {"messageId": "m3"})
    other_key = Event("m3", "track", "k2", "server", NOW, "t", "u7", "a7", {"messageId": "m3"})
    stored = backend_store.add([*first, Routed(again), Routed(other_key)], NOW)
    assert stored == [True] * 5 + [False, True]
    found = backend_store.recent({"message_id": "m3"}, keys=["k", "k2"])
    assert sorted((s.event.source_key_id, s.event.anonymous_id) for s in found) == [
        ("k", "a3"),
        ("k2", "a7"),
    ]
    for i in range(5):
        (hit,) = backend_store.recent({"message_id": f"m{i}"}, keys=["k"])
        assert hit.event.anonymous_id == f"a{i}"


def test_email_filter_matches_traits_context_and_user_id_in_any_case(backend_store):
    """The email a payload names (traits, context traits, an email userId) is searchable."""
    payloads = [
        {"type": "identify", "traits": {"email": "Ann@Example.com"}},
        {"type": "track", "context": {"traits": {"email": "ann@example.com "}}},
        {"type": "track", "userId": "ANN@example.com"},
        {"type": "track", "properties": {"email": "ann@example.com"}},  # not an identity
        {"type": "identify", "traits": {"email": ["ann@example.com"]}},  # not a string
    ]
    backend_store.add(
        [
            Routed(Event(f"e{i}", p["type"], "k", "server", NOW + i, "t", None, f"a{i}", p))
            for i, p in enumerate(payloads)
        ],
        NOW,
    )
    found = backend_store.recent({"email": " ANN@example.COM"})
    assert [s.event.message_id for s in found] == ["e2", "e1", "e0"]
    assert backend_store.recent({"email": "bob@example.com"}) == []


def test_history_and_calls_are_kept_per_event(backend_store):
    """Each noted attempt is appended (the oldest dropped past the cap); the lead id stays
    once known; a batch's calls come back in order."""
    backend_store.add([routed(0, NOW), routed(1, NOW)], NOW)
    a, b = backend_store.claim(2, 60, NOW)
    backend_store.note({a.id: Attempt(NOW, "retry", "marketo_606", "b1", None)})
    backend_store.note(
        {
            a.id: Attempt(NOW + 5, "delivered", None, "b2", 4512),
            b.id: Attempt(NOW + 5, "held", "no_lead", "b2"),
        }
    )
    backend_store.note({a.id: Attempt(NOW + 6, "retry", "x", "b3", None)})
    event = backend_store.get(a.id)
    assert event.lead_id == 4512
    assert [h["outcome"] for h in event.history] == ["retry", "delivered", "retry"]
    assert event.history[1] == {
        "at": NOW + 5,
        "outcome": "delivered",
        "batch": "b2",
        "lead_id": 4512,
    }
    assert backend_store.get(b.id).history == (
        {"at": NOW + 5, "outcome": "held", "reason": "no_lead", "batch": "b2"},
    )
    for i in range(25):
        backend_store.note({b.id: Attempt(NOW + 10 + i, "retry", None, f"r{i}")})
    history = backend_store.get(b.id).history
    assert len(history) == 20 and history[-1]["batch"] == "r24" and history[0]["batch"] == "r5"

    made = [
        Call(NOW, "POST", "/rest/v1/leads.json", "success", 812, records=2),
        Call(NOW + 1, "POST", "/rest/v1/activities/external.json", "RateLimited", 95, "606",
             "Max rate limit '100' exceeded with in '20' secs", 2),
    ]  # fmt: skip
    backend_store.record_calls("b2", made)
    backend_store.record_calls("b9", made[:1])
    assert backend_store.calls(["b2"]) == {"b2": made}
    assert backend_store.calls(["b2", "b9", "none"])["b9"] == made[:1]
    assert backend_store.calls([]) == {}


def test_compaction_prunes_old_calls(backend_store):
    """Calls recorded before the compaction horizon go; later ones stay."""
    backend_store.record_calls("old", [Call(NOW - 100, "GET", "/x", "success", 1)])
    backend_store.record_calls("new", [Call(NOW, "GET", "/x", "success", 1)])
    backend_store.compact(NOW - 50)
    assert set(backend_store.calls(["old", "new"])) == {"new"}
