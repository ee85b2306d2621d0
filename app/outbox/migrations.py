"""Versioned schema for both store backends: ordered steps recorded in a `schema_version` table.

Each step carries the statements for SQLite and for PostgreSQL side by side, so one version number
means the same tables on either backend. Steps only ever get appended; a released step is never
edited (write a new one instead). Upgrading runs under a lock (BEGIN IMMEDIATE on SQLite, an
advisory lock on PostgreSQL), so several processes starting at once apply each step exactly once.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.outbox.process_lock import ProcessLock
from app.outbox.schema_postgres import POSTGRES_STEPS
from app.outbox.schema_sqlite import SQLITE_STEPS

logger = logging.getLogger(__name__)

# Key of the PostgreSQL advisory lock that serialises concurrent upgrades ("gw-mig" in ASCII).
ADVISORY_LOCK_KEY = 0x67772D6D6967

SQLITE = "sqlite"
POSTGRES = "postgres"


@dataclass(frozen=True)
class Migration:
    """One schema step: a version, a short name, and its statements per backend."""

    version: int
    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


def _steps() -> tuple[Migration, ...]:
    names = [name for name, _ in POSTGRES_STEPS]
    if names != [name for name, _ in SQLITE_STEPS]:
        raise RuntimeError("the SQLite and PostgreSQL schema steps must match one to one")
    pairs = zip(POSTGRES_STEPS, SQLITE_STEPS, strict=True)
    return tuple(
        Migration(i, name, tuple(sqlite), tuple(pg))
        for i, ((name, pg), (_, sqlite)) in enumerate(pairs, start=1)
    )


MIGRATIONS: tuple[Migration, ...] = _steps()

LATEST = MIGRATIONS[-1].version

_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
)


def dialect_of(url: str) -> str:
    """Return which backend a store URL names.

    :raises ValueError: the URL is neither sqlite:/// nor postgresql://.
    """
    if url.startswith("sqlite:///"):
        return SQLITE
    if url.startswith(("postgresql://", "postgres://")):
        return POSTGRES
    raise ValueError("store_url must start with sqlite:/// or postgresql://")


def sqlite_path(url: str) -> str:
    """Return the file path in a `sqlite:///path` URL (`sqlite:////abs/path` for absolute)."""
    return url[len("sqlite:///") :]


def current(conn: Any, dialect: str) -> int:
    """Return the schema version of a database (0 when it has never been migrated)."""
    if dialect == SQLITE:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
    else:
        found = conn.execute("SELECT to_regclass('schema_version')").fetchone()
        found = found if found and found[0] is not None else None
    if not found:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


_ADD_COLUMN = re.compile(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", re.I)


def _sqlite_execute(conn: Any, statement: str) -> None:
    """Run one SQLite step statement; an ADD COLUMN of a column already there does nothing.

    SQLite has no `ADD COLUMN IF NOT EXISTS` (PostgreSQL's steps use it), and a step must be
    safe to re-apply over a half-upgraded copy restored by hand.
    """
    added = _ADD_COLUMN.match(statement.strip())
    if added is not None:
        table, column = added.groups()
        existing = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column in existing:
            return
    conn.execute(statement)


def upgrade(conn: Any, dialect: str, target: int = LATEST) -> list[Migration]:
    """Apply every step above the database's version up to `target`; return the steps applied.

    `conn` is a sqlite3 connection in autocommit mode (isolation_level=None) or a psycopg
    connection outside a transaction; the whole upgrade is one transaction on both.
    """
    if dialect == SQLITE:
        return _upgrade_sqlite(conn, target)
    return _upgrade_postgres(conn, target)


def _pending(version: int, target: int) -> list[Migration]:
    return [m for m in MIGRATIONS if version < m.version <= target]


def _upgrade_sqlite(conn: sqlite3.Connection, target: int) -> list[Migration]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_VERSION_TABLE)
        steps = _pending(current(conn, SQLITE), target)
        for step in steps:
            for statement in step.sqlite:
                _sqlite_execute(conn, statement)
            conn.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (step.version, step.name, time.time()),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    _log(steps)
    return steps


def _upgrade_postgres(conn: Any, target: int) -> list[Migration]:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        conn.execute(_VERSION_TABLE)
        steps = _pending(current(conn, POSTGRES), target)
        for step in steps:
            for statement in step.postgres:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (%s, %s, %s)",
                (step.version, step.name, time.time()),
            )
    _log(steps)
    return steps


def sqlite_lock_path(path: Path | str) -> Path:
    """Return the side file whose flock serialises a SQLite database's writers."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


def prepare_sqlite(path: Path | str, target: int = LATEST) -> list[Migration]:
    """Switch a SQLite database to WAL and upgrade its schema, one process at a time.

    Several processes starting together (gunicorn workers, `flask worker`) would otherwise race
    on a new file: SQLite refuses a concurrent journal-mode switch at once with "database is
    locked" instead of waiting for it. Under the side file's flock the first one does the work
    and the others find it done.
    """
    lock = ProcessLock(sqlite_lock_path(path))
    try:
        with lock:
            conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                return upgrade(conn, SQLITE, target)
            finally:
                conn.close()
    finally:
        lock.close()


def _log(steps: list[Migration]) -> None:
    for step in steps:
        logger.info("schema upgraded to version %d (%s)", step.version, step.name)


def _connect(url: str) -> tuple[Any, str]:
    dialect = dialect_of(url)
    if dialect == SQLITE:
        return sqlite3.connect(sqlite_path(url), isolation_level=None, timeout=30.0), dialect
    import psycopg  # only PostgreSQL deployments need the driver loaded

    from app.outbox.pg_pool import split_url

    return psycopg.connect(split_url(url)[0], autocommit=True), dialect


def upgrade_url(url: str, target: int = LATEST) -> tuple[int, int]:
    """Upgrade the database a store URL names; return its versions before and after."""
    if dialect_of(url) == SQLITE:
        before = current_url(url)
        prepare_sqlite(sqlite_path(url), target)
        return before, current_url(url)
    conn, dialect = _connect(url)
    try:
        before = current(conn, dialect)
        upgrade(conn, dialect, target)
        return before, current(conn, dialect)
    finally:
        conn.close()


def current_url(url: str) -> int:
    """Return the schema version of the database a store URL names (0 for a missing file)."""
    if dialect_of(url) == SQLITE and not os.path.exists(sqlite_path(url)):
        return 0
    conn, dialect = _connect(url)
    try:
        return current(conn, dialect)
    finally:
        conn.close()


def pending_steps(version: int) -> list[Migration]:
    """Return the steps a database at `version` still needs."""
    return _pending(version, LATEST)
