"""Row conversions and delivery-log statements both store backends share."""

from __future__ import annotations

import json
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from app.outbox.store import MAX_CALL_MESSAGE
from app.outbox.store import MAX_HISTORY
from app.outbox.store import Attempt
from app.outbox.store import Call
from app.outbox.store import Event
from app.outbox.store import State
from app.outbox.store import StoredEvent


def row_to_stored(row: Sequence[Any]) -> StoredEvent:
    """Rebuild a StoredEvent from an `events` row in the column order the queries select."""
    (rid, mid, typ, key_id, kind, received, ts, uid, aid, payload, state, reason, detail) = row[:13]
    attempts, next_at, updated, lead_id, history = row[13:18]
    event = Event(mid, typ, key_id, kind, received, ts, uid, aid, json.loads(payload), payload)
    return StoredEvent(
        rid, event, State(state), reason, detail, attempts, next_at, updated, lead_id,
        tuple(json.loads(history)) if history else (),
    )  # fmt: skip


RECORD_CALL = (
    "INSERT INTO delivery_calls (batch, at, method, endpoint, status, ms, code, message, records)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
CALL_COLUMNS = "batch, at, method, endpoint, status, ms, code, message, records"


def call_row(batch: str, call: Call) -> tuple:
    """Return the parameters of one delivery_calls row (RECORD_CALL, both backends)."""
    message = call.message[:MAX_CALL_MESSAGE] if call.message else None
    return (batch, call.at, call.method, call.endpoint, call.status, int(call.ms), call.code,
            message, call.records)  # fmt: skip


def attempt_rows(attempts: Mapping[int, Attempt]) -> list[tuple]:
    """Return the parameters of each event's history append, in id order (both backends'
    NOTE_ATTEMPT take lead id, history cap, attempt JSON, event id)."""
    return [
        (a.lead_id, MAX_HISTORY, json.dumps(a.as_dict(), separators=(",", ":")), event_id)
        for event_id, a in sorted(attempts.items())
    ]


def calls_by_batch(rows: Iterable[Sequence[Any]]) -> dict[str, list[Call]]:
    """Group delivery_calls rows (CALL_COLUMNS order) by batch, keeping their order."""
    found: dict[str, list[Call]] = {}
    for batch, *values in rows:
        found.setdefault(batch, []).append(Call(*values))
    return found
