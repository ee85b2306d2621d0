"""SPEC §6.2 routing at intake: the Marketo work an event needs, or the named reason for none."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

from app.ingest.trust import trusted_user_id
from app.outbox.store import TRUST_KEY
from app.outbox.store import Event
from app.outbox.store import Routed
from app.outbox.store import State
from app.privacy.identity import SUPPRESSED
from app.privacy.identity import consent_preferences
from app.settings import Settings

# Reasons an accepted event is recorded without delivery (the fixed vocabulary of drops).
DISABLED_BY_INTEGRATIONS = "disabled_by_integrations"
EVENT_NOT_MAPPED = "event_not_mapped"
NO_CONSENT = "no_consent"
PAGE_NOT_MAPPED = "page_not_mapped"
RECORDED_ONLY = "recorded_only"
UNSUPPORTED_TYPE = "unsupported_type"

# Integration names that address this destination in a Segment `integrations` object: Segment's
# two Marketo destinations and the gateway's own name.
MARKETO_NAMES = ("Marketo", "Marketo V2", "Marketo Gateway")

# Personas audience tracks: static-list membership when `lists` is configured.
AUDIENCE_EVENTS = frozenset({"Audience Entered", "Audience Exited"})

# Types that say who a visitor is; everything else waits for them when anonymous is not allowed.
IDENTITY_TYPES = frozenset({"identify", "alias"})


def delivery_disabled(integrations: Mapping[str, Any] | None) -> bool:
    """Tell whether a Segment `integrations` object turns Marketo off for this event.

    Segment's meaning: `false` disables, `true` or an object (options) enables, `All` sets the
    default for names not listed. An explicit Marketo entry wins (`{"All": false, "Marketo":
    true}` still delivers). This is the only place the decision is taken: delivery trusts it.
    """
    if not integrations:
        return False
    named = [integrations[n] for n in MARKETO_NAMES if n in integrations]
    if named:
        return not any(v is not False for v in named)
    return integrations.get("All", True) is False


def _browser_claim_without_proof(event: Event, settings: Settings) -> bool:
    """Tell whether a browser identify or alias must stay a record (SPEC §5.4).

    Either one asks the gateway to write a lead or bind an id to one; a public key may do that
    only with an identity token (in every `identify_mode`: the mode says what the page does in
    Marketo, the token what the gateway may do). In `form` mode the page's hidden Marketo form
    has already done what any public form may do.
    """
    if event.source_kind != "browser" or event.type not in IDENTITY_TYPES:
        return False
    return TRUST_KEY not in event.payload


def _type_reason(event: Event, settings: Settings) -> str | None:
    kind = event.type
    if kind == "track":
        name = event.payload["event"]
        audience = settings.lists is not None and name in AUDIENCE_EVENTS
        if name not in settings.events and name not in settings.campaigns and not audience:
            return EVENT_NOT_MAPPED
    elif kind == "page":
        if event.source_kind == "browser" and settings.send_track_server_side:
            return RECORDED_ONLY  # Munchkin already recorded the visit in the browser
        if settings.page_activity is None:
            return PAGE_NOT_MAPPED
    elif kind == "screen":
        if settings.page_activity is None:
            return UNSUPPORTED_TYPE
    elif kind == "group":
        return UNSUPPORTED_TYPE
    return None


def _scrubbed(event: Event) -> Event:
    """Return the record kept of a suppressed event: its type, messageId and time, no person."""
    kept = ("type", "messageId", "timestamp")
    payload = {k: event.payload[k] for k in kept if k in event.payload}
    return dataclasses.replace(
        event, user_id=None, anonymous_id=None, payload=payload, payload_json=None
    )


def route(
    event: Event, settings: Settings, suppressed: Callable[[Event], bool] | None = None
) -> Routed:
    """Decide the state an accepted event starts in: pending, held, or dropped with a reason.

    `suppressed` tells whether the event names a forgotten person: such an event is kept only
    as a scrubbed record. An event carrying Segment's consent object is delivered only when it
    grants every category `consent.required` names.
    """
    if suppressed is not None and suppressed(event):
        return Routed(_scrubbed(event), State.DROPPED, SUPPRESSED)
    if delivery_disabled(event.payload.get("integrations")):
        return Routed(event, State.DROPPED, DISABLED_BY_INTEGRATIONS)
    preferences = consent_preferences(event.payload)
    if preferences is not None and not settings.consent.granted(preferences):
        return Routed(event, State.DROPPED, NO_CONSENT)
    if _browser_claim_without_proof(event, settings):
        return Routed(event, State.DROPPED, RECORDED_ONLY)
    reason = _type_reason(event, settings)
    if reason is not None:
        return Routed(event, State.DROPPED, reason)
    if event.user_id is None and not settings.track_anonymous and event.type not in IDENTITY_TYPES:
        return Routed(event, State.HELD)
    return Routed(event, State.PENDING)


def identity_link(event: Event) -> tuple[str, str] | None:
    """Return (anonymousId, userId) when this event ties an anonymous visitor to a user."""
    user_id = trusted_user_id(event)
    if user_id is None:
        return None
    if event.type == "alias":
        return str(event.payload["previousId"]), user_id
    if event.type == "identify" and event.anonymous_id is not None:
        return event.anonymous_id, user_id
    return None
