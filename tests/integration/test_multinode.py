"""Three gateway nodes on one PostgreSQL database behave as one gateway towards Marketo.

Each node is gunicorn with its embedded dispatcher. Events are posted to all three; one node is
killed with SIGKILL mid-delivery. Nothing may be lost, nothing delivered twice except what the
dead node had in flight (its claims, told apart from the live nodes' because nobody renews
them), and together the nodes must keep Marketo's limits: no 606/615, never
more calls in flight than the `concurrency` setting.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests

from app.devtools.fake_marketo import FakeMarketo
from app.outbox import migrations
from app.outbox.pg_pool import split_url
from tests.fixtures_intake import basic_auth
from tests.fixtures_marketo import marketo_document
from tests.multinode.node import Node

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

NODES = 3
EVENTS = 3000
POST_BATCH = 100
# Many visitors: one visitor's events go one batch at a time, so few visitors would serialise
# the nodes and leave most of them idle at the kill.
USERS = 1000
# Limits the gateway keeps; the fake enforces the same ones, so any excess shows as 606/615.
CONCURRENCY = 2
CALLS_PER_20S = 90
BATCH_SIZE = 100
# Short, so the killed node's claims come back quickly; well above one batch's delivery time.
LEASE_S = 6.0
# Marketo-side latency per activities call, so the nodes' calls overlap and contend for slots.
CALL_DELAY_S = 0.5
DELIVERY_DEADLINE_S = 45.0
KILL_AFTER_ACTIVITIES = 600


def post_events(url: str, mids: list[str], offset: int) -> None:
    """Post track events to one node in /v1/batch requests; every request must be acked."""
    session = requests.Session()
    for start in range(0, len(mids), POST_BATCH):
        batch = [
            {"type": "track", "userId": f"user-{(offset + start + n) % USERS}",
             "event": "Signed Up", "messageId": mid, "properties": {"plan": mid}}
            for n, mid in enumerate(mids[start : start + POST_BATCH])
        ]  # fmt: skip
        response = session.post(f"{url}/v1/batch", json={"batch": batch}, headers=basic_auth())
        assert response.status_code == 200, response.text


def poll(condition, deadline_s: float, what: str) -> None:
    """Wait until `condition()` is true, failing with `what` after the deadline."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        threading.Event().wait(0.05)  # poll interval, not a wait for an outcome


def claims_of_the_dead(url: str) -> set[str]:
    """Return the messageIds the killed node held in flight when it died.

    Live nodes renew their claims (`app.outbox.leases`) every LEASE_S / 5 and settle them, so a
    claim open at the kill that changes before its lease ends belongs to a live node; one that
    stays exactly as it was until its lease ends had nobody renewing it: the dead node's. A
    lapsed claim can be taken again only once its lease has ended, so changes seen before then
    are always its owner's. Polled densely until the last of those leases has ended.
    """
    query = "SELECT id, message_id, state, next_attempt_at FROM events WHERE id = ANY(%s)"
    with psycopg.connect(split_url(url)[0], autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id, message_id, next_attempt_at FROM events WHERE state = 'in_flight'"
        ).fetchall()
        lease_end = {row[0]: row[2] for row in rows}
        unchanged = {row[0]: row[1] for row in rows}
        while unchanged:
            started = time.time()  # the nodes' clock: same machine
            if started >= max(lease_end[i] for i in unchanged):
                break
            for event_id, _, state, until in conn.execute(query, (list(unchanged),)):
                if started < lease_end[event_id] and (state, until) != (
                    "in_flight",
                    lease_end[event_id],
                ):
                    del unchanged[event_id]  # renewed or settled in time: a live node's
            threading.Event().wait(0.02)  # poll interval
    return set(unchanged.values())


def sql(url: str, query: str) -> list[tuple]:
    with psycopg.connect(split_url(url)[0], autocommit=True) as conn:
        return conn.execute(query).fetchall()


@pytest.fixture
def fake() -> FakeMarketo:
    fake = FakeMarketo(calls_per_20s=CALLS_PER_20S, concurrency=CONCURRENCY).start()
    fake.script("/activities/external.json", *[{"delay": CALL_DELAY_S}] * 1000)
    yield fake
    fake.stop()


@pytest.fixture
def nodes(pg_url: str, fake: FakeMarketo, write_settings, settings_path: Path, tmp_path: Path):
    limits = {
        "calls_per_20s": CALLS_PER_20S,
        "concurrency": CONCURRENCY,
        "batch_size": BATCH_SIZE,
        "batch_wait_s": 1.0,
        "timeout_s": 5,
    }
    write_settings(store_url=pg_url, **marketo_document(fake, limits=limits))
    migrations.upgrade_url(pg_url)  # as an operator would before starting the nodes
    # Node 0 delivers until it is killed, so the kill always finds it holding claims; nodes 1
    # and 2 take intake until then, and replacement nodes deliver after it (see the test).
    started = [
        Node(settings_path, tmp_path / f"node{i}.log", LEASE_S, dispatcher=i == 0)
        for i in range(NODES)
    ]
    try:
        for node in started:
            node.wait_until_up()
        yield started
    finally:
        for node in started:
            node.stop()


def test_three_nodes_deliver_every_event_once_within_limits_despite_kill_9(
    nodes: list[Node], fake: FakeMarketo, pg_url: str, settings_path: Path, tmp_path: Path
):
    mids = [str(uuid.uuid4()) for _ in range(EVENTS)]
    share = len(mids) // NODES
    posters = [
        threading.Thread(
            target=post_events, args=(node.url, mids[i * share : (i + 1) * share], i * share)
        )
        for i, node in enumerate(nodes)
    ]
    for poster in posters:
        poster.start()
    for poster in posters:
        poster.join()
    assert sql(pg_url, "SELECT count(*) FROM events") == [(EVENTS,)]

    def mid_delivery() -> bool:
        started = len(fake.activities) >= KILL_AFTER_ACTIVITIES
        return (
            started
            and sql(pg_url, "SELECT count(*) FROM events WHERE state = 'in_flight'")[0][0] > 0
        )

    poll(mid_delivery, 30, "deliveries to start")
    nodes[0].kill9()
    killed_in_flight = claims_of_the_dead(pg_url)
    # Two nodes with dispatchers take over together: they must share the budget, recover the
    # dead node's claims and deliver everything else exactly once.
    for i in range(2):
        nodes.append(Node(settings_path, tmp_path / f"relief{i}.log", LEASE_S))
    for node in nodes[-2:]:
        node.wait_until_up()
    assert killed_in_flight, "the killed node held no claim: the kill tested nothing"
    # A dispatcher holds at most one batch per call it may have in flight (its lanes).
    assert len(killed_in_flight) <= BATCH_SIZE * CONCURRENCY
    print(f"claims of the killed node: {len(killed_in_flight)}")

    def all_delivered() -> bool:
        return sql(pg_url, "SELECT count(*) FROM events WHERE state <> 'delivered'") == [(0,)]

    poll(all_delivered, DELIVERY_DEADLINE_S, "every event to be delivered")

    sent = collections.Counter(a["primaryAttributeValue"] for a in fake.activities)
    assert set(sent) == set(mids), "an acknowledged event never reached Marketo"
    assert all(sent[mid] >= 1 for mid in killed_in_flight), "a killed claim was not redelivered"
    twice = {mid for mid, n in sent.items() if n > 1}
    assert twice <= killed_in_flight, "an event was delivered twice outside the killed claims"
    assert len(twice) <= len(killed_in_flight)
    assert max(sent.values()) <= 2
    assert fake.errors_returned["606"] == 0 and fake.errors_returned["615"] == 0
    assert fake.max_concurrency_seen <= CONCURRENCY
    assert len(fake.leads) == USERS, "nodes created the same lead twice"
    assert len(fake.calls_to("/identity/oauth/token")) <= NODES, "tokens are not shared"
