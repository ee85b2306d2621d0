"""An acknowledged event survives `kill -9` of a gunicorn worker, and of the whole server."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest
import requests

from app.outbox.sqlite import SqliteStore
from tests.fixtures_intake import Gunicorn
from tests.fixtures_intake import basic_auth
from tests.fixtures_intake import wait_until_up

pytestmark = pytest.mark.slow

# Bounds of the load: enough acks around each kill to matter, and a hard stop in time.
CLIENT_THREADS = 8
ACKS_BEFORE_KILL = 150
ACKS_AFTER_KILL = 150
LOAD_DEADLINE_S = 20.0


class Load:
    """Client threads posting unique track events and recording each acknowledged messageId."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acked: list[str] = []
        self.failed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(CLIENT_THREADS)]

    def _run(self) -> None:
        session = requests.Session()
        headers = basic_auth()
        while not self._stop.is_set():
            mid = str(uuid.uuid4())
            body = {"userId": "u", "event": "Load", "messageId": mid}
            try:
                response = session.post(
                    f"{self.url}/v1/track", json=body, headers=headers, timeout=10
                )
            except requests.RequestException:
                with self._lock:
                    self.failed += 1
                session = requests.Session()
                continue
            with self._lock:
                if response.status_code == 200:
                    self.acked.append(mid)
                else:
                    self.failed += 1

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def wait_for(self, n: int, deadline: float) -> None:
        """Poll until n acks were recorded or the deadline passes."""
        while len(self.acked) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.acked)} acks, expected {n}")
            self._stop.wait(0.01)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            if t.ident is not None:  # started: a failure before start() must still stop servers
                t.join(15)


def test_no_acknowledged_event_is_lost_to_kill_9(write_settings, settings_path):
    document = write_settings()
    db_path = document["store_url"][len("sqlite:///") :]
    server = Gunicorn(settings_path)
    load = Load(server.url)
    try:
        wait_until_up(server.url)
        deadline = time.monotonic() + LOAD_DEADLINE_S
        load.start()
        load.wait_for(ACKS_BEFORE_KILL, deadline)
        victim = server.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        acked_at_kill = len(load.acked)
        load.wait_for(acked_at_kill + ACKS_AFTER_KILL, deadline)
        # Then the whole server, arbiter and workers, while requests are still in flight.
        workers = server.worker_pids()
        os.kill(server.proc.pid, signal.SIGKILL)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        server.proc.wait(10)
    finally:
        load.stop()
        server.stop()
    assert victim not in workers  # the arbiter replaced the killed worker
    restarted = Gunicorn(settings_path)
    try:
        wait_until_up(restarted.url)
        store = SqliteStore(db_path)
        try:
            missing = [mid for mid in load.acked if len(store.find(mid)) != 1]
        finally:
            store.close()
    finally:
        restarted.stop()
    assert len(load.acked) >= ACKS_BEFORE_KILL + ACKS_AFTER_KILL
    assert missing == []


# kill -9 of the whole gateway during delivery, then a restart: delivery resumes at once.
# Generous bounds for a busy 2-core machine; bench/recovery.py prints the measured figures.
RESUME_WITHIN_S = 10.0
ALL_DELIVERED_WITHIN_S = 40.0
RECOVERY_EVENTS = 1500
# Events of the calls in flight when the process group died: 2 workers × batch_size 100.
MAX_IN_FLIGHT = 200


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_delivery_resumes_within_seconds_after_kill_9_and_a_restart(backend, request, tmp_path):
    from bench.recovery import measure

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'outbox.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    result = measure(url, tmp_path, events=RECOVERY_EVENTS, latency=0.2, backend=backend)
    print(result.line())
    assert result.missing == 0, "an acknowledged event never reached Marketo"
    assert result.first_s is not None and result.first_s <= RESUME_WITHIN_S
    assert result.last_s is not None and result.last_s <= ALL_DELIVERED_WITHIN_S
    # Only events whose call had reached Marketo before the kill may arrive twice.
    assert result.duplicates_outside_kill == 0
    assert result.duplicates <= MAX_IN_FLIGHT
    assert result.errors_606_615 == 0
