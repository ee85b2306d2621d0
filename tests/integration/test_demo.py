"""The README's first command: `flask demo` serves a gateway that delivers to a fake Marketo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import requests

from tests.fixtures_intake import REPO
from tests.fixtures_intake import free_port
from tests.fixtures_intake import wait_until_up

DEADLINE_S = 30.0


def test_demo_delivers_its_suggested_first_event(tmp_path):
    """Run `flask demo` as a user would, send the event it suggests, see it delivered."""
    port, marketo_port = free_port(), free_port()
    env = {
        **os.environ,
        "GATEWAY_SETTINGS": str(tmp_path / "settings.json"),
        "GATEWAY_STORE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
    }
    env.pop("MARKETO_CLIENT_ID", None)
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "demo",
               "--port", str(port), "--marketo-port", str(marketo_port)]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, DEADLINE_S)
        printed = "".join(lines)
        assert f"fake Marketo on http://127.0.0.1:{marketo_port}" in printed
        [suggested] = re.findall(r"^try: curl -u (sk_[\w-]+): .* -d '(.*)' (\S+)$", printed, re.M)
        key, body, target = suggested
        assert target == f"{url}/v1/track"
        sent = requests.post(
            target, data=body, auth=(key, ""), timeout=5,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert sent.status_code == 200, sent.text
        deadline = time.monotonic() + DEADLINE_S
        while True:
            status = requests.get(f"{url}/v1/status", auth=(key, ""), timeout=5).json()
            if status["outbox"]["delivered"] == 1 or time.monotonic() > deadline:
                break
            threading.Event().wait(0.1)  # poll interval, not a wait for an outcome
        assert status["outbox"]["delivered"] == 1, status
        assert status["outbox"]["dead"] == {}
    finally:
        proc.terminate()
        proc.wait(15)
        reader.join(5)
        proc.stdout.close()
