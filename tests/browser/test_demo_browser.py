"""`flask demo`'s site in real headless Chromium: buttons and form to the fake Marketo's panel."""

from __future__ import annotations

import pytest

from tests.browser.conftest import WAIT_S
from tests.fixtures_demo import DEADLINE_S
from tests.fixtures_demo import demo_env
from tests.fixtures_demo import printed_url
from tests.fixtures_demo import running_demo
from tests.fixtures_intake import free_port

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"


def wait_for_text(page, selector: str, text: str) -> None:
    """Wait, up to the deadline, until `selector`'s text contains `text` (the panel refreshes
    itself every 2 s; Playwright polls the condition)."""
    page.wait_for_function(
        "([selector, text]) => document.querySelector(selector).textContent.includes(text)",
        arg=[selector, text],
        timeout=DEADLINE_S * 1000,
    )


def test_demo_site_buttons_and_form_reach_the_fake_marketos_panel(chromium, tmp_path):
    """Page view, Track and the identify form on the demo page become a lead with the track's
    activity in the fake, which the page's panel shows; the console link signs in."""
    port, marketo_port = free_port(), free_port()
    with running_demo(demo_env(tmp_path), port, "--marketo-port", str(marketo_port)) as lines:
        printed = "".join(lines)
        context = chromium.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(WAIT_S * 1000)
        dialogs: list[str] = []
        errors: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: m.type in ("error", "warning") and errors.append(m.text))
        try:
            page.goto(printed_url(printed, "demo site"))
            page.wait_for_function("window.gateway && window.gateway.VERSION")
            page.wait_for_function("document.cookie.indexOf('_mkto_trk=') >= 0")
            wait_for_text(page, "#activities", "Visit Web Page")  # Munchkin's landing visit

            page.click("#page-view")
            page.click("#track")
            page.fill("input[name=email]", "ann.lee@example.com")
            page.fill("input[name=firstName]", "Ann")
            page.click("#identify button[type=submit]")
            wait_for_text(page, "#leads", "ann.lee@example.com")
            wait_for_text(page, "#activities", "Signed Up")
            lead_row = page.locator("#leads tr", has_text="ann.lee@example.com")
            lead_id = lead_row.locator("td").first.inner_text()
            signed_up = page.locator("#activities tr", has_text="Signed Up")
            assert signed_up.locator("td").nth(1).inner_text() == lead_id
            assert "plan: pro" in signed_up.inner_text()
            assert "Ann" in lead_row.inner_text()

            shots = tmp_path / "screenshots"
            shots.mkdir()
            page.screenshot(path=str(shots / "demo.png"), full_page=True)
            print(f"demo screenshots in {shots}")

            # What visitors type is shown as text: a hostile name runs nothing.
            page.fill("input[name=email]", "eve@example.com")
            page.fill("input[name=firstName]", HOSTILE)
            page.click("#identify button[type=submit]")
            wait_for_text(page, "#leads", HOSTILE)
            assert page.locator("#leads img, #leads script").count() == 0

            console = context.new_page()
            console.goto(printed_url(printed, "console"))
            assert console.url == f"http://127.0.0.1:{port}/console/"
            console.wait_for_selector("#count-pending")
            console.screenshot(path=str(shots / "console.png"), full_page=True)
            assert dialogs == [] and errors == []
        finally:
            context.close()
