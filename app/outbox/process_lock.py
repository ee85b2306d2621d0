"""The cross-process write lock SQLite adds take; group commit itself is in leader_commit.py."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


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
