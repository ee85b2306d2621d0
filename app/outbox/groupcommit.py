"""Group commit: one writer thread per process lets concurrent requests share one SQLite fsync."""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.errors import ServiceUnavailable

log = logging.getLogger(__name__)

# A request waits at most this long for its commit before answering 503 (the lock may be held by
# another process for up to the busy timeout, so this is a little longer than that).
SUBMIT_TIMEOUT_S = 30.0

# Most operations folded into one transaction; bounds the time a transaction holds the lock.
MAX_OPS_PER_COMMIT = 256

Apply = Callable[[sqlite3.Connection, Any], Any]


class ProcessLock:
    """An exclusive flock on a side file, taken around every write transaction.

    SQLite's busy handler sleeps with back-off (up to 100 ms) while another process holds the
    write lock; a blocking flock wakes the next writer as soon as the lock is free, which keeps
    p99 latency low when several gunicorn workers write to one file. Each instance has its own
    open file, so two instances in one process also exclude each other.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> ProcessLock:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the side file (releases the lock if held)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


class _Op:
    __slots__ = ("work", "done", "result", "error")

    def __init__(self, work: Any) -> None:
        self.work = work
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommitter:
    """Run submitted work in shared write transactions on a dedicated thread.

    Callers block in `submit` until the transaction holding their work has committed (and so been
    fsynced, with `synchronous=FULL`), which is what lets intake answer 200 only once durable.
    Work that arrives while a commit is in progress is folded into the next transaction.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        apply: Apply,
        lock_path: Path | None = None,
    ) -> None:
        self._connect = connect
        self._lock_path = lock_path
        self._apply = apply
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closed = False
        self._plock: ProcessLock | None = None
        self.commits = 0

    def submit(self, work: Any) -> Any:
        """Apply `work` in the next shared transaction; return its result once committed.

        :raises ServiceUnavailable: the store could not commit (locked too long, disk error).
        """
        self._ensure_thread()
        op = _Op(work)
        self._queue.put(op)
        if not op.done.wait(SUBMIT_TIMEOUT_S):
            raise ServiceUnavailable("the outbox did not commit in time", code="store_unavailable")
        if op.error is not None:
            raise ServiceUnavailable(
                f"the outbox could not commit: {op.error}", code="store_unavailable"
            ) from op.error
        return op.result

    def close(self) -> None:
        """Finish queued work and stop the writer thread."""
        with self._lock:
            self._closed = True
            thread = self._thread if self._pid == os.getpid() else None
            self._thread = None
        if thread is not None:
            self._queue.put(None)
            thread.join(SUBMIT_TIMEOUT_S)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("the outbox is closed", code="store_unavailable")
            if self._thread is None or self._pid != os.getpid():
                # After a fork the parent's thread does not exist here: start our own.
                self._queue = queue.SimpleQueue()
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="outbox-group-commit", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        conn = self._connect()
        self._plock = ProcessLock(self._lock_path) if self._lock_path is not None else None
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_OPS_PER_COMMIT:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
                self._commit(conn, batch)
                if stop:
                    return
        finally:
            conn.close()
            if self._plock is not None:
                self._plock.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        try:
            self._transaction(conn, batch)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                log.exception("outbox commit failed")
            else:
                # Isolate the failing work so the others still commit.
                for op in batch:
                    try:
                        self._transaction(conn, [op])
                    except Exception as one_exc:
                        op.error = one_exc
                        log.exception("outbox commit failed")
        for op in batch:
            op.done.set()

    def _transaction(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        if self._plock is None:
            self._transaction_locked(conn, batch)
            return
        with self._plock:
            self._transaction_locked(conn, batch)

    def _transaction_locked(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = [self._apply(conn, op.work) for op in batch]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.commits += 1
        for op, result in zip(batch, results, strict=True):
            op.result = result
