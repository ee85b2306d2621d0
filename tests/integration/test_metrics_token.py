"""`metrics_token`: with it set, /metrics answers only a scraper that sends it as a bearer token."""

from __future__ import annotations

import json

from app import create_app
from app.lifecycle import close as close_app

TOKEN = "scrape-" + "x" * 24


def test_metrics_are_open_without_a_token(client) -> None:
    """The default (no token): /metrics answers, for a scraper on loopback or behind nginx."""
    assert client.get("/metrics").status_code == 200


def test_metrics_need_the_bearer_token_when_one_is_set(client, write_settings) -> None:
    """No header, another scheme or a wrong token is a 401 naming Bearer; the token is served."""
    write_settings(metrics_token=TOKEN)
    for headers in ({}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer nope"}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert refused.get_json()["error"]["code"] == "metrics_token_required"
        assert "gateway_" not in refused.get_data(as_text=True)
    served = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert served.status_code == 200
    assert "gateway_events_accepted" in served.get_data(as_text=True)


def test_metrics_token_is_masked_and_a_short_one_refused(runner, write_settings) -> None:
    """config show masks it; a short one is refused."""
    write_settings(metrics_token=TOKEN)
    shown = runner.invoke(args=["config", "show", "--json"]).output
    assert TOKEN not in shown and json.loads(shown)["metrics_token"] == "********"
    short = runner.invoke(args=["config", "set", "metrics_token", "short"])
    assert short.exit_code == 1 and "at least 16 characters" in short.output


def test_the_environment_token_wins(settings_path, write_settings) -> None:
    """GATEWAY_METRICS_TOKEN replaces the file's token (secrets may stay out of the file)."""
    write_settings(metrics_token=TOKEN)
    env_token = "from-the-env-" + "y" * 16
    app = create_app(
        {
            "TESTING": True,
            "SETTINGS_PATH": str(settings_path),
            "GATEWAY_EMBEDDED_WORKER": False,
            "ENVIRON": {"GATEWAY_METRICS_TOKEN": env_token},
        }
    )
    try:
        client = app.test_client()
        assert (
            client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
        )
        served = client.get("/metrics", headers={"Authorization": f"Bearer {env_token}"})
        assert served.status_code == 200
    finally:
        close_app(app)
