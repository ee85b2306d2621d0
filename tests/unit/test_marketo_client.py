"""The Marketo client against `responses`: one call per method, every failure a class."""

from __future__ import annotations

import json
from urllib.parse import parse_qs
from urllib.parse import urlparse

import pytest
import requests
import responses

from app.marketo.client import MarketoClient
from app.marketo.client import endpoint_name
from app.marketo.client import records_in
from app.marketo.errors import CredentialsRejected
from app.marketo.errors import QuotaExhausted
from app.marketo.errors import RateLimited
from app.marketo.errors import RequestRejected
from app.marketo.errors import TimedOut
from app.marketo.errors import TokenInvalid
from app.marketo.errors import TooLarge
from app.marketo.errors import Transient
from app.settings import parse

BASE = "https://123-ABC-456.mktorest.com"
TOKEN_URL = f"{BASE}/identity/oauth/token"
LEADS_URL = f"{BASE}/rest/v1/leads.json"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingLimiter:
    """Records slots taken and whether Marketo charged each call."""

    def __init__(self) -> None:
        self.open = 0
        self.released: list[bool] = []

    def acquire(self) -> object:
        self.open += 1
        return object()

    def release(self, slot: object, counted: bool) -> None:
        self.open -= 1
        self.released.append(counted)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter() -> CountingLimiter:
    return CountingLimiter()


@pytest.fixture
def client(clock: Clock, limiter: CountingLimiter):
    settings = parse(
        {
            "munchkin_id": "123-ABC-456",
            "client_id": "cid",
            "client_secret": "s3cret",
            "rest_base_url": BASE,
            "identity_url": f"{BASE}/identity",
            "limits": {"timeout_s": 7},
        }
    )
    c = MarketoClient(settings, limiter=limiter, clock=clock)
    yield c
    c.close()


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def token_reply(mocked, token: str = "tok-1", expires_in: int = 3599) -> None:
    mocked.add(responses.POST, TOKEN_URL, json={"access_token": token, "expires_in": expires_in})


def ok(result):
    return {"requestId": "a1#b2", "success": True, "result": result}


def fail(code: str, message: str = "boom"):
    return {"requestId": "a1#b2", "success": False, "errors": [{"code": code, "message": message}]}


def test_token_is_posted_as_a_form_and_sent_only_as_a_bearer_header(mocked, client) -> None:
    """The secret travels in a form body; the token never appears in a URL."""
    token_reply(mocked)
    mocked.add(responses.GET, LEADS_URL, json=ok([{"id": 1}]))
    client.leads_by_filter("email", ["a@x.io"], ["id", "email"])
    token_call, lead_call = mocked.calls
    assert "s3cret" not in token_call.request.url
    assert parse_qs(token_call.request.body)["client_secret"] == ["s3cret"]
    assert lead_call.request.headers["Authorization"] == "Bearer tok-1"
    assert "tok-1" not in lead_call.request.url
    assert "access_token" not in lead_call.request.url


def test_token_is_cached_until_shortly_before_expiry(mocked, client, clock) -> None:
    """One token serves many calls; a new one is fetched within a minute of expiry."""
    token_reply(mocked, "tok-1", 3600)
    for _ in range(3):
        mocked.add(responses.GET, LEADS_URL, json=ok([]))
    client.leads_by_filter("email", ["a@x.io"], ["id"])
    client.leads_by_filter("email", ["a@x.io"], ["id"])
    assert len(mocked.calls) == 3
    clock.now += 3550
    mocked.replace(responses.POST, TOKEN_URL, json={"access_token": "tok-2", "expires_in": 3600})
    client.leads_by_filter("email", ["a@x.io"], ["id"])
    assert mocked.calls[-1].request.headers["Authorization"] == "Bearer tok-2"
    assert client.token_age() == 0.0


@pytest.mark.parametrize("code", ["601", "602"])
def test_601_and_602_drop_the_token_and_raise(mocked, client, code: str) -> None:
    """Both token codes raise TokenInvalid and the next call fetches a new token."""
    token_reply(mocked, "tok-1")
    mocked.add(responses.GET, LEADS_URL, json=fail(code, "Access token invalid"))
    with pytest.raises(TokenInvalid):
        client.leads_by_filter("email", ["a@x.io"], ["id"])
    mocked.replace(responses.POST, TOKEN_URL, json={"access_token": "tok-2", "expires_in": 3600})
    mocked.replace(responses.GET, LEADS_URL, json=ok([]))
    client.leads_by_filter("email", ["a@x.io"], ["id"])
    assert mocked.calls[-1].request.headers["Authorization"] == "Bearer tok-2"


def test_bad_credentials_raise_credentials_rejected(mocked, client) -> None:
    """A 401 from the identity endpoint is permanent until an operator fixes the settings."""
    mocked.add(responses.POST, TOKEN_URL, status=401, json={"error": "invalid_client"})
    with pytest.raises(CredentialsRejected):
        client.token()


@pytest.mark.parametrize(
    ("body", "status", "headers", "cls", "charged"),
    [
        (fail("606", "Max rate limit exceeded"), 200, {}, RateLimited, False),
        (fail("615", "Concurrent access limit"), 200, {}, RateLimited, False),
        (fail("607", "Daily quota reached"), 200, {}, QuotaExhausted, False),
        (fail("604"), 200, {}, TimedOut, False),
        (fail("611"), 200, {}, Transient, False),
        (fail("1003", "Invalid data"), 200, {}, RequestRejected, False),
        (fail("603", "Access denied"), 200, {}, RequestRejected, False),
        ({"message": "oops"}, 503, {"Retry-After": "42"}, Transient, True),
        ({"message": "slow"}, 429, {"Retry-After": "9"}, RateLimited, True),
        ({"message": "big"}, 413, {}, TooLarge, True),
        ("<html>proxy</html>", 200, {}, Transient, True),
    ],
)
def test_errors_become_their_class(
    mocked, client, limiter, body, status, headers, cls, charged
) -> None:
    """HTTP-level and response-level failures map to the policy class; errored calls are free."""
    token_reply(mocked)
    if isinstance(body, str):
        mocked.add(responses.GET, LEADS_URL, body=body, status=status, headers=headers)
    else:
        mocked.add(responses.GET, LEADS_URL, json=body, status=status, headers=headers)
    with pytest.raises(cls) as info:
        client.leads_by_filter("email", ["a@x.io"], ["id"])
    assert type(info.value) is cls
    assert limiter.open == 0
    assert limiter.released == [charged]


def test_retry_after_and_quota_reset_are_carried(mocked, client, clock) -> None:
    """A 5xx keeps its Retry-After; a 607 knows when the quota comes back."""
    token_reply(mocked)
    mocked.add(responses.GET, LEADS_URL, status=502, headers={"Retry-After": "42"})
    with pytest.raises(Transient) as transient:
        client.leads_by_filter("email", ["a@x.io"], ["id"])
    assert transient.value.retry_after == 42.0
    mocked.replace(responses.GET, LEADS_URL, json=fail("607"))
    with pytest.raises(QuotaExhausted) as quota:
        client.leads_by_filter("email", ["a@x.io"], ["id"])
    assert 0 < quota.value.resets_at - clock.now <= 25 * 3600


def test_connection_error_is_transient_and_not_charged(mocked, client, limiter) -> None:
    """A request that never left is retried and costs no quota."""
    token_reply(mocked)
    mocked.add(responses.GET, LEADS_URL, body=requests.ConnectionError("refused"))
    with pytest.raises(Transient) as info:
        client.leads_by_filter("email", ["a@x.io"], ["id"])
    assert not info.value.maybe_applied
    assert limiter.released == [False]


def test_read_timeout_may_have_applied(mocked, client, limiter) -> None:
    """A read timeout is retryable but the write may have happened, and it was charged."""
    token_reply(mocked)
    mocked.add(responses.POST, LEADS_URL, body=requests.ReadTimeout("slow"))
    with pytest.raises(Transient) as info:
        client.sync_leads([{"email": "a@x.io"}])
    assert info.value.maybe_applied
    assert limiter.released == [True]


def test_long_lookup_is_tunnelled_as_post_with_method_get(mocked, client) -> None:
    """A query over ~7 KB goes as POST ?_method=GET with a form body (no 414)."""
    token_reply(mocked)
    mocked.add(responses.POST, LEADS_URL, json=ok([{"id": 5, "email": "u0@example.com"}]))
    emails = [f"user.number.{i}@a-rather-long-domain.example.com" for i in range(300)]
    page = client.leads_by_filter("email", emails, ["id", "email"])
    call = mocked.calls[-1].request
    assert parse_qs(urlparse(call.url).query) == {"_method": ["GET"]}
    assert parse_qs(call.body)["filterValues"] == [",".join(emails)]
    assert page.rows[0]["id"] == 5


def test_short_lookup_stays_a_get(mocked, client) -> None:
    """A short query is a plain GET with the values comma-separated."""
    token_reply(mocked)
    mocked.add(responses.GET, LEADS_URL, json={**ok([]), "nextPageToken": "P2"})
    page = client.leads_by_filter("userId", ["u1", "u2"], ["id", "userId"])
    query = parse_qs(urlparse(mocked.calls[-1].request.url).query)
    assert query["filterType"] == ["userId"] and query["filterValues"] == ["u1,u2"]
    assert page.next_page_token == "P2"


def test_sync_leads_sends_action_lookup_and_partition(mocked, client) -> None:
    """createOrUpdate carries the lookup field, the partition and the records in order."""
    token_reply(mocked)
    rows = [{"id": 1, "status": "created"}, {"status": "skipped", "reasons": []}]
    mocked.add(responses.POST, LEADS_URL, json=ok(rows))
    result = client.sync_leads(
        [{"email": "a@x.io"}, {"email": "b@x.io"}], lookup_field="email", partition="EMEA"
    )
    sent = json.loads(mocked.calls[-1].request.body)
    assert sent == {
        "action": "createOrUpdate",
        "lookupField": "email",
        "partitionName": "EMEA",
        "input": [{"email": "a@x.io"}, {"email": "b@x.io"}],
    }
    assert result == rows


def test_associate_passes_the_cookie_in_the_query(mocked, client) -> None:
    """associate.json takes the cookie url-encoded and answers without a result."""
    token_reply(mocked)
    url = f"{BASE}/rest/v1/leads/977/associate.json"
    mocked.add(responses.POST, url, json={"requestId": "x", "success": True})
    client.associate(977, "id:123-ABC-456&token:_mch-example.com-1-2")
    query = parse_qs(urlparse(mocked.calls[-1].request.url).query)
    assert query["cookie"] == ["id:123-ABC-456&token:_mch-example.com-1-2"]


def test_request_is_open_to_other_endpoints(mocked, client, limiter) -> None:
    """Other areas call request() for their endpoints and get the checked envelope."""
    token_reply(mocked)
    url = f"{BASE}/rest/v1/campaigns/2001/trigger.json"
    mocked.add(responses.POST, url, json=ok([{"id": 2001}]))
    body = client.request("POST", "/rest/v1/campaigns/2001/trigger.json", json={"input": {}})
    assert body["result"] == [{"id": 2001}]
    assert limiter.released == [True]


def test_every_call_has_a_connect_and_read_timeout(client) -> None:
    """Timeouts come from settings as (connect, read)."""
    assert client.timeout == (7.0, 7.0)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/rest/v1/leads/977/associate.json", "/rest/v1/leads/{id}/associate.json"),
        ("/rest/v1/lists/1042/leads.json", "/rest/v1/lists/{id}/leads.json"),
        ("/rest/v1/leads.json", "/rest/v1/leads.json"),
        ("/bulk/v1/leads/batch/3519.json", "/bulk/v1/leads/batch/{id}.json"),
    ],
)
def test_endpoint_names_hide_ids(path: str, name: str) -> None:
    """Metrics group calls by endpoint, not by lead or list id."""
    assert endpoint_name(path) == name


def test_a_refused_call_says_how_many_records_it_carried(mocked, client) -> None:
    """413 on a sync of 3 leads carries records=3; 604 on a lookup of 2 values carries 2."""
    token_reply(mocked)
    mocked.add(responses.POST, LEADS_URL, status=413, body="Request Entity Too Large")
    with pytest.raises(TooLarge) as big:
        client.sync_leads([{"email": f"{n}@x.io"} for n in "abc"])
    assert big.value.records == 3 and big.value.reason == "marketo_413"
    mocked.add(responses.GET, LEADS_URL, json=fail("604", "Request timed out"))
    with pytest.raises(TimedOut) as slow:
        client.leads_by_filter("email", ["a@x.io", "b@x.io"], ["id"])
    assert slow.value.records == 2 and isinstance(slow.value, Transient)


@pytest.mark.parametrize(
    ("json_body", "params", "data", "expected"),
    [
        ({"input": [{}, {}, {}]}, None, None, 3),
        ({"input": []}, None, None, 0),
        ({"input": {"leads": [{"id": 1}]}}, None, None, None),  # campaign trigger: not a list
        (None, {"filterType": "email", "filterValues": "a,b,c,d"}, None, 4),
        (None, {"_method": "GET"}, {"filterValues": "a"}, 1),
        (None, {"name": "x"}, None, None),
    ],
)
def test_records_in_counts_input_or_filter_values(json_body, params, data, expected) -> None:
    """The record count of a call comes from its JSON `input`, else its filter values."""
    assert records_in(json_body, params, data) == expected
