"""Crash recovery: seconds from a restart after `kill -9` of the whole gateway to delivery.

Run: `python -m bench.recovery [--events 2000] [--latency 0.3] [--pg-url URL] [--skip-postgres]`

Per backend (SQLite, then PostgreSQL): gunicorn with 2 workers and the embedded dispatcher
delivers to the fake Marketo (each call held `--latency` seconds, as Marketo's are). Events are
posted in /v1/batch requests; once a fifth of them reached the fake, the whole process group
(arbiter and workers) is killed with SIGKILL, and gunicorn is started again. It prints the
seconds from the restart to the first activity delivered after it and to the last acknowledged
event delivered, the events delivered twice (allowed only for calls the fake had accepted before
the kill) and any acknowledged event never delivered.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from app.devtools.fake_marketo import FakeMarketo
from app.settings.model import hash_secret

REPO = Path(__file__).resolve().parent.parent
SERVER_KEY = "sk_bench_recovery"
ACTIVITIES = "/activities/external.json"
POST_BATCH = 100
USERS = 20
#: Kill once this share of the events reached the fake: mid-delivery, with plenty left.
KILL_AT = 0.2
#: Give up waiting for the gateway to deliver everything after this long.
DELIVERY_DEADLINE_S = 120.0
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gateway:
    """`gunicorn wsgi:app`, 2 workers with their embedded dispatchers, in its own process group."""

    def __init__(self, settings_path: Path, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "GATEWAY_SETTINGS": str(settings_path), "GATEWAY_EMBEDDED_WORKER": "1"}
        env["PYTHONPATH"] = str(REPO)
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "2", "--threads", "4",
             "-b", f"127.0.0.1:{self.port}", "--graceful-timeout", "5",
             "--no-control-socket", "wsgi:app"],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def wait_until_up(self, deadline_s: float = 60.0) -> None:
        """Poll /healthz until the gateway answers."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise TimeoutError(f"gateway {self.url} did not come up")
            threading.Event().wait(0.05)  # poll interval

    def kill9(self) -> None:
        """SIGKILL the arbiter and both workers at once: no shutdown code runs."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        """Stop gracefully, or kill if it hangs."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if not self._log.closed:
            self._log.close()


@dataclass
class Recovery:
    """What one kill -9 and restart measured."""

    backend: str
    events: int
    sent_before_kill: int
    first_s: float | None
    last_s: float | None
    duplicates: int
    duplicates_outside_kill: int
    missing: int
    errors_606_615: int

    def line(self) -> str:
        first = "-" if self.first_s is None else f"{self.first_s:.2f}"
        last = "-" if self.last_s is None else f"{self.last_s:.2f}"
        return (
            f"{self.backend:<10} events {self.events}  sent before kill "
            f"{self.sent_before_kill}  restart→first {first} s  restart→last {last} s  "
            f"twice {self.duplicates} (not sent before the kill: {self.duplicates_outside_kill})"
            f"  missing {self.missing}  606/615 {self.errors_606_615}"
        )


def settings_document(store_url: str, fake: FakeMarketo) -> dict[str, Any]:
    return {
        "munchkin_id": "123-ABC-456",
        "secret_key": "bench-secret-key-not-for-production",
        "keys": [{"id": "key_server", "kind": "server", "secret_hash": hash_secret(SERVER_KEY)}],
        "store_url": store_url,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "rest_base_url": fake.url,
        "identity_url": f"{fake.url}/identity",
        "lead_fields": {"user_id": "userId"},
        "events": {"Signed Up": {"activity_type_id": 100001, "primary": "plan"}},
        "limits": {"batch_size": 100, "batch_wait_s": 0.2, "timeout_s": 10},
    }


def post(url: str, mids: list[str]) -> None:
    """Post the events in /v1/batch requests; every one must be acknowledged."""
    import base64

    auth = {"Authorization": "Basic " + base64.b64encode(f"{SERVER_KEY}:".encode()).decode()}
    with requests.Session() as session:
        for start in range(0, len(mids), POST_BATCH):
            batch = [
                {"type": "track", "userId": f"user-{n % USERS}", "event": "Signed Up",
                 "messageId": mid, "properties": {"plan": mid}}
                for n, mid in enumerate(mids[start : start + POST_BATCH], start)
            ]  # fmt: skip
            body = {"batch": batch}
            response = session.post(f"{url}/v1/batch", json=body, headers=auth, timeout=30)
            response.raise_for_status()


def answered_since(fake: FakeMarketo, since: float) -> bool:
    """Tell whether an activities call that arrived after `since` was answered with success."""
    return any(
        c.time > since and c.status == 200 and (c.response or {}).get("success")
        for c in fake.calls_to(ACTIVITIES)
    )


def sent_before(fake: FakeMarketo, when: float) -> set[str]:
    """Return the events carried by activities calls that reached the fake before `when`."""
    return {
        str(item.get("primaryAttributeValue"))
        for c in fake.calls_to(ACTIVITIES)
        if c.time <= when
        for item in ((c.json or {}).get("input") or [])
    }


def wait_for(condition, deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.02)  # poll interval
    return True


def measure(
    store_url: str, workdir: Path, *, events: int = 2000, latency: float = 0.3, backend: str = ""
) -> Recovery:
    """Deliver, kill -9 the whole gateway mid-delivery, restart it and time the recovery."""
    fake = FakeMarketo(latency_s=latency).start()
    settings_path = workdir / "instance" / "settings.json"
    settings_path.parent.mkdir(parents=True, exist_ok=True)
    settings_path.write_text(json.dumps(settings_document(store_url, fake)))
    if store_url.startswith("postgresql"):
        from app.outbox import migrations

        migrations.upgrade_url(store_url)
    log = workdir / "gateway.log"
    mids = [str(uuid.uuid4()) for _ in range(events)]

    def sent() -> collections.Counter:
        return collections.Counter(a["primaryAttributeValue"] for a in list(fake.activities))

    gateway = Gateway(settings_path, log)
    restarted: Gateway | None = None
    try:
        gateway.wait_until_up()
        post(gateway.url, mids)  # every event acknowledged (200) before the kill
        if not wait_for(lambda: len(fake.activities) >= events * KILL_AT, DELIVERY_DEADLINE_S):
            raise RuntimeError("delivery never started; see " + str(log))
        gateway.kill9()
        killed_at = fake.clock.now()
        started = time.monotonic()
        restarted = Gateway(settings_path, log)
        first = last = None
        if wait_for(lambda: answered_since(fake, killed_at), DELIVERY_DEADLINE_S):
            first = time.monotonic() - started
        if wait_for(lambda: set(mids) <= set(sent()), DELIVERY_DEADLINE_S):
            last = time.monotonic() - started
        wait_for(lambda: False, 1.0)  # a late duplicate would show within a batch's time
        final = sent()
        at_kill = sent_before(fake, killed_at)
    finally:
        if restarted is not None:
            restarted.stop()
        gateway.stop()
        fake.stop()
    twice = {mid for mid, n in final.items() if n > 1}
    return Recovery(
        backend=backend or store_url.split(":", 1)[0],
        events=events,
        sent_before_kill=len(at_kill),
        first_s=first,
        last_s=last,
        duplicates=len(twice),
        duplicates_outside_kill=len({m for m in twice if m not in at_kill}),
        missing=len(set(mids) - set(final)),
        errors_606_615=fake.errors_returned["606"] + fake.errors_returned["615"],
    )


def fresh_pg_database(url: str, name: str) -> str:
    """Create (anew) a throw-away database on the server of `url`; return its URL."""
    import psycopg

    from app.outbox.pg_pool import split_url

    with psycopg.connect(split_url(url)[0], autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per Marketo call")
    parser.add_argument("--pg-url", default=os.environ.get("GATEWAY_BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_dir = Path(tmp) / "sqlite"
        url = f"sqlite:///{sqlite_dir / 'outbox.db'}"
        sqlite_dir.mkdir()
        results.append(
            measure(url, sqlite_dir, events=args.events, latency=args.latency, backend="sqlite")
        )
        print(results[-1].line(), flush=True)
        if not args.skip_postgres:
            pg_dir = Path(tmp) / "postgres"
            pg_dir.mkdir()
            url = fresh_pg_database(args.pg_url, "gateway_bench_recovery")
            results.append(
                measure(url, pg_dir, events=args.events, latency=args.latency, backend="postgresql")
            )
            print(results[-1].line(), flush=True)
    print(
        "goal: restart→first ≤ 10 s on each backend, missing 0, duplicates only inside killed calls"
    )


if __name__ == "__main__":
    main()
