"""Delivery benchmark: the gateway under gunicorn against the fake Marketo with a call latency.

Run: `python -m bench.delivery [--latency 0.5] [--events 60000] [--users 6000] [--workers 2]
[--skip-throughput] [--skip-calls]`

Every figure is counted at the fake (what Marketo would have received) over elapsed wall time.
The fake answers each call after `--latency` seconds with Marketo's real limits (100 calls per
20 s, 10 in flight); the gateway runs with its defaults (90 per 20 s, concurrency 8, batch 300,
linger 400 ms), its embedded dispatcher in each gunicorn worker, events posted to `/v1/batch`.

1. Throughput: `--events` tracks of `--users` known users (lead cache warm), activities counted
   at the fake per second from the first POST to the last activity; ceiling 1500/s (goal 1400).
2. Calls per 1000 track events from 1000 new users with `context.traits.email`, every call
   counted (token and usage included); floor 13, goal 14. Posted as 10 batches of 100.
3. The same 1000 events streamed by segment-analytics-python at its default flush; goal 16.
4. Events that also carry a Munchkin cookie: new cookies, then the same cookies again.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.devtools.fake_marketo import FakeMarketo  # noqa: E402
from app.ratelimit import WINDOW_MARGIN_S  # noqa: E402
from app.ratelimit import WINDOW_S  # noqa: E402
from app.settings import hash_secret  # noqa: E402

SERVER_KEY = "sk_bench_delivery_key_0123456789"
ACTIVITIES = "/activities/external.json"
CEILING_PER_S = 100 * 300 / WINDOW_S
CALLS_FLOOR = 13
POST_CHUNK = 100
# Visitors with new cookies in the cookie figure: each costs a lookup and an associate call
# (Marketo takes one cookie per call), so 1000 would take 7 minutes of 90-per-20-s windows.
COOKIE_VISITORS = 100


def free_port() -> int:
    """Return a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gateway:
    """The gateway under gunicorn (thread workers, embedded dispatcher) on a fresh store."""

    def __init__(
        self,
        workdir: Path,
        fake: FakeMarketo,
        workers: int,
        user_field: bool = True,
        calls_per_20s: int = 90,
    ) -> None:
        settings = {
            "munchkin_id": fake.munchkin_id,
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "rest_base_url": fake.url,
            "identity_url": f"{fake.url}/identity",
            "keys": [{"id": "bench", "kind": "server", "secret_hash": hash_secret(SERVER_KEY)}],
            # Email shapes use the default (no lead field for userId), as the README advises.
            "lead_fields": {"user_id": "userId" if user_field else None},
            "events": {
                "Signed Up": {
                    "activity_type_id": 100001,
                    "primary": "plan",
                    "properties": {"price": {"attribute": "price", "type": "currency"}},
                }
            },
            "limits": {"timeout_s": 30, "calls_per_20s": calls_per_20s},
            "store_url": f"sqlite:///{workdir / 'outbox.db'}",
        }
        path = workdir / "settings.json"
        path.write_text(json.dumps(settings))
        self.port = free_port()
        cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "gthread",
               "--threads", "8", "-b", f"127.0.0.1:{self.port}", "--log-level", "warning",
               "wsgi:app"]  # fmt: skip
        env = {**os.environ, "GATEWAY_SETTINGS": str(path), "PYTHONPATH": str(REPO)}
        self.log = open(workdir / "gunicorn.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.get("/healthz")
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"gunicorn did not start; see {workdir}") from None
                time.sleep(0.1)

    def get(self, path: str) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path)
            return conn.getresponse().read()
        finally:
            conn.close()

    def post_all(self, events: list[dict[str, Any]], clients: int = 4) -> None:
        """POST `events` to /v1/batch in chunks of 100 from `clients` keep-alive connections."""
        chunks = [events[i : i + POST_CHUNK] for i in range(0, len(events), POST_CHUNK)]
        auth = "Basic " + base64.b64encode(f"{SERVER_KEY}:".encode()).decode()
        lock = threading.Lock()
        failures: list[str] = []

        def send() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            while True:
                with lock:
                    if not chunks:
                        break
                    chunk = chunks.pop(0)
                body = json.dumps({"batch": chunk})
                headers = {"Authorization": auth, "Content-Type": "application/json"}
                conn.request("POST", "/v1/batch", body, headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    failures.append(str(resp.status))
            conn.close()

        threads = [threading.Thread(target=send) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise RuntimeError(f"intake refused batches: {Counter(failures)}")

    def rss_mb(self) -> dict[int, float]:
        """Return each gunicorn process's resident memory in MB (master included)."""
        return process_rss([self.proc.pid, *children(self.proc.pid)])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def children(pid: int) -> list[int]:
    """Return the child process ids of `pid` (gunicorn's workers)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def process_rss(pids: list[int]) -> dict[int, float]:
    """Return VmRSS in MB of each process."""
    found: dict[int, float] = {}
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    found[pid] = int(line.split()[1]) / 1024.0
        except OSError:
            pass
    return found


def track(user: str, *, email: bool = False, cookie: str | None = None) -> dict[str, Any]:
    """Return one mapped track event of `user`, optionally with an email and a Munchkin cookie."""
    message: dict[str, Any] = {
        "type": "track",
        "messageId": uuid.uuid4().hex,
        "userId": user,
        "event": "Signed Up",
        "properties": {"plan": "Pro", "price": "49.00"},
    }
    context: dict[str, Any] = {}
    if email:
        context["traits"] = {"email": f"{user}@example.com"}
    if cookie:
        context["Marketo"] = {"marketoCookie": cookie}
    if context:
        message["context"] = context
    return message


def wait_for(fake: FakeMarketo, activities: int, timeout_s: float) -> float:
    """Wait until the fake holds `activities` activities; return the time it got there."""
    deadline = time.monotonic() + timeout_s
    while True:
        with fake.lock:
            have = len(fake.activities)
        if have >= activities:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {have} of {activities} activities after {timeout_s} s")
        time.sleep(0.02)


def settle(fake: FakeMarketo, quiet_s: float = 3.0) -> None:
    """Wait until the fake has received no call for `quiet_s` (stray calls counted too)."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < quiet_s:
        n = len(fake.calls)
        if n != last:
            last, since = n, time.monotonic()
        time.sleep(0.1)


def throughput(
    workdir: Path, latency: float, users: int, events: int, workers: int, calls_per_20s: int = 90
):
    """Deliver `events` tracks of `users` known users; return figures counted at the fake."""
    with FakeMarketo(latency_s=latency) as fake:
        fake.keep_bodies = False
        gateway = Gateway(workdir, fake, workers, calls_per_20s=calls_per_20s)
        try:
            names = [f"user-{i}" for i in range(users)]
            gateway.post_all([track(u) for u in names])  # warm the lead cache
            wait_for(fake, users, 600)
            settle(fake, 1.0)
            time.sleep(WINDOW_S + WINDOW_MARGIN_S + 0.5)  # start with an empty 20 s window
            fake.reset()
            with fake.lock:
                before = len(fake.activities)
            started = time.monotonic()
            gateway.post_all([track(names[i % users]) for i in range(events)])
            posted = time.monotonic() - started
            ended = wait_for(fake, before + events, 900)
            rss = gateway.rss_mb()
        finally:
            gateway.stop()
        summary = fake.summary()
        by_path = summary["by_path"]
        elapsed = ended - started
        return {
            "delivered": events,
            "elapsed_s": elapsed,
            "posted_s": posted,
            "per_s": events / elapsed,
            "calls": summary["total"],
            "activity_calls": sum(n for p, n in by_path.items() if p.endswith(ACTIVITIES)),
            "606": summary["errors_returned"].get("606", 0),
            "615": summary["errors_returned"].get("615", 0),
            "max_in_flight": summary["max_concurrency_seen"],
            "rss_mb": rss,
        }


def calls_per_thousand(workdir: Path, latency: float, workers: int, shape: str) -> dict[str, Any]:
    """Return every call the fake got (token, usage included) per 1000 events of new users."""
    with FakeMarketo(latency_s=latency) as fake:
        fake.keep_bodies = False
        gateway = Gateway(workdir, fake, workers, user_field=False)
        try:
            if shape == "cookie":
                return cookie_costs(fake, gateway)
            users = [f"new-{shape}-{i}" for i in range(1000)]
            if shape == "sdk":
                stream_with_segment(gateway, users)
            else:
                gateway.post_all([track(u, email=True) for u in users], 1)
            wait_for(fake, 1000, 300)
            settle(fake)
            return {"first": per_thousand(fake.summary(), 1000)}
        finally:
            gateway.stop()


def cookie_costs(fake: FakeMarketo, gateway: Gateway, n: int = COOKIE_VISITORS) -> dict[str, Any]:
    """Cost of events with new Munchkin cookies, then of the same visitors again (cached)."""
    users = [f"new-cookie-{i}" for i in range(n)]
    gateway.post_all([track(u, email=True, cookie=cookie(u)) for u in users], 1)
    wait_for(fake, n, 600)
    deadline = time.monotonic() + 900
    while sum(1 for c in fake.calls if c.path.endswith("/associate.json")) < n:
        if time.monotonic() > deadline:
            raise RuntimeError("not every cookie was associated")
        time.sleep(0.2)
    settle(fake)
    first = per_thousand(fake.summary(), n)
    fake.reset()
    gateway.post_all([track(u, email=True, cookie=cookie(u)) for u in users], 1)
    wait_for(fake, 2 * n, 300)
    settle(fake)
    return {"first": first, "again": per_thousand(fake.summary(), n)}


def per_thousand(summary: dict[str, Any], events: int) -> dict[str, Any]:
    """Return the calls of `summary` scaled to 1000 events, grouped by endpoint."""
    paths: Counter[str] = Counter()
    for path, n in summary["by_path"].items():
        name = "associate" if path.endswith("/associate.json") else path.rsplit("/", 1)[-1]
        paths[name] += n
    scale = 1000.0 / events
    return {"total": summary["total"] * scale, "by_path": {p: n * scale for p, n in paths.items()}}


def cookie(user: str) -> str:
    """Return a Munchkin cookie value for `user`."""
    return f"id:123-ABC-456&token:_mch-example.com-{abs(hash(user)) % 10**13}-{user[-5:]}"


def stream_with_segment(gateway: Gateway, users: list[str]) -> None:
    """Send one track per user through segment-analytics-python at its default flush settings."""
    from segment.analytics.client import Client

    errors: list[Any] = []
    client = Client(
        SERVER_KEY,
        host=f"http://127.0.0.1:{gateway.port}",
        on_error=lambda exc, batch: errors.append(exc),
    )
    for user in users:
        client.track(
            user,
            "Signed Up",
            {"plan": "Pro", "price": "49.00"},
            context={"traits": {"email": f"{user}@example.com"}},
        )
    client.flush()
    client.join()
    if errors:
        raise RuntimeError(f"the SDK reported {errors[:3]}")


def print_calls(label: str, figures: dict[str, Any], goal: float | None) -> None:
    """Print a calls-per-1000 figure beside the floor of 13 calls."""
    total = figures["total"]
    paths = ", ".join(f"{p} {n:g}" for p, n in sorted(figures["by_path"].items()))
    target = f", goal <= {goal:g}" if goal else ""
    print(f"{label}: {total:g} calls per 1000 events (counted at the fake{target})")
    print(f"  ratio to the floor of {CALLS_FLOOR}: {total / CALLS_FLOOR:.2f}; by endpoint: {paths}")


def main(argv: list[str] | None = None) -> None:
    """Run the measurements and print each figure beside its ceiling."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per fake call")
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--users", type=int, default=6000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--calls-per-20s",
        type=int,
        default=90,
        help="the gateway's limits.calls_per_20s (90 by default leaves 10 to other integrations;"
        " 98 when the gateway has the instance's whole budget)",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-calls", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    print(f"fake latency {args.latency} s per call, gunicorn workers {args.workers}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not args.skip_calls:
            for shape, label, goal in (
                ("email", "1000 tracks of new users, context.traits.email, 10 x /v1/batch", 14),
                ("sdk", "the same streamed by segment-analytics-python (default flush)", 16),
            ):
                (root / shape).mkdir()
                result = calls_per_thousand(root / shape, args.latency, args.workers, shape)
                print_calls(label, result["first"], goal)
            (root / "cookie").mkdir()
            result = calls_per_thousand(root / "cookie", args.latency, args.workers, "cookie")
            label = f"{COOKIE_VISITORS} tracks of new users with email and a new Munchkin cookie"
            print_calls(label, result["first"], None)
            print_calls("the same visitors and cookies again (cached)", result["again"], None)
        if args.skip_throughput:
            return
        (root / "tp").mkdir()
        f = throughput(
            root / "tp", args.latency, args.users, args.events, args.workers, args.calls_per_20s
        )
        print(
            f"throughput: {f['delivered']} activities of {args.users} known users in "
            f"{f['elapsed_s']:.1f} s (posted in {f['posted_s']:.1f} s), counted at the fake "
            f"over elapsed time: {f['per_s']:.0f}/s"
        )
        print(
            f"  ratio to Marketo's ceiling {CEILING_PER_S:.0f}/s: {f['per_s'] / CEILING_PER_S:.2f}"
            f" (goal >= 1400/s); {f['calls']} calls, {f['activity_calls']} activity calls"
        )
        print(
            f"  606: {f['606']}, 615: {f['615']}, max calls in flight at the fake: "
            f"{f['max_in_flight']} (gateway concurrency 8, fake 10)"
        )
        rss = ", ".join(f"{mb:.0f}" for mb in f["rss_mb"].values())
        print(f"  gunicorn RSS (master, workers) MB: {rss}")


if __name__ == "__main__":
    main()
