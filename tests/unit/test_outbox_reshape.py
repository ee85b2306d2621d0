"""The dispatcher's halving helpers: group sizes after a 413, the batch limit after a 604."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.delivery.outcomes import OK
from app.delivery.outcomes import RETRY
from app.delivery.outcomes import Outcome
from app.delivery.reshape import RECOVERY_S
from app.delivery.reshape import BatchLimit
from app.delivery.reshape import half_of
from app.delivery.reshape import split
from app.delivery.reshape import split_refused
from app.marketo.errors import TimedOut
from app.marketo.errors import TooLarge


@pytest.mark.parametrize(
    ("records", "events", "expected"),
    [
        (40, 40, 20),  # the refused call carried every refused event
        (None, 40, 20),  # count unknown: half the events
        (10, 40, 5),  # a call of 10 was refused: resend at most 5 a call
        (300, 40, 20),  # never more than the events at hand
        (1, 2, 1),  # one merged record for two events: one event a call
        (3, 3, 1),
        (2, 2, 1),
        (0, 5, 1),  # nonsense counts still make progress
    ],
)
def test_half_of_the_refused_call(records: int | None, events: int, expected: int) -> None:
    """Groups hold at most half the refused call's records, and always at least one."""
    assert half_of(records, events) == expected


@pytest.mark.parametrize(
    ("n", "size", "expected"),
    [
        (40, 20, [20, 20]),
        (5, 2, [2, 2, 1]),
        (3, 1, [1, 1, 1]),
        (0, 4, []),
        (4, 0, [1, 1, 1, 1]),
    ],
)
def test_split_keeps_order_and_bounds_each_group(n: int, size: int, expected: list[int]) -> None:
    """Consecutive groups of at most `size`, nothing dropped or repeated."""
    groups = split(list(range(n)), size)
    assert [len(g) for g in groups] == expected
    assert [x for g in groups for x in g] == list(range(n))


def test_repeated_halving_reaches_one_record() -> None:
    """Each level is strictly smaller than the one before, down to single events."""
    sizes, events = [], 300
    while events > 1:
        events = half_of(events, events)
        sizes.append(events)
    assert sizes == [150, 75, 37, 18, 9, 4, 2, 1]


def test_batch_limit_is_absent_until_a_604() -> None:
    """No 604 yet: the configured batch size stands, and recovery changes nothing."""
    limit = BatchLimit()
    assert limit.cap(300) == 300
    assert limit.recover(1e9, 300) is limit


def test_604_halves_the_refused_call_and_never_grows_the_limit() -> None:
    """A 604 on 300 → 150; a later 604 on a bigger (older) call keeps the smaller limit."""
    limit = BatchLimit().shrink(300, now=100.0)
    assert (limit.size, limit.since, limit.cap(300)) == (150, 100.0, 150)
    assert limit.shrink(40, now=101.0).size == 20
    assert limit.shrink(1000, now=102.0).size == 150
    assert BatchLimit().shrink(1, now=0.0).cap(300) == 1
    assert BatchLimit(size=150).cap(100) == 100  # a smaller configured batch size wins


def test_batch_limit_doubles_once_per_recovery_period_back_to_full_size() -> None:
    """Quiet for RECOVERY_S: double; at or past batch_size the limit disappears."""
    limit = BatchLimit().shrink(100, now=0.0)  # 50
    assert limit.recover(RECOVERY_S - 1, 300) is limit
    limit = limit.recover(RECOVERY_S, 300)
    assert (limit.size, limit.since) == (100, RECOVERY_S)
    assert limit.recover(RECOVERY_S + 10, 300).size == 100  # not twice in one period
    limit = limit.recover(2 * RECOVERY_S, 300)
    assert limit.size == 200
    assert limit.recover(3 * RECOVERY_S, 300) == BatchLimit()


def _refused(records: int | None) -> Outcome:
    error = TooLarge("HTTP 413 from /x", marketo_code="413", records=records)
    return Outcome(RETRY, error.reason, str(error), error)


def test_split_refused_resends_halves_until_the_oversized_event_stands_alone() -> None:
    """Eight events refused; only event 5 is too big: halves, then quarters, then it dies."""
    events = [SimpleNamespace(id=i) for i in range(8)]
    outcomes = {e.id: _refused(8) for e in events}
    sent: list[list[int]] = []

    def redeliver(group: list) -> None:
        sent.append([e.id for e in group])
        big = any(e.id == 5 for e in group)
        outcomes.update({e.id: _refused(len(group)) if big else OK for e in group})
        split_refused(group, outcomes, redeliver)

    split_refused(events, outcomes, redeliver)
    assert sent == [[0, 1, 2, 3], [4, 5, 6, 7], [4, 5], [4], [5], [6, 7]]  # depth first
    assert outcomes[5].status == "dead" and outcomes[5].reason == "marketo_413"
    assert "alone" in (outcomes[5].detail or "")
    assert all(outcomes[i] is OK for i in range(8) if i != 5)


def test_split_refused_leaves_other_outcomes_alone() -> None:
    """Nothing refused: nothing resent, outcomes untouched."""
    outcomes = {1: OK, 2: Outcome(RETRY, "marketo_611", "x", TimedOut("611"))}
    split_refused([SimpleNamespace(id=1), SimpleNamespace(id=2)], outcomes, lambda g: 1 / 0)
    assert outcomes[1] is OK and outcomes[2].reason == "marketo_611"


def test_after_a_batch_shrinks_only_on_604() -> None:
    """A batch with a 604 on a call of 40 halves the limit; a clean batch keeps it."""
    timed_out = TimedOut("Marketo 604", marketo_code="604", records=40)
    limit = BatchLimit().after([OK, Outcome(RETRY, "marketo_604", "t", timed_out)], 300, 5.0)
    assert (limit.size, limit.since) == (20, 5.0)
    assert limit.after([OK, _refused(3)], 300, 6.0) is limit
    unknown = TimedOut("Marketo 604", marketo_code="604")
    assert BatchLimit().after([Outcome(RETRY, "m", "t", unknown)], 30, 0.0).size == 15
