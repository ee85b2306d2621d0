"""The whole path: a real SDK → the gateway over HTTP → outbox → dispatcher → the fake Marketo."""

from __future__ import annotations

import time

from segment.analytics.client import Client as SegmentClient

from app.delivery import get_engine
from tests.conftest import SERVER_KEY

# Bound on dispatcher steps; each step settles at least one event while work remains.
MAX_STEPS = 200
# Wall-clock bound for draining the outbox over real HTTP.
DRAIN_DEADLINE_S = 60.0


def drain(app) -> int:
    """Run the app's dispatcher until the outbox has nothing due; return the events settled."""
    dispatcher = get_engine(app).dispatcher
    settled = 0
    deadline = time.monotonic() + DRAIN_DEADLINE_S
    for _ in range(MAX_STEPS):
        step = dispatcher.run_once(flush=True)
        settled += step
        if not step or time.monotonic() > deadline:
            break
    return settled


def test_segment_sdk_track_events_become_batched_custom_activities(
    write_marketo_settings, app, live_server, store, fake_marketo
):
    write_marketo_settings()
    sdk = SegmentClient(SERVER_KEY, host=live_server, upload_size=100, max_retries=0)
    users = [f"user{i}" for i in range(600)]
    try:
        for user in users:
            sdk.track(
                user,
                "Signed Up",
                {"plan": "Pro", "price": 49.0, "trialDays": 14},
                context={"traits": {"email": f"{user}@example.com"}},
            )
        sdk.flush()
    finally:
        sdk.join()

    assert drain(app) == len(users)

    counts = store.counts(time.time())
    assert counts["delivered"] == len(users), counts
    activities = fake_marketo.activities
    assert len(activities) == len(users)
    assert {a["primaryAttributeValue"] for a in activities} == {"Pro"}
    emails = {lead["email"] for lead in fake_marketo.leads.values()}
    assert emails == {f"{u}@example.com" for u in users}
    # Batched: 600 new users cost a handful of calls, never one per event.
    assert len(fake_marketo.calls_to("activities/external.json")) == 2
    assert len(fake_marketo.calls_to("leads.json")) <= 8
    assert fake_marketo.errors_returned["606"] == 0
    assert fake_marketo.errors_returned["615"] == 0


def test_identified_user_events_reuse_the_cached_lead(
    write_marketo_settings, app, live_server, store, fake_marketo
):
    write_marketo_settings()
    sdk = SegmentClient(SERVER_KEY, host=live_server, sync_mode=True, max_retries=0)
    sdk.identify("u_81", {"email": "ann.lee@example.com", "firstName": "Ann"})
    sdk.track("u_81", "Signed Up", {"plan": "Team"})
    assert drain(app) == 2
    lead_calls = len(fake_marketo.calls_to("leads.json"))

    sdk.track("u_81", "Product Viewed", {"productId": "sku-1", "name": "Shoes"})
    assert drain(app) == 1
    assert len(fake_marketo.calls_to("leads.json")) == lead_calls
    [lead] = fake_marketo.leads.values()
    assert lead["firstName"] == "Ann"
    assert [a["leadId"] for a in fake_marketo.activities] == [lead["id"], lead["id"]]
