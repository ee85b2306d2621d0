"""The SharedState methods whose SQL is the same on SQLite and PostgreSQL, written once.

Both backends hold the same tables, and most methods speak SQL both dialects accept: the
limiter's reads and writes, `INSERT ... ON CONFLICT` upserts (SQLite has had them since 3.24),
`RETURNING`, eviction, named leases and the last error. That SQL lives here, with `?`
placeholders. A backend supplies the connections (`_tx` for one atomic transaction, `_read` for a
plain read), how the limiter row is locked (`_LOCK_ROW`), and the lookups by list, where the
dialects really differ: chunked `IN (?, ...)` lists on SQLite, arrays on PostgreSQL.
"""

from __future__ import annotations

import json
from abc import ABC
from abc import abstractmethod
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any
from typing import ClassVar
from typing import Protocol

from app.coordination.privacy import PrivacySql
from app.coordination.state import Identity
from app.coordination.state import LimiterView
from app.coordination.state import Slot
from app.marketo.token import Token
from app.ratelimit import Budget
from app.ratelimit import Decision
from app.ratelimit import check
from app.ratelimit import quota_day

# Shared counters live in mkto_meta under this prefix.
COUNTER_PREFIX = "counter:"
# Windowed budgets (`spend`) live in mkto_meta under this prefix, one key per window.
BUDGET_PREFIX = "budget:"
# Cached Marketo answers (describe) live in mkto_meta under this prefix.
CACHE_PREFIX = "cache:"


class Cursor(Protocol):
    """What the methods read back from a statement."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection whose statements take `?` placeholders (sqlite3's own, or a psycopg adapter)."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> object: ...


class SqlSharedState(PrivacySql, ABC):
    """SharedState on a SQL database; a subclass supplies connections and the lookups by list."""

    #: Appended to the limiter row's SELECT in every limiter transaction: how a backend
    #: serialises budget decisions when `_tx` alone does not (SQLite's `BEGIN IMMEDIATE` does).
    _LOCK_ROW: ClassVar[str] = ""

    @abstractmethod
    def _tx(self) -> AbstractContextManager[Connection]:
        """Lend a connection for one transaction, committed on success, rolled back on error."""

    @abstractmethod
    def _read(self) -> AbstractContextManager[Connection]:
        """Lend a connection for a read that needs no write lock."""

    # Limiter -------------------------------------------------------------------------------
    def _today(self, conn: Connection, budget: Budget, now: float) -> tuple[int, Any, Any]:
        """Lock the limiter row; return (today's count, paused_until, pause_reason)."""
        paused_until, reason, day, count = conn.execute(
            "SELECT paused_until, pause_reason, day, day_count FROM mkto_limiter WHERE id = 1"
            + self._LOCK_ROW
        ).fetchone()
        today = quota_day(now, budget.reset_tz)
        if day != today:
            conn.execute("UPDATE mkto_limiter SET day = ?, day_count = 0 WHERE id = 1", (today,))
            count = 0
        return count, paused_until, reason

    def acquire_slot(
        self, budget: Budget, now: float, slot_ttl: float
    ) -> tuple[Decision, Slot | None]:
        """Atomically check the budget and, when a call fits, record it and return its slot."""
        with self._tx() as conn:
            count, paused_until, reason = self._today(conn, budget, now)
            conn.execute("DELETE FROM mkto_calls WHERE started_at <= ?", (now - budget.window_s,))
            conn.execute("DELETE FROM mkto_slots WHERE expires_at <= ?", (now,))
            times = [row[0] for row in conn.execute("SELECT started_at FROM mkto_calls")]
            in_flight = conn.execute("SELECT count(*) FROM mkto_slots").fetchone()[0]
            decision = check(budget, times, in_flight, count, now, paused_until, reason or "paused")
            if not decision.ok:
                return decision, None
            conn.execute("INSERT INTO mkto_calls (started_at) VALUES (?)", (now,))
            slot_id = conn.execute(
                "INSERT INTO mkto_slots (started_at, expires_at) VALUES (?, ?) RETURNING id",
                (now, now + slot_ttl),
            ).fetchone()[0]
            conn.execute("UPDATE mkto_limiter SET day_count = day_count + 1 WHERE id = 1")
        return decision, Slot(int(slot_id), now)

    def release_slot(self, slot: Slot, counted: bool, now: float) -> None:
        """End a call; `counted=False` gives back its quota unit (Marketo did not count it)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM mkto_slots WHERE id = ?", (slot.id,))
            if not counted:
                # CASE rather than max()/greatest(): the one spelling both dialects accept.
                conn.execute(
                    "UPDATE mkto_limiter SET day_count ="
                    " CASE WHEN day_count > 0 THEN day_count - 1 ELSE 0 END WHERE id = 1"
                )

    def renew_slots(self, ids: Sequence[int], until: float) -> None:
        """Extend the leases of these open slots (calls still running) to `until`."""
        if not ids:
            return
        marks = ", ".join("?" * len(ids))
        with self._tx() as conn:
            conn.execute(
                f"UPDATE mkto_slots SET expires_at = ? WHERE id IN ({marks})",
                (until, *(int(i) for i in ids)),
            )

    def pause(self, until: float, reason: str) -> None:
        """Hold every call until `until`; a longer pause already in force wins."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE mkto_limiter SET paused_until = ?, pause_reason = ?"
                " WHERE id = 1 AND (paused_until IS NULL OR paused_until < ?)",
                (until, reason, until),
            )

    def limiter(self, budget: Budget, now: float) -> LimiterView:
        """Return the limiter's current figures."""
        with self._tx() as conn:
            count, paused_until, reason = self._today(conn, budget, now)
            window = conn.execute(
                "SELECT count(*) FROM mkto_calls WHERE started_at > ?", (now - budget.window_s,)
            ).fetchone()[0]
            in_flight = conn.execute(
                "SELECT count(*) FROM mkto_slots WHERE expires_at > ?", (now,)
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
                "UPDATE mkto_limiter SET day = ?, day_count = ? WHERE id = 1",
                (quota_day(now, budget.reset_tz), int(count)),
            )

    # Token ---------------------------------------------------------------------------------
    def get_token(self, key: str) -> Token | None:
        """Return the cached token for a client id, if any."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT value, expires_at, fetched_at FROM mkto_tokens WHERE key = ?", (key,)
            ).fetchone()
        return Token(*row) if row else None

    def put_token(self, key: str, token: Token) -> None:
        """Cache a token for every process; a reused token keeps its first fetch time."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO mkto_tokens (key, value, expires_at, fetched_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at,"
                " fetched_at = CASE WHEN mkto_tokens.value = excluded.value"
                " THEN mkto_tokens.fetched_at ELSE excluded.fetched_at END,"
                " value = excluded.value",
                (key, token.value, token.expires_at, token.fetched_at),
            )

    def drop_token(self, key: str, value: str) -> None:
        """Forget the token if it is still `value` (another process may have renewed it)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM mkto_tokens WHERE key = ? AND value = ?", (key, value))

    # Leads ---------------------------------------------------------------------------------
    # Writes go in sorted order, so two nodes caching overlapping rows lock them in one order.
    def put_leads(self, scope: str, leads: Mapping[Identity, int], now: float) -> None:
        """Cache identity → lead id."""
        rows = sorted((scope, k, v, int(lead), now) for (k, v), lead in leads.items())
        if rows:
            with self._tx() as conn:
                conn.executemany(
                    "INSERT INTO mkto_leads (scope, kind, value, lead_id, updated_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope, kind, value) DO UPDATE SET"
                    " lead_id = excluded.lead_id, updated_at = excluded.updated_at",
                    rows,
                )

    def evict_lead(self, scope: str, lead_id: int) -> int:
        """Forget every identity, traits hash and cookie of a lead; return identities removed."""
        args = (scope, lead_id)
        with self._tx() as conn:
            removed = conn.execute(
                "DELETE FROM mkto_leads WHERE scope = ? AND lead_id = ?", args
            ).rowcount
            conn.execute("DELETE FROM mkto_trait_hashes WHERE scope = ? AND lead_id = ?", args)
            conn.execute("DELETE FROM mkto_cookies WHERE scope = ? AND lead_id = ?", args)
        return removed

    def forget_scope(self, scope: str) -> int:
        """Forget every cached lead, traits hash and cookie of one instance; return identities."""
        with self._tx() as conn:
            removed = conn.execute("DELETE FROM mkto_leads WHERE scope = ?", (scope,)).rowcount
            conn.execute("DELETE FROM mkto_trait_hashes WHERE scope = ?", (scope,))
            conn.execute("DELETE FROM mkto_cookies WHERE scope = ?", (scope,))
        return removed

    def put_trait_hashes(self, scope: str, hashes: Mapping[int, str]) -> None:
        """Remember the hash of the fields just sent per lead."""
        rows = sorted((scope, int(lead), h) for lead, h in hashes.items())
        if rows:
            with self._tx() as conn:
                conn.executemany(
                    "INSERT INTO mkto_trait_hashes (scope, lead_id, hash) VALUES (?, ?, ?)"
                    " ON CONFLICT (scope, lead_id) DO UPDATE SET hash = excluded.hash",
                    rows,
                )

    def mark_associated(self, scope: str, pairs: Iterable[tuple[str, int]]) -> None:
        """Remember (cookie, lead id) pairs as associated."""
        rows = sorted({(scope, c, int(lead)) for c, lead in pairs})
        if rows:
            with self._tx() as conn:
                conn.executemany(
                    "INSERT INTO mkto_cookies (scope, cookie, lead_id) VALUES (?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    rows,
                )

    # Coordination and reporting ------------------------------------------------------------
    def try_lock(self, name: str, owner: str, ttl: float, now: float) -> bool:
        """Take a named lease if free, expired or already ours (one statement, so atomic)."""
        with self._tx() as conn:
            row = conn.execute(
                "INSERT INTO mkto_locks (name, owner, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
                " expires_at = excluded.expires_at"
                " WHERE mkto_locks.owner = excluded.owner OR mkto_locks.expires_at <= ?"
                " RETURNING name",
                (name, owner, now + ttl, now),
            ).fetchone()
        return row is not None

    def unlock(self, name: str, owner: str) -> None:
        """Give a lease back if `owner` still holds it."""
        with self._tx() as conn:
            conn.execute("DELETE FROM mkto_locks WHERE name = ? AND owner = ?", (name, owner))

    def set_last_error(self, error: Mapping[str, Any] | None) -> None:
        """Record the last Marketo error for `flask status` (None clears it)."""
        with self._tx() as conn:
            if error is None:
                conn.execute("DELETE FROM mkto_meta WHERE key = 'last_error'")
            else:
                conn.execute(
                    "INSERT INTO mkto_meta (key, value) VALUES ('last_error', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (json.dumps(dict(error), default=str),),
                )

    def count(self, name: str, n: int = 1) -> None:
        """Add `n` to a named counter every process shares (`flask status` shows them)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO mkto_meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET"
                " value = CAST(CAST(mkto_meta.value AS BIGINT) + ? AS TEXT)",
                (COUNTER_PREFIX + name, str(int(n)), int(n)),
            )

    def spend(self, name: str, n: int, limit: int, window_s: float, now: float) -> int:
        """Take up to `n` units of a budget of `limit` per fixed window of `window_s`.

        One atomic increment of the window's counter (the total may pass the limit; only what
        fitted is granted); earlier windows' counters are deleted in the same transaction.
        """
        if n <= 0 or limit <= 0:
            return 0
        window = int(now // window_s)
        prefix = f"{BUDGET_PREFIX}{name}:"
        with self._tx() as conn:
            (total,) = conn.execute(
                "INSERT INTO mkto_meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET"
                " value = CAST(CAST(mkto_meta.value AS BIGINT) + ? AS TEXT) RETURNING value",
                (f"{prefix}{window}", str(int(n)), int(n)),
            ).fetchone()
            conn.execute(
                "DELETE FROM mkto_meta WHERE key LIKE ? AND key != ?",
                (prefix + "%", f"{prefix}{window}"),
            )
        used_before = int(total) - n
        return max(0, min(n, limit - used_before))

    def counters(self) -> dict[str, int]:
        """Return every shared counter by name."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT key, value FROM mkto_meta WHERE key LIKE ?", (COUNTER_PREFIX + "%",)
            ).fetchall()
        return {str(k)[len(COUNTER_PREFIX) :]: int(v) for k, v in rows}

    def put_cached(self, name: str, value: Any, now: float) -> None:
        """Keep a JSON value (a describe answer) under `name`, stamped with `now`."""
        document = json.dumps({"at": now, "value": value}, default=str)
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO mkto_meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (CACHE_PREFIX + name, document),
            )

    def get_cached(self, name: str, max_age: float, now: float) -> Any | None:
        """Return the value kept under `name` if it is younger than `max_age` seconds."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT value FROM mkto_meta WHERE key = ?", (CACHE_PREFIX + name,)
            ).fetchone()
        if row is None:
            return None
        document = json.loads(row[0])
        return document["value"] if now - float(document["at"]) < max_age else None

    def last_error(self) -> dict[str, Any] | None:
        """Return the last Marketo error recorded."""
        with self._read() as conn:
            row = conn.execute("SELECT value FROM mkto_meta WHERE key = 'last_error'").fetchone()
        return json.loads(row[0]) if row else None
