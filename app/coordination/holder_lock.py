"""Named locks that die with their holder: `flock` on SQLite, advisory locks on PostgreSQL.

A lease row with a TTL outlives a process killed with SIGKILL by its whole TTL, and every
other worker waits that long (the `lead-resolution` lock once stalled delivery for five
minutes). The kernel drops a `flock` when the holder's file descriptors close, and PostgreSQL
drops a session's advisory locks when its connection ends, so a dead holder frees the lock at
once. Both are try-locks: a caller that does not get one is told so and comes back later.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """Return a stable signed 64-bit key for a lock name (PostgreSQL's advisory key space)."""
    digest = hashlib.sha256(f"marketo-gateway:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class FlockLocks:
    """Try-locks on side files next to the SQLite database, one file per lock name."""

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path

    def path(self, name: str) -> str:
        """Return the side file of a lock name."""
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        return f"{self.db_path}.{safe}.lock"

    @contextmanager
    def held(self, name: str) -> Iterator[bool]:
        """Yield True while holding the lock, False when another thread or process holds it.

        Each call opens the file anew: flock belongs to an open file, so two threads of one
        process exclude each other too.
        """
        fd = os.open(self.path(name), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the flock


class AdvisoryLocks:
    """Try-locks as PostgreSQL session advisory locks on one dedicated connection per process.

    Advisory locks are re-entrant within a session, so threads of this process also take a
    local lock per name first. If the connection is lost, the server has already released its
    locks: the lock in use is reported lost to nobody (its work is idempotent upserts), and the
    next call reconnects.
    """

    def __init__(self, connect: Any) -> None:
        self._connect = connect  # () -> psycopg.Connection in autocommit
        self._conn: Any = None
        self._pid = 0
        self._conn_lock = threading.Lock()
        self._local: dict[str, threading.Lock] = {}
        self._local_lock = threading.Lock()

    def _local_for(self, name: str) -> threading.Lock:
        with self._local_lock:
            return self._local.setdefault(name, threading.Lock())

    def _session(self) -> Any:
        if self._conn is None or self._pid != os.getpid() or self._conn.closed:
            self._conn = self._connect()
            self._pid = os.getpid()
        return self._conn

    def _call(self, sql: str, key: int) -> bool:
        with self._conn_lock:
            try:
                row = self._session().execute(sql, (key,)).fetchone()
            except Exception:
                self._drop()
                raise
        return bool(row and row[0])

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken: nothing more to release
                logger.debug("closing the advisory-lock session failed", exc_info=True)

    @contextmanager
    def held(self, name: str) -> Iterator[bool]:
        """Yield True while holding the lock, False when another thread or node holds it."""
        local = self._local_for(name)
        if not local.acquire(blocking=False):
            yield False
            return
        key = lock_key(name)
        try:
            try:
                got = self._call("SELECT pg_try_advisory_lock(%s)", key)
            except Exception:
                logger.warning("could not take the %s lock: PostgreSQL unreachable", name)
                got = False
            try:
                yield got
            finally:
                if got:
                    self._unlock(name, key)
        finally:
            local.release()

    def _unlock(self, name: str, key: int) -> None:
        try:
            self._call("SELECT pg_advisory_unlock(%s)", key)
        except Exception:  # the session is gone, and with it the lock
            logger.info("the %s lock went with its lost session", name)

    def close(self) -> None:
        """Close the session (releasing any lock it holds)."""
        with self._conn_lock:
            if self._pid == os.getpid():
                self._drop()
            self._conn = None
