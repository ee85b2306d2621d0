"""Intake routes accept Segment server calls and browser beacons, commit them, and route them."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from app.outbox.store import State
from tests.conftest import BROWSER_KEY
from tests.conftest import BROWSER_ORIGIN
from tests.conftest import SERVER_KEY
from tests.fixtures_intake import BEACON_HEADERS
from tests.fixtures_intake import basic_auth
from tests.fixtures_intake import beacon_body

AUTH = basic_auth()
MAPPED = {"Signed Up": {"activity_type_id": 100001, "primary": "plan"}}


@pytest.fixture
def mapped(write_settings):
    """Settings where `Signed Up` is mapped to a custom activity."""
    write_settings(events=MAPPED)


def only(store, message_id):
    [stored] = store.find(message_id)
    return stored


def test_server_track_is_committed_with_a_normalised_payload(mapped, client, store):
    response = client.post(
        "/v1/track",
        json={
            "userId": "u1",
            "event": "Signed Up",
            "messageId": "m-1",
            "timestamp": "2024-03-01T12:00:00+02:00",
            "properties": {"plan": "pro"},
            "context": {"marketoCookie": "id:123-ABC-456&token:_mch-example"},
        },
        headers=AUTH,
    )
    assert response.status_code == 200
    assert response.get_json() == {"success": True}
    stored = only(store, "m-1")
    assert stored.state is State.PENDING
    assert stored.event.source_kind == "server" and stored.event.source_key_id == "key_server"
    assert stored.event.timestamp == "2024-03-01T10:00:00.000Z"
    payload = stored.event.payload
    assert payload["type"] == "track" and payload["properties"] == {"plan": "pro"}
    assert payload["context"] == {"Marketo": {"marketoCookie": "id:123-ABC-456&token:_mch-example"}}
    assert payload["receivedAt"].endswith("Z")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/identify", {"userId": "u1", "traits": {"email": "a@example.com"}}),
        ("/v1/alias", {"userId": "u1", "previousId": "anon-1"}),
        ("/v1/page", {"anonymousId": "a1", "name": "Home"}),
        ("/v1/screen", {"anonymousId": "a1", "name": "Home"}),
        ("/v1/group", {"userId": "u1", "groupId": "g1"}),
    ],
)
def test_every_server_route_stores_its_type(client, store, path, body):
    response = client.post(path, json={**body, "messageId": "m"}, headers=AUTH)
    assert response.status_code == 200, response.get_json()
    assert only(store, "m").event.type == path.rsplit("/", 1)[1]


def test_gzip_body_is_accepted(client, store):
    raw = gzip.compress(json.dumps({"userId": "u1", "event": "x", "messageId": "gz"}).encode())
    headers = {**AUTH, "Content-Encoding": "gzip", "Content-Type": "application/json"}
    assert client.post("/v1/track", data=raw, headers=headers).status_code == 200
    assert only(store, "gz").event.payload["event"] == "x"


def test_message_id_is_generated_and_a_repeat_is_acknowledged_once(client, store):
    assert (
        client.post("/v1/track", json={"userId": "u", "event": "x"}, headers=AUTH).status_code
        == 200
    )
    assert store.counts(0)["dropped"] == {"event_not_mapped": 1}
    batch = {"batch": [{"type": "identify", "userId": "u", "messageId": "same"}] * 3}
    assert client.post("/v1/batch", json=batch, headers=AUTH).get_json() == {"success": True}
    assert client.post("/v1/identify", json=batch["batch"][0], headers=AUTH).status_code == 200
    assert len(store.find("same")) == 1


def test_beacon_is_stored_as_browser_with_cors_for_its_origin(client, store):
    body = beacon_body(anonymousId="a1", event="Clicked", messageId="b-1")
    response = client.post("/v1/t", data=body, headers=BEACON_HEADERS)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == BROWSER_ORIGIN
    stored = only(store, "b-1")
    assert stored.event.source_kind == "browser" and "writeKey" not in stored.event.payload


def test_browser_batch_takes_the_key_from_the_body(client, store):
    body = json.dumps(
        {
            "writeKey": BROWSER_KEY,
            "batch": [{"type": "identify", "anonymousId": "a", "messageId": "bb"}],
        }
    )
    assert client.post("/v1/batch", data=body, headers=BEACON_HEADERS).status_code == 200
    assert only(store, "bb").event.source_kind == "browser"


def test_preflight_is_answered_for_allowed_origins_only(client):
    request = {"Access-Control-Request-Method": "POST"}
    allowed = client.options("/v1/t", headers={**request, "Origin": BROWSER_ORIGIN})
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == BROWSER_ORIGIN
    foreign = client.options("/v1/batch", headers={**request, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in foreign.headers


def test_browser_rate_limit_answers_429_with_retry_after(write_settings, client, store):
    write_settings(intake={"browser_rate_per_ip": "2/minute"})
    codes = [
        client.post("/v1/p", data=beacon_body(anonymousId="a", name="P"), headers=BEACON_HEADERS)
        for _ in range(3)
    ]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert int(codes[2].headers["Retry-After"]) >= 1
    assert codes[2].get_json()["error"]["code"] == "rate_limited"


def browser_batch(client, n: int, remote: str = "127.0.0.1"):
    """Send one browser batch of n page events from `remote`; return the response."""
    items = [{"type": "page", "anonymousId": f"a{i}", "name": "P"} for i in range(n)]
    body = json.dumps({"writeKey": BROWSER_KEY, "batch": items})
    environ = {"REMOTE_ADDR": remote}
    return client.post("/v1/batch", data=body, headers=BEACON_HEADERS, environ_base=environ)


def test_a_browser_batch_costs_each_of_its_events(write_settings, client, store):
    """The per-IP budget counts events, so one batch cannot carry thousands past it."""
    write_settings(intake={"browser_rate_per_ip": "5/minute"})
    assert browser_batch(client, 3).status_code == 200
    assert browser_batch(client, 3).status_code == 429
    assert browser_batch(client, 2).status_code == 200
    too_big = browser_batch(client, 6, remote="198.51.100.9")
    assert too_big.status_code == 413 and too_big.get_json()["error"]["code"] == "too_many_events"
    assert store.counts(0)["dropped"] == {"recorded_only": 5}


def test_ipv6_callers_share_a_budget_per_slash_64(write_settings, client, store):
    """Walking through addresses of one /64 does not reset the budget; another /64 has its own."""
    write_settings(intake={"browser_rate_per_ip": "2/minute"})
    assert browser_batch(client, 1, remote="2001:db8:1:2::1").status_code == 200
    assert browser_batch(client, 1, remote="2001:db8:1:2::ffff").status_code == 200
    assert browser_batch(client, 1, remote="2001:db8:1:2:abcd::7").status_code == 429
    assert browser_batch(client, 1, remote="2001:db8:1:3::1").status_code == 200


def beacons_from(client, forwarded_for: str, n: int) -> list[int]:
    """Send n page beacons through a proxy that reports `forwarded_for`; return the statuses."""
    headers = {**BEACON_HEADERS, "X-Forwarded-For": forwarded_for}
    body = beacon_body(anonymousId="a", name="P")
    return [client.post("/v1/p", data=body, headers=headers).status_code for _ in range(n)]


def test_behind_a_trusted_proxy_each_visitor_has_their_own_rate(write_settings, client, store):
    """With proxy_hops=1 the limit applies to the address the proxy saw, not to the proxy."""
    write_settings(intake={"browser_rate_per_ip": "2/minute", "proxy_hops": 1})
    assert beacons_from(client, "198.51.100.1", 3) == [200, 200, 429]
    assert beacons_from(client, "198.51.100.2", 2) == [200, 200]
    # A client cannot escape its bucket by writing its own X-Forwarded-For entries.
    assert beacons_from(client, "10.9.9.9, 198.51.100.1", 1) == [429]


def test_without_proxy_hops_forwarded_for_is_ignored(write_settings, client, store):
    """By default the socket peer is the client: a made-up X-Forwarded-For changes nothing."""
    write_settings(intake={"browser_rate_per_ip": "2/minute"})
    assert beacons_from(client, "198.51.100.1", 2) == [200, 200]
    assert beacons_from(client, "198.51.100.2", 1) == [429]


@pytest.mark.parametrize(
    ("body", "state", "reason"),
    [
        ({"type": "track", "userId": "u", "event": "Signed Up"}, State.PENDING, None),
        ({"type": "track", "userId": "u", "event": "Other"}, State.DROPPED, "event_not_mapped"),
        ({"type": "track", "userId": "u", "event": "Signed Up", "integrations": {"Marketo": False}},
         State.DROPPED, "disabled_by_integrations"),
        ({"type": "track", "userId": "u", "event": "Signed Up", "integrations": {"All": False}},
         State.DROPPED, "disabled_by_integrations"),
        ({"type": "group", "userId": "u", "groupId": "g"}, State.DROPPED, "unsupported_type"),
        ({"type": "page", "userId": "u"}, State.DROPPED, "page_not_mapped"),
        ({"type": "identify", "userId": "u"}, State.PENDING, None),
    ],
)  # fmt: skip
def test_server_events_are_routed_with_named_reasons(mapped, client, store, body, state, reason):
    response = client.post("/v1/batch", json={"batch": [{**body, "messageId": "r"}]}, headers=AUTH)
    assert response.status_code == 200
    stored = only(store, "r")
    assert (stored.state, stored.reason) == (state, reason)


def test_browser_page_in_hybrid_mode_is_recorded_only(client, store):
    body = beacon_body(anonymousId="a", name="Home", messageId="p")
    assert client.post("/v1/p", data=body, headers=BEACON_HEADERS).status_code == 200
    assert only(store, "p").reason == "recorded_only"


def test_anonymous_track_is_held_until_identify_links_the_visitor(write_settings, client, store):
    write_settings(events=MAPPED, track_anonymous=False)
    track = {"anonymousId": "anon-9", "event": "Signed Up", "messageId": "held"}
    assert client.post("/v1/track", json=track, headers=AUTH).status_code == 200
    assert only(store, "held").state is State.HELD
    identify = {"anonymousId": "anon-9", "userId": "user-9", "messageId": "id"}
    assert client.post("/v1/identify", json=identify, headers=AUTH).status_code == 200
    released = only(store, "held")
    assert released.state is State.PENDING and released.event.user_id == "user-9"


def test_alias_releases_events_held_under_its_previous_id(write_settings, client, store):
    write_settings(events=MAPPED, track_anonymous=False)
    track = {"anonymousId": "anon-5", "event": "Signed Up", "messageId": "held"}
    client.post("/v1/track", json=track, headers=AUTH)
    alias = {"previousId": "anon-5", "userId": "user-5"}
    assert client.post("/v1/alias", json=alias, headers=AUTH).status_code == 200
    assert only(store, "held").state is State.PENDING


def test_the_dedupe_window_is_per_key(client, store):
    """A public browser key cannot pre-empt a server event's messageId and have it discarded."""
    beacon = beacon_body(anonymousId="a", event="Signed Up", messageId="order-1235")
    assert client.post("/v1/t", data=beacon, headers=BEACON_HEADERS).status_code == 200
    server = {"userId": "u1", "event": "Signed Up", "messageId": "order-1235"}
    assert client.post("/v1/track", json=server, headers=AUTH).status_code == 200
    again = client.post("/v1/track", json=server, headers=AUTH)
    assert again.status_code == 200
    stored = store.find("order-1235")
    assert sorted(s.event.source_kind for s in stored) == ["browser", "server"]


def _credentials(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "header",
    [
        f"Basic {_credentials(SERVER_KEY + ':')}",
        f"basic {_credentials(SERVER_KEY + ':')}",
        f"BASIC  {_credentials(SERVER_KEY + ':')} ",
        f"Basic {_credentials(SERVER_KEY + ':a password')}",
        f"Basic {_credentials(SERVER_KEY)}",
    ],
    ids=["segment", "lower-case scheme", "extra spaces", "with a password", "no colon"],
)
def test_the_server_key_is_read_from_any_spelling_of_basic_credentials(client, store, header):
    response = client.post(
        "/v1/track", json={"userId": "u1", "event": "E"}, headers={"Authorization": header}
    )
    assert response.status_code == 200, response.data
    assert store.counts(0)["dropped"] == {"event_not_mapped": 1}
