"""The list, campaign and merge work a delivery batch carries besides leads and activities.

`Delivery.deliver` hands its batch here: audience identifies and `Audience Entered`/`Exited`
tracks become static-list membership changes, tracks mapped in `campaigns` request their trigger
campaign, and (with `merge_on_alias`) an alias merges the previousId lead into the userId lead.
Each returns one outcome per event it had work for; `combine` folds it into delivery's own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from app.delivery import audiences
from app.delivery.leads import LeadResolver
from app.delivery.leads import Who
from app.delivery.leads import who_of
from app.delivery.outcomes import DEAD
from app.delivery.outcomes import DROPPED
from app.delivery.outcomes import OK
from app.delivery.outcomes import Outcome
from app.delivery.outcomes import failed
from app.errors import GatewayError
from app.marketo import campaigns
from app.marketo.errors import MarketoError
from app.marketo.errors import Permanent
from app.marketo.list_members import LeadWrite
from app.marketo.list_members import key_of
from app.marketo.lists import ListDirectory
from app.marketo.lists import Requester
from app.marketo.merge import merge_leads
from app.outbox.store import StoredEvent
from app.settings import Settings

log = logging.getLogger(__name__)

# When two parts of the gateway have an outcome for one event, the more urgent one stands:
# a retry replays the whole event (at least once), a dead part needs a human, and a delivered
# part beats "not mapped" from the other.
PRIORITY = {"retry": 3, "dead": 2, "delivered": 1, "dropped": 0}  # outcome status → rank


class NoLead(Permanent):
    """The event's lead could not be found or created; `reason` is the resolver's reason."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(f"no lead for this event ({reason or 'not found'})")
        self._reason = reason or "lead_not_found"

    @property
    def reason(self) -> str:
        """Return the resolver's reason."""
        return self._reason


def _outcome(error: GatewayError | None) -> Outcome:
    if error is None:
        return OK
    if isinstance(error, MarketoError):
        return failed(error)
    reason = getattr(error, "reason", None) or error.code
    return Outcome(DEAD, reason, error.message)


def _dropped(reason: str) -> Outcome:
    return Outcome(DROPPED, reason)


def combine(first: Any, second: Any) -> Any:
    """Return the outcome that stands when two parts judged one event (ties: the second)."""
    if first is None:
        return second
    if second is None:
        return first
    winner, other = (
        (second, first) if PRIORITY[second.status] >= PRIORITY[first.status] else (first, second)
    )
    if getattr(winner, "lead_id", None) is None and getattr(other, "lead_id", None) is not None:
        return replace(winner, lead_id=other.lead_id)  # the console still shows the lead
    return winner


class BatchExtras:
    """Audience, campaign and merge work for one settings generation."""

    def __init__(
        self,
        client: Requester,
        settings: Settings,
        resolver: LeadResolver,
        directory: ListDirectory | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.resolver = resolver
        self.directory = directory or ListDirectory(client, settings.lists)

    def wants(self, payload: Any) -> bool:
        """Tell whether a message has audience or campaign work here."""
        if audiences.audience_intent(payload) is not None:
            return True
        return (
            payload.get("type") == "track" and str(payload.get("event")) in self.settings.campaigns
        )

    def deliver(self, events: Sequence[StoredEvent]) -> dict[int, Any]:
        """Return an outcome for each event with audience or campaign work."""
        items = [(s.id, s.event.payload) for s in events]
        outcomes: dict[int, Any] = {}
        plan = audiences.plan(items, self.settings.lists)
        for event_id, reason in plan.dropped.items():
            outcomes[event_id] = _dropped(reason)
        if plan.changes:
            done = audiences.apply_changes(
                self.client,
                self.directory,
                plan.changes,
                resolve_emails=self._resolve_emails,
                write=LeadWrite(self.settings.lead_action, self.settings.lead_partition),
            )
            for event_id, error in done.items():
                outcomes[event_id] = _outcome(error)
        intents = campaigns.plan(items, self.settings.campaigns)
        if intents:
            for event_id, outcome in self._campaigns(intents, events).items():
                outcomes[event_id] = combine(outcomes.get(event_id), outcome)
        return outcomes

    def _resolve_emails(self, emails: list[str]) -> dict[str, Any]:
        keys = list(dict.fromkeys(key_of("email", e) for e in emails))
        found = self.resolver.resolve([Who(email=k) for k in keys], create=None)
        out: dict[str, Any] = {}
        for key, result in zip(keys, found, strict=True):
            if result.lead_id is not None:
                out[key] = result.lead_id
            else:
                out[key] = result.error or NoLead(result.reason)
        return out

    def _campaigns(
        self, intents: list[campaigns.TriggerIntent], events: Sequence[StoredEvent]
    ) -> dict[int, Any]:
        by_id = {s.id: s for s in events}
        wanted = [by_id[i.event_id] for i in intents]
        outcomes: dict[int, Any] = {}
        try:
            resolved = self.resolver.resolve([who_of(s.event.payload) for s in wanted])
        except MarketoError as exc:
            return {s.id: _outcome(exc) for s in wanted}
        lead_ids: dict[int, int] = {}
        for stored, result in zip(wanted, resolved, strict=True):
            if result.lead_id is not None:
                lead_ids[stored.id] = result.lead_id
            else:
                outcomes[stored.id] = _outcome(result.error or NoLead(result.reason))
        for event_id, error in campaigns.run(self.client, intents, lead_ids).items():
            outcomes[event_id] = _outcome(error)
        return outcomes

    def merge_alias(self, stored: StoredEvent, winner: int | None) -> Any:
        """Merge the alias's previousId lead into `winner` (the userId lead); None if no merge.

        The identity cache is repointed, so later events of either id reach the winner.
        """
        previous = stored.event.payload.get("previousId")
        if not self.settings.merge_on_alias or winner is None or not previous:
            return None
        try:
            found = self.resolver.resolve(
                [Who(user_id=str(previous), anonymous_id=str(previous))], create=False
            )[0]
            loser = found.lead_id
            if loser is None or loser == winner:
                return None
            merge_leads(
                self.client,
                winner,
                [loser],
                merge_in_crm=self.settings.merge_in_crm,
                cache=self.resolver.shared,  # type: ignore[arg-type]
                scope=self.resolver.scope,
            )
        except MarketoError as exc:
            return _outcome(exc)
        log.info("alias merged lead %s into %s", loser, winner)
        return _outcome(None)
