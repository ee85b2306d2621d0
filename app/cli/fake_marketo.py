"""`flask fake-marketo`: run the development fake Marketo alone, for local work and CI."""

from __future__ import annotations

from pathlib import Path

import click

from app.cli.common import fail


@click.command("fake-marketo")
@click.option("--port", default=9100, show_default=True, type=int, help="0 picks a free port.")
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON file that keeps the fake's leads, activities and lists across restarts.",
)
@click.option(
    "--latency",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0.0, max=60.0),
    help="Seconds each call waits before it is answered, like a real instance's round trip.",
)
@click.option("--calls-per-20s", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--concurrency", default=10, show_default=True, type=click.IntRange(min=1))
def fake_marketo_command(
    port: int, state: Path | None, latency: float, calls_per_20s: int, concurrency: int
) -> None:
    """Serve a fake Marketo REST API on 127.0.0.1 in the foreground (Ctrl-C stops it).

    Point a gateway at it with rest_base_url=http://127.0.0.1:PORT, client_id fake-client-id and
    client_secret fake-client-secret. GET / lists its leads, activities, lists and recent calls.
    It is a development tool: it checks no real credentials and must never face a network.
    """
    # Imported here: the serving path never loads the development tools.
    from app.devtools.fake_marketo import FakeMarketo
    from app.devtools.fake_marketo.standalone import serve

    fake = FakeMarketo(calls_per_20s=calls_per_20s, concurrency=concurrency, latency_s=latency)
    try:
        serve(fake, port, state, click.echo)
    except ValueError as exc:
        fail(f"cannot load {state}: {exc}")
    except OSError as exc:  # port taken, state file unreadable
        fail(f"the fake Marketo cannot start: {exc}")
