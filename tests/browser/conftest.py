"""Browser-test harness: headless Debian Chromium via Playwright, the gateway on a real loopback
server, and a fake website (pages + Munchkin/forms2 stubs) on another port."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from app import create_app
from app.browser.loader import render_snippet
from app.lifecycle import close as close_app
from app.outbox import get_store
from app.settings import write_raw
from tests.conftest import BROWSER_KEY
from tests.conftest import base_document
from tests.fakes.webhost import FORMS2_PATH
from tests.fakes.webhost import MUNCHKIN_PATH
from tests.fakes.webhost import Hit
from tests.fakes.webhost import Recorder
from tests.fakes.webhost import RecordingMiddleware
from tests.fakes.webhost import WebHost

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

FORM_ID = 1003

# Browser-facing waits: generous for a loaded CI machine, and only ever reached on failure.
WAIT_S = 10.0

# Records what the page hands to sendBeacon, in call order (arrival order at the server is not
# guaranteed for concurrent beacons), then lets the real sendBeacon run.
BEACON_SPY = """
(() => {
  const send = navigator.sendBeacon.bind(navigator);
  window.__beacons = [];
  navigator.sendBeacon = (url, body) => {
    window.__beacons.push({url: String(url), body: String(body)});
    return send(url, body);
  };
})();
"""


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the whole session (Debian's build; never downloaded)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium to run browser tests")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def webhost() -> Iterator[WebHost]:
    """The test website, which is also the Munchkin script host and the Forms 2.0 host."""
    host = WebHost().start()
    yield host
    host.stop()


@pytest.fixture(scope="session")
def foreign_host() -> Iterator[WebHost]:
    """A second website whose origin no key allows."""
    host = WebHost().start()
    yield host
    host.stop()


#: How far ahead `settle_leftovers` looks, so retries scheduled for later are taken too.
LEFTOVER_HORIZON_S = 10**9


@dataclass
class Gateway:
    """The gateway app served over real HTTP on 127.0.0.1, recording every request."""

    app: Any
    url: str
    settings_path: Path
    recorder: Recorder
    webhost: WebHost

    def settle_leftovers(self) -> None:
        """Drop every open event earlier tests left, so a test's drain counts only its own."""
        store = get_store(self.app)
        later = time.time() + LEFTOVER_HORIZON_S  # due or not, every pending one is claimable
        while batch := store.claim(1000, 60.0, later):
            store.drop([e.id for e in batch], "test_leftover", later)
        store.expire_held(later, later)

    def configure(self, **overrides: Any) -> dict[str, Any]:
        """Atomically write the browser-test settings with overrides; the app reloads them."""
        document = base_document()
        origin = self.webhost.origin
        document["keys"][0]["allowed_origins"] = [origin]
        document.update(
            {
                "public_url": self.url,
                "store_url": f"sqlite:///{self.settings_path.parent / 'outbox.db'}",
                "munchkin_script_url": origin + MUNCHKIN_PATH,
                "form_id": FORM_ID,
                "form_base_url": origin,
                "identify_mode": "form",
                "traits": {"plan.tier": {"field": "planTier", "type": "string"}},
                "intake": {"browser_rate_per_ip": "100000/minute"},
            }
        )
        document.update(overrides)
        write_raw(self.settings_path, document)
        return document

    def snippet(self) -> str:
        """Return the snippet `flask snippet` prints for the test key."""
        settings = self.app.extensions["settings"].get()
        with self.app.app_context():
            return render_snippet(self.url, settings.browser_key(BROWSER_KEY))

    def beacons(self, letter: str) -> list[Hit]:
        """Return the beacons that reached /v1/<letter>."""
        return [h for h in self.recorder.hits() if h.method == "POST" and h.path == f"/v1/{letter}"]


@pytest.fixture(scope="session")
def gateway(tmp_path_factory, webhost: WebHost) -> Iterator[Gateway]:
    """The gateway on an ephemeral loopback port, settings in a temporary instance folder."""
    settings_path = tmp_path_factory.mktemp("gateway") / "instance" / "settings.json"
    recorder = Recorder()
    app = create_app(
        {
            "TESTING": True,
            "SETTINGS_PATH": str(settings_path),
            "GATEWAY_EMBEDDED_WORKER": False,
            "ENVIRON": {},
        }
    )
    server = make_server("127.0.0.1", 0, RecordingMiddleware(app, recorder), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="gateway-http", daemon=True)
    thread.start()
    gw = Gateway(app, f"http://127.0.0.1:{server.server_port}", settings_path, recorder, webhost)
    gw.configure()
    yield gw
    server.shutdown()
    server.server_close()
    close_app(app)


@dataclass
class Site:
    """One test's browser context and page on the fake website, with what the page reported."""

    gateway: Gateway
    webhost: WebHost
    context: Any
    page: Any = None
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def open(self, script: str = "", *, body: str = "", host: WebHost | None = None, path="/"):
        """Serve a page with the snippet, then `script` (run before the library loads); open it."""
        host = host or self.webhost
        html = (
            "<!doctype html><html><head><title>Test page</title>\n"
            f"{self.gateway.snippet()}\n<script>{script}</script>\n"
            f"</head><body><h1>test</h1>{body}</body></html>"
        )
        url = host.add_page(path, html)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda msg: self.console.append(msg.text))
        self.page.goto(url)
        self.page.wait_for_function("window.gateway && window.gateway.VERSION")
        return self.page

    def sent(self) -> list[dict[str, Any]]:
        """Return the beacon payloads the page handed to sendBeacon, in call order."""
        return [json.loads(b["body"]) for b in self.page.evaluate("window.__beacons")]

    def munchkin(self, *, min_count: int = 0) -> list[dict[str, Any]]:
        """Return the Munchkin stub's calls in call order, once there are at least min_count."""
        self.page.wait_for_function(f"(window.__munchkin || []).length >= {int(min_count)}")
        return self.page.evaluate("JSON.parse(JSON.stringify(window.__munchkin || []))")

    def cookie(self, name: str) -> str | None:
        """Return a cookie's value as the browser holds it."""
        return next((c["value"] for c in self.context.cookies() if c["name"] == name), None)

    def wait_console(self, text: str) -> None:
        """Wait until the page logged a console message containing text."""
        if not any(text in m for m in self.console):
            self.page.wait_for_event("console", predicate=lambda m: text in m.text)


@pytest.fixture
def site(chromium, gateway: Gateway, webhost: WebHost) -> Iterator[Site]:
    """A fresh browser context (no cookies or storage), default settings and no open event left
    by an earlier test (the gateway is shared by the session) for each test."""
    gateway.configure()
    gateway.settle_leftovers()
    gateway.recorder.clear()
    webhost.recorder.clear()
    context = chromium.new_context()
    context.add_init_script(BEACON_SPY)
    context.set_default_timeout(WAIT_S * 1000)
    test_site = Site(gateway, webhost, context)
    yield test_site
    context.close()


__all__ = ["FORM_ID", "FORMS2_PATH", "Gateway", "Site"]
