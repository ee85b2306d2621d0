"""Every text field is checked at intake: surrogates, NUL and control characters are a 4xx."""

# ruff: noqa: E501  (the table of places reads best one per line)

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import BROWSER_KEY
from tests.fixtures_intake import BEACON_HEADERS
from tests.fixtures_intake import basic_auth

# Raw JSON text of each bad string: what a client can spell in valid JSON.
BAD = {
    "lone surrogate": '"a\\ud800b"',
    "low surrogate": '"\\udfff"',
    "NUL": '"a\\u0000b"',
    "escape (ANSI)": '"\\u001b[31mred"',
    "bell": '"\\u0007"',
    "C1 control": '"\\u0085x"',
}

# Where a string goes: a template with {v} for the bad raw JSON string.
PLACES = {
    "userId": '"userId": {v}, "event": "E"',
    "anonymousId": '"anonymousId": {v}, "event": "E"',
    "event": '"userId": "u1", "event": {v}',
    "messageId": '"userId": "u1", "event": "E", "messageId": {v}',
    "Marketo cookie": '"userId": "u1", "event": "E", "context": {{"Marketo": {{"marketoCookie": {v}}}}}',
    "legacy cookie": '"userId": "u1", "event": "E", "context": {{"marketoCookie": {v}}}',
    "property value": '"userId": "u1", "event": "E", "properties": {{"plan": {v}}}',
    "nested property": '"userId": "u1", "event": "E", "properties": {{"a": [1, {{"b": {v}}}]}}',
    "property key": '"userId": "u1", "event": "E", "properties": {{{v}: 1}}',
    "trait value": '"userId": "u1", "event": "E", "context": {{"traits": {{"email": {v}}}}}',
    "context field": '"userId": "u1", "event": "E", "context": {{"page": {{"url": {v}}}}}',
    "unknown top field": '"userId": "u1", "event": "E", "extra": {v}',
}


def _item(place: str, bad: str) -> str:
    return "{" + PLACES[place].format(v=BAD[bad]) + "}"


def _nothing_stored(store) -> None:
    counts = store.counts(0)
    assert counts["pending"] == counts["held"] == 0 and counts["dropped"] == {}, counts


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("place", PLACES)
def test_server_track_with_bad_text_is_a_400_and_stores_nothing(client, store, place, bad):
    answer = client.post(
        "/v1/track",
        data=_item(place, bad),
        headers={**basic_auth(), "Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.get_json()["error"]["code"] in {"bad_id", "bad_event", "bad_field", "bad_text"}
    _nothing_stored(store)


@pytest.mark.parametrize("bad", ["lone surrogate", "NUL", "escape (ANSI)"])
@pytest.mark.parametrize("place", PLACES)
def test_browser_beacon_with_bad_text_is_a_400_and_stores_nothing(client, store, place, bad):
    body = _item(place, bad)[:-1] + f', "writeKey": "{BROWSER_KEY}"}}'
    answer = client.post("/v1/t", data=body, headers=BEACON_HEADERS)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    _nothing_stored(store)


def test_a_batch_rejects_each_bad_item_and_stores_the_good_ones(client, store):
    good = {"type": "track", "userId": "u1", "event": "E", "messageId": "good-1"}
    items = [json.dumps(good)] + [
        _item(place, "lone surrogate")[:-1] + ', "type": "track"}' for place in PLACES
    ]
    answer = client.post(
        "/v1/batch",
        data='{"batch": [' + ", ".join(items) + "]}",
        headers={**basic_auth(), "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    rejected = answer.get_json()["rejected"]
    assert [r["index"] for r in rejected] == list(range(1, len(PLACES) + 1))
    counts = store.counts(0)
    assert counts["pending"] + counts["held"] + sum(counts["dropped"].values()) == 1
    assert len(store.find("good-1")) == 1


@pytest.mark.parametrize(
    "value",
    ["line one\nline two", "tab\tseparated", "caf\u00e9 \u2713 \U0001f600", "a\\u0000 literally"],
)
def test_text_with_line_breaks_tabs_and_unicode_is_kept(client, store, value: Any):
    answer = client.post(
        "/v1/track",
        json={"userId": "u1", "event": "E", "messageId": "m-ok", "properties": {"note": value}},
        headers=basic_auth(),
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    (stored,) = store.find("m-ok")
    assert stored.event.payload["properties"]["note"] == value
