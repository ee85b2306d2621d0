"""Intake throughput against a bare Flask baseline under the same gunicorn configuration.

Run: `python bench/intake.py [--duration 10] [--connections 32] [--batch-connections 32,4]`.
Prints `intake_ratio` = (gateway POST /v1/track req/s) / (bare Flask route req/s), the events/s
through /v1/batch with 100 events a batch at each batch concurrency, the p99 acknowledgement
latency of each run, and the server's CPU time per request (gunicorn workers' user + system
time over the run, a figure the noise of a shared machine moves less than req/s).
Every gateway acknowledgement is a durable SQLite (or PostgreSQL) commit.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.settings import hash_secret  # noqa: E402

SERVER_KEY = "sk_bench_server_key_0123456789"
EVENT = {"userId": "user-1", "event": "Bench", "properties": {"plan": "pro", "seats": 3}}

# Goals from the issue: ratio for single events, batch events/s on 2 cores, p99 ack latency.
GOAL_RATIO = 0.7
GOAL_BATCH_EVENTS_S = 20_000
GOAL_P99_MS = 50.0


@dataclass
class Result:
    """One load run: requests per second, p99 latency in ms, non-2xx or failed requests."""

    rps: float
    p99_ms: float
    errors: int
    requests: int
    #: Server CPU (workers' user + system) per request, in microseconds.
    cpu_us: float = 0.0
    #: Each worker's share of that CPU in percent, largest first ("58/42"): wrk opens all its
    #: connections at once and the workers accept them unevenly, which moves the gateway's
    #: figures far more than the bare route's (see bench/README.md).
    split: str = ""


def worker_cpu(master: int) -> dict[str, float]:
    """Return the user + system CPU seconds of each of a gunicorn master's workers so far."""
    out = {}
    children = Path(f"/proc/{master}/task/{master}/children")
    for pid in children.read_text().split() if children.exists() else ():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # a worker that just exited
        # utime, stime (fields 14 and 15)
        out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def cpu_split(before: dict[str, float], after: dict[str, float]) -> tuple[float, str]:
    """Return the workers' CPU seconds between two readings and each one's share, largest first."""
    used = [after[pid] - before.get(pid, 0.0) for pid in after]
    total = sum(used)
    shares = sorted((round(100 * u / total) for u in used), reverse=True) if total else []
    return total, "/".join(str(x) for x in shares)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(target: str, env: dict[str, str], workers: int, threads: int):
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "gthread",
           "--threads", str(threads), "-b", f"127.0.0.1:{port}", "--pythonpath",
           str(REPO / "bench"), "--log-level", "warning", target]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **env})
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            conn.close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"gunicorn {target} did not start") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


WRK_SCRIPT = """
wrk.method = "POST"
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %f %d\\n", summary.requests, summary.duration,
    latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def load_wrk(port: int, path: str, body: bytes, auth: str, duration: float, conns: int) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        script, body_file = Path(tmp, "post.lua"), Path(tmp, "body.json")
        script.write_text(WRK_SCRIPT)
        body_file.write_bytes(body)
        out = subprocess.run(
            ["wrk", "-t2", f"-c{conns}", f"-d{max(1, round(duration))}s", "-s", str(script),
             f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, env={**os.environ, "BENCH_BODY": str(body_file),
                                                 "BENCH_AUTH": auth}, check=True,
        ).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    requests, duration_us, p99_us, errors = line.split()[1:]
    n = int(requests)
    return Result(n / (int(duration_us) / 1e6), float(p99_us) / 1000, int(errors), n)


def load_python(
    port: int, path: str, body: bytes, auth: str, duration: float, conns: int
) -> Result:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    end = time.monotonic() + duration
    headers = {"Content-Type": "application/json", "Authorization": auth}

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        bad = 0
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                status = conn.getresponse()
                status.read()
                ok = status.status == 200
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            mine.append(time.perf_counter() - t0)
            bad += not ok
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    started = time.monotonic()
    threads = [threading.Thread(target=run) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0
    return Result(len(latencies) / elapsed, p99, errors[0], len(latencies))


def report(label: str, r: Result, extra: str = "") -> None:
    print(f"{label} {r.rps:7.0f} req/s  p99 {r.p99_ms:6.1f} ms  cpu {r.cpu_us:6.0f} us/req"
          f" (split {r.split})  errors {r.errors}  {extra}".rstrip())  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--connections", type=int, default=32, help="for the /v1/track runs")
    parser.add_argument(
        "--batch-connections",
        default="32,4",
        help="comma-separated connection counts for /v1/batch runs (an SDK sends its batches"
        " from one consumer thread, so a few per client process is realistic)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--store-url", help="outbox URL (default: SQLite in a temp dir)")
    args = parser.parse_args()
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    load = load_wrk if client == "wrk" else load_python

    tmp = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    store_url = args.store_url or f"sqlite:///{tmp / 'outbox.db'}"
    settings = {
        "munchkin_id": "123-ABC-456",
        "keys": [{"id": "bench", "kind": "server", "secret_hash": hash_secret(SERVER_KEY)}],
        "events": {"Bench": {"activity_type_id": 100001}},
        "store_url": store_url,
    }
    (tmp / "settings.json").write_text(json.dumps(settings))
    env = {"GATEWAY_SETTINGS": str(tmp / "settings.json"), "GATEWAY_EMBEDDED_WORKER": "0"}
    auth = "Basic " + base64.b64encode(f"{SERVER_KEY}:".encode()).decode()
    single = json.dumps(EVENT).encode()
    batch = json.dumps({"batch": [{"type": "track", **EVENT}] * args.batch_size}).encode()

    def run(target: str, path: str, body: bytes, conns: int) -> Result:
        proc, port = start_gunicorn(target, env, args.workers, args.threads)
        try:
            load(port, path, body, auth, min(2.0, args.duration), conns)  # warm-up
            cpu0 = worker_cpu(proc.pid)
            result = load(port, path, body, auth, args.duration, conns)
            used, result.split = cpu_split(cpu0, worker_cpu(proc.pid))
            result.cpu_us = used / max(1, result.requests) * 1e6
            return result
        finally:
            stop(proc)

    batch_conns = [int(n) for n in args.batch_connections.split(",") if n.strip()]
    print(f"client={client} workers={args.workers} threads={args.threads} "
          f"connections={args.connections} batch_connections={batch_conns} "
          f"duration={args.duration}s cpus={os.cpu_count()} "
          f"store={store_url.split(':', 1)[0]}")  # fmt: skip
    bare = run("bare_app:app", "/v1/track", single, args.connections)
    report("bare  POST /v1/track       ", bare)
    track = run("wsgi:app", "/v1/track", single, args.connections)
    report("gate  POST /v1/track       ", track)
    batches = []
    for conns in batch_conns:
        many = run("wsgi:app", "/v1/batch", batch, conns)
        batches.append((conns, many))
        events_s = many.rps * args.batch_size
        report(f"gate  POST /v1/batch c={conns:<3}", many, f"= {events_s:.0f} events/s")
    ratio = track.rps / bare.rps if bare.rps else 0.0
    print(f"intake_ratio {ratio:.2f}  (goal >= {GOAL_RATIO})")
    cpu_ratio = bare.cpu_us / track.cpu_us if track.cpu_us else 0.0
    print(f"intake_cpu_ratio {cpu_ratio:.2f}  (bare cpu/req / track cpu/req: the req/s ratio when"
          f" both runs are CPU-bound, and steadier on a shared machine)")  # fmt: skip
    for conns, many in batches:
        goals = f"(goal >= {GOAL_BATCH_EVENTS_S}, p99 <= {GOAL_P99_MS})"
        print(f"batch_events_per_s c={conns} {many.rps * args.batch_size:.0f}"
              f"  p99 {many.p99_ms:.1f} ms  {goals}")  # fmt: skip
    print(f"p99_ack_ms track {track.p99_ms:.1f}  (goal <= {GOAL_P99_MS})")
    if store_url.startswith("sqlite:///") and not args.store_url:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
