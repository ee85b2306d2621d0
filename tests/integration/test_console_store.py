"""The console's store queries on both backends: recent events with filters, activity, purge."""

from __future__ import annotations

import pytest

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
    assert [s.event.message_id for s in store.recent({"message_id": "m2"})] == ["m2"]
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
