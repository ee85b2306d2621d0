"""The dispatcher as operators run it: `flask worker`, the embedded thread, status, metrics,
online validation, and several workers sharing one budget."""

from __future__ import annotations

import json
import threading
import time

import pytest

from app import create_app
from app.delivery import runtime
from app.delivery.engine import Engine
from app.lifecycle import close as close_app
from tests.fixtures_intake import basic_auth

# How long a test waits for the embedded thread before failing.
DEADLINE_S = 15.0


@pytest.fixture
def make_app(write_marketo_settings, settings_path, environ):
    """Build apps on settings pointing at the fake; close them at the end."""
    apps = []

    def make(embedded: bool = False, **overrides):
        write_marketo_settings(**overrides)
        app = create_app(
            {
                "TESTING": True,
                "SETTINGS_PATH": str(settings_path),
                "GATEWAY_EMBEDDED_WORKER": embedded,
                "ENVIRON": environ,
            }
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        close_app(app)


def send_track(client, user: str = "u1", **extra) -> None:
    body = {
        "userId": user,
        "event": "Signed Up",
        "properties": {"plan": "Pro"},
        "context": {"traits": {"email": f"{user}@example.com"}},
        **extra,
    }
    resp = client.post("/v1/track", json=body, headers=basic_auth())
    assert resp.status_code == 200, resp.get_data(as_text=True)


def test_flask_worker_once_delivers_what_is_due(make_app, fake_marketo) -> None:
    """An event accepted over the API reaches Marketo with `flask worker --once`."""
    app = make_app()
    send_track(app.test_client())
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "settled 1 event(s)" in result.output
    assert [a["primaryAttributeValue"] for a in fake_marketo.activities] == ["Pro"]


def test_status_and_metrics_show_marketo_figures(make_app, fake_marketo) -> None:
    """`flask status --json` and /metrics report calls, quota, token age and last error."""
    app = make_app()
    client = app.test_client()
    send_track(client)
    fake_marketo.script("/activities/external.json", {"code": "603"})
    app.test_cli_runner().invoke(args=["worker", "--once"])
    result = app.test_cli_runner().invoke(args=["status", "--json"])
    assert result.exit_code == 0, result.output
    marketo = json.loads(result.output)["marketo"]
    assert marketo["calls_today"] >= 3
    assert marketo["daily_quota"] == 45000
    assert marketo["quota_resets_at"].endswith("Z")
    assert marketo["token_age_s"] is not None
    assert marketo["last_error"]["code"] == "603"
    text = app.test_cli_runner().invoke(args=["status"]).output
    assert "parked_until       null" in text and '"code": "603"' in text  # JSON, not repr
    metrics = client.get("/metrics").get_data(as_text=True)
    assert (
        'gateway_marketo_calls_total{code="603",endpoint="/rest/v1/activities/external.json"}'
        in (metrics)
    )
    assert 'gateway_deliveries_total{outcome="dead",reason="marketo_603"} 1.0' in metrics
    assert "gateway_marketo_quota_used" in metrics


def test_online_validation_lists_every_mismatch(make_app) -> None:
    """Unknown fields, activity types, attributes and unapproved types are all reported."""
    events = {
        "Signed Up": {
            "activity_type_id": 100001,
            "properties": {"price": {"attribute": "priceTypo", "type": "currency"}},
        },
        "Draft": {"activity_type_id": 100004},
        "Ghost": {"activity_type_id": 999999},
    }
    app = make_app(
        events=events,
        traits={"plan.tier": {"field": "planTier", "type": "string"}},
    )
    result = app.test_cli_runner().invoke(args=["config", "validate", "--online"])
    assert result.exit_code == 1
    assert "traits.plan.tier: Marketo has no lead field 'planTier'" in result.output
    assert "events.Signed Up.properties.price" in result.output
    assert "events.Draft: activity type draftThing is draft, not approved" in result.output
    assert "events.Ghost: no custom activity type 999999" in result.output


def test_online_validation_checks_form_list_folder_and_campaigns(make_app) -> None:
    """The identify form, the audience folder and mapped campaigns are checked too."""
    app = make_app(
        form_id=1004,
        form_base_url="//app-ab12.marketo.com",
        lists={"folder": {"type": "Folder", "id": 77}},
        campaigns={
            "Bought": {"campaign_id": 2002},
            "Refunded": {"campaign_id": 2999},
            "Welcome": {"campaign_id": 2001},
        },
    )
    result = app.test_cli_runner().invoke(args=["config", "validate", "--online"])
    assert result.exit_code == 1
    assert "form_id: form 1004 is draft, not approved" in result.output
    assert "lists.folder: folder 77 does not exist in Marketo" in result.output
    assert "campaigns.Bought: campaign 2002 is not a requestable trigger" in result.output
    assert "campaigns.Refunded: campaign 2999 not found" in result.output
    assert "campaigns.Welcome" not in result.output

    good = make_app(
        form_id=1003,
        form_base_url="//app-ab12.marketo.com",
        lists={"folder": {"type": "Folder", "id": 31}},
        campaigns={"Welcome": {"campaign_id": 2001}},
    )
    result = good.test_cli_runner().invoke(args=["config", "validate", "--online"])
    assert result.exit_code == 0, result.output


def test_online_validation_passes_for_matching_settings(make_app) -> None:
    """Settings that match the instance validate cleanly."""
    app = make_app()
    result = app.test_cli_runner().invoke(args=["config", "validate", "--online"])
    assert result.exit_code == 0, result.output
    assert "match Marketo" in result.output


def test_embedded_thread_delivers_and_stops_with_the_app(make_app, fake_marketo) -> None:
    """The web process runs a named dispatcher thread that delivers and stops on close."""
    app = make_app(embedded=True)
    send_track(app.test_client())
    deadline = time.monotonic() + DEADLINE_S
    while not fake_marketo.activities and time.monotonic() < deadline:
        threading.Event().wait(0.05)
    assert len(fake_marketo.activities) == 1
    names = [t.name for t in threading.enumerate()]
    assert "gateway-dispatcher" in names
    worker = runtime(app).worker
    close_app(app)
    assert not worker.thread.is_alive()


def test_several_workers_share_one_concurrency_budget(delivery, fake_marketo) -> None:
    """Four engines (as four processes would) on one store never exceed the concurrency cap."""
    fake_marketo.concurrency = 2
    settings = delivery.configure(limits={"concurrency": 2, "batch_size": 10, "batch_wait_s": 0})
    for i in range(5):
        delivery.track(f"user{i}")
    delivery.drain()
    fake_marketo.script("/activities/external.json", *[{"delay": 0.05}] * 40)
    for i in range(200):
        delivery.track(f"user{i % 5}")
    engines = [
        Engine(lambda: settings, delivery.store, delivery.shared, resync_usage=False)
        for _ in range(4)
    ]
    stop = threading.Event()
    threads = [
        threading.Thread(target=e.dispatcher.run_forever, args=(stop,), name=f"w{i}")
        for i, e in enumerate(engines)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + DEADLINE_S
    while len(fake_marketo.activities) < 205 and time.monotonic() < deadline:
        stop.wait(0.05)
    stop.set()
    for thread in threads:
        thread.join(10)
    for engine in engines:
        engine.close()
    assert len(fake_marketo.activities) == 205
    assert delivery.open_events() == 0
    assert fake_marketo.max_concurrency_seen <= 2
    assert fake_marketo.errors_returned["615"] == 0
    assert fake_marketo.errors_returned["606"] == 0
