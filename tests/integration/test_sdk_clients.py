"""The real Segment and RudderStack Python SDKs, pointed at the gateway, land every event once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from tests.conftest import SERVER_KEY

CLIENTS: dict[str, Callable[..., Any]] = {"segment": SegmentClient, "rudder": RudderClient}


def calls(client: Any, n: int) -> list[dict]:
    """Make one call of every type; return the messages the SDK built."""
    made = [
        client.track("u1", "Signed Up", {"plan": "pro"}),
        client.identify("u1", {"email": "a@example.com"}, anonymous_id="anon-1"),
        client.page("u1", "Docs", "Intro", {"path": "/docs"}),
        client.screen("u1", "App", "Home"),
        client.group("u1", "g1", {"name": "Acme"}),
        client.alias("anon-1", "u1"),
    ]
    made.extend(client.track(f"u{i}", "Viewed", {"i": i}) for i in range(n))
    return [message for _ok, message in made]


@pytest.mark.parametrize("sdk", sorted(CLIENTS))
def test_sdk_in_sync_mode_lands_each_event_once(live_server, store, sdk):
    client = CLIENTS[sdk](SERVER_KEY, host=live_server, sync_mode=True, max_retries=0)
    messages = calls(client, 3)
    for message in messages:
        [stored] = store.find(message["messageId"])
        assert stored.event.type == message["type"]
        assert stored.event.source_key_id == "key_server"
    counts = store.counts(0)
    total = counts["pending"] + sum(counts["dropped"].values())
    assert total == len(messages) == 9


@pytest.mark.parametrize("sdk", sorted(CLIENTS))
def test_sdk_batches_from_its_queue_land_each_event_once(live_server, store, sdk):
    errors: list[Any] = []
    client = CLIENTS[sdk](
        SERVER_KEY,
        host=live_server,
        upload_size=40,
        max_retries=0,
        on_error=lambda exc, batch: errors.append(exc),
    )
    try:
        messages = calls(client, 150)
        client.flush()
    finally:
        client.join()
    assert errors == []
    ids = [m["messageId"] for m in messages]
    assert len(set(ids)) == len(ids) == 156
    assert all(len(store.find(i)) == 1 for i in ids)


def test_wrong_key_is_reported_to_the_sdk(live_server, store):
    errors: list[Any] = []
    client = SegmentClient(
        "sk_wrong", host=live_server, sync_mode=True, max_retries=0,
        on_error=lambda exc, batch: errors.append(exc),
    )  # fmt: skip
    with pytest.raises(Exception, match="401|unknown_key|send a server key"):
        client.track("u1", "Signed Up")
    assert store.counts(0)["pending"] == 0
