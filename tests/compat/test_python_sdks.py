"""segment-analytics-python and rudder-sdk-python, gzip on, through a faulty network."""

from __future__ import annotations

from typing import Any

import pytest
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from tests.conftest import SERVER_KEY
from tests.fixtures_compat import email_of

CLIENTS = {"segment": SegmentClient, "rudder": RudderClient}

USERS = [f"py-{i}" for i in range(3)]


@pytest.mark.parametrize("sdk", sorted(CLIENTS))
def test_python_sdk_lands_every_event_once_through_faults(compat, sdk):
    errors: list[Any] = []
    client = CLIENTS[sdk](
        SERVER_KEY,
        host=compat.url,
        gzip=True,
        max_retries=6,
        upload_size=5,
        on_error=lambda exc, batch: errors.append(exc),
    )
    try:
        for user in USERS:
            email = {"email": email_of(user)}
            client.identify(user, email, anonymous_id=f"anon-{user}")
            client.track(user, "Signed Up", {"plan": "Pro"}, context={"traits": email})
            client.page(user, "Docs", "Intro", {"path": "/docs"})
            client.alias(f"anon-{user}", user)
        client.flush()
    finally:
        client.join()
    assert errors == []
    compat.check(USERS, paths={"/v1/batch"})
    assert {encoding for _, encoding in compat.proxy.labels} == {"gzip"}


def test_rudder_python_reads_the_error_code(live_server, store):
    """rudder-sdk-python reads `code` at the top level of an error body (a KeyError before)."""
    client = RudderClient("sk_wrong", host=live_server, sync_mode=True, max_retries=0)
    with pytest.raises(Exception) as info:
        client.track("u1", "Signed Up")
    assert "unknown_key" in repr(info.value) and not isinstance(info.value, KeyError)
    assert store.counts(0)["pending"] == 0
