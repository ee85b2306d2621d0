"""SPEC §6.2 routing decisions, each with its named reason."""

from __future__ import annotations

import pytest

from app.ingest.routing import delivery_disabled
from app.ingest.routing import identity_link
from app.ingest.routing import route
from app.outbox.store import Event
from app.outbox.store import State
from app.settings import EventMapping
from app.settings import Settings


def settings(**overrides) -> Settings:
    return Settings(
        munchkin_id="123-ABC-456",
        events={"Signed Up": EventMapping(activity_type_id=100001)},
        **overrides,
    )


def event(kind: str, *, source: str = "server", user_id: str | None = "u", **payload) -> Event:
    body = {"type": kind, **payload}
    return Event("m", kind, "k", source, 0.0, "t", user_id, "a", body)


@pytest.mark.parametrize(
    ("integrations", "disabled"),
    [
        (None, False),
        ({}, False),
        ({"Marketo": False}, True),
        ({"Marketo V2": False}, True),
        ({"All": False}, True),
        ({"All": False, "Marketo": True}, False),
        ({"All": False, "Marketo V2": {"some": "option"}}, False),
        ({"All": True, "Marketo": False}, True),
        ({"Salesforce": False}, False),
    ],
)
def test_integrations_filter(integrations, disabled):
    assert delivery_disabled(integrations) is disabled


@pytest.mark.parametrize(
    ("ev", "overrides", "state", "reason"),
    [
        (event("track", event="Signed Up"), {}, State.PENDING, None),
        (event("track", event="Nope"), {}, State.DROPPED, "event_not_mapped"),
        (event("track", event="Signed Up", integrations={"All": False}), {}, State.DROPPED,
         "disabled_by_integrations"),
        (event("track", event="Signed Up", user_id=None), {"track_anonymous": False}, State.HELD,
         None),
        (event("track", event="Signed Up", user_id=None), {}, State.PENDING, None),
        (event("identify", user_id=None), {"track_anonymous": False}, State.PENDING, None),
        (event("page", source="browser"), {}, State.DROPPED, "recorded_only"),
        (event("page", source="browser"), {"send_track_server_side": False,
         "page_activity": EventMapping(activity_type_id=1)}, State.PENDING, None),
        (event("page"), {}, State.DROPPED, "page_not_mapped"),
        (event("page"), {"page_activity": EventMapping(activity_type_id=1)}, State.PENDING, None),
        (event("screen"), {}, State.DROPPED, "unsupported_type"),
        (event("group", groupId="g"), {}, State.DROPPED, "unsupported_type"),
    ],
)  # fmt: skip
def test_route_decisions(ev, overrides, state, reason):
    routed = route(ev, settings(**overrides))
    assert (routed.state, routed.reason) == (state, reason)


def test_identity_links_come_from_identify_and_alias():
    assert identity_link(event("identify")) == ("a", "u")
    assert identity_link(event("alias", previousId="old")) == ("old", "u")
    assert identity_link(event("identify", user_id=None)) is None
    assert identity_link(event("track", event="x")) is None
