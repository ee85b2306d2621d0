"""Attack: beacons with made-up Munchkin cookies must not spend the instance's Marketo quota.

Each unknown `_mkto_trk` value costs one lookup call. A browser key is public, so without a cap
anyone could post tracks with random cookies from many addresses and spend the daily quota
that every integration of the instance shares. `limits.browser_lookups_per_hour` caps the
lookups made for untrusted events; the events past it wait, uncharged, for the next hour's
budget (so an attacker only delays attribution, never loses it); trusted (server) events are
never held back by it.
"""

from __future__ import annotations

import time
import uuid

import pytest

from app.outbox import get_store
from tests.integration.test_browser_trust import EVENTS
from tests.integration.test_browser_trust import Site

BUDGET = 3


def cookie() -> str:
    return f"id:123-ABC-456&token:_mch-example.com-1700000000000-{uuid.uuid4().int % 10**8}"


def cookie_lookups(fake) -> list[str]:
    """The cookie values the fake was asked about, one per lookup call."""
    return [
        c.query.get("filterValues", "")
        for c in fake.calls_to("/leads.json")
        if c.query.get("filterType") == "cookies"
    ]


def settle(site) -> None:
    """Run the dispatcher until a step settles nothing (deferred events stay pending)."""
    from app.delivery import get_engine

    dispatcher = get_engine(site.app).dispatcher
    for _ in range(50):
        if not dispatcher.run_once(flush=True):
            return
    raise AssertionError("the dispatcher kept settling events")


@pytest.fixture
def site(bo_app_factory):
    return Site(bo_app_factory(events=EVENTS, limits={"browser_lookups_per_hour": BUDGET}))


def test_random_cookie_beacons_cost_at_most_the_hours_budget(site, fake_marketo):
    """Ten beacons with ten made-up cookies: three lookups (their events then wait held, as any
    unknown visitor's); the other seven wait for the next hour, uncharged, with the reason
    named, and the refusals are counted in status."""
    for i in range(10):
        site.beacon(
            "t",
            messageId=f"rnd-{i}",
            anonymousId=f"anon-{i}",
            event="Signed Up",
            properties={"plan": "Pro"},
            context={"Marketo": {"marketoCookie": cookie()}},
        )
    settle(site)
    assert len(cookie_lookups(fake_marketo)) == BUDGET
    stored = [get_store(site.app).find(f"rnd-{i}")[0] for i in range(10)]
    assert [s.state.value for s in stored].count("held") == BUDGET
    waiting = [s for s in stored if s.state.value == "pending"]
    assert len(waiting) == 10 - BUDGET
    assert all(s.attempts == 0 and s.next_attempt_at > time.time() for s in waiting)
    reasons = [
        h["reason"] for i in range(10) for h in get_store(site.app).find(f"rnd-{i}")[0].history
    ]
    assert reasons.count("lookup_budget_spent") == 10 - BUDGET
    assert fake_marketo.activities == []

    status = site.client.get("/v1/status", headers={"Authorization": _auth()}).json
    assert status["marketo"]["browser_lookups_deferred"] == 10 - BUDGET
    metrics = site.client.get("/metrics").text
    assert f"gateway_browser_lookups_deferred {float(10 - BUDGET)}" in metrics


def test_server_events_are_looked_up_whatever_the_budget(site, fake_marketo):
    """The back end's events are trusted: a spent browser budget never holds them."""
    for i in range(BUDGET + 2):
        site.beacon("t", messageId=f"rnd-{i}", anonymousId=f"a-{i}", event="Signed Up",
                    context={"Marketo": {"marketoCookie": cookie()}})  # fmt: skip
    settle(site)
    before = len(cookie_lookups(fake_marketo))
    lead = fake_marketo.add_lead(email="known@example.com", cookies=[known := cookie()])
    site.send("track", userId="srv-1", event="Signed Up", properties={"plan": "Pro"},
              context={"Marketo": {"marketoCookie": known}})  # fmt: skip
    settle(site)
    assert len(cookie_lookups(fake_marketo)) == before + 1
    assert [a["leadId"] for a in fake_marketo.activities] == [lead]


def test_a_known_visitors_cached_cookie_costs_nothing(site, fake_marketo):
    """Once a trusted path tied a cookie to a lead, its beacons resolve from the cache, with the
    budget spent by others."""
    known = cookie()
    lead = fake_marketo.add_lead(email="kim@example.com", cookies=[known])
    site.send("track", userId="kim", event="Signed Up", properties={"plan": "Pro"},
              context={"Marketo": {"marketoCookie": known}})  # fmt: skip
    for i in range(BUDGET + 1):
        site.beacon("t", messageId=f"rnd-{i}", anonymousId=f"a-{i}", event="Signed Up",
                    context={"Marketo": {"marketoCookie": cookie()}})  # fmt: skip
    settle(site)
    lookups = len(cookie_lookups(fake_marketo))
    site.beacon(
        "t",
        messageId="kim-page",
        anonymousId="kim-anon",
        event="Signed Up",
        properties={"plan": "Pro"},
        context={"Marketo": {"marketoCookie": known}},
    )
    settle(site)
    assert len(cookie_lookups(fake_marketo)) == lookups
    assert site.state_of("kim-page") == ("delivered", None)
    assert [a["leadId"] for a in fake_marketo.activities].count(lead) == 2


def _auth() -> str:
    from tests.integration.test_lists_audiences import AUTH

    return AUTH["Authorization"]


def test_budget_setting_is_validated():
    """A negative budget is refused with a message naming the setting."""
    from app.settings import validate

    problems = validate({"munchkin_id": "123-ABC-456", "limits": {"browser_lookups_per_hour": -1}})
    assert any("browser_lookups_per_hour" in p for p in problems)
    assert not any(
        "browser_lookups_per_hour" in p
        for p in validate({"munchkin_id": "123-ABC-456", "limits": {"browser_lookups_per_hour": 0}})
    )


def test_spend_grants_within_the_window_and_refills_in_the_next(backend_shared):
    """A shared budget: partial grants at the edge, nothing once spent, full again next hour."""
    hour = 1_800_000_000.0 - 1_800_000_000.0 % 3600
    assert backend_shared.spend("lookups", 2, 5, 3600, hour + 1) == 2
    assert backend_shared.spend("lookups", 4, 5, 3600, hour + 2) == 3
    assert backend_shared.spend("lookups", 1, 5, 3600, hour + 3599) == 0
    assert backend_shared.spend("other", 1, 5, 3600, hour + 3599) == 1  # budgets are apart
    assert backend_shared.spend("lookups", 5, 5, 3600, hour + 3600) == 5
    assert backend_shared.spend("lookups", 1, 0, 3600, hour + 7200) == 0


def test_deferred_browser_events_are_delivered_with_the_next_hours_budget(delivery):
    """On a controlled clock: two lookups this hour, the other two events go the next hour and
    land on their leads; none is charged an attempt or dead-lettered."""
    delivery.configure(limits={"browser_lookups_per_hour": 2, "batch_wait_s": 0})
    cookies = [cookie() for _ in range(4)]
    leads = [delivery.fake.add_lead(email=f"v{i}@example.com", cookies=[c])
             for i, c in enumerate(cookies)]  # fmt: skip
    for i, value in enumerate(cookies):
        delivery.add(
            "track",
            state=None,
            anonymousId=f"anon-{i}",
            event="Signed Up",
            properties={"plan": "Pro"},
            context={"Marketo": {"marketoCookie": value}},
            source_kind="browser",
        )
    delivery.drain()
    assert len(delivery.fake.activities) == 2
    delivery.clock.advance(3600)
    delivery.drain()
    assert sorted(a["leadId"] for a in delivery.fake.activities) == sorted(leads)
    assert len(cookie_lookups(delivery.fake)) == 4
    counts = delivery.store.counts(delivery.clock.now())
    assert counts["delivered"] == 4 and counts["dead"] == {}
