"""Delivery fixtures: a started fake Marketo, settings pointing at it, and an engine on a store.

`fake_marketo` shares `marketo_clock` with the engine built by `delivery`, so a test moves time
for both sides at once (token expiry, the 20 s window, the quota reset) without sleeping.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.coordination.sqlite import SqliteSharedState
from app.delivery.engine import Engine
from app.devtools.fake_marketo import FakeClock
from app.devtools.fake_marketo import FakeMarketo
from app.ingest.routing import route
from app.outbox.sqlite import SqliteStore
from app.outbox.store import Event
from app.outbox.store import Routed
from app.outbox.store import State
from app.settings import Settings
from app.settings import parse

# A fixed start (a Tuesday, 10:00 in Chicago) keeps quota-day arithmetic reproducible.
CLOCK_START = 1_709_654_400.0

# Events mapped onto the fake's default activity types.
EVENTS = {
    "Signed Up": {
        "activity_type_id": 100001,
        "primary": "plan",
        "properties": {
            "price": {"attribute": "price", "type": "currency"},
            "trialDays": {"attribute": "trialDays", "type": "integer"},
        },
    },
    "Product Viewed": {
        "activity_type_id": 100002,
        "primary": "productId",
        "properties": {"name": {"attribute": "productName", "type": "text"}},
    },
}


def marketo_document(fake: FakeMarketo, **overrides: Any) -> dict[str, Any]:
    """Return the settings keys that point the gateway at `fake`, with mapped events."""
    document: dict[str, Any] = {
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "rest_base_url": fake.url,
        "identity_url": f"{fake.url}/identity",
        "events": EVENTS,
        "lead_fields": {"user_id": "userId", "anonymous_id": "anonymousId"},
        "limits": {"calls_per_20s": 90, "concurrency": 8, "batch_wait_s": 0, "timeout_s": 5},
    }
    document.update(overrides)
    return document


@pytest.fixture
def marketo_clock() -> FakeClock:
    """A frozen clock shared by the fake Marketo and the engine under test."""
    return FakeClock(CLOCK_START)


@pytest.fixture
def fake_marketo(marketo_clock: FakeClock) -> Iterator[FakeMarketo]:
    """A started fake Marketo on a loopback port, with Marketo's real limits."""
    fake = FakeMarketo(clock=marketo_clock).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def write_marketo_settings(write_settings, fake_marketo) -> Callable[..., dict[str, Any]]:
    """Write app settings pointing at the fake (keyword overrides win)."""

    def write(**overrides: Any) -> dict[str, Any]:
        return write_settings(**marketo_document(fake_marketo, **overrides))

    return write


class DeliveryRig:
    """An engine on a real SQLite store and shared state, talking to the fake over HTTP."""

    def __init__(self, path: Path, fake: FakeMarketo, clock: FakeClock) -> None:
        self.fake = fake
        self.clock = clock
        self.store = SqliteStore(path, dedupe_window_s=3600.0)
        self.shared = SqliteSharedState(str(path))
        self.sleeps: list[float] = []
        self.settings = self.configure()
        self._ids = itertools.count(1)
        self.engine = self._engine()

    def _engine(self) -> Engine:
        return Engine(
            lambda: self.settings,
            self.store,
            self.shared,
            clock=self.clock.now,
            sleep=self._sleep,
            rand=lambda: 0.5,
            lease_s=60.0,
            resync_usage=False,
        )

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)

    def configure(self, **overrides: Any) -> Settings:
        """Replace the settings (as a hot reload would) and return them."""
        base = {"munchkin_id": "123-ABC-456", **marketo_document(self.fake)}
        base.update(overrides)
        self.settings = parse(base)
        return self.settings

    def add(
        self, type_: str, *, state: State | None = None, source_kind: str = "server", **message: Any
    ) -> str:
        """Store one Segment message as intake would (routed, unless `state` is given), as sent
        with the server key or, with `source_kind="browser"`, the browser key."""
        message_id = message.pop("messageId", None) or f"m-{uuid.uuid4().hex}"
        payload = {
            "type": type_,
            "messageId": message_id,
            "timestamp": message.pop("timestamp", "2024-03-05T16:00:00Z"),
            **message,
        }
        event = Event(
            message_id=message_id,
            type=type_,
            source_key_id=f"key_{source_kind}",
            source_kind=source_kind,
            received_at=self.clock.now(),
            timestamp=payload["timestamp"],
            user_id=payload.get("userId"),
            anonymous_id=payload.get("anonymousId"),
            payload=payload,
        )
        routed = route(event, self.settings) if state is None else Routed(event, state)
        self.store.add([routed], self.clock.now())
        return message_id

    def track(self, user: str, event: str = "Signed Up", **properties: Any) -> str:
        """Store a track event for a user with an email derived from the user id."""
        return self.add(
            "track",
            userId=user,
            event=event,
            properties={"plan": "Pro", **properties},
            context={"traits": {"email": f"{user}@example.com"}},
        )

    def warm(self, users: int = 5) -> None:
        """Create `user0`.. leads and cache them, then forget the calls and activities."""
        for i in range(users):
            self.track(f"user{i}")
        self.drain()
        self.fake.reset()
        self.fake.activities.clear()

    def drain(self, max_steps: int = 200, advance: float = 0.0) -> int:
        """Run the dispatcher until nothing is settled; return the number of events settled."""
        total = 0
        for _ in range(max_steps):
            settled = self.engine.dispatcher.run_once(flush=True)
            total += settled
            if not settled:
                if not advance or not self.open_events():
                    break
                self.clock.advance(advance)
        return total

    def open_events(self) -> int:
        """Return how many events are not yet in a final state."""
        counts = self.store.counts(self.clock.now())
        return counts["pending"] + counts["in_flight"] + counts["held"]

    def state_of(self, message_id: str) -> tuple[str, str | None]:
        """Return (state, reason) of the event with this messageId."""
        (stored,) = self.store.find(message_id)
        return stored.state.value, stored.reason

    def close(self) -> None:
        """Close the engine, shared state and store."""
        self.engine.close()
        self.shared.close()
        self.store.close()


@pytest.fixture
def delivery(tmp_path: Path, fake_marketo: FakeMarketo, marketo_clock: FakeClock):
    """A DeliveryRig: engine + SQLite outbox + fake Marketo, all on one controlled clock."""
    rig = DeliveryRig(tmp_path / "outbox.db", fake_marketo, marketo_clock)
    try:
        yield rig
    finally:
        rig.close()
