"""Leader/follower group commit: concurrent callers share one transaction and one fsync."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import Generic
from typing import TypeVar

from app.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class _Request(Generic[T, R]):
    """One caller's work, its wake-up lock and, once the leader has committed, its outcome."""

    __slots__ = ("work", "result", "error", "done", "wake")

    def __init__(self, work: T) -> None:
        self.work = work
        self.result: R | None = None
        self.error: BaseException | None = None
        self.done = False
        #: Held while the caller waits; the leader releases it to hand over a result or the lead.
        self.wake: Any = None


class GroupCommitter(Generic[T, R]):
    """Leader/follower batching: the caller that finds no commit running commits everyone queued.

    While one transaction is being committed, newcomers queue up; when it ends, the leader wakes
    exactly the callers it committed for and hands the lead to the oldest caller still queued,
    which then commits the whole queue at once. Each waiter sleeps on its own lock, so a commit
    wakes only the threads it concerns (no thundering herd on one condition variable). Under
    load the batches grow by themselves; a lone caller commits at once without waiting.
    """

    def __init__(self, commit: Callable[[Sequence[T]], Sequence[R]]) -> None:
        """`commit` runs all given works in one transaction and returns one result per work."""
        self._commit = commit
        self._mutex = threading.Lock()
        self._queue: list[_Request[T, R]] = []
        self._leading = False
        self._closed = False
        #: Transactions committed so far (tests check that concurrent callers shared them).
        self.commits = 0

    def submit(self, work: T) -> R:
        """Commit `work` (with whatever else is queued) and return its result once durable."""
        request: _Request[T, R] = _Request(work)
        with self._mutex:
            if self._closed:
                raise ServiceUnavailable("the outbox is closed", code="store_unavailable")
            follow = self._leading
            if follow:
                request.wake = threading.Lock()
                request.wake.acquire()
                self._queue.append(request)
            else:
                self._leading = True
        if follow:
            request.wake.acquire()  # released once committed, or when handed the lead
            if not request.done:
                with self._mutex:
                    batch, self._queue = self._queue, []
                self._lead(batch)
        else:
            self._lead([request])
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]

    def _lead(self, batch: list[_Request[T, R]]) -> None:
        """Commit `batch` (the leader's own request among it), then wake it and pass the lead."""
        try:
            self._run(batch)
        finally:
            for other in batch:
                if not other.done:  # only when the commit was interrupted (BaseException)
                    other.error = RuntimeError("group commit interrupted")
                    other.done = True
            with self._mutex:
                successor = self._queue[0] if self._queue else None
                self._leading = successor is not None
            if successor is not None:
                successor.wake.release()
            for other in batch:
                if other.wake is not None:
                    other.wake.release()

    def close(self) -> None:
        """Refuse new work; work already submitted still commits."""
        with self._mutex:
            self._closed = True

    def _run(self, batch: list[_Request[T, R]]) -> None:
        """Commit a batch; if it fails, commit each work alone so one bad request fails alone."""
        try:
            results = self._commit([r.work for r in batch])
            self.commits += 1
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                batch[0].done = True
                return
            logger.warning("group commit of %d requests failed, committing each alone", len(batch))
            for request in batch:
                self._run([request])
            return
        for request, result in zip(batch, results, strict=True):
            request.result = result
            request.done = True
