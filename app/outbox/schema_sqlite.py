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

# The Marketo budget, token and caches every process shares (SharedState, shared_sqlite.py).
SHARED_STATE = (
    """CREATE TABLE IF NOT EXISTS mkto_limiter (
        id INTEGER PRIMARY KEY CHECK (id = 1), paused_until REAL, pause_reason TEXT,
        day TEXT NOT NULL DEFAULT '', day_count INTEGER NOT NULL DEFAULT 0)""",
    "CREATE TABLE IF NOT EXISTS mkto_calls (id INTEGER PRIMARY KEY, started_at REAL NOT NULL)",
    """CREATE TABLE IF NOT EXISTS mkto_slots (
        id INTEGER PRIMARY KEY, started_at REAL NOT NULL, expires_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS mkto_tokens (
        key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL NOT NULL,
        fetched_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS mkto_leads (
        scope TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, lead_id INTEGER NOT NULL,
        updated_at REAL NOT NULL, PRIMARY KEY (scope, kind, value))""",
    "CREATE INDEX IF NOT EXISTS mkto_leads_by_lead ON mkto_leads (scope, lead_id)",
    """CREATE TABLE IF NOT EXISTS mkto_trait_hashes (
        scope TEXT NOT NULL, lead_id INTEGER NOT NULL, hash TEXT NOT NULL,
        PRIMARY KEY (scope, lead_id))""",
    """CREATE TABLE IF NOT EXISTS mkto_cookies (
        scope TEXT NOT NULL, cookie TEXT NOT NULL, lead_id INTEGER NOT NULL,
        PRIMARY KEY (scope, cookie, lead_id))""",
    """CREATE TABLE IF NOT EXISTS mkto_locks (
        name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS mkto_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "INSERT OR IGNORE INTO mkto_limiter (id) VALUES (1)",
)

# Intake writes one row per event; an index on events.message_id doubled the pages each commit
# dirties (random keys) while the dedupe table's primary key already answers "seen before?".
# `find(message_id)` (operators, tests) scans instead.
INTAKE_INDEXES = ("DROP INDEX IF EXISTS events_message",)

# (name, statements) per step, oldest first; append only.
SQLITE_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("outbox", OUTBOX),
    ("shared_state", SHARED_STATE),
    ("intake_indexes", INTAKE_INDEXES),
)
