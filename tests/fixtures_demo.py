"""`flask demo` run as a user runs it: a subprocess on loopback ports, its output collected."""

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

from tests.fixtures_intake import REPO
from tests.fixtures_intake import wait_until_up

DEADLINE_S = 30.0
# The demo's last line before it serves.
SERVING = "gateway on http"


def demo_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a first demo in `tmp_path`: its own settings and outbox, no Marketo."""
    env = {
        **os.environ,
        "GATEWAY_SETTINGS": str(tmp_path / "settings.json"),
        "GATEWAY_STORE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
    }
    env.pop("MARKETO_CLIENT_ID", None)
    return env


@contextmanager
def running_demo(env: dict[str, str], port: int, *extra: str) -> Iterator[list[str]]:
    """Run `flask demo --port PORT` until the block ends; yield the lines it printed so far
    (all of them up to the line that says it serves)."""
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "demo", "--port", str(port), *extra]
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_until_up(f"http://127.0.0.1:{port}", DEADLINE_S)
        deadline = time.monotonic() + DEADLINE_S
        while not any(line.startswith(SERVING) for line in list(lines)):
            assert time.monotonic() < deadline, f"no {SERVING!r} line in {lines}"
            threading.Event().wait(0.05)  # poll interval while the reader catches up
        yield lines
    finally:
        proc.terminate()
        proc.wait(15)
        reader.join(5)
        proc.stdout.close()


def printed_url(printed: str, label: str) -> str:
    """Return the URL on the demo's output line that starts with `label:`."""
    [url] = re.findall(rf"^{label}: (\S+)", printed, re.M)
    return url
