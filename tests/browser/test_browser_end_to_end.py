"""A real page to a Marketo custom activity: snippet → beacons → outbox → dispatcher → fake."""

from __future__ import annotations

import pytest

from app.delivery import get_engine
from tests.fixtures_marketo import marketo_document

pytestmark = pytest.mark.browser

# Dispatcher steps are bounded; each one settles at least one event while work remains.
MAX_STEPS = 50


def drain(app) -> int:
    dispatcher = get_engine(app).dispatcher
    settled = 0
    for _ in range(MAX_STEPS):
        step = dispatcher.run_once(flush=True)
        settled += step
        if not step:
            break
    return settled


def test_identify_then_track_in_the_browser_becomes_a_custom_activity_on_the_cookie_lead(
    site, fake_marketo
):
    site.gateway.configure(**marketo_document(fake_marketo))
    page = site.open()
    page.wait_for_function("document.cookie.indexOf('_mkto_trk=') >= 0")
    page.evaluate(
        "gateway.identify('u_81', {email: 'ann.lee@example.com', firstName: 'Ann'});"
        "gateway.track('Signed Up', {plan: 'Pro', price: 49})"
    )
    site.gateway.recorder.wait_for(
        lambda hits: site.gateway.beacons("i") and site.gateway.beacons("t"), 10.0, "beacons"
    )
    cookie = site.cookie("_mkto_trk")

    assert drain(site.gateway.app) >= 2

    [lead] = [lead for lead in fake_marketo.leads.values() if lead.get("email")]
    assert lead["email"] == "ann.lee@example.com"
    assert lead["firstName"] == "Ann"
    [activity] = fake_marketo.activities
    assert activity["leadId"] == lead["id"]
    assert activity["activityTypeId"] == 100001
    assert activity["primaryAttributeValue"] == "Pro"
    # The browser's Munchkin cookie is joined to the lead once, so its history follows.
    associated = fake_marketo.calls_to("associate.json")
    assert len(associated) == 1
    assert cookie in associated[0].query["cookie"]
    assert fake_marketo.errors_returned["606"] == 0
