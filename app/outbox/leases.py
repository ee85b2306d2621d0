"""Short claims kept alive by a heartbeat, so a dead process's events come back within seconds.

A claim is a lease: the event is `in_flight` until `next_attempt_at`, then any dispatcher may
claim it again. A long lease (once 10 minutes) makes a crashed worker's events wait that long;
a short one alone would let a slow call's events be claimed twice. `KeptLeases` wraps the
store the dispatcher uses: it remembers each lease `claim` hands out and a heartbeat thread
renews every lease still held (buffered or in a call) at a fraction of its length, until the
event is settled. A process killed with SIGKILL renews nothing, so its claims lapse within one
lease. Each renewal matches the lease's current end, so a claim that lapsed and was taken by
someone else is never extended (and is dropped from what this process keeps).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from app.heartbeat import Heartbeat
from app.outbox.store import Store
from app.outbox.store import StoredEvent

logger = logging.getLogger(__name__)

#: Leases are renewed this many times per lease length (three renewals may fail in a row).
RENEWALS_PER_LEASE = 5
#: A claim held longer than this stops being renewed: a stuck dispatcher cannot keep it forever.
MAX_HOLD_S = 600.0


class KeptLeases:
    """The store, with the leases this process claimed renewed until they are settled."""

    def __init__(
        self,
        store: Store,
        lease_s: float,
        clock: Callable[[], float],
        *,
        max_hold_s: float = MAX_HOLD_S,
    ) -> None:
        self.store = store
        self.lease_s = lease_s
        self.clock = clock
        self.max_hold_s = max_hold_s
        # event id → (the lease's current end, when it was first claimed)
        self._held: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._heartbeat = Heartbeat(
            self.renew_due,
            lease_s / RENEWALS_PER_LEASE,
            "gateway-lease-heartbeat",
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    # What the dispatcher calls --------------------------------------------------------------
    def claim(self, limit: int, lease_s: float, now: float) -> list[StoredEvent]:
        """Claim as the store does, and keep the new leases alive until they are settled."""
        claimed = self.store.claim(limit, lease_s, now)
        if claimed:
            until = now + lease_s
            with self._lock:
                for item in claimed:
                    since = self._held.get(item.id, (0.0, now))[1]
                    self._held[item.id] = (until, since)
            self._ensure_heartbeat()
        return claimed

    def ack(self, ids: Sequence[int], now: float) -> None:
        self._forget(ids)
        self.store.ack(ids, now)

    def retry(
        self, ids: Sequence[int], at: float, error: str, now: float, charge: bool = True
    ) -> None:
        self._forget(ids)
        self.store.retry(ids, at, error, now, charge=charge)

    def drop(self, ids: Sequence[int], reason: str, now: float, detail: str | None = None) -> None:
        self._forget(ids)
        self.store.drop(ids, reason, now, detail)

    def dead(self, ids: Sequence[int], reason: str, now: float, detail: str | None = None) -> None:
        self._forget(ids)
        self.store.dead(ids, reason, now, detail)

    def held(self) -> int:
        """Return how many claims this process keeps alive now."""
        with self._lock:
            return len(self._held)

    # The heartbeat --------------------------------------------------------------------------
    def renew_due(self) -> int:
        """Renew every lease held; return how many were renewed (the heartbeat's one step)."""
        now = self.clock()
        with self._lock:
            expired = [i for i, (_, since) in self._held.items() if now - since > self.max_hold_s]
            for event_id in expired:
                del self._held[event_id]
            groups: dict[float, list[int]] = {}
            for event_id, (until, _) in self._held.items():
                groups.setdefault(until, []).append(event_id)
        if expired:
            logger.warning(
                "%d claims held over %.0f s are left to lapse", len(expired), self.max_hold_s
            )
        new_until = now + self.lease_s
        renewed = 0
        for until, ids in groups.items():
            kept = set(self.store.renew(ids, until, new_until, now))
            renewed += len(kept)
            with self._lock:
                for event_id in ids:
                    entry = self._held.get(event_id)
                    if entry is None or entry[0] != until:
                        continue  # settled, or claimed again, meanwhile
                    if event_id in kept:
                        self._held[event_id] = (new_until, entry[1])
                    else:  # settled by someone, or lapsed and claimed elsewhere
                        del self._held[event_id]
        return renewed

    def _ensure_heartbeat(self) -> None:
        self._heartbeat.ensure()

    def close(self) -> None:
        """Stop the heartbeat (the store is closed by its owner)."""
        self._heartbeat.close()

    def _forget(self, ids: Sequence[int]) -> None:
        with self._lock:
            for event_id in ids:
                self._held.pop(event_id, None)
