"""PostgreSQL schema steps, in order; `migrations.py` numbers them and pairs them with SQLite's."""

from __future__ import annotations

OUTBOX = (
    # One row per accepted event; the same columns as SQLite's. next_attempt_at is when a pending
    # event is due, or when the lease of an in_flight one expires: one partial index finds both.
    """CREATE TABLE IF NOT EXISTS events (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_id TEXT NOT NULL,
        type TEXT NOT NULL,
        source_key_id TEXT NOT NULL,
        source_kind TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL,
        timestamp TEXT NOT NULL,
        user_id TEXT,
        anonymous_id TEXT,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        detail TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS events_due ON events (next_attempt_at, id)
        WHERE state IN ('pending', 'in_flight')""",
    "CREATE INDEX IF NOT EXISTS events_state ON events (state, received_at)",
    "CREATE INDEX IF NOT EXISTS events_held ON events (anonymous_id) WHERE state = 'held'",
    "CREATE INDEX IF NOT EXISTS events_message ON events (message_id)",
    # messageIds seen within the dedupe window; outlives compaction of the events themselves.
    """CREATE TABLE IF NOT EXISTS dedupe (
        message_id TEXT PRIMARY KEY,
        received_at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS dedupe_age ON dedupe (received_at)",
    # Final outcomes counted as they happen, so counts survive compaction ('' = no reason).
    """CREATE TABLE IF NOT EXISTS outcome_totals (
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (state, reason)
    )""",
)

# The Marketo budget, token and caches every node shares (SharedState, shared_postgres.py).
# The one mkto_limiter row is what nodes lock to decide on a call.
SHARED_STATE = (
    """CREATE TABLE IF NOT EXISTS mkto_limiter (
        id INTEGER PRIMARY KEY CHECK (id = 1), paused_until DOUBLE PRECISION, pause_reason TEXT,
        day TEXT NOT NULL DEFAULT '', day_count INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS mkto_calls (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        started_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS mkto_slots (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        started_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS mkto_tokens (
        key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
        fetched_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS mkto_leads (
        scope TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, lead_id BIGINT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (scope, kind, value))""",
    "CREATE INDEX IF NOT EXISTS mkto_leads_by_lead ON mkto_leads (scope, lead_id)",
    """CREATE TABLE IF NOT EXISTS mkto_trait_hashes (
        scope TEXT NOT NULL, lead_id BIGINT NOT NULL, hash TEXT NOT NULL,
        PRIMARY KEY (scope, lead_id))""",
    """CREATE TABLE IF NOT EXISTS mkto_cookies (
        scope TEXT NOT NULL, cookie TEXT NOT NULL, lead_id BIGINT NOT NULL,
        PRIMARY KEY (scope, cookie, lead_id))""",
    """CREATE TABLE IF NOT EXISTS mkto_locks (
        name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS mkto_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "INSERT INTO mkto_limiter (id) VALUES (1) ON CONFLICT DO NOTHING",
)

# (name, statements) per step, oldest first; append only.
POSTGRES_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("outbox", OUTBOX),
    ("shared_state", SHARED_STATE),
    # Same as SQLite's step: dedupe's primary key answers "seen before?"; find() scans.
    ("intake_indexes", ("DROP INDEX IF EXISTS events_message",)),
    # Same indexes as SQLite's step: counts read events_due, events_held and events_dead;
    # compaction and dedupe pruning scan (PostgreSQL's deletes do not block inserts). Identity
    # ids never repeat here, so the table keeps its shape.
    (
        "intake_pages",
        (
            "DROP INDEX IF EXISTS events_state",
            "DROP INDEX IF EXISTS dedupe_age",
            "DROP INDEX IF EXISTS events_due",
            """CREATE INDEX events_due ON events (next_attempt_at, id, state, received_at)
            WHERE state IN ('pending', 'in_flight')""",
            "CREATE INDEX IF NOT EXISTS events_dead ON events (reason, updated_at)"
            " WHERE state = 'dead'",
        ),
    ),
    # Same as SQLite's step: claims skip visitors with an event in flight (per-visitor order).
    (
        "visitor_claims",
        (
            "CREATE INDEX IF NOT EXISTS events_flying_user ON events (user_id)"
            " WHERE state = 'in_flight'",
            "CREATE INDEX IF NOT EXISTS events_flying_anon ON events (anonymous_id)"
            " WHERE state = 'in_flight'",
        ),
    ),
    # The operator console's indexes, as SQLite's step (app/outbox/recent.py).
    (
        "console",
        (
            "CREATE INDEX IF NOT EXISTS events_recent ON events (state, updated_at, received_at)"
            " WHERE state IN ('delivered', 'dropped', 'dead')",
            "CREATE INDEX IF NOT EXISTS events_user ON events (user_id) WHERE user_id IS NOT NULL",
            "CREATE INDEX IF NOT EXISTS events_anonymous ON events (anonymous_id)"
            " WHERE anonymous_id IS NOT NULL",
        ),
    ),
    # Same as SQLite's step: hashed identifiers of forgotten people (app/privacy).
    (
        "suppressions",
        (
            """CREATE TABLE IF NOT EXISTS suppressions (
            hash TEXT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL)""",
        ),
    ),
    # Same as SQLite's step: what delivery did to each event, and the calls per batch.
    (
        "delivery_log",
        (
            "ALTER TABLE events ADD COLUMN IF NOT EXISTS email TEXT",
            "ALTER TABLE events ADD COLUMN IF NOT EXISTS lead_id BIGINT",
            "ALTER TABLE events ADD COLUMN IF NOT EXISTS history TEXT",
            "CREATE INDEX IF NOT EXISTS events_email ON events (email) WHERE email IS NOT NULL",
            "ALTER TABLE dedupe ADD COLUMN IF NOT EXISTS event_id BIGINT",
            """CREATE TABLE IF NOT EXISTS delivery_calls (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            batch TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL,
            method TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            status TEXT NOT NULL,
            ms INTEGER NOT NULL,
            code TEXT,
            message TEXT,
            records INTEGER)""",
            "CREATE INDEX IF NOT EXISTS delivery_calls_batch ON delivery_calls (batch)",
            # Compaction deletes by time (SQLite walks its rowids in order instead).
            "CREATE INDEX IF NOT EXISTS delivery_calls_at ON delivery_calls (at)",
        ),
    ),
)
