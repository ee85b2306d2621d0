"""The README's first command: `flask demo` serves a gateway that delivers to a fake Marketo."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from tests.fixtures_demo import DEADLINE_S
from tests.fixtures_demo import demo_env
from tests.fixtures_demo import printed_url
from tests.fixtures_demo import running_demo
from tests.fixtures_intake import REPO
from tests.fixtures_intake import free_port


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


def test_demo_names_its_site_and_a_console_link_that_signs_in_once(tmp_path):
    """The output names the demo site (on the fake, with the snippet) and a console link that
    opens a session the first time only."""
    port, marketo_port = free_port(), free_port()
    with running_demo(demo_env(tmp_path), port, "--marketo-port", str(marketo_port)) as lines:
        url = f"http://127.0.0.1:{port}"
        printed = "".join(lines)
        site = printed_url(printed, "demo site")
        assert site == f"http://127.0.0.1:{marketo_port}/demo/"
        page = requests.get(site, timeout=5)
        assert page.status_code == 200
        assert f"{url}/v1/loader.js?k=bk_" in page.text  # the snippet, for the demo's key
        assert f'href="{url}/console/"' in page.text

        link = printed_url(printed, "console")
        assert link.startswith(f"{url}/console/sign-in/link?token=")
        operator = requests.Session()
        landed = operator.get(link, timeout=5)
        assert landed.url == f"{url}/console/" and "Sign out" in landed.text
        replayed = requests.get(link, timeout=5)  # a used link opens nothing
        assert replayed.url.startswith(f"{url}/console/sign-in")
        assert "used, expired or not valid" in replayed.text
        assert requests.get(f"{url}/console/", timeout=5).url.startswith(f"{url}/console/sign-in")


def as_an_older_demo_wrote_them(path: Path) -> None:
    """Drop what this version's demo adds to its settings: the admin key, the fake's scripts."""
    raw = json.loads(path.read_text())
    raw["keys"] = [k for k in raw["keys"] if k["kind"] != "admin"]
    for name in ("munchkin_script_url", "form_base_url", "form_id"):
        raw.pop(name)
    path.write_text(json.dumps(raw))


def test_second_demo_on_another_port_prints_a_working_snippet_key_and_delivers(tmp_path):
    """A restart on a new port follows it (snippet, public_url), prints a key that works, and
    forgets the leads the previous fake held, so the first event is delivered, not dead. Older
    demo settings gain the console link's admin key and the demo site's scripts."""
    env = demo_env(tmp_path)
    first, second, marketo_port = free_port(), free_port(), free_port()
    with running_demo(env, first, "--marketo-port", str(marketo_port)) as lines:
        url = f"http://127.0.0.1:{first}"
        key = send_suggested_event("".join(lines), url)
        identify_then_track(url, key)
        assert wait_delivered(url, key, 3)["outbox"]["delivered"] == 3
    as_an_older_demo_wrote_them(Path(env["GATEWAY_SETTINGS"]))
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
        assert printed_url(printed, "demo site") == f"http://127.0.0.1:{marketo_port}/demo/"
        landed = requests.get(printed_url(printed, "console"), timeout=5)
        assert landed.url == f"{url}/console/" and "Sign out" in landed.text
        settings = json.loads(Path(env["GATEWAY_SETTINGS"]).read_text())
        assert settings["munchkin_script_url"] == f"http://127.0.0.1:{marketo_port}/munchkin.js"
        assert settings["form_id"] == 1003
