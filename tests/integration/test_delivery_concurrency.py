"""Several batches in flight against a fake Marketo that answers slowly, one visitor at a time."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.devtools.fake_marketo import FakeClock
from app.devtools.fake_marketo import FakeMarketo
from tests.fixtures_marketo import DeliveryRig

ACTIVITIES = "/activities/external.json"
LATENCY_S = 0.3
CONCURRENCY = 4


@pytest.fixture
def live(tmp_path: Path) -> Iterator[DeliveryRig]:
    """A rig on real time against a fake whose every call takes LATENCY_S."""
    clock = FakeClock()
    fake = FakeMarketo(clock=clock, latency_s=LATENCY_S).start()
    rig = DeliveryRig(tmp_path / "outbox.db", fake, clock)
    try:
        yield rig
    finally:
        rig.close()
        fake.stop()


def run_until_delivered(rig: DeliveryRig, activities: int, timeout_s: float = 60.0) -> None:
    """Run the dispatcher loop in a thread until the fake holds `activities` activities."""
    stop = threading.Event()
    thread = threading.Thread(target=rig.engine.dispatcher.run_forever, args=(stop,))
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while len(rig.fake.activities) < activities:
            assert time.monotonic() < deadline, f"{len(rig.fake.activities)} of {activities}"
            stop.wait(0.02)
    finally:
        stop.set()
        thread.join(30)


def configure(rig: DeliveryRig, batch_size: int) -> None:
    rig.configure(
        limits={"concurrency": CONCURRENCY, "batch_size": batch_size, "batch_wait_s": 0,
                "calls_per_20s": 90, "timeout_s": 5},
    )  # fmt: skip


def test_batches_overlap_up_to_the_concurrency_setting(live: DeliveryRig) -> None:
    configure(live, batch_size=10)
    live.warm(40)
    for i in range(200):
        live.track(f"user{i % 40}")
    run_until_delivered(live, 200)
    assert CONCURRENCY >= live.fake.max_concurrency_seen >= 3
    assert live.fake.errors_returned["606"] == live.fake.errors_returned["615"] == 0
    assert len(live.fake.calls_to(ACTIVITIES)) == 20


def test_one_leads_events_never_ride_in_two_batches_at_once(live: DeliveryRig) -> None:
    """Half the events are one lead's: its calls never overlap and keep the events' order."""
    configure(live, batch_size=3)
    live.warm(10)
    for seq in range(30):
        user = "user0" if seq % 2 == 0 else f"user{1 + seq % 9}"
        live.track(user, plan=f"p{seq:02d}")
    run_until_delivered(live, 30)
    hot = {a["leadId"] for a in live.fake.activities if a["primaryAttributeValue"] == "p00"}
    spans, order = [], []
    for call in sorted(live.fake.calls_to(ACTIVITIES), key=lambda c: c.time):
        mine = [row for row in call.json["input"] if row["leadId"] in hot]
        if mine:
            spans.append((call.time, call.ended))
            order.extend(row["primaryAttributeValue"] for row in mine)
    assert len(spans) >= 3  # several batches carried the lead
    assert all(ended <= start for (_, ended), (start, _) in zip(spans, spans[1:], strict=False))
    assert order == [f"p{seq:02d}" for seq in range(0, 30, 2)]
    assert live.fake.max_concurrency_seen >= 2  # other leads' batches went meanwhile
    assert live.fake.errors_returned["606"] == live.fake.errors_returned["615"] == 0


FETCH_TOKEN = """
import sys, time
from pathlib import Path
from app.coordination.sqlite import SqliteSharedState
from app.marketo.client import MarketoClient
from app.settings import parse
settings = parse({"munchkin_id": "123-ABC-456", "client_id": sys.argv[2],
                  "client_secret": sys.argv[3], "rest_base_url": sys.argv[4],
                  "identity_url": sys.argv[4] + "/identity"})
shared = SqliteSharedState(sys.argv[1])
client = MarketoClient(settings, tokens=shared)
Path(sys.argv[6]).write_text("")
go = Path(sys.argv[5])
while not go.exists():
    time.sleep(0.005)
print(client.token())
"""


def test_two_processes_starting_together_fetch_one_token(tmp_path: Path) -> None:
    """Gunicorn-style workers asking at the same instant share one token call."""
    with FakeMarketo(latency_s=0.5) as fake:
        go = tmp_path / "go"
        args = [str(tmp_path / "outbox.db"), fake.client_id, fake.client_secret, fake.url, str(go)]
        env_path = str(Path(__file__).resolve().parents[2])
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", FETCH_TOKEN, *args, str(tmp_path / f"ready{i}")],
                stdout=subprocess.PIPE,
                text=True,
                env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
            )
            for i in range(2)
        ]
        deadline = time.monotonic() + 30
        while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
            assert time.monotonic() < deadline, "the processes did not start"
            time.sleep(0.01)
        go.write_text("")  # both ask for a token now
        tokens = [p.communicate(timeout=60)[0].strip() for p in procs]
        assert [p.returncode for p in procs] == [0, 0]
        assert tokens[0] and tokens[0] == tokens[1]
        assert len(fake.calls_to("/identity/oauth/token")) == 1
        assert fake.summary()["total"] == 1
