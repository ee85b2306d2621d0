"""Batching and leases: flush on size or linger, and a crashed worker's claims come back."""

from __future__ import annotations

from app.delivery.engine import Engine


def test_partial_batch_lingers_while_events_keep_coming(delivery) -> None:
    """Fewer events than batch_size go out linger_ms after the first one, in one call."""
    delivery.configure(limits={"batch_size": 300, "batch_wait_s": 2.0, "linger_ms": 2000})
    dispatcher = delivery.engine.dispatcher
    delivery.track("u1")
    assert dispatcher.run_once(flush=False) == 0
    delivery.clock.advance(1.0)
    delivery.track("u2")
    assert dispatcher.run_once(flush=False) == 0
    delivery.clock.advance(1.0)
    assert dispatcher.run_once(flush=False) == 2
    assert len(delivery.fake.calls_to("/activities/external.json")) == 1


def test_full_batch_goes_at_once(delivery) -> None:
    """A batch that reaches batch_size does not wait."""
    delivery.configure(limits={"batch_size": 10, "batch_wait_s": 60.0, "linger_ms": 60_000})
    for i in range(25):
        delivery.track(f"u{i % 3}")
    dispatcher = delivery.engine.dispatcher
    assert dispatcher.run_once(flush=False) == 10
    assert dispatcher.run_once(flush=False) == 10
    assert dispatcher.run_once(flush=False) == 0  # 5 left, younger than the linger
    delivery.clock.advance(60.0)
    assert dispatcher.run_once(flush=False) == 5


def test_crashed_workers_claims_return_after_the_lease(delivery) -> None:
    """Events claimed by a worker that died are delivered by another once the lease ends."""
    ids = [delivery.track("u1"), delivery.track("u2")]
    crashed = delivery.store.claim(10, 60.0, delivery.clock.now())
    assert len(crashed) == 2
    other = Engine(
        lambda: delivery.settings,
        delivery.store,
        delivery.shared,
        clock=delivery.clock.now,
        sleep=delivery.clock.advance,
        resync_usage=False,
    )
    assert other.dispatcher.run_once() == 0  # still leased
    delivery.clock.advance(61.0)
    assert other.dispatcher.run_once() == 2
    other.close()
    assert {delivery.state_of(m) for m in ids} == {("delivered", None)}


def test_stopping_hands_buffered_claims_back(delivery) -> None:
    """A worker stopping with a partial batch buffered returns it to pending, uncharged."""
    delivery.configure(limits={"batch_size": 300, "batch_wait_s": 30.0, "linger_ms": 30_000})
    message = delivery.track("u1")
    dispatcher = delivery.engine.dispatcher
    assert dispatcher.run_once(flush=False) == 0
    assert delivery.state_of(message) == ("in_flight", None)
    dispatcher.release_buffer()
    (stored,) = delivery.store.find(message)
    assert stored.state.value == "pending" and stored.attempts == 0
