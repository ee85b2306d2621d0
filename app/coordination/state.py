"""State every thread and process of a gateway shares about Marketo: the SharedState protocol.

The limiter (call times, in-flight slots, pause, daily count), the access token, the identity →
lead cache, the last traits sent per lead and the cookies already associated. Backends: SQLite
(`shared_sqlite.py`, same file as the outbox) and PostgreSQL (`shared_postgres.py`), with the SQL
they share in `shared_sql.py`. Every method is atomic on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any
from typing import Protocol

from app.marketo.token import Token
from app.ratelimit import Budget
from app.ratelimit import Decision

# (kind, value) of an identity: kind is "cookie", "email", "userId" or "anonymousId".
Identity = tuple[str, str]


@dataclass(frozen=True)
class Slot:
    """A granted call: pass it back to `release_slot` when the call returns."""

    id: int
    started_at: float


@dataclass(frozen=True)
class LimiterView:
    """What `flask status` shows about the limiter."""

    calls_today: int
    in_flight: int
    window_calls: int
    paused_until: float | None
    pause_reason: str | None


class SharedState(Protocol):
    """Shared Marketo state; implementations use one transaction per method."""

    # Limiter -------------------------------------------------------------------------------
    def acquire_slot(
        self, budget: Budget, now: float, slot_ttl: float
    ) -> tuple[Decision, Slot | None]:
        """Atomically check the budget and, when a call fits, record it and return its slot.

        A slot not released within `slot_ttl` (its process died) stops counting as in flight.
        """

    def release_slot(self, slot: Slot, counted: bool, now: float) -> None:
        """End a call; `counted=False` gives back its quota unit (Marketo did not count it)."""

    def renew_slots(self, ids: Sequence[int], until: float) -> None:
        """Extend the leases of these open slots (calls still running) to `until`."""

    def pause(self, until: float, reason: str) -> None:
        """Hold every call until `until` (606/615 back-off, 607 parking); a longer pause wins."""

    def limiter(self, budget: Budget, now: float) -> LimiterView:
        """Return the limiter's current figures."""

    def set_calls_today(self, count: int, budget: Budget, now: float) -> None:
        """Resync today's count (from Marketo's usage report)."""

    # Token ---------------------------------------------------------------------------------
    def get_token(self, key: str) -> Token | None:
        """Return the cached token for a client id, if any."""

    def put_token(self, key: str, token: Token) -> None:
        """Cache a token."""

    def drop_token(self, key: str, value: str) -> None:
        """Forget the token if it is still `value` (another process may have renewed it)."""

    # Leads ---------------------------------------------------------------------------------
    def get_leads(self, scope: str, identities: Iterable[Identity]) -> dict[Identity, int]:
        """Return the cached lead id of each known identity."""

    def put_leads(self, scope: str, leads: Mapping[Identity, int], now: float) -> None:
        """Cache identity → lead id."""

    def evict_lead(self, scope: str, lead_id: int) -> int:
        """Forget every identity, traits hash and cookie of a lead; return identities removed."""

    def repoint_leads(self, scope: str, losers: Iterable[int], winner: int) -> int:
        """Point identities of merged-away leads at the winner; return how many moved."""

    def forget_scope(self, scope: str) -> int:
        """Forget every cached lead of one instance (the demo's fake starts empty each run)."""

    def get_trait_hashes(self, scope: str, lead_ids: Iterable[int]) -> dict[int, str]:
        """Return the hash of the fields last sent for each lead."""

    def put_trait_hashes(self, scope: str, hashes: Mapping[int, str]) -> None:
        """Remember the hash of the fields just sent per lead."""

    def associated(self, scope: str, pairs: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
        """Return which (cookie, lead id) pairs were already associated."""

    def mark_associated(self, scope: str, pairs: Iterable[tuple[str, int]]) -> None:
        """Remember (cookie, lead id) pairs as associated."""

    # Coordination and reporting ------------------------------------------------------------
    def exclusive(self, name: str) -> AbstractContextManager[bool]:
        """Try a named lock that dies with its holder: yield True while held, False if busy.

        A process killed while holding it frees it at once (flock, advisory lock), unlike
        `try_lock`'s lease, which stays taken until its TTL runs out.
        """

    def try_lock(self, name: str, owner: str, ttl: float, now: float) -> bool:
        """Take a named lease if free or expired (single-flight across processes)."""

    def unlock(self, name: str, owner: str) -> None:
        """Give a lease back if `owner` still holds it."""

    def set_last_error(self, error: Mapping[str, Any] | None) -> None:
        """Record the last Marketo error for `flask status` (None clears it)."""

    def count(self, name: str, n: int = 1) -> None:
        """Add `n` to a named counter every process shares."""

    def spend(self, name: str, n: int, limit: int, window_s: float, now: float) -> int:
        """Take up to `n` units of a budget of `limit` per `window_s` (fixed windows, shared by
        every process); return how many were granted."""

    def counters(self) -> dict[str, int]:
        """Return every shared counter by name."""

    def put_cached(self, name: str, value: Any, now: float) -> None:
        """Keep a JSON value (a describe answer) under `name`, stamped with `now`."""

    def get_cached(self, name: str, max_age: float, now: float) -> Any | None:
        """Return the value kept under `name` if it is younger than `max_age` seconds."""

    def last_error(self) -> dict[str, Any] | None:
        """Return the last Marketo error recorded."""

    def close(self) -> None:
        """Release connections."""
