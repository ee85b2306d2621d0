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

    assert delivery.state_of(message_id) == ("dropped", "hold_expired")
