"""Read-only queries the operator console runs: recent events with filters, per-minute activity.

Both backends share the SQL; `mark` is the backend's placeholder (`?` or `%s`). Every query
is answered from an index added by the `console` and `delivery_log` schema steps, so none
reads the whole table: identifier filters walk events_user / events_anonymous / events_email, a
messageId goes through the dedupe table's primary key (each entry names the event it stored,
per source key), a finished-state
filter walks events_recent (state, updated_at, received_at) newest first (open and held states
read events_due / events_held), and the chart reads those indexes for the last hour.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from app.outbox.store import State
from app.outbox.store import dedupe_key_of

#: Filters `recent` accepts, mapped to their column.
FILTER_COLUMNS = {
    "user_id": "user_id", "anonymous_id": "anonymous_id", "email": "email",
    "message_id": "message_id",
}  # fmt: skip

#: Final and open states in the order the chart draws them.
ALL_STATES = tuple(s.value for s in State)

#: Most rows one console page lists.
MAX_LIMIT = 200


#: States whose rows events_recent holds (a partial index, so the open-event queries of
#: intake and delivery keep their own indexes); the open ones, which events_due holds.
FINAL_STATES = ("delivered", "dropped", "dead")
OPEN_STATES = ("pending", "in_flight")


def _in(states: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{s}'" for s in states) + ")"


def recent_query(
    columns: str,
    filters: Mapping[str, str | None],
    limit: int,
    mark: str,
    keys: Sequence[str] = (),
) -> tuple[str, tuple[Any, ...]]:
    """Return (SQL, args) for the newest events matching every given filter.

    A state filter repeats the partial index's condition (`state IN (...)`) so the planner can
    use it: SQLite does not infer `state IN (...)` from `state = ?`. A messageId is looked up
    in the dedupe entries of each source key in `keys` (`store.dedupe_key`), so only events
    inside the dedupe window are found by it; an email is matched lower-cased, as stored.

    :raises ValueError: an unknown filter or state.
    """
    where: list[str] = []
    args: list[Any] = []
    order = "id DESC"
    for name, value in filters.items():
        if value in (None, ""):
            continue
        if name == "message_id":
            entries = [dedupe_key_of(key, value) for key in keys] or [""]
            where.append(
                f"id IN (SELECT event_id FROM dedupe WHERE message_id IN"
                f" ({', '.join([mark] * len(entries))})) AND message_id = {mark}"
            )
            args.extend(entries)
        elif name == "email":
            where.append(f"email = {mark}")
            value = value.strip().lower()
        elif name == "state":
            if value not in ALL_STATES:
                raise ValueError(f"unknown state {value!r}")
            group = FINAL_STATES if value in FINAL_STATES else OPEN_STATES
            if value in group:
                where.append(f"state IN {_in(group)}")
            where.append(f"state = {mark}")
            order = "updated_at DESC"
        elif name in FILTER_COLUMNS:
            where.append(f"{FILTER_COLUMNS[name]} = {mark}")
        else:
            raise ValueError(f"unknown filter {name!r}")
        args.append(value)
    # An identifier filter is the selective one: order by id so its index drives the walk.
    if any(filters.get(name) for name in FILTER_COLUMNS):
        order = "id DESC"
    clause = (" WHERE " + " AND ".join(where)) if where else " WHERE type != 'placeholder'"
    sql = f"SELECT {columns} FROM events{clause} ORDER BY {order} LIMIT {mark}"
    return sql, (*args, max(1, min(int(limit), MAX_LIMIT)))


def activity_queries(since: float, mark: str, minute: str) -> list[tuple[str, tuple[Any, ...]]]:
    """Return the per-minute queries: outcomes by update time, arrivals by receive time.

    `minute` is the backend's expression turning a column into a whole minute number
    (`{col}` is replaced). Finished rows come from events_recent (a row received since `since`
    was also updated since then), open ones from events_due, held ones from events_held.
    """
    by_update, by_arrival = minute.format(col="updated_at"), minute.format(col="received_at")
    outcomes = (
        f"SELECT state, {by_update} AS m, COUNT(*) FROM events"
        f" WHERE state IN {_in(FINAL_STATES)} AND updated_at >= {mark} GROUP BY state, m"
    )
    finished = (
        f"SELECT 'received', {by_arrival} AS m, COUNT(*) FROM events WHERE state IN"
        f" {_in(FINAL_STATES)} AND updated_at >= {mark} AND received_at >= {mark} GROUP BY m"
    )
    still_open = (
        f"SELECT 'received', {by_arrival} AS m, COUNT(*) FROM events"
        f" WHERE state IN {_in(OPEN_STATES)} AND received_at >= {mark} GROUP BY m"
    )
    held = (
        f"SELECT 'received', {by_arrival} AS m, COUNT(*) FROM events"
        f" WHERE state = 'held' AND received_at >= {mark} GROUP BY m"
    )
    return [
        (outcomes, (since,)),
        (finished, (since, since)),
        (still_open, (since,)),
        (held, (since,)),
    ]


def activity_series(
    execute: Callable[[str, tuple[Any, ...]], Iterable[Sequence[Any]]],
    since: float,
    mark: str,
    minute: str,
) -> dict[str, dict[int, int]]:
    """Run the activity queries; return {series: {minute number: count}}."""
    series: dict[str, dict[int, int]] = {
        "received": {}, "delivered": {}, "dropped": {}, "dead": {},
    }  # fmt: skip
    for sql, args in activity_queries(since, mark, minute):
        for name, m, n in execute(sql, args):
            series[name][int(m)] = series[name].get(int(m), 0) + int(n)
    return series
