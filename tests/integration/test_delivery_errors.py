"""Every error class of SPEC §6.7 against the fake Marketo: each event ends delivered or dead
with its reason, nothing is lost, and the gateway itself never causes a 606 or 615."""

from __future__ import annotations

from collections import Counter

from app.ratelimit import Budget

ACTIVITIES = "/activities/external.json"


def settled(delivery, ids) -> Counter:
    """Return final (state, reason) counts, asserting nothing is left open."""
    assert delivery.open_events() == 0
    return Counter(delivery.state_of(m) for m in ids)


def test_token_expiry_mid_batch_is_refreshed_once_without_charge(delivery) -> None:
    """602 drops the token, a new one is fetched, the batch goes again at once, uncharged."""
    delivery.warm()
    delivery.fake.expire_token()
    ids = [delivery.track(f"user{i % 5}") for i in range(20)]
    assert delivery.drain() == 20
    assert settled(delivery, ids) == Counter({("delivered", None): 20})
    assert delivery.fake.errors_returned["602"] == 1
    assert len(delivery.fake.calls_to("/identity/oauth/token")) == 1
    assert all(s.attempts == 0 for m in ids for s in delivery.store.find(m))


def test_606_storm_pauses_the_limiter_and_loses_nothing(delivery) -> None:
    """Marketo's 606 (another integration used the budget) pauses everyone, uncharged."""
    delivery.warm()
    delivery.fake.script(ACTIVITIES, *[{"code": "606"}] * 4)
    ids = [delivery.track(f"user{i % 5}") for i in range(50)]
    delivery.drain(advance=5.0)
    assert settled(delivery, ids) == Counter({("delivered", None): 50})
    assert delivery.fake.errors_returned["606"] == 4
    assert all(s.attempts == 0 for m in ids for s in delivery.store.find(m))
    calls = delivery.fake.calls_to(ACTIVITIES)
    for refused, after in zip(calls, calls[1:], strict=False):
        if refused.code == "606":
            assert after.time >= refused.time + 20.0  # waited for the window to roll


def test_607_parks_until_the_quota_resets_while_intake_accepts(delivery) -> None:
    """607 parks delivery until midnight in Chicago; events accepted meanwhile wait; then go."""
    delivery.warm()
    delivery.fake.script(ACTIVITIES, {"code": "607"})
    first = [delivery.track("user1") for _ in range(3)]
    delivery.drain()
    assert {delivery.state_of(m) for m in first} == {("pending", None)}
    later = [delivery.track("user2") for _ in range(3)]
    assert delivery.drain() == 0  # parked: nothing claimed, nothing called
    assert len(delivery.fake.calls_to(ACTIVITIES)) == 1
    delivery.clock.advance(14 * 3600 + 60)  # 10:00 → past midnight in Chicago
    delivery.drain()
    assert settled(delivery, first + later) == Counter({("delivered", None): 6})


def test_local_daily_quota_parks_before_marketo_says_607(delivery) -> None:
    """Our own counter stops at daily_quota, so Marketo never has to answer 607."""
    delivery.warm()
    used = delivery.shared.limiter(Budget(), delivery.clock.now()).calls_today
    delivery.configure(limits={"daily_quota": used + 2, "batch_size": 1, "batch_wait_s": 0})
    ids = [delivery.track("user1") for _ in range(4)]
    delivery.drain()
    assert Counter(delivery.state_of(m)[0] for m in ids) == Counter(delivered=2, pending=2)
    delivery.clock.advance(15 * 3600)
    delivery.drain()
    assert settled(delivery, ids) == Counter({("delivered", None): 4})
    assert delivery.fake.errors_returned["607"] == 0


def test_5xx_backs_off_with_charged_attempts_then_delivers(delivery) -> None:
    """503 twice: two charged attempts with growing delays, then success."""
    delivery.warm()
    delivery.fake.script(ACTIVITIES, {"http_status": 503}, {"http_status": 503})
    ids = [delivery.track("user1") for _ in range(3)]
    delivery.drain()
    (stored,) = delivery.store.find(ids[0])
    assert stored.state.value == "pending" and stored.attempts == 1
    delivery.drain(advance=10.0)
    assert settled(delivery, ids) == Counter({("delivered", None): 3})
    assert all(s.attempts == 2 for m in ids for s in delivery.store.find(m))


def test_timeout_is_retried(delivery) -> None:
    """A call that never answers times out (read timeout) and is retried later."""
    delivery.warm()
    delivery.configure(limits={"timeout_s": 1, "batch_wait_s": 0})
    delivery.fake.script(ACTIVITIES, {"hang": True})
    ids = [delivery.track("user1")]
    delivery.drain(advance=10.0)
    assert settled(delivery, ids) == Counter({("delivered", None): 1})
    assert len(delivery.fake.calls_to(ACTIVITIES)) == 2


def test_max_attempts_dead_letters_retries_exhausted(delivery) -> None:
    """An event failing max_attempts times ends dead with retries_exhausted."""
    delivery.warm()
    delivery.configure(limits={"max_attempts": 3, "batch_wait_s": 0})
    delivery.fake.script(ACTIVITIES, *[{"http_status": 500}] * 5)
    ids = [delivery.track("user1")]
    delivery.drain(advance=60.0)
    assert settled(delivery, ids) == Counter({("dead", "retries_exhausted"): 1})
    assert len(delivery.fake.calls_to(ACTIVITIES)) == 3


def test_record_level_skips_dead_letter_only_their_events(delivery) -> None:
    """Skipped rows die with their code; 1004 re-resolves once and then succeeds."""
    delivery.warm()
    delivery.fake.script(ACTIVITIES, {"record_errors": {0: "1004", 1: "1001"}})
    ids = [delivery.track(f"user{i}") for i in range(5)]
    delivery.drain()
    states = settled(delivery, ids)
    assert states == Counter({("delivered", None): 4, ("dead", "marketo_1001"): 1})
    assert delivery.state_of(ids[1]) == ("dead", "marketo_1001")
    (dead,) = delivery.store.find(ids[1])
    assert "1001" in (dead.detail or "")


def test_repeated_1004_dead_letters_after_one_re_resolution(delivery) -> None:
    """Lead not found twice: the second time is final."""
    delivery.warm()
    delivery.fake.script(ACTIVITIES, {"record_errors": {0: "1004"}}, {"record_errors": {0: "1004"}})
    ids = [delivery.track("user0")]
    delivery.drain()
    assert settled(delivery, ids) == Counter({("dead", "marketo_1004"): 1})


def test_request_level_rejection_dead_letters_with_the_code(delivery) -> None:
    """A permanent request error (603 access denied) dead-letters with its code, no retry."""
    delivery.warm()
    delivery.fake.script(ACTIVITIES, {"code": "603"})
    ids = [delivery.track("user1"), delivery.track("user2")]
    delivery.drain()
    assert settled(delivery, ids) == Counter({("dead", "marketo_603"): 2})


def test_gateway_never_causes_606_under_a_tight_window(delivery) -> None:
    """With Marketo's window at 10 calls, our limiter at 9 keeps every call inside it."""
    delivery.warm()
    delivery.fake.calls_per_20s = 10
    delivery.configure(limits={"calls_per_20s": 9, "batch_size": 5, "batch_wait_s": 0})
    ids = [delivery.track(f"user{i % 5}") for i in range(150)]
    delivery.drain()
    assert settled(delivery, ids) == Counter({("delivered", None): 150})
    assert len(delivery.fake.calls_to(ACTIVITIES)) == 30
    assert delivery.fake.errors_returned["606"] == 0
    assert sum(delivery.sleeps) >= 3 * 20.0  # 30 calls at 9 per window


def test_bad_credentials_pause_delivery_without_dead_letters(delivery) -> None:
    """A refused client secret parks delivery and keeps every event for later."""
    delivery.configure(client_secret="wrong")
    ids = [
        delivery.track("user1"),
        delivery.add("identify", userId="u2", traits={"email": "b@x.io"}),
    ]
    assert delivery.drain() == 0
    assert {delivery.state_of(m) for m in ids} == {("pending", None)}
    assert delivery.shared.last_error()["class"] == "CredentialsRejected"
    assert delivery.drain() == 0  # parked: no second token request
    assert len(delivery.fake.calls_to("/identity/oauth/token")) == 1
    delivery.configure()
    delivery.clock.advance(301.0)
    delivery.drain()
    assert settled(delivery, ids) == Counter({("delivered", None): 2})


def test_an_outage_holds_every_call_and_charges_only_the_probing_batches(delivery) -> None:
    """Marketo down: one batch probes per growing back-off; the rest of the backlog waits
    uncharged, nothing is dead-lettered, and a delivered call closes the breaker."""
    delivery.warm()
    delivery.configure(limits={"batch_size": 2, "batch_wait_s": 0, "max_attempts": 3})
    delivery.fake.script(ACTIVITIES, *[{"http_status": 503}] * 8)
    ids = [delivery.track(f"user{i % 5}") for i in range(20)]
    start = delivery.clock.now()
    while delivery.clock.now() - start < 60.0:  # one minute of the outage, on the fake clock
        if not delivery.engine.dispatcher.run_once(flush=True):
            delivery.clock.advance(1.0)
    calls = len(delivery.fake.calls_to(ACTIVITIES))
    # Back-offs of 1-2, 2-4, 4-8, 8-16, 16-32 s: at most 6 probes in a minute. Without the
    # breaker every batch of the backlog went out at once and again at each of its retries.
    assert 2 <= calls <= 6
    attempts = [s.attempts for m in ids for s in delivery.store.find(m)]
    assert sum(attempts) == 2 * calls and attempts.count(0) >= 20 - 2 * calls
    view = delivery.shared.limiter(Budget.from_limits(delivery.settings.limits), start)
    assert view.pause_reason == "marketo_unavailable" and view.paused_until > start
    delivery.drain(advance=60.0)
    assert settled(delivery, ids) == Counter({("delivered", None): 20})
    assert len(delivery.fake.calls_to(ACTIVITIES)) == 8 + 10
