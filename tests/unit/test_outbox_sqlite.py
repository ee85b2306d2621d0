"""The SQLite outbox keeps the Store contract: durable adds, dedupe, claims, outcomes, counts."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from app.coordination.sqlite import SqliteSharedState
from app.errors import ServiceUnavailable
from app.outbox.process_lock import ProcessLock
from app.outbox.sqlite import SqliteStore
from app.outbox.store import Event
from app.outbox.store import Routed
from app.outbox.store import State

T0 = 1_700_000_000.0


def event(mid: str, *, anonymous_id: str | None = "anon-1", user_id: str | None = None) -> Event:
    payload = {"type": "track", "event": "Signed Up", "messageId": mid}
    return Event(mid, "track", "key_server", "server", T0, "2023-11-14T22:13:20.000Z",
                 user_id, anonymous_id, payload)  # fmt: skip


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(tmp_path / "outbox.db", dedupe_window_s=3600)
    yield s
    s.close()


def add(store: SqliteStore, *mids: str, state: State = State.PENDING, reason=None, now=T0):
    return store.add([Routed(event(m), state, reason) for m in mids], now)


def test_add_stores_events_and_reports_duplicates(store):
    assert add(store, "m1", "m2") == [True, True]
    assert add(store, "m2", "m3", "m3") == [False, True, False]
    assert store.counts(T0)["pending"] == 3
    stored = store.find("m1")[0]
    assert stored.event.payload["event"] == "Signed Up"
    assert stored.state is State.PENDING


def test_a_message_id_is_new_again_after_the_dedupe_window(store):
    add(store, "m1")
    assert add(store, "m1", now=T0 + 3599) == [False]
    assert add(store, "m1", now=T0 + 3601) == [True]


def test_dedupe_survives_compaction_of_delivered_rows(store):
    add(store, "m1")
    claimed = store.claim(10, 60, T0)
    store.ack([c.id for c in claimed], T0)
    assert store.compact(T0 + 1) == 1
    assert add(store, "m1", now=T0 + 10) == [False]
    assert store.counts(T0 + 10)["delivered"] == 1


def test_claim_leases_due_events_oldest_first_and_expired_leases_return(store):
    store.add([Routed(event(m, anonymous_id=f"anon-{m}")) for m in ("a", "b", "c")], T0)
    first = store.claim(2, lease_s=30, now=T0)
    assert [c.event.message_id for c in first] == ["a", "b"]
    assert all(c.state is State.IN_FLIGHT for c in first)
    assert [c.event.message_id for c in store.claim(10, 30, T0)] == ["c"]
    assert store.claim(10, 30, T0 + 29) == []
    again = store.claim(10, 30, T0 + 31)
    assert sorted(c.event.message_id for c in again) == ["a", "b", "c"]


def test_retry_reschedules_and_charges_an_attempt(store):
    add(store, "a")
    [c] = store.claim(1, 30, T0)
    store.retry([c.id], at=T0 + 100, error="604 timeout", now=T0)
    assert store.claim(1, 30, T0 + 99) == []
    [again] = store.claim(1, 30, T0 + 100)
    assert again.attempts == 1
    assert again.detail == "604 timeout"
    store.retry([again.id], at=T0 + 100, error="601", now=T0 + 100, charge=False)
    assert store.get(again.id).attempts == 1


def test_outcomes_are_counted_by_reason_and_survive_compaction(store):
    add(store, "a", "b", "c", "d")
    add(store, "e", state=State.DROPPED, reason="event_not_mapped")
    ids = [c.id for c in store.claim(10, 30, T0)]
    store.ack(ids[:1], T0)
    store.drop(ids[1:2], "disabled_by_integrations", T0)
    store.dead(ids[2:3], "marketo_1006", T0, detail="field not found")
    counts = store.counts(T0 + 5)
    assert counts["delivered"] == 1
    assert counts["in_flight"] == 1
    assert counts["dropped"] == {"event_not_mapped": 1, "disabled_by_integrations": 1}
    assert counts["dead"] == {"marketo_1006": 1}
    store.compact(T0 + 1)
    assert store.counts(T0 + 5)["dropped"] == counts["dropped"]
    assert store.counts(T0 + 5)["delivered"] == 1


def test_ack_of_an_event_no_longer_in_flight_counts_nothing(store):
    add(store, "a")
    [c] = store.claim(1, 30, T0)
    store.ack([c.id], T0)
    store.ack([c.id], T0)
    store.drop([c.id], "late", T0)
    assert store.counts(T0)["delivered"] == 1
    assert store.counts(T0)["dropped"] == {}


def test_held_events_are_released_by_anonymous_id_and_expire(store):
    store.add([Routed(event("h1", anonymous_id="x"), State.HELD)], T0)
    store.add([Routed(event("h2", anonymous_id="y"), State.HELD)], T0)
    assert store.claim(10, 30, T0) == []
    assert store.release_held("x", "user-7", T0 + 1) == 1
    [c] = store.claim(10, 30, T0 + 1)
    assert c.event.message_id == "h1"
    assert c.event.user_id == "user-7"
    assert store.expire_held(before=T0 + 1, now=T0 + 2) == 1
    assert store.counts(T0 + 2)["dropped"] == {"anonymous_expired": 1}
    assert store.counts(T0 + 2)["held"] == 0


def test_dead_letters_list_replay_and_purge(store):
    add(store, "a", "b", "c")
    ids = [c.id for c in store.claim(10, 30, T0)]
    store.dead(ids[:2], "marketo_1006", T0, "bad field")
    store.dead(ids[2:], "bad_property_type", T0 + 1, "price not a number")
    assert [d.event.message_id for d in store.dead_letters()] == ["c", "b", "a"]
    assert [d.id for d in store.dead_letters(reason="marketo_1006")] == ids[1::-1]
    assert store.replay(None, "bad_property_type", T0 + 2) == 1
    assert store.get(ids[2]).state is State.PENDING
    assert store.get(ids[2]).attempts == 0
    assert store.replay([ids[0]], None, T0 + 2) == 1
    assert store.purge_dead(before=T0 + 1) == 1
    assert store.get(ids[1]) is None
    assert store.counts(T0 + 3)["dead"] == {}


def test_oldest_pending_age(store):
    assert store.counts(T0)["oldest_pending_s"] == 0.0
    add(store, "a")
    assert store.counts(T0 + 42)["oldest_pending_s"] == pytest.approx(42.0)


def test_concurrent_adds_share_commits_and_all_land(store):
    barrier = threading.Barrier(16)
    results: list[list[bool]] = []

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(20):
            results.append(add(store, f"t{n}-{i}"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == [True] for r in results) and len(results) == 320
    assert store.counts(T0)["pending"] == 320
    assert store._committer.commits < 320


def test_a_caller_queued_behind_a_stuck_commit_gets_503_and_nothing_is_stored(tmp_path):
    store = SqliteStore(tmp_path / "o.db", dedupe_window_s=3600, commit_wait_s=0.2)
    other_process = ProcessLock(tmp_path / "o.db.lock")  # another worker, stuck mid-commit
    other_process.__enter__()
    led: list[list[bool]] = []
    try:
        leader = threading.Thread(target=lambda: led.append(add(store, "lead")))
        leader.start()
        deadline = time.monotonic() + 5
        while not store._committer.leading:
            assert time.monotonic() < deadline, "the leader never started"
        with pytest.raises(ServiceUnavailable) as raised:
            add(store, "queued")
        assert raised.value.status == 503 and raised.value.code == "store_unavailable"
        assert led == []  # the leader is still waiting for the lock
    finally:
        other_process.__exit__()
        other_process.close()
    leader.join(5)
    try:
        assert led == [[True]]
        assert store.find("queued") == [] and len(store.find("lead")) == 1
        assert add(store, "queued") == [True]  # the client's retry is stored once
        assert store.counts(T0)["pending"] == 2
    finally:
        store.close()


def test_claim_skips_visitors_with_an_event_in_flight(store):
    """One visitor's events are in one batch at a time, in order; other visitors go meanwhile."""
    rows = [("a1", "u1", "anon-a"), ("b1", None, "anon-b"), ("a2", None, "anon-a"),
            ("b2", "u2", "anon-b2"), ("a3", "u1", "anon-a3"), ("c1", None, "anon-c")]  # fmt: skip
    store.add([Routed(event(m, anonymous_id=a, user_id=u)) for m, u, a in rows], T0)
    first = store.claim(2, 30, T0)
    assert [c.event.message_id for c in first] == ["a1", "b1"]
    # a2 shares anon-a and a3 shares u1 with a1 in flight: they wait; b2 and c1 share nothing.
    second = store.claim(10, 30, T0)
    assert [c.event.message_id for c in second] == ["b2", "c1"]
    assert store.claim(10, 30, T0) == []
    store.ack([c.id for c in first], T0)
    assert [c.event.message_id for c in store.claim(10, 30, T0)] == ["a2", "a3"]


def test_expired_leases_do_not_block_their_visitor(store):
    store.add([Routed(event(m)) for m in ("a", "b")], T0)
    assert [c.event.message_id for c in store.claim(1, 30, T0)] == ["a"]
    assert store.claim(10, 30, T0 + 1) == []
    again = store.claim(10, 30, T0 + 31)
    assert [c.event.message_id for c in again] == ["a", "b"]


def test_two_stores_on_one_file_never_claim_the_same_event(tmp_path):
    one, two = SqliteStore(tmp_path / "o.db"), SqliteStore(tmp_path / "o.db")
    try:
        one.add([Routed(event(f"m{i}", anonymous_id=f"anon-{i}")) for i in range(200)], T0)
        seen: list[int] = []

        def drain(s: SqliteStore) -> None:
            while batch := s.claim(7, 60, T0):
                seen.extend(c.id for c in batch)

        threads = [threading.Thread(target=drain, args=(s,)) for s in (one, two, one, two)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(seen) == 200 and len(set(seen)) == 200
    finally:
        one.close()
        two.close()


def test_file_is_wal_with_full_sync(store):
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    with store._read() as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_ping_succeeds_on_a_writable_store_and_close_refuses_adds(store):
    store.ping()
    store.close()
    with pytest.raises(Exception, match="closed"):
        add(store, "late")


def test_an_id_is_never_handed_out_twice_after_the_newest_row_goes(store):
    add(store, "old-1", "old-2")
    newest = store.find("old-2")[0].id
    store.ack([c.id for c in store.claim(10, 60, T0)], T0)
    assert store.compact(T0 + 1) == 2
    assert store.find("old-2") == [] and store.counts(T0)["delivered"] == 2
    add(store, "dead-1")
    [dead] = store.claim(10, 60, T0)
    assert dead.id > newest
    store.dead([dead.id], "marketo_1006", T0)
    assert store.purge_dead(T0 + 1) == 1 and store.dead_letters() == []
    add(store, "next")
    assert store.find("next")[0].id > dead.id
    assert store.counts(T0) == {
        "pending": 1, "held": 0, "in_flight": 0, "delivered": 2, "dropped": {}, "dead": {},
        "oldest_pending_s": 0.0,
    }  # fmt: skip


def test_compaction_and_pruning_walk_in_chunks_and_miss_nothing(store, monkeypatch):
    monkeypatch.setattr("app.outbox.sqlite_operators.CHUNK_ROWS", 7)
    add(store, *[f"m{i:03d}" for i in range(50)])
    store.ack([c.id for c in store.claim(100, 60, T0)], T0)
    add(store, *[f"late{i}" for i in range(3)], now=T0 + 100)  # received after the cutoff
    assert store.compact(T0 + 1) == 50
    assert store.prune_dedupe(T0 + 3600 + 50) == 50
    assert add(store, "m007", "late1", now=T0 + 3600 + 50) == [True, False]


def plan(store: SqliteStore, sql: str) -> str:
    with store._read() as conn:
        return " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, ()))


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        ("SELECT id FROM events WHERE state IN ('pending', 'in_flight') AND next_attempt_at <= 1"
         " ORDER BY next_attempt_at, id LIMIT 5", "COVERING INDEX events_due"),
        ("SELECT state, COUNT(*), MIN(received_at) FROM events"
         " WHERE state IN ('pending', 'in_flight') GROUP BY state", "COVERING INDEX events_due"),
        ("SELECT COUNT(*) FROM events WHERE state = 'held'", "events_held"),
        ("SELECT reason, COUNT(*) FROM events WHERE state = 'dead' GROUP BY reason", "events_dead"),
        ("SELECT id FROM events WHERE state = 'dead' AND updated_at < 1", "events_dead"),
        ("SELECT id FROM events WHERE state = 'held' AND received_at < 1", "events_held"),
        ("SELECT max(id), max(received_at) FROM (SELECT id, received_at FROM events WHERE id > 1"
         " ORDER BY id LIMIT 5)", "INTEGER PRIMARY KEY"),
        ("SELECT message_id FROM dedupe WHERE message_id > 'a' AND received_at < 1"
         " ORDER BY message_id LIMIT 5", "PRIMARY KEY"),
    ],
)  # fmt: skip
def test_housekeeping_and_counts_read_an_index(store, sql, index):
    assert index in plan(store, sql)


def test_an_older_database_is_rebuilt_keeping_ids_above_every_id_used(tmp_path):
    from app.outbox import migrations

    path = tmp_path / "o.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrations.upgrade(conn, migrations.SQLITE, target=3)
    row = ("track", "k", "server", T0, "ts", "u", None, '{"type":"track"}', "pending", T0, T0)
    for mid in ("a", "b", "c"):
        conn.execute(
            "INSERT INTO events (message_id, type, source_key_id, source_kind, received_at,"
            " timestamp, user_id, anonymous_id, payload, state, next_attempt_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (mid, *row),
        )
    conn.execute("DELETE FROM events WHERE message_id = 'c'")  # compacted before the upgrade
    conn.close()
    store = SqliteStore(path)
    try:
        assert [e.id for e in store.find("a") + store.find("b")] == [1, 2]
        add(store, "d")
        assert store.find("d")[0].id == 4
        assert store.counts(T0)["pending"] == 3
        with store._read() as c:
            sql = c.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
        assert "AUTOINCREMENT" not in sql
    finally:
        store.close()


def test_committed_events_reach_the_database_file_through_the_background_checkpoint(tmp_path):
    store = SqliteStore(tmp_path / "o.db")
    try:
        add(store, "c1", "c2", "c3")
        assert store._add_conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 10_000
        thread = store._checkpointer._thread
        assert thread is not None and thread.name == "outbox-checkpoint" and thread.is_alive()
        deadline = time.monotonic() + 10
        while store._checkpointer.runs < 1:  # the thread starts after the first commit
            assert time.monotonic() < deadline, "no checkpoint ran"
            threading.Event().wait(0.02)  # poll interval, not a wait for an outcome
        # The database file alone, without its WAL, now holds the three events.
        (tmp_path / "copy.db").write_bytes((tmp_path / "o.db").read_bytes())
        conn = sqlite3.connect(tmp_path / "copy.db")
        try:
            assert conn.execute("SELECT count(*) FROM events").fetchone() == (3,)
        finally:
            conn.close()
    finally:
        store.close()
    assert not thread.is_alive()


def test_the_outbox_files_are_private_to_their_user(tmp_path):
    """Lead data and the Marketo token live here: owner-only file and a new folder 0700."""
    from app.coordination.sqlite import SqliteSharedState

    old = os.umask(0o022)
    try:
        path = tmp_path / "new-folder" / "outbox.db"
        store = SqliteStore(path)
        shared = SqliteSharedState(str(path))
        store.add([Routed(event("m1"), State.PENDING)], T0)
        modes = {p.name: p.stat().st_mode & 0o777 for p in path.parent.iterdir()}
        shared.close()
        store.close()
    finally:
        os.umask(old)
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert modes["outbox.db"] == 0o600
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes


def _open_in_rounds(directory: str, rounds: int, barrier, results) -> None:
    """In a fresh (spawned) process: at each round, open that round's new file with the others."""
    for round_ in range(rounds):
        barrier.wait(60)
        path = os.path.join(directory, f"outbox-{round_}.db")
        try:
            SqliteStore(path).close()
            SqliteSharedState(path)
            results.put((round_, "ok"))
        except Exception as exc:  # reported to the parent, which asserts on it
            results.put((round_, repr(exc)))


def test_processes_opening_a_new_file_at_once_all_start(tmp_path):
    """Gunicorn workers start together: none may fail on the first WAL switch or migration.

    Before the switch and the upgrade ran under the writers' flock, about one round in ten
    had a process fail with "database is locked"; 20 rounds make a regression near certain.
    Spawned, not forked: a fork of this threaded test process can inherit a held lock.
    """
    ctx = multiprocessing.get_context("spawn")
    rounds, procs_n = 20, 6
    barrier, results = ctx.Barrier(procs_n), ctx.Queue()
    args = (str(tmp_path), rounds, barrier, results)
    procs = [ctx.Process(target=_open_in_rounds, args=args) for _ in range(procs_n)]
    for proc in procs:
        proc.start()
    try:
        outcomes = [results.get(timeout=120) for _ in range(rounds * procs_n)]
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    failed = sorted(o for o in outcomes if o[1] != "ok")
    assert failed == [], failed
    for round_ in range(rounds):
        with sqlite3.connect(tmp_path / f"outbox-{round_}.db") as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] >= 1
