"""Lead merge on alias and `flask leads merge`: Marketo merges, the lead cache follows."""

from __future__ import annotations

import json

from tests.integration.test_lists_audiences import Gateway

LEAD_FIELDS = {"user_id": "userId", "anonymous_id": "anonymousId"}
EVENTS = {"Signed Up": {"activity_type_id": 100001, "primary": "plan"}}


def test_alias_merges_the_previous_lead_and_later_events_reach_the_winner(
    fake_marketo, bo_app_factory
):
    """previousId's lead is merged into userId's lead; the cache is repointed, no 1004 after."""
    app = bo_app_factory(
        merge_on_alias=True, merge_in_crm=True, lead_fields=LEAD_FIELDS, events=EVENTS
    )
    gateway = Gateway(app)
    winner = fake_marketo.add_lead(email="ann@example.com", userId="u1")
    loser = fake_marketo.add_lead(anonymousId="anon-1")
    gateway.send("track", anonymousId="anon-1", event="Signed Up", properties={"plan": "Free"})
    gateway.deliver()
    assert [a["leadId"] for a in fake_marketo.activities] == [loser]
    gateway.send("alias", userId="u1", previousId="anon-1")
    gateway.deliver()
    assert fake_marketo.merges == [{"winner": winner, "losers": [loser], "mergeInCRM": "true"}]
    assert loser not in fake_marketo.leads
    gateway.send("track", anonymousId="anon-1", event="Signed Up", properties={"plan": "Pro"})
    gateway.deliver()
    assert fake_marketo.activities[-1]["leadId"] == winner
    assert gateway.counts()["delivered"] == 3
    assert fake_marketo.errors_returned.get("1004", 0) == 0


def test_alias_without_merge_setting_does_not_merge(fake_marketo, bo_app_factory):
    """merge_on_alias off: the alias links ids and Marketo keeps both leads."""
    app = bo_app_factory(lead_fields=LEAD_FIELDS, events=EVENTS)
    gateway = Gateway(app)
    fake_marketo.add_lead(email="ann@example.com", userId="u1")
    loser = fake_marketo.add_lead(anonymousId="anon-1")
    gateway.send("alias", userId="u1", previousId="anon-1")
    gateway.deliver()
    assert fake_marketo.merges == []
    assert loser in fake_marketo.leads


def test_cli_merge_chunks_losers_by_25(fake_marketo, bo_app):
    """`flask leads merge` merges 30 losers in two calls (25 + 5)."""
    winner = fake_marketo.add_lead(email="keep@example.com")
    losers = [fake_marketo.add_lead(email=f"dup{i}@example.com") for i in range(30)]
    result = bo_app.test_cli_runner().invoke(
        args=["leads", "merge", str(winner), *map(str, losers), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["winner"] == winner
    assert [len(m["losers"]) for m in fake_marketo.merges] == [25, 5]
    assert all(lead not in fake_marketo.leads for lead in losers)


def test_cli_merge_reports_marketo_refusal(fake_marketo, bo_app):
    """A merge Marketo refuses exits 1 with Marketo's code."""
    winner = fake_marketo.add_lead(email="keep@example.com")
    fake_marketo.script("/merge.json", {"code": "1077"})
    result = bo_app.test_cli_runner().invoke(args=["leads", "merge", str(winner), "999"])
    assert result.exit_code == 1
    assert "1077" in result.output
