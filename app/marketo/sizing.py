"""Bound each batch call by Marketo's body limit as well as its record count. Pure.

Marketo answers HTTP 413 to a body over 1 MB (marketo-reference §3.1, §4: "size batches by
bytes"); counting records alone is not enough once records carry long traits. A call refused
anyway is split by the dispatcher (`app.delivery.reshape`), so this is the cheap first line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any
from typing import TypeVar

T = TypeVar("T")

# Marketo accepts at most 300 records per sync, lookup, activity or list-membership call.
MAX_RECORDS_PER_CALL = 300

# Marketo refuses bodies over 1 MB (413); stay well below to leave room for the envelope.
MAX_BODY_BYTES = 900_000


def encoded_size(record: Any) -> int:
    """Return the bytes `record` adds to a JSON body as `requests` encodes it, separator included.

    `requests` uses `json.dumps` defaults (ASCII escapes, `", "` separators), so this is exact
    for the record, not an estimate.
    """
    return len(json.dumps(record, default=str).encode("utf-8")) + 2


def sized_chunks(
    items: Sequence[T],
    size_of: Callable[[T], int],
    *,
    max_items: int,
    max_bytes: int = MAX_BODY_BYTES,
) -> Iterator[list[T]]:
    """Yield consecutive groups of `items` of at most `max_items` and `max_bytes` each.

    An item larger than `max_bytes` on its own still goes, alone: Marketo's 413 then names it,
    and the dispatcher dead-letters it without holding back the rest.
    """
    current: list[T] = []
    size = 0
    for item in items:
        encoded = size_of(item)
        if current and (len(current) >= max_items or size + encoded > max_bytes):
            yield current
            current, size = [], 0
        current.append(item)
        size += encoded
    if current:
        yield current
