"""Ad-blocked browsers' tracks (no Munchkin cookie, no email, no id field) are normal traffic:
they are held, then dropped `anonymous_expired` when the hold ends, never dead-lettered."""

from __future__ import annotations

DAY_S = 86_400.0


def test_ad_blocked_anonymous_tracks_end_held_then_dropped_never_dead(delivery) -> None:
    """With the defaults (track_anonymous true, no lead fields), a cookie-less anonymous track
    waits for an identify; after anonymous_hold_days it is dropped with its reason."""
    delivery.configure(lead_fields={"user_id": None, "anonymous_id": None}, anonymous_hold_days=7)
    tracks = [
        delivery.add("track", anonymousId=f"anon-{n}", event="Signed Up", properties={})
        for n in range(3)
    ]
    delivery.drain()
    assert [delivery.state_of(m) for m in tracks] == [("held", None)] * 3
    assert delivery.store.counts(delivery.clock.now())["dead"] == {}

    delivery.clock.advance(6 * DAY_S)
    delivery.engine.dispatcher.run_once(flush=True)
    assert [delivery.state_of(m) for m in tracks] == [("held", None)] * 3  # still inside the hold

    delivery.clock.advance(2 * DAY_S)
    delivery.engine.dispatcher.run_once(flush=True)
    assert [delivery.state_of(m) for m in tracks] == [("dropped", "anonymous_expired")] * 3
    counts = delivery.store.counts(delivery.clock.now())
    assert counts["dead"] == {} and counts["dropped"] == {"anonymous_expired": 3}
    assert delivery.fake.activities == []
