"""What an identify or an `Audience Entered`/`Exited` track means for static-list membership.

Segment Personas (and Engage) announce audience membership two ways: an identify whose
`context.personas.computation_class` is `audience` with a boolean `traits[computation_key]`, or a
track named `Audience Entered` / `Audience Exited` with `properties[computation_key]`. Either one
adds the profile's lead(s) to, or removes them from, the static list named after the audience key
(or the name mapped for it in `lists.names`). Membership needs an email: each distinct email on
the profile is one lead and one membership. Planning here is pure; `apply_changes` does the calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from app.errors import GatewayError
from app.marketo.errors import MarketoError
from app.marketo.errors import Retryable
from app.marketo.errors import record_error
from app.marketo.list_members import LeadWrite
from app.marketo.list_members import key_of
from app.marketo.list_members import resolve
from app.marketo.lists import ListDirectory
from app.marketo.lists import Requester
from app.marketo.lists import add_leads
from app.marketo.lists import remove_leads
from app.settings import ListsSettings

log = logging.getLogger(__name__)

# emails → {key_of("email", email): lead id, or the error saying why there is none}
EmailResolver = Callable[[list[str]], dict[str, Any]]

AUDIENCE_ENTERED = "Audience Entered"
AUDIENCE_EXITED = "Audience Exited"
AUDIENCE_EVENTS = (AUDIENCE_ENTERED, AUDIENCE_EXITED)

# Drop reasons (the short fixed vocabulary the dispatcher counts by).
NO_EMAIL = "no_email_for_audience"
LISTS_NOT_CONFIGURED = "lists_not_configured"


@dataclass(frozen=True)
class MembershipChange:
    """One lead (by email) to add to or remove from one static list, on behalf of one event."""

    event_id: Any
    audience: str
    list_name: str
    email: str
    add: bool


@dataclass
class AudiencePlan:
    """The membership changes a batch asks for, and the audience events that cannot be served."""

    changes: list[MembershipChange] = field(default_factory=list)
    dropped: dict[Any, str] = field(default_factory=dict)

    @property
    def event_ids(self) -> set[Any]:
        """Return the ids of every event this plan has an opinion on."""
        return {c.event_id for c in self.changes} | set(self.dropped)


def _get(mapping: Any, key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, Mapping) else None


def audience_intent(payload: Mapping[str, Any]) -> tuple[str, bool] | None:
    """Return (audience key, entered?) when the message announces audience membership, else None."""
    context = _get(payload, "context") or {}
    personas = _get(context, "personas") or {}
    kind = payload.get("type")
    if kind == "identify":
        if _get(personas, "computation_class") != "audience":
            return None
        key = _get(personas, "computation_key")
        value = _get(_get(payload, "traits"), key) if isinstance(key, str) else None
        return (key, value) if isinstance(value, bool) else None  # type: ignore[return-value]
    if kind == "track" and payload.get("event") in AUDIENCE_EVENTS:
        properties = _get(payload, "properties") or {}
        key = _get(personas, "computation_key") or _get(properties, "audience_key")
        if not isinstance(key, str) or not key:
            return None
        value = _get(properties, key)
        if not isinstance(value, bool):
            value = payload.get("event") == AUDIENCE_ENTERED
        return key, value
    return None


def _looks_like_email(value: Any) -> bool:
    return isinstance(value, str) and "@" in value.strip()[1:-1] and " " not in value.strip()


def emails_of(payload: Mapping[str, Any]) -> list[str]:
    """Return the profile's distinct emails: traits/properties/context.traits, then externalIds."""
    context = _get(payload, "context") or {}
    candidates: list[Any] = [
        _get(_get(payload, "traits"), "email"),
        _get(_get(payload, "properties"), "email"),
        _get(_get(context, "traits"), "email"),
    ]
    for extra in (_get(_get(payload, "traits"), "emails"), _get(_get(context, "traits"), "emails")):
        if isinstance(extra, list):
            candidates.extend(extra)
    for ext in _get(context, "externalIds") or []:
        if _get(ext, "type") == "email":
            candidates.append(_get(ext, "id"))
    seen: set[str] = set()
    out: list[str] = []
    for value in candidates:
        if not _looks_like_email(value):
            continue
        email = value.strip()
        if email.lower() not in seen:
            seen.add(email.lower())
            out.append(email)
    return out


def list_name_for(audience: str, lists: ListsSettings) -> str:
    """Return the static list name an audience key maps to (the key itself unless renamed)."""
    return lists.names.get(audience, audience)


def plan(
    items: Iterable[tuple[Any, Mapping[str, Any]]], lists: ListsSettings | None
) -> AudiencePlan:
    """Turn (event id, Segment message) pairs into membership changes, in event order.

    Messages that are not about audiences are left out; audience messages without an email, or
    arriving while no list folder is configured, are dropped with a named reason.
    """
    result = AudiencePlan()
    for event_id, payload in items:
        intent = audience_intent(payload)
        if intent is None:
            continue
        audience, entered = intent
        if lists is None:
            result.dropped[event_id] = LISTS_NOT_CONFIGURED
            continue
        emails = emails_of(payload)
        if not emails:
            result.dropped[event_id] = NO_EMAIL
            continue
        name = list_name_for(audience, lists)
        for email in emails:
            result.changes.append(MembershipChange(event_id, audience, name, email, entered))
    return result


def net_changes(changes: Iterable[MembershipChange]) -> dict[tuple[str, str], bool]:
    """Collapse changes to the final wish per (list name, lowercased email); later events win."""
    final: dict[tuple[str, str], bool] = {}
    for change in changes:
        final[(change.list_name, change.email.lower())] = change.add
    return final


def apply_changes(
    client: Requester,
    directory: ListDirectory,
    changes: list[MembershipChange],
    *,
    create_leads: bool = True,
    write: LeadWrite | None = None,
    resolve_emails: EmailResolver | None = None,
) -> dict[Any, GatewayError | None]:
    """Make the membership calls for a batch; return per event None (done) or why not.

    Emails are resolved (and missing leads created when `create_leads`) in one pass, each list
    gets at most one add and one remove call per 300 leads with the last wish per lead winning,
    and a row Marketo skipped fails only the events that asked for that lead. A retryable
    failure (rate limit, quota, outage) stops the pass and is returned for every event not done.
    `resolve_emails` (emails → {key_of(email): lead id or error}) lets delivery use its cache.
    """
    outcome: dict[Any, GatewayError | None] = {}

    def fail(event_ids: Any, exc: GatewayError) -> None:
        for event_id in event_ids:
            if outcome.get(event_id) is None:
                outcome[event_id] = exc

    if not changes:
        return outcome
    emails = [c.email for c in changes]
    try:
        if resolve_emails is not None:
            leads = resolve_emails(emails)
        else:
            leads = resolve(client, "email", emails, create_missing=create_leads, write=write)
    except MarketoError as exc:
        fail({c.event_id for c in changes}, exc)
        return outcome
    by_list: dict[str, list[MembershipChange]] = {}
    for change in changes:
        by_list.setdefault(change.list_name, []).append(change)
    pending = list(by_list.items())
    for index, (name, list_changes) in enumerate(pending):
        try:
            list_id = directory.list_id(name)
            final: dict[int, bool] = {}
            for change in list_changes:
                lead = leads[key_of("email", change.email)]
                if isinstance(lead, MarketoError):
                    fail([change.event_id], lead)
                else:
                    final[lead] = change.add
            rows = add_leads(client, list_id, [lead for lead, add in final.items() if add])
            rows.update(remove_leads(client, list_id, [ld for ld, add in final.items() if not add]))
        except Retryable as exc:
            fail({c.event_id for _, group in pending[index:] for c in group}, exc)
            break
        except GatewayError as exc:
            fail({c.event_id for c in list_changes}, exc)
            continue
        for change in list_changes:
            lead = leads[key_of("email", change.email)]
            row = rows.get(lead) if isinstance(lead, int) else None
            if row is not None and not row.ok:
                fail([change.event_id], record_error(list(row.reasons)))
    for change in changes:
        outcome.setdefault(change.event_id, None)
    return outcome
