"""The README's first command: `flask demo` serves a gateway that delivers to a fake Marketo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.fixtures_intake import REPO
from tests.fixtures_intake import free_port
from tests.fixtures_intake import wait_until_up

DEADLINE_S = 30.0


def demo_env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "GATEWAY_SETTINGS": str(tmp_path / "settings.json"),
        "GATEWAY_STORE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
    }
    env.pop("MARKETO_CLIENT_ID", None)
    return env


@contextmanager
def running_demo(env: dict[str, str], port: int, *extra: str) -> Iterator[list[str]]:
    """Run `flask demo --port PORT` until the block ends; yield the lines it printed so far."""
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "demo", "--port", str(port), *extra]
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_until_up(f"http://127.0.0.1:{port}", DEADLINE_S)
        yield lines
    finally:
        proc.terminate()
        proc.wait(15)
        reader.join(5)
        proc.stdout.close()


def send_suggested_event(printed: str, url: str) -> str:
    """Send the `curl` the demo printed (with its key) and return the key."""
    [suggested] = re.findall(r"^try: curl -u (sk_[\w-]+): .* -d '(.*)' (\S+)$", printed, re.M)
    key, body, target = suggested
    assert target == f"{url}/v1/track"
    sent = requests.post(
        target, data=body, auth=(key, ""), timeout=5, headers={"Content-Type": "application/json"}
    )
    assert sent.status_code == 200, sent.text
    return key


def identify_then_track(url: str, key: str) -> None:
    """The README's server example: an identify with the email, then a track by userId only."""
    batch = {"batch": [
        {"type": "identify", "userId": "u_81", "traits": {"email": "ann.lee@example.com"}},
        {"type": "track", "userId": "u_81", "event": "Signed Up", "properties": {"plan": "pro"}},
    ]}  # fmt: skip
    sent = requests.post(f"{url}/v1/batch", json=batch, auth=(key, ""), timeout=5)
    assert sent.status_code == 200, sent.text


def wait_delivered(url: str, key: str, n: int) -> dict:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        status = requests.get(f"{url}/v1/status", auth=(key, ""), timeout=5).json()
        done = status["outbox"]["delivered"] + sum(status["outbox"]["dead"].values())
        if done >= n or time.monotonic() > deadline:
            return status
        threading.Event().wait(0.1)  # poll interval, not a wait for an outcome


def test_demo_delivers_its_suggested_first_event(tmp_path):
    """Run `flask demo` as a user would, send the event it suggests, see it delivered."""
    port, marketo_port = free_port(), free_port()
    env = demo_env(tmp_path)
    with running_demo(env, port, "--marketo-port", str(marketo_port)) as lines:
        url = f"http://127.0.0.1:{port}"
        printed = "".join(lines)
        assert f"fake Marketo on http://127.0.0.1:{marketo_port}" in printed
        key = send_suggested_event(printed, url)
        status = wait_delivered(url, key, 1)
        assert status["outbox"]["delivered"] == 1, status
        assert status["outbox"]["dead"] == {}


def test_second_demo_on_another_port_prints_a_working_snippet_key_and_delivers(tmp_path):
    """A restart on a new port follows it (snippet, public_url), prints a key that works, and
    forgets the leads the previous fake held, so the first event is delivered, not dead."""
    env = demo_env(tmp_path)
    first, second, marketo_port = free_port(), free_port(), free_port()
    with running_demo(env, first, "--marketo-port", str(marketo_port)) as lines:
        url = f"http://127.0.0.1:{first}"
        key = send_suggested_event("".join(lines), url)
        identify_then_track(url, key)
        assert wait_delivered(url, key, 3)["outbox"]["delivered"] == 3
    with running_demo(env, second) as lines:
        url = f"http://127.0.0.1:{second}"
        printed = "".join(lines)
        assert f"{url}/v1/loader.js?k=bk_" in printed  # the snippet names this run's port
        assert f"http://127.0.0.1:{first}/v1/loader.js" not in printed
        assert f"fake Marketo on http://127.0.0.1:{marketo_port}" in printed  # kept from run 1
        new_key = send_suggested_event(printed, url)
        assert new_key != key
        old = requests.get(f"{url}/v1/status", auth=(key, ""), timeout=5)
        assert old.status_code == 401  # the previous demo key was replaced, as printed
        identify_then_track(url, new_key)  # the new fake must get the lead, not a stale cache
        status = wait_delivered(url, new_key, 6)
        assert status["outbox"]["delivered"] == 6, status
        assert status["outbox"]["dead"] == {}
        snippet = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "snippet"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert snippet.returncode == 0, snippet.stderr
        assert f"{url}/v1/loader.js?k=bk_" in snippet.stdout
