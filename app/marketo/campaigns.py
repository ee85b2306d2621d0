"""Campaign triggers: events mapped in `campaigns` request a trigger campaign for their lead.

This is how transactional email is sent through Marketo: a trigger campaign with "Campaign is
Requested" runs for the given leads, with `{{my.token}}` values taken from the event. Requests
are grouped by campaign and token set (Marketo applies one token set to every lead of a call) and
cut at 100 leads, Marketo's limit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.marketo.errors import MarketoError
from app.marketo.errors import Retryable
from app.marketo.lists import Requester
from app.marketo.lists import chunks
from app.settings import CampaignMapping

log = logging.getLogger(__name__)

# Marketo's Request Campaign takes at most 100 leads and 100 tokens per call.
MAX_LEADS_PER_TRIGGER = 100
MAX_TOKENS_PER_TRIGGER = 100

Tokens = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TriggerIntent:
    """One event's wish to run a campaign for its lead, with the token values it carries."""

    event_id: Any
    campaign_id: int
    tokens: Tokens


@dataclass(frozen=True)
class TriggerCall:
    """One Request Campaign call: a campaign, one token set, up to 100 leads."""

    campaign_id: int
    tokens: Tokens
    lead_ids: tuple[int, ...]


def dotted(value: Any, path: str) -> Any:
    """Return the value at a dotted path (`plan.name`) in nested mappings, or None."""
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def token_values(payload: Mapping[str, Any], mapping: CampaignMapping) -> Tokens:
    """Return the campaign's tokens with values from the event's properties, sorted by name.

    A token whose property is absent is left out, so the campaign falls back to the token's
    default value set in Marketo.
    """
    properties = payload.get("properties") or payload.get("traits") or {}
    found = []
    for token, path in mapping.tokens.items():
        value = dotted(properties, path)
        if value is None:
            value = dotted(payload, path)
        if value is not None and not isinstance(value, Mapping | list):
            found.append((token, _text(value)))
    return tuple(sorted(found))[:MAX_TOKENS_PER_TRIGGER]


def plan(
    items: Iterable[tuple[Any, Mapping[str, Any]]], campaigns: Mapping[str, CampaignMapping]
) -> list[TriggerIntent]:
    """Return the trigger wish of every track event whose name is mapped in `campaigns`."""
    out = []
    for event_id, payload in items:
        if payload.get("type") != "track":
            continue
        mapping = campaigns.get(str(payload.get("event")))
        if mapping is None:
            continue
        out.append(TriggerIntent(event_id, mapping.campaign_id, token_values(payload, mapping)))
    return out


def group(intents: Sequence[TriggerIntent], lead_ids: Mapping[Any, int]) -> list[TriggerCall]:
    """Group intents with a known lead into calls per campaign and token set, ≤ 100 leads each."""
    groups: dict[tuple[int, Tokens], list[int]] = {}
    for intent in intents:
        lead = lead_ids.get(intent.event_id)
        if lead is None:
            continue
        leads = groups.setdefault((intent.campaign_id, intent.tokens), [])
        if lead not in leads:
            leads.append(lead)
    calls = []
    for (campaign_id, tokens), leads in groups.items():
        for part in chunks(leads, MAX_LEADS_PER_TRIGGER):
            calls.append(TriggerCall(campaign_id, tokens, tuple(part)))
    return calls


def trigger(client: Requester, call: TriggerCall) -> None:
    """Request one campaign for up to 100 leads with one token set.

    :raises MarketoError: the call failed (1003 batch campaign, 1013 unknown campaign, limits).
    """
    body: dict[str, Any] = {"leads": [{"id": lead} for lead in call.lead_ids]}
    if call.tokens:
        body["tokens"] = [{"name": name, "value": value} for name, value in call.tokens]
    client.request(
        "POST", f"/rest/v1/campaigns/{int(call.campaign_id)}/trigger.json", json={"input": body}
    )
    log.info("requested campaign %s for %d lead(s)", call.campaign_id, len(call.lead_ids))


def run(
    client: Requester, intents: Sequence[TriggerIntent], lead_ids: Mapping[Any, int]
) -> dict[Any, MarketoError | None]:
    """Make every call the intents need; return per event None (done) or the call's error.

    Events without a lead id are not included; the caller decides their outcome.
    """
    outcome: dict[Any, MarketoError | None] = {}
    calls = group(intents, lead_ids)
    for index, call in enumerate(calls):
        try:
            trigger(client, call)
        except Retryable as exc:
            # Limits and outages hit every later call too: stop and let the dispatcher retry.
            for later in calls[index:]:
                for event_id in _events_of(intents, lead_ids, later):
                    outcome[event_id] = exc
            break
        except MarketoError as exc:
            for event_id in _events_of(intents, lead_ids, call):
                outcome[event_id] = exc
            continue
        for event_id in _events_of(intents, lead_ids, call):
            outcome.setdefault(event_id, None)
    return outcome


def _events_of(
    intents: Sequence[TriggerIntent], lead_ids: Mapping[Any, int], call: TriggerCall
) -> list[Any]:
    return [
        i.event_id
        for i in intents
        if i.campaign_id == call.campaign_id
        and i.tokens == call.tokens
        and lead_ids.get(i.event_id) in call.lead_ids
    ]


def token_name(name: str) -> str:
    """Return a token's full name: `plan` and `my.plan` both become `{{my.plan}}`."""
    name = name.strip()
    if name.startswith("{{") and name.endswith("}}"):
        return name
    return "{{" + (name if name.startswith("my.") else f"my.{name}") + "}}"


def request_campaign(
    client: Requester, campaign_id: int, lead_ids: Sequence[int], tokens: Mapping[str, str]
) -> int:
    """Run a trigger campaign for any number of leads with one token set; return calls made.

    :raises MarketoError: a call failed; leads in earlier calls were already requested.
    """
    token_set: Tokens = tuple(sorted((token_name(k), str(v)) for k, v in tokens.items()))
    if len(token_set) > MAX_TOKENS_PER_TRIGGER:
        raise ValueError(f"at most {MAX_TOKENS_PER_TRIGGER} tokens per request")
    unique = list(dict.fromkeys(int(i) for i in lead_ids))
    calls = 0
    for part in chunks(unique, MAX_LEADS_PER_TRIGGER):
        trigger(client, TriggerCall(int(campaign_id), token_set, tuple(part)))
        calls += 1
    return calls
