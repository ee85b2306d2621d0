"""What operators read: ISO times, a last error that is current, headers on list commands."""

from __future__ import annotations

import json
import re
import time

from app.coordination.sqlite import SqliteSharedState
from app.delivery.leads import LOCK_NAME
from app.delivery.status import LAST_ERROR_SHOWN_S
from app.delivery.status import marketo_status
from tests.fixtures_intake import basic_auth

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
AUTH = basic_auth()


def test_a_busy_lead_resolver_is_not_recorded_as_an_error(delivery) -> None:
    """Waiting for another worker's lead lookup is normal: `last_error` stays empty."""
    other = SqliteSharedState(delivery.shared.path)  # another worker's handle on the same file
    try:
        with other.exclusive(LOCK_NAME) as held:
            assert held
            delivery.track("u1")
            delivery.engine.dispatcher.run_once(flush=True)
            counts = delivery.store.counts(delivery.clock.now())
            assert counts["pending"] == 1  # waited, not failed
    finally:
        other.close()
    assert delivery.shared.last_error() is None


def test_last_error_has_an_iso_time_and_an_age_then_ages_out(delivery) -> None:
    """A Marketo error shows with an ISO time and its age; an hour later it is no longer shown."""
    delivery.fake.script("/activities/external.json", {"code": "603"})
    delivery.track("u1")
    delivery.drain()
    now = delivery.clock.now()
    error = marketo_status(delivery.settings, delivery.shared, None, now)["marketo"]["last_error"]
    assert error["code"] == "603" and ISO.match(error["at"]) and error["age_s"] == 0.0
    later = now + LAST_ERROR_SHOWN_S + 1
    assert (
        marketo_status(delivery.settings, delivery.shared, None, later)["marketo"]["last_error"]
        is None
    )


def iso_values(document) -> list[str]:
    """Every string that ends in `_at` or is named `at` in a nested document."""
    found = []
    if isinstance(document, dict):
        for key, value in document.items():
            if (key == "at" or key.endswith("_at")) and value is not None:
                found.append(value)
            found += iso_values(value)
    elif isinstance(document, list):
        for value in document:
            found += iso_values(value)
    return found


def test_status_json_and_dead_letters_show_have_iso_times(client, store, runner) -> None:
    """No epoch floats where a person reads: status --json and dead-letters show/list."""
    batch = [{"type": "identify", "userId": "u1", "messageId": "m1"}]
    assert client.post("/v1/batch", json={"batch": batch}, headers=AUTH).status_code == 200
    [claim] = store.claim(1, 60, time.time())
    store.dead([claim.id], "marketo_1006", time.time(), detail="field not found")
    status = json.loads(runner.invoke(args=["status", "--json"]).output)
    times = iso_values(status)
    assert "quota_resets_at" in status["marketo"] and times
    assert all(isinstance(t, str) and ISO.match(t) for t in times), times
    shown = json.loads(runner.invoke(args=["dead-letters", "show", str(claim.id)]).output)
    assert ISO.match(shown["updated_at"])
    listed = runner.invoke(args=["dead-letters", "list"]).output.splitlines()
    assert listed[0].split() == ["ID", "REASON", "TYPE", "UPDATED", "MESSAGE", "ID", "DETAIL"]
    assert shown["updated_at"] in listed[1] and "marketo_1006" in listed[1]


def test_keys_list_has_a_header_row(runner) -> None:
    """`flask keys list` starts with column names; each key is one row under them."""
    made = runner.invoke(
        args=["keys", "create", "--kind", "browser", "--origin", "https://a.example", "--quiet"]
    )
    assert made.exit_code == 0 and made.output.strip().startswith("bk_")
    lines = runner.invoke(args=["keys", "list"]).output.splitlines()
    assert lines[0].split() == ["ID", "KIND", "KEY", "CREATED", "ALLOWED", "ORIGINS", "LABEL"]
    assert any(made.output.strip() in line and "https://a.example" in line for line in lines[1:])
