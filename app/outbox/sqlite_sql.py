"""SQLite outbox schema, statements and row conversion, kept apart from the store's logic."""

from __future__ import annotations

import json
import sqlite3
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

# Insert, or take over an entry older than the window; rowcount 0 means a duplicate.
CLAIM_MESSAGE_ID = (
    "INSERT INTO dedupe (message_id, received_at) VALUES (?, ?)"
    " ON CONFLICT (message_id) DO UPDATE SET received_at = excluded.received_at"
    " WHERE dedupe.received_at < ?"
)

# The same for a whole JSON array of messageIds in one statement; returns the ids now claimed.
# (`WHERE true` resolves SQLite's parsing ambiguity between SELECT and ON CONFLICT.)
CLAIM_MESSAGE_IDS = (
    "INSERT INTO dedupe (message_id, received_at) SELECT value, ? FROM json_each(?) WHERE true"
    " ON CONFLICT (message_id) DO UPDATE SET received_at = excluded.received_at"
    " WHERE dedupe.received_at < ? RETURNING message_id"
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
