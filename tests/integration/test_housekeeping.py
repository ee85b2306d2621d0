"""The dispatcher's housekeeping: old rows compacted, old messageIds forgotten, holds expired."""

from __future__ import annotations

from app.outbox.store import State

DAY_S = 86_400.0


def test_old_delivered_rows_are_compacted_but_still_counted(delivery):
    message_id = delivery.track("u1")
    assert delivery.drain() == 1
    assert delivery.state_of(message_id) == ("delivered", None)

    delivery.clock.advance(8 * DAY_S)
    delivery.engine.dispatcher.run_once(flush=True)

    assert delivery.store.find(message_id) == []
    assert delivery.store.counts(delivery.clock.now())["delivered"] == 1


def test_a_message_id_is_forgotten_after_the_dedupe_window(delivery):
    message_id = delivery.track("u1")
    delivery.add("track", messageId=message_id, userId="u1", event="Signed Up")
    assert len(delivery.store.find(message_id)) == 1
    assert delivery.drain() == 1

    delivery.clock.advance(8 * DAY_S)
    delivery.engine.dispatcher.run_once(flush=True)
    delivery.add("track", messageId=message_id, userId="u1", event="Signed Up")

    assert [e.state for e in delivery.store.find(message_id)] == [State.PENDING]


def test_held_anonymous_events_expire_after_the_hold(delivery):
    delivery.configure(track_anonymous=False, anonymous_hold_days=2)
    message_id = delivery.add(
        "track", state=State.HELD, anonymousId="anon-1", event="Signed Up", properties={}
    )
    delivery.engine.dispatcher.run_once(flush=True)
    assert delivery.state_of(message_id) == ("held", None)

    delivery.clock.advance(3 * DAY_S)
    delivery.engine.dispatcher.run_once(flush=True)

    assert delivery.state_of(message_id) == ("dropped", "anonymous_expired")


def identify_then_late_anonymous_track(delivery) -> str:
    delivery.add(
        "identify",
        userId="u1",
        anonymousId="anon-1",
        traits={"email": "ann.lee@example.com"},
    )
    assert delivery.drain() == 1
    late = delivery.add(
        "track",
        state=State.HELD,
        anonymousId="anon-1",
        event="Signed Up",
        properties={"plan": "Pro"},
    )
    delivery.clock.advance(120.0)
    delivery.drain()
    return late


def test_anonymous_event_arriving_after_its_identify_is_released(delivery):
    delivery.configure(track_anonymous=False)
    late = identify_then_late_anonymous_track(delivery)

    assert delivery.state_of(late) == ("delivered", None)
    [lead] = delivery.fake.leads.values()
    assert [a["leadId"] for a in delivery.fake.activities] == [lead["id"]]


def test_anonymous_events_of_unknown_visitors_stay_held(delivery):
    delivery.configure(track_anonymous=False)
    held = delivery.add(
        "track", state=State.HELD, anonymousId="anon-2", event="Signed Up", properties={}
    )
    delivery.clock.advance(120.0)
    delivery.drain()
    assert delivery.state_of(held) == ("held", None)


def test_no_late_release_when_lookup_does_not_use_the_anonymous_id(delivery):
    delivery.configure(track_anonymous=False, lead_lookup=["marketo_cookie", "email", "userId"])
    late = identify_then_late_anonymous_track(delivery)

    assert delivery.state_of(late) == ("held", None)
    assert delivery.fake.activities == []


def test_an_unchanged_identify_from_a_new_visitor_still_releases_its_events(delivery):
    """Same traits cost no lead write, but the new anonymousId is still linked and released."""
    # anonymousId not written to a lead field, so the second identify's fields are unchanged.
    ids = {"user_id": "userId", "anonymous_id": None}
    delivery.configure(track_anonymous=False, lead_fields=ids)
    traits = {"email": "ann.lee@example.com"}
    delivery.add("identify", userId="u1", anonymousId="anon-1", traits=traits)
    assert delivery.drain() == 1
    held = delivery.add(
        "track", state=State.HELD, anonymousId="anon-2", event="Signed Up", properties={}
    )
    delivery.add("identify", userId="u1", anonymousId="anon-2", traits=traits)
    delivery.drain()

    assert delivery.state_of(held) == ("delivered", None)
    assert len(delivery.fake.calls_to("/leads.json")) == 1  # the second identify wrote nothing
