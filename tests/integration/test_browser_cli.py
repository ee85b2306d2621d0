"""`flask snippet` and `flask identity-token` through the CLI runner."""

from __future__ import annotations

import json

from app.browser import tokens
from app.settings import write_raw
from tests.conftest import BROWSER_KEY
from tests.conftest import base_document

SECRET_KEY = "test-secret-key-not-for-production"


def test_snippet_uses_public_url(runner, write_settings):
    """The printed snippet loads this key's loader from public_url, async, and queues page()."""
    write_settings(public_url="https://track.example.com")
    result = runner.invoke(args=["snippet"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("<script>") and out.rstrip().endswith("</script>")
    assert f'"https://track.example.com/v1/loader.js?k={BROWSER_KEY}"' in out
    assert "s.async = true" in out and "g.page();" in out
    assert "twice" in out


def test_snippet_url_option_wins(runner, write_settings):
    """--url overrides public_url (staging, local testing)."""
    write_settings(public_url="https://track.example.com")
    result = runner.invoke(
        args=["snippet", "--url", "http://127.0.0.1:5000/", "--key", "key_browser"]
    )
    assert result.exit_code == 0, result.output
    assert '"http://127.0.0.1:5000/v1/loader.js?k=' in result.output


def test_snippet_takes_the_key_by_id_or_by_value(runner, write_settings):
    """`keys create` prints an id and a value; either picks the key, and the output ends a line."""
    write_settings(public_url="https://track.example.com")
    by_id = runner.invoke(args=["snippet", "--key", "key_browser"])
    by_value = runner.invoke(args=["snippet", "--key", BROWSER_KEY])
    assert by_id.exit_code == by_value.exit_code == 0
    assert by_id.output == by_value.output and by_id.output.endswith("</script>\n")
    unknown = runner.invoke(args=["snippet", "--key", "bk_nope"])
    assert unknown.exit_code == 1 and "no browser key" in unknown.output


def test_snippet_without_any_url_says_to_set_public_url(runner):
    """No --url and no public_url: a one-line error naming the setting."""
    result = runner.invoke(args=["snippet"])
    assert result.exit_code == 1
    assert "public_url" in result.output


def test_snippet_key_must_be_a_browser_key(runner, write_settings):
    """--key names a browser key; a server key or unknown id is refused."""
    write_settings(public_url="https://track.example.com")
    for key_id in ("key_server", "key_missing"):
        result = runner.invoke(args=["snippet", "--key", key_id])
        assert result.exit_code == 1 and "no browser key" in result.output


def test_snippet_asks_for_a_key_when_there_are_several(runner, write_settings):
    """With two browser keys, the operator has to choose."""
    keys = base_document()["keys"] + [
        {"id": "key_other", "kind": "browser", "key": "bk_other", "allowed_origins": []}
    ]
    write_settings(public_url="https://track.example.com", keys=keys)
    result = runner.invoke(args=["snippet"])
    assert result.exit_code == 1 and "--key" in result.output
    chosen = runner.invoke(args=["snippet", "--key", "key_other"])
    assert "k=bk_other" in chosen.output


def test_identity_token_prints_a_token_for_hash(runner):
    """The minted token verifies to the email; --json adds expiresAt."""
    result = runner.invoke(args=["identity-token", "ann.lee@example.com", "--ttl", "120"])
    assert result.exit_code == 0, result.output
    assert tokens.verify(SECRET_KEY, result.output.strip()) == "ann.lee@example.com"
    as_json = json.loads(runner.invoke(args=["identity-token", "a@example.com", "--json"]).output)
    assert set(as_json) == {"token", "expiresAt"}


def test_identity_token_refuses_bad_input(runner, settings_path):
    """A bad email, a bad ttl or a missing secret_key exit 1 with the reason."""
    assert "email" in runner.invoke(args=["identity-token", "nope"]).output
    assert "ttl" in runner.invoke(args=["identity-token", "a@example.com", "--ttl", "0"]).output
    document = base_document()
    del document["secret_key"]
    write_raw(settings_path, document)
    result = runner.invoke(args=["identity-token", "a@example.com"])
    assert result.exit_code == 1 and "secret_key" in result.output
