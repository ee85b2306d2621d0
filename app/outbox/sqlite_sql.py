"""SQLite outbox schema, statements and row conversion, kept apart from the store's logic."""

from __future__ import annotations

import json
import sqlite3
from functools import lru_cache
from pathlib import Path

from app.outbox.store import Event
from app.outbox.store import State
from app.outbox.store import StoredEvent

COLUMNS = (
    "id, message_id, type, source_key_id, source_kind, received_at, timestamp, user_id,"
    " anonymous_id, payload, state, reason, detail, attempts, next_attempt_at, updated_at"
)

INSERT_EVENT = (
    "INSERT INTO events (message_id, type, source_key_id, source_kind, received_at, timestamp,"
    " user_id, anonymous_id, payload, state, reason, attempts, next_attempt_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)"
)

# The dedupe entries already held for a JSON array of messageIds. Repeats are rare, so this
# usually returns no row: one statement step while the write lock is held.
SEEN_MESSAGE_IDS = (
    "SELECT message_id, received_at FROM dedupe"
    " WHERE message_id IN (SELECT value FROM json_each(?))"
)

# Rows per multi-row INSERT: 13 parameters a row stays far under SQLite's 32,766 variables.
ROWS_PER_INSERT = 500


@lru_cache(maxsize=64)
def insert_events(n: int) -> str:
    """Return an INSERT of `n` events rows (13 parameters each) in one statement."""
    row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)"
    return INSERT_EVENT.partition(" VALUES ")[0] + " VALUES " + ", ".join([row] * n)


@lru_cache(maxsize=64)
def claim_message_ids(n: int) -> str:
    """Return an upsert recording `n` (message_id, received_at) pairs as seen."""
    return (
        "INSERT INTO dedupe (message_id, received_at) VALUES "
        + ", ".join(["(?, ?)"] * n)
        + " ON CONFLICT (message_id) DO UPDATE SET received_at = excluded.received_at"
    )


BUMP_TOTAL = (
    "INSERT INTO outcome_totals (state, reason, n) VALUES (?, ?, ?)"
    " ON CONFLICT (state, reason) DO UPDATE SET n = n + excluded.n"
)


def path_from_url(store_url: str, base_dir: Path) -> Path:
    """Return the database file named by a `sqlite:///path` URL; relative paths start at base_dir.

    :raises ValueError: the URL is not a file-backed SQLite URL.
    """
    prefix = "sqlite:///"
    if not store_url.startswith(prefix) or store_url[len(prefix) :] in ("", ":memory:"):
        raise ValueError(f"not a file-backed SQLite URL: {store_url!r}")
    path = Path(store_url[len(prefix) :])
    return path if path.is_absolute() else base_dir / path


def row_to_stored(row: sqlite3.Row | tuple) -> StoredEvent:
    """Rebuild a StoredEvent from an `events` row in the column order the queries select."""
    (rid, mid, typ, key_id, kind, received, ts, uid, aid, payload, state, reason, detail) = row[:13]
    attempts, next_at, updated = row[13:16]
    event = Event(mid, typ, key_id, kind, received, ts, uid, aid, json.loads(payload), payload)
    return StoredEvent(rid, event, State(state), reason, detail, attempts, next_at, updated)
