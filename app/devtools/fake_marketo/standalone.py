"""Run the fake Marketo alone in the foreground until Ctrl-C (`flask fake-marketo`, `python -m`)."""

from __future__ import annotations

import argparse
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import click

from app.devtools.fake_marketo import persist
from app.devtools.fake_marketo.core import FakeMarketo

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9100


def serve(
    fake: FakeMarketo,
    port: int,
    state: Path | None,
    echo: Callable[[str], None],
    stop: threading.Event | None = None,
) -> None:
    """Serve `fake` on 127.0.0.1:`port` until Ctrl-C (or `stop`), keeping its data in `state`.

    The first line written names the URL and the client credentials as JSON, so a script that
    started the fake can read where it listens (port 0 picks a free one).

    :raises ValueError: the state file exists but is not one the fake wrote.
    """
    if state is not None and persist.load(fake, state):
        echo(f"loaded the fake's data from {state}")
    fake.start(port=port)
    saver = persist.Saver(fake, state).start() if state is not None else None
    ready = {
        "url": fake.url,
        "munchkin_id": fake.munchkin_id,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
    }
    echo(f"fake Marketo ready {json.dumps(ready)}")
    echo(f"  browse what it holds: GET {fake.url}/   (Ctrl-C stops it)")
    try:
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
        if saver is not None:
            saver.stop()
            echo(f"saved the fake's data to {state}")


def main(argv: list[str] | None = None) -> None:
    """Parse the command line of `python -m app.devtools.fake_marketo` and serve."""
    parser = argparse.ArgumentParser(description="Fake Marketo REST server on 127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--state", type=Path, default=None, help="JSON file keeping its data")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each call")
    parser.add_argument("--calls-per-20s", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--daily-quota", type=int, default=50000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    fake = FakeMarketo(
        calls_per_20s=args.calls_per_20s,
        concurrency=args.concurrency,
        daily_quota=args.daily_quota,
        latency_s=args.latency,
    )
    serve(fake, args.port, args.state, click.echo)
