"""The gate every Marketo call passes: a slot from the shared budget, or a typed refusal.

The Marketo client calls `acquire` before each request and `release` after it; the budget (the
sliding window, calls in flight and the daily quota) lives in the shared state, so every thread
and process of the gateway draws from the same one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.coordination.state import SharedState
from app.coordination.state import Slot
from app.marketo.errors import LimiterBusy
from app.marketo.errors import QuotaExhausted
from app.ratelimit import QUOTA_REASONS
from app.ratelimit import Budget

#: How long one call may wait in-thread for the shared budget before its batch is rescheduled.
MAX_GATE_WAIT_S = 25.0


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
    ) -> None:
        self.shared = shared
        self.budget = budget
        self.clock = clock
        self.sleep = sleep
        self.slot_ttl = slot_ttl
        self.max_wait_s = max_wait_s

    def acquire(self) -> Slot:
        """Return a slot; raise QuotaExhausted or RateLimited when the wait would be too long."""
        deadline = self.clock() + self.max_wait_s
        while True:
            now = self.clock()
            decision, slot = self.shared.acquire_slot(self.budget(), now, self.slot_ttl)
            if slot is not None:
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
            self.shared.release_slot(slot, counted, self.clock())
