"""Fixtures for list, campaign, merge and bulk tests: an app pointed at the fake Marketo.

The fake itself and its clock are `fake_marketo` and `marketo_clock` (tests/fixtures_marketo.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from app import create_app
from app.devtools.fake_marketo import FakeMarketo
from app.lifecycle import close as close_app

FOLDER = {"type": "Folder", "id": 31}


def marketo_settings(fake: FakeMarketo, **overrides: Any) -> dict[str, Any]:
    """Return settings overrides that point the gateway at the fake, lists in folder 31."""
    return {
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "rest_base_url": fake.url,
        "identity_url": fake.url + "/identity",
        "lists": {"folder": FOLDER, "create_missing": True},
        **overrides,
    }


@pytest.fixture
def bo_app_factory(fake_marketo, write_settings, settings_path, environ):
    """Build an app on settings aimed at the fake, with keyword overrides; closed after."""
    apps = []

    def make(**overrides: Any):
        write_settings(**marketo_settings(fake_marketo, **overrides))
        app = create_app(
            {
                "TESTING": True,
                "SETTINGS_PATH": str(settings_path),
                "GATEWAY_EMBEDDED_WORKER": False,
                "ENVIRON": environ,
                "BULK_CLOCK": fake_marketo.clock.now,
                "BULK_SLEEP": fake_marketo.clock.advance,
            }
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        close_app(app)


@pytest.fixture
def bo_app(bo_app_factory):
    """An app aimed at the fake with the default lists settings."""
    return bo_app_factory()
