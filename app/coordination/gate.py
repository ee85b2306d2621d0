"""The gate every Marketo call passes: a slot from the shared budget, or a typed refusal.

The Marketo client calls `acquire` before each request and `release` after it; the budget (the
sliding window, calls in flight and the daily quota) lives in the shared state, so every thread
and process of the gateway draws from the same one.

A slot is a short lease (`SLOT_LEASE_S`) that a heartbeat renews while its call runs, as claims
are (app/outbox/leases.py). A process killed with SIGKILL renews nothing, so its calls stop
counting as in flight within one lease: a restart is not locked out of the concurrency budget
for the whole read timeout. A slot is never renewed past `slot_ttl` (the longest a call can
take), so a stuck process cannot hold one forever either.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from app.coordination.state import SharedState
from app.coordination.state import Slot
from app.heartbeat import Heartbeat
from app.marketo.errors import LimiterBusy
from app.marketo.errors import QuotaExhausted
from app.ratelimit import QUOTA_REASONS
from app.ratelimit import Budget

#: How long one call may wait in-thread for the shared budget before its batch is rescheduled.
MAX_GATE_WAIT_S = 25.0
#: A slot's lease; the heartbeat renews open slots this many times a lease.
SLOT_LEASE_S = 6.0
RENEWALS_PER_LEASE = 4


class Gate:
    """Hands out call slots from the shared budget, waiting for one when the wait is short."""

    def __init__(
        self,
        shared: SharedState,
        budget: Callable[[], Budget],
        clock: Callable[[], float],
        sleep: Callable[[float], Any],
        slot_ttl: float,
        max_wait_s: float = MAX_GATE_WAIT_S,
        lease_s: float = SLOT_LEASE_S,
    ) -> None:
        self.shared = shared
        self.budget = budget
        self.clock = clock
        self.sleep = sleep
        self.slot_ttl = slot_ttl
        self.max_wait_s = max_wait_s
        self.lease_s = min(lease_s, slot_ttl)
        # slot id → when its call started (by this process's clock)
        self._open: dict[int, float] = {}
        self._lock = threading.Lock()
        self._heartbeat = Heartbeat(
            self.renew_open, self.lease_s / RENEWALS_PER_LEASE, "gateway-slot-heartbeat"
        )

    def acquire(self) -> Slot:
        """Return a slot; raise QuotaExhausted or RateLimited when the wait would be too long."""
        deadline = self.clock() + self.max_wait_s
        while True:
            now = self.clock()
            decision, slot = self.shared.acquire_slot(self.budget(), now, self.lease_s)
            if slot is not None:
                self._ensure_heartbeat()
                with self._lock:
                    self._open[slot.id] = now
                return slot
            if decision.reason in QUOTA_REASONS:
                raise QuotaExhausted("daily quota used up", resets_at=now + decision.wait)
            if now + decision.wait > deadline:
                raise LimiterBusy(
                    f"call budget busy ({decision.reason})", retry_after=decision.wait
                )
            self.sleep(max(decision.wait, 0.001))

    def release(self, slot: object, counted: bool) -> None:
        """Give the slot back."""
        if isinstance(slot, Slot):
            with self._lock:
                self._open.pop(slot.id, None)
            self.shared.release_slot(slot, counted, self.clock())

    def renew_open(self) -> int:
        """Extend the lease of every slot this process holds (the heartbeat's one step); a slot
        held past `slot_ttl` is left to lapse. Return how many were renewed."""
        now = self.clock()
        with self._lock:
            stale = [i for i, since in self._open.items() if now - since >= self.slot_ttl]
            for slot_id in stale:
                del self._open[slot_id]
            ids = sorted(self._open)
        if ids:
            self.shared.renew_slots(ids, now + self.lease_s)
        return len(ids)

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat.ensure():
            with self._lock:
                self._open.clear()  # a forked child holds none of its parent's calls

    def close(self) -> None:
        """Stop the heartbeat; slots still open lapse within a lease."""
        self._heartbeat.close()
