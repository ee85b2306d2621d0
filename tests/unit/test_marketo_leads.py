"""Lead resolution rules with `responses`: order, batching, mapping rows back, single-flight."""

from __future__ import annotations

import json
from urllib.parse import parse_qs
from urllib.parse import urlparse

import pytest
import responses

from app.coordination.sqlite import SqliteSharedState
from app.delivery.leads import LOCK_NAME
from app.delivery.leads import LeadResolver
from app.delivery.leads import Who
from app.delivery.leads import who_of
from app.marketo.client import MarketoClient
from app.marketo.errors import Busy
from app.marketo.errors import RecordRejected
from app.settings import parse

BASE = "https://123-ABC-456.mktorest.com"
LEADS = f"{BASE}/rest/v1/leads.json"
NOW = 1_700_000_000.0
COOKIE = "id:123-ABC-456&token:_mch-example.com-1700000000000-12345"


@pytest.fixture
def shared(tmp_path):
    state = SqliteSharedState(str(tmp_path / "outbox.db"))
    yield state
    state.close()


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(
            responses.POST,
            f"{BASE}/identity/oauth/token",
            json={"access_token": "t", "expires_in": 3600},
        )
        yield rsps


def resolver(shared, **extra) -> LeadResolver:
    settings = parse(
        {
            "munchkin_id": "123-ABC-456",
            "client_id": "c",
            "client_secret": "s",
            "rest_base_url": BASE,
            "lead_fields": {"user_id": "userId"},
            **extra,
        }
    )
    return LeadResolver(MarketoClient(settings, tokens=shared), shared, settings, lambda: NOW)


def lookup_of(call) -> dict[str, list[str]]:
    return {**parse_qs(urlparse(call.request.url).query), **parse_qs(call.request.body or "")}


def test_who_of_reads_every_identity() -> None:
    """Cookie, email (traits or context), userId and anonymousId come from the message."""
    who = who_of(
        {
            "userId": "u1",
            "anonymousId": "a1",
            "context": {"Marketo": {"marketoCookie": COOKIE}, "traits": {"email": "a@x.io"}},
        }
    )
    assert who == Who(cookie=COOKIE, email="a@x.io", user_id="u1", anonymous_id="a1")


def test_cache_hit_costs_no_call(mocked, shared) -> None:
    """A cached first identity resolves without any HTTP call (responses fails on others)."""
    shared.put_leads("123-ABC-456", {("email", "a@x.io"): 42}, NOW)
    results = resolver(shared).resolve([Who(user_id="u1", email="a@x.io")])
    assert (results[0].lead_id, results[0].via) == (42, "email")
    assert len(mocked.calls) == 0


def test_an_uncached_earlier_identity_is_asked_before_a_cached_later_one(mocked, shared) -> None:
    """The order decides, not the cache: email (first) is looked up although userId is cached."""
    shared.put_leads("123-ABC-456", {("userId", "u1"): 42}, NOW)
    rows = [{"id": 7, "email": "a@x.io", "updatedAt": "2024-01-01T00:00:00Z"}]
    mocked.add(responses.GET, LEADS, json={"success": True, "result": rows})
    results = resolver(shared).resolve([Who(user_id="u1", email="a@x.io")])
    assert (results[0].lead_id, results[0].via) == (7, "email")


def test_email_lookup_maps_rows_back_case_insensitively_latest_wins(mocked, shared) -> None:
    """Rows map back by the filter field; duplicates resolve to the latest updated lead."""
    rows = [
        {"id": 1, "email": "Ann@X.io", "updatedAt": "2024-01-01T00:00:00Z"},
        {"id": 2, "email": "ann@x.io", "updatedAt": "2024-02-01T00:00:00Z"},
        {"id": 3, "email": "bo@x.io", "updatedAt": "2024-01-01T00:00:00Z"},
    ]
    mocked.add(responses.GET, LEADS, json={"success": True, "result": rows})
    results = resolver(shared, lead_lookup=["email"]).resolve(
        [Who(email="ann@x.io"), Who(email="BO@x.io")], create=False
    )
    assert [r.lead_id for r in results] == [2, 3]
    (call,) = [c for c in mocked.calls if "/rest/v1/leads.json" in c.request.url]
    assert lookup_of(call)["filterType"] == ["email"]


def test_lookup_follows_pages(mocked, shared) -> None:
    """A lookup with more rows than one page reads every page."""
    mocked.add(
        responses.GET,
        LEADS,
        json={"success": True, "result": [{"id": 1, "userId": "u1"}], "nextPageToken": "P2"},
    )
    mocked.add(responses.GET, LEADS, json={"success": True, "result": [{"id": 2, "userId": "u2"}]})
    results = resolver(shared, lead_lookup=["userId"]).resolve(
        [Who(user_id="u1"), Who(user_id="u2")], create=False
    )
    assert [r.lead_id for r in results] == [1, 2]
    assert lookup_of(mocked.calls[-1])["nextPageToken"] == ["P2"]


def test_cookie_only_event_is_looked_up_by_cookie(mocked, shared) -> None:
    """A cookie is looked up on its own, since rows do not say which cookie matched."""
    mocked.add(responses.GET, LEADS, json={"success": True, "result": [{"id": 77}]})
    (result,) = resolver(shared).resolve([Who(cookie=COOKIE)], create=False)
    assert result.lead_id == 77
    query = lookup_of(mocked.calls[-1])
    assert query["filterType"] == ["cookies"] and query["filterValues"] == [COOKIE]
    assert shared.get_leads("123-ABC-456", [("cookie", COOKIE)]) == {("cookie", COOKIE): 77}


def test_missing_leads_are_created_in_one_call_keyed_by_email(mocked, shared) -> None:
    """Misses are created with one createOrUpdate; a skipped row becomes that event's error."""
    mocked.add(responses.GET, LEADS, json={"success": True, "result": []})
    mocked.add(responses.GET, LEADS, json={"success": True, "result": []})
    mocked.add(
        responses.POST,
        LEADS,
        json={
            "success": True,
            "result": [
                {"id": 10, "status": "created"},
                {"status": "skipped", "reasons": [{"code": "1007", "message": "Multiple"}]},
            ],
        },
    )
    whos = [Who(email="a@x.io", user_id="u1"), Who(email="b@x.io", user_id="u2")]
    first, second = resolver(shared).resolve(whos)
    assert first.lead_id == 10
    assert isinstance(second.error, RecordRejected) and second.error.reason == "marketo_1007"
    sent = json.loads(mocked.calls[-1].request.body)
    assert sent["lookupField"] == "email"
    assert sent["input"] == [
        {"email": "a@x.io", "userId": "u1"},
        {"email": "b@x.io", "userId": "u2"},
    ]


def test_unresolvable_events_get_named_reasons(mocked, shared) -> None:
    """No create allowed → lead_not_found; nothing to look up by → no_lead_identity."""
    mocked.add(responses.GET, LEADS, json={"success": True, "result": []})
    r = resolver(shared, create_leads=False, lead_lookup=["userId"])
    found, nothing = r.resolve([Who(user_id="u1"), Who(anonymous_id="a1")])
    assert found.reason == "lead_not_found"
    assert nothing.reason == "no_lead_identity"


def test_single_flight_refuses_while_another_worker_resolves(mocked, shared) -> None:
    """With the resolution lock held elsewhere, resolution asks to come back shortly."""
    with shared.exclusive(LOCK_NAME) as held:
        assert held
        with pytest.raises(Busy):
            resolver(shared).resolve([Who(user_id="u1")])
    assert len(mocked.calls) == 0
