"""Bad input of any kind gets a 4xx with the error shape, never a 5xx, and stores nothing."""

# ruff: noqa: E501  (the case table reads best one case per line)

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.conftest import BROWSER_KEY
from tests.conftest import BROWSER_ORIGIN
from tests.conftest import SERVER_KEY
from tests.fixtures_intake import basic_auth

AUTH = basic_auth()
JSON = {"Content-Type": "application/json"}
LONG = "x" * 256
OK_TRACK = {"userId": "u1", "event": "Signed Up"}


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def bomb() -> bytes:
    """A small gzip body that inflates far past the batch limit."""
    return gzip.compress(b'{"batch": [' + b" " * 5_000_000 + b"]}")


# (name, method, path, headers, raw body, expected status)
CASES: list[tuple[str, str, str, dict[str, str], bytes, int]] = [
    ("no auth", "POST", "/v1/track", JSON, body(OK_TRACK), 401),
    ("lone surrogate userId", "POST", "/v1/track", {**JSON, **AUTH}, b'{"userId": "\\ud800", "event": "E"}', 400),
    ("lone surrogate anonymousId", "POST", "/v1/track", {**JSON, **AUTH}, b'{"anonymousId": "a\\udfff", "event": "E"}', 400),
    ("lone surrogate messageId", "POST", "/v1/track", {**JSON, **AUTH}, b'{"userId": "u1", "event": "E", "messageId": "\\ud83d"}', 400),
    ("NUL in userId", "POST", "/v1/track", {**JSON, **AUTH}, b'{"userId": "u\\u0000", "event": "E"}', 400),
    ("NaN userId", "POST", "/v1/track", {**JSON, **AUTH}, b'{"userId": NaN, "event": "E"}', 400),
    ("infinite userId", "POST", "/v1/track", {**JSON, **AUTH}, b'{"userId": 1e400, "event": "E"}', 400),
    ("wrong server key", "POST", "/v1/track", {**JSON, **basic_auth("sk_nope")}, body(OK_TRACK), 401),
    ("browser key as basic user", "POST", "/v1/track", {**JSON, **basic_auth(BROWSER_KEY)}, body(OK_TRACK), 401),
    ("bearer instead of basic", "POST", "/v1/track", {**JSON, "Authorization": f"Bearer {SERVER_KEY}"}, body(OK_TRACK), 401),
    ("garbage authorization", "POST", "/v1/track", {**JSON, "Authorization": "Basic !!!"}, body(OK_TRACK), 401),
    ("non-ascii basic credentials", "POST", "/v1/track", {**JSON, "Authorization": "Basic \xe9t\xe9"}, body(OK_TRACK), 401),
    ("non-ascii basic credentials on a batch", "POST", "/v1/batch", {**JSON, "Authorization": "Basic \xe9"}, body({"batch": [{**OK_TRACK, "type": "track"}]}), 401),
    ("not json", "POST", "/v1/track", {**JSON, **AUTH}, b"{nope", 400),
    ("empty body", "POST", "/v1/track", {**JSON, **AUTH}, b"", 400),
    ("whitespace body", "POST", "/v1/track", {**JSON, **AUTH}, b"   \n", 400),
    ("invalid utf-8", "POST", "/v1/track", {**JSON, **AUTH}, b'{"userId": "\xff\xfe"}', 400),
    ("json array body", "POST", "/v1/track", {**JSON, **AUTH}, body([OK_TRACK]), 400),
    ("json string body", "POST", "/v1/track", {**JSON, **AUTH}, body("track"), 400),
    ("json null body", "POST", "/v1/track", {**JSON, **AUTH}, b"null", 400),
    ("xml content type on a beacon", "POST", "/v1/t", {"Content-Type": "application/xml"}, body({**OK_TRACK, "writeKey": BROWSER_KEY}), 415),
    ("form body that is not JSON", "POST", "/v1/track", {"Content-Type": "application/x-www-form-urlencoded", **AUTH}, b"a=b", 400),
    ("beacon key and Authorization differ", "POST", "/v1/t", {"Content-Type": "text/plain", **AUTH}, body({**OK_TRACK, "writeKey": BROWSER_KEY}), 401),
    ("server key as Authorization of a beacon", "POST", "/v1/t", {"Content-Type": "text/plain", **AUTH}, body(OK_TRACK), 401),
    ("brotli encoding", "POST", "/v1/track", {**JSON, **AUTH, "Content-Encoding": "br"}, body(OK_TRACK), 415),
    ("corrupt gzip", "POST", "/v1/track", {**JSON, **AUTH, "Content-Encoding": "gzip"}, b"\x1f\x8bnot gzip", 400),
    ("truncated gzip", "POST", "/v1/track", {**JSON, **AUTH, "Content-Encoding": "gzip"}, gzip.compress(body(OK_TRACK))[:-6], 400),
    ("deflate labelled gzip", "POST", "/v1/track", {**JSON, **AUTH, "Content-Encoding": "gzip"}, zlib.compress(body(OK_TRACK)), 400),
    ("gzip bomb", "POST", "/v1/batch", {**JSON, **AUTH, "Content-Encoding": "gzip"}, bomb(), 413),
    ("event over 32 KB", "POST", "/v1/track", {**JSON, **AUTH}, body({**OK_TRACK, "properties": {"a": "x" * 40000}}), 413),
    ("batch over 500 KB", "POST", "/v1/batch", {**JSON, **AUTH}, body({"batch": [{**OK_TRACK, "type": "track", "properties": {"a": "x" * 20000}}] * 30}), 413),
    ("missing ids", "POST", "/v1/track", {**JSON, **AUTH}, body({"event": "x"}), 400),
    ("empty ids", "POST", "/v1/track", {**JSON, **AUTH}, body({"event": "x", "userId": "", "anonymousId": ""}), 400),
    ("userId too long", "POST", "/v1/track", {**JSON, **AUTH}, body({"event": "x", "userId": LONG}), 400),
    ("anonymousId too long", "POST", "/v1/track", {**JSON, **AUTH}, body({"event": "x", "anonymousId": LONG}), 400),
    ("messageId too long", "POST", "/v1/track", {**JSON, **AUTH}, body({**OK_TRACK, "messageId": LONG}), 400),
    ("messageId a number", "POST", "/v1/track", {**JSON, **AUTH}, body({**OK_TRACK, "messageId": 12}), 400),
    ("userId an object", "POST", "/v1/track", {**JSON, **AUTH}, body({"event": "x", "userId": {"a": 1}}), 400),
    ("userId a boolean", "POST", "/v1/track", {**JSON, **AUTH}, body({"event": "x", "userId": True}), 400),
    ("track without event", "POST", "/v1/track", {**JSON, **AUTH}, body({"userId": "u1"}), 400),
    ("track with empty event", "POST", "/v1/track", {**JSON, **AUTH}, body({"userId": "u1", "event": ""}), 400),
    ("track event a number", "POST", "/v1/track", {**JSON, **AUTH}, body({"userId": "u1", "event": 5}), 400),
    ("sentAt not iso", "POST", "/v1/track", {**JSON, **AUTH}, body({**OK_TRACK, "originalTimestamp": "2024-01-01T00:00:00Z", "sentAt": "now"}), 400),
    ("alias without previousId", "POST", "/v1/alias", {**JSON, **AUTH}, body({"userId": "u1"}), 400),
    ("group without groupId", "POST", "/v1/group", {**JSON, **AUTH}, body({"userId": "u1"}), 400),
    ("timestamp not iso", "POST", "/v1/track", {**JSON, **AUTH}, body({**OK_TRACK, "timestamp": "yesterday"}), 400),
    ("timestamp a number", "POST", "/v1/track", {**JSON, **AUTH}, body({**OK_TRACK, "timestamp": 1700000000}), 400),
    ("timestamp impossible date", "POST", "/v1/track", {**JSON, **AUTH}, body({**OK_TRACK, "timestamp": "2024-02-30T10:00:00Z"}), 400),
    ("properties a list", "POST", "/v1/track", {**JSON, **AUTH}, body({**OK_TRACK, "properties": [1, 2]}), 400),
    ("traits a string", "POST", "/v1/identify", {**JSON, **AUTH}, body({"userId": "u1", "traits": "a"}), 400),
    ("context a number", "POST", "/v1/track", {**JSON, **AUTH}, body({**OK_TRACK, "context": 3}), 400),
    ("context.Marketo a string", "POST", "/v1/track", {**JSON, **AUTH}, body({**OK_TRACK, "context": {"Marketo": "x"}}), 400),
    ("marketo cookie a number", "POST", "/v1/track", {**JSON, **AUTH}, body({**OK_TRACK, "context": {"marketoCookie": 7}}), 400),
    ("integrations a list", "POST", "/v1/track", {**JSON, **AUTH}, body({**OK_TRACK, "integrations": []}), 400),
    ("NaN property", "POST", "/v1/track", {**JSON, **AUTH}, b'{"userId": "u1", "event": "x", "properties": {"v": NaN}}', 400),
    ("nesting too deep", "POST", "/v1/track", {**JSON, **AUTH}, b'{"userId": "u1", "event": "x", "properties": ' + b"[" * 10000 + b"]" * 10000 + b"}", 400),
    ("batch not a list", "POST", "/v1/batch", {**JSON, **AUTH}, body({"batch": {"type": "track"}}), 400),
    ("batch missing", "POST", "/v1/batch", {**JSON, **AUTH}, body({"events": []}), 400),
    ("batch empty", "POST", "/v1/batch", {**JSON, **AUTH}, body({"batch": []}), 400),
    ("batch of non-objects", "POST", "/v1/batch", {**JSON, **AUTH}, body({"batch": [1, "two", None]}), 400),
    ("batch item unknown type", "POST", "/v1/batch", {**JSON, **AUTH}, body({"batch": [{**OK_TRACK, "type": "purchase"}]}), 400),
    ("batch item without type", "POST", "/v1/batch", {**JSON, **AUTH}, body({"batch": [OK_TRACK]}), 400),
    ("wrong method GET", "GET", "/v1/track", AUTH, b"", 405),
    ("wrong method PUT", "PUT", "/v1/batch", {**JSON, **AUTH}, body({"batch": []}), 405),
    ("unknown route", "POST", "/v1/purchase", {**JSON, **AUTH}, body(OK_TRACK), 404),
    ("beacon without writeKey", "POST", "/v1/t", {"Content-Type": "text/plain"}, body(OK_TRACK), 401),
    ("beacon with unknown writeKey", "POST", "/v1/t", {"Content-Type": "text/plain"}, body({**OK_TRACK, "writeKey": "bk_nope"}), 401),
    ("beacon with server key as writeKey", "POST", "/v1/t", {"Content-Type": "text/plain"}, body({**OK_TRACK, "writeKey": SERVER_KEY}), 401),
    ("beacon writeKey a list", "POST", "/v1/t", {"Content-Type": "text/plain"}, body({**OK_TRACK, "writeKey": [BROWSER_KEY]}), 401),
    ("beacon from a foreign origin", "POST", "/v1/t", {"Content-Type": "text/plain", "Origin": "https://evil.example"}, body({**OK_TRACK, "writeKey": BROWSER_KEY}), 403),
    ("beacon not an object", "POST", "/v1/p", {"Content-Type": "text/plain"}, body([BROWSER_KEY]), 400),
    ("beacon missing ids", "POST", "/v1/p", {"Content-Type": "text/plain"}, body({"writeKey": BROWSER_KEY, "name": "Home"}), 400),
    ("browser batch without key", "POST", "/v1/batch", {"Content-Type": "text/plain"}, body({"batch": [{**OK_TRACK, "type": "track"}]}), 401),
    ("beacon over 32 KB", "POST", "/v1/t", {"Content-Type": "text/plain"}, body({**OK_TRACK, "writeKey": BROWSER_KEY, "p": "x" * 40000}), 413),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "headers", "raw", "status"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_bad_input_gets_a_4xx_error_and_stores_nothing(
    client, store, method, path, headers, raw, status
):
    response = client.open(path, method=method, headers=headers, data=raw)
    assert response.status_code == status, response.data[:300]
    error = response.get_json()
    assert error["success"] is False
    assert error["error"]["code"] and error["error"]["message"]
    assert (error["code"], error["message"]) == (error["error"]["code"], error["error"]["message"])
    counts = store.counts(0)
    assert counts["pending"] == counts["held"] == 0 and counts["dropped"] == {}


def test_a_batch_item_with_an_unstorable_id_is_rejected_alone(client, store):
    raw = (
        b'{"batch": [{"type": "track", "userId": "u1", "event": "A", "messageId": "good-1"},'
        b' {"type": "track", "userId": "\\ud800", "event": "A", "messageId": "bad-1"}]}'
    )
    response = client.post("/v1/batch", data=raw, headers={**JSON, **AUTH})
    assert response.status_code == 200
    assert [(r["index"], r["code"]) for r in response.get_json()["rejected"]] == [(1, "bad_id")]
    assert [e.event.message_id for e in store.find("good-1")] == ["good-1"]
    assert store.find("bad-1") == []


def test_there_are_at_least_forty_kinds_of_bad_input():
    assert len({c[0] for c in CASES}) >= 40


def test_a_batch_with_some_bad_items_stores_the_good_ones_and_lists_the_rest(client, store):
    items = [
        {"type": "track", "userId": "u1", "event": "A", "messageId": "good-1"},
        {"type": "track", "userId": "u1"},
        "not an object",
        {"type": "identify", "userId": "u1", "messageId": "good-2"},
        {"type": "alias", "userId": "u1"},
    ]
    response = client.post("/v1/batch", json={"batch": items}, headers=AUTH)
    assert response.status_code == 200
    rejected = response.get_json()["rejected"]
    assert [(r["index"], r["code"]) for r in rejected] == [
        (1, "missing_event"),
        (2, "not_an_object"),
        (4, "missing_previous_id"),
    ]
    assert len(store.find("good-1")) == 1 and len(store.find("good-2")) == 1
    counts = store.counts(0)
    assert counts["pending"] + sum(counts["dropped"].values()) == 2


# Text includes lone surrogates (category Cs): JSON can spell them, and no database stores them.
any_text = st.text(st.characters(exclude_categories=()), max_size=20) | st.sampled_from(
    ["\ud800", "id-\udfff", "nul\x00"]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)  # fmt: skip

# Messages built from the fields validation looks at, each filled with arbitrary JSON.
messages = st.fixed_dictionaries(
    {},
    optional={
        name: json_values
        for name in ("type", "userId", "anonymousId", "event", "previousId", "groupId",
                     "messageId", "timestamp", "context", "properties", "traits", "integrations")
    },
)  # fmt: skip


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=st.one_of(
        json_values,
        messages,
        st.fixed_dictionaries({"batch": st.lists(messages, max_size=4) | json_values}),
    )
)
def test_arbitrary_json_never_gets_a_5xx(client, payload):
    for path in ("/v1/track", "/v1/identify", "/v1/alias", "/v1/batch"):
        response = client.post(path, data=json.dumps(payload), headers={**JSON, **AUTH})
        assert response.status_code in (200, 400, 413), (path, response.data[:300])
        assert response.get_json()["success"] is (response.status_code == 200)


@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_never_get_a_5xx(client, raw):
    for headers in (
        {**JSON, **AUTH},
        {**JSON, **AUTH, "Content-Encoding": "gzip"},
        {"Content-Type": "text/plain", "Origin": BROWSER_ORIGIN},
    ):
        response = client.post("/v1/batch", data=raw, headers=headers)
        assert 400 <= response.status_code < 500, response.data[:300]
