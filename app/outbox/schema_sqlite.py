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

_EVENT_COLUMNS = (
    "id, message_id, type, source_key_id, source_kind, received_at, timestamp, user_id,"
    " anonymous_id, payload, state, reason, detail, attempts, next_attempt_at, updated_at"
)

# Fewer B-tree pages written per intake commit (each is a 4 KiB WAL frame, and a page the other
# worker's commit made this connection read again). An insert touched: the events table,
# events_due, events_state, dedupe, dedupe_age and sqlite_sequence; now the table, events_due and
# dedupe.
# - events is rebuilt without AUTOINCREMENT, which rewrote sqlite_sequence on every insert. A
#   new id is then the largest + 1, so compaction and purges blank the newest row into a
#   placeholder instead of deleting it (sqlite_sql.py) and ids are never handed out twice. When
#   the sequence had passed the largest id left (its rows compacted), such a placeholder holds
#   that id.
# - events_state is gone: open events are counted through events_due (which now carries state
#   and received_at, so the counts read the index alone), held ones through events_held, dead
#   ones through events_dead, which no insert touches; compaction walks ids in order.
# - dedupe_age is gone: pruning walks the dedupe key in chunks outside the write lock.
INTAKE_PAGES = (
    """CREATE TABLE events_next (
    id INTEGER PRIMARY KEY,
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
    f"INSERT INTO events_next ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} FROM events",
    """INSERT INTO events_next (id, message_id, type, source_key_id, source_kind, received_at,
    timestamp, payload, state, next_attempt_at, updated_at)
    SELECT seq, '', 'placeholder', '', '', 0, '', '{}', 'delivered', 0, 0 FROM sqlite_sequence
    WHERE name = 'events' AND seq > (SELECT coalesce(max(id), 0) FROM events)""",
    "DROP TABLE events",
    "ALTER TABLE events_next RENAME TO events",
    """CREATE INDEX events_due ON events (next_attempt_at, id, state, received_at)
    WHERE state IN ('pending', 'in_flight')""",
    "CREATE INDEX events_held ON events (anonymous_id) WHERE state = 'held'",
    "CREATE INDEX events_dead ON events (reason, updated_at) WHERE state = 'dead'",
    "DROP INDEX IF EXISTS dedupe_age",
)

# A claim skips visitors that already have an event in flight (per-visitor order while several
# batches are in flight, `Store.claim`): these look the in-flight ones up by userId and by
# anonymousId. Partial, so intake's inserts (pending rows) never touch them.
VISITOR_CLAIMS = (
    "CREATE INDEX IF NOT EXISTS events_flying_user ON events (user_id) WHERE state = 'in_flight'",
    "CREATE INDEX IF NOT EXISTS events_flying_anon ON events (anonymous_id)"
    " WHERE state = 'in_flight'",
)

# The operator console (app/console): live events filtered by visitor (a messageId filter scans:
# its index halved intake's headroom, see INTAKE_INDEXES), and the
# last hour per minute. events_recent (finished rows only, so claims and counts keep events_due)
# grows at its right edge per state (updated_at only rises),
# the identifier indexes cost one B-tree page each per insert; see app/outbox/recent.py.
CONSOLE = (
    "CREATE INDEX IF NOT EXISTS events_recent ON events (state, updated_at, received_at)"
    " WHERE state IN ('delivered', 'dropped', 'dead')",
    "CREATE INDEX IF NOT EXISTS events_user ON events (user_id) WHERE user_id IS NOT NULL",
    """CREATE INDEX IF NOT EXISTS events_anonymous ON events (anonymous_id)
    WHERE anonymous_id IS NOT NULL""",
)

# Hashed identifiers of forgotten people (app/privacy): later events about them are dropped.
SUPPRESSIONS = (
    """CREATE TABLE IF NOT EXISTS suppressions (
    hash TEXT PRIMARY KEY,
    created_at REAL NOT NULL
) WITHOUT ROWID""",
)

# What delivery did to each event, for the operator console (app/console): the lead it landed
# on, its attempts (JSON, appended by `Store.note` when a batch settles) and the Marketo calls
# made per batch (one row a call, pruned with compaction). `email` (set by intake from the
# payload, see `store.email_in`) and the dedupe entry's `event_id` let the console find events
# by email and by messageId through an index: the email index is partial (events naming no
# email cost nothing) and the dedupe row is written anyway, so intake pays no new B-tree for
# the messageId filter.
DELIVERY_LOG = (
    "ALTER TABLE events ADD COLUMN email TEXT",
    "ALTER TABLE events ADD COLUMN lead_id INTEGER",
    "ALTER TABLE events ADD COLUMN history TEXT",
    "CREATE INDEX IF NOT EXISTS events_email ON events (email) WHERE email IS NOT NULL",
    "ALTER TABLE dedupe ADD COLUMN event_id INTEGER",
    """CREATE TABLE IF NOT EXISTS delivery_calls (
    id INTEGER PRIMARY KEY,
    batch TEXT NOT NULL,
    at REAL NOT NULL,
    method TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    status TEXT NOT NULL,
    ms INTEGER NOT NULL,
    code TEXT,
    message TEXT,
    records INTEGER
)""",
    "CREATE INDEX IF NOT EXISTS delivery_calls_batch ON delivery_calls (batch)",
)

# (name, statements) per step, oldest first; append only.
SQLITE_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("outbox", OUTBOX),
    ("shared_state", SHARED_STATE),
    ("intake_indexes", INTAKE_INDEXES),
    ("intake_pages", INTAKE_PAGES),
    ("visitor_claims", VISITOR_CLAIMS),
    ("console", CONSOLE),
    ("suppressions", SUPPRESSIONS),
    ("delivery_log", DELIVERY_LOG),
)
