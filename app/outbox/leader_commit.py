"""Leader/follower group commit: concurrent callers share one transaction and one fsync."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from collections.abc import Sequence
from contextlib import AbstractContextManager
from contextlib import nullcontext
from typing import Any
from typing import Generic
from typing import TypeVar

from app.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# How long a caller waits for its commit before it withdraws and answers 503. Far above any
# healthy wait (a queue plus one commit: milliseconds), below the 10-15 s SDKs time out after,
# so a client hears "retry" from us rather than from its own timer.
COMMIT_WAIT_S = 8.0


class _Request(Generic[T, R]):
    """One caller's work, its wake-up lock and, once the leader has committed, its outcome."""

    __slots__ = ("work", "result", "error", "done", "wake", "lead", "sealed", "withdrawn")

    def __init__(self, work: T) -> None:
        self.work = work
        self.result: R | None = None
        self.error: BaseException | None = None
        self.done = False
        #: Held while the caller waits; the leader releases it to hand over a result or the lead.
        self.wake: Any = None
        #: Handed the lead by the previous leader (it will be woken to commit the queue).
        self.lead = False
        #: Inside a transaction that is running: the caller must wait for its outcome.
        self.sealed = False
        #: The caller gave up before its work was sealed; no leader may commit it.
        self.withdrawn = False


class GroupCommitter(Generic[T, R]):
    """Leader/follower batching: the caller that finds no commit running commits everyone queued.

    While one transaction is being committed, newcomers queue up; when it ends, the leader wakes
    exactly the callers it committed for and hands the lead to the oldest caller still queued,
    which then commits the whole queue at once. Each waiter sleeps on its own lock, so a commit
    wakes only the threads it concerns (no thundering herd on one condition variable). Under
    load the batches grow by themselves; a lone caller commits at once without waiting.

    A leader takes `lock` (the cross-process write lock) before it seals its batch: only then
    are the works fixed. A follower that has waited `wait_s` without being sealed withdraws and
    gets `ServiceUnavailable`, with nothing of its work stored; a sealed one waits for the
    transaction it is in, whose own waits (busy timeout) are bounded.
    """

    def __init__(
        self,
        commit: Callable[[Sequence[T]], Sequence[R]],
        lock: AbstractContextManager[Any] | None = None,
        wait_s: float = COMMIT_WAIT_S,
    ) -> None:
        """`commit` runs all given works in one transaction and returns one result per work."""
        self._commit = commit
        self._lock = lock if lock is not None else nullcontext()
        self._wait_s = wait_s
        self._mutex = threading.Lock()
        self._queue: list[_Request[T, R]] = []
        self._leading = False
        self._closed = False
        #: Transactions committed so far (tests check that concurrent callers shared them).
        self.commits = 0
        #: Callers that gave up waiting (each answered 503 with nothing stored).
        self.withdrawn = 0

    @property
    def leading(self) -> bool:
        """Tell whether a leader is committing right now."""
        return self._leading

    def submit(self, work: T) -> R:
        """Commit `work` (with whatever else is queued) and return its result once durable.

        :raises ServiceUnavailable: closed, or no leader sealed this work within `wait_s`.
        """
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
            self._follow(request)
            if not request.done:
                with self._mutex:
                    batch, self._queue = self._queue, []
                self._lead(batch)
        else:
            self._lead([request])
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]

    def _follow(self, request: _Request[T, R]) -> None:
        """Wait to be committed or handed the lead; withdraw if neither comes in time."""
        if request.wake.acquire(timeout=self._wait_s):
            return
        with self._mutex:
            give_up = not (request.sealed or request.done or request.lead)
            if give_up:
                request.withdrawn = True
                if request in self._queue:
                    self._queue.remove(request)
                self.withdrawn += 1
        if give_up:
            logger.warning("no outbox commit within %.1f s; answering 503", self._wait_s)
            raise ServiceUnavailable(
                "the outbox did not commit in time; nothing was stored, retry",
                code="store_unavailable",
            )
        request.wake.acquire()  # sealed or leading: the transaction's own waits are bounded

    def _lead(self, batch: list[_Request[T, R]]) -> None:
        """Commit `batch` (the leader's own request among it), then wake it and pass the lead."""
        try:
            with self._lock:
                with self._mutex:
                    batch = [r for r in batch if not r.withdrawn]
                    for r in batch:
                        r.sealed = True
                self._run(batch)
        except Exception as exc:  # taking the lock failed: nothing ran, every caller hears why
            for other in batch:
                if not other.done:
                    other.error = exc
                    other.done = True
        finally:
            for other in batch:
                if not other.done:  # the lock or the commit was interrupted (BaseException)
                    other.error = RuntimeError("group commit interrupted")
                    other.done = True
            with self._mutex:
                successor = self._queue[0] if self._queue else None
                self._leading = successor is not None
                if successor is not None:
                    successor.lead = True
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
