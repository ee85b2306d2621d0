"""SharedState on SQLite, in the outbox's database file, so every process keeps one Marketo budget.

Each method is one `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so two
processes can never both see a free slot and both take it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

from app.outbox import migrations
from app.outbox.shared import Identity
from app.outbox.shared import LimiterView
from app.outbox.shared import Slot
from app.outbox.shared import Token
from app.ratelimit import Budget
from app.ratelimit import Decision
from app.ratelimit import check
from app.ratelimit import quota_day

# SQLite caps bound parameters per statement (999 on older builds); chunk IN lists below that.
MAX_PARAMS = 500
# How long a connection waits for another process's write lock before failing.
BUSY_TIMEOUT_MS = 30_000


def sqlite_path(store_url: str) -> str:
    """Return the file path of a `sqlite:///path` URL (four slashes for an absolute path)."""
    if not store_url.startswith("sqlite:///"):
        raise ValueError(f"not a SQLite URL: {store_url!r}")
    return store_url[len("sqlite:///") :]


def _chunks(items: list[Any], size: int = MAX_PARAMS) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqliteSharedState:
    """SharedState in a SQLite file; one connection per thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        migrations.upgrade(self._conn(), migrations.SQLITE)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            # Limiter state can be rebuilt; NORMAL keeps its commits cheap under WAL.
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this object opened."""
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    # Limiter -------------------------------------------------------------------------------
    def _day_count(self, conn: sqlite3.Connection, budget: Budget, now: float) -> tuple[int, Any]:
        paused_until, reason, day, count = conn.execute(
            "SELECT paused_until, pause_reason, day, day_count FROM mkto_limiter WHERE id = 1"
        ).fetchone()
        today = quota_day(now, budget.reset_tz)
        if day != today:
            conn.execute("UPDATE mkto_limiter SET day = ?, day_count = 0 WHERE id = 1", (today,))
            count = 0
        return count, (paused_until, reason)

    def acquire_slot(
        self, budget: Budget, now: float, slot_ttl: float
    ) -> tuple[Decision, Slot | None]:
        """Atomically check the budget and, when a call fits, record it and return its slot."""
        with self._tx() as conn:
            count, (paused_until, reason) = self._day_count(conn, budget, now)
            conn.execute("DELETE FROM mkto_calls WHERE started_at <= ?", (now - budget.window_s,))
            conn.execute("DELETE FROM mkto_slots WHERE expires_at <= ?", (now,))
            times = [row[0] for row in conn.execute("SELECT started_at FROM mkto_calls")]
            in_flight = conn.execute("SELECT COUNT(*) FROM mkto_slots").fetchone()[0]
            decision = check(budget, times, in_flight, count, now, paused_until, reason or "paused")
            if not decision.ok:
                return decision, None
            conn.execute("INSERT INTO mkto_calls (started_at) VALUES (?)", (now,))
            cur = conn.execute(
                "INSERT INTO mkto_slots (started_at, expires_at) VALUES (?, ?)",
                (now, now + slot_ttl),
            )
            conn.execute("UPDATE mkto_limiter SET day_count = day_count + 1 WHERE id = 1")
            return decision, Slot(int(cur.lastrowid or 0), now)

    def release_slot(self, slot: Slot, counted: bool, now: float) -> None:
        """End a call; `counted=False` gives back its quota unit (Marketo did not count it)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM mkto_slots WHERE id = ?", (slot.id,))
            if not counted:
                conn.execute(
                    "UPDATE mkto_limiter SET day_count = MAX(day_count - 1, 0) WHERE id = 1"
                )

    def pause(self, until: float, reason: str) -> None:
        """Hold every call until `until`; a longer pause already in force wins."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE mkto_limiter SET paused_until = ?, pause_reason = ? "
                "WHERE id = 1 AND (paused_until IS NULL OR paused_until < ?)",
                (until, reason, until),
            )

    def limiter(self, budget: Budget, now: float) -> LimiterView:
        """Return the limiter's current figures."""
        with self._tx() as conn:
            count, (paused_until, reason) = self._day_count(conn, budget, now)
            window = conn.execute(
                "SELECT COUNT(*) FROM mkto_calls WHERE started_at > ?", (now - budget.window_s,)
            ).fetchone()[0]
            in_flight = conn.execute(
                "SELECT COUNT(*) FROM mkto_slots WHERE expires_at > ?", (now,)
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
        row = (
            self._conn()
            .execute("SELECT value, expires_at, fetched_at FROM mkto_tokens WHERE key = ?", (key,))
            .fetchone()
        )
        return Token(*row) if row else None

    def put_token(self, key: str, token: Token) -> None:
        """Cache a token; a reused token keeps its first fetch time."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO mkto_tokens (key, value, expires_at, fetched_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at, "
                "fetched_at = CASE WHEN mkto_tokens.value = excluded.value "
                "THEN mkto_tokens.fetched_at ELSE excluded.fetched_at END, "
                "value = excluded.value",
                (key, token.value, token.expires_at, token.fetched_at),
            )

    def drop_token(self, key: str, value: str) -> None:
        """Forget the token if it is still `value`."""
        with self._tx() as conn:
            conn.execute("DELETE FROM mkto_tokens WHERE key = ? AND value = ?", (key, value))

    # Leads ---------------------------------------------------------------------------------
    def get_leads(self, scope: str, identities: Iterable[Identity]) -> dict[Identity, int]:
        """Return the cached lead id of each known identity."""
        wanted = list(dict.fromkeys(identities))
        found: dict[Identity, int] = {}
        conn = self._conn()
        for kind in {k for k, _ in wanted}:
            values = [v for k, v in wanted if k == kind]
            for chunk in _chunks(values):
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT value, lead_id FROM mkto_leads "
                    f"WHERE scope = ? AND kind = ? AND value IN ({marks})",
                    (scope, kind, *chunk),
                )
                found.update({(kind, value): int(lead) for value, lead in rows})
        return found

    def put_leads(self, scope: str, leads: Mapping[Identity, int], now: float) -> None:
        """Cache identity → lead id."""
        if not leads:
            return
        with self._tx() as conn:
            conn.executemany(
                "INSERT INTO mkto_leads (scope, kind, value, lead_id, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope, kind, value) DO UPDATE SET "
                "lead_id = excluded.lead_id, updated_at = excluded.updated_at",
                [(scope, k, v, int(lead), now) for (k, v), lead in leads.items()],
            )

    def evict_lead(self, scope: str, lead_id: int) -> int:
        """Forget every identity, traits hash and cookie of a lead; return identities removed."""
        with self._tx() as conn:
            removed = conn.execute(
                "DELETE FROM mkto_leads WHERE scope = ? AND lead_id = ?", (scope, lead_id)
            ).rowcount
            conn.execute(
                "DELETE FROM mkto_trait_hashes WHERE scope = ? AND lead_id = ?", (scope, lead_id)
            )
            conn.execute(
                "DELETE FROM mkto_cookies WHERE scope = ? AND lead_id = ?", (scope, lead_id)
            )
        return removed

    def repoint_leads(self, scope: str, losers: Iterable[int], winner: int) -> int:
        """Point identities of merged-away leads at the winner; return how many moved."""
        moved = 0
        with self._tx() as conn:
            for loser in losers:
                moved += conn.execute(
                    "UPDATE mkto_leads SET lead_id = ? WHERE scope = ? AND lead_id = ?",
                    (winner, scope, loser),
                ).rowcount
                conn.execute(
                    "DELETE FROM mkto_trait_hashes WHERE scope = ? AND lead_id IN (?, ?)",
                    (scope, loser, winner),
                )
        return moved

    def get_trait_hashes(self, scope: str, lead_ids: Iterable[int]) -> dict[int, str]:
        """Return the hash of the fields last sent for each lead."""
        found: dict[int, str] = {}
        for chunk in _chunks(list(set(lead_ids))):
            marks = ",".join("?" * len(chunk))
            rows = self._conn().execute(
                f"SELECT lead_id, hash FROM mkto_trait_hashes "
                f"WHERE scope = ? AND lead_id IN ({marks})",
                (scope, *chunk),
            )
            found.update({int(lead): str(h) for lead, h in rows})
        return found

    def put_trait_hashes(self, scope: str, hashes: Mapping[int, str]) -> None:
        """Remember the hash of the fields just sent per lead."""
        if not hashes:
            return
        with self._tx() as conn:
            conn.executemany(
                "INSERT INTO mkto_trait_hashes (scope, lead_id, hash) VALUES (?, ?, ?) "
                "ON CONFLICT (scope, lead_id) DO UPDATE SET hash = excluded.hash",
                [(scope, int(lead), h) for lead, h in hashes.items()],
            )

    def associated(self, scope: str, pairs: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
        """Return which (cookie, lead id) pairs were already associated."""
        found: set[tuple[str, int]] = set()
        conn = self._conn()
        for cookie, lead in set(pairs):
            row = conn.execute(
                "SELECT 1 FROM mkto_cookies WHERE scope = ? AND cookie = ? AND lead_id = ?",
                (scope, cookie, lead),
            ).fetchone()
            if row:
                found.add((cookie, lead))
        return found

    def mark_associated(self, scope: str, pairs: Iterable[tuple[str, int]]) -> None:
        """Remember (cookie, lead id) pairs as associated."""
        rows = [(scope, cookie, int(lead)) for cookie, lead in set(pairs)]
        if rows:
            with self._tx() as conn:
                conn.executemany(
                    "INSERT OR IGNORE INTO mkto_cookies (scope, cookie, lead_id) VALUES (?, ?, ?)",
                    rows,
                )

    # Coordination and reporting ------------------------------------------------------------
    def try_lock(self, name: str, owner: str, ttl: float, now: float) -> bool:
        """Take a named lease if free, expired or already ours."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT owner, expires_at FROM mkto_locks WHERE name = ?", (name,)
            ).fetchone()
            if row and row[0] != owner and row[1] > now:
                return False
            conn.execute(
                "INSERT INTO mkto_locks (name, owner, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "expires_at = excluded.expires_at",
                (name, owner, now + ttl),
            )
            return True

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
                    "INSERT INTO mkto_meta (key, value) VALUES ('last_error', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (json.dumps(dict(error), default=str),),
                )

    def last_error(self) -> dict[str, Any] | None:
        """Return the last Marketo error recorded."""
        row = (
            self._conn().execute("SELECT value FROM mkto_meta WHERE key = 'last_error'").fetchone()
        )
        return json.loads(row[0]) if row else None
