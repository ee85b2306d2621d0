"""Claims are short and renewed while held: a live dispatcher keeps its events however slow the
call, and a dead one's events are claimable again within one lease (both backends)."""

from __future__ import annotations

import threading
import time

from app.outbox.leases import KeptLeases
from app.outbox.store import Event
from app.outbox.store import Routed
from app.outbox.store import State

T0 = 1_700_000_000.0


def add(store, n: int) -> None:
    events = [
        Routed(
            Event(
                message_id=f"m{i}",
                type="track",
                source_key_id="k",
                source_kind="server",
                received_at=T0,
                timestamp="2024-03-05T16:00:00Z",
                user_id="u",
                anonymous_id=None,
                payload={"type": "track", "messageId": f"m{i}"},
            ),
            State.PENDING,
        )
        for i in range(n)
    ]
    store.add(events, T0)


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t


def test_renewed_claims_outlive_many_leases_while_held(backend_store):
    add(backend_store, 3)
    clock = Clock()
    kept = KeptLeases(backend_store, 10.0, clock.now)
    try:
        assert len(kept.claim(3, 10.0, clock.t)) == 3
        for _ in range(6):  # a minute of a slow call, renewed every few seconds
            clock.t += 9.0
            assert kept.renew_due() == 3
            assert backend_store.claim(10, 10.0, clock.t + 1.0) == []
    finally:
        kept.close()


def test_a_claim_nobody_renews_is_claimable_after_one_lease(backend_store):
    add(backend_store, 2)
    clock = Clock()
    kept = KeptLeases(backend_store, 10.0, clock.now)
    try:
        claimed = kept.claim(2, 10.0, clock.t)
        assert {e.id for e in claimed} and kept.held() == 2
        clock.t += 9.0
        assert kept.renew_due() == 2
        # Renewed: another process claiming past the first lease's end finds nothing.
        assert backend_store.claim(10, 10.0, T0 + 15.0) == []
        kept.ack([claimed[0].id], clock.t)
        assert kept.held() == 1
        # The process dies here (no more renewals): its claim lapses one lease after the renewal.
        assert backend_store.claim(10, 10.0, T0 + 18.9) == []
        again = backend_store.claim(10, 10.0, T0 + 19.0)
        assert [e.id for e in again] == [claimed[1].id]
        # The lapsed lease is not extended over the new owner's claim, and is forgotten here.
        clock.t = T0 + 19.5
        assert kept.renew_due() == 0
        assert kept.held() == 0
    finally:
        kept.close()


def test_the_heartbeat_thread_renews_in_real_time(backend_store):
    add(backend_store, 1)
    kept = KeptLeases(backend_store, 1.5, time.time)
    try:
        (claimed,) = kept.claim(1, 1.5, time.time())
        deadline = time.monotonic() + 10
        end = time.time() + 3.0
        while time.time() < end:  # two leases: renewed all along
            assert backend_store.claim(1, 1.5, time.time()) == []
            assert time.monotonic() < deadline
            threading.Event().wait(0.05)  # poll interval
        kept.ack([claimed.id], time.time())
        assert backend_store.get(claimed.id).state is State.DELIVERED
    finally:
        kept.close()
