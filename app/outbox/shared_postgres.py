"""SharedState on PostgreSQL, so N gateway nodes keep one Marketo budget, token and lead cache.

Same tables as the SQLite backend (`shared_sqlite.py`). Every limiter method takes the single
`mkto_limiter` row with `SELECT ... FOR UPDATE` first: that row lock serialises budget decisions
across every node, so two nodes can never both see the last free slot and both take it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from app.errors import ServiceUnavailable
from app.outbox import migrations
from app.outbox.pg import open_pool
from app.outbox.shared import Identity
from app.outbox.shared import LimiterView
from app.outbox.shared import Slot
from app.outbox.shared import Token
from app.ratelimit import Budget
from app.ratelimit import Decision
from app.ratelimit import check
from app.ratelimit import quota_day

logger = logging.getLogger(__name__)

_UPSERT_LEAD = (
    "INSERT INTO mkto_leads (scope, kind, value, lead_id, updated_at) VALUES (%s, %s, %s, %s, %s)"
    " ON CONFLICT (scope, kind, value) DO UPDATE SET"
    " lead_id = excluded.lead_id, updated_at = excluded.updated_at"
)


class PostgresSharedState:
    """SharedState in the PostgreSQL database of the outbox; one transaction per method."""

    def __init__(self, url: str) -> None:
        try:
            self._pool = open_pool(url, "shared")
        except PoolTimeout as exc:
            raise ServiceUnavailable(
                "cannot connect to PostgreSQL for the shared limiter", code="store_unavailable"
            ) from exc
        with self._tx() as conn:
            migrations.upgrade(conn, migrations.POSTGRES)

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection]:
        """Lend a pooled connection for one transaction, committed on success."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise ServiceUnavailable(
                f"PostgreSQL shared state is unavailable: {exc}", code="store_unavailable"
            ) from exc

    def close(self) -> None:
        """Close the pool's connections."""
        self._pool.close()

    # Limiter -------------------------------------------------------------------------------
    def _lock_limiter(self, conn: psycopg.Connection, budget: Budget, now: float) -> tuple:
        """Lock the limiter row; return (today's count, paused_until, pause_reason)."""
        paused_until, reason, day, count = conn.execute(
            "SELECT paused_until, pause_reason, day, day_count FROM mkto_limiter"
            " WHERE id = 1 FOR UPDATE"
        ).fetchone()
        today = quota_day(now, budget.reset_tz)
        if day != today:
            conn.execute("UPDATE mkto_limiter SET day = %s, day_count = 0 WHERE id = 1", (today,))
            count = 0
        return count, paused_until, reason

    def acquire_slot(
        self, budget: Budget, now: float, slot_ttl: float
    ) -> tuple[Decision, Slot | None]:
        """Atomically check the budget and, when a call fits, record it and return its slot."""
        with self._tx() as conn:
            count, paused_until, reason = self._lock_limiter(conn, budget, now)
            conn.execute("DELETE FROM mkto_calls WHERE started_at <= %s", (now - budget.window_s,))
            conn.execute("DELETE FROM mkto_slots WHERE expires_at <= %s", (now,))
            times = [row[0] for row in conn.execute("SELECT started_at FROM mkto_calls")]
            in_flight = conn.execute("SELECT count(*) FROM mkto_slots").fetchone()[0]
            decision = check(budget, times, in_flight, count, now, paused_until, reason or "paused")
            if not decision.ok:
                return decision, None
            conn.execute("INSERT INTO mkto_calls (started_at) VALUES (%s)", (now,))
            slot_id = conn.execute(
                "INSERT INTO mkto_slots (started_at, expires_at) VALUES (%s, %s) RETURNING id",
                (now, now + slot_ttl),
            ).fetchone()[0]
            conn.execute("UPDATE mkto_limiter SET day_count = day_count + 1 WHERE id = 1")
        return decision, Slot(int(slot_id), now)

    def release_slot(self, slot: Slot, counted: bool, now: float) -> None:
        """End a call; `counted=False` gives back its quota unit (Marketo did not count it)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM mkto_slots WHERE id = %s", (slot.id,))
            if not counted:
                conn.execute(
                    "UPDATE mkto_limiter SET day_count = greatest(day_count - 1, 0) WHERE id = 1"
                )

    def pause(self, until: float, reason: str) -> None:
        """Hold every call until `until`; a longer pause already in force wins."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE mkto_limiter SET paused_until = %s, pause_reason = %s"
                " WHERE id = 1 AND (paused_until IS NULL OR paused_until < %s)",
                (until, reason, until),
            )

    def limiter(self, budget: Budget, now: float) -> LimiterView:
        """Return the limiter's current figures."""
        with self._tx() as conn:
            count, paused_until, reason = self._lock_limiter(conn, budget, now)
            window = conn.execute(
                "SELECT count(*) FROM mkto_calls WHERE started_at > %s", (now - budget.window_s,)
            ).fetchone()[0]
            in_flight = conn.execute(
                "SELECT count(*) FROM mkto_slots WHERE expires_at > %s", (now,)
            ).fetchone()[0]
        active = paused_until is not None and paused_until > now
        return LimiterView(
            calls_today=count,
            in_flight=in_flight,
            window_calls=window,
            paused_until=paused_until if active else None,
            pause_reason=reason if active else None,
        )

    def set_calls_today(self, count: int, budget: Budget, now: float) -> None:
        """Resync today's count (from Marketo's usage report)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE mkto_limiter SET day = %s, day_count = %s WHERE id = 1",
                (quota_day(now, budget.reset_tz), int(count)),
            )

    # Token ---------------------------------------------------------------------------------
    def get_token(self, key: str) -> Token | None:
        """Return the cached token for a client id, if any."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT value, expires_at, fetched_at FROM mkto_tokens WHERE key = %s", (key,)
            ).fetchone()
        return Token(*row) if row else None

    def put_token(self, key: str, token: Token) -> None:
        """Cache a token for every node; a reused token keeps its first fetch time."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO mkto_tokens (key, value, expires_at, fetched_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET"
                " expires_at = excluded.expires_at,"
                " fetched_at = CASE WHEN mkto_tokens.value = excluded.value"
                " THEN mkto_tokens.fetched_at ELSE excluded.fetched_at END,"
                " value = excluded.value",
                (key, token.value, token.expires_at, token.fetched_at),
            )

    def drop_token(self, key: str, value: str) -> None:
        """Forget the token if it is still `value` (another node may have renewed it)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM mkto_tokens WHERE key = %s AND value = %s", (key, value))

    # Leads ---------------------------------------------------------------------------------
    def get_leads(self, scope: str, identities: Iterable[Identity]) -> dict[Identity, int]:
        """Return the cached lead id of each known identity."""
        wanted = list(dict.fromkeys(identities))
        if not wanted:
            return {}
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT kind, value, lead_id FROM mkto_leads WHERE scope = %s"
                " AND (kind, value) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
                (scope, [k for k, _ in wanted], [v for _, v in wanted]),
            ).fetchall()
        return {(kind, value): int(lead) for kind, value, lead in rows}

    def put_leads(self, scope: str, leads: Mapping[Identity, int], now: float) -> None:
        """Cache identity → lead id."""
        # Sorted, so two nodes caching overlapping identities lock rows in one order.
        rows = sorted((scope, k, v, int(lead), now) for (k, v), lead in leads.items())
        if rows:
            with self._tx() as conn, conn.cursor() as cur:
                cur.executemany(_UPSERT_LEAD, rows)

    def evict_lead(self, scope: str, lead_id: int) -> int:
        """Forget every identity, traits hash and cookie of a lead; return identities removed."""
        args = (scope, lead_id)
        with self._tx() as conn:
            removed = conn.execute(
                "DELETE FROM mkto_leads WHERE scope = %s AND lead_id = %s", args
            ).rowcount
            conn.execute("DELETE FROM mkto_trait_hashes WHERE scope = %s AND lead_id = %s", args)
            conn.execute("DELETE FROM mkto_cookies WHERE scope = %s AND lead_id = %s", args)
        return removed

    def repoint_leads(self, scope: str, losers: Iterable[int], winner: int) -> int:
        """Point identities of merged-away leads at the winner; return how many moved."""
        losers = [int(x) for x in losers]
        with self._tx() as conn:
            moved = conn.execute(
                "UPDATE mkto_leads SET lead_id = %s WHERE scope = %s AND lead_id = ANY(%s)",
                (winner, scope, losers),
            ).rowcount
            conn.execute(
                "DELETE FROM mkto_trait_hashes WHERE scope = %s AND lead_id = ANY(%s)",
                (scope, [*losers, winner]),
            )
        return moved

    def get_trait_hashes(self, scope: str, lead_ids: Iterable[int]) -> dict[int, str]:
        """Return the hash of the fields last sent for each lead."""
        ids = sorted({int(x) for x in lead_ids})
        if not ids:
            return {}
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT lead_id, hash FROM mkto_trait_hashes WHERE scope = %s"
                " AND lead_id = ANY(%s)",
                (scope, ids),
            ).fetchall()
        return {int(lead): str(h) for lead, h in rows}

    def put_trait_hashes(self, scope: str, hashes: Mapping[int, str]) -> None:
        """Remember the hash of the fields just sent per lead."""
        rows = sorted((scope, int(lead), h) for lead, h in hashes.items())
        if rows:
            with self._tx() as conn, conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO mkto_trait_hashes (scope, lead_id, hash) VALUES (%s, %s, %s)"
                    " ON CONFLICT (scope, lead_id) DO UPDATE SET hash = excluded.hash",
                    rows,
                )

    def associated(self, scope: str, pairs: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
        """Return which (cookie, lead id) pairs were already associated."""
        wanted = sorted({(c, int(lead)) for c, lead in pairs})
        if not wanted:
            return set()
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT cookie, lead_id FROM mkto_cookies WHERE scope = %s"
                " AND (cookie, lead_id) IN (SELECT * FROM unnest(%s::text[], %s::bigint[]))",
                (scope, [c for c, _ in wanted], [lead for _, lead in wanted]),
            ).fetchall()
        return {(c, int(lead)) for c, lead in rows}

    def mark_associated(self, scope: str, pairs: Iterable[tuple[str, int]]) -> None:
        """Remember (cookie, lead id) pairs as associated."""
        rows = sorted({(scope, c, int(lead)) for c, lead in pairs})
        if rows:
            with self._tx() as conn, conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO mkto_cookies (scope, cookie, lead_id) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    rows,
                )

    # Coordination and reporting ------------------------------------------------------------
    def try_lock(self, name: str, owner: str, ttl: float, now: float) -> bool:
        """Take a named lease if free, expired or already ours (one statement, so atomic)."""
        with self._tx() as conn:
            row = conn.execute(
                "INSERT INTO mkto_locks (name, owner, expires_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
                " expires_at = excluded.expires_at"
                " WHERE mkto_locks.owner = excluded.owner OR mkto_locks.expires_at <= %s"
                " RETURNING name",
                (name, owner, now + ttl, now),
            ).fetchone()
        return row is not None

    def unlock(self, name: str, owner: str) -> None:
        """Give a lease back if `owner` still holds it."""
        with self._tx() as conn:
            conn.execute("DELETE FROM mkto_locks WHERE name = %s AND owner = %s", (name, owner))

    def set_last_error(self, error: Mapping[str, Any] | None) -> None:
        """Record the last Marketo error for `flask status` (None clears it)."""
        with self._tx() as conn:
            if error is None:
                conn.execute("DELETE FROM mkto_meta WHERE key = 'last_error'")
            else:
                conn.execute(
                    "INSERT INTO mkto_meta (key, value) VALUES ('last_error', %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (json.dumps(dict(error), default=str),),
                )

    def last_error(self) -> dict[str, Any] | None:
        """Return the last Marketo error recorded."""
        with self._tx() as conn:
            row = conn.execute("SELECT value FROM mkto_meta WHERE key = 'last_error'").fetchone()
        return json.loads(row[0]) if row else None
