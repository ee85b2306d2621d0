"""No secret reaches the logs: client secret, access tokens, server keys, private key."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import SERVER_KEY
from tests.fixtures_intake import basic_auth


def test_delivery_logs_hold_no_credential_or_token(delivery, caplog):
    caplog.set_level(logging.DEBUG)
    delivery.track("u1")
    delivery.fake.script("activities/external.json", {"code": "601"}, {"http_status": 503})
    delivery.drain(advance=30.0)
    delivery.configure(client_secret="wrong-secret-value")
    delivery.track("u2")
    delivery.drain()

    tokens = {call.headers.get("Authorization", "")[7:] for call in delivery.fake.calls}
    tokens.discard("")
    assert tokens, "the fake saw no bearer token, so this test checked nothing"
    assert caplog.records, "nothing was logged, so this test checked nothing"
    for secret in (delivery.fake.client_secret, "wrong-secret-value", *tokens):
        assert secret not in caplog.text


def test_intake_logs_and_cli_output_hold_no_key(write_settings, app, client, runner, caplog):
    caplog.set_level(logging.DEBUG)
    write_settings(api_private_key="munchkin-private-key", client_secret="cs-value-123")
    ok = client.post("/v1/track", json={"userId": "u1", "event": "X"}, headers=basic_auth())
    bad = client.post("/v1/track", json={"userId": "u", "event": "X"}, headers=basic_auth("sk_bad"))
    assert (ok.status_code, bad.status_code) == (200, 401)
    assert client.get("/readyz").status_code == 200
    shown = runner.invoke(args=["config", "show"])
    status = runner.invoke(args=["status"])
    assert shown.exit_code == status.exit_code == 0
    for secret in (SERVER_KEY, "sk_bad", "munchkin-private-key", "cs-value-123"):
        assert secret not in caplog.text
        assert secret not in shown.output + status.output


DB_URLS = [
    "postgresql://gw:Pa55word@127.0.0.1:5432/gateway",
    "postgresql://gw:Pa55/word?x@127.0.0.1:5432/gateway",
    "postgresql://gw@127.0.0.1:5432/gateway?sslmode=disable&password=Pa55word",
    "postgresql://gw:Pa55%zzword@127.0.0.1:5432/gateway",
    "postgresql://gw@127.0.0.1:5432/gateway?sslmode=require&sslpassword=Pa55word",
    "postgresql://gw@127.0.0.1:5432/gateway?SSLPASSWORD=Pa55word&sslmode=require",
]


@pytest.mark.parametrize("url", DB_URLS)
def test_database_passwords_never_reach_config_show_or_db_errors(write_settings, runner, url):
    """However the password is written in store_url, output and errors mask it."""
    write_settings(store_url=url)
    shown = runner.invoke(args=["config", "show", "--json"])
    assert "Pa55" not in shown.output and "gw" in shown.output
    failed = runner.invoke(args=["db", "current"])  # unreachable or unparsable: an error line
    assert "Pa55" not in failed.output


@pytest.mark.parametrize("url", DB_URLS)
def test_redact_and_scrub_find_every_spelling_of_the_password(url):
    from app.settings.redact import redact
    from app.settings.redact import scrub

    assert "Pa55" not in redact(url)
    assert "127.0.0.1" in redact(url)
    assert scrub(f'driver said: "{url}" / {url.split("@")[0]}', url).count("Pa55") == 0
