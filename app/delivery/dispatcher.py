"""The dispatcher: claim → deliver → ack, reschedule or dead-letter. The only loop, the only sleep.

It knows nothing of HTTP. A `deliver` callable turns a batch into one outcome per event; the
exception class inside a `retry` outcome picks the policy (SPEC §6.7): refresh and retry at once,
back off the whole limiter, park until the quota resets, or back off with jitter. After a 413 it
resends the refused events at once in halves; after a 604 it sends smaller batches for a while
(see `app.delivery.reshape`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any

from app.coordination.gate import MAX_GATE_WAIT_S
from app.coordination.state import SharedState
from app.delivery.breaker import Breaker
from app.delivery.isolation import cause_of
from app.delivery.isolation import describe
from app.delivery.isolation import settled_before
from app.delivery.isolation import systemic
from app.delivery.outcomes import DEAD
from app.delivery.outcomes import DELIVERED
from app.delivery.outcomes import DROPPED
from app.delivery.outcomes import HELD
from app.delivery.outcomes import RETRY
from app.delivery.outcomes import Outcome
from app.delivery.outcomes import attempts_of
from app.delivery.outcomes import wants_action
from app.delivery.pacing import MAX_LANES
from app.delivery.pacing import QUIET_S
from app.delivery.pacing import headroom
from app.delivery.pacing import lanes_for
from app.delivery.pacing import linger_s
from app.delivery.reshape import BatchLimit
from app.delivery.reshape import final
from app.delivery.reshape import split
from app.delivery.reshape import split_refused
from app.marketo.errors import Busy
from app.marketo.errors import CredentialsRejected
from app.marketo.errors import LimiterBusy
from app.marketo.errors import MarketoError
from app.marketo.errors import Retryable
from app.outbox.store import Store
from app.outbox.store import StoredEvent
from app.ratelimit import PAUSE_CREDENTIALS
from app.ratelimit import PAUSE_QUOTA
from app.ratelimit import Budget
from app.ratelimit import park_until
from app.retry import Action
from app.retry import RetryPolicy

logger = logging.getLogger(__name__)

#: A claim lasts this long unless renewed (`app.outbox.leases`): a crashed worker's events are
#: claimable again within it.
DEFAULT_LEASE_S = 6.0
#: Idle poll interval when nothing is due.
IDLE_POLL_S = 0.25
#: While a partial batch lingers, claim again this often to fill it.
LINGER_POLL_S = 0.05
#: Pause after bad credentials: an operator must act, so do not hammer the identity endpoint.
CREDENTIALS_PAUSE_S = 300.0
#: How often housekeeping (held-event expiry, compaction) runs.
MAINTENANCE_EVERY_S = 60.0
#: Delivered and dropped rows are kept this long, then compacted (counts survive).
RETENTION_S = 7 * 86_400.0

Deliver = Callable[[Sequence[StoredEvent]], dict[int, Outcome]]


class Dispatcher:
    """Claims due events in batches and settles each by its delivery outcome."""

    def __init__(
        self,
        store: Store,
        shared: SharedState,
        deliver: Callable[[], Deliver],
        settings: Callable[[], Any],
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        lease_s: float = DEFAULT_LEASE_S,
        on_outcome: Callable[[str, str | None, int], None] | None = None,
        maintenance: Callable[[float], None] | None = None,
    ) -> None:
        self.store = store
        self.shared = shared
        self.deliver = deliver
        self.settings = settings
        self.clock = clock
        self.rand = rand
        self.lease_s = lease_s
        self.on_outcome = on_outcome
        self.maintenance = maintenance
        self._buffer: list[StoredEvent] = []
        self._buffer_due = 0.0
        self._buffer_claimed = 0.0
        self._buffer_grew = 0.0
        self._last_maintenance = float("-inf")
        # Fewer events per batch while Marketo answers 604 (per dispatcher, see reshape.py).
        self._limit = BatchLimit()
        # Holds every call while Marketo fails whole batches (per dispatcher).
        self.breaker = Breaker(shared, rand)
        self._told_no_credentials = False

    # One step --------------------------------------------------------------------------------
    def run_once(self, flush: bool = True) -> int:
        """Claim due events and deliver a batch when full, lingered long enough, or `flush`;
        return how many events were settled."""
        taken = self.take(flush)
        if taken is None:
            return 0
        return self._run(*taken)

    def take(self, flush: bool = False) -> tuple[list[StoredEvent], Any] | None:
        """Claim due events into the buffer; return (batch, settings) once a batch should go.

        A batch goes when it is full, when `flush`, when its oldest event has lingered
        `linger_ms` (waiting for more events to fill the call), or earlier when no new event
        came for `QUIET_S` and the shared budget has headroom (see `linger_s`, `headroom`).
        """
        settings = self.settings()
        limits = settings.limits
        now = self.clock()
        if now - self._last_maintenance >= MAINTENANCE_EVERY_S and self.maintenance is not None:
            self._last_maintenance = now
            self.maintenance(now)
        if not settings.has_credentials:
            if not self._told_no_credentials:
                self._told_no_credentials = True
                logger.warning("no Marketo credentials: events stay pending until they are set")
            return None
        self._told_no_credentials = False
        view = self.shared.limiter(Budget.from_limits(limits), now)
        if view.paused_until is not None and view.paused_until - now > MAX_GATE_WAIT_S:
            return None  # parked (607, bad credentials, long back-off): intake keeps accepting
        self._limit = self._limit.recover(now, int(limits.batch_size))
        batch_size = self._limit.cap(int(limits.batch_size))
        want = batch_size - len(self._buffer)
        if want > 0:
            claimed = self.store.claim(want, self.lease_s, now)
            if claimed and not self._buffer:
                self._buffer_due = self._buffer_claimed = now
            held = {item.id for item in self._buffer}
            for item in claimed:
                if item.id in held:
                    continue  # our own lease ran out while buffered; never send it twice
                if item.attempts == 0:
                    self._buffer_due = min(self._buffer_due, item.event.received_at)
                self._buffer.append(item)
                self._buffer_grew = now
        if not self._buffer:
            return None
        full = len(self._buffer) >= batch_size
        lingered = now - self._buffer_due >= linger_s(limits)
        quiet = now - self._buffer_grew >= QUIET_S and headroom(view, limits)
        # Flush well before the claims' lease ends, whatever the linger says.
        leased = now - self._buffer_claimed >= self.lease_s / 2
        if not (flush or full or lingered or quiet or leased):
            return None
        batch, self._buffer = self._buffer, []
        return batch, settings

    def next_wait(self) -> float:
        """Return how long `run_forever` may idle before the next step is useful."""
        now = self.clock()
        if self._buffer:
            due = self._buffer_due + linger_s(self.settings().limits)
            return min(max(due - now, 0.0), LINGER_POLL_S)
        return IDLE_POLL_S

    def release_buffer(self) -> None:
        """Hand buffered claims back at once (on shutdown), without charging an attempt."""
        batch, self._buffer = self._buffer, []
        if batch:
            now = self.clock()
            self.store.retry([e.id for e in batch], now, "worker stopped", now, charge=False)

    # Delivery and settlement -----------------------------------------------------------------
    def _run(self, batch: list[StoredEvent], settings: Any) -> int:
        now = self.clock()
        outcomes: dict[int, Outcome] = {}
        try:
            self._isolate(self.deliver(), batch, outcomes)
        except CredentialsRejected as exc:
            logger.error("Marketo refused the client credentials: %s", exc)
            self._note_error(exc)
            until = now + CREDENTIALS_PAUSE_S
            self.shared.pause(until, PAUSE_CREDENTIALS)
            done = final(outcomes)  # groups of a split that went out before the refusal
            rest = [e.id for e in batch if e.id not in done]
            self.store.retry(rest, until, str(exc), now, charge=False)
            self._settle([e for e in batch if e.id in done], done, settings)
            return len(done)
        except Exception as exc:  # outside any one event (the store, a lookup): charged, as before
            logger.exception("delivery failed unexpectedly")
            failure = Outcome(RETRY, "internal_error", repr(exc))
            done = final(outcomes)
            outcomes = {e.id: done.get(e.id, failure) for e in batch}
        self._limit = self._limit.after(outcomes.values(), len(batch), now)
        self._settle(batch, outcomes, settings)
        return len(batch)

    def _isolate(
        self, deliver: Deliver, batch: list[StoredEvent], into: dict[int, Outcome]
    ) -> None:
        """Deliver `batch`; an unexpected exception splits it until the event raising is alone.

        A bug or bad data in one event (a `UnicodeEncodeError` in the lead cache, a handler's
        `KeyError`) must not charge its batch-mates: the unsettled events go again at once in
        halves, uncharged, and an event that still raises alone is dead-lettered
        `internal_error` with the exception's class and message. Marketo's errors and failures
        of the store itself (`isolation.systemic`) are not the event's fault: they propagate.
        """
        try:
            self._deliver(deliver, batch, into)
        except Exception as exc:
            if isinstance(cause_of(exc), MarketoError) or systemic(exc):
                raise
            into.update(final(settled_before(exc)))
            rest = [e for e in batch if e.id not in final(into)]
            if len(rest) == 1:
                logger.error("event %s fails delivery on its own: %s", rest[0].id, describe(exc))
                into[rest[0].id] = Outcome(DEAD, "internal_error", describe(exc))
                return
            logger.warning("%d events raised %s: resending in halves", len(rest), describe(exc))
            for group in split(rest, (len(rest) + 1) // 2):
                self._isolate(deliver, group, into)

    def _deliver(
        self, deliver: Deliver, batch: list[StoredEvent], into: dict[int, Outcome]
    ) -> None:
        """Deliver `batch`, writing outcomes `into`; 601/602 go once more, 413 in halves.

        Both resends are immediate and uncharged. A 413 is split into groups of at most half
        the refused call, recursively (each level strictly smaller); a lone event still refused
        is dead-lettered with the 413's reason (`marketo_413`) while its batch-mates go on.
        """
        into.update(deliver(batch))
        stale = [e for e in batch if wants_action(into.get(e.id), Action.RESEND_NOW)]
        if stale:  # 601/602 (token dropped) or a moved lead: once more, at once, uncharged
            into.update(deliver(stale))
        split_refused(batch, into, lambda group: self._deliver(deliver, group, into))

    def batch_limit(self) -> int | None:
        """Return the batch size a 604 imposed, or None when batches are at full size."""
        return self._limit.size

    def _settle(
        self, batch: list[StoredEvent], outcomes: dict[int, Outcome], settings: Any
    ) -> None:
        now = self.clock()
        policy = RetryPolicy(max_attempts=int(settings.limits.max_attempts))
        delivered: list[int] = []
        held: list[int] = []
        ended: dict[tuple[str, str, str | None], list[int]] = {}
        retries: dict[tuple[float, bool, str], list[int]] = {}
        for stored in batch:
            outcome = outcomes.get(stored.id) or Outcome(RETRY, "no_outcome", "no outcome")
            if outcome.status == DELIVERED:
                delivered.append(stored.id)
                continue
            if outcome.status == HELD:
                held.append(stored.id)
                continue
            if outcome.status in (DROPPED, DEAD):
                if outcome.code is not None:  # Marketo refused it: `flask status` shows why
                    self._note(outcome.code, outcome.detail or "", "Permanent")
                key = (outcome.status, outcome.reason or "unknown", outcome.detail)
                ended.setdefault(key, []).append(stored.id)
                continue
            at, charge = self._when(stored, outcome, now, settings, policy)
            if charge and policy.exhausted(stored.attempts + 1):
                detail = f"{outcome.reason}: {outcome.detail}"
                ended.setdefault((DEAD, "retries_exhausted", detail), []).append(stored.id)
                continue
            retries.setdefault((at, charge, outcome.detail or ""), []).append(stored.id)
        self.breaker.after_batch(batch, outcomes, bool(delivered), now, policy)
        self._log_attempts(batch, outcomes, now)
        if delivered:
            self.store.ack(delivered, now)
            self._count(DELIVERED, None, len(delivered))
        if held:
            self.store.hold(held, now, "waiting for an identify that names this visitor")
            self._count(HELD, None, len(held))
        for (status, reason, detail), ids in ended.items():
            if status == DROPPED:
                self.store.drop(ids, reason, now, detail)
            else:
                self.store.dead(ids, reason, now, detail)
            self._count(status, reason, len(ids))
        for (at, charge, detail), ids in retries.items():
            self.store.retry(ids, at, detail, now, charge=charge)
            self._count(RETRY, None, len(ids))

    def _log_attempts(
        self, batch: list[StoredEvent], outcomes: dict[int, Outcome], now: float
    ) -> None:
        """Append this attempt to each event's history (the console's event page), before the
        events settle; a failure to write it loses a history line, never an event."""
        try:
            self.store.note(attempts_of(batch, outcomes, now))
        except Exception:
            logger.exception("could not record the delivery history of %d events", len(batch))

    def _when(
        self,
        stored: StoredEvent,
        outcome: Outcome,
        now: float,
        settings: Any,
        policy: RetryPolicy,
    ) -> tuple[float, bool]:
        """Return (due time, charge an attempt?) for a retry outcome, pausing the limiter.

        The error's class names its action (`app.retry.Action`); the policy turns it into a
        delay and a charge. A resend that already had its one immediate try backs off.
        """
        error = outcome.error
        if error is not None:
            self._note_error(error)
        action = getattr(error, "action", Action.BACK_OFF)
        if action in (Action.RESEND_NOW, Action.SPLIT, Action.DEAD):
            # Its immediate resend is spent (see `_deliver`): what now, the error may say.
            action = getattr(error, "after_resend", Action.BACK_OFF)
        retry_after = getattr(error, "retry_after", None)
        if action is Action.PARK:
            tz = settings.limits.quota_reset_tz
            retry_after = park_until(now, getattr(error, "resets_at", None), tz) - now
        step = policy.step(action, stored.attempts + 1, retry_after, self.rand())
        until = now + step.delay
        if action is Action.PAUSE_ALL:  # 606/615: back off every call of every process
            self.shared.pause(until, getattr(error, "marketo_code", "") or "606")
        elif action is Action.PARK:
            self.shared.pause(until, PAUSE_QUOTA)
        return until, step.charge

    def _note_error(self, error: Exception) -> None:
        if isinstance(error, Busy | LimiterBusy):
            return  # waiting for another worker or for the budget is normal, not an error
        code = getattr(error, "marketo_code", "") or ""
        self._note(code, str(error), type(error).__name__)

    def _note(self, code: str, message: str, kind: str) -> None:
        """Record the last Marketo error for `flask status`."""
        self.shared.set_last_error(
            {"class": kind, "code": code or None, "message": message, "at": self.clock()}
        )

    def _count(self, status: str, reason: str | None, n: int) -> None:
        if self.on_outcome is not None:
            self.on_outcome(status, reason, n)

    # The loop --------------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event) -> None:
        """Step until `stop` is set, with up to `limits.concurrency` batches in flight at once.

        This thread claims and batches; each batch is delivered and settled on a lane thread.
        The shared gate still caps calls in flight across every process, the window and the
        quota stay the only limits, and claims keep one visitor's events in one batch at a time.
        Each step is caught and logged so one failure never ends the loop.
        """
        logger.info("dispatcher started")
        lanes = ThreadPoolExecutor(MAX_LANES, thread_name_prefix="gateway-lane")
        flying: set[Future[None]] = set()
        try:
            while not stop.is_set():
                flying = {f for f in flying if not f.done()}
                wait_s = 0.0
                try:
                    if len(flying) >= lanes_for(self.settings().limits):
                        futures_wait(flying, timeout=IDLE_POLL_S, return_when=FIRST_COMPLETED)
                        continue
                    taken = self.take(flush=False)
                    if taken is None:
                        wait_s = self.next_wait()
                    else:
                        flying.add(lanes.submit(self._lane, *taken))
                except Exception:
                    logger.exception("dispatcher step failed")
                    wait_s = IDLE_POLL_S * 4
                if wait_s > 0:
                    stop.wait(wait_s)
        finally:
            futures_wait(flying)  # batches in flight settle before the loop ends
            lanes.shutdown(wait=True)
        try:
            self.release_buffer()
        except Exception:
            logger.exception("could not release buffered events; their leases will expire")
        logger.info("dispatcher stopped")

    def _lane(self, batch: list[StoredEvent], settings: Any) -> None:
        try:
            self._run(batch, settings)
        except Exception:  # the claims' leases bring the events back
            logger.exception("delivering a batch failed")


__all__ = ["Dispatcher", "Retryable"]
