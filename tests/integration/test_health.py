"""Liveness and readiness probes."""

from __future__ import annotations

import json
import re
import tomllib

from app.version import __version__
from tests.fixtures_intake import REPO


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "version": __version__}


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


def test_one_version_is_shared_by_package_browser_library_healthz_and_cli(client, runner):
    """pyproject reads app/version.py, gateway.js says the same, and both probes print it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "app.version.__version__"
    }
    [library] = re.findall(r"var VERSION = '([^']+)';", (REPO / "static/gateway.js").read_text())
    assert library == __version__
    assert client.get("/healthz").get_json()["version"] == __version__
    printed = runner.invoke(args=["gateway", "version"])
    assert printed.exit_code == 0 and printed.output == f"marketo-gateway {__version__}\n"
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert f"## {__version__}" in changelog  # every release has its entry
