"""identify in real headless Chromium: Forms 2.0 background submission and associateLead."""

from __future__ import annotations

import pytest

from app.browser import tokens
from tests.browser.conftest import FORM_ID
from tests.browser.conftest import FORMS2_PATH
from tests.browser.conftest import WAIT_S

pytestmark = pytest.mark.browser

PRIVATE_KEY = "munchkin-private-key"
EMAIL = "ann.lee@example.com"
EMAIL_HASH = "e03db9f30828af5891b4931e1f83fcfd981de629"

# The site's own visible Marketo form, loaded by the page itself: we must never submit it.
DECOY_FORM = 999
DECOY = f'<form id="mktoForm_{DECOY_FORM}"></form>'


def decoy_script(site) -> str:
    """Load forms2 and the site's own form the way a marketing page does."""
    src = site.webhost.origin + FORMS2_PATH
    return (
        f"var s = document.createElement('script'); s.src = '{src}';"
        f"s.onload = function () {{ MktoForms2.loadForm('{site.webhost.origin}', '123-ABC-456',"
        f" {DECOY_FORM}, function () {{ window.__decoyReady = true; }}); }};"
        "document.head.appendChild(s);"
    )


def test_identify_submits_the_hidden_form_with_soap_names_and_stays(site):
    """Form mode posts SOAP names plus _mkt_trk from a hidden mktoForm_<id>; no navigation."""
    page = site.open(body=DECOY)
    page.evaluate(decoy_script(site))
    page.wait_for_function("window.__decoyReady === true")
    page.wait_for_function("document.cookie.indexOf('_mkto_trk=') >= 0")
    page.evaluate(
        "gateway.identify('u_81', {firstName: 'No', lastName: 'Email'});"
        "gateway.identify('u_81', {email: 'ann.lee@example.com', name: 'Ann Lee',"
        " company: {name: 'Acme'}, address: {city: 'Lyon', zip: '69001'},"
        " plan: {tier: 'pro'}, nested: {ignored: true}})"
    )
    page.wait_for_function("window.__forms2Done === 1")
    forms = site.webhost.recorder.hits("form")
    assert len(forms) == 1
    fields = forms[0].form()
    assert fields == {
        "Email": EMAIL,
        "FirstName": "Ann",
        "LastName": "Lee",
        "Company": "Acme",
        "City": "Lyon",
        "PostalCode": "69001",
        "planTier": "pro",
        "_mkt_trk": site.cookie("_mkto_trk"),
        "formid": str(FORM_ID),
        "munchkinId": "123-ABC-456",
    }
    assert fields["_mkt_trk"].startswith("id:123-ABC-456&token:_mch-")
    assert page.url.endswith("/") and page.evaluate("document.title") == "Test page"
    assert page.evaluate(f"!!document.getElementById('mktoForm_{FORM_ID}').offsetParent") is False
    assert site.webhost.recorder.hits("followup") == []
    identifies = [m for m in site.sent() if m["type"] == "identify"]
    assert len(identifies) == 2 and identifies[1]["traits"]["email"] == EMAIL
    assert site.errors == []


def test_identify_without_email_submits_nothing(site):
    """No email, no submission, and forms2 is not even loaded."""
    page = site.open("gateway.identify('u_2', {firstName: 'Bo'});")
    page.wait_for_function("window.__beacons.some(b => b.body.indexOf('\"identify\"') > 0)")
    page.evaluate("gateway.track('Marker')")
    site.gateway.recorder.wait_for(lambda hs: site.gateway.beacons("t"), WAIT_S, "marker")
    assert page.evaluate("typeof window.MktoForms2") == "undefined"
    assert page.evaluate(f"document.getElementById('mktoForm_{FORM_ID}')") is None
    assert site.webhost.recorder.hits("form") == []


def test_blank_form_settings_keep_page_tracking(site):
    """identify_mode off and no form: page views and beacons still flow."""
    site.gateway.configure(identify_mode="off", form_id=None, form_base_url=None)
    page = site.open("gateway.identify({email: 'ann.lee@example.com'});")
    calls = site.munchkin(min_count=2)
    assert [c["fn"] for c in calls] == ["init", "visitWebPage"]
    page.wait_for_function("window.__beacons.length >= 2")
    assert [m["type"] for m in site.sent()] == ["page", "identify"]


def associate_settings(site) -> None:
    """Switch the gateway to associate_lead mode with the reference test vector's key."""
    site.gateway.configure(
        identify_mode="associate_lead",
        api_private_key=PRIVATE_KEY,
        form_id=None,
        form_base_url=None,
    )


def test_associate_lead_with_a_valid_token(site):
    """A back-end token buys the hash from /v1/hash; Munchkin gets associateLead(SOAP, hash)."""
    associate_settings(site)
    secret = site.gateway.app.extensions["settings"].get().secret_key
    token = tokens.mint(secret, EMAIL).token
    page = site.open()
    page.evaluate(
        "(t) => gateway.identify('u_81', {email: 'ann.lee@example.com', firstName: 'Ann'},"
        " {identityToken: t})",
        token,
    )
    calls = site.munchkin(min_count=3)
    assert calls[2] == {
        "fn": "associateLead",
        "data": {"Email": EMAIL, "FirstName": "Ann"},
        "hash": EMAIL_HASH,
    }
    hashes = [h for h in site.gateway.recorder.hits() if h.path == "/v1/hash"]
    assert [h.status for h in hashes] == [200]
    assert PRIVATE_KEY not in page.content()
    assert site.errors == []


def test_associate_lead_with_an_invalid_token_does_not_associate(site):
    """A forged token gets 400 from /v1/hash; the page warns, Munchkin is never called."""
    associate_settings(site)
    page = site.open()
    page.evaluate(
        "gateway.identify('u_81', {email: 'eve@example.com'}, {identityToken: 'forged.token'})"
    )
    site.wait_console("identity token refused: bad_token")
    calls = site.munchkin(min_count=2)
    assert [c["fn"] for c in calls] == ["init", "visitWebPage"]
    hashes = [h for h in site.gateway.recorder.hits() if h.path == "/v1/hash"]
    assert [h.status for h in hashes] == [400]
    assert site.errors == []


def identify_module_requests(site) -> list:
    """Return the gateway requests for the identify module so far."""
    return [h for h in site.gateway.recorder.hits() if h.path == "/v1/identify.js"]


def test_identify_module_loads_once_and_only_for_identify(site):
    """Page views and tracks never fetch /v1/identify.js; two identifies fetch it once."""
    page = site.open("gateway.track('Before identify');")
    site.gateway.recorder.wait_for(lambda hs: site.gateway.beacons("t"), WAIT_S, "track")
    assert identify_module_requests(site) == []
    page.wait_for_function("document.cookie.indexOf('_mkto_trk=') >= 0")
    page.evaluate(
        "gateway.identify('u_3', {email: 'ann.lee@example.com'});"
        "gateway.identify('u_3', {email: 'ann.lee@example.com', title: 'CTO'});"
    )
    site.webhost.recorder.wait_for(lambda hs: len(site.webhost.recorder.hits("form")) == 2)
    fetched = identify_module_requests(site)
    assert len(fetched) == 1 and fetched[0].query["v"]
    assert [h.form()["Email"] for h in site.webhost.recorder.hits("form")] == [EMAIL, EMAIL]
    assert site.errors == []


def test_blocked_identify_module_keeps_the_beacons(site):
    """The identify module blocked (ad blocker, CSP): the identify beacon still goes out."""
    page = site.open()
    page.route("**/v1/identify.js*", lambda route: route.abort())
    page.evaluate("gateway.identify('u_4', {email: 'ann.lee@example.com'})")
    site.gateway.recorder.wait_for(lambda hs: site.gateway.beacons("i"), WAIT_S, "identify")
    page.evaluate("gateway.track('After identify')")
    site.gateway.recorder.wait_for(lambda hs: site.gateway.beacons("t"), WAIT_S, "track")
    assert site.webhost.recorder.hits("form") == []
    assert site.errors == []


@pytest.mark.parametrize("mode", ["associate_lead", "off"])
def test_identify_without_marketo_work_never_fetches_the_module(site, mode):
    """associate_lead without a token, or identify off: the beacon only, no /v1/identify.js."""
    if mode == "associate_lead":
        associate_settings(site)
    else:
        site.gateway.configure(identify_mode="off", form_id=None, form_base_url=None)
    page = site.open()
    page.evaluate("gateway.identify('u_5', {email: 'ann.lee@example.com'})")
    site.gateway.recorder.wait_for(lambda hs: site.gateway.beacons("i"), WAIT_S, "identify")
    page.evaluate("gateway.track('After identify')")
    site.gateway.recorder.wait_for(lambda hs: site.gateway.beacons("t"), WAIT_S, "track")
    assert identify_module_requests(site) == []
    assert [h for h in site.gateway.recorder.hits() if h.path == "/v1/hash"] == []
    assert site.errors == []
