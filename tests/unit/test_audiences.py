"""Audience planning: which messages change list membership, for which emails, or why not."""

from __future__ import annotations

import pytest

from app.delivery.audiences import LISTS_NOT_CONFIGURED
from app.delivery.audiences import NO_EMAIL
from app.delivery.audiences import audience_intent
from app.delivery.audiences import emails_of
from app.delivery.audiences import net_changes
from app.delivery.audiences import plan
from app.settings import ListsSettings

LISTS = ListsSettings(folder_id=31, names={"trial_users": "Trial users"})


def identify(key: str, value, **traits):
    """Build a Personas audience identify."""
    return {
        "type": "identify",
        "userId": "u1",
        "traits": {key: value, **traits},
        "context": {"personas": {"computation_class": "audience", "computation_key": key}},
    }


def track(event: str, key: str, value=None, **properties):
    """Build an Audience Entered/Exited track."""
    props = {"audience_key": key, **properties}
    if value is not None:
        props[key] = value
    return {"type": "track", "event": event, "userId": "u1", "properties": props}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (identify("trial_users", True), ("trial_users", True)),
        (identify("trial_users", False), ("trial_users", False)),
        (identify("trial_users", "yes"), None),
        ({**identify("k", True), "context": {"personas": {"computation_class": "trait"}}}, None),
        ({"type": "identify", "traits": {"k": True}}, None),
        (track("Audience Entered", "vip", True), ("vip", True)),
        (track("Audience Exited", "vip", False), ("vip", False)),
        (track("Audience Exited", "vip"), ("vip", False)),
        (track("Audience Entered", "vip"), ("vip", True)),
        (track("Signed Up", "vip", True), None),
        ({"type": "track", "event": "Audience Entered", "properties": {}}, None),
        ({"type": "page", "properties": {}}, None),
    ],
)
def test_audience_intent_reads_identify_and_track_forms(payload, expected):
    """Only audience identifies with a boolean trait and Audience Entered/Exited tracks count."""
    assert audience_intent(payload) == expected


def test_emails_of_collects_distinct_emails_from_every_place():
    """Traits, context.traits and externalIds emails are all memberships, without repeats."""
    payload = identify("k", True, email="Ann@Example.com")
    payload["context"]["traits"] = {"email": "ann@example.com"}
    payload["context"]["externalIds"] = [
        {"id": "ann.work@example.com", "type": "email"},
        {"id": "u1", "type": "user_id"},
    ]
    assert emails_of(payload) == ["Ann@Example.com", "ann.work@example.com"]


def test_plan_drops_audience_events_without_email_and_maps_list_names():
    """A profile without email cannot join a list; keys map through lists.names."""
    items = [
        (1, identify("trial_users", True, email="a@example.com")),
        (2, identify("trial_users", True)),
        (3, {"type": "track", "event": "Bought", "properties": {}}),
        (4, track("Audience Exited", "vip", email="b@example.com")),
    ]
    result = plan(items, LISTS)
    assert result.dropped == {2: NO_EMAIL}
    assert [(c.event_id, c.list_name, c.email, c.add) for c in result.changes] == [
        (1, "Trial users", "a@example.com", True),
        (4, "vip", "b@example.com", False),
    ]
    assert result.event_ids == {1, 2, 4}


def test_plan_without_lists_settings_drops_audience_events():
    """Audience events arriving while no list folder is configured say so."""
    result = plan([(1, identify("k", True, email="a@example.com"))], None)
    assert result.dropped == {1: LISTS_NOT_CONFIGURED}
    assert result.changes == []


def test_net_changes_keeps_the_last_wish_per_list_and_email():
    """Enter then exit in one batch ends outside the list."""
    items = [
        (1, identify("k", True, email="a@example.com")),
        (2, identify("k", False, email="A@example.com")),
        (3, identify("k", True, email="b@example.com")),
    ]
    assert net_changes(plan(items, LISTS).changes) == {
        ("k", "a@example.com"): False,
        ("k", "b@example.com"): True,
    }
