"""Audience sync through the delivery engine: identify/track → static-list membership."""

from __future__ import annotations

import base64

import pytest

from app.outbox import get_store
from tests.conftest import SERVER_KEY

AUTH = {"Authorization": "Basic " + base64.b64encode(f"{SERVER_KEY}:".encode()).decode()}


class Gateway:
    """Send Segment calls to the app and run its dispatcher until the outbox is settled."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()

    def send(self, kind: str, **message):
        response = self.client.post(f"/v1/{kind}", json=message, headers=AUTH)
        assert response.status_code == 200, response.json
        return message

    def deliver(self) -> None:
        from app.delivery import get_engine

        engine = get_engine(self.app)
        for _ in range(50):
            engine.dispatcher.run_once(flush=True)
            counts = get_store(self.app).counts(0)
            if counts["pending"] == 0 and counts["in_flight"] == 0:
                return
        raise AssertionError(f"outbox not settled: {counts}")

    def counts(self):
        return get_store(self.app).counts(0)


def audience_identify(key: str, value: bool, email: str | None, user_id: str = "u1"):
    """A Personas audience identify."""
    traits = {key: value}
    if email:
        traits["email"] = email
    return {
        "userId": user_id,
        "traits": traits,
        "context": {"personas": {"computation_class": "audience", "computation_key": key}},
    }


@pytest.fixture
def gateway(bo_app_factory):
    """A gateway whose audience lists live in folder 31, trial_users renamed."""
    app = bo_app_factory(
        lists={
            "folder": {"type": "Folder", "id": 31},
            "create_missing": True,
            "names": {"trial_users": "Trial users"},
        }
    )
    return Gateway(app)


def members(fake, name: str) -> set[str]:
    """Emails of a fake list's members."""
    static = next(s for s in fake.lists.values() if s["name"] == name)
    return {fake.leads[i]["email"] for i in static["members"]}


def test_enter_then_exit_round_trip_creates_the_list_once(fake_marketo, gateway):
    """Entering adds the lead to the (created) list, exiting removes it; one create call."""
    gateway.send("identify", **audience_identify("trial_users", True, "ann@example.com"))
    gateway.send(
        "track",
        userId="u2",
        event="Audience Entered",
        properties={"audience_key": "trial_users", "trial_users": True, "email": "bob@x.io"},
    )
    gateway.deliver()
    assert members(fake_marketo, "Trial users") == {"ann@example.com", "bob@x.io"}
    gateway.send("identify", **audience_identify("trial_users", False, "ann@example.com"))
    gateway.send(
        "track",
        userId="u2",
        event="Audience Exited",
        properties={"audience_key": "trial_users", "trial_users": False, "email": "bob@x.io"},
    )
    gateway.deliver()
    assert members(fake_marketo, "Trial users") == set()
    assert len(fake_marketo.calls_to("/staticLists.json")) == 1
    assert len(fake_marketo.calls_to("/staticList/byName.json")) == 1
    assert gateway.counts()["delivered"] == 4


def test_several_emails_make_several_memberships(fake_marketo, gateway):
    """Every email on the profile (traits and externalIds) joins the list."""
    message = audience_identify("vip", True, "ann@example.com")
    message["context"]["externalIds"] = [
        {"id": "ann.work@example.com", "type": "email", "collection": "users"}
    ]
    gateway.send("identify", **message)
    gateway.deliver()
    assert members(fake_marketo, "vip") == {"ann@example.com", "ann.work@example.com"}


def test_audience_without_email_is_dropped_with_a_reason(fake_marketo, gateway):
    """No email, no membership: the event is dropped as no_email_for_audience."""
    gateway.send(
        "track",
        userId="u9",
        event="Audience Entered",
        properties={"audience_key": "vip", "vip": True},
    )
    gateway.deliver()
    assert gateway.counts()["dropped"] == {"no_email_for_audience": 1}
    assert fake_marketo.calls_to("/staticLists.json") == []


def test_membership_calls_are_batched_at_300(fake_marketo, gateway):
    """350 entries make two add calls (300 + 50), not 350."""
    for i in range(350):
        gateway.send("identify", **audience_identify("big", True, f"p{i}@x.io", f"u{i}"))
    gateway.deliver()
    adds = [c for c in fake_marketo.calls_to("/leads.json") if "/lists/" in c.path]
    assert len(members(fake_marketo, "big")) == 350
    assert len(adds) == 2


def test_missing_list_without_create_is_dead_lettered(fake_marketo, bo_app_factory):
    """With create_missing off, an unknown list dead-letters the event with list_not_found."""
    app = bo_app_factory(lists={"folder": {"type": "Folder", "id": 31}, "create_missing": False})
    gateway = Gateway(app)
    gateway.send("identify", **audience_identify("ghost", True, "ann@example.com"))
    gateway.deliver()
    assert gateway.counts()["dead"] == {"list_not_found": 1}
