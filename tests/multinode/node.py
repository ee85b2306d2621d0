"""One gateway node: gunicorn with the embedded dispatcher, in its own process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from tests.fixtures_intake import REPO
from tests.fixtures_intake import free_port


class Node:
    """A `gunicorn tests.multinode.wsgi:app` process group on a free loopback port."""

    def __init__(
        self,
        settings_path: Path,
        log_path: Path,
        lease_s: float,
        threads: int = 4,
        dispatcher: bool = True,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "GATEWAY_SETTINGS": str(settings_path),
            "GATEWAY_EMBEDDED_WORKER": "1" if dispatcher else "0",
            "GATEWAY_TEST_LEASE_S": str(lease_s),
        }
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", str(threads),
             "-b", f"127.0.0.1:{self.port}", "--graceful-timeout", "5",
             "--no-control-socket", "tests.multinode.wsgi:app"],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def wait_until_up(self, deadline_s: float = 30.0) -> None:
        """Poll /healthz until the node answers (booting an app can take seconds on 2 cores)."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise TimeoutError(f"node {self.url} did not come up")
            threading.Event().wait(0.05)  # poll interval, not a wait for an outcome

    def kill9(self) -> None:
        """SIGKILL the arbiter and its worker at once: no shutdown hook runs."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Stop the node gracefully (or kill it if it hangs) and close its log."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
