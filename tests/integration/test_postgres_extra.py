"""psycopg is the optional [postgres] extra: SQLite runs without it, PostgreSQL says to install it.

Each test runs a fresh interpreter in which psycopg and psycopg_pool cannot be imported
(`sys.modules[name] = None` before anything else), as on a machine that installed the gateway
without the extra.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.fixtures_intake import REPO

EXTRA_HINT = "pip install 'marketo-gateway[postgres]'"
# Modules that exist only to talk to PostgreSQL; everything else must import without the driver.
POSTGRES_ONLY = {"app.outbox.pg_pool", "app.outbox.postgres", "app.coordination.postgres"}

BLOCK = """
import sys
for name in ("psycopg", "psycopg_pool", "psycopg_binary"):
    sys.modules[name] = None  # `import psycopg` now raises ImportError, as if not installed
"""


def run_without_driver(code: str, *, env: dict[str, str] | None = None) -> dict:
    """Run `code` with the driver blocked; it prints one JSON line, which is returned."""
    script = BLOCK + textwrap.dedent(code)
    environ = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=environ,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_settings(path: Path, store_url: str) -> str:
    """Write settings with one server key, one mapped event and the given store; return the key."""
    code = f"""
        import json
        from pathlib import Path
        from app.settings import write_raw
        from app.settings.edits import create_key
        from app.settings.edits import initial_document
        from app.settings.edits import map_event
        document = initial_document("123-ABC-456")
        map_event(document, "Signed Up", 100001, "plan", [])
        document["store_url"] = {store_url!r}
        _, key = create_key(document, "server", [], "backend")
        write_raw(Path({str(path)!r}), document)
        print(json.dumps({{"key": key}}))
    """
    return run_without_driver(code)["key"]


def test_every_module_of_the_sqlite_path_imports_without_psycopg() -> None:
    """No module but the PostgreSQL backends imports the driver at module top."""
    code = f"""
        import importlib, json, pkgutil
        import app
        failed = {{}}
        for module in pkgutil.walk_packages(app.__path__, "app."):
            if module.name in {sorted(POSTGRES_ONLY)!r} or module.name.endswith(".__main__"):
                continue  # __main__ would run the module's command
            try:
                importlib.import_module(module.name)
            except ImportError as exc:
                failed[module.name] = str(exc)
        print(json.dumps({{"failed": failed, "blocked": sys.modules["psycopg"] is None}}))
    """
    result = run_without_driver(code)
    assert result == {"failed": {}, "blocked": True}


def test_a_sqlite_gateway_takes_events_without_psycopg(tmp_path: Path) -> None:
    """With the default store the gateway migrates, accepts and stores events without the extra."""
    settings = tmp_path / "settings.json"
    key = write_settings(settings, f"sqlite:///{tmp_path / 'outbox.db'}")
    code = f"""
        import json
        from app import create_app
        app = create_app({{"SETTINGS_PATH": {str(settings)!r}, "GATEWAY_EMBEDDED_WORKER": False}})
        upgrade = app.test_cli_runner().invoke(args=["db", "upgrade"])
        client = app.test_client()
        event = {{"userId": "u1", "event": "Signed Up", "messageId": "m-1"}}
        sent = client.post("/v1/track", json=event, auth=({key!r}, ""))
        status = client.get("/v1/status", auth=({key!r}, "")).get_json()
        print(json.dumps({{"upgrade": [upgrade.exit_code, upgrade.output],
                           "track": sent.status_code, "outbox": status["outbox"]}}))
    """
    result = run_without_driver(code)
    assert result["upgrade"][0] == 0, result["upgrade"][1]
    assert result["track"] == 200
    assert result["outbox"]["pending"] == 1, result["outbox"]


def test_a_postgresql_store_url_without_the_driver_says_to_install_the_extra(
    tmp_path: Path,
) -> None:
    """CLI, readiness and intake each report one line naming the extra, not a traceback."""
    settings = tmp_path / "settings.json"
    write_settings(settings, f"sqlite:///{tmp_path / 'outbox.db'}")
    url = "postgresql://gateway@127.0.0.1:5432/gateway"
    code = f"""
        import json
        from app import create_app
        app = create_app({{"SETTINGS_PATH": {str(settings)!r}, "GATEWAY_EMBEDDED_WORKER": False,
                           "ENVIRON": {{"GATEWAY_STORE_URL": {url!r}}}}})
        upgrade = app.test_cli_runner().invoke(args=["db", "upgrade"])
        client = app.test_client()
        ready = client.get("/readyz")
        track = client.post("/v1/track", json={{"userId": "u1", "event": "E"}})
        print(json.dumps({{"upgrade": [upgrade.exit_code, upgrade.output],
                           "ready": [ready.status_code, ready.get_json()],
                           "track": [track.status_code, track.get_data(as_text=True)]}}))
    """
    result = run_without_driver(code)
    exit_code, output = result["upgrade"]
    assert exit_code == 1
    assert output.count("\n") == 1 and "Traceback" not in output
    assert "store_url: names PostgreSQL but its driver" in output and EXTRA_HINT in output
    status, body = result["ready"]
    assert status == 503 and EXTRA_HINT in body["failures"]["settings"]
    status, text = result["track"]
    assert status == 503 and EXTRA_HINT in text
