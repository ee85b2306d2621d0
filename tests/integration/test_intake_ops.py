"""Operators see outbox counts through `flask status`, /v1/status and /metrics, and manage dead
letters with `flask dead-letters`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from app.ops import add_status_provider
from tests.fixtures_intake import basic_auth

AUTH = basic_auth()
REPO = Path(__file__).resolve().parents[2]


def fill(client, store, n_dead: int = 2) -> list[int]:
    """Accept a few events and dead-letter `n_dead` of them; return the dead ids."""
    batch = [{"type": "identify", "userId": f"u{i}", "messageId": f"m{i}"} for i in range(4)]
    batch.append({"type": "track", "userId": "u", "event": "Unmapped", "messageId": "drop"})
    assert client.post("/v1/batch", json={"batch": batch}, headers=AUTH).status_code == 200
    claimed = store.claim(n_dead, 60, time.time())
    ids = [c.id for c in claimed]
    store.dead(ids, "marketo_1006", time.time(), detail="field not found")
    return ids


def test_status_json_has_the_outbox_counts_and_provider_sections(app, client, store, runner):
    fill(client, store)
    add_status_provider(app, "marketo", lambda: {"marketo": {"calls_today": 7}})
    result = runner.invoke(args=["status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["outbox"]["pending"] == 2
    assert status["outbox"]["dead"] == {"marketo_1006": 2}
    assert status["outbox"]["dropped"] == {"event_not_mapped": 1}
    assert status["marketo"] == {"calls_today": 7}


def test_a_failing_provider_is_reported_without_hiding_the_outbox(app, runner):
    def broken() -> dict:
        raise RuntimeError("token endpoint unreachable")

    add_status_provider(app, "marketo", broken)
    status = json.loads(runner.invoke(args=["status", "--json"]).output)
    assert "token endpoint unreachable" in status["marketo"]["error"]
    assert status["outbox"]["pending"] == 0


def test_status_text_lists_reasons(client, store, runner):
    fill(client, store)
    result = runner.invoke(args=["status"])
    assert result.exit_code == 0
    assert "marketo_1006" in result.output and "event_not_mapped" in result.output


def test_status_route_needs_a_server_key(client, store):
    fill(client, store)
    assert client.get("/v1/status").status_code == 401
    response = client.get("/v1/status", headers=AUTH)
    assert response.status_code == 200
    assert response.get_json()["outbox"]["dead"] == {"marketo_1006": 2}


def test_metrics_expose_intake_and_outbox_figures(client, store):
    fill(client, store)
    client.post("/v1/track", json={"event": "x"}, headers=AUTH)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'gateway_events_accepted_total{source="server",type="identify"} 4.0' in text
    assert 'gateway_events_rejected_total{code="missing_id"} 1.0' in text
    assert 'gateway_outbox_events{reason="marketo_1006",state="dead"} 2.0' in text
    assert 'gateway_outbox_events{reason="",state="pending"} 2.0' in text
    assert "gateway_intake_seconds_bucket" in text


def test_dead_letters_list_show_replay_and_purge(client, store, runner):
    ids = fill(client, store)
    listed = json.loads(runner.invoke(args=["dead-letters", "list", "--json"]).output)
    assert sorted(d["id"] for d in listed) == sorted(ids)
    shown = json.loads(runner.invoke(args=["dead-letters", "show", str(ids[0])]).output)
    assert shown["reason"] == "marketo_1006" and shown["payload"]["type"] == "identify"
    assert runner.invoke(args=["dead-letters", "show", "999999"]).exit_code == 1
    assert runner.invoke(args=["dead-letters", "replay"]).exit_code == 1
    result = runner.invoke(args=["dead-letters", "replay", str(ids[0])])
    assert "replayed 1" in result.output
    assert runner.invoke(args=["dead-letters", "purge", "--older-than", "1d"]).output.startswith(
        "purged 0"
    )
    assert "purged 1" in runner.invoke(args=["dead-letters", "purge", "--older-than", "0s"]).output
    assert runner.invoke(args=["dead-letters", "purge", "--older-than", "soon"]).exit_code == 1
    assert store.counts(time.time())["dead"] == {}
    assert store.counts(time.time())["pending"] == 3


# One gateway process: build the app on the test settings, post N events, print /metrics.
WORKER = """
import sys
from app import create_app
from tests.fixtures_intake import basic_auth
from app.lifecycle import close as close_app
app = create_app({"SETTINGS_PATH": sys.argv[1], "GATEWAY_EMBEDDED_WORKER": False, "ENVIRON": {}})
client = app.test_client()
for i in range(int(sys.argv[2])):
    body = {"type": "identify", "userId": "u%d" % i, "messageId": sys.argv[3] + str(i)}
    assert client.post("/v1/identify", json=body, headers=basic_auth()).status_code == 200
print(client.get("/metrics").get_data(as_text=True))
close_app(app)
"""


def test_metrics_sum_the_counters_of_every_worker_process(tmp_path, settings_path, write_settings):
    """With PROMETHEUS_MULTIPROC_DIR set, a scrape from any process counts every process."""
    write_settings()
    files = tmp_path / "prometheus"
    files.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(files)}

    def process(n: int, prefix: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", WORKER, str(settings_path), str(n), prefix],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    process(3, "a")
    process(4, "b")
    text = process(0, "c")
    assert 'gateway_events_accepted_total{source="server",type="identify"} 7.0' in text
    assert 'gateway_outbox_events{reason="",state="pending"} 7.0' in text
    assert text.count("# TYPE gateway_events_accepted_total counter") <= 1


def test_dead_letters_replay_and_purge_print_json_for_scripts(client, store, runner):
    fill(client, store)
    replayed = runner.invoke(args=["dead-letters", "replay", "--reason", "marketo_1006", "--json"])
    assert replayed.exit_code == 0 and json.loads(replayed.output) == {"replayed": 2}
    purged = runner.invoke(args=["dead-letters", "purge", "--older-than", "0s", "--json"])
    assert purged.exit_code == 0 and json.loads(purged.output) == {"purged": 0}
    assert store.counts(time.time())["dead"] == {}
