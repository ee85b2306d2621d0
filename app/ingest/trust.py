"""What a browser event may do, decided at intake from the identity token it carries (SPEC §5.4).

A browser key is public, so a beacon proves nothing about who sent it. The one proof the gateway
accepts is an identity token minted by the site's back end (`POST /v1/identity-tokens`): a
beacon carrying one at `context.identityToken` is verified here, the token itself is removed
from the stored event, and what it names (an email, optionally a userId) is recorded under
`TRUST_KEY`. Delivery reads only that record; anything a client sends under the same key is
discarded first, whatever the source.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from app.errors import BadToken
from app.errors import InvalidEvent
from app.errors import TokenExpired
from app.outbox.store import TRUST_KEY
from app.outbox.store import Event


def apply_trust(
    event: Event, secret_key: str | None, clock: Callable[[], float] = time.time
) -> Event:
    """Return `event` with its identity token verified and replaced by what the token names.

    :raises InvalidEvent: a browser event's token is forged, malformed or expired.
    """
    payload = event.payload
    context = payload.get("context")
    token = context.get("identityToken") if isinstance(context, dict) else None
    if token is None and TRUST_KEY not in payload:
        return event
    cleaned: dict[str, Any] = {k: v for k, v in payload.items() if k != TRUST_KEY}
    if isinstance(context, dict) and "identityToken" in context:
        cleaned["context"] = {k: v for k, v in context.items() if k != "identityToken"}
    if token is not None and event.source_kind == "browser":
        from app.browser.tokens import verify_claims  # browser.tokens imports ingest.validate

        try:
            claims = verify_claims(secret_key, token, clock=clock)
        except (BadToken, TokenExpired) as exc:
            raise InvalidEvent(f"context.identityToken: {exc.message}", code=exc.code) from exc
        trust: dict[str, str] = {"email": claims.email}
        if claims.user_id is not None:
            trust["userId"] = claims.user_id
        cleaned[TRUST_KEY] = trust
    return replace(event, payload=cleaned, payload_json=None)


def trusted_user_id(event: Event) -> str | None:
    """Return the userId this event may bind: any for a server key, the token's for a browser."""
    if event.source_kind != "browser":
        return event.user_id
    trust = event.payload.get(TRUST_KEY) or {}
    return event.user_id if event.user_id and event.user_id == trust.get("userId") else None
