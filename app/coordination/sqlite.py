"""SharedState on SQLite, in the outbox's database file, so every process keeps one Marketo budget.

Each write is one `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so two
processes can never both see a free slot and both take it. The SQL both backends share is in
`shared_sql.py`; here are the connections and the lookups by list, chunked under SQLite's cap
on bound parameters.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.coordination.holder_lock import FlockLocks
from app.coordination.sql import SqlSharedState
from app.coordination.state import Identity
from app.outbox import migrations
from app.outbox.sqlite_sql import private_file

# SQLite caps bound parameters per statement (999 on older builds); chunk IN lists below that.
MAX_PARAMS = 500
# How long a connection waits for another process's write lock before failing.
BUSY_TIMEOUT_MS = 30_000


def sqlite_path(store_url: str) -> str:
    """Return the file path of a `sqlite:///path` URL (four slashes for an absolute path)."""
    if not store_url.startswith("sqlite:///"):
        raise ValueError(f"not a SQLite URL: {store_url!r}")
    return store_url[len("sqlite:///") :]


def _chunks(items: list[Any], size: int = MAX_PARAMS) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqliteSharedState(SqlSharedState):
    """SharedState in a SQLite file; one connection per thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        private_file(Path(path))
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        migrations.prepare_sqlite(path)
        self._locks = FlockLocks(path)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # prepare_sqlite() switched the file to WAL once, under the writers' flock.
            # Limiter state can be rebuilt; NORMAL keeps its commits cheap under WAL.
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """Run one `BEGIN IMMEDIATE` transaction on this thread's connection."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """Lend this thread's connection in autocommit: WAL readers take no lock."""
        yield self._conn()

    def exclusive(self, name: str) -> AbstractContextManager[bool]:
        """Try a named flock on a side file next to the database (freed when its holder dies)."""
        return self._locks.held(name)

    def _before_forget(self) -> None:
        """Have this connection's deletes overwrite the freed bytes with zeros."""
        self._conn().execute("PRAGMA secure_delete = ON")

    def _after_scrub(self) -> None:
        """Back to plain deletes on this connection (the dispatcher's). The space the old rows
        freed was zeroed; older page copies in the WAL go at its next checkpoint. No VACUUM:
        delivery scrubs are not the rare operator act a forget is."""
        self._conn().execute("PRAGMA secure_delete = OFF")

    def _after_forget(self) -> None:
        """Rewrite the file from live rows only, fold the WAL into it and empty the WAL.

        Deleted rows and older copies of updated ones linger in free space otherwise. VACUUM
        costs a pass over the file under the write lock: forgetting is a rare operator act.
        """
        conn = self._conn()
        conn.execute("PRAGMA secure_delete = OFF")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Close every connection this object opened."""
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    # Lookups by list: chunked IN lists ------------------------------------------------------
    def get_leads(self, scope: str, identities: Iterable[Identity]) -> dict[Identity, int]:
        """Return the cached lead id of each known identity."""
        wanted = list(dict.fromkeys(identities))
        found: dict[Identity, int] = {}
        conn = self._conn()
        for kind in {k for k, _ in wanted}:
            values = [v for k, v in wanted if k == kind]
            for chunk in _chunks(values):
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT value, lead_id FROM mkto_leads "
                    f"WHERE scope = ? AND kind = ? AND value IN ({marks})",
                    (scope, kind, *chunk),
                )
                found.update({(kind, value): int(lead) for value, lead in rows})
        return found

    def repoint_leads(self, scope: str, losers: Iterable[int], winner: int) -> int:
        """Point identities of merged-away leads at the winner; return how many moved."""
        moved = 0
        with self._tx() as conn:
            for loser in losers:
                moved += conn.execute(
                    "UPDATE mkto_leads SET lead_id = ? WHERE scope = ? AND lead_id = ?",
                    (winner, scope, loser),
                ).rowcount
                conn.execute(
                    "DELETE FROM mkto_trait_hashes WHERE scope = ? AND lead_id IN (?, ?)",
                    (scope, loser, winner),
                )
        return moved

    def get_trait_hashes(self, scope: str, lead_ids: Iterable[int]) -> dict[int, str]:
        """Return the hash of the fields last sent for each lead."""
        found: dict[int, str] = {}
        for chunk in _chunks(list(set(lead_ids))):
            marks = ",".join("?" * len(chunk))
            rows = self._conn().execute(
                f"SELECT lead_id, hash FROM mkto_trait_hashes "
                f"WHERE scope = ? AND lead_id IN ({marks})",
                (scope, *chunk),
            )
            found.update({int(lead): str(h) for lead, h in rows})
        return found

    def associated(self, scope: str, pairs: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
        """Return which (cookie, lead id) pairs were already associated."""
        found: set[tuple[str, int]] = set()
        conn = self._conn()
        for cookie, lead in set(pairs):
            row = conn.execute(
                "SELECT 1 FROM mkto_cookies WHERE scope = ? AND cookie = ? AND lead_id = ?",
                (scope, cookie, lead),
            ).fetchone()
            if row:
                found.add((cookie, lead))
        return found
