"""A heartbeat thread for leases: claims (app/outbox/leases.py) and call slots (gate.py).

Both keep short leases alive while this process holds them, so a process killed with SIGKILL,
which renews nothing, loses them within one lease. Stdlib only.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

#: The shortest interval between beats, whatever the lease.
MIN_INTERVAL_S = 0.05


class Heartbeat:
    """Calls `step` every `interval` seconds on a daemon thread of the process that started it.

    Started on demand by `ensure`; a forked child starts its own (threads do not survive a
    fork). A failing step is logged and tried again at the next beat.
    """

    def __init__(self, step: Callable[[], object], interval: float, name: str) -> None:
        self.step = step
        self.interval = max(interval, MIN_INTERVAL_S)
        self.name = name
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def ensure(self) -> bool:
        """Start the thread if it is not running in this process; return True when this
        process is not the one that last started it (a fork: what the parent held is not ours).
        """
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return False
        with self._lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return False
            forked = self._pid not in (0, os.getpid())
            self._pid = os.getpid()
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._beat, args=(self._stop,), name=self.name, daemon=True
            )
            self._thread.start()
            return forked

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                self.step()
            except Exception:  # the store is briefly unavailable: try again next beat
                logger.exception("%s: a beat failed", self.name)

    def close(self) -> None:
        """Stop the thread (in the process that started it)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and self._pid == os.getpid():
            thread.join(5)
