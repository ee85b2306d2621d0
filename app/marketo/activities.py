"""Custom activities: send built activities ≤ 300 and < 1 MB a call, one result per event."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.marketo.client import MarketoClient
from app.marketo.errors import RECORD_LEAD_MISSING
from app.marketo.errors import RECORD_OK
from app.marketo.errors import RECORD_RETRY
from app.marketo.errors import MarketoError
from app.marketo.errors import Permanent
from app.marketo.errors import Retryable
from app.marketo.errors import Transient
from app.marketo.errors import record_class
from app.marketo.errors import record_error
from app.marketo.errors import record_reasons
from app.marketo.sizing import MAX_RECORDS_PER_CALL
from app.marketo.sizing import encoded_size
from app.marketo.sizing import sized_chunks

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sent:
    """What happened to one activity: `error` None means added; `lead_missing` is a 1004."""

    lead_id: int
    error: MarketoError | None = None
    lead_missing: bool = False


def chunks(items: Sequence[tuple[int, dict[str, Any]]]) -> Iterator[list[tuple[int, dict]]]:
    """Split activities into calls bounded by count and by encoded size."""
    return sized_chunks(items, lambda item: encoded_size(item[1]), max_items=MAX_RECORDS_PER_CALL)


def send_activities(
    client: MarketoClient, items: Sequence[tuple[int, dict[str, Any]]]
) -> dict[int, Sent]:
    """Send (event id, activity) pairs and return a result per event id; never raises.

    A retryable failure stops sending: that call's and every later activity get the error, so
    nothing already added is sent twice by the retry.
    """
    results: dict[int, Sent] = {}
    stopped: Retryable | None = None
    for chunk in chunks(items):
        if stopped is not None:
            results.update({eid: Sent(a["leadId"], stopped) for eid, a in chunk})
            continue
        try:
            rows = client.add_activities([a for _, a in chunk])
        except Retryable as exc:
            stopped = exc
            results.update({eid: Sent(a["leadId"], exc) for eid, a in chunk})
            continue
        except Permanent as exc:
            results.update({eid: Sent(a["leadId"], exc) for eid, a in chunk})
            continue
        for index, (event_id, act) in enumerate(chunk):
            row = rows[index] if index < len(rows) else {"status": "skipped"}
            results[event_id] = _judge(act["leadId"], row)
    return results


def _judge(lead_id: int, row: dict[str, Any]) -> Sent:
    if row.get("status") in ("added", "created", "updated"):
        return Sent(lead_id)
    reasons = record_reasons(row)
    kind = record_class(reasons)
    error = record_error(reasons)
    if kind == RECORD_OK:
        return Sent(lead_id)
    if kind == RECORD_LEAD_MISSING:
        return Sent(lead_id, error, lead_missing=True)
    if kind == RECORD_RETRY:
        return Sent(lead_id, Transient(str(error), marketo_code=error.marketo_code))
    return Sent(lead_id, error)
