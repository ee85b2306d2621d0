"""SQLite outbox schema, statements and row conversion, kept apart from the store's logic."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from app.outbox.store import Routed
from app.outbox.store import email_in

COLUMNS = (
    "id, message_id, type, source_key_id, source_kind, received_at, timestamp, user_id,"
    " anonymous_id, payload, state, reason, detail, attempts, next_attempt_at, updated_at,"
    " lead_id, history"
)

INSERT_EVENT = (
    "INSERT INTO events (message_id, type, source_key_id, source_kind, received_at, timestamp,"
    " user_id, anonymous_id, payload, state, reason, attempts, next_attempt_at, updated_at,"
    " email) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)"
)

# The dedupe entries already held for a JSON array of messageIds. Repeats are rare, so this
# usually returns no row: one statement step while the write lock is held.
SEEN_MESSAGE_IDS = (
    "SELECT message_id, received_at FROM dedupe"
    " WHERE message_id IN (SELECT value FROM json_each(?))"
)

# Rows per multi-row INSERT: 14 parameters a row stays far under SQLite's 32,766 variables.
ROWS_PER_INSERT = 500


@lru_cache(maxsize=64)
def insert_events(n: int) -> str:
    """Return an INSERT of `n` events rows (14 parameters each) in one statement.

    SQLite gives the rows of one multi-row INSERT consecutive ids in VALUES order (each new id
    is the largest + 1, see INTAKE_PAGES), which `claim_message_ids` relies on.
    """
    row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)"
    return INSERT_EVENT.partition(" VALUES ")[0] + " VALUES " + ", ".join([row] * n)


@lru_cache(maxsize=64)
def claim_message_ids(n: int) -> str:
    """Return an upsert recording `n` (message_id, received_at, event_id) triples as seen."""
    return (
        "INSERT INTO dedupe (message_id, received_at, event_id) VALUES "
        + ", ".join(["(?, ?, ?)"] * n)
        + " ON CONFLICT (message_id) DO UPDATE SET received_at = excluded.received_at,"
        " event_id = excluded.event_id"
    )


# The id the next inserted events row gets is this plus one (read under the write lock).
LAST_EVENT_ID = "SELECT coalesce(max(id), 0) FROM events"


# Rows per housekeeping chunk: each chunk is one short write transaction.
CHUNK_ROWS = 2000

# Without AUTOINCREMENT a new id is the largest plus one, so deleting the row with the largest id
# would hand its id out again. Compaction and purges delete every other row they match and blank
# that one into a placeholder instead: `delivered` (no count reads delivered rows from events),
# no messageId, an empty payload. It goes with the next compaction once a newer row exists.
_NOT_NEWEST = "id < (SELECT max(id) FROM events)"
_NEWEST = "id = (SELECT max(id) FROM events) AND message_id != ''"
_BLANK = (
    "UPDATE events SET message_id = '', type = 'placeholder', source_key_id = '',"
    " user_id = NULL, anonymous_id = NULL, payload = '{}', state = 'delivered', reason = NULL,"
    " detail = NULL, email = NULL, lead_id = NULL, history = NULL WHERE "
)

# The last id and its received_at among the next CHUNK_ROWS ids after a cursor.
COMPACT_CHUNK = (
    "SELECT max(id), max(received_at) FROM"
    " (SELECT id, received_at FROM events WHERE id > ? ORDER BY id LIMIT ?)"
)
_COMPACTABLE = "id > ? AND id <= ? AND state IN ('delivered', 'dropped') AND updated_at < ?"
COMPACT_DELETE = f"DELETE FROM events WHERE {_COMPACTABLE} AND {_NOT_NEWEST}"
COMPACT_BLANK = f"{_BLANK}{_COMPACTABLE} AND {_NEWEST}"

_PURGEABLE = "state = 'dead' AND updated_at < ?"
PURGE_DEAD = f"DELETE FROM events WHERE {_PURGEABLE} AND {_NOT_NEWEST}"
PURGE_BLANK = f"{_BLANK}{_PURGEABLE} AND {_NEWEST}"


def purge_dead_sql(condition: str) -> tuple[str, str]:
    """Return (delete, blank) statements removing dead events matching `condition` (SQL with
    placeholders), keeping the newest row as a placeholder as the purges above do."""
    match = f"state = 'dead' AND ({condition})"
    return (
        f"DELETE FROM events WHERE {match} AND {_NOT_NEWEST}",
        f"{_BLANK}{match} AND {_NEWEST}",
    )


# Expired dedupe keys in key order, a chunk at a time (the dedupe primary key drives the scan).
PRUNE_FIRST = "SELECT message_id FROM dedupe WHERE received_at < ? ORDER BY message_id LIMIT ?"
PRUNE_NEXT = (
    "SELECT message_id FROM dedupe WHERE message_id > ? AND received_at < ?"
    " ORDER BY message_id LIMIT ?"
)
PRUNE_DELETE = (
    "DELETE FROM dedupe WHERE message_id IN (SELECT value FROM json_each(?)) AND received_at < ?"
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


# One attempt appended to an event's history (a JSON array), the oldest dropped past the cap.
NOTE_ATTEMPT = (
    "UPDATE events SET lead_id = coalesce(?, lead_id), history = json_insert("
    "CASE WHEN json_array_length(coalesce(history, '[]')) >= ?"
    " THEN json_remove(history, '$[0]') ELSE coalesce(history, '[]') END, '$[#]', json(?))"
    " WHERE id = ?"
)

# Oldest calls first, a chunk at a time (ids rise with time).
OLDEST_CALL = "SELECT at FROM delivery_calls ORDER BY id LIMIT 1"
PRUNE_CALLS = (
    "DELETE FROM delivery_calls WHERE id IN"
    " (SELECT id FROM delivery_calls WHERE at < ? ORDER BY id LIMIT ?)"
)


# SQLite's bound-parameter limit is far higher, but small IN lists keep statements cheap.
IDS_PER_STATEMENT = 500


def id_chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    """Yield ids in slices small enough for one IN (...) list."""
    for start in range(0, len(ids), IDS_PER_STATEMENT):
        yield ids[start : start + IDS_PER_STATEMENT]


def marks(n: int) -> str:
    """Return n comma-separated placeholders."""
    return ",".join("?" * n)


def flat(rows: Sequence[tuple]) -> list:
    """Return the rows' values in one list, for a multi-row VALUES statement."""
    return [value for row in rows for value in row]


def event_row(routed: Routed, now: float) -> tuple:
    """Return the 14 parameters of one events row (see `insert_events`)."""
    ev = routed.event
    payload = ev.payload_json or json.dumps(ev.payload, separators=(",", ":"))
    return (ev.message_id, ev.type, ev.source_key_id, ev.source_kind, ev.received_at,
            ev.timestamp, ev.user_id, ev.anonymous_id, payload, routed.state.value,
            routed.reason, ev.received_at, now, email_in(ev.payload))  # fmt: skip


def private_file(path: Path) -> None:
    """Create the database file (and a missing folder) readable by this user only.

    The outbox holds lead data and a live Marketo access token; SQLite would create it with
    the umask's mode (often world-readable), and its -wal and -shm files copy the database's.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
