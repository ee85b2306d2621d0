"""Call slots are leases renewed while their call runs, so a killed process frees its slots.

Before, a slot counted as in flight until the read timeout plus 30 s (60 s by default): after
`kill -9` of a gateway in the middle of `concurrency` slow calls, the restarted gateway could
make no call for a minute (SPEC §6.9 asks for delivery within 10 s of a restart).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from app.coordination.gate import Gate
from app.devtools.fake_marketo import FakeClock
from app.marketo.errors import LimiterBusy
from app.ratelimit import Budget

BUDGET = Budget(calls_per_window=90, concurrency=8, daily_quota=45000)
LEASE_S = 6.0
START = 1_800_000_000.0


def gate_on(shared, clock: FakeClock, *, slot_ttl: float = 60.0) -> Gate:
    """A gate that refuses at once (no in-thread wait) on a controlled clock."""
    return Gate(shared, lambda: BUDGET, clock.now, clock.advance, slot_ttl, max_wait_s=0.0,
                lease_s=LEASE_S)  # fmt: skip


def test_open_slots_renewed_by_the_heartbeat_keep_counting(backend_shared):
    """Renewed slots stay in flight past one lease; released ones free their place at once."""
    clock = FakeClock(START)
    gate = gate_on(backend_shared, clock)
    try:
        slots = [gate.acquire() for _ in range(BUDGET.concurrency)]
        with pytest.raises(LimiterBusy):
            gate.acquire()
        clock.advance(LEASE_S / 2)
        assert gate.renew_open() == BUDGET.concurrency
        clock.advance(LEASE_S / 2 + 1)  # past the first lease, inside the renewed one
        with pytest.raises(LimiterBusy):
            gate.acquire()
        gate.release(slots[0], counted=True)
        gate.release(gate.acquire(), counted=True)
    finally:
        gate.close()


def test_slots_nobody_renews_lapse_within_one_lease(backend_shared):
    """A process that stopped renewing (it died) holds its slots one lease at most."""
    clock = FakeClock(START)
    dead = gate_on(backend_shared, clock)
    for _ in range(BUDGET.concurrency):
        dead.acquire()
    dead.close()  # its heartbeat stops, as a killed process's would
    alive = gate_on(backend_shared, clock)
    try:
        with pytest.raises(LimiterBusy):
            alive.acquire()
        clock.advance(LEASE_S)
        alive.release(alive.acquire(), counted=True)
    finally:
        alive.close()


def test_a_stuck_call_is_not_renewed_past_the_slot_ttl(backend_shared):
    """A call held longer than the longest a call can take stops being renewed."""
    clock = FakeClock(START)
    gate = gate_on(backend_shared, clock, slot_ttl=20.0)
    try:
        gate.acquire()
        for _ in range(4):
            clock.advance(5.0)
            gate.renew_open()
        assert gate.renew_open() == 0  # 20 s held: left to lapse
    finally:
        gate.close()


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from app.coordination import open_shared
    from app.coordination.gate import Gate
    from app.ratelimit import Budget

    budget = Budget(calls_per_window=90, concurrency=8, daily_quota=45000)
    shared = open_shared(sys.argv[1], Path(sys.argv[2]))
    gate = Gate(shared, lambda: budget, time.time, time.sleep, 60.0, max_wait_s=0.0)
    for _ in range(budget.concurrency):
        gate.acquire()
    print("held", flush=True)
    time.sleep(600)
    """
)


def test_kill_9_of_a_process_in_the_middle_of_its_calls_frees_them_within_a_lease(
    store_url: str, tmp_path: Path
):
    """A real process takes every slot and is killed with SIGKILL; another gets a slot within
    one lease and a beat, not after the 60 s a slot used to last."""
    from app.coordination import open_shared

    shared = open_shared(store_url, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, store_url, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    gate = Gate(shared, lambda: BUDGET, time.time, time.sleep, 60.0, max_wait_s=0.0)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LimiterBusy):
            gate.acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        killed = time.monotonic()
        deadline = killed + 20.0
        while True:
            try:
                gate.release(gate.acquire(), counted=True)
                break
            except LimiterBusy:
                if time.monotonic() > deadline:
                    pytest.fail("no slot 20 s after the holder was killed")
                time.sleep(0.1)
        waited = time.monotonic() - killed
        print(f"slot free {waited:.1f} s after kill -9 (lease {LEASE_S} s)")
        assert waited <= LEASE_S + 1.0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
        gate.close()
        shared.close()
