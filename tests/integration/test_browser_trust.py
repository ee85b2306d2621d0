"""A browser key is public: what its beacons may and may not make the gateway do in Marketo.

Anyone can read the key from a page and send beacons naming any email, user id or cookie. Each
test below is an attack a visitor could try (or the everyday flow it must not break), driven
through the routes with the fake Marketo, asserting what Marketo received (SPEC §5.4).
"""

from __future__ import annotations

import json

from app.outbox import get_store
from tests.conftest import BROWSER_KEY
from tests.conftest import BROWSER_ORIGIN
from tests.integration.test_lists_audiences import AUTH
from tests.integration.test_lists_audiences import Gateway

CAMPAIGNS = {"Password Reset": {"campaign_id": 2001, "tokens": {"{{my.link}}": "link"}}}
LEAD_FIELDS = {"user_id": "userId", "anonymous_id": "anonymousId"}
EVENTS = {"Signed Up": {"activity_type_id": 100001, "primary": "plan"}}
COOKIE = "id:123-ABC-456&token:_mch-example.com-1700000000000-12345"
ATTACKER_COOKIE = "id:123-ABC-456&token:_mch-example.com-1700000000000-66666"
FORM = {"identify_mode": "form", "form_id": 1003, "form_base_url": "//app-ab12.marketo.com"}
ASSOCIATE = {"identify_mode": "associate_lead", "api_private_key": "pk-secret-1"}
ANN = "ann.lee@example.com"
RESET_LINK = "https://site.example/reset?t=ann-secret"


class Site(Gateway):
    """The gateway as a page (browser key beacons) and a back end (server key) reach it."""

    def beacon(self, path: str, expect: int = 200, **message):
        body = json.dumps({"writeKey": BROWSER_KEY, **message})
        response = self.client.post(
            f"/v1/{path}", data=body, content_type="text/plain", headers={"Origin": BROWSER_ORIGIN}
        )
        assert response.status_code == expect, response.json
        return response

    def token(self, email: str, user_id: str | None = None) -> str:
        body = {"email": email, **({"userId": user_id} if user_id else {})}
        response = self.client.post("/v1/identity-tokens", json=body, headers=AUTH)
        assert response.status_code == 200, response.json
        return response.json["token"]

    def state_of(self, message_id: str) -> tuple[str, str | None]:
        [stored] = get_store(self.app).find(message_id)
        return stored.state, stored.reason


def ann_known_to_the_back_end(site: Site, fake_marketo) -> int:
    """The site's back end identifies u_81 as Ann (server key); return Ann's lead id."""
    site.send(
        "identify",
        userId="u_81",
        anonymousId="ann-anon",
        traits={"email": ANN, "firstName": "Ann"},
        context={"Marketo": {"marketoCookie": COOKIE}},
    )
    site.deliver()
    [ann] = [i for i, lead in fake_marketo.leads.items() if lead.get("email") == ANN]
    return ann


def test_identity_hijack_never_redirects_a_reset_campaign(fake_marketo, bo_app_factory):
    """Attack 1: a beacon re-identifying u_81 with the attacker's email changes nothing.

    The back end's later track for u_81 triggers the reset campaign on Ann's lead, and Ann's
    activities stay hers; no lead is created for the attacker.
    """
    site = Site(
        bo_app_factory(
            campaigns=CAMPAIGNS, lead_fields=LEAD_FIELDS, events=EVENTS, merge_on_alias=True,
            **ASSOCIATE,
        )
    )  # fmt: skip
    ann = ann_known_to_the_back_end(site, fake_marketo)
    site.beacon("i", messageId="evil-1", userId="u_81", traits={"email": "attacker@evil.example"})
    site.beacon("a", messageId="evil-2", userId="u_81", previousId="attacker-anon")
    site.deliver()
    assert site.state_of("evil-1") == ("dropped", "recorded_only")
    site.send("track", userId="u_81", event="Password Reset", properties={"link": RESET_LINK})
    site.send("track", userId="u_81", event="Signed Up", properties={"plan": "Pro"})
    site.deliver()
    assert [t["leads"] for t in fake_marketo.campaign_triggers] == [[ann]]
    assert [a["leadId"] for a in fake_marketo.activities] == [ann]
    assert not any(
        lead.get("email") == "attacker@evil.example" for lead in fake_marketo.leads.values()
    )
    assert fake_marketo.merges == []


def test_a_beacon_cannot_overwrite_a_leads_fields(fake_marketo, bo_app_factory):
    """Attack 2: by userId or by email, a beacon never writes Ann's fields."""
    site = Site(bo_app_factory(lead_fields=LEAD_FIELDS, **FORM))
    ann = ann_known_to_the_back_end(site, fake_marketo)
    writes = len(fake_marketo.calls_to("/rest/v1/leads.json"))
    site.beacon("i", userId="u_81", traits={"firstName": "Pwned"})
    site.beacon("i", anonymousId="x-1", traits={"email": ANN, "firstName": "Pwned"})
    site.deliver()
    assert fake_marketo.leads[ann]["firstName"] == "Ann"
    assert len(fake_marketo.calls_to("/rest/v1/leads.json")) == writes


def test_a_track_cannot_bind_an_attackers_cookie_to_a_victim(fake_marketo, bo_app_factory):
    """Attack 3: a track naming Ann's email with the attacker's cookie moves no cookie.

    Without a token the email counts for nothing: no associate call, Ann's cookies unchanged,
    and the event waits (held) for a binding instead of landing on Ann.
    """
    site = Site(bo_app_factory(lead_fields=LEAD_FIELDS, events=EVENTS, **FORM))
    ann = ann_known_to_the_back_end(site, fake_marketo)
    before = list(fake_marketo.associations)
    site.beacon(
        "t",
        messageId="evil-t",
        anonymousId="attacker-anon",
        event="Signed Up",
        properties={"plan": "Free"},
        context={"traits": {"email": ANN}, "Marketo": {"marketoCookie": ATTACKER_COOKIE}},
    )
    site.deliver()
    assert fake_marketo.associations == before
    assert fake_marketo.leads[ann]["cookies"] == [COOKIE]
    assert fake_marketo.activities == []
    assert site.state_of("evil-t") == ("held", None)


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


def test_a_token_lets_the_visitor_identify_and_its_tracks_follow(fake_marketo, bo_app_factory):
    """With a token for Ann (and u_81), the page writes Ann's lead and binds this browser."""
    site = Site(bo_app_factory(lead_fields=LEAD_FIELDS, events=EVENTS, **FORM))
    ann = fake_marketo.add_lead(email=ANN, firstName="A.")
    token = site.token(ANN, "u_81")
    site.beacon(
        "i",
        messageId="ann-i",
        userId="u_81",
        anonymousId="ann-browser",
        traits={"email": "someone.else@example.com", "firstName": "Ann"},
        context={"identityToken": token, "Marketo": {"marketoCookie": COOKIE}},
    )
    site.deliver()
    assert fake_marketo.leads[ann]["firstName"] == "Ann"
    assert fake_marketo.leads[ann]["userId"] == "u_81"
    assert COOKIE in fake_marketo.leads[ann]["cookies"]
    [stored] = get_store(site.app).find("ann-i")
    assert token not in json.dumps(stored.event.payload)  # the bearer token is never kept
    site.beacon("t", anonymousId="ann-browser", event="Signed Up", properties={"plan": "Pro"})
    site.deliver()
    assert [a["leadId"] for a in fake_marketo.activities] == [ann]


def test_a_token_for_ones_own_email_cannot_claim_another_user_id(fake_marketo, bo_app_factory):
    """An attacker with a genuine token for their own email still cannot take u_81."""
    site = Site(bo_app_factory(lead_fields=LEAD_FIELDS, events=EVENTS, **FORM))
    ann = ann_known_to_the_back_end(site, fake_marketo)
    token = site.token("attacker@evil.example")
    site.beacon(
        "i",
        userId="u_81",
        anonymousId="ann-anon",
        traits={"email": "attacker@evil.example"},
        context={"identityToken": token},
    )
    site.deliver()
    attacker = [i for i, lead in fake_marketo.leads.items() if lead.get("email") != ANN]
    assert [fake_marketo.leads[i].get("userId") for i in attacker] == [None]
    site.send("track", userId="u_81", event="Signed Up", properties={"plan": "Pro"})
    site.send("track", anonymousId="ann-anon", event="Signed Up", properties={"plan": "Pro"})
    site.deliver()
    assert [a["leadId"] for a in fake_marketo.activities] == [ann, ann]


def test_a_forged_or_expired_token_is_refused_and_nothing_is_stored(fake_marketo, bo_app_factory):
    """A bad token is a 400 with its code; the event is not stored."""
    site = Site(bo_app_factory(lead_fields=LEAD_FIELDS, **FORM))
    answer = site.beacon(
        "i", expect=400, messageId="forged", userId="u_81", context={"identityToken": "x.y.z"}
    )
    assert answer.json["error"]["code"] == "bad_token"
    assert get_store(site.app).find("forged") == []


def test_a_browser_alias_without_a_token_binds_nothing(fake_marketo, bo_app_factory):
    """A page's alias is recorded only: it neither merges nor re-points anyone's events."""
    site = Site(bo_app_factory(merge_on_alias=True, lead_fields=LEAD_FIELDS, events=EVENTS))
    victim = fake_marketo.add_lead(email="victim@example.com", userId="cust-1001")
    site.beacon("a", messageId="al", userId="attacker-9", previousId="cust-1001")
    site.deliver()
    assert site.state_of("al") == ("dropped", "recorded_only")
    assert fake_marketo.merges == []
    site.send("track", userId="cust-1001", event="Signed Up", properties={"plan": "Pro"})
    site.deliver()
    assert [a["leadId"] for a in fake_marketo.activities] == [victim]


def test_a_server_alias_joins_the_anonymous_visitor_and_releases_its_beacons(
    fake_marketo, bo_app_factory
):
    """The everyday flow: anonymous beacons wait, the back end's alias names them, they go."""
    site = Site(bo_app_factory(lead_fields=LEAD_FIELDS, events=EVENTS))
    user = fake_marketo.add_lead(email="ann@example.com", userId="u1")
    site.beacon(
        "t", messageId="t1", anonymousId="anon-7", event="Signed Up", properties={"plan": "Free"}
    )
    site.deliver()
    assert site.state_of("t1") == ("held", None)
    site.send("alias", userId="u1", previousId="anon-7")
    site.deliver()
    assert site.state_of("t1") == ("delivered", None)
    assert [a["leadId"] for a in fake_marketo.activities] == [user]


def test_in_associate_lead_mode_a_beacon_never_ties_a_cookie(fake_marketo, bo_app_factory):
    """Without a token no mode lets a beacon tie a cookie; the page's own form may."""
    for mode in (ASSOCIATE, FORM):
        site = Site(bo_app_factory(lead_fields=LEAD_FIELDS, **mode))
        victim = fake_marketo.add_lead(email=f"victim-{len(fake_marketo.leads)}@example.com")
        identify = {
            "anonymousId": "att-anon",
            "traits": {"email": fake_marketo.leads[victim]["email"]},
            "context": {"Marketo": {"marketoCookie": COOKIE}},
        }
        site.beacon("i", **identify)
        site.deliver()
        assert fake_marketo.calls_to("/associate.json") == []
        assert fake_marketo.leads[victim]["cookies"] == []
