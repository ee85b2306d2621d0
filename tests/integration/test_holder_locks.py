"""Coordination locks die with their holder: a worker killed with SIGKILL while resolving leads
frees the `lead-resolution` lock at once, on SQLite (flock) and PostgreSQL (advisory lock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

from app.coordination import open_shared
from app.delivery.leads import LOCK_NAME

HOLDER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from app.coordination import open_shared
    shared = open_shared(sys.argv[1], Path(sys.argv[2]))
    with shared.exclusive(sys.argv[3]) as held:
        print("held" if held else "busy", flush=True)
        threading.Event().wait(60)
    """
)


def hold_in_child(store_url: str, base, name: str) -> subprocess.Popen:
    """Start a process that takes the lock and keeps it until killed; wait until it holds it."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, store_url, str(base), name],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    return child


def free_within(shared, name: str, deadline_s: float) -> float:
    """Return how long it took until the lock could be taken here (polled with a deadline)."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        with shared.exclusive(name) as held:
            if held:
                return time.monotonic() - start
        threading.Event().wait(0.01)  # poll interval
    raise AssertionError(f"the {name} lock was not freed within {deadline_s} s")


def test_a_lock_is_exclusive_and_freed_at_once_when_its_holder_is_killed(
    backend_shared, store_url, tmp_path
):
    child = hold_in_child(store_url, tmp_path, LOCK_NAME)
    try:
        with backend_shared.exclusive(LOCK_NAME) as held:
            assert held is False  # another process holds it
        with backend_shared.exclusive("another-name") as held:
            assert held is True  # names are independent
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
    assert free_within(backend_shared, LOCK_NAME, 5.0) < 5.0


def test_threads_of_one_process_exclude_each_other(store_url, tmp_path):
    first = open_shared(store_url, tmp_path)
    try:
        with first.exclusive(LOCK_NAME) as outer:
            assert outer
            seen: list[bool] = []

            def other() -> None:
                with first.exclusive(LOCK_NAME) as held:
                    seen.append(held)

            thread = threading.Thread(target=other)
            thread.start()
            thread.join(10)
            assert seen == [False]
        with first.exclusive(LOCK_NAME) as again:
            assert again  # released on exit
    finally:
        first.close()
