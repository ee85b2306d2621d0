"""Intake fixtures: auth headers, the app's store, and the gateway served on a loopback port."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from tests.conftest import BROWSER_KEY
from tests.conftest import BROWSER_ORIGIN
from tests.conftest import SERVER_KEY

REPO = Path(__file__).resolve().parent.parent


def basic_auth(secret: str = SERVER_KEY) -> dict[str, str]:
    """Headers Segment's server libraries send: the key as the Basic user name, no password."""
    token = base64.b64encode(f"{secret}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def beacon_body(**fields: Any) -> str:
    """A sendBeacon-style text/plain body carrying the browser key."""
    return json.dumps({"writeKey": BROWSER_KEY, **fields})


BEACON_HEADERS = {"Origin": BROWSER_ORIGIN, "Content-Type": "text/plain"}


@pytest.fixture
def store(app):
    """The app's outbox store."""
    from app.outbox import get_store

    return get_store(app)


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The test app served by werkzeug on 127.0.0.1 in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="live-server", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, deadline_s: float = 20.0) -> None:
    """Poll /healthz until it answers or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or the socket is bound while workers still boot
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not come up")
        threading.Event().wait(0.05)  # poll interval, not a wait for an outcome


class Gunicorn:
    """A real `gunicorn wsgi:app` process group on a free loopback port."""

    def __init__(self, settings_path: Path, workers: int = 2, threads: int = 8) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "GATEWAY_SETTINGS": str(settings_path),
            "GATEWAY_EMBEDDED_WORKER": "0",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(workers), "--threads", str(threads),
             "-b", f"127.0.0.1:{self.port}", "--graceful-timeout", "5", "wsgi:app"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def worker_pids(self) -> list[int]:
        """Return the pids of the arbiter's worker processes."""
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True
        ).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        """Stop the arbiter and its workers."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def gunicorn_server(write_settings, settings_path) -> Iterator[Gunicorn]:
    """Gunicorn with two workers serving the gateway on the test settings."""
    if not settings_path.exists():
        write_settings()
    server = Gunicorn(settings_path)
    try:
        wait_until_up(server.url)
        yield server
    finally:
        server.stop()
