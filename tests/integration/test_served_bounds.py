"""Bounded answers and bodies under the shipped gunicorn config, measured on a real server."""

from __future__ import annotations

import gzip
import http.client
import json

import pytest

from tests.conftest import base_document
from tests.fixtures_intake import basic_auth

# Segment's batch limit is 500 KB; an answer may be a small multiple of it at most.
MAX_ANSWER_BYTES = 64 * 1024

# What one worker may hold at its peak whatever a key holder sends.
MAX_WORKER_RSS_KB = 150 * 1024


def vm_hwm_kb(pid: int) -> int:
    """Return a process's peak resident set size (VmHWM) in KiB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def worker_pid(server) -> int:
    """Return the pid of the single gunicorn worker."""
    with open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children") as fh:
        (pid,) = [int(p) for p in fh.read().split()]
    return pid


def test_a_tiny_gzip_of_170000_empty_items_gets_a_small_answer_and_costs_little(serve):
    server = serve(base_document())
    raw = b'{"batch":[' + b",".join([b"{}"] * 170_000) + b"]}"
    body = gzip.compress(raw, 9)
    assert len(body) < 1_000 and len(raw) < 512_000
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request(
        "POST",
        "/v1/batch",
        body=body,
        headers={**basic_auth(), "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    answer = conn.getresponse()
    data = answer.read()
    conn.close()
    peak = vm_hwm_kb(worker_pid(server))
    print(f"\namplification batch: {len(body)} B sent, {len(data)} B answered, peak RSS {peak} KiB")
    assert answer.status == 413 and json.loads(data)["error"]["code"] == "too_many_events"
    assert len(data) < MAX_ANSWER_BYTES
    assert peak < MAX_WORKER_RSS_KB


def test_a_batch_of_bad_items_lists_a_bounded_number_and_counts_them_all(client):
    items = [{"type": "track", "userId": "u1"}] * 2_000 + [
        {"type": "track", "userId": "u1", "event": "E"}
    ]
    answer = client.post("/v1/batch", json={"batch": items}, headers=basic_auth())
    assert answer.status_code == 200
    document = answer.get_json()
    assert len(document["rejected"]) == 100 and document["rejected_count"] == 2_000
    assert len(answer.get_data()) < MAX_ANSWER_BYTES


def test_a_batch_over_the_item_limit_is_a_413(client, store):
    items = [{"type": "track", "userId": "u1", "event": "E"}] * 2_501
    answer = client.post("/v1/batch", json={"batch": items}, headers=basic_auth())
    assert answer.status_code == 413
    assert store.counts(0)["pending"] == 0


def test_twenty_oversized_bodies_on_one_keep_alive_connection_get_twenty_413s(serve):
    server = serve(base_document())
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    body = b'{"batch": [' + b" " * (2 * 1024 * 1024) + b"]}"
    statuses = []
    for _ in range(20):
        conn.request(
            "POST", "/v1/batch", body=body, headers={**basic_auth(), "Content-Type": "text/plain"}
        )
        answer = conn.getresponse()
        answer.read()
        statuses.append(answer.status)
    conn.close()
    assert statuses == [413] * 20


@pytest.mark.parametrize(
    "path,headers",
    [("/v1/track", {}), ("/v1/track", basic_auth("sk_wrong")), ("/v1/batch", basic_auth("x"))],
)
def test_a_401_names_the_basic_scheme(client, path, headers):
    answer = client.post(path, json={"userId": "u", "event": "E"}, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Basic realm="gateway"'
