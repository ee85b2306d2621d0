"""Intake accepts what real clients send: their headers, paths, content types and timestamps."""

from __future__ import annotations

import gzip
import json
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from tests.conftest import BROWSER_KEY
from tests.conftest import BROWSER_ORIGIN
from tests.conftest import SERVER_KEY
from tests.fixtures_intake import basic_auth

TRACK = {"type": "track", "userId": "u1", "event": "Signed Up"}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stored(store, message_id: str) -> dict:
    [row] = store.find(message_id)
    return row.event.payload


def test_preflight_allows_authorization_and_echoes_only_safe_headers(client):
    response = client.options(
        "/v1/t",
        headers={
            "Origin": BROWSER_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization, x-retry-count, cookie",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == BROWSER_ORIGIN
    allowed = {h.strip() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed == {"authorization", "content-type", "x-retry-count"}
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_preflight_from_a_foreign_origin_allows_nothing(client):
    response = client.options(
        "/v1/b",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Headers" not in response.headers


@pytest.mark.parametrize("path", ["/v1/t", "/t"])
def test_analytics_js_beacon_with_browser_key_in_basic_auth_is_a_browser_event(client, store, path):
    headers = {"Origin": BROWSER_ORIGIN, "Content-Type": "text/plain", **basic_auth(BROWSER_KEY)}
    body = {**TRACK, "writeKey": BROWSER_KEY, "messageId": "ajs-1"}
    response = client.post(path, data=json.dumps(body), headers=headers)
    assert response.status_code == 200, response.data
    assert response.headers["Access-Control-Allow-Origin"] == BROWSER_ORIGIN
    [row] = store.find("ajs-1")
    assert row.event.source_kind == "browser"


@pytest.mark.parametrize("path", ["/v1/b", "/b", "/v1/batch"])
def test_analytics_js_batch_with_browser_key_in_basic_auth_has_browser_trust(client, store, path):
    headers = {"Origin": BROWSER_ORIGIN, "Content-Type": "text/plain", **basic_auth(BROWSER_KEY)}
    items = [{**TRACK, "messageId": "b-1"}, {**TRACK, "type": "screen", "messageId": "b-2"}]
    body = {"writeKey": BROWSER_KEY, "batch": items, "sentAt": iso(datetime.now(UTC))}
    response = client.post(path, data=json.dumps(body), headers=headers)
    assert response.status_code == 200, response.data
    assert [r.event.source_kind for m in ("b-1", "b-2") for r in store.find(m)] == ["browser"] * 2


def test_browser_key_in_basic_auth_is_refused_by_the_server_api(client, store):
    response = client.post("/v1/identify", json={"userId": "u1"}, headers=basic_auth(BROWSER_KEY))
    assert response.status_code == 401
    assert response.get_json()["code"] == "browser_key_not_allowed"
    assert store.counts(0)["pending"] == 0


def test_browser_batch_from_a_foreign_origin_is_refused_even_with_basic_auth(client, store):
    headers = {"Origin": "https://evil.example", **basic_auth(BROWSER_KEY)}
    response = client.post("/v1/b", json={"batch": [TRACK]}, headers=headers)
    assert response.status_code == 403
    assert store.counts(0)["pending"] == 0


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain", "application/json", "x/unknown"],
)
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_server_batch_reads_json_whatever_the_content_type(client, store, content_type, compress):
    raw = json.dumps({"batch": [{**TRACK, "messageId": "ct-1"}]}).encode()
    headers = basic_auth(SERVER_KEY)
    if compress:
        raw = gzip.compress(raw)
        headers["Content-Encoding"] = "gzip"
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/v1/batch", data=raw, headers=headers)
    assert response.status_code == 200, response.data
    assert len(store.find("ct-1")) == 1


def test_error_body_carries_code_and_message_at_both_levels(client):
    response = client.post("/v1/track", json=TRACK, headers=basic_auth("sk_wrong"))
    body = response.get_json()
    assert response.status_code == 401
    assert body["success"] is False
    assert body["code"] == body["error"]["code"] == "unknown_key"
    assert body["message"] == body["error"]["message"]


def test_a_300_character_event_name_is_accepted_whole(client, store):
    name = "E" * 300
    response = client.post(
        "/v1/track", json={**TRACK, "event": name, "messageId": "long-1"}, headers=basic_auth()
    )
    assert response.get_data() == b'{"success":true}\n'
    assert stored(store, "long-1")["event"] == name


def test_original_timestamp_is_used_when_timestamp_is_absent(client, store):
    when = datetime.now(UTC) - timedelta(hours=2)
    message = {**TRACK, "messageId": "ot-1", "originalTimestamp": iso(when)}
    client.post("/v1/track", json=message, headers=basic_auth())
    payload = stored(store, "ot-1")
    assert payload["timestamp"] == iso(when)
    assert payload["originalTimestamp"] == iso(when)
    assert payload["receivedAt"] >= payload["timestamp"]


def test_clock_skew_is_corrected_with_sent_at(client, store):
    # The device clock runs one hour fast: it says it sent the event 5 s after it happened.
    skewed = datetime.now(UTC) + timedelta(hours=1)
    batch = {
        "batch": [{**TRACK, "messageId": "skew-1", "originalTimestamp": iso(skewed)}],
        "sentAt": iso(skewed + timedelta(seconds=5)),
    }
    client.post("/v1/batch", json=batch, headers=basic_auth())
    payload = stored(store, "skew-1")
    received = datetime.fromisoformat(payload["receivedAt"])
    corrected = datetime.fromisoformat(payload["timestamp"])
    assert abs((received - corrected).total_seconds() - 5) < 0.01
    assert payload["originalTimestamp"] == iso(skewed)


def test_browser_timestamp_is_corrected_but_a_server_timestamp_is_kept(client, store):
    skewed = datetime.now(UTC) - timedelta(days=1)
    sent = iso(skewed + timedelta(seconds=2))
    beacon = {**TRACK, "writeKey": BROWSER_KEY, "messageId": "bt-1", "timestamp": iso(skewed)}
    headers = {"Origin": BROWSER_ORIGIN, "Content-Type": "text/plain"}
    client.post("/v1/t", data=json.dumps({**beacon, "sentAt": sent}), headers=headers)
    server = {**TRACK, "messageId": "st-1", "timestamp": iso(skewed), "sentAt": sent}
    client.post("/v1/track", json=server, headers=basic_auth())
    browser_payload = stored(store, "bt-1")
    received = datetime.fromisoformat(browser_payload["receivedAt"])
    corrected = datetime.fromisoformat(browser_payload["timestamp"])
    assert abs((received - corrected).total_seconds() - 2) < 0.01
    assert stored(store, "st-1")["timestamp"] == iso(skewed)


def test_a_sent_at_before_the_event_never_dates_it_in_the_future(client, store):
    when = datetime.now(UTC)
    message = {
        **TRACK,
        "messageId": "fut-1",
        "originalTimestamp": iso(when),
        "sentAt": iso(when - timedelta(hours=3)),
    }
    client.post("/v1/track", json=message, headers=basic_auth())
    payload = stored(store, "fut-1")
    assert payload["timestamp"] == payload["receivedAt"]
