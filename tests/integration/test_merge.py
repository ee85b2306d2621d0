"""Lead merge on alias and `flask leads merge`: Marketo merges, the lead cache follows."""

from __future__ import annotations

import json

from tests.integration.test_lists_audiences import Gateway

LEAD_FIELDS = {"user_id": "userId", "anonymous_id": "anonymousId"}
EVENTS = {"Signed Up": {"activity_type_id": 100001, "primary": "plan"}}


def test_alias_merges_the_previous_lead_and_later_events_reach_the_winner(bo_fake, bo_app_factory):
    """previousId's lead is merged into userId's lead; the cache is repointed, no 1004 after."""
    app = bo_app_factory(
        merge_on_alias=True, merge_in_crm=True, lead_fields=LEAD_FIELDS, events=EVENTS
    )
    gateway = Gateway(app)
    winner = bo_fake.add_lead(email="ann@example.com", userId="u1")
    loser = bo_fake.add_lead(anonymousId="anon-1")
    gateway.send("track", anonymousId="anon-1", event="Signed Up", properties={"plan": "Free"})
    gateway.deliver()
    assert [a["leadId"] for a in bo_fake.activities] == [loser]
    gateway.send("alias", userId="u1", previousId="anon-1")
    gateway.deliver()
    assert bo_fake.merges == [{"winner": winner, "losers": [loser], "mergeInCRM": "true"}]
    assert loser not in bo_fake.leads
    gateway.send("track", anonymousId="anon-1", event="Signed Up", properties={"plan": "Pro"})
    gateway.deliver()
    assert bo_fake.activities[-1]["leadId"] == winner
    assert gateway.counts()["delivered"] == 3
    assert bo_fake.errors_returned.get("1004", 0) == 0


def test_alias_without_merge_setting_does_not_merge(bo_fake, bo_app_factory):
    """merge_on_alias off: the alias links ids and Marketo keeps both leads."""
    app = bo_app_factory(lead_fields=LEAD_FIELDS, events=EVENTS)
    gateway = Gateway(app)
    bo_fake.add_lead(email="ann@example.com", userId="u1")
    loser = bo_fake.add_lead(anonymousId="anon-1")
    gateway.send("alias", userId="u1", previousId="anon-1")
    gateway.deliver()
    assert bo_fake.merges == []
    assert loser in bo_fake.leads


def test_cli_merge_chunks_losers_by_25(bo_fake, bo_app):
    """`flask leads merge` merges 30 losers in two calls (25 + 5)."""
    winner = bo_fake.add_lead(email="keep@example.com")
    losers = [bo_fake.add_lead(email=f"dup{i}@example.com") for i in range(30)]
    result = bo_app.test_cli_runner().invoke(
        args=["leads", "merge", str(winner), *map(str, losers), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["winner"] == winner
    assert [len(m["losers"]) for m in bo_fake.merges] == [25, 5]
    assert all(lead not in bo_fake.leads for lead in losers)


def test_cli_merge_reports_marketo_refusal(bo_fake, bo_app):
    """A merge Marketo refuses exits 1 with Marketo's code."""
    winner = bo_fake.add_lead(email="keep@example.com")
    bo_fake.script("/merge.json", {"code": "1077"})
    result = bo_app.test_cli_runner().invoke(args=["leads", "merge", str(winner), "999"])
    assert result.exit_code == 1
    assert "1077" in result.output
