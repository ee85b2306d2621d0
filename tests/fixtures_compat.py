"""Compatibility fixtures (tests/compat, tests/browser/test_analytics_js.py): the gateway on
loopback behind a faulty proxy, the fake Marketo behind it, and a check that every event a
client sent is stored once and every track is one activity."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.delivery import get_engine
from app.devtools.fake_marketo import FakeMarketo
from tests.conftest import BROWSER_KEY
from tests.fakes.faulty_proxy import FAULTS
from tests.fakes.faulty_proxy import FaultyProxy

REPO = Path(__file__).resolve().parents[1]

# Where .ci/run installs the pinned npm clients (`npm ci` in .ci/compat).
NODE_MODULES = REPO / ".ci" / "compat" / "node_modules"

# Wall-clock bounds, only reached on failure.
DRAIN_DEADLINE_S = 60.0
LAND_DEADLINE_S = 60.0

# The calls each client makes per user: identify, track (mapped), page, alias.
CALLS_PER_USER = 4


def npm_package(name: str) -> Path:
    """Return an installed npm package's folder; under CI a missing one fails, else skips."""
    folder = NODE_MODULES / name
    if not (folder / "package.json").exists():
        reason = f"{name} is not installed: run `npm ci --prefix .ci/compat` (as .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return folder


def email_of(user: str) -> str:
    """Return the email the clients send for a user id."""
    return f"{user}@example.com"


@dataclass
class Compat:
    """The rig one test drives: where clients point, and the checks on what landed."""

    app: Any
    store: Any
    proxy: FaultyProxy
    fake: FakeMarketo

    @property
    def url(self) -> str:
        """Return the URL clients are pointed at (the faulty proxy)."""
        return self.proxy.url

    def wait_sent(self, count: int) -> set[str]:
        """Wait until `count` distinct messageIds are stored; return the ids clients sent."""
        deadline = time.monotonic() + LAND_DEADLINE_S
        while True:
            ids = self.proxy.message_ids()
            stored = [i for i in ids if self.store.find(i)]
            if len(stored) >= count or time.monotonic() > deadline:
                return ids
            time.sleep(0.05)  # poll interval while a client's retries land, not an outcome wait

    def drain(self) -> None:
        """Run the app's dispatcher until nothing is due."""
        dispatcher = get_engine(self.app).dispatcher
        deadline = time.monotonic() + DRAIN_DEADLINE_S
        while dispatcher.run_once(flush=True) and time.monotonic() < deadline:
            pass

    def check(self, users: list[str], paths: set[str] | None = None) -> None:
        """Assert every event is stored once and each user's track is one activity on its lead."""
        expected = len(users) * CALLS_PER_USER
        ids = self.wait_sent(expected)
        assert self.proxy.injected == list(FAULTS), "the proxy did not inject every fault"
        assert len(ids) == expected, f"clients sent {len(ids)} distinct events, not {expected}"
        assert all(len(self.store.find(i)) == 1 for i in ids), "an event is missing or doubled"
        counts = self.store.counts(time.time())
        total = counts["pending"] + counts["held"] + sum(counts["dropped"].values())
        assert total == expected, counts
        if paths is not None:
            assert self.proxy.paths() == paths
        self.drain()
        lead_of = {lead.get("email"): lead_id for lead_id, lead in self.fake.leads.items()}
        activities = self.fake.activities
        assert sorted(a["leadId"] for a in activities) == sorted(
            lead_of[email_of(u)] for u in users
        ), (activities, lead_of)
        assert {a["primaryAttributeValue"] for a in activities} == {"Pro"}
        dead = self.store.counts(time.time())["dead"]
        assert dead == {}, dead


@pytest.fixture
def compat_settings() -> dict[str, Any]:
    """Settings overrides a test module needs (the browser test sets its key's origins)."""
    return {}


@pytest.fixture
def compat(
    write_marketo_settings, compat_settings, app, store, live_server, fake_marketo
) -> Iterator[Compat]:
    """The rig: Marketo settings written, the faulty proxy in front of the live gateway."""
    write_marketo_settings(**compat_settings)
    proxy = FaultyProxy(live_server).start()
    try:
        yield Compat(app, store, proxy, fake_marketo)
    finally:
        proxy.stop()


__all__ = ["BROWSER_KEY", "CALLS_PER_USER", "Compat", "email_of", "npm_package"]
