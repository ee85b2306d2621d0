"""The suppression check intake routing asks: does an event name a forgotten person?"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence

from flask import Flask

from app.outbox.store import Event
from app.privacy.identity import hashes_of
from app.privacy.identity import identifiers_of
from app.privacy.suppression import SuppressionList

EXTENSION = "suppression_list"


def suppression_list(app: Flask) -> SuppressionList:
    """Return the app's copy of the suppression list, made on first use."""
    found = app.extensions.get(EXTENSION)
    if found is None:
        from app.delivery import get_shared  # the list lives in the outbox database

        made = SuppressionList(lambda: get_shared(app))
        # Two first requests at once: both get the one that landed (setdefault is atomic).
        found = app.extensions.setdefault(EXTENSION, made)
    return found


def suppression_check(app: Flask, events: Sequence[Event]) -> Callable[[Event], bool] | None:
    """Return a test for suppressed events, or None when no event of the request is listed.

    One question for the whole request, answered from the process's copy of the list (at
    most `CHECK_INTERVAL_S` old; see app/privacy/suppression.py).
    """
    wanted: set[str] = set()
    for event in events:
        wanted |= hashes_of(identifiers_of(event))
    if not wanted:
        return None
    listed = suppression_list(app).listed(wanted)
    if not listed:
        return None
    return lambda event: bool(hashes_of(identifiers_of(event)) & listed)
