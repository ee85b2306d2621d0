"""A browser key is public: what its beacons may and may not make the gateway do in Marketo.

Anyone can read the key from a page and send beacons naming any email or user id, so beacons
never trigger campaigns, never merge leads or re-point another user id, and in associate_lead
mode never tie a Munchkin cookie to a lead (only a hash from an identity token may).
"""

from __future__ import annotations

import json

from tests.conftest import BROWSER_KEY
from tests.conftest import BROWSER_ORIGIN
from tests.integration.test_lists_audiences import Gateway

CAMPAIGNS = {"Password Reset": {"campaign_id": 2001, "tokens": {"{{my.link}}": "link"}}}
LEAD_FIELDS = {"user_id": "userId", "anonymous_id": "anonymousId"}
EVENTS = {"Signed Up": {"activity_type_id": 100001, "primary": "plan"}}
COOKIE = "id:123-ABC-456&token:_mch-example.com-1700000000000-12345"


class Site(Gateway):
    """The gateway as a page (browser key beacons) and a back end (server key) reach it."""

    def beacon(self, path: str, **message) -> None:
        body = json.dumps({"writeKey": BROWSER_KEY, **message})
        response = self.client.post(
            f"/v1/{path}", data=body, content_type="text/plain", headers={"Origin": BROWSER_ORIGIN}
        )
        assert response.status_code == 200, response.json


def test_a_browser_track_never_triggers_a_campaign(fake_marketo, bo_app_factory):
    """A beacon naming a victim's email and a link gets no email sent; the back end's does."""
    site = Site(bo_app_factory(campaigns=CAMPAIGNS, lead_fields=LEAD_FIELDS))
    victim = fake_marketo.add_lead(email="victim@example.com", userId="u1")
    site.beacon(
        "t",
        anonymousId="a-1",
        event="Password Reset",
        properties={"link": "https://evil.example/reset"},
        context={"traits": {"email": "victim@example.com"}},
    )
    site.deliver()
    assert fake_marketo.campaign_triggers == []
    site.send("track", userId="u1", event="Password Reset", properties={"link": "https://x/r"})
    site.deliver()
    assert [t["leads"] for t in fake_marketo.campaign_triggers] == [[victim]]


def test_a_browser_alias_cannot_take_over_a_user_id_or_merge(fake_marketo, bo_app_factory):
    """Aliasing someone else's user id from a page neither merges nor re-points their events."""
    site = Site(bo_app_factory(merge_on_alias=True, lead_fields=LEAD_FIELDS, events=EVENTS))
    victim = fake_marketo.add_lead(email="victim@example.com", userId="cust-1001")
    site.beacon("i", userId="attacker-9", traits={"email": "attacker@evil.example"})
    site.deliver()
    site.beacon("a", userId="attacker-9", previousId="cust-1001")
    site.deliver()
    assert fake_marketo.merges == []
    site.send("track", userId="cust-1001", event="Signed Up", properties={"plan": "Pro"})
    site.deliver()
    assert [a["leadId"] for a in fake_marketo.activities] == [victim]


def test_a_browser_alias_still_joins_its_anonymous_visitor(fake_marketo, bo_app_factory):
    """The everyday browser alias (anonymous visitor → user) keeps working."""
    site = Site(bo_app_factory(lead_fields=LEAD_FIELDS, events=EVENTS))
    user = fake_marketo.add_lead(email="ann@example.com", userId="u1")
    site.beacon("a", userId="u1", previousId="anon-7")
    site.deliver()
    site.beacon("t", anonymousId="anon-7", event="Signed Up", properties={"plan": "Free"})
    site.deliver()
    assert [a["leadId"] for a in fake_marketo.activities] == [user]


def test_in_associate_lead_mode_a_beacon_never_ties_a_cookie(fake_marketo, bo_app_factory):
    """Only the token-guarded hash may tie a browser to a lead; form mode ties it as forms do."""
    mode = {"identify_mode": "associate_lead", "api_private_key": "pk-secret-1"}
    site = Site(bo_app_factory(lead_fields=LEAD_FIELDS, **mode))
    victim = fake_marketo.add_lead(email="victim@example.com")
    identify = {
        "anonymousId": "att-anon",
        "traits": {"email": "victim@example.com"},
        "context": {"Marketo": {"marketoCookie": COOKIE}},
    }
    site.beacon("i", **identify)
    site.deliver()
    assert fake_marketo.calls_to("/associate.json") == []
    assert fake_marketo.leads[victim]["cookies"] == []

    form = {"identify_mode": "form", "form_id": 1003, "form_base_url": "//app-ab12.marketo.com"}
    site = Site(bo_app_factory(lead_fields=LEAD_FIELDS, **form))
    site.beacon("i", **{**identify, "messageId": "second"})
    site.deliver()
    assert fake_marketo.leads[victim]["cookies"] == [COOKIE]
