"""The loader in real headless Chromium: replay, page views, beacons, blocked Munchkin, CORS."""

from __future__ import annotations

import pytest

from tests.browser.conftest import WAIT_S
from tests.conftest import BROWSER_KEY
from tests.fakes.webhost import MUNCHKIN_PATH

pytestmark = pytest.mark.browser


def test_calls_made_before_load_are_replayed_in_order(site):
    """The snippet's stub queues calls; the library replays them in call order once loaded."""
    page = site.open(
        "window.__queuedBeforeLoad = !window.gateway.VERSION;"
        "gateway.track('First', {n: 1});"
        "gateway.identify('u_81', {firstName: 'Ann'});"
        "gateway('track', 'Second', {n: 2});"
    )
    assert page.evaluate("window.__queuedBeforeLoad") is True
    page.wait_for_function("window.__beacons.length >= 4")
    sent = site.sent()
    assert [(m["type"], m.get("event")) for m in sent] == [
        ("page", None),
        ("track", "First"),
        ("identify", None),
        ("track", "Second"),
    ]
    assert "userId" not in sent[1] and sent[3]["userId"] == "u_81"
    assert len({m["anonymousId"] for m in sent}) == 1
    assert len({m["messageId"] for m in sent}) == 4
    assert all(m["writeKey"] == BROWSER_KEY for m in sent)
    arrived = site.gateway.recorder.wait_for(
        lambda hs: sum(h.path in ("/v1/p", "/v1/t", "/v1/i") for h in hs) == 4, WAIT_S, "beacons"
    )
    accepted = {h.json()["messageId"]: h.status for h in arrived if h.method == "POST"}
    assert accepted == {m["messageId"]: 200 for m in sent}
    assert site.errors == []


def test_page_view_is_recorded_once_then_spa_pages_are_sent(site):
    """Munchkin.init records the landing view; page() adds no duplicate, later page() calls do."""
    page = site.open(path="/landing")
    site.gateway.recorder.wait_for(lambda hs: site.gateway.beacons("p"), WAIT_S, "page beacon")
    page.evaluate("history.pushState({}, '', '/next?plan=pro'); gateway.page('Next')")
    calls = site.munchkin(min_count=3)
    visits = [c for c in calls if c["fn"] == "visitWebPage"]
    assert [c["fn"] for c in calls] == ["init", "visitWebPage", "visitWebPage"]
    assert calls[0]["id"] == "123-ABC-456" and calls[0]["options"]["asyncOnly"] is True
    assert visits[0]["auto"] is True
    assert visits[0]["data"] == {"url": "/landing", "params": ""}
    assert visits[1]["data"] == {"url": "/next", "params": "plan=pro"}
    pages = [m for m in site.sent() if m["type"] == "page"]
    assert [p.get("name") for p in pages] == [None, "Next"]
    assert pages[1]["context"]["page"]["path"] == "/next"


def test_api_only_munchkin_gets_every_page_view_from_page(site):
    """With apiOnly, Munchkin records nothing itself, so the first page() must send the visit."""
    site.gateway.configure(munchkin_options={"apiOnly": True, "cookieAnon": True})
    site.open(path="/spa")
    calls = site.munchkin(min_count=2)
    assert calls[0]["options"] == {"asyncOnly": True, "apiOnly": True, "cookieAnon": True}
    assert calls[1] == {"fn": "visitWebPage", "data": {"url": "/spa", "params": ""}}


def test_track_reaches_the_gateway_with_the_munchkin_cookie(site):
    """A track beacon arrives at /v1/t as text/plain and carries the _mkto_trk value."""
    page = site.open()
    page.wait_for_function("document.cookie.indexOf('_mkto_trk=') >= 0")
    page.evaluate("gateway.track('Signed Up', {plan: 'pro'})")
    hits = site.gateway.recorder.wait_for(
        lambda hs: site.gateway.beacons("t"), WAIT_S, "track beacon"
    )
    beacon = site.gateway.beacons("t")[0]
    body = beacon.json()
    assert beacon.headers["Content-Type"].startswith("text/plain")
    assert body["event"] == "Signed Up" and body["properties"] == {"plan": "pro"}
    assert body["context"]["Marketo"]["marketoCookie"] == site.cookie("_mkto_trk")
    assert body["context"]["page"]["url"].startswith(site.webhost.origin)
    assert "HeadlessChrome" in body["context"]["userAgent"]
    assert body["anonymousId"] == page.evaluate("gateway.anonymousId()")
    assert beacon.status == 200, [h.body for h in hits if h.path == "/v1/t"]


def test_anonymous_id_survives_a_reload(site):
    """The anonymousId is first-party and persisted, so a second page view keeps it."""
    page = site.open()
    first = page.evaluate("gateway.anonymousId()")
    page.reload()
    page.wait_for_function("window.gateway && window.gateway.VERSION")
    assert page.evaluate("gateway.anonymousId()") == first
    assert site.cookie("gw_aid") == first


def test_device_only_track_becomes_a_munchkin_visit(site):
    """With send_track_server_side=false, track is Munchkin's /event/<name> page view."""
    site.gateway.configure(send_track_server_side=False)
    page = site.open()
    page.evaluate("gateway.track('Signed Up', {plan: 'pro', seats: 3})")
    calls = site.munchkin(min_count=3)
    assert calls[2] == {
        "fn": "visitWebPage",
        "data": {"url": "/event/signed-up", "params": "plan=pro&seats=3"},
    }
    assert not any(m["type"] == "track" for m in site.sent())


def test_blocked_munchkin_still_sends_beacons_without_page_errors(site):
    """An ad blocker that stops munchkin.js must not stop the beacons or break the page."""
    site.context.route(f"**{MUNCHKIN_PATH}", lambda route: route.abort())
    page = site.open("gateway.track('Queued While Loading');")
    page.evaluate("gateway.page('Again'); gateway.identify('u_1', {email: 'a@example.com'})")
    site.gateway.recorder.wait_for(
        lambda hs: len(site.gateway.beacons("p")) == 2 and site.gateway.beacons("t"),
        WAIT_S,
        "page and track beacons",
    )
    assert page.evaluate("typeof window.Munchkin") == "undefined"
    assert site.errors == []
    assert "marketoCookie" not in str(site.gateway.beacons("t")[0].json())


def test_loader_included_twice_keeps_one_copy(site):
    """A second copy of the loader steps aside: one page beacon, one warning, no error."""
    page = site.open()
    loader = f"{site.gateway.url}/v1/loader.js?k={BROWSER_KEY}"
    page.add_script_tag(url=loader)
    site.wait_console("loaded twice")
    page.evaluate("gateway.track('After')")
    page.wait_for_function("window.__beacons.some(b => b.body.indexOf('After') > 0)")
    assert [m["type"] for m in site.sent()] == ["page", "track"]
    assert site.errors == []


def test_cors_refuses_a_foreign_origin(site, foreign_host):
    """The allowed origin can read /v1/form-config; another origin gets no CORS grant."""
    fetch = f"fetch('{site.gateway.url}/v1/form-config?k={BROWSER_KEY}')"
    read = f"{fetch}.then(r => r.json()).then(j => j.formId, e => 'blocked: ' + e.name)"
    page = site.open()
    assert page.evaluate(read) == 1003
    foreign = site.open(host=foreign_host, path="/foreign")
    assert foreign.evaluate(read) == "blocked: TypeError"
    hits = [h for h in site.gateway.recorder.hits() if h.path == "/v1/form-config"]
    assert [h.headers.get("Origin") for h in hits] == [site.webhost.origin, foreign_host.origin]


def test_group_queued_before_load_reaches_the_gateway(site):
    """gateway.group() exists on the snippet's stub and becomes a /v1/g beacon."""
    site.open("gateway.group('org_7', {name: 'Acme', plan: 'pro'});")
    site.gateway.recorder.wait_for(lambda hs: site.gateway.beacons("g"), WAIT_S, "group beacon")
    beacon = site.gateway.beacons("g")[0]
    body = beacon.json()
    assert (body["type"], body["groupId"]) == ("group", "org_7")
    assert body["traits"] == {"name": "Acme", "plan": "pro"}
    assert beacon.status == 200
    assert site.errors == []
