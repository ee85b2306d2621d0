"""Campaign triggers from mapped events and `flask campaign trigger`, against the fake."""

from __future__ import annotations

import json

from tests.integration.test_lists_audiences import Gateway

CAMPAIGNS = {
    "Password Reset": {"campaign_id": 2001, "tokens": {"{{my.link}}": "link"}},
    "Nightly": {"campaign_id": 2002, "tokens": {}},
}
LEAD_FIELDS = {"user_id": "userId"}


def test_mapped_event_triggers_the_campaign_with_tokens(fake_marketo, bo_app_factory):
    """Events of one token set share a call; another token set gets its own call."""
    gateway = Gateway(bo_app_factory(campaigns=CAMPAIGNS, lead_fields=LEAD_FIELDS))
    ann = fake_marketo.add_lead(email="ann@example.com", userId="u1")
    bob = fake_marketo.add_lead(email="bob@example.com", userId="u2")
    for user, link in (("u1", "https://x/r/a"), ("u2", "https://x/r/a"), ("u1", "https://x/b")):
        gateway.send("track", userId=user, event="Password Reset", properties={"link": link})
    gateway.deliver()
    triggers = sorted(fake_marketo.campaign_triggers, key=lambda t: len(t["leads"]))
    assert triggers == [
        {
            "campaign_id": 2001,
            "leads": [ann],
            "tokens": [{"name": "{{my.link}}", "value": "https://x/b"}],
        },
        {
            "campaign_id": 2001,
            "leads": [ann, bob],
            "tokens": [{"name": "{{my.link}}", "value": "https://x/r/a"}],
        },
    ]
    assert gateway.counts()["delivered"] == 3


def test_batch_campaign_dead_letters_with_marketo_code(fake_marketo, bo_app_factory):
    """Campaign 2002 is a batch campaign: Marketo answers 1003 and the event is dead-lettered."""
    gateway = Gateway(bo_app_factory(campaigns=CAMPAIGNS, lead_fields=LEAD_FIELDS))
    fake_marketo.add_lead(email="ann@example.com", userId="u1")
    gateway.send("track", userId="u1", event="Nightly", properties={})
    gateway.deliver()
    assert gateway.counts()["dead"] == {"marketo_1003": 1}
    assert fake_marketo.campaign_triggers == []


def test_cli_trigger_with_tokens(fake_marketo, bo_app):
    """`flask campaign trigger` resolves emails and passes tokens in short form."""
    ann = fake_marketo.add_lead(email="ann@example.com")
    result = bo_app.test_cli_runner().invoke(
        args=["campaign", "trigger", "2001", "ann@example.com", "--token", "plan=Pro", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["calls"] == 1
    assert fake_marketo.campaign_triggers == [
        {"campaign_id": 2001, "leads": [ann], "tokens": [{"name": "{{my.plan}}", "value": "Pro"}]}
    ]
    missing = bo_app.test_cli_runner().invoke(
        args=["campaign", "trigger", "2001", "nobody@example.com"]
    )
    assert missing.exit_code == 1
    assert "not found: nobody@example.com" in missing.output
