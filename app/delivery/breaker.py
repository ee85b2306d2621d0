"""The dispatcher's circuit breaker: while Marketo fails whole calls, hold every call.

Without it each failed batch backs off alone while the dispatcher claims the next one, so an
outage charges an attempt to every pending event in turn and, after `max_attempts` rounds
(under an hour with the 10-minute cap), dead-letters the whole backlog. With it one batch
probes Marketo per back-off, the back-off grows with the failures in a row, and the events that
were never sent wait uncharged. A delivered event closes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence

from app.coordination.state import SharedState
from app.delivery.outcomes import Outcome
from app.delivery.outcomes import retry_with
from app.marketo.errors import Transient
from app.outbox.store import StoredEvent
from app.ratelimit import PAUSE_OUTAGE
from app.retry import RetryPolicy

logger = logging.getLogger(__name__)

#: The limiter's pause reason while the breaker holds calls (`flask status`).
OUTAGE_REASON = PAUSE_OUTAGE


class Breaker:
    """Counts batches Marketo failed as a whole in a row (per dispatcher) and pauses the
    shared limiter for a back-off that grows with them."""

    def __init__(self, shared: SharedState, rand: Callable[[], float]) -> None:
        self.shared = shared
        self.rand = rand
        #: Batches in a row failed as a whole (5xx, timeouts, no connection) with nothing
        #: delivered: the back-off exponent.
        self.streak = 0

    def after_batch(
        self,
        batch: Sequence[StoredEvent],
        outcomes: Mapping[int, Outcome],
        delivered: bool,
        now: float,
        policy: RetryPolicy,
    ) -> None:
        """Close on a delivery; on a batch Marketo failed as a whole, pause every call."""
        if delivered:
            if self.streak:
                logger.info("Marketo answers again after %d failed batches", self.streak)
            self.streak = 0
            return
        failures = [
            outcomes[e.id].error for e in batch if retry_with(outcomes.get(e.id), Transient)
        ]
        if not failures:
            return
        self.streak += 1
        retry_after = max((getattr(f, "retry_after", None) or 0.0 for f in failures), default=0.0)
        until = now + policy.delay(self.streak, retry_after or None, self.rand())
        self.shared.pause(until, OUTAGE_REASON)
        logger.warning(
            "Marketo failed %d batch(es) in a row (%s); holding calls for %.0f s",
            self.streak,
            failures[0],
            until - now,
        )
