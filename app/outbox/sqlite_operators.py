"""What operators and the console ask of the SQLite outbox: look up, list, replay, purge, compact.

A mixin of `SqliteStore`, which supplies the connections (`_read`, `_write`) and `_finish`; it
keeps the dispatcher's hot path (sqlite.py) apart from the rarer operator reads and writes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from app.outbox.recent import activity_series
from app.outbox.recent import recent_query
from app.outbox.rows import CALL_COLUMNS
from app.outbox.rows import RECORD_CALL
from app.outbox.rows import attempt_rows
from app.outbox.rows import call_row
from app.outbox.rows import calls_by_batch
from app.outbox.rows import row_to_stored
from app.outbox.sqlite_sql import CHUNK_ROWS
from app.outbox.sqlite_sql import COLUMNS
from app.outbox.sqlite_sql import COMPACT_BLANK
from app.outbox.sqlite_sql import COMPACT_CHUNK
from app.outbox.sqlite_sql import COMPACT_DELETE
from app.outbox.sqlite_sql import NOTE_ATTEMPT
from app.outbox.sqlite_sql import OLDEST_CALL
from app.outbox.sqlite_sql import PRUNE_CALLS
from app.outbox.sqlite_sql import PRUNE_DELETE
from app.outbox.sqlite_sql import PRUNE_FIRST
from app.outbox.sqlite_sql import PRUNE_NEXT
from app.outbox.sqlite_sql import PURGE_BLANK
from app.outbox.sqlite_sql import PURGE_DEAD
from app.outbox.sqlite_sql import marks
from app.outbox.sqlite_sql import purge_dead_sql
from app.outbox.store import Attempt
from app.outbox.store import Call
from app.outbox.store import StoredEvent


class SqliteOperatorMixin:
    """Operator and console methods of the SQLite store."""

    _read: Any
    _write: Any
    _finish: Any

    def get(self, event_id: int) -> StoredEvent | None:
        """Return one event by id."""
        with self._read() as conn:
            row = conn.execute(f"SELECT {COLUMNS} FROM events WHERE id = ?", (event_id,)).fetchone()
        return row_to_stored(row) if row else None

    def find(self, message_id: str) -> list[StoredEvent]:
        """Return the stored events with this messageId (tests and operators)."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM events WHERE message_id = ? ORDER BY id", (message_id,)
            ).fetchall()
        return [row_to_stored(r) for r in rows]

    def dead_letters(
        self, reason: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[StoredEvent]:
        """List dead-lettered events, newest first."""
        where, args = (
            ("state = 'dead'", ())
            if reason is None
            else ("state = 'dead' AND reason = ?", (reason,))
        )
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM events WHERE {where} ORDER BY updated_at DESC, id DESC"
                " LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
        return [row_to_stored(r) for r in rows]

    def replay(self, ids: Sequence[int] | None, reason: str | None, now: float) -> int:
        """Move dead events (these ids, or this reason, or all) to pending with attempts reset."""
        sql = (
            "UPDATE events SET state = 'pending', reason = NULL, attempts = 0,"
            " next_attempt_at = ?, updated_at = ? WHERE state = 'dead'"
        )
        if ids is not None:
            return self._finish(ids, sql + " AND id IN ({marks})", (now, now), None)
        with self._write() as conn:
            if reason is None:
                return conn.execute(sql, (now, now)).rowcount
            return conn.execute(sql + " AND reason = ?", (now, now, reason)).rowcount

    def purge_dead(self, before: float) -> int:
        """Delete dead events last updated before `before`; return how many."""
        with self._write() as conn:
            removed = conn.execute(PURGE_DEAD, (before,)).rowcount
            return removed + conn.execute(PURGE_BLANK, (before,)).rowcount

    def compact(self, before: float) -> int:
        """Delete delivered and dropped rows older than `before`; totals and dedupe survive.

        Walks ids in order, a chunk per write transaction (intake commits in between), and stops
        at the first chunk that ends with an event received after `before`: rows past it were
        updated later still. The newest row becomes a placeholder rather than going (an id must
        never name two events; see sqlite_sql.py).
        """
        self._prune_calls(before)
        removed, after = 0, 0
        while True:
            with self._write() as conn:
                last, last_received = conn.execute(COMPACT_CHUNK, (after, CHUNK_ROWS)).fetchone()
                if last is None:
                    return removed
                removed += conn.execute(COMPACT_DELETE, (after, last, before)).rowcount
                removed += conn.execute(COMPACT_BLANK, (after, last, before)).rowcount
            if last_received >= before:
                return removed
            after = last

    def note(self, attempts: Mapping[int, Attempt]) -> None:
        """Append each event's attempt to its history and record the lead it landed on."""
        if not attempts:
            return
        rows = attempt_rows(attempts)
        with self._write() as conn:
            conn.executemany(NOTE_ATTEMPT, rows)

    def record_calls(self, batch: str, calls: Sequence[Call]) -> None:
        """Keep the Marketo calls made for one batch."""
        if not calls:
            return
        with self._write() as conn:
            conn.executemany(RECORD_CALL, [call_row(batch, c) for c in calls])

    def calls(self, batches: Sequence[str]) -> dict[str, list[Call]]:
        """Return the recorded calls of these batches, oldest first."""
        if not batches:
            return {}
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {CALL_COLUMNS} FROM delivery_calls WHERE batch IN"
                f" ({marks(len(batches))}) ORDER BY id",
                tuple(batches),
            ).fetchall()
        return calls_by_batch(rows)

    def _prune_calls(self, before: float) -> int:
        """Delete the calls recorded before `before`, oldest first, a chunk per transaction."""
        removed = 0
        while True:
            with self._write() as conn:
                oldest = conn.execute(OLDEST_CALL).fetchone()
                if oldest is None or oldest[0] >= before:
                    return removed
                removed += conn.execute(PRUNE_CALLS, (before, CHUNK_ROWS)).rowcount

    def prune_dedupe(self, now: float) -> int:
        """Forget messageIds older than the dedupe window; return how many.

        Finds them chunk by chunk in key order with reads (no index on the age: the intake would
        write it on every event), and deletes each chunk in a short write transaction.
        """
        cutoff = now - self.dedupe_window_s
        removed, after = 0, None
        while True:
            with self._read() as conn:
                if after is None:
                    rows = conn.execute(PRUNE_FIRST, (cutoff, CHUNK_ROWS)).fetchall()
                else:
                    rows = conn.execute(PRUNE_NEXT, (after, cutoff, CHUNK_ROWS)).fetchall()
            if not rows:
                return removed
            keys = json.dumps([r[0] for r in rows])
            with self._write() as conn:
                removed += conn.execute(PRUNE_DELETE, (keys, cutoff)).rowcount
            after = rows[-1][0]

    # operator console (app/outbox/recent.py)

    def recent(
        self, filters: Mapping[str, str | None], limit: int = 50, keys: Sequence[str] = ()
    ) -> list[StoredEvent]:
        """Return the newest events matching the filters (userId, anonymousId, email, messageId
        within the dedupe window of these source `keys`, state)."""
        sql, args = recent_query(COLUMNS, filters, limit, "?", keys)
        with self._read() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [row_to_stored(r) for r in rows]

    def activity(self, since: float) -> dict[str, dict[int, int]]:
        """Return per-minute received / delivered / dropped / dead counts since `since`."""
        with self._read() as conn:
            return activity_series(
                lambda sql, args: conn.execute(sql, args).fetchall(),
                since,
                "?",
                "CAST({col} / 60 AS INTEGER)",
            )

    def purge(self, ids: Sequence[int] | None, reason: str | None) -> int:
        """Delete dead events (these ids, or this reason, or all when both are None)."""
        if ids is not None:
            condition, args = f"id IN ({marks(len(ids))})", tuple(ids)
        elif reason is not None:
            condition, args = "reason = ?", (reason,)
        else:
            condition, args = "1 = 1", ()
        if ids is not None and not ids:
            return 0
        delete, blank = purge_dead_sql(condition)
        with self._write() as conn:
            return conn.execute(delete, args).rowcount + conn.execute(blank, args).rowcount
