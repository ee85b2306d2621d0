"""Campaign trigger planning: which events trigger, token values, grouping and the 100-lead cut."""

from __future__ import annotations

import pytest

from app.marketo.campaigns import MAX_LEADS_PER_TRIGGER
from app.marketo.campaigns import TriggerIntent
from app.marketo.campaigns import group
from app.marketo.campaigns import plan
from app.marketo.campaigns import token_name
from app.settings import CampaignMapping

CAMPAIGNS = {
    "Password Reset": CampaignMapping(2001, {"{{my.link}}": "link", "{{my.plan}}": "plan.name"}),
}


def track(event: str, **properties):
    """Build a track message."""
    return {"type": "track", "event": event, "userId": "u1", "properties": properties}


def test_plan_reads_tokens_by_dotted_path_and_skips_missing_ones():
    """Mapped events give sorted token pairs; absent properties fall back to Marketo defaults."""
    items = [
        (1, track("Password Reset", link="https://x/r/1", plan={"name": "Pro"})),
        (2, track("Password Reset", link=7)),
        (3, track("Signed Up", link="x")),
        (4, {"type": "identify", "event": "Password Reset", "traits": {}}),
    ]
    assert plan(items, CAMPAIGNS) == [
        TriggerIntent(1, 2001, (("{{my.link}}", "https://x/r/1"), ("{{my.plan}}", "Pro"))),
        TriggerIntent(2, 2001, (("{{my.link}}", "7"),)),
    ]


def test_group_batches_by_campaign_and_token_set_at_100_leads():
    """One call per campaign and token set, never more than 100 leads, duplicates folded."""
    same = (("{{my.x}}", "a"),)
    intents = [TriggerIntent(i, 2001, same) for i in range(250)]
    intents.append(TriggerIntent(900, 2001, (("{{my.x}}", "b"),)))
    intents.append(TriggerIntent(901, 2003, same))
    intents.append(TriggerIntent(902, 2001, same))  # same lead as event 0
    lead_ids = {i: 5000 + i for i in range(250)} | {900: 1, 901: 1, 902: 5000}
    calls = group(intents, lead_ids)
    sizes = [(c.campaign_id, c.tokens, len(c.lead_ids)) for c in calls]
    assert sizes == [
        (2001, same, 100),
        (2001, same, 100),
        (2001, same, 50),
        (2001, (("{{my.x}}", "b"),), 1),
        (2003, same, 1),
    ]
    assert all(len(c.lead_ids) <= MAX_LEADS_PER_TRIGGER for c in calls)


def test_group_leaves_out_events_without_a_lead():
    """An event whose lead is unknown makes no call."""
    assert group([TriggerIntent(1, 2001, ())], {}) == []


@pytest.mark.parametrize(
    ("given", "expected"),
    [("plan", "{{my.plan}}"), ("my.plan", "{{my.plan}}"), ("{{my.plan}}", "{{my.plan}}")],
)
def test_token_name_accepts_short_forms(given, expected):
    """The CLI accepts plan, my.plan or {{my.plan}}."""
    assert token_name(given) == expected
