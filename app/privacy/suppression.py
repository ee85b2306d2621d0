"""A process's copy of the suppression list, so intake does not ask the database per request.

Every change to the list bumps a counter in the same transaction (`suppression_version`). A
process reads that counter at most once per `CHECK_INTERVAL_S` and reloads the list when it
moved; in between it answers from memory. On PostgreSQL that turns a round trip per intake
request into one small read per second per process.

Staleness is bounded: a forget made on another node (or by the CLI) applies to this process's
intake within `CHECK_INTERVAL_S`; a forget made through this process applies at once. An event
accepted in that window is caught at delivery, which asks with `fresh=True` (the counter is
read before every batch) and drops it as `suppressed`, cut down like an intake drop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

from app.outbox.store import StoredEvent
from app.privacy.identity import hashes_of
from app.privacy.identity import identifiers_of

# How stale a process's copy may be: the counter is read at most this often for intake.
CHECK_INTERVAL_S = 1.0
# Hashes kept in memory (about 200 B each with the set's overhead: ~10 MB). A longer list is
# asked per request, as before the copy existed: correct, only slower.
MAX_CACHED = 50_000


class SuppressionList:
    """The suppression list as one process sees it: a copy checked against the counter."""

    def __init__(
        self,
        shared: Callable[[], Any],
        *,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = CHECK_INTERVAL_S,
        max_cached: int = MAX_CACHED,
    ) -> None:
        self._shared = shared
        self._clock = clock
        self._interval_s = interval_s
        self._max_cached = max_cached
        self._lock = threading.Lock()
        self._checked = float("-inf")
        self._version: int | None = None
        # None while unknown or when the list is too long to copy.
        self._hashes: frozenset[str] | None = None

    def listed(self, hashes: Iterable[str], *, fresh: bool = False) -> set[str]:
        """Return which of these hashes are suppressed.

        `fresh` reads the counter now rather than trusting a copy up to `CHECK_INTERVAL_S` old.
        """
        wanted = set(hashes)
        if not wanted:
            return set()
        copy = self._current(fresh)
        if copy is None:
            return set(self._shared().suppressed(wanted))
        return wanted & copy

    def invalidate(self) -> None:
        """Have the next question read the counter: this process just changed the list."""
        with self._lock:
            self._checked = float("-inf")

    def _current(self, fresh: bool) -> frozenset[str] | None:
        with self._lock:
            now = self._clock()
            if fresh or now - self._checked >= self._interval_s:
                shared = self._shared()
                # The counter first: a change landing between the two reads is then in the
                # copy and bumps the counter again, so the next check reloads (never misses).
                version = shared.suppression_version()
                if version != self._version:
                    listed = shared.suppression_list(self._max_cached)
                    self._hashes = None if listed is None else frozenset(listed)
                    self._version = version
                self._checked = now
            return self._hashes


def suppressed_events(
    listed: Callable[[set[str]], set[str]], events: Sequence[StoredEvent]
) -> set[int]:
    """Return the ids of the events that name a suppressed person (one question for all)."""
    hashes = {e.id: hashes_of(identifiers_of(e.event)) for e in events}
    found = listed(set().union(*hashes.values())) if hashes else set()
    return {event_id for event_id, own in hashes.items() if own & found}
