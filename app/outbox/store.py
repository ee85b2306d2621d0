"""Outbox records, their states, and the Store protocol every backend (SQLite, PostgreSQL) keeps."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from enum import StrEnum
from typing import Any
from typing import Protocol


class State(StrEnum):
    """Where an event is in its life; the last three are final outcomes."""

    PENDING = "pending"
    HELD = "held"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    DROPPED = "dropped"
    DEAD = "dead"


@dataclass(frozen=True)
class Event:
    """One accepted Segment-spec message, normalised by intake.

    `payload` is the message as the client sent it, with `messageId`, `timestamp`, `type` filled
    in and the `_mkto_trk` value always at `context.Marketo.marketoCookie` when one was given.
    """

    message_id: str
    type: str
    source_key_id: str
    source_kind: str
    received_at: float
    timestamp: str
    user_id: str | None
    anonymous_id: str | None
    payload: dict[str, Any]
    # The payload already serialised by intake (saves a second json.dumps); None means "dump it".
    payload_json: str | None = field(default=None, compare=False, repr=False)


#: Where intake records what a verified identity token lets a browser event do
#: (`{"email": ..., "userId": ...}`); never taken from a client (see app/ingest/trust.py).
TRUST_KEY = "_gatewayTrust"


#: A claim's condition on a candidate row `e`: no other event of its visitor (same userId or
#: same anonymousId) is in flight under a live lease. Several batches can then be in flight at
#: once, across processes, and one visitor's events still go one batch after the other, in
#: order: an identify settles before the tracks that need its lead are claimed.
VISITOR_FREE = (
    "NOT EXISTS (SELECT 1 FROM events AS f WHERE f.state = 'in_flight' AND f.user_id = e.user_id"
    " AND f.next_attempt_at > ?) AND NOT EXISTS (SELECT 1 FROM events AS f"
    " WHERE f.state = 'in_flight' AND f.anonymous_id = e.anonymous_id AND f.next_attempt_at > ?)"
)


def claim_scan(limit: int) -> int:
    """Return how many due rows a claim of `limit` examines at most.

    Bounded, so a backlog from visitors already in flight costs each claim a few thousand index
    rows, not the whole backlog; a claim that finds only blocked rows waits for them to settle.
    """
    return max(limit * 10, 1000)


def dedupe_key(event: Event) -> str:
    """Return what the dedupe window remembers: the messageId within its source key.

    Scoped per key, as Segment scopes it per source: a browser key is public, and a beacon
    must not be able to pre-empt (and so silently discard) a server event's messageId.
    """
    return dedupe_key_of(event.source_key_id, event.message_id)


def dedupe_key_of(source_key_id: str, message_id: str) -> str:
    """Return the dedupe entry's key for a messageId sent with one source key."""
    return f"{source_key_id}\x1f{message_id}"


@dataclass(frozen=True)
class Routed:
    """An event with the state intake decided for it (pending, held, or dropped with a reason)."""

    event: Event
    state: State = State.PENDING
    reason: str | None = None


@dataclass(frozen=True)
class StoredEvent:
    """An event as the outbox holds it.

    `lead_id` is the Marketo lead its last delivery attempt landed on (when it got that far);
    `history` lists its attempts, oldest first, as `Attempt.as_dict` wrote them.
    """

    id: int
    event: Event
    state: State
    reason: str | None
    detail: str | None
    attempts: int
    next_attempt_at: float
    updated_at: float
    lead_id: int | None = None
    history: tuple[dict[str, Any], ...] = ()


#: Attempts an event's history keeps (the oldest go first): enough for every retry the policy
#: allows, bounded for an event held and released again and again.
MAX_HISTORY = 20


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt of one event, as the console shows it.

    `batch` names the Marketo calls made for the batch it went in (`Store.calls`).
    """

    at: float
    outcome: str
    reason: str | None = None
    batch: str | None = None
    lead_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form kept in the event's history."""
        out: dict[str, Any] = {"at": round(self.at, 3), "outcome": self.outcome}
        for name in ("reason", "batch", "lead_id"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True)
class Call:
    """One Marketo call made while delivering a batch: what, when, and how it ended.

    Holds no request or answer body, so it never holds a person's data: `message` is Marketo's
    error message (or ours for a transport failure), cut to `MAX_CALL_MESSAGE` characters.
    """

    at: float
    method: str
    endpoint: str
    status: str
    ms: int
    code: str | None = None
    message: str | None = None
    records: int | None = None


#: Characters of a call's error message kept for the console.
MAX_CALL_MESSAGE = 300

#: Longest value kept in the events.email column (the console's email filter); longer ones are
#: not addresses Marketo would take.
MAX_EMAIL = 254


def email_in(payload: Mapping[str, Any]) -> str | None:
    """Return the email an event names, lower-cased, for the console's email filter.

    The same places delivery looks (traits, context traits, an email-shaped userId), read
    without trusting them: the column only finds events, it never decides a lead.
    """
    traits = payload.get("traits")
    context = payload.get("context")
    context_traits = context.get("traits") if isinstance(context, Mapping) else None
    for candidate in (
        traits.get("email") if isinstance(traits, Mapping) else None,
        context_traits.get("email") if isinstance(context_traits, Mapping) else None,
        payload.get("userId"),
    ):
        if isinstance(candidate, str) and "@" in candidate:
            value = candidate.strip().lower()
            if 3 <= len(value) <= MAX_EMAIL and _encodable(value):
                return value
    return None


def _encodable(text: str) -> bool:
    """Tell whether a text can be stored as UTF-8 (intake refuses lone surrogates; events
    stored by other paths may still hold one, and a column must not fail their commit)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Store(Protocol):
    """The durable outbox. Every method is safe to call from many threads and processes."""

    def add(self, items: Sequence[Routed], now: float) -> list[bool]:
        """Commit events durably before returning; True per stored event, False per duplicate.

        A `messageId` already stored within the dedupe window is a duplicate and is not stored
        again. Concurrent callers share commits (group commit); nothing returns before its fsync.
        """

    def claim(self, limit: int, lease_s: float, now: float) -> list[StoredEvent]:
        """Lease up to `limit` due events (pending with next_attempt_at <= now, or in_flight whose
        lease expired), oldest first, and mark them in_flight until now + lease_s.

        Events of a visitor (userId or anonymousId) that has an event in flight are left for a
        later claim, so concurrent batches never carry one visitor's events out of order.
        """

    def renew(self, ids: Sequence[int], until: float, new_until: float, now: float) -> list[int]:
        """Extend the claims of `ids` whose lease still ends at `until` (so no one else took
        them since) to `new_until`; return the ids renewed."""

    def ack(self, ids: Sequence[int], now: float) -> None:
        """Mark claimed events delivered."""

    def retry(
        self, ids: Sequence[int], at: float, error: str, now: float, charge: bool = True
    ) -> None:
        """Return claimed events to pending, due at `at`; `charge` adds one to their attempts."""

    def drop(self, ids: Sequence[int], reason: str, now: float, detail: str | None = None) -> None:
        """End events as dropped with a reason from the fixed vocabulary."""

    def dead(self, ids: Sequence[int], reason: str, now: float, detail: str | None = None) -> None:
        """Dead-letter events with a reason and detail for an operator."""

    def hold(self, ids: Sequence[int], now: float, detail: str | None = None) -> None:
        """Park open events as held until a binding names their visitor."""

    def release_held(
        self, anonymous_id: str | None, user_id: str | None, now: float, due: float | None = None
    ) -> int:
        """Turn held events of an anonymousId (or of the userId) back to pending at `due`."""

    def expire_held(self, before: float, now: float) -> int:
        """Drop held events received before `before` with reason `anonymous_expired`."""

    def held_anonymous_ids(self, after: str, limit: int) -> list[str]:
        """Return up to `limit` distinct anonymousIds of held events, in order, past `after`."""

    def get(self, event_id: int) -> StoredEvent | None:
        """Return one event by id."""

    def find(self, message_id: str) -> list[StoredEvent]:
        """Return the stored events with this messageId (operators and tests)."""

    def dead_letters(
        self, reason: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[StoredEvent]:
        """List dead-lettered events, newest first."""

    def replay(self, ids: Sequence[int] | None, reason: str | None, now: float) -> int:
        """Move dead events (these ids, or this reason, or all when both are None) to pending
        with attempts reset; return how many moved."""

    def purge(self, ids: Sequence[int] | None, reason: str | None) -> int:
        """Delete dead events (these ids, or this reason, or all when both are None)."""

    def recent(
        self, filters: Mapping[str, str | None], limit: int = 50, keys: Sequence[str] = ()
    ) -> list[StoredEvent]:
        """Return the newest events matching every filter (user_id, anonymous_id, email,
        message_id, state), through an index (the console's live events).

        A messageId is found through the dedupe window's entries of the source `keys` (the
        window remembers each messageId per key, with the event it stored).
        """

    def activity(self, since: float) -> dict[str, dict[int, int]]:
        """Return {series: {minute number: count}} since `since` (received, delivered, ...)."""

    def note(self, attempts: Mapping[int, Attempt]) -> None:
        """Append each event's attempt to its history (at most `MAX_HISTORY` kept) and record
        the lead it landed on, when known."""

    def record_calls(self, batch: str, calls: Sequence[Call]) -> None:
        """Keep the Marketo calls made for one batch (the console shows them per event)."""

    def calls(self, batches: Sequence[str]) -> dict[str, list[Call]]:
        """Return the recorded calls of these batches, oldest first."""

    def purge_dead(self, before: float) -> int:
        """Delete dead events last updated before `before`; return how many."""

    def compact(self, before: float) -> int:
        """Delete delivered and dropped rows older than `before`, and the calls recorded before
        it; counts by outcome survive."""

    def prune_dedupe(self, now: float) -> int:
        """Forget messageIds older than the dedupe window, so a late repeat is stored again."""

    def counts(self, now: float) -> dict[str, Any]:
        """Return {"pending", "held", "in_flight", "delivered", "dropped": {reason: n},
        "dead": {reason: n}, "oldest_pending_s"} as SPEC §4 `flask status` shows it."""

    def ping(self) -> None:
        """Raise when the store is not writable (used by /readyz)."""

    def close(self) -> None:
        """Release connections."""


def read_counts(execute: Callable[[str], Iterable[Sequence[Any]]], now: float) -> dict[str, Any]:
    """Build `Store.counts` from plain SQL run by `execute` (inside one read snapshot).

    Both backends keep the same tables and indexes, and these queries take no parameters, so the
    SQL and its assembly live here once. Each query matches one partial index exactly (open
    events: events_due, which also holds state and received_at; held: events_held; dead:
    events_dead), so no count reads the table or its delivered rows.
    """
    out: dict[str, Any] = {
        "pending": 0, "held": 0, "in_flight": 0, "delivered": 0, "dropped": {}, "dead": {},
    }  # fmt: skip
    oldest = None
    for state, n, first in execute(
        "SELECT state, COUNT(*), MIN(received_at) FROM events"
        " WHERE state IN ('pending', 'in_flight') GROUP BY state"
    ):
        out[state] = n
        if state == "pending":
            oldest = first
    [(out["held"],)] = list(execute("SELECT COUNT(*) FROM events WHERE state = 'held'"))
    for reason, n in execute(
        "SELECT reason, COUNT(*) FROM events WHERE state = 'dead' GROUP BY reason"
    ):
        out["dead"][reason or "unknown"] = n
    for state, reason, n in execute("SELECT state, reason, n FROM outcome_totals"):
        if state == "delivered":
            out["delivered"] += n
        else:
            out["dropped"][reason] = n
    out["oldest_pending_s"] = max(0.0, now - oldest) if oldest is not None else 0.0
    return out
