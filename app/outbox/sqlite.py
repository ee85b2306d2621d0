"""The outbox on SQLite: WAL, synchronous=FULL, group-committed adds, cross-process safe claims."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.errors import ServiceUnavailable
from app.outbox import migrations
from app.outbox.leader_commit import COMMIT_WAIT_S
from app.outbox.leader_commit import GroupCommitter
from app.outbox.process_lock import ProcessLock
from app.outbox.rows import row_to_stored
from app.outbox.sqlite_operators import SqliteOperatorMixin
from app.outbox.sqlite_sql import BUMP_TOTAL
from app.outbox.sqlite_sql import COLUMNS
from app.outbox.sqlite_sql import LAST_EVENT_ID
from app.outbox.sqlite_sql import ROWS_PER_INSERT
from app.outbox.sqlite_sql import SEEN_MESSAGE_IDS
from app.outbox.sqlite_sql import claim_message_ids
from app.outbox.sqlite_sql import event_row
from app.outbox.sqlite_sql import flat
from app.outbox.sqlite_sql import id_chunks
from app.outbox.sqlite_sql import insert_events
from app.outbox.sqlite_sql import marks
from app.outbox.sqlite_sql import private_file
from app.outbox.store import VISITOR_FREE
from app.outbox.store import Routed
from app.outbox.store import State
from app.outbox.store import StoredEvent
from app.outbox.store import claim_scan
from app.outbox.store import dedupe_key
from app.outbox.store import read_counts
from app.outbox.wal_checkpoint import BACKSTOP_PAGES
from app.outbox.wal_checkpoint import WalCheckpointer

# How long a connection waits for another process's write lock before giving up.
BUSY_TIMEOUT_MS = 20_000

# One caller's add: its events, the time it was received, and their `events` rows.
_AddWork = tuple[Sequence[Routed], float, list[tuple]]


class SqliteStore(SqliteOperatorMixin):
    """The `Store` protocol on one SQLite file shared by every process of one machine.

    Adds go through a leader/follower `GroupCommitter`: the request thread that finds no commit
    running commits everything queued on this process's writer connection, so concurrent
    requests share one fsync without a hand-off to a writer thread. Everything else runs on one
    lock-guarded connection per process with `BEGIN IMMEDIATE`, so a claim's select and update
    are atomic across processes.
    """

    def __init__(
        self,
        path: Path | str,
        dedupe_window_s: float = 24 * 3600.0,
        commit_wait_s: float = COMMIT_WAIT_S,
    ) -> None:
        self.path = Path(path)
        private_file(self.path)
        #: A repeated messageId newer than this is a duplicate; intake keeps it in line with
        #: `intake.dedupe_window_h`.
        self.dedupe_window_s = dedupe_window_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        migrations.prepare_sqlite(self.path)
        lock_path = migrations.sqlite_lock_path(self.path)
        self._plock = ProcessLock(lock_path)
        # Only the current leader touches the writer connection and its lock (one at a time).
        self._add_plock = ProcessLock(lock_path)
        self._add_conn: sqlite3.Connection | None = None
        self._add_pid = os.getpid()
        self.commit_wait_s = commit_wait_s
        self._committer: GroupCommitter[_AddWork, list[bool]] = self._new_committer()
        self._checkpointer = WalCheckpointer(self._open)

    # connections

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # WAL is on: migrations.prepare_sqlite() switched the file once, under the flock.
        # FULL: a commit is on disk (WAL fsynced) before it returns; the ack contract needs it.
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """Hold this process's connection in one IMMEDIATE transaction, committing on success."""
        with self._lock, self._plock:
            if self._conn is None:
                self._conn = self._open()
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise ServiceUnavailable(f"outbox locked: {exc}", code="store_unavailable") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                self._conn = self._open()
            yield self._conn

    # intake

    def add(self, items: Sequence[Routed], now: float) -> list[bool]:
        """Commit events durably (group commit); True per stored event, False per duplicate."""
        if not items:
            return []
        if self._add_pid != os.getpid():
            self._after_fork()
        rows = [event_row(routed, now) for routed in items]  # built before queueing, unlocked
        try:
            stored = self._committer.submit((items, now, rows))
        except (sqlite3.Error, OSError) as exc:
            raise ServiceUnavailable(
                f"the outbox could not commit: {exc}", code="store_unavailable"
            ) from exc
        self._checkpointer.ensure_running()
        return stored

    def _after_fork(self) -> None:
        """Start afresh in a forked child: the parent's leader may have been mid-commit."""
        with self._lock:
            if self._add_pid != os.getpid():
                self._add_conn = None  # the parent's; never used across a fork
                self._add_plock = ProcessLock(self._add_plock.path)
                self._committer = self._new_committer()
                self._add_pid = os.getpid()

    def _new_committer(self) -> GroupCommitter[_AddWork, list[bool]]:
        # The leader takes the cross-process lock before it seals its batch (leader_commit.py).
        return GroupCommitter(self._commit_adds, lock=self._add_plock, wait_s=self.commit_wait_s)

    def _commit_adds(self, works: Sequence[_AddWork]) -> list[list[bool]]:
        """Apply several requests' adds in one IMMEDIATE transaction; return once fsynced.

        Runs with the cross-process lock held. The statements do not depend on how many requests
        share the commit (one lookup of the messageIds already seen, one upsert of the new ones,
        one multi-row insert), because every statement hands the GIL back and forth.
        """
        if self._add_conn is None:
            self._add_conn = self._open()
            # Checkpoints run in the background (wal_checkpoint.py), not under the write lock.
            self._add_conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        conn = self._add_conn
        ids = json.dumps([dedupe_key(routed.event) for items, _, _ in works for routed in items])
        conn.execute("BEGIN IMMEDIATE")
        try:
            seen = dict(conn.execute(SEEN_MESSAGE_IDS, (ids,)).fetchall())
            results, claims, fresh, dropped = self._plan_adds(works, seen)
            # The rows get the ids after the largest (see insert_events): the dedupe entry
            # remembers each one, so the console finds an event by messageId without an index.
            (last_id,) = conn.execute(LAST_EVENT_ID).fetchone() if fresh else (0,)
            for start in range(0, len(fresh), ROWS_PER_INSERT):
                chunk = fresh[start : start + ROWS_PER_INSERT]
                conn.execute(
                    claim_message_ids(len(chunk)),
                    [
                        value
                        for i, (mid, at) in enumerate(claims[start : start + ROWS_PER_INSERT])
                        for value in (mid, at, last_id + start + i + 1)
                    ],
                )
                conn.execute(insert_events(len(chunk)), flat(chunk))
            for key, n in dropped.items():
                state, reason = key.split("\0")
                conn.execute(BUMP_TOTAL, (state, reason, n))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    def _plan_adds(
        self,
        works: Sequence[_AddWork],
        seen: dict[str, float],
    ) -> tuple[list[list[bool]], list[tuple[str, float]], list[tuple], dict[str, int]]:
        """Decide which events are new: not seen inside the window, nor earlier in this commit."""
        results: list[list[bool]] = []
        claims: list[tuple[str, float]] = []
        fresh: list[tuple] = []
        dropped: dict[str, int] = {}
        taken: set[str] = set()
        for items, now, work_rows in works:
            window_start = now - self.dedupe_window_s
            stored: list[bool] = []
            for routed, row in zip(items, work_rows, strict=True):
                mid = dedupe_key(routed.event)
                last = seen.get(mid)
                if mid in taken or (last is not None and last >= window_start):
                    stored.append(False)
                    continue
                taken.add(mid)  # a repeat later in the same commit is a duplicate
                stored.append(True)
                claims.append((mid, now))
                fresh.append(row)
                if routed.state in (State.DROPPED, State.DELIVERED):
                    key = f"{routed.state.value}\0{routed.reason or ''}"
                    dropped[key] = dropped.get(key, 0) + 1
            results.append(stored)
        return results, claims, fresh, dropped

    # dispatcher

    def claim(self, limit: int, lease_s: float, now: float) -> list[StoredEvent]:
        """Lease up to `limit` due events (pending or lease-expired in_flight), oldest first,
        skipping visitors that have an event in flight (see `store.VISITOR_FREE`)."""
        with self._write() as conn:
            rows = conn.execute(
                f"UPDATE events SET state = 'in_flight', next_attempt_at = ?, updated_at = ?"
                f" WHERE id IN (SELECT id FROM (SELECT id, user_id, anonymous_id, next_attempt_at"
                f" FROM events WHERE state IN ('pending', 'in_flight') AND next_attempt_at <= ?"
                f" ORDER BY next_attempt_at, id LIMIT ?) AS e WHERE {VISITOR_FREE}"
                f" ORDER BY next_attempt_at, id LIMIT ?)"
                f" RETURNING {COLUMNS}",
                (now + lease_s, now, now, claim_scan(limit), now, now, limit),
            ).fetchall()
        return sorted((row_to_stored(r) for r in rows), key=lambda s: s.id)

    def renew(self, ids: Sequence[int], until: float, new_until: float, now: float) -> list[int]:
        """Extend claims still held under the lease ending `until` to `new_until`; return which."""
        renewed: list[int] = []
        with self._write() as conn:
            for chunk in id_chunks(list(ids)):
                renewed += [
                    row[0]
                    for row in conn.execute(
                        "UPDATE events SET next_attempt_at = ? WHERE state = 'in_flight'"
                        f" AND next_attempt_at = ? AND id IN ({marks(len(chunk))}) RETURNING id",
                        (new_until, until, *chunk),
                    ).fetchall()
                ]
        return renewed

    def _finish(self, ids: Sequence[int], sql: str, args: tuple, total: tuple | None) -> int:
        changed = 0
        with self._write() as conn:
            for chunk in id_chunks(list(ids)):
                changed += conn.execute(
                    sql.format(marks=marks(len(chunk))), (*args, *chunk)
                ).rowcount
            if total is not None and changed:
                conn.execute(BUMP_TOTAL, (*total, changed))
        return changed

    def ack(self, ids: Sequence[int], now: float) -> None:
        """Mark claimed events delivered."""
        sql = (
            "UPDATE events SET state = 'delivered', reason = NULL, updated_at = ?"
            " WHERE state = 'in_flight' AND id IN ({marks})"
        )
        self._finish(ids, sql, (now,), ("delivered", ""))

    def retry(
        self, ids: Sequence[int], at: float, error: str, now: float, charge: bool = True
    ) -> None:
        """Return claimed events to pending, due at `at`; `charge` adds one to their attempts."""
        sql = (
            "UPDATE events SET state = 'pending', next_attempt_at = ?, detail = ?,"
            " attempts = attempts + ?, updated_at = ? WHERE state = 'in_flight' AND id IN ({marks})"
        )
        self._finish(ids, sql, (at, error, 1 if charge else 0, now), None)

    def drop(self, ids: Sequence[int], reason: str, now: float, detail: str | None = None) -> None:
        """End open events as dropped with a reason from the fixed vocabulary."""
        sql = (
            "UPDATE events SET state = 'dropped', reason = ?, detail = ?, updated_at = ?"
            " WHERE state IN ('pending', 'held', 'in_flight') AND id IN ({marks})"
        )
        self._finish(ids, sql, (reason, detail, now), ("dropped", reason))

    def dead(self, ids: Sequence[int], reason: str, now: float, detail: str | None = None) -> None:
        """Dead-letter open events with a reason and detail for an operator."""
        sql = (
            "UPDATE events SET state = 'dead', reason = ?, detail = ?, updated_at = ?"
            " WHERE state IN ('pending', 'held', 'in_flight') AND id IN ({marks})"
        )
        self._finish(ids, sql, (reason, detail, now), None)

    def hold(self, ids: Sequence[int], now: float, detail: str | None = None) -> None:
        """Park open events as held until a binding names their visitor (`release_held`)."""
        sql = (
            "UPDATE events SET state = 'held', detail = ?, updated_at = ?"
            " WHERE state IN ('pending', 'in_flight') AND id IN ({marks})"
        )
        self._finish(ids, sql, (detail, now), None)

    def release_held(
        self, anonymous_id: str | None, user_id: str | None, now: float, due: float | None = None
    ) -> int:
        """Turn held events of an anonymousId (or of the userId) back to pending at `due`."""
        with self._write() as conn:
            return conn.execute(
                "UPDATE events SET state = 'pending', user_id = COALESCE(user_id, ?),"
                " next_attempt_at = ?, updated_at = ? WHERE state = 'held'"
                " AND (anonymous_id = ? OR (? IS NOT NULL AND user_id = ?))",
                (user_id, now if due is None else due, now, anonymous_id, user_id, user_id),
            ).rowcount

    def expire_held(self, before: float, now: float) -> int:
        """Drop held events received before `before` with reason `anonymous_expired`."""
        with self._write() as conn:
            n = conn.execute(
                "UPDATE events SET state = 'dropped', reason = 'anonymous_expired', updated_at = ?"
                " WHERE state = 'held' AND received_at < ?",
                (now, before),
            ).rowcount
            if n:
                conn.execute(BUMP_TOTAL, ("dropped", "anonymous_expired", n))
        return n

    def held_anonymous_ids(self, after: str, limit: int) -> list[str]:
        """Return up to `limit` distinct anonymousIds of held events, in order, past `after`."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT DISTINCT anonymous_id FROM events WHERE state = 'held'"
                " AND anonymous_id > ? ORDER BY anonymous_id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [r[0] for r in rows]

    def counts(self, now: float) -> dict[str, Any]:
        """Return counts by state and reason, and the age of the oldest pending event."""
        with self._read() as conn:
            conn.execute("BEGIN")
            try:
                return read_counts(conn.execute, now)
            finally:
                conn.execute("COMMIT")

    def ping(self) -> None:
        """Raise when the store is not writable."""
        with self._write() as conn:
            conn.execute("SELECT 1 FROM outcome_totals LIMIT 1").fetchall()

    def close(self) -> None:
        """Refuse new adds and close this process's connections."""
        self._committer.close()
        self._checkpointer.stop()
        with self._lock:
            self._plock.close()
            self._add_plock.close()
            if self._add_conn is not None and self._add_pid == os.getpid():
                self._add_conn.close()
            self._add_conn = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None
