"""Consent in real headless Chromium: opt_in waits for consent, withdrawal removes the cookies and
stops tracking, Global Privacy Control stops it in opt_out mode."""

from __future__ import annotations

import pytest

from tests.browser.conftest import WAIT_S
from tests.fakes.webhost import MUNCHKIN_PATH

pytestmark = pytest.mark.browser

QUEUED = (
    "gateway.track('First', {n: 1});"
    "gateway.identify('u_81', {firstName: 'Ann'});"
    "gateway('track', 'Second', {n: 2});"
)
GPC = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true});"


def _nothing_started(site) -> None:
    """Assert the page holds no Munchkin script, no cookie and no beacon."""
    page = site.page
    assert page.evaluate("document.querySelectorAll('script[src*=munchkin]').length") == 0
    assert page.evaluate("typeof window.Munchkin") == "undefined"
    assert page.evaluate("document.cookie") == ""
    assert site.context.cookies() == []
    assert page.evaluate("window.__beacons.length") == 0


#: The calls the consent tests queue before the visitor decides, in the order they were made.
QUEUED_ORDER = [
    ("page", None),
    ("track", "First"),
    ("identify", None),
    ("track", "Second"),
    ("track", "Third"),
]


def _queued_calls_sent_in_order(site) -> list[dict]:
    """Wait for the five queued calls to be sent; assert their order; return the messages."""
    site.page.wait_for_function("window.__beacons.length >= 5")
    sent = site.sent()
    assert [(m["type"], m.get("event")) for m in sent] == QUEUED_ORDER
    return sent


def test_opt_in_sends_nothing_until_consent_then_the_queued_calls_in_order(site):
    """No Munchkin, cookie or beacon before consent; then the calls go, in call order."""
    site.gateway.configure(consent={"mode": "opt_in"})
    page = site.open(QUEUED)
    page.evaluate("gateway.track('Third')")
    _nothing_started(site)
    consent_at = page.evaluate(
        "(() => { const t = new Date().toISOString();"
        " gateway.consent({analytics: true, marketing: true}); return t; })()"
    )
    sent = _queued_calls_sent_in_order(site)
    # Every message was built after consent: none existed before, only the calls were queued.
    assert all(m["timestamp"] >= consent_at for m in sent)
    prefs = {"analytics": True, "marketing": True}
    assert all(m["context"]["consent"]["categoryPreferences"] == prefs for m in sent)
    assert site.munchkin(min_count=1)[0]["fn"] == "init"
    assert site.cookie("gw_aid") == sent[0]["anonymousId"]
    arrived = site.gateway.recorder.wait_for(
        lambda hs: sum(h.path in ("/v1/p", "/v1/t", "/v1/i") for h in hs) == 5, WAIT_S, "beacons"
    )
    assert {h.status for h in arrived if h.method == "POST"} == {200}
    assert site.errors == []


def test_opt_in_refusal_drops_the_queued_calls(site):
    """Refused: nothing queued is sent, nothing starts, the refusal itself is remembered."""
    site.gateway.configure(consent={"mode": "opt_in"})
    page = site.open(QUEUED)
    page.evaluate("gateway.consent({analytics: true, marketing: false}); gateway.track('Later')")
    assert page.evaluate("document.querySelectorAll('script[src*=munchkin]').length") == 0
    assert page.evaluate("window.__beacons.length") == 0
    assert site.cookie("gw_aid") is None and site.cookie("_mkto_trk") is None
    assert site.cookie("gw_consent") is not None


def test_withdrawal_removes_cookies_and_stops_beacons_and_munchkin(site):
    """opt_out tracks at once; withdrawn: cookies gone, no further beacon or Munchkin call."""
    site.gateway.configure(consent={"mode": "opt_out"})
    page = site.open()
    page.wait_for_function("window.__beacons.length >= 1")
    page.wait_for_function("document.cookie.includes('_mkto_trk=')")
    assert site.cookie("gw_aid") is not None
    page.evaluate("gateway.track('Before')")
    page.wait_for_function("window.__beacons.length >= 2")
    calls_before = len(site.munchkin())
    page.evaluate(
        "gateway.consent({analytics: false, marketing: false});"
        "gateway.track('After'); gateway.page('Next'); gateway.identify('u_1', {email: 'a@b.c'})"
    )
    page.wait_for_function(
        "!/(^|; )(gw_aid|gw_uid|_mkto_trk)=/.test(document.cookie)", timeout=WAIT_S * 1000
    )
    assert {c["name"] for c in site.context.cookies()} == {"gw_consent"}
    assert [m.get("event") for m in site.sent()] == [None, "Before"]
    assert len(site.munchkin()) == calls_before
    # A new page on the same site remembers the refusal: nothing starts.
    site.open()
    assert site.page.evaluate("document.querySelectorAll('script[src*=munchkin]').length") == 0
    assert site.page.evaluate("window.__beacons.length") == 0
    assert site.errors == []


def test_global_privacy_control_stops_tracking_in_opt_out_mode(site):
    """navigator.globalPrivacyControl: no Munchkin, cookie or beacon, even after a consent call."""
    site.gateway.configure(consent={"mode": "opt_out"})
    site.context.add_init_script(GPC)
    page = site.open(QUEUED)
    assert page.evaluate("navigator.globalPrivacyControl") is True
    _nothing_started(site)
    page.evaluate("gateway.consent({analytics: true, marketing: true}); gateway.track('X')")
    assert page.evaluate("document.querySelectorAll('script[src*=munchkin]').length") == 0
    assert page.evaluate("window.__beacons.length") == 0
    assert site.cookie("gw_aid") is None


def test_global_privacy_control_can_be_left_to_the_site(site):
    """honor_gpc false: the signal is ignored and tracking starts as in `none` mode."""
    site.gateway.configure(consent={"mode": "opt_out", "honor_gpc": False})
    site.context.add_init_script(GPC)
    page = site.open()
    page.wait_for_function("window.__beacons.length >= 1")
    assert "consent" not in site.sent()[0]["context"]


# A TCF v2 consent manager as a page sees it: `__tcfapi('addEventListener', 2, cb)` calls back
# at once with the current state and again on every change; the test moves it with
# `__cmp.report(status, consentedPurposes)`. Defined before any page script runs.
TCF_CMP = """
(() => {
  const listeners = [];
  let state = {eventStatus: 'cmpuishown', gdprApplies: true, purpose: {consents: {}}};
  window.__tcfapi = (command, version, callback) => {
    if (command !== 'addEventListener' || version !== 2) return callback(null, false);
    listeners.push(callback);
    callback({...state, listenerId: listeners.length}, true);
  };
  window.__cmp = {
    listeners,
    report(eventStatus, purposes) {
      const consents = {};
      for (let id = 1; id <= 11; id++) consents[id] = purposes.includes(id);
      state = {eventStatus, gdprApplies: true, purpose: {consents}};
      listeners.forEach((cb, i) => cb({...state, listenerId: i + 1}, true));
    },
  };
})();
"""


def _tcf_module_requests(site) -> list:
    return [h for h in site.gateway.recorder.hits() if h.path == "/v1/tcf.js"]


def _tcf_site(site, **consent) -> tuple:
    """Open a page with the TCF stub in opt_in mode; wait until the TCF module listens.

    Returns the page and every request the browser made, as (method, URL), in order.
    """
    site.gateway.configure(consent={"mode": "opt_in", **consent})
    site.context.add_init_script(TCF_CMP)
    requests: list[tuple[str, str]] = []
    site.context.on("request", lambda r: requests.append((r.method, r.url)))
    page = site.open(QUEUED)
    page.wait_for_function("window.__cmp.listeners.length === 1")
    return page, requests


def _munchkin_fetched(requests: list[tuple[str, str]]) -> bool:
    return any(MUNCHKIN_PATH in url for _, url in requests)


def test_tcf_consent_manager_decides_opt_in_then_withdraws(site):
    """The banner is up (no decision): nothing starts and the calls wait; consent to the mapped
    purposes sends them in order; a later refusal in the manager withdraws like gateway.consent."""
    page, requests = _tcf_site(site)
    page.evaluate("gateway.track('Third')")
    _nothing_started(site)
    [module] = _tcf_module_requests(site)
    assert module.status == 200 and len(module.query["v"]) == 12
    # Only a final state decides: the banner being shown again carries no choice.
    page.evaluate("window.__cmp.report('cmpuishown', [1, 3, 4, 8, 9])")
    _nothing_started(site)
    page.evaluate("window.__cmp.report('useractioncomplete', [1, 3, 4])")
    sent = _queued_calls_sent_in_order(site)
    prefs = {"analytics": False, "marketing": True}
    assert all(m["context"]["consent"]["categoryPreferences"] == prefs for m in sent)
    assert site.munchkin(min_count=1)[0]["fn"] == "init"
    assert _munchkin_fetched(requests)
    site.gateway.recorder.wait_for(
        lambda hs: sum(h.path in ("/v1/p", "/v1/t", "/v1/i") for h in hs) == 5, WAIT_S, "beacons"
    )
    page.wait_for_function("document.cookie.includes('_mkto_trk=')")
    assert site.cookie("gw_aid") == sent[0]["anonymousId"]
    # The visitor reopens the banner and takes marketing back: cookies go, nothing more is sent.
    calls_before = len(site.munchkin())
    page.evaluate("window.__cmp.report('useractioncomplete', [1, 8, 9])")
    page.wait_for_function(
        "!/(^|; )(gw_aid|gw_uid|_mkto_trk)=/.test(document.cookie)", timeout=WAIT_S * 1000
    )
    page.evaluate("gateway.track('After'); gateway.page('Next')")
    assert {c["name"] for c in site.context.cookies()} == {"gw_consent"}
    assert len(site.sent()) == 5 and len(site.munchkin()) == calls_before
    assert site.errors == []


def test_tcf_consent_manager_refusal_sends_nothing(site):
    """A stored refusal (tcloaded without the marketing purposes): nothing queued is sent, no
    Munchkin, no id cookie, and later calls are dropped too."""
    page, requests = _tcf_site(site)
    page.evaluate("window.__cmp.report('tcloaded', [1, 8, 9])")
    page.wait_for_function("document.cookie.includes('gw_consent=')")
    page.evaluate("gateway.track('Later'); gateway.page()")
    assert page.evaluate("document.querySelectorAll('script[src*=munchkin]').length") == 0
    assert page.evaluate("typeof window.Munchkin") == "undefined"
    assert page.evaluate("window.__beacons.length") == 0
    assert {c["name"] for c in site.context.cookies()} == {"gw_consent"}
    assert "gw_aid" not in page.evaluate("document.cookie")
    assert [h for h in site.gateway.recorder.hits() if h.method == "POST"] == []
    assert [r for r in requests if r[0] != "GET"] == []
    assert not _munchkin_fetched(requests)
    assert site.errors == []


def test_tcf_is_not_read_in_none_mode_or_without_a_purpose_map(site):
    """Mode none (the site handles consent itself) or `tcf_purposes: {}`: no /v1/tcf.js, and
    the manager's refusal does not stop tracking."""
    site.context.add_init_script(TCF_CMP)
    for consent in ({"mode": "none", "honor_gpc": False}, {"mode": "opt_out", "tcf_purposes": {}}):
        site.gateway.configure(consent=consent)
        site.gateway.recorder.clear()
        page = site.open("window.__cmp.report('tcloaded', [])")
        page.wait_for_function("window.__beacons.length >= 1")
        assert _tcf_module_requests(site) == [], consent
        assert page.evaluate("window.__cmp.listeners.length") == 0
        page.close()
