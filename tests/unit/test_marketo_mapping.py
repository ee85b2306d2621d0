"""Traits and properties → Marketo fields and activity attributes (pure tables)."""

from __future__ import annotations

import pytest

from app.delivery.mapping import CoercionError
from app.delivery.mapping import activity
from app.delivery.mapping import coerce
from app.delivery.mapping import email_of
from app.delivery.mapping import fields_hash
from app.delivery.mapping import get_path
from app.delivery.mapping import lead_fields
from app.settings import parse


def settings(**extra):
    return parse({"munchkin_id": "123-ABC-456", **extra})


@pytest.mark.parametrize(
    ("value", "type_", "expected"),
    [
        ("42", "integer", 42),
        (42.0, "integer", 42),
        ("49.90", "float", 49.9),
        (3, "currency", 3.0),
        ("yes", "boolean", True),
        (0, "boolean", False),
        (True, "string", "true"),
        (12, "string", "12"),
        ("a@b.io", "email", "a@b.io"),
        ("1990-05-17", "date", "1990-05-17"),
        ("1990-05-17T23:30:00-02:00", "date", "1990-05-17"),
        ("2024-03-02T10:15:00.250Z", "datetime", "2024-03-02T10:15:00Z"),
        ("2024-03-02T12:15:00+02:00", "datetime", "2024-03-02T10:15:00Z"),
        ("2014-11-13 12:43:04", "datetime", "2014-11-13T12:43:04Z"),
        ("https://x.io", "url", "https://x.io"),
    ],
)
def test_coerce_accepts(value, type_: str, expected) -> None:
    """Values that can be read as the declared type become it."""
    assert coerce(value, type_) == expected


@pytest.mark.parametrize(
    ("value", "type_"),
    [
        ("forty", "integer"),
        (4.5, "integer"),
        (True, "integer"),
        ("maybe", "boolean"),
        ("nan", "float"),
        ("not-an-email", "email"),
        ("17/05/1990", "date"),
        ({"a": 1}, "string"),
        ([1, 2], "integer"),
        ("", "datetime"),
    ],
)
def test_coerce_refuses(value, type_: str) -> None:
    """Values that do not fit raise CoercionError with the bad_property_type reason."""
    with pytest.raises(CoercionError) as info:
        coerce(value, type_)
    assert info.value.reason == "bad_property_type"


def test_get_path_reads_dotted_paths() -> None:
    """Nested values are reached by dotted path; a missing step gives None."""
    data = {"plan": {"tier": "pro"}, "n": 1}
    assert get_path(data, "plan.tier") == "pro"
    assert get_path(data, "plan.seats") is None
    assert get_path(data, "n.x") is None


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"traits": {"email": " ann@x.io "}}, "ann@x.io"),
        ({"context": {"traits": {"email": "bo@x.io"}}}, "bo@x.io"),
        ({"userId": "cy@x.io"}, "cy@x.io"),
        ({"userId": "u_81", "traits": {"email": "nope"}}, None),
    ],
)
def test_email_of(message, expected) -> None:
    """Email comes from traits, then context traits, then an email-shaped userId."""
    assert email_of(message) == expected


def test_standard_trait_map() -> None:
    """The §8 map: name split, company and address objects, birthday as a date, nulls left out."""
    message = {
        "userId": "u_81",
        "anonymousId": "anon-1",
        "traits": {
            "email": "ann.lee@example.com",
            "name": "Ann Marie Lee",
            "phone": None,
            "title": "CTO",
            "birthday": "1990-05-17T00:00:00Z",
            "company": {"name": "Acme", "industry": "Tools", "employee_count": "120"},
            "address": {"street": "1 Main St", "city": "Oslo", "zip": "0150", "country": "NO"},
        },
    }
    fields = lead_fields(message, settings(lead_fields={"user_id": "userId"}))
    assert fields == {
        "email": "ann.lee@example.com",
        "firstName": "Ann",
        "lastName": "Marie Lee",
        "title": "CTO",
        "dateOfBirth": "1990-05-17",
        "company": "Acme",
        "industry": "Tools",
        "numberOfEmployees": 120,
        "address": "1 Main St",
        "city": "Oslo",
        "country": "NO",
        "postalCode": "0150",
        "userId": "u_81",
    }


def test_custom_traits_by_dotted_path_with_types() -> None:
    """Custom traits map by dotted path and are coerced; a bad value raises bad_trait_type."""
    s = settings(traits={"plan.seats": {"field": "planSeats", "type": "integer"}})
    assert lead_fields({"traits": {"plan": {"seats": "5"}}}, s)["planSeats"] == 5
    with pytest.raises(CoercionError) as info:
        lead_fields({"traits": {"plan": {"seats": "many"}}}, s)
    assert info.value.reason == "bad_trait_type"


def test_fields_hash_ignores_key_order() -> None:
    """The same fields in another order hash the same; a changed value does not."""
    assert fields_hash({"a": 1, "b": "x"}) == fields_hash({"b": "x", "a": 1})
    assert fields_hash({"a": 1}) != fields_hash({"a": 2})


EVENTS = {
    "Signed Up": {
        "activity_type_id": 100001,
        "primary": "plan.name",
        "properties": {
            "plan.price": {"attribute": "price", "type": "currency"},
            "seats": {"attribute": "seats", "type": "integer"},
        },
    }
}


def test_activity_from_track() -> None:
    """A track becomes one activity with typed attributes by apiName and the event's date."""
    s = settings(events=EVENTS)
    message = {
        "event": "Signed Up",
        "timestamp": "2024-03-02T11:15:00+01:00",
        "properties": {"plan": {"name": "Pro", "price": "49.00"}, "seats": 3, "other": "x"},
    }
    assert activity(message, s.events["Signed Up"], 977, "Signed Up") == {
        "leadId": 977,
        "activityDate": "2024-03-02T10:15:00Z",
        "activityTypeId": 100001,
        "primaryAttributeValue": "Pro",
        "attributes": [
            {"apiName": "price", "value": 49.0},
            {"apiName": "seats", "value": 3},
        ],
    }


def test_activity_primary_falls_back_to_the_event_name() -> None:
    """Marketo requires a primary value; without the property the event name stands in."""
    s = settings(events=EVENTS)
    message = {"event": "Signed Up", "timestamp": "2024-03-02T10:15:00Z", "properties": {}}
    assert activity(message, s.events["Signed Up"], 1, "Signed Up")["primaryAttributeValue"] == (
        "Signed Up"
    )


def test_activity_with_bad_property_raises() -> None:
    """A property that does not fit its type fails only this activity."""
    s = settings(events=EVENTS)
    message = {"timestamp": "2024-03-02T10:15:00Z", "properties": {"seats": "lots"}}
    with pytest.raises(CoercionError) as info:
        activity(message, s.events["Signed Up"], 1, "Signed Up")
    assert info.value.reason == "bad_property_type" and "seats" in str(info.value)


def test_activity_too_large_is_refused_before_sending() -> None:
    """Attributes over 64 KB would get 1049; refuse them locally with their own reason."""
    s = settings(
        events={
            "Big": {
                "activity_type_id": 1,
                "properties": {"blob": {"attribute": "blob", "type": "text"}},
            }
        }
    )
    message = {"timestamp": "2024-03-02T10:15:00Z", "properties": {"blob": "x" * 70_000}}
    with pytest.raises(CoercionError) as info:
        activity(message, s.events["Big"], 1, "Big")
    assert info.value.reason == "attributes_too_large"


LONG_VALUES = {
    "Long": {
        "activity_type_id": 1,
        "primary": "title",
        "properties": {
            "title": {"attribute": "title", "type": "string"},
            "notes": {"attribute": "notes", "type": "text"},
            "link": {"attribute": "link", "type": "url"},
        },
    }
}


def test_activity_cuts_strings_longer_than_marketo_holds() -> None:
    """Intake accepts long values as Segment does; string attributes are cut to 255 for Marketo."""
    s = settings(events=LONG_VALUES)
    message = {"timestamp": "2024-03-02T10:15:00Z", "properties": {"title": "t" * 300}}
    built = activity(message, s.events["Long"], 1, "Long")
    assert built["primaryAttributeValue"] == "t" * 255
    assert built["attributes"] == [{"apiName": "title", "value": "t" * 255}]


def test_activity_keeps_long_text_whole() -> None:
    """A text attribute holds far more than 255 characters; it is sent as it is."""
    s = settings(events=LONG_VALUES)
    message = {"timestamp": "2024-03-02T10:15:00Z", "properties": {"notes": "n" * 1000}}
    built = activity(message, s.events["Long"], 1, "Long")
    assert built["attributes"] == [{"apiName": "notes", "value": "n" * 1000}]


def test_activity_with_a_link_too_long_is_dead_lettered_with_its_reason() -> None:
    """A cut URL would point somewhere else: that event is refused with `value_too_long`."""
    s = settings(events=LONG_VALUES)
    url = "https://example.com/" + "p" * 300
    message = {"timestamp": "2024-03-02T10:15:00Z", "properties": {"link": url}}
    with pytest.raises(CoercionError) as info:
        activity(message, s.events["Long"], 1, "Long")
    assert info.value.reason == "value_too_long" and "link" in str(info.value)


def test_a_long_event_name_standing_in_as_primary_is_cut() -> None:
    """Without a primary property the event name is the primary value, cut to Marketo's 255."""
    s = settings(events=EVENTS)
    message = {"timestamp": "2024-03-02T10:15:00Z", "properties": {}}
    built = activity(message, s.events["Signed Up"], 1, "S" * 300)
    assert built["primaryAttributeValue"] == "S" * 255
