"""While the settings file is invalid the gateway refuses clearly and guesses nothing."""

from __future__ import annotations

import sqlite3
import traceback

import pytest

from app.errors import SettingsInvalid
from tests.fixtures_intake import basic_auth

TRACK = {"userId": "u1", "event": "Signed Up", "messageId": "m-1"}


@pytest.fixture
def invalid(write_settings):
    """Settings with a bad Munchkin ID, written before the app starts."""
    return write_settings(munchkin_id="bad")


def test_no_event_is_acknowledged_into_a_store_nobody_configured(
    invalid, app, client, write_settings, tmp_path
):
    """Intake answers 503 while settings are invalid; once fixed, events go to store_url."""
    assert client.get("/readyz").status_code == 503
    refused = client.post("/v1/track", json=TRACK, headers=basic_auth())
    assert refused.status_code == 503
    assert refused.get_json()["error"]["code"] == "settings_invalid"

    configured = tmp_path / "configured.db"
    write_settings(store_url=f"sqlite:///{configured}")
    accepted = client.post("/v1/track", json=TRACK, headers=basic_auth())
    assert accepted.status_code == 200
    with sqlite3.connect(configured) as db:
        assert db.execute("SELECT message_id FROM events").fetchall() == [("m-1",)]


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "--json"],
        ["worker", "--once"],
        ["dead-letters", "list"],
        ["lists", "sync"],
        ["leads", "merge", "1", "2"],
    ],
)
def test_commands_that_need_settings_fail_in_one_line(invalid, runner, args):
    """Exit code 1, the problems and one line; never a traceback."""
    result = runner.invoke(args=args)
    assert result.exit_code == 1, result.output
    assert "settings are invalid" in result.output
    assert "munchkin_id" in result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit


def test_each_refusal_is_a_fresh_error_with_a_short_traceback(invalid, app):
    """The cached validation result is not re-raised: its traceback would grow every time."""
    holder = app.extensions["settings"]
    seen = []
    for _ in range(50):
        with pytest.raises(SettingsInvalid) as info:
            holder.get()
        seen.append(info.value)
    assert len({id(e) for e in seen}) == len(seen)
    assert len(traceback.extract_tb(seen[-1].__traceback__)) <= 3
    assert seen[-1].problems == seen[0].problems


def test_flask_commands_open_no_database_they_do_not_need(
    monkeypatch, write_settings, settings_path, tmp_path
):
    """Under the flask CLI the app opens (and migrates) no store at start, nor for `config`."""
    from app import create_app

    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "true")
    database = tmp_path / "cli-outbox.db"
    write_settings(store_url=f"sqlite:///{database}")
    app = create_app(
        {"SETTINGS_PATH": str(settings_path), "GATEWAY_EMBEDDED_WORKER": False, "ENVIRON": {}}
    )
    changed = app.test_cli_runner().invoke(args=["config", "set", "public_url", '"https://t.io"'])
    assert changed.exit_code == 0, changed.output
    assert not database.exists()
    status = app.test_cli_runner().invoke(args=["status"])  # a command that needs it opens it
    assert status.exit_code == 0 and database.exists()
