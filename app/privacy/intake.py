"""The suppression check intake routing asks: does an event name a forgotten person?"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence

from flask import Flask

from app.outbox.store import Event
from app.privacy.identity import hashes_of
from app.privacy.identity import identifiers_of


def suppression_check(app: Flask, events: Sequence[Event]) -> Callable[[Event], bool] | None:
    """Return a test for suppressed events, or None when no event of the request is listed.

    One lookup for the whole request: every identifier hash of every event at once.
    """
    wanted: set[str] = set()
    for event in events:
        wanted |= hashes_of(identifiers_of(event))
    if not wanted:
        return None
    from app.delivery import get_shared  # the shared state lives in the outbox database

    listed = get_shared(app).suppressed(wanted)
    if not listed:
        return None
    return lambda event: bool(hashes_of(identifiers_of(event)) & listed)
