"""SharedState on PostgreSQL, so N gateway nodes keep one Marketo budget, token and lead cache.

Same tables as the SQLite backend; the SQL both share is in `shared_sql.py`. Every limiter
method takes the single `mkto_limiter` row with `SELECT ... FOR UPDATE` first: that row lock
serialises budget decisions across every node, so two nodes can never both see the last free
slot and both take it. Lookups by list pass arrays, so each is one statement however long.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import AbstractContextManager
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from app.coordination.holder_lock import AdvisoryLocks
from app.coordination.sql import SqlSharedState
from app.coordination.state import Identity
from app.errors import ServiceUnavailable
from app.outbox import migrations
from app.outbox.pg_pool import lend
from app.outbox.pg_pool import open_pool
from app.outbox.pg_pool import split_url


@functools.cache
def _format_style(sql: str) -> str:
    """Rewrite `?` placeholders as psycopg's `%s`, once per statement text."""
    return sql.replace("%", "%%").replace("?", "%s")


class QmarkConnection:
    """A psycopg connection that takes the `?` placeholders the shared SQL is written with."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] | None = None, /) -> psycopg.Cursor:
        """Run one statement; without parameters the text goes as is (no placeholders)."""
        if params is None:
            return self._conn.execute(sql)
        return self._conn.execute(_format_style(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> None:
        """Run one statement per row of parameters."""
        with self._conn.cursor() as cur:
            cur.executemany(_format_style(sql), rows)


class PostgresSharedState(SqlSharedState):
    """SharedState in the PostgreSQL database of the outbox; one transaction per method."""

    _LOCK_ROW = " FOR UPDATE"
    _CONTAINS = "strpos({col}, ?) > 0"

    def __init__(self, url: str) -> None:
        self._url = url  # for scrubbing its password out of driver errors
        try:
            self._pool = open_pool(url, "shared")
        except PoolTimeout as exc:
            raise ServiceUnavailable(
                "cannot connect to PostgreSQL for the shared limiter", code="store_unavailable"
            ) from exc
        with self._pooled() as conn:
            migrations.upgrade(conn, migrations.POSTGRES)
        self._locks = AdvisoryLocks(self._lock_session)

    def _lock_session(self) -> psycopg.Connection:
        """Open the dedicated session advisory locks live on (they end with it)."""
        dsn, _ = split_url(self._url)
        return psycopg.connect(dsn, autocommit=True, connect_timeout=5)

    def exclusive(self, name: str) -> AbstractContextManager[bool]:
        """Try a named session advisory lock (freed when its holder's connection ends)."""
        return self._locks.held(name)

    def _pooled(self) -> AbstractContextManager[psycopg.Connection]:
        """Lend a pooled connection for one transaction, committed on success."""
        return lend(self._pool, self._url, "PostgreSQL shared state")

    @contextmanager
    def _tx(self) -> Iterator[QmarkConnection]:
        """Lend a pooled connection, taking `?` placeholders, for one transaction."""
        with self._pooled() as conn:
            yield QmarkConnection(conn)

    # A read is a transaction of its own too: the pool lends no connection outside one.
    _read = _tx

    def close(self) -> None:
        """Close the pool's connections and the lock session."""
        self._locks.close()
        self._pool.close()

    # Lookups by list: arrays ---------------------------------------------------------------
    def get_leads(self, scope: str, identities: Iterable[Identity]) -> dict[Identity, int]:
        """Return the cached lead id of each known identity."""
        wanted = list(dict.fromkeys(identities))
        if not wanted:
            return {}
        with self._read() as conn:
            rows = conn.execute(
                "SELECT kind, value, lead_id FROM mkto_leads WHERE scope = ?"
                " AND (kind, value) IN (SELECT * FROM unnest(?::text[], ?::text[]))",
                (scope, [k for k, _ in wanted], [v for _, v in wanted]),
            ).fetchall()
        return {(kind, value): int(lead) for kind, value, lead in rows}

    def repoint_leads(self, scope: str, losers: Iterable[int], winner: int) -> int:
        """Point identities of merged-away leads at the winner; return how many moved."""
        losers = [int(x) for x in losers]
        with self._tx() as conn:
            moved = conn.execute(
                "UPDATE mkto_leads SET lead_id = ? WHERE scope = ? AND lead_id = ANY(?)",
                (winner, scope, losers),
            ).rowcount
            conn.execute(
                "DELETE FROM mkto_trait_hashes WHERE scope = ? AND lead_id = ANY(?)",
                (scope, [*losers, winner]),
            )
        return moved

    def get_trait_hashes(self, scope: str, lead_ids: Iterable[int]) -> dict[int, str]:
        """Return the hash of the fields last sent for each lead."""
        ids = sorted({int(x) for x in lead_ids})
        if not ids:
            return {}
        with self._read() as conn:
            rows = conn.execute(
                "SELECT lead_id, hash FROM mkto_trait_hashes WHERE scope = ? AND lead_id = ANY(?)",
                (scope, ids),
            ).fetchall()
        return {int(lead): str(h) for lead, h in rows}

    def associated(self, scope: str, pairs: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
        """Return which (cookie, lead id) pairs were already associated."""
        wanted = sorted({(c, int(lead)) for c, lead in pairs})
        if not wanted:
            return set()
        with self._read() as conn:
            rows = conn.execute(
                "SELECT cookie, lead_id FROM mkto_cookies WHERE scope = ?"
                " AND (cookie, lead_id) IN (SELECT * FROM unnest(?::text[], ?::bigint[]))",
                (scope, [c for c, _ in wanted], [lead for _, lead in wanted]),
            ).fetchall()
        return {(c, int(lead)) for c, lead in rows}
