"""The outbox on PostgreSQL for several gateways: SKIP LOCKED leases, group-committed adds.

Same tables and semantics as the SQLite store (`sqlite.py`): a `dedupe` table for messageIds,
`outcome_totals` bumped on every final outcome so counts survive compaction. Claims lock due rows
with `FOR UPDATE SKIP LOCKED`, so N nodes claim disjoint batches without waiting on each other,
and a node that dies leaves leases that simply expire.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from app.errors import ServiceUnavailable
from app.outbox import migrations
from app.outbox.leader_commit import GroupCommitter
from app.outbox.pg_pool import lend
from app.outbox.pg_pool import open_pool
from app.outbox.recent import activity_series
from app.outbox.recent import recent_query
from app.outbox.rows import CALL_COLUMNS
from app.outbox.rows import RECORD_CALL
from app.outbox.rows import attempt_rows
from app.outbox.rows import call_row
from app.outbox.rows import calls_by_batch
from app.outbox.rows import row_to_stored
from app.outbox.store import VISITOR_FREE
from app.outbox.store import Attempt
from app.outbox.store import Call
from app.outbox.store import Routed
from app.outbox.store import State
from app.outbox.store import StoredEvent
from app.outbox.store import claim_scan
from app.outbox.store import dedupe_key
from app.outbox.store import email_in
from app.outbox.store import read_counts
from app.settings.redact import scrub

logger = logging.getLogger(__name__)

COLUMNS = (
    "id, message_id, type, source_key_id, source_kind, received_at, timestamp, user_id,"
    " anonymous_id, payload, state, reason, detail, attempts, next_attempt_at, updated_at,"
    " lead_id, history"
)

# In an UPDATE ... FROM, a bare `id` would be ambiguous.
_RETURNING = COLUMNS.replace("id,", "events.id,", 1)

# Each event's id is drawn from the identity's sequence as its dedupe entry is written, so the
# entry names its event (the console's messageId filter); COPY writes the given id into the
# identity column.
_COPY_EVENTS = (
    "COPY events (id, message_id, type, source_key_id, source_kind, received_at, timestamp,"
    " user_id, anonymous_id, payload, state, reason, next_attempt_at, updated_at, email)"
    " FROM STDIN"
)

# Insert each new messageId, or take over one older than the window; RETURNING names the fresh
# with the ids their events get.
_CLAIM_MESSAGE_IDS = (
    "INSERT INTO dedupe (message_id, received_at, event_id)"
    " SELECT m, r, nextval(pg_get_serial_sequence('events', 'id'))"
    " FROM unnest(%s::text[], %s::float8[]) AS u (m, r)"
    " ON CONFLICT (message_id) DO UPDATE SET received_at = excluded.received_at,"
    " event_id = excluded.event_id"
    " WHERE dedupe.received_at < excluded.received_at - %s"
    " RETURNING message_id, event_id"
)

# One attempt appended to an event's history (a JSON array), the oldest dropped past the cap.
_NOTE_ATTEMPT = (
    "UPDATE events SET lead_id = coalesce(%s, lead_id), history = (CASE"
    " WHEN jsonb_array_length(coalesce(history, '[]')::jsonb) >= %s"
    " THEN (coalesce(history, '[]')::jsonb - 0) ELSE coalesce(history, '[]')::jsonb END"
    " || jsonb_build_array(%s::jsonb))::text WHERE id = %s"
)

_BUMP_TOTAL = (
    "INSERT INTO outcome_totals (state, reason, n) VALUES (%s, %s, %s)"
    " ON CONFLICT (state, reason) DO UPDATE SET n = outcome_totals.n + excluded.n"
)

_OPEN_STATES = "('pending', 'held', 'in_flight')"

# Key of the advisory lock claims take in turn ("gw-clm" in ASCII).
CLAIM_LOCK_KEY = 0x67772D636C6D

_VISITOR_FREE = VISITOR_FREE.replace("?", "%s")


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; replace it rather than fail a whole group commit."""
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value


_stored = row_to_stored


class PostgresStore:
    """The `Store` protocol on one PostgreSQL database shared by every gateway node."""

    def __init__(self, url: str, dedupe_window_s: float = 24 * 3600.0) -> None:
        #: A repeated messageId newer than this is a duplicate (`intake.dedupe_window_h`).
        self.dedupe_window_s = dedupe_window_s
        self._url = url  # for scrubbing its password out of driver errors
        try:
            self._pool = open_pool(url, "outbox")
        except PoolTimeout as exc:
            raise ServiceUnavailable(
                "cannot connect to the PostgreSQL outbox", code="store_unavailable"
            ) from exc
        with self._conn() as conn:
            migrations.upgrade(conn, migrations.POSTGRES)
        self._committer: GroupCommitter[tuple[Sequence[Routed], float], list[bool]]
        self._committer = GroupCommitter(self._commit_adds)

    def _conn(self) -> AbstractContextManager[psycopg.Connection]:
        """Lend a pooled connection for one transaction, committed on success."""
        return lend(self._pool, self._url, "the PostgreSQL outbox")

    # intake

    def add(self, items: Sequence[Routed], now: float) -> list[bool]:
        """Commit events durably (group commit); True per stored event, False per duplicate."""
        if not items:
            return []
        try:
            return self._committer.submit((items, now))
        except psycopg.Error as exc:
            raise ServiceUnavailable(
                f"the PostgreSQL outbox could not commit: {scrub(str(exc), self._url)}",
                code="store_unavailable",
            ) from exc

    def _commit_adds(self, works: Sequence[tuple[Sequence[Routed], float]]) -> list[list[bool]]:
        """Store every queued request's events in one transaction; first of a messageId wins."""
        firsts: dict[str, tuple[int, int, Routed, float]] = {}
        results = [[False] * len(items) for items, _ in works]
        for w, (items, now) in enumerate(works):
            for i, routed in enumerate(items):
                firsts.setdefault(_text(dedupe_key(routed.event)) or "", (w, i, routed, now))
        # Sorted so concurrent nodes lock dedupe keys in one order and cannot deadlock.
        mids = sorted(firsts)
        with self._conn() as conn:
            fresh = conn.execute(
                _CLAIM_MESSAGE_IDS,
                (mids, [firsts[m][3] for m in mids], self.dedupe_window_s),
            ).fetchall()
            totals: dict[tuple[str, str], int] = {}
            with conn.cursor().copy(_COPY_EVENTS) as copy:
                for mid, event_id in sorted(fresh, key=lambda r: firsts[r[0]][:2]):
                    w, i, routed, now = firsts[mid]
                    results[w][i] = True
                    ev = routed.event
                    payload = ev.payload_json or json.dumps(ev.payload, separators=(",", ":"))
                    copy.write_row(
                        (event_id, _text(ev.message_id), _text(ev.type), _text(ev.source_key_id),
                         ev.source_kind, ev.received_at, _text(ev.timestamp), _text(ev.user_id),
                         _text(ev.anonymous_id), payload, routed.state.value, routed.reason,
                         ev.received_at, now, _text(email_in(ev.payload)))
                    )  # fmt: skip
                    if routed.state in (State.DROPPED, State.DELIVERED):
                        key = (routed.state.value, routed.reason or "")
                        totals[key] = totals.get(key, 0) + 1
            for (state, reason), n in sorted(totals.items()):
                conn.execute(_BUMP_TOTAL, (state, reason, n))
        return results

    # dispatcher

    def claim(self, limit: int, lease_s: float, now: float) -> list[StoredEvent]:
        """Lease up to `limit` due events (pending or lease-expired in_flight), oldest first.

        Rows another node is claiming at this instant are skipped, not waited for.
        """
        with self._conn() as conn:
            # Claims take turns (a transaction-scoped advisory lock, then a fresh snapshot), so
            # two nodes cannot both see a visitor as free and claim its events side by side.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK_KEY,))
            rows = conn.execute(
                f"WITH e AS (SELECT id, user_id, anonymous_id, next_attempt_at FROM events"
                f" WHERE state IN ('pending', 'in_flight') AND next_attempt_at <= %s"
                f" ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED),"
                f" due AS (SELECT id FROM e WHERE {_VISITOR_FREE}"
                f" ORDER BY next_attempt_at, id LIMIT %s)"
                f" UPDATE events SET state = 'in_flight', next_attempt_at = %s, updated_at = %s"
                f" FROM due WHERE events.id = due.id"
                f" AND events.state IN ('pending', 'in_flight') RETURNING {_RETURNING}",
                (now, claim_scan(limit), now, now, limit, now + lease_s, now),
            ).fetchall()
        return sorted((_stored(r) for r in rows), key=lambda s: s.id)

    def renew(self, ids: Sequence[int], until: float, new_until: float, now: float) -> list[int]:
        """Extend claims still held under the lease ending `until` to `new_until`; return which."""
        with self._conn() as conn:
            rows = conn.execute(
                "UPDATE events SET next_attempt_at = %s WHERE state = 'in_flight'"
                " AND next_attempt_at = %s AND id = ANY(%s) RETURNING id",
                (new_until, until, list(ids)),
            ).fetchall()
        return [row[0] for row in rows]

    def _update(self, sql: str, args: tuple, total: tuple[str, str] | None = None) -> int:
        with self._conn() as conn:
            changed = conn.execute(sql, args).rowcount
            if total is not None and changed:
                conn.execute(_BUMP_TOTAL, (*total, changed))
        return changed

    def ack(self, ids: Sequence[int], now: float) -> None:
        """Mark claimed events delivered."""
        sql = (
            "UPDATE events SET state = 'delivered', reason = NULL, updated_at = %s"
            " WHERE state = 'in_flight' AND id = ANY(%s)"
        )
        self._update(sql, (now, list(ids)), ("delivered", ""))

    def retry(
        self, ids: Sequence[int], at: float, error: str, now: float, charge: bool = True
    ) -> None:
        """Return claimed events to pending, due at `at`; `charge` adds one to their attempts."""
        sql = (
            "UPDATE events SET state = 'pending', next_attempt_at = %s, detail = %s,"
            " attempts = attempts + %s, updated_at = %s WHERE state = 'in_flight' AND id = ANY(%s)"
        )
        self._update(sql, (at, _text(error), 1 if charge else 0, now, list(ids)))

    def drop(self, ids: Sequence[int], reason: str, now: float, detail: str | None = None) -> None:
        """End open events as dropped with a reason from the fixed vocabulary."""
        sql = (
            "UPDATE events SET state = 'dropped', reason = %s, detail = %s, updated_at = %s"
            f" WHERE state IN {_OPEN_STATES} AND id = ANY(%s)"
        )
        self._update(sql, (reason, _text(detail), now, list(ids)), ("dropped", reason))

    def dead(self, ids: Sequence[int], reason: str, now: float, detail: str | None = None) -> None:
        """Dead-letter open events with a reason and detail for an operator."""
        sql = (
            "UPDATE events SET state = 'dead', reason = %s, detail = %s, updated_at = %s"
            f" WHERE state IN {_OPEN_STATES} AND id = ANY(%s)"
        )
        self._update(sql, (reason, _text(detail), now, list(ids)))

    def hold(self, ids: Sequence[int], now: float, detail: str | None = None) -> None:
        """Park open events as held until a binding names their visitor (`release_held`)."""
        sql = (
            "UPDATE events SET state = 'held', detail = %s, updated_at = %s"
            " WHERE state IN ('pending', 'in_flight') AND id = ANY(%s)"
        )
        self._update(sql, (_text(detail), now, list(ids)))

    def release_held(
        self, anonymous_id: str | None, user_id: str | None, now: float, due: float | None = None
    ) -> int:
        """Turn held events of an anonymousId (or of the userId) back to pending at `due`."""
        sql = (
            "UPDATE events SET state = 'pending', user_id = COALESCE(user_id, %s),"
            " next_attempt_at = %s, updated_at = %s WHERE state = 'held'"
            " AND (anonymous_id = %s OR (%s::text IS NOT NULL AND user_id = %s))"
        )
        user = _text(user_id)
        when = now if due is None else due
        return self._update(sql, (user, when, now, _text(anonymous_id), user, user))

    def expire_held(self, before: float, now: float) -> int:
        """Drop held events received before `before` with reason `anonymous_expired`."""
        sql = (
            "UPDATE events SET state = 'dropped', reason = 'anonymous_expired', updated_at = %s"
            " WHERE state = 'held' AND received_at < %s"
        )
        return self._update(sql, (now, before), ("dropped", "anonymous_expired"))

    def held_anonymous_ids(self, after: str, limit: int) -> list[str]:
        """Return up to `limit` distinct anonymousIds of held events, in order, past `after`."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT DISTINCT anonymous_id FROM events WHERE state = 'held'"
                " AND anonymous_id > %s ORDER BY anonymous_id LIMIT %s",
                (_text(after), limit),
            ).fetchall()
        return [r[0] for r in rows]

    # operators

    def _select(self, where: str, args: tuple) -> list[StoredEvent]:
        with self._conn() as conn:
            rows = conn.execute(f"SELECT {COLUMNS} FROM events WHERE {where}", args).fetchall()
        return [_stored(r) for r in rows]

    def get(self, event_id: int) -> StoredEvent | None:
        """Return one event by id."""
        found = self._select("id = %s", (event_id,))
        return found[0] if found else None

    def find(self, message_id: str) -> list[StoredEvent]:
        """Return the stored events with this messageId (tests and operators)."""
        return self._select("message_id = %s ORDER BY id", (_text(message_id),))

    def dead_letters(
        self, reason: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[StoredEvent]:
        """List dead-lettered events, newest first."""
        where = "state = 'dead'" + ("" if reason is None else " AND reason = %s")
        args = () if reason is None else (reason,)
        order = " ORDER BY updated_at DESC, id DESC LIMIT %s OFFSET %s"
        return self._select(where + order, (*args, limit, offset))

    def replay(self, ids: Sequence[int] | None, reason: str | None, now: float) -> int:
        """Move dead events (these ids, or this reason, or all) to pending with attempts reset."""
        sql = (
            "UPDATE events SET state = 'pending', reason = NULL, attempts = 0,"
            " next_attempt_at = %s, updated_at = %s WHERE state = 'dead'"
        )
        if ids is not None:
            return self._update(sql + " AND id = ANY(%s)", (now, now, list(ids)))
        if reason is None:
            return self._update(sql, (now, now))
        return self._update(sql + " AND reason = %s", (now, now, reason))

    # operator console (app/outbox/recent.py)

    def recent(
        self, filters: Mapping[str, str | None], limit: int = 50, keys: Sequence[str] = ()
    ) -> list[StoredEvent]:
        """Return the newest events matching the filters (userId, anonymousId, email, messageId
        within the dedupe window of these source `keys`, state)."""
        cleaned = {k: _text(v) for k, v in filters.items()}
        sql, args = recent_query(COLUMNS, cleaned, limit, "%s", keys)
        with self._conn() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [_stored(r) for r in rows]

    def activity(self, since: float) -> dict[str, dict[int, int]]:
        """Return per-minute received / delivered / dropped / dead counts since `since`."""
        with self._conn() as conn:
            return activity_series(
                lambda sql, args: conn.execute(sql, args).fetchall(),
                since,
                "%s",
                "floor({col} / 60)::bigint",
            )

    def purge(self, ids: Sequence[int] | None, reason: str | None) -> int:
        """Delete dead events (these ids, or this reason, or all when both are None)."""
        sql = "DELETE FROM events WHERE state = 'dead'"
        if ids is not None:
            return self._update(sql + " AND id = ANY(%s)", (list(ids),))
        if reason is not None:
            return self._update(sql + " AND reason = %s", (reason,))
        return self._update(sql, ())

    def purge_dead(self, before: float) -> int:
        """Delete dead events last updated before `before`; return how many."""
        sql = "DELETE FROM events WHERE state = 'dead' AND updated_at < %s"
        return self._update(sql, (before,))

    def compact(self, before: float) -> int:
        """Delete delivered and dropped rows older than `before`, and the calls recorded before
        it; totals and dedupe survive."""
        self._update("DELETE FROM delivery_calls WHERE at < %s", (before,))
        sql = "DELETE FROM events WHERE state IN ('delivered', 'dropped') AND updated_at < %s"
        return self._update(sql, (before,))

    # what delivery did (the console's event page)

    def note(self, attempts: Mapping[int, Attempt]) -> None:
        """Append each event's attempt to its history and record the lead it landed on."""
        if not attempts:
            return
        rows = attempt_rows(attempts)
        with self._conn() as conn, conn.cursor() as cur:
            cur.executemany(_NOTE_ATTEMPT, rows)

    def record_calls(self, batch: str, calls: Sequence[Call]) -> None:
        """Keep the Marketo calls made for one batch."""
        if not calls:
            return
        with self._conn() as conn, conn.cursor() as cur:
            cur.executemany(
                RECORD_CALL.replace("?", "%s"),
                [tuple(_text(v) if isinstance(v, str) else v for v in call_row(batch, c))
                 for c in calls],
            )  # fmt: skip

    def calls(self, batches: Sequence[str]) -> dict[str, list[Call]]:
        """Return the recorded calls of these batches, oldest first."""
        if not batches:
            return {}
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT {CALL_COLUMNS} FROM delivery_calls WHERE batch = ANY(%s) ORDER BY id",
                (list(batches),),
            ).fetchall()
        return calls_by_batch(rows)

    def prune_dedupe(self, now: float) -> int:
        """Forget messageIds older than the dedupe window; return how many."""
        sql = "DELETE FROM dedupe WHERE received_at < %s"
        return self._update(sql, (now - self.dedupe_window_s,))

    def counts(self, now: float) -> dict[str, Any]:
        """Return counts by state and reason, and the age of the oldest pending event."""
        with self._conn() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return read_counts(conn.execute, now)

    def ping(self) -> None:
        """Raise when the store is not writable (server down, or a read-only standby)."""
        with self._conn() as conn:
            read_only = conn.execute("SELECT current_setting('transaction_read_only')").fetchone()
        if read_only and read_only[0] == "on":
            raise ServiceUnavailable("the PostgreSQL outbox is read-only", code="store_unavailable")

    def close(self) -> None:
        """Refuse further adds and close the pool's connections."""
        self._committer.close()
        self._pool.close()
