"""Fixtures shared by every test: a settings file, the app, its test client and CLI runner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from app.lifecycle import close as close_app
from app.settings import hash_secret

# Fixture plugins owned by each area of the test suite.
pytest_plugins: list[str] = [
    "tests.fixtures_stores",
    "tests.fixtures_intake",
    "tests.fixtures_backoffice",
    "tests.fixtures_marketo",
    "tests.fixtures_served",
    "tests.fixtures_compat",
]

SERVER_KEY = "sk_test_server_key_0123456789"
BROWSER_KEY = "bk_test_browser_key"
BROWSER_ORIGIN = "http://127.0.0.1:8000"


def base_document() -> dict[str, Any]:
    """Return a valid settings document with one browser and one server key."""
    return {
        "munchkin_id": "123-ABC-456",
        "secret_key": "test-secret-key-not-for-production",
        "keys": [
            {
                "id": "key_browser",
                "kind": "browser",
                "key": BROWSER_KEY,
                "allowed_origins": [BROWSER_ORIGIN],
                "label": "test site",
            },
            {"id": "key_server", "kind": "server", "secret_hash": hash_secret(SERVER_KEY)},
        ],
    }


@pytest.fixture
def settings_path(tmp_path: Path) -> Path:
    """Path of the settings file the app under test reads."""
    return tmp_path / "instance" / "settings.json"


@pytest.fixture
def write_settings(settings_path: Path) -> Callable[..., dict[str, Any]]:
    """Write the base document updated with keyword overrides; return what was written."""

    def write(**overrides: Any) -> dict[str, Any]:
        document = base_document()
        document.setdefault("store_url", f"sqlite:///{settings_path.parent / 'outbox.db'}")
        document.update(overrides)
        settings_path.parent.mkdir(parents=True, exist_ok=True)
        settings_path.write_text(json.dumps(document))
        return document

    return write


@pytest.fixture
def environ() -> dict[str, str]:
    """The environment the app sees (empty unless a test adds secrets)."""
    return {}


@pytest.fixture
def app(settings_path: Path, write_settings, environ: dict[str, str]):
    """A fresh gateway app on a temporary settings file, with no embedded worker."""
    if not settings_path.exists():
        write_settings()
    app = create_app(
        {
            "TESTING": True,
            "SETTINGS_PATH": str(settings_path),
            "GATEWAY_EMBEDDED_WORKER": False,
            "ENVIRON": environ,
        }
    )
    yield app
    close_app(app)


@pytest.fixture
def client(app):
    """The Flask test client."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """The Flask CLI runner."""
    return app.test_cli_runner()
