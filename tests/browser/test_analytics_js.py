"""Segment's analytics.js (@segment/analytics-next standalone build) in headless Chromium.

The page is served from http://localhost:PORT1 and the gateway (behind the faulty proxy) is
http://127.0.0.1:PORT2: two real origins, so Chromium preflights analytics.js' Authorization
header exactly as it would on a real site. Nothing answers for the gateway but the gateway.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.browser.tokens import mint
from tests.conftest import BROWSER_KEY
from tests.conftest import base_document
from tests.fakes.webhost import WebHost
from tests.fixtures_compat import email_of
from tests.fixtures_compat import npm_package

SECRET_KEY = base_document()["secret_key"]

pytestmark = pytest.mark.browser

# Where the page loads analytics.js and its lazy chunks from (as `{cdn}/analytics-next/bundles`).
BUNDLES = "/analytics-next/bundles"

# Browser-facing waits, only reached on failure.
WAIT_MS = 20_000

USERS = ["web-0", "web-1"]

# A minimal loader in the shape of Segment's snippet: a call queue on window.analytics, the key,
# the CDN base (here the site itself) and load options, then the standalone library.
PAGE = """<!doctype html><html><head><title>ajs</title><script>
  var analytics = window.analytics = [];
  ["identify", "track", "page", "alias"].forEach(function (method) {
    analytics[method] = function () {
      analytics.push([method].concat(Array.prototype.slice.call(arguments)));
      return analytics;
    };
  });
  analytics._writeKey = %(key)s;
  analytics._cdn = %(cdn_js)s;
  analytics._loadOptions = {};
  var user = %(user)s, email = user + "@example.com", token = %(token)s;
  // The site's back end minted `token` for this user (POST /v1/identity-tokens): without it a
  // public key's identify is only recorded and names no lead (SPEC 5.4, README "Security").
  analytics.identify(user, {email: email}, {context: {identityToken: token}});
  var context = {traits: {email: email}, identityToken: token};
  analytics.track("Signed Up", {plan: "Pro"}, {context: context});
  analytics.page("Docs", {path: "/docs"});
  analytics.alias(user, "prev-" + user);
</script><script src="%(cdn)s/analytics-next/bundles/standalone.js"></script>
</head><body>ajs</body></html>"""


def localhost(url: str) -> str:
    """Return the same server under the name localhost: another origin, the same socket."""
    return url.replace("127.0.0.1", "localhost")


@pytest.fixture
def ajs_site() -> Iterator[WebHost]:
    """The website: serves the page, analytics-next's build, and the project's CDN settings."""
    folder = npm_package("@segment/analytics-next") / "dist" / "umd"
    host = WebHost().start()
    for file in folder.glob("*.js"):
        host.add_file(f"{BUNDLES}/{file.name}", file.read_bytes(), "text/javascript")
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture
def compat_settings(ajs_site: WebHost) -> dict[str, Any]:
    """The browser key allows the page's origin (http://localhost:PORT1) only."""
    document = base_document()
    document["keys"][0]["allowed_origins"] = [localhost(ajs_site.origin)]
    return {"keys": document["keys"], "intake": {"browser_rate_per_ip": "100000/minute"}}


def cdn_settings(gateway_url: str, batching: bool) -> dict[str, Any]:
    """Return the settings a self-hosted analytics.js reads: Segment.io pointed at the gateway."""
    parts = urlsplit(gateway_url)
    segmentio: dict[str, Any] = {
        "apiKey": BROWSER_KEY,
        "apiHost": f"{parts.netloc}/v1",
        "protocol": parts.scheme,
    }
    if batching:
        segmentio["deliveryStrategy"] = {
            "strategy": "batching",
            "config": {"size": 4, "timeout": 300},
        }
    return {"integrations": {"Segment.io": segmentio}, "metrics": {"sampleRate": 0}}


@pytest.mark.parametrize("batching", [False, True], ids=["standard", "batching"])
def test_analytics_js_lands_every_event_once_through_faults(
    chromium,
    ajs_site,
    compat,
    batching,
):
    origin = localhost(ajs_site.origin)
    settings = json.dumps(cdn_settings(compat.url, batching)).encode()
    ajs_site.add_file(f"/v1/projects/{BROWSER_KEY}/settings", settings, "application/json")
    contexts = []
    errors: list[str] = []
    try:
        for user in USERS:
            html = PAGE % {
                "key": json.dumps(BROWSER_KEY),
                "cdn": origin,
                "cdn_js": json.dumps(origin),
                "user": json.dumps(user),
                "token": json.dumps(mint(SECRET_KEY, email_of(user), user_id=user).token),
            }
            ajs_site.add_page(f"/{user}", html)
            context = chromium.new_context()
            context.set_default_timeout(WAIT_MS)
            contexts.append(context)
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{origin}/{user}")
        compat.check(USERS, paths={"/v1/b"} if batching else {"/v1/i", "/v1/t", "/v1/p", "/v1/a"})
    finally:
        for context in contexts:
            context.close()
    assert errors == []
    emails = {lead.get("email") for lead in compat.fake.leads.values()}
    assert emails == {email_of(u) for u in USERS}
