"""Smaller calls after Marketo refuses a big one (413 and 604): the dispatcher's helpers, no I/O.

Marketo asks for "half the batch" in two cases (marketo-reference §3), and they keep different
state, because they have different causes:

- **413, body too large (class F).** A property of the records, so the remedy is per call and
  immediate: the refused events go again at once, uncharged, in groups of at most half the
  refused call (`split_refused`), recursively; a lone event still refused is dead-lettered.
  Nothing is remembered: the next batch starts at full size, and the chunkers already size
  calls by bytes, so a 413 is rare.
- **604, request timed out (class B with half the batch).** A property of Marketo's load right
  now: a call of N records took too long. The events back off, charged, like any transient
  failure, and the dispatcher keeps a `BatchLimit` of N/2 events per batch (hence at most N/2
  records per call) for every call it makes next, not only the refused records' retries. The
  limit doubles back towards `batch_size` after each `RECOVERY_S` without another 604.

The limit is per dispatcher, in memory: no schema change, and a restarted worker simply starts
at full size and learns again from the next 604. Several workers each learn on their own, which
is enough, since each one's calls are what timed out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from app.delivery.outcomes import DEAD
from app.delivery.outcomes import RETRY
from app.delivery.outcomes import Outcome
from app.marketo.errors import TimedOut
from app.marketo.errors import TooLarge
from app.outbox.store import StoredEvent

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The batch limit holds this long after a 604 (or its last doubling) before doubling again:
#: longer than the first retries' backoffs (2 s doubling to 32 s), so the refused records go
#: again at the smaller size, and short enough that full batches return within minutes.
RECOVERY_S = 60.0


def half_of(records: int | None, events: int) -> int:
    """Return the group size after a refused call: half its records (≥ 1).

    `records` is what the refused call carried, when the client could tell; `events` is how many
    events the refusal reached, which bounds it (a merged identify is one record for several).
    """
    carried = events if records is None else min(max(records, 1), events)
    return max(1, carried // 2)


def split(items: Sequence[T], size: int) -> list[list[T]]:
    """Cut `items` into consecutive groups of at most `size` (at least 1), keeping their order."""
    step = max(1, int(size))
    return [list(items[start : start + step]) for start in range(0, len(items), step)]


@dataclass(frozen=True)
class BatchLimit:
    """How many events a batch may hold while Marketo times out; `size` None means no limit.

    Immutable: each change returns a new value, so the dispatcher's state is one assignment.
    """

    size: int | None = None
    #: When `size` last changed (epoch seconds).
    since: float = 0.0

    def cap(self, batch_size: int) -> int:
        """Return the batch size in force: the configured one, or less after a 604."""
        return batch_size if self.size is None else max(1, min(batch_size, self.size))

    def shrink(self, records: int, now: float) -> BatchLimit:
        """Return the limit after a 604 on a call of `records`: half of it, never growing."""
        half = max(1, int(records) // 2)
        return BatchLimit(half if self.size is None else min(self.size, half), now)

    def recover(self, now: float, batch_size: int) -> BatchLimit:
        """Return the limit doubled once per RECOVERY_S since its last change; gone at full size."""
        if self.size is None or now - self.since < RECOVERY_S:
            return self
        doubled = self.size * 2
        return BatchLimit() if doubled >= batch_size else BatchLimit(doubled, now)

    def after(self, outcomes: Iterable[Outcome], events: int, now: float) -> BatchLimit:
        """Return the limit after a batch of `events`: shrunk if any call in it answered 604."""
        timed_out = [
            refused_records(o, events)
            for o in outcomes
            if o.status == RETRY and isinstance(o.error, TimedOut)
        ]
        if not timed_out:
            return self
        shrunk = self.shrink(min(timed_out), now)
        logger.warning(
            "Marketo timed out (604) on a call of %d records: at most %d events a batch for now",
            min(timed_out),
            shrunk.size,
        )
        return shrunk


def refused_records(outcome: Outcome, fallback: int) -> int:
    """Return how many records the failed call behind `outcome` carried, else `fallback`."""
    records = getattr(outcome.error, "records", None)
    return fallback if records is None else max(1, int(records))


def final(outcomes: dict[int, Outcome]) -> dict[int, Outcome]:
    """Return the outcomes that settle an event for good (delivered, dropped, dead)."""
    return {i: o for i, o in outcomes.items() if o.status != RETRY}


def split_refused(
    batch: Sequence[StoredEvent],
    into: dict[int, Outcome],
    redeliver: Callable[[list[StoredEvent]], None],
) -> None:
    """Resend the events of `batch` refused as too large (413) in halves; a lone one dies.

    Groups hold at most half the refused call and each goes through `redeliver` (which splits
    again if needed), so sizes strictly shrink down to one event. An event refused alone is
    dead-lettered with the 413's reason (`marketo_413`); its batch-mates are not held back.
    """
    refused = [e for e in batch if _too_large(into.get(e.id))]
    if len(refused) == 1:
        (alone,) = refused
        error = into[alone.id].error
        detail = f"{error} for this record alone: it is over Marketo's request size limit"
        into[alone.id] = Outcome(DEAD, error.reason if error else "marketo_413", detail, code="413")
        return
    if not refused:
        return
    records = min(refused_records(into[e.id], len(refused)) for e in refused)
    size = half_of(records, len(refused))
    logger.warning(
        "Marketo refused a call of %d records as too large (413): resending %d events "
        "in calls of at most %d",
        records,
        len(refused),
        size,
    )
    for group in split(refused, size):
        redeliver(group)


def _too_large(outcome: Outcome | None) -> bool:
    return outcome is not None and outcome.status == RETRY and isinstance(outcome.error, TooLarge)
