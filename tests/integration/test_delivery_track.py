"""Track and identify delivery against the fake Marketo over real HTTP."""

from __future__ import annotations

import json

from app.outbox.store import State


def activity_calls(fake):
    return fake.calls_to("/activities/external.json")


def test_new_users_tracks_are_batched_into_few_calls(delivery) -> None:
    """300 tracks from 300 new users: one lookup per filter type, one create, one activity call."""
    ids = [delivery.track(f"user{i}", price="49.00", trialDays=14) for i in range(300)]
    assert delivery.drain() == 300
    assert {delivery.state_of(m) for m in ids} == {("delivered", None)}
    assert len(delivery.fake.activities) == 300
    assert len(delivery.fake.leads) == 300
    lead_calls = delivery.fake.calls_to("/rest/v1/leads.json")
    lookups = [{**c.query, **c.form} for c in lead_calls]
    assert sorted(a["filterType"] for a in lookups if "filterType" in a) == ["email", "userId"]
    assert len(lead_calls) == 3  # the two lookups and one createOrUpdate
    assert len(activity_calls(delivery.fake)) == 1
    first = delivery.fake.activities[0]
    assert first["activityTypeId"] == 100001
    assert first["primaryAttributeValue"] == "Pro"


def test_warm_cache_costs_one_call_per_300_tracks(delivery) -> None:
    """Known users' events need no lookups: one activities call per 300."""
    for i in range(10):
        delivery.track(f"user{i}")
    delivery.drain()
    delivery.fake.reset()
    for i in range(600):
        delivery.track(f"user{i % 10}", event="Product Viewed", productId=f"sku{i}")
    assert delivery.drain() == 600
    paths = [c.path for c in delivery.fake.calls]
    assert paths == ["/rest/v1/activities/external.json"] * 2


def test_existing_lead_is_found_not_created(delivery) -> None:
    """A lead already in Marketo is found by email and reused."""
    lead = delivery.fake.add_lead(email="ann@example.com")
    delivery.track("ann")
    delivery.drain()
    assert len(delivery.fake.leads) == 1
    assert delivery.fake.activities[0]["leadId"] == lead


def test_unmapped_and_disabled_events_are_dropped_with_reasons(delivery) -> None:
    """No call for events that need none; each ends with its named reason."""
    unmapped = delivery.track("u1", event="Nobody Mapped This")
    off = delivery.add(
        "track",
        userId="u2",
        event="Signed Up",
        integrations={"Marketo": False},
    )
    group = delivery.add("group", userId="u3", groupId="g1")
    delivery.drain()
    assert delivery.state_of(unmapped) == ("dropped", "event_not_mapped")
    assert delivery.state_of(off) == ("dropped", "disabled_by_integrations")
    assert delivery.state_of(group) == ("dropped", "unsupported_type")
    assert delivery.fake.calls == []


def test_bad_property_dead_letters_only_that_event(delivery) -> None:
    """A value that cannot be coerced kills its own event; the rest of the batch goes on."""
    good = delivery.track("u1", trialDays="14")
    bad = delivery.track("u2", trialDays="fourteen")
    delivery.drain()
    assert delivery.state_of(good) == ("delivered", None)
    assert delivery.state_of(bad) == ("dead", "bad_property_type")
    assert len(delivery.fake.activities) == 1


def test_identify_upserts_once_and_skips_unchanged_traits(delivery) -> None:
    """identify → createOrUpdate; the same traits again cost no call, a change does."""
    traits = {"email": "ann@example.com", "name": "Ann Lee", "company": {"name": "Acme"}}
    delivery.add("identify", userId="u81", traits=traits)
    delivery.drain()
    (lead,) = delivery.fake.leads.values()
    assert (lead["firstName"], lead["lastName"], lead["company"]) == ("Ann", "Lee", "Acme")
    assert lead["userId"] == "u81"
    calls = len(delivery.fake.calls)
    same = delivery.add("identify", userId="u81", traits=dict(traits))
    delivery.drain()
    assert delivery.state_of(same) == ("delivered", None)
    assert len(delivery.fake.calls) == calls
    delivery.add("identify", userId="u81", traits={**traits, "title": "CTO"})
    delivery.drain()
    assert len(delivery.fake.calls) == calls + 1
    assert lead["title"] == "CTO"


def test_identify_ties_the_cookie_and_tracks_reuse_the_lead(delivery) -> None:
    """An identify carrying _mkto_trk associates it once; later tracks need no lookup."""
    cookie = "id:123-ABC-456&token:_mch-example.com-1700000000000-12345"
    context = {"Marketo": {"marketoCookie": cookie}}
    delivery.add("identify", userId="u9", traits={"email": "u9@example.com"}, context=context)
    delivery.drain()
    assert len(delivery.fake.associations) == 1
    delivery.fake.reset()
    delivery.add("track", userId="u9", event="Signed Up", properties={}, context=context)
    delivery.add("track", userId="u9", event="Signed Up", properties={}, context=context)
    delivery.drain()
    assert [c.path for c in delivery.fake.calls] == ["/rest/v1/activities/external.json"]


def test_anonymous_events_held_then_released_by_identify(delivery) -> None:
    """Held anonymous tracks go out, on the identified lead, once identify links the id."""
    held = delivery.add(
        "track",
        state=State.HELD,
        anonymousId="anon-1",
        event="Signed Up",
        properties={"plan": "Free"},
    )
    delivery.drain()
    assert delivery.state_of(held) == ("held", None)
    delivery.add("identify", userId="u5", anonymousId="anon-1", traits={"email": "u5@example.com"})
    delivery.drain()
    assert delivery.state_of(held) == ("delivered", None)
    (lead_id,) = delivery.fake.leads
    assert [a["leadId"] for a in delivery.fake.activities] == [lead_id]


def test_alias_links_previous_id_to_the_users_lead(delivery) -> None:
    """alias points the previousId at the user's lead; its events then land there."""
    delivery.add("identify", userId="u7", traits={"email": "u7@example.com"})
    delivery.drain()
    delivery.add("alias", userId="u7", previousId="old-anon")
    delivery.add("track", anonymousId="old-anon", event="Signed Up", properties={})
    delivery.drain()
    (lead_id,) = delivery.fake.leads
    assert [a["leadId"] for a in delivery.fake.activities] == [lead_id]


def test_attribute_payload_uses_api_names_and_types(delivery) -> None:
    """Attributes are sent by apiName with coerced values."""
    delivery.track("u1", price="49.90", trialDays="7")
    delivery.drain()
    (call,) = activity_calls(delivery.fake)
    sent = json.loads(call.body)["input"][0]
    assert {"apiName": "price", "value": 49.9} in sent["attributes"]
    assert {"apiName": "trialDays", "value": 7} in sent["attributes"]


def test_a_track_whose_identify_fails_for_a_moment_goes_with_its_retry(delivery) -> None:
    """Identify and track in one batch, the identify refused once (601): both land, none held."""
    delivery.configure(lead_fields={"user_id": None, "anonymous_id": None})
    delivery.fake.script("/rest/v1/leads.json", {"code": "601", "method": "POST"})
    delivery.add("identify", userId="u_81", traits={"email": "ann.lee@example.com"})
    track = delivery.add("track", userId="u_81", event="Signed Up", properties={"plan": "pro"})
    delivery.drain()
    assert delivery.state_of(track) == ("delivered", None)
    (lead_id,) = delivery.fake.leads
    assert [a["leadId"] for a in delivery.fake.activities] == [lead_id]
