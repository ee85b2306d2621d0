"""Checkpoints of the SQLite WAL in a background thread, off the intake's commit path."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

THREAD_NAME = "outbox-checkpoint"

# How often the thread copies committed WAL pages back into the database file. At 20,000
# events/s that is about 1.5 MB of WAL each time; once copied, the WAL starts over at its head.
CHECKPOINT_EVERY_S = 0.25

# The intake connection still checkpoints by itself past this many WAL pages (40 MiB): a
# backstop should the thread fall behind, never the usual path (SQLite's default is 1000).
BACKSTOP_PAGES = 10_000


class WalCheckpointer:
    """A named daemon thread running PASSIVE checkpoints on a connection of its own.

    SQLite's automatic checkpoint runs inside the COMMIT that crosses 1000 WAL pages, while that
    worker holds the cross-process write lock: the other worker's commits wait for the copy and
    the database file's fsync. A PASSIVE checkpoint takes no write lock, so here it runs beside
    the commits. Durability does not depend on it: every commit's WAL is fsynced before it
    returns. One thread per process; a forked child starts its own on first use.
    """

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], every_s: float = CHECKPOINT_EVERY_S
    ) -> None:
        self._connect = connect
        self._every_s = every_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        #: Checkpoints run so far in this process (tests poll it).
        self.runs = 0

    def ensure_running(self) -> None:
        """Start the thread unless it already runs in this process or was stopped."""
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._stop.is_set():
                return
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
                self._pid = os.getpid()
                self._thread.start()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(self._every_s):
                try:
                    if conn is None:
                        conn = self._connect()
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.runs += 1
                except sqlite3.Error as exc:  # the next round tries again
                    logger.warning("WAL checkpoint failed: %s", exc)
        finally:
            if conn is not None:
                conn.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and wait for it (a checkpoint under way finishes first)."""
        with self._lock:
            self._stop.set()
            thread = self._thread if self._pid == os.getpid() else None
        if thread is not None:
            thread.join(timeout_s)
