"""A bad edit of the settings file while the gateway runs keeps the last good settings in force."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import BROWSER_KEY
from tests.fixtures_intake import BEACON_HEADERS
from tests.fixtures_intake import basic_auth
from tests.fixtures_intake import beacon_body


def _answers(client) -> dict[str, int]:
    """Status of one request to each kind of public route."""
    return {
        "track": client.post(
            "/v1/track", json={"userId": "u1", "event": "X"}, headers=basic_auth()
        ).status_code,
        "beacon": client.post(
            "/v1/t", data=beacon_body(userId="u1", event="X"), headers=BEACON_HEADERS
        ).status_code,
        "batch": client.post(
            "/v1/batch",
            json={"batch": [{"type": "track", "userId": "u", "event": "Y"}]},
            headers=basic_auth(),
        ).status_code,
        "loader": client.get(f"/v1/loader.js?k={BROWSER_KEY}").status_code,
        "healthz": client.get("/healthz").status_code,
    }


def test_truncated_settings_keep_the_last_good_ones_until_fixed(
    app, client, runner, settings_path, caplog
):
    caplog.set_level(logging.WARNING)
    good_text = settings_path.read_text()
    before = _answers(client)
    assert set(before.values()) == {200}, before
    assert client.get("/readyz").status_code == 200

    settings_path.write_text(good_text[: len(good_text) // 2])  # a hand edit cut short
    assert _answers(client) == before
    ready = client.get("/readyz")
    assert ready.status_code == 503
    problem = ready.get_json()["failures"]["settings"]
    assert "last good settings" in problem and "not valid JSON" in problem
    assert str(settings_path.parent) not in ready.get_data(as_text=True)
    assert "settings.json" in problem
    for _ in range(5):
        client.get("/readyz")
    logged = [r for r in caplog.records if "is invalid" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in caplog.records]

    status = runner.invoke(args=["status", "--json"])
    assert status.exit_code == 0, status.output
    section = json.loads(status.output)["settings"]
    assert section["state"] == "stale" and str(settings_path) in section["problem"]

    settings_path.write_text(good_text)  # fixed
    assert _answers(client) == before
    assert client.get("/readyz").status_code == 200
    fixed = json.loads(runner.invoke(args=["status", "--json"]).output)["settings"]
    assert fixed == {"state": "ok"}


@pytest.fixture
def unparsable(settings_path):
    """A settings file that is not JSON, written before the app starts."""
    settings_path.parent.mkdir(parents=True, exist_ok=True)
    settings_path.write_text("{not json")


def test_no_public_answer_names_the_settings_path(unparsable, settings_path, client):
    """At start with no good settings the routes answer 503 as before, without the path."""
    answers = [
        client.post("/v1/track", json={"userId": "u1", "event": "X"}, headers=basic_auth()),
        client.post("/v1/t", data=beacon_body(userId="u1", event="X"), headers=BEACON_HEADERS),
        client.get(f"/v1/loader.js?k={BROWSER_KEY}"),
        client.get("/readyz"),
    ]
    for answer in answers:
        assert answer.status_code == 503
        text = answer.get_data(as_text=True)
        assert str(settings_path.parent) not in text and "/instance" not in text, text
    assert "not valid JSON" in answers[0].get_json()["error"]["message"]
