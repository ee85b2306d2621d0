"""The fake Marketo as a development tool: `flask fake-marketo`, GET /, latency and state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from app import create_app
from app.devtools.fake_marketo import FakeMarketo
from tests.fixtures_intake import REPO

TIMEOUT = 10


def token(url: str) -> str:
    """Fetch an access token with the fake's default client credentials."""
    response = requests.post(
        url + "/identity/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "fake-client-id",
            "client_secret": "fake-client-secret",
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def rest(url: str, bearer: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """Call one REST path and return its envelope."""
    headers = {"Authorization": f"Bearer {bearer}"}
    response = requests.request(method, url + path, headers=headers, timeout=TIMEOUT, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def send_lead_and_activity(url: str) -> None:
    """Create a lead, add a Signed Up activity for it and put it on a new list."""
    bearer = token(url)
    created = rest(url, bearer, "POST", "/rest/v1/leads.json",
                   json={"input": [{"email": "ann@example.com", "firstName": "Ann"}]})  # fmt: skip
    lead_id = created["result"][0]["id"]
    activity = {
        "leadId": lead_id,
        "activityDate": "2024-03-02T10:15:00Z",
        "activityTypeId": 100001,
        "primaryAttributeValue": "pro",
        "attributes": [],
    }
    added = rest(url, bearer, "POST", "/rest/v1/activities/external.json",
                 json={"input": [activity]})  # fmt: skip
    assert added["result"][0]["status"] == "added", added
    folder = json.dumps({"id": 31, "type": "Folder"})
    made = rest(url, bearer, "POST", "/rest/asset/v1/staticLists.json",
                data={"name": "Newsletter", "folder": folder})  # fmt: skip
    assert made["success"], made
    list_id = made["result"][0]["id"]
    members = rest(url, bearer, "POST", f"/rest/v1/lists/{list_id}/leads.json",
                   json={"input": [{"id": lead_id}]})  # fmt: skip
    assert members["result"][0]["status"] == "added", members


class Standalone:
    """`flask fake-marketo` in a subprocess, read through the JSON line it prints when ready."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "GATEWAY_SETTINGS": os.devnull}
        command = [sys.executable, "-m", "flask", "--app", "wsgi", "fake-marketo", "--port", "0"]
        self.proc = subprocess.Popen(
            [*command, *args], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.lines: list[str] = []
        for line in self.proc.stdout:  # blocks until the fake has printed that it listens
            self.lines.append(line)
            if line.startswith("fake Marketo ready "):
                self.url = json.loads(line.split(" ", 3)[3])["url"]
                return
        raise AssertionError(f"the fake never said it was ready: {self.lines}")

    def stop(self) -> str:
        """Stop it with Ctrl-C and return the rest of what it printed; it must exit 0."""
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(timeout=15) == 0
        assert self.proc.stdout is not None
        rest_of_output = self.proc.stdout.read()
        self.proc.stdout.close()
        return rest_of_output


def test_flask_fake_marketo_serves_lists_and_keeps_its_state(tmp_path: Path) -> None:
    """Run alone, GET / lists what the calls made; with --state the data outlives a restart."""
    state = tmp_path / "fake.json"
    fake = Standalone("--state", str(state))
    try:
        assert requests.get(fake.url + "/", timeout=TIMEOUT).json()["leads"]["total"] == 0
        send_lead_and_activity(fake.url)
        listing = requests.get(fake.url + "/", timeout=TIMEOUT).json()
    finally:
        printed = fake.stop()
    assert listing["leads"]["total"] == 1
    assert listing["leads"]["newest"][0]["email"] == "ann@example.com"
    assert listing["activities"]["newest"][0]["activityTypeId"] == 100001
    assert {"id": 31, "name": "Gateway"} in listing["folders"]
    assert [(s["name"], s["members"]) for s in listing["lists"]] == [("Newsletter", 1)]
    assert any(t["apiName"] == "signedUp" for t in listing["activity_types"])
    paths = [c["path"] for c in listing["calls"]["newest"]]
    assert paths[0] == "/identity/oauth/token" and "/rest/v1/activities/external.json" in paths
    assert listing["calls"]["total"] == 5 and listing["calls"]["max_in_flight"] == 1
    assert "fake-client-secret" not in json.dumps(listing)
    assert f"saved the fake's data to {state}" in printed

    again = Standalone("--state", str(state))
    try:
        assert f"loaded the fake's data from {state}\n" in again.lines
        listing = requests.get(again.url + "/", timeout=TIMEOUT).json()
        bearer = token(again.url)
        second = rest(again.url, bearer, "POST", "/rest/v1/leads.json",
                      json={"input": [{"email": "bob@example.com"}]})  # fmt: skip
    finally:
        again.stop()
    assert [lead["email"] for lead in listing["leads"]["newest"]] == ["ann@example.com"]
    assert [(s["name"], s["members"]) for s in listing["lists"]] == [("Newsletter", 1)]
    assert listing["activities"]["total"] == 1 and listing["calls"]["total"] == 0
    assert second["result"][0]["id"] == 2  # ids continue where the first run stopped


def test_latency_option_delays_every_call_and_calls_overlap() -> None:
    """--latency holds each call that long; parallel calls are served at once and counted."""
    fake = Standalone("--latency", "0.5")
    try:
        bearer = token(fake.url)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(
                lambda _: rest(fake.url, bearer, "GET", "/rest/v1/leads/describe.json"), range(6)
            ))  # fmt: skip
        elapsed = time.monotonic() - started
        listing = requests.get(fake.url + "/", timeout=TIMEOUT).json()
    finally:
        fake.stop()
    assert all(r["success"] for r in results)
    assert 0.5 <= elapsed < 2.5, elapsed  # six 0.5 s calls one after another would take 3 s
    assert listing["instance"]["latency_s"] == 0.5
    assert listing["calls"]["max_in_flight"] == 6 and listing["calls"]["in_flight"] == 0


def test_in_process_fake_records_the_most_calls_in_flight() -> None:
    """The recorder API (summary, max_concurrency_seen) counts overlapping calls under latency."""
    with FakeMarketo(latency_s=0.3) as fake:
        bearer = token(fake.url)
        gate = threading.Barrier(4)

        def call(_: int) -> dict[str, Any]:
            gate.wait(timeout=TIMEOUT)
            return rest(fake.url, bearer, "GET", "/rest/v1/leads/describe.json")

        with ThreadPoolExecutor(max_workers=4) as pool:
            assert all(r["success"] for r in pool.map(call, range(4)))
        assert fake.max_concurrency_seen == 4
        assert fake.summary()["max_concurrency_seen"] == 4
        assert all(c.status == 200 for c in fake.calls)


def test_a_state_file_the_fake_did_not_write_is_refused(tmp_path: Path) -> None:
    """A wrong --state file stops the command with one line, before anything listens."""
    state = tmp_path / "settings.json"
    state.write_text('{"keys": []}')
    app = create_app({"SETTINGS_PATH": str(tmp_path / "none.json")})
    result = app.test_cli_runner().invoke(args=["fake-marketo", "--state", str(state)])
    assert result.exit_code == 1
    assert f"cannot load {state}: not a fake Marketo state file" in result.output


def test_fake_marketo_help_documents_it_as_a_development_tool() -> None:
    """The command says what it is for and how to point a gateway at it."""
    app = create_app({"SETTINGS_PATH": os.devnull})
    result = app.test_cli_runner().invoke(args=["fake-marketo", "--help"])
    assert result.exit_code == 0
    for option in ("--port", "--state", "--latency"):
        assert option in result.output
    assert "rest_base_url=http://127.0.0.1:PORT" in result.output
