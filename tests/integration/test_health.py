"""Liveness and readiness probes."""

from __future__ import annotations

import json


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_is_ready_with_valid_settings(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "ready"


def test_readyz_names_invalid_settings_and_recovers_without_restart(client, settings_path):
    good = settings_path.read_text()
    settings_path.write_text(json.dumps({"munchkin_id": "oops"}))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "munchkin_id" in response.get_json()["failures"]["settings"]
    settings_path.write_text(good)
    assert client.get("/readyz").status_code == 200


def test_unknown_route_answers_json_404(client):
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    body = response.get_json()
    assert body["success"] is False
    assert body["error"]["code"] == "not_found"


def test_wrong_method_answers_json_405(client):
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_gateway_starts_with_an_unreachable_store_and_readyz_names_it(tmp_path, write_settings):
    from app import create_app

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    document = write_settings(store_url=f"sqlite:///{blocker}/outbox.db")
    app = create_app(
        {
            "SETTINGS_PATH": str(tmp_path / "instance" / "settings.json"),
            "GATEWAY_EMBEDDED_WORKER": False,
            "ENVIRON": {},
        }
    )
    client = app.test_client()
    assert document["store_url"].endswith("not-a-directory/outbox.db")
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "store" in response.get_json()["failures"]
