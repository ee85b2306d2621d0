"""Outbox backends side by side: SQLite (baseline) against PostgreSQL on the same machine and data.

Run: `python -m bench.stores [--events 20000] [--threads 16] [--store-url postgresql://...]`.
Without --store-url a throw-away database is created on postgresql://postgres@127.0.0.1:5432
and dropped afterwards. Three figures per backend, each printed with the PostgreSQL/SQLite ratio:

1. single-event adds from `--threads` threads at once (what concurrent POST /v1/track does),
   in events/s, with how many commits they shared (group commit);
2. adds of 100 events per call (POST /v1/batch), in events/s;
3. claim(300) then ack, as one dispatcher drains the outbox, in events/s.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg

from app.outbox import open_store
from app.outbox.store import Event
from app.outbox.store import Routed
from app.outbox.store import Store

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PAYLOAD = {"type": "track", "event": "Signed Up", "properties": {"plan": "pro", "seats": 3}}


def routed(now: float) -> Routed:
    mid = str(uuid.uuid4())
    payload = {**PAYLOAD, "messageId": mid, "userId": "user-1"}
    return Routed(Event(mid, "track", "bench", "server", now, "2024-03-05T16:00:00Z",
                        "user-1", None, payload))  # fmt: skip


def concurrent_singles(store: Store, events: int, threads: int) -> tuple[float, int]:
    """Return events/s and commits for `events` one-event adds spread over `threads`."""
    per_thread = events // threads
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            store.add([routed(time.time())], time.time())

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    before = store._committer.commits  # type: ignore[attr-defined]
    barrier.wait()
    started = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    return per_thread * threads / elapsed, store._committer.commits - before  # type: ignore[attr-defined]


def batches(store: Store, events: int, size: int = 100) -> float:
    """Return events/s for adds of `size` events per call from one thread."""
    started = time.perf_counter()
    for _ in range(events // size):
        now = time.time()
        store.add([routed(now) for _ in range(size)], now)
    return (events // size) * size / (time.perf_counter() - started)


def drain(store: Store) -> float:
    """Return events/s for claim(300) + ack until nothing is due."""
    done = 0
    started = time.perf_counter()
    while claimed := store.claim(300, 600, time.time()):
        store.ack([c.id for c in claimed], time.time())
        done += len(claimed)
    return done / (time.perf_counter() - started)


def measure(url: str, events: int, threads: int) -> dict[str, float]:
    """Run the three measurements on a fresh store at `url`."""
    store = open_store(url, Path.cwd(), 24 * 3600.0)
    try:
        singles, commits = concurrent_singles(store, events, threads)
        return {
            "singles": singles,
            "commits": float(commits),
            "batches": batches(store, events),
            "drain": drain(store),
        }
    finally:
        store.close()


def main(argv: list[str] | None = None) -> None:
    """Measure SQLite, then PostgreSQL, and print both with their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--store-url", default=None, help="postgresql://... (default: temp db)")
    args = parser.parse_args(argv)
    created = None
    pg_url = args.store_url
    if pg_url is None:
        created = f"gw_bench_{secrets.token_hex(4)}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{created}"')
        pg_url = ADMIN_URL.rpartition("/")[0] + f"/{created}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            lite = measure(f"sqlite:///{Path(tmp) / 'outbox.db'}", args.events, args.threads)
        pg = measure(pg_url, args.events, args.threads)
    finally:
        if created is not None:
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')
    print(f"{args.events} events, {args.threads} threads for single adds")
    print(f"{'figure':34} {'sqlite':>10} {'postgres':>10} {'pg/sqlite':>10}")
    rows = (
        ("single-event adds, events/s", "singles"),
        ("  commits they shared", "commits"),
        ("adds of 100, events/s", "batches"),
        ("claim(300) + ack, events/s", "drain"),
    )
    for label, key in rows:
        ratio = pg[key] / lite[key] if lite[key] else 0.0
        print(f"{label:34} {lite[key]:10.0f} {pg[key]:10.0f} {ratio:9.2f}x")


if __name__ == "__main__":
    main()
