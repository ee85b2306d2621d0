"""The one normaliser: Segment message in, Event out, or InvalidEvent with a code."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import InvalidEvent
from app.ingest.validate import iso_utc
from app.ingest.validate import normalise
from app.ingest.validate import parse_timestamp

NOW_ISO = "2024-01-01T00:00:00.000Z"


def run(item: Any, route_type: str | None = None, max_bytes: int = 32768):
    return normalise(
        item, route_type=route_type, key_id="k", key_kind="server", received_at=1.0,
        received_iso=NOW_ISO, max_event_bytes=max_bytes,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01T12:00:00Z", "2024-03-01T12:00:00.000Z"),
        ("2024-03-01T12:00:00.123456+01:00", "2024-03-01T11:00:00.123Z"),
        ("2024-03-01T12:00:00", "2024-03-01T12:00:00.000Z"),
        ("2024-03-01", "2024-03-01T00:00:00.000Z"),
        ("2024-03-01T12:00:00.123Z", "2024-03-01T12:00:00.123Z"),
        ("0999-03-01T12:00:00.5+00:00", "0999-03-01T12:00:00.500Z"),
    ],
)
def test_timestamps_are_normalised_to_utc(value, expected):
    assert parse_timestamp(value) == expected


@given(st.datetimes(timezones=st.timezones()))
def test_a_timestamp_in_the_stored_form_comes_back_unchanged(moment):
    stored = iso_utc(moment)
    assert len(stored) == 24 and parse_timestamp(stored) == stored
    assert parse_timestamp(moment.isoformat()) == stored


@pytest.mark.parametrize(
    "value",
    ["", "tomorrow", "2024-13-01T00:00:00Z", 5, None, "2" * 50, "2024-02-30T00:00:00.000Z",
     "2024-03-01T24:00:00.000Z"],
)  # fmt: skip
def test_bad_timestamps_are_refused(value):
    with pytest.raises(InvalidEvent) as info:
        parse_timestamp(value)
    assert info.value.code == "bad_timestamp"


def test_route_type_wins_and_defaults_are_filled():
    event = run({"type": "page", "userId": 42, "event": "E"}, route_type="track")
    assert event.type == "track" and event.payload["type"] == "track"
    assert event.user_id == "42" and event.payload["userId"] == "42"
    assert len(event.message_id) == 36 and event.payload["messageId"] == event.message_id
    assert event.timestamp == NOW_ISO and event.payload["receivedAt"] == NOW_ISO
    assert event.payload_json is not None and '"userId":"42"' in event.payload_json


def test_both_cookie_spellings_end_at_context_marketo():
    flat = run({"type": "identify", "userId": "u", "context": {"marketoCookie": "c1"}})
    assert flat.payload["context"] == {"Marketo": {"marketoCookie": "c1"}}
    nested = run(
        {"type": "identify", "userId": "u", "context": {"Marketo": {"marketoCookie": "c2"}}}
    )
    assert nested.payload["context"]["Marketo"]["marketoCookie"] == "c2"


def test_empty_ids_count_as_absent_and_null_objects_are_removed():
    event = run({"type": "identify", "userId": "", "anonymousId": "a", "traits": None})
    assert event.user_id is None and "userId" not in event.payload
    assert "traits" not in event.payload


@pytest.mark.parametrize(
    ("item", "code"),
    [
        ([], "not_an_object"),
        ({"type": "purchase", "userId": "u"}, "unknown_type"),
        ({"type": ["track"], "userId": "u"}, "unknown_type"),
        ({"type": "identify"}, "missing_id"),
        ({"type": "identify", "userId": []}, "bad_id"),
        ({"type": "identify", "userId": "x" * 256}, "id_too_long"),
        ({"type": "track", "userId": "u"}, "missing_event"),
        ({"type": "alias", "userId": "u"}, "missing_previous_id"),
        ({"type": "group", "userId": "u"}, "missing_group_id"),
        ({"type": "identify", "userId": "u", "context": []}, "bad_field"),
        ({"type": "identify", "userId": "u", "messageId": 3}, "bad_id"),
        ({"type": "identify", "userId": "u", "traits": {"n": float("nan")}}, "bad_field"),
        ({"type": "identify", "userId": "u", "traits": {"a": "x" * 200}}, "event_too_large"),
    ],
)
def test_rule_breaks_name_their_code(item, code):
    with pytest.raises(InvalidEvent) as info:
        run(item, max_bytes=200)
    assert info.value.code == code
