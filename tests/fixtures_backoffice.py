"""Fixtures for list, campaign, merge and bulk tests: a fake Marketo and an app pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app import create_app
from tests.fakes.marketo import FakeClock
from tests.fakes.marketo import FakeMarketo

FOLDER = {"type": "Folder", "id": 31}


@pytest.fixture
def bo_clock() -> FakeClock:
    """The clock the fake Marketo (and its bulk jobs) run on."""
    return FakeClock()


@pytest.fixture
def bo_fake(bo_clock: FakeClock) -> Iterator[FakeMarketo]:
    """A fake Marketo on a loopback port."""
    with FakeMarketo(clock=bo_clock) as fake:
        yield fake


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
def bo_app_factory(bo_fake, write_settings, settings_path, environ):
    """Build an app on settings aimed at the fake, with keyword overrides; closed after."""
    apps = []

    def make(**overrides: Any):
        write_settings(**marketo_settings(bo_fake, **overrides))
        app = create_app(
            {
                "TESTING": True,
                "SETTINGS_PATH": str(settings_path),
                "GATEWAY_EMBEDDED_WORKER": False,
                "ENVIRON": environ,
                "BULK_CLOCK": bo_fake.clock.now,
                "BULK_SLEEP": bo_fake.clock.advance,
            }
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        for closer in app.extensions.get("closers", []):
            closer()


@pytest.fixture
def bo_app(bo_app_factory):
    """An app aimed at the fake with the default lists settings."""
    return bo_app_factory()
