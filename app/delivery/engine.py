"""Wire a store, the shared state and the current settings into a client, delivery and dispatcher.

Flask-free, so `flask worker`, the embedded thread, benchmarks and tests build it the same way.
A settings change (hot reload) builds a fresh client and delivery on the next batch.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from app.coordination.gate import Gate
from app.coordination.state import SharedState
from app.delivery.batch import Delivery
from app.delivery.dispatcher import DEFAULT_LEASE_S
from app.delivery.dispatcher import RETENTION_S
from app.delivery.dispatcher import Dispatcher
from app.delivery.outcomes import DROPPED
from app.delivery.outcomes import Outcome
from app.marketo.client import MarketoClient
from app.marketo.client import Observer
from app.marketo.errors import MarketoError
from app.outbox.leases import KeptLeases
from app.outbox.store import Call
from app.outbox.store import Store
from app.outbox.store import StoredEvent
from app.privacy.identity import SUPPRESSED
from app.privacy.suppression import suppressed_events
from app.ratelimit import Budget
from app.ratelimit import quota_day
from app.settings import Settings

logger = logging.getLogger(__name__)

# Resync the daily count from Marketo's usage report this often (other integrations share it).
USAGE_RESYNC_S = 3600.0
# The shared lease naming the process that reads the usage report this hour.
USAGE_LEASE = "usage-resync"
# A call slot is renewed while its call runs, at most the read timeout plus this (app/coordination
# /gate.py); a slot whose process died stops counting as in flight within one short lease.
SLOT_GRACE_S = 30.0
# Held anonymousIds looked up in the lead cache per maintenance pass (a cursor walks the rest).
RELEASE_SCAN = 1000


class Engine:
    """The delivery machinery for one gateway process."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        store: Store,
        shared: SharedState,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        rand: Callable[[], float] = random.random,
        lease_s: float = DEFAULT_LEASE_S,
        observer: Observer | None = None,
        on_outcome: Callable[[str, str | None, int], None] | None = None,
        resync_usage: bool = True,
        suppressed: Callable[[set[str]], set[str]] | None = None,
    ) -> None:
        self.settings = settings
        # Which identifier hashes are suppressed, read fresh (app/privacy/suppression.py).
        self.suppressed = suppressed or shared.suppressed
        self.store = store
        self.shared = shared
        self.clock = clock
        self.observer = observer
        self.resync_usage = resync_usage
        self._lock = threading.Lock()
        self._current: tuple[Settings, MarketoClient, Delivery] | None = None
        self._last_usage = float("-inf")
        self._last_compact = float("-inf")
        self._held_cursor = ""
        self.gate = Gate(
            shared,
            lambda: Budget.from_limits(self.settings().limits),
            clock,
            sleep,
            slot_ttl=float(settings().limits.timeout_s) + SLOT_GRACE_S,
        )
        # Short claims, renewed while held, so a killed process's events return in seconds.
        self.leases = KeptLeases(store, lease_s, clock)
        self.dispatcher = Dispatcher(
            self.leases,
            shared,
            self.deliverer,
            settings,
            clock=clock,
            rand=rand,
            lease_s=lease_s,
            on_outcome=on_outcome,
            maintenance=self.maintain,
        )

    def _parts(self) -> tuple[MarketoClient, Delivery]:
        settings = self.settings()
        with self._lock:
            if self._current is None or self._current[0] is not settings:
                if self._current is not None:
                    self._current[1].close()
                client = MarketoClient(
                    settings,
                    tokens=self.shared,
                    limiter=self.gate,
                    clock=self.clock,
                    observer=self.observer,
                )
                delivery = Delivery(client, self.shared, settings, self.clock, self._release)
                self._current = (settings, client, delivery)
            return self._current[1], self._current[2]

    def client(self) -> MarketoClient:
        """Return the client for the settings in force."""
        return self._parts()[0]

    def deliverer(self) -> Callable[[Sequence[StoredEvent]], dict[int, Outcome]]:
        """Return the deliver callable for the settings in force, behind the suppression check.

        Each delivery is a batch of its own: the Marketo calls it makes are kept under a new
        batch name, which every outcome carries, so the console can show an event its calls.
        """
        client, delivery = self._parts()

        def deliver(events: Sequence[StoredEvent]) -> dict[int, Outcome]:
            batch = uuid.uuid4().hex[:16]
            with client.journal() as made:
                try:
                    outcomes = delivery.deliver(events)
                finally:
                    self._keep_calls(batch, made)
            return {i: replace(o, batch=batch) for i, o in outcomes.items()}

        return lambda events: self._screened(deliver, events)

    def _keep_calls(self, batch: str, made: Sequence[dict[str, Any]]) -> None:
        """Record a batch's calls; a failure to record never fails the delivery."""
        if not made:
            return
        try:
            self.store.record_calls(batch, [Call(**entry) for entry in made])
        except Exception:  # the console loses a line of history, the events still go
            logger.exception("could not record the Marketo calls of batch %s", batch)

    def _screened(
        self,
        deliver: Callable[[Sequence[StoredEvent]], dict[int, Outcome]],
        events: Sequence[StoredEvent],
    ) -> dict[int, Outcome]:
        """Drop events about a forgotten person before delivery; deliver the rest.

        Intake answers from a copy of the suppression list up to a second old, so an event
        accepted on another node right after a forget can reach this point: it is cut down to
        type, messageId and time and dropped as `suppressed`, as intake would have done.
        """
        found = suppressed_events(self.suppressed, events)
        if not found:
            return deliver(events)
        self.shared.scrub_events(sorted(found))
        logger.info("dropped %d event(s) about forgotten people at delivery", len(found))
        outcomes = {event_id: Outcome(DROPPED, SUPPRESSED) for event_id in found}
        rest = [e for e in events if e.id not in found]
        if rest:
            outcomes.update(deliver(rest))
        return outcomes

    def _release(self, anonymous_id: str | None, user_id: str | None) -> int:
        return self.store.release_held(anonymous_id, user_id, self.clock())

    def maintain(self, now: float) -> None:
        """Housekeeping: expire holds, compact old rows, forget old messageIds, resync quota."""
        settings = self.settings()
        expired = self.store.expire_held(now - settings.anonymous_hold_days * 86_400.0, now)
        if expired:
            logger.info("dropped %d held events past anonymous_hold_days", expired)
        self._release_known(settings, now)
        if now - self._last_compact >= USAGE_RESYNC_S:
            self._last_compact = now
            self.store.compact(now - RETENTION_S)
            self.store.prune_dedupe(now)
        if (
            self.resync_usage
            and settings.has_credentials
            and now - self._last_usage >= USAGE_RESYNC_S
        ):
            self._last_usage = now
            # One process per hour reads the report: the lease is never given back, it runs out.
            owner = f"{os.getpid()}-{id(self)}-{now}"
            if self.shared.try_lock(USAGE_LEASE, owner, USAGE_RESYNC_S, now):
                self._resync(settings, now)

    def _release_known(self, settings: Settings, now: float) -> None:
        """Release held events whose anonymousId the lead cache already links to a lead.

        Covers an anonymous event that arrives after the identify that named its visitor
        (a late beacon, a retried SDK batch): the release at identify time found nothing.
        Only when `lead_lookup` resolves by anonymousId, so the released event finds its lead.
        """
        if "anonymousId" not in settings.lead_lookup:
            return
        ids = self.store.held_anonymous_ids(self._held_cursor, RELEASE_SCAN)
        self._held_cursor = ids[-1] if len(ids) == RELEASE_SCAN else ""
        if not ids:
            return
        known = self.shared.get_leads(settings.munchkin_id, [("anonymousId", a) for a in ids])
        released = sum(self.store.release_held(value, None, now) for _, value in known)
        if released:
            logger.info("released %d held events of visitors identified earlier", released)

    def _resync(self, settings: Settings, now: float) -> None:
        budget = Budget.from_limits(settings.limits)
        today = quota_day(now, budget.reset_tz)
        try:
            rows = self.client().usage()
        except MarketoError as exc:
            logger.warning("could not read Marketo's usage report: %s", exc)
            return
        theirs = sum(int(r.get("total") or 0) for r in rows if str(r.get("date", ""))[:10] == today)
        ours = self.shared.limiter(budget, now).calls_today
        if theirs > ours:
            self.shared.set_calls_today(theirs, budget, now)
            logger.info("daily call count resynced from Marketo: %d", theirs)

    def close(self) -> None:
        """Stop renewing claims and call slots, and close the HTTP session."""
        self.leases.close()
        self.gate.close()
        with self._lock:
            if self._current is not None:
                self._current[1].close()
                self._current = None
