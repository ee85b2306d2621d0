"""Resident memory of each gateway process with a large backlog in the SQLite outbox.

Run: `python -m bench.memory [--pending 1000000] [--seconds 30] [--workers 2]`

Fills a fresh outbox with `--pending` track events (straight into the table, as a long intake
backlog would leave them), starts the gateway under gunicorn with its embedded dispatcher
delivering to the fake Marketo (0.5 s per call, real limits), lets it run `--seconds`, and prints
each process's peak RSS (VmHWM) and current RSS. Goal: each process at most 200 MB.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.devtools.fake_marketo import FakeMarketo  # noqa: E402
from app.outbox import migrations  # noqa: E402
from bench.delivery import Gateway  # noqa: E402
from bench.delivery import children  # noqa: E402

GOAL_MB = 200.0


def fill(path: Path, pending: int, users: int = 50_000) -> None:
    """Insert `pending` pending track events into a migrated outbox at `path`."""
    migrations.prepare_sqlite(path)
    conn = sqlite3.connect(path, isolation_level=None)
    now = time.time()
    conn.execute("BEGIN")
    rows = []
    for i in range(pending):
        mid = uuid.uuid4().hex
        user = f"user-{i % users}"
        payload = {"type": "track", "messageId": mid, "timestamp": "2024-03-05T16:00:00Z",
                   "userId": user, "event": "Signed Up",
                   "properties": {"plan": "Pro", "price": "49.00"}}  # fmt: skip
        rows.append((mid, "track", "bench", "server", now, payload["timestamp"], user, None,
                     json.dumps(payload), "pending", None, now, now))  # fmt: skip
        if len(rows) == 10_000:
            conn.executemany(INSERT, rows)
            rows.clear()
    if rows:
        conn.executemany(INSERT, rows)
    conn.execute("COMMIT")
    conn.close()


INSERT = (
    "INSERT INTO events (message_id, type, source_key_id, source_kind, received_at, timestamp,"
    " user_id, anonymous_id, payload, state, reason, attempts, next_attempt_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)"
)


def memory(pid: int) -> tuple[float, float]:
    """Return (peak, current) resident memory of `pid` in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024


def main(argv: list[str] | None = None) -> None:
    """Fill, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        started = time.monotonic()
        fill(workdir / "outbox.db", args.pending)
        print(f"{args.pending} pending events written in {time.monotonic() - started:.0f} s")
        with FakeMarketo(latency_s=0.5) as fake:
            fake.keep_bodies = False
            gateway = Gateway(workdir, fake, args.workers)
            try:
                gateway.get("/healthz")  # the workers start their dispatchers on a request
                time.sleep(args.seconds)
                pids = [gateway.proc.pid, *children(gateway.proc.pid)]
                figures = {pid: memory(pid) for pid in pids}
                status = gateway.get("/healthz")
            finally:
                gateway.stop()
            delivered = len(fake.activities)
        print(f"dispatchers ran {args.seconds:.0f} s and delivered {delivered} activities")
        for role, pid in zip(["master", *["worker"] * args.workers], pids, strict=False):
            peak, now = figures[pid]
            print(f"  {role} {pid}: peak RSS {peak:.0f} MB, now {now:.0f} MB "
                  f"(goal <= {GOAL_MB:.0f} MB, ratio {peak / GOAL_MB:.2f})")  # fmt: skip
        if not status:
            print("  (no health answer at the end)")


if __name__ == "__main__":
    main()
