"""The console shows what delivery did: each attempt, its Marketo calls, and the lead.

Events go through the real engine to the fake Marketo (over HTTP, with an injected 606); the
console, on the same outbox file, is read through the Flask test client.
"""

from __future__ import annotations

import html
import re

import pytest

from tests.integration.test_console import ADMIN_KEY
from tests.integration.test_console import admin_keys
from tests.integration.test_console import sign_in

ACTIVITIES = "/activities/external.json"


@pytest.fixture
def console(write_settings, delivery, request):
    """A signed-in console client on the rig's outbox (settings written before the app)."""
    write_settings(keys=admin_keys(), store_url=f"sqlite:///{delivery.store.path}")
    client = request.getfixturevalue("client")
    assert sign_in(client, ADMIN_KEY).status_code == 302
    return client


def event_id_of(delivery, message_id: str) -> int:
    (stored,) = delivery.store.find(message_id)
    return stored.id


def test_event_page_shows_each_attempt_its_marketo_calls_and_the_lead(delivery, console):
    """A 606 then a success: two attempts, the activities call with code 606 in the first,
    the lead the activity landed on in the second and in the header."""
    message_id = delivery.track("ann")
    delivery.fake.script(ACTIVITIES, {"code": "606"})
    delivery.drain(advance=30.0)
    stored = delivery.store.get(event_id_of(delivery, message_id))
    assert stored.state.value == "delivered"
    lead = delivery.fake.activities[-1]["leadId"]
    assert stored.lead_id == lead

    page = console.get(f"/console/events/{stored.id}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    history = text[text.index('id="history"') :]
    attempts = re.findall(r'<div class="attempt">(.*?)</div>', history, re.S)
    assert len(attempts) == 2
    newest, oldest = attempts
    assert "delivered" in newest and f"lead {lead}" in newest
    assert "POST /rest/v1/activities/external.json" in newest and "success" in newest
    assert "retry" in oldest and "RateLimited" in oldest and ">606<" in oldest
    assert "POST /rest/v1/activities/external.json" in oldest
    assert re.search(rf'id="event-lead">{lead}<', text)


def test_dead_letter_page_names_the_call_marketo_refused(delivery, console):
    """A record refused with 1006 is dead; its page shows the call and Marketo's code."""
    message_id = delivery.track("bob")
    delivery.fake.script(ACTIVITIES, {"record_errors": {0: "1006"}})
    delivery.drain()
    stored = delivery.store.get(event_id_of(delivery, message_id))
    if stored.state.value != "dead":
        pytest.fail(f"expected a dead letter, got {stored.state} {stored.reason}")
    text = html.unescape(console.get(f"/console/events/{stored.id}").text)
    assert "POST /rest/v1/activities/external.json" in text
    assert "dead" in text and stored.reason in text


def test_live_events_filter_by_email_and_message_id_show_the_lead(delivery, console):
    """The email filter (any letter case) and the messageId filter find the event; its row
    shows the lead id."""
    first = delivery.track("cat")
    delivery.track("dan")
    delivery.drain()
    lead = delivery.store.get(event_id_of(delivery, first)).lead_id
    assert lead is not None

    rows = console.get("/console/events?rows=1&email=CAT@example.com").text
    assert rows.count("<tr") == 1 and f"<td>{lead}</td>" in rows
    rows = console.get(f"/console/events?rows=1&messageId={first}").text
    assert rows.count("<tr") == 1 and f"/console/events/{event_id_of(delivery, first)}" in rows
    assert "No events match" in console.get("/console/events?rows=1&email=eve@example.com").text
