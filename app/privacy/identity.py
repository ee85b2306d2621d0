"""The identifiers an event names a person by, and their hashed form on the suppression list."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

from app.outbox.store import TRUST_KEY
from app.outbox.store import Event

#: The drop reason of an event about a forgotten person, at intake or at delivery.
SUPPRESSED = "suppressed"

# The kinds of identifier a person can be forgotten (and suppressed) by.
KINDS = ("email", "userId", "anonymousId")

# Where an event may carry an email (dotted paths into the payload).
EMAIL_PATHS = ("traits.email", "context.traits.email", "properties.email")


def normalise(kind: str, value: str) -> str:
    """Return the form an identifier is compared in: emails ignore case and outer spaces."""
    value = value.strip()
    return value.lower() if kind == "email" else value


def identity_hash(kind: str, value: str) -> str:
    """Return the suppression-list form of an identifier: SHA-256 of kind and value.

    A plain digest rather than an HMAC: it must outlive a rotation of `secret_key`, and the
    list holds nothing but these digests.
    """
    text = f"{kind}\x1f{normalise(kind, value)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _path(message: Mapping[str, Any], path: str) -> Any:
    node: Any = message
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def identifiers_of(event: Event) -> set[tuple[str, str]]:
    """Return every (kind, value) an event names its person by.

    userId and anonymousId, an alias's previousId (either kind), emails in traits, context
    traits or properties, and what a verified identity token vouched for. A userId shaped like
    an email counts as an email too (delivery would look the lead up by it).
    """
    payload = event.payload
    found: set[tuple[str, str]] = set()

    def add(kind: str, value: Any) -> None:
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            found.add((kind, str(value)))

    add("userId", event.user_id)
    add("anonymousId", event.anonymous_id)
    add("userId", payload.get("userId"))
    add("anonymousId", payload.get("anonymousId"))
    if event.type == "alias":
        add("userId", payload.get("previousId"))
        add("anonymousId", payload.get("previousId"))
    for path in EMAIL_PATHS:
        add("email", _path(payload, path))
    trust = payload.get(TRUST_KEY)
    if isinstance(trust, Mapping):
        add("email", trust.get("email"))
        add("userId", trust.get("userId"))
    user_id = payload.get("userId")
    if isinstance(user_id, str) and "@" in user_id:
        add("email", user_id)
    return found


def hashes_of(identifiers: Iterable[tuple[str, str]]) -> set[str]:
    """Return the suppression hashes of (kind, value) pairs."""
    return {identity_hash(kind, value) for kind, value in identifiers}


def consent_preferences(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Return Segment's `context.consent.categoryPreferences`, or None when the event has none."""
    prefs = _path(payload, "context.consent.categoryPreferences")
    return prefs if isinstance(prefs, Mapping) else None
