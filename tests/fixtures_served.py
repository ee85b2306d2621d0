"""The gateway served as documented: gunicorn run from the repository root, shipped config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures_intake import REPO
from tests.fixtures_intake import free_port
from tests.fixtures_intake import wait_until_up


class Served:
    """The gateway under `gunicorn wsgi:app` from the repository root: the shipped config."""

    def __init__(self, settings: Path, log: Path, embedded_worker: bool) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {
            **os.environ,
            "GATEWAY_SETTINGS": str(settings),
            "GATEWAY_EMBEDDED_WORKER": "1" if embedded_worker else "0",
            "GATEWAY_BIND": f"127.0.0.1:{self.port}",
            "GATEWAY_WORKERS": "1",
        }
        env.pop("GUNICORN_CMD_ARGS", None)
        self._out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "wsgi:app"],
            cwd=REPO, env=env, stdout=self._out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def lines(self) -> list[str]:
        """Return the log written so far, line by line."""
        return self.log.read_bytes().decode("utf-8", "replace").splitlines()

    def wait_for_line(self, needle: str, deadline_s: float = 20.0) -> list[str]:
        """Poll the log until a line holds `needle`; return those lines."""
        deadline = time.monotonic() + deadline_s
        while True:
            found = [line for line in self.lines() if needle in line]
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line holds {needle!r}:\n" + "\n".join(self.lines()))
            threading.Event().wait(0.05)  # poll interval

    def stop(self) -> None:
        """Stop gunicorn and close the log."""
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._out.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    """Start the gateway under the shipped config with the given settings document."""
    started: list[Served] = []

    def start(document: dict, embedded_worker: bool = False) -> Served:
        settings = tmp_path / "settings.json"
        document.setdefault("store_url", f"sqlite:///{tmp_path / 'outbox.db'}")
        settings.write_text(json.dumps(document))
        server = Served(settings, tmp_path / "gunicorn.log", embedded_worker)
        started.append(server)
        wait_until_up(server.url)
        return server

    yield start
    for server in started:
        server.stop()
