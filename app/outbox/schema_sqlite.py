"""SQLite schema steps, in order; `migrations.py` numbers them and pairs them with PostgreSQL's."""

from __future__ import annotations

OUTBOX = (
    """CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    type TEXT NOT NULL,
    source_key_id TEXT NOT NULL,
    source_kind TEXT NOT NULL,
    received_at REAL NOT NULL,
    timestamp TEXT NOT NULL,
    user_id TEXT,
    anonymous_id TEXT,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    detail TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    updated_at REAL NOT NULL
)""",
    """CREATE INDEX IF NOT EXISTS events_due ON events (next_attempt_at, id)
    WHERE state IN ('pending', 'in_flight')""",
    "CREATE INDEX IF NOT EXISTS events_state ON events (state, received_at)",
    "CREATE INDEX IF NOT EXISTS events_held ON events (anonymous_id) WHERE state = 'held'",
    "CREATE INDEX IF NOT EXISTS events_message ON events (message_id)",
    """CREATE TABLE IF NOT EXISTS dedupe (
    message_id TEXT PRIMARY KEY,
    received_at REAL NOT NULL
) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS dedupe_age ON dedupe (received_at)",
    """CREATE TABLE IF NOT EXISTS outcome_totals (
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (state, reason)
) WITHOUT ROWID""",
)

# (name, statements) per step, oldest first; append only.
SQLITE_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (("outbox", OUTBOX),)
