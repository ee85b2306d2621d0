"""Batch calls bounded by bytes as well as records (Marketo's 1 MB body limit)."""

from __future__ import annotations

import json

import pytest

from app.marketo.sizing import MAX_BODY_BYTES
from app.marketo.sizing import encoded_size
from app.marketo.sizing import sized_chunks


def test_encoded_size_matches_the_body_requests_sends() -> None:
    """The sum of record sizes is the byte length of the `input` array requests writes."""
    records = [{"email": "ann@example.com", "title": "Zoë ☃"}, {"id": 7, "ok": True}]
    body = json.dumps({"input": records}).encode("utf-8")  # what requests' json= sends
    wrapper = len(json.dumps({"input": []}).encode("utf-8"))
    # n records add n sizes, less the one separator the last record does not need
    assert wrapper + sum(encoded_size(r) for r in records) - 2 == len(body)


@pytest.mark.parametrize(
    ("sizes", "max_items", "max_bytes", "expected"),
    [
        ([10] * 7, 3, 1000, [3, 3, 1]),  # count bound
        ([400, 400, 400, 100], 300, 1000, [2, 2]),  # byte bound
        ([2000, 10, 10], 300, 1000, [1, 2]),  # an oversized record goes alone
        ([10, 2000, 10], 300, 1000, [1, 1, 1]),
        ([], 300, 1000, []),
    ],
)
def test_sized_chunks_bound_count_and_bytes(
    sizes: list[int], max_items: int, max_bytes: int, expected: list[int]
) -> None:
    """Groups keep order, hold at most max_items and max_bytes, except a lone oversized item."""
    groups = list(sized_chunks(sizes, lambda s: s, max_items=max_items, max_bytes=max_bytes))
    assert [len(g) for g in groups] == expected
    assert [s for g in groups for s in g] == sizes
    assert all(sum(g) <= max_bytes or len(g) == 1 for g in groups)


def test_default_budget_leaves_room_under_one_megabyte() -> None:
    """The default bound keeps a full call under Marketo's 1 MB with room for the envelope."""
    assert MAX_BODY_BYTES + 10_000 < 1024 * 1024
