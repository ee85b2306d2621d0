"""The fake Marketo's web side: stand-in scripts, form fills, Munchkin visits, the demo page."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import requests

from app.devtools.fake_marketo.web import DEMO_FEED_PATH
from app.devtools.fake_marketo.web import DEMO_PATH
from app.devtools.fake_marketo.web import FORM_POST_PATH
from app.devtools.fake_marketo.web import FORMS2_PATH
from app.devtools.fake_marketo.web import MUNCHKIN_PATH
from app.devtools.fake_marketo.web import MUNCHKIN_POST_PATH
from app.devtools.fake_marketo.web import DemoPage

TIMEOUT = 5
COOKIE = "id:123-ABC-456&token:_mch-127.0.0.1-1700000000000-12345"
SNIPPET = "<script>\nwindow.gateway = function () {};\n</script>"
HOSTILE = '"><img src=x onerror=alert(1)>'


def fill(fake, **fields: str) -> requests.Response:
    """Post a Forms 2.0 fill as the stand-in forms2 script does."""
    body = {"formid": "1003", "munchkinId": fake.munchkin_id, **fields}
    return requests.post(fake.url + FORM_POST_PATH, data=body, timeout=TIMEOUT)


def munchkin(fake, **call) -> None:
    """Post a Munchkin call as the stand-in munchkin script does (text/plain JSON)."""
    sent = requests.post(fake.url + MUNCHKIN_POST_PATH, data=json.dumps(call), timeout=TIMEOUT)
    assert sent.status_code == 204


@pytest.fixture
def demo(fake_marketo):
    """The fake with a demo page, as `flask demo` sets it up."""
    fake_marketo.demo_page = DemoPage(
        SNIPPET, "http://127.0.0.1:5000", "http://127.0.0.1:5000/console/"
    )
    return fake_marketo


@pytest.mark.parametrize("path", [MUNCHKIN_PATH, FORMS2_PATH])
def test_the_stand_in_scripts_are_served_and_are_not_rest_calls(fake_marketo, path):
    """Munchkin and Forms 2.0 load from the fake (no internet); they count against no limit."""
    response = requests.get(fake_marketo.url + path, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert "shares no code with Marketo" in " ".join(response.text.split())
    assert fake_marketo.calls == []


def test_a_form_post_is_a_form_fill_that_ties_the_cookie(fake_marketo):
    """Upsert by Email with the SOAP names Forms 2.0 posts, the cookie tied to the lead."""
    answer = fill(fake_marketo, Email="ann@example.com", FirstName="Ann", _mkt_trk=COOKIE)
    assert answer.status_code == 200
    assert answer.json()["formId"] == "1003"
    fill(fake_marketo, Email="ann@example.com", LastName="Lee")
    [lead] = fake_marketo.leads.values()
    assert (lead["email"], lead["firstName"], lead["lastName"]) == ("ann@example.com", "Ann", "Lee")
    assert lead["cookies"] == [COOKIE]
    assert [s["leadId"] for s in fake_marketo.form_submissions] == [lead["id"]] * 2
    assert fake_marketo.calls == []


def test_a_visit_before_the_form_fill_shows_under_the_lead_afterwards(demo):
    """Anonymous visits are logged with their cookie; once a fill ties it, they name the lead."""
    munchkin(demo, fn="visitWebPage", data={"url": "/pricing", "params": "a=1"}, cookie=COOKIE)
    feed = requests.get(demo.url + DEMO_FEED_PATH, timeout=TIMEOUT).json()
    [visit] = feed["activities"]
    assert (visit["type"], visit["detail"], visit["leadId"]) == (
        "Visit Web Page",
        "/pricing?a=1",
        None,
    )
    fill(demo, Email="ann@example.com", _mkt_trk=COOKIE)
    feed = requests.get(demo.url + DEMO_FEED_PATH, timeout=TIMEOUT).json()
    [lead] = feed["leads"]
    assert {a["type"]: a["leadId"] for a in feed["activities"]} == {
        "Visit Web Page": lead["id"],
        "Fill Out Form": lead["id"],
    }


def test_associate_lead_ties_the_cookie_only_with_the_right_hash(fake_marketo):
    """Munchkin's associateLead needs SHA-1(private key + email), as Marketo checks."""
    email = "ann@example.com"
    good = hashlib.sha1((fake_marketo.private_key + email).encode()).hexdigest()
    munchkin(fake_marketo, fn="associateLead", data={"Email": email}, hash="0" * 40, cookie=COOKIE)
    assert fake_marketo.leads == {}
    munchkin(fake_marketo, fn="associateLead", data={"Email": email}, hash=good, cookie=COOKIE)
    [lead] = fake_marketo.leads.values()
    assert lead["cookies"] == [COOKIE]


def test_the_feed_merges_rest_activities_with_type_names(demo):
    """A custom activity the gateway wrote shows by its type's name and attributes."""
    lead_id = demo.add_lead(email="ann@example.com")
    demo.activities.append(
        {
            "leadId": lead_id,
            "activityDate": "2030-01-01T00:00:00Z",
            "activityTypeId": 100001,
            "primaryAttributeValue": "pro",
            "attributes": [{"apiName": "price", "value": 49}],
        }
    )
    [activity] = requests.get(demo.url + DEMO_FEED_PATH, timeout=TIMEOUT).json()["activities"]
    assert activity == {
        "time": "2030-01-01T00:00:00Z",
        "type": "Signed Up",
        "detail": "plan: pro, price: 49",
        "leadId": lead_id,
    }


def test_the_demo_page_is_served_only_when_given(fake_marketo):
    """`flask fake-marketo` alone has no demo page: /demo/ is an unknown REST path there."""
    response = requests.get(fake_marketo.url + DEMO_PATH, timeout=TIMEOUT)
    assert response.json()["errors"][0]["code"] == "610"


def test_the_demo_page_has_the_snippet_escaped_urls_and_a_strict_csp(demo):
    """The snippet goes in as is (allowed by its hash); the links are escaped text."""
    demo.demo_page = DemoPage(SNIPPET, "http://127.0.0.1:5000", "http://x/" + HOSTILE)
    response = requests.get(demo.url + DEMO_PATH, timeout=TIMEOUT)
    assert response.status_code == 200
    assert SNIPPET in response.text
    assert HOSTILE not in response.text and "&lt;img src=x" in response.text
    policy = response.headers["Content-Security-Policy"]
    body = SNIPPET.removeprefix("<script>").removesuffix("</script>")
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in policy
    assert "script-src 'self'" in policy and "http://127.0.0.1:5000" in policy
    assert "'unsafe-inline'" not in policy
    for asset in ("demo.js", "demo.css"):
        assert requests.get(demo.url + DEMO_PATH + asset, timeout=TIMEOUT).status_code == 200
