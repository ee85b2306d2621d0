"""Consent and privacy: consent checks at intake, suppression of forgotten people, forgetting.

`identity.py` says which identifiers an event carries and how they are hashed for the
suppression list; `forget.py` removes a person from the outbox, the caches and (optionally)
Marketo; `api.py` and `cli.py` are the server route and the `flask privacy` commands.
"""

from __future__ import annotations

from typing import Any


def init_app(app: Any) -> None:
    """Register the privacy API and the `flask privacy` commands."""
    from app.privacy.api import init_app as register

    register(app)
