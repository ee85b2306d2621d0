"""A real page to a Marketo custom activity: snippet → beacons → outbox → dispatcher → fake."""

from __future__ import annotations

import pytest

from app.browser import tokens
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


@pytest.fixture
def form_host_is_marketo(site, fake_marketo):
    """Hidden form posts reach the fake Marketo, which ties the cookie as a real form fill does."""
    site.gateway.webhost.marketo = fake_marketo
    yield
    site.gateway.webhost.marketo = None


def test_identify_then_track_in_the_browser_becomes_a_custom_activity_on_the_cookie_lead(
    site, fake_marketo, form_host_is_marketo
):
    """The hybrid flow under the trust rule: the form fill ties the cookie, the track follows it.

    The browser's identify beacon writes nothing (a public key proves no identity); Marketo's
    own form fill creates the lead and ties the Munchkin cookie, and the server-side track
    finds the lead by that cookie. No associate call: nothing needed moving.
    """
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

    site.gateway.recorder.wait_for(lambda hits: fake_marketo.form_submissions, 10.0, "form fill")
    assert drain(site.gateway.app) == 1  # the track; identify and page are records

    [lead] = [lead for lead in fake_marketo.leads.values() if lead.get("email")]
    assert lead["email"] == "ann.lee@example.com"
    assert lead["firstName"] == "Ann"
    [activity] = fake_marketo.activities
    assert activity["leadId"] == lead["id"]
    assert activity["activityTypeId"] == 100001
    assert activity["primaryAttributeValue"] == "Pro"
    assert cookie in lead["cookies"]
    assert fake_marketo.calls_to("associate.json") == []
    assert [c.query.get("filterType") for c in fake_marketo.calls_to("leads.json")] == ["cookies"]
    assert fake_marketo.errors_returned["606"] == 0


def test_an_identify_with_the_back_ends_token_writes_the_lead_and_binds_the_browser(
    site, fake_marketo
):
    """With a token the page's identify writes the lead server-side and ties this browser."""
    site.gateway.configure(**marketo_document(fake_marketo), identify_mode="off", form_id=None)
    secret = site.gateway.app.extensions["settings"].get().secret_key
    token = tokens.mint(secret, "ann.lee@example.com", user_id="u_81").token
    page = site.open()
    page.wait_for_function("document.cookie.indexOf('_mkto_trk=') >= 0")
    page.evaluate(
        "([token]) => { gateway.identify('u_81', {email: 'ann.lee@example.com', firstName: 'Ann'},"
        " {identityToken: token}); gateway.track('Signed Up', {plan: 'Pro', price: 49}); }",
        [token],
    )
    site.gateway.recorder.wait_for(
        lambda hits: site.gateway.beacons("i") and site.gateway.beacons("t"), 10.0, "beacons"
    )
    assert drain(site.gateway.app) == 2  # the identify and the track
    [lead] = [lead for lead in fake_marketo.leads.values() if lead.get("email")]
    assert (lead["firstName"], lead["userId"]) == ("Ann", "u_81")
    assert site.cookie("_mkto_trk") in lead["cookies"]
    assert [a["leadId"] for a in fake_marketo.activities] == [lead["id"]]
