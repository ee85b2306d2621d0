"""The dispatcher in the web process (a named daemon thread) and `flask worker [--once]`."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

import click
from flask import current_app
from flask.cli import with_appcontext

from app.delivery.engine import Engine
from app.errors import SettingsInvalid

logger = logging.getLogger(__name__)

THREAD_NAME = "gateway-dispatcher"
# How long shutdown waits for the dispatcher to finish its batch.
STOP_TIMEOUT_S = 30.0
# `flask worker --once` stops after this many steps even if events keep becoming due.
ONCE_MAX_STEPS = 10_000


class EmbeddedWorker:
    """Runs `run_forever` in a named daemon thread, restarted in a forked child."""

    def __init__(self, engine: Callable[[], Engine]) -> None:
        self.engine = engine
        self.pid: int | None = None
        self.thread: threading.Thread | None = None
        self.stop_event = threading.Event()
        self._lock = threading.Lock()

    def _alive(self) -> bool:
        return self.pid == os.getpid() and self.thread is not None and self.thread.is_alive()

    def ensure_started(self) -> None:
        """Start the thread unless it already runs in this process."""
        if self._alive():
            return
        with self._lock:
            if self._alive():
                return
            try:
                engine = self.engine()
            except SettingsInvalid:
                return  # nothing to deliver with until the settings are fixed
            self.pid = os.getpid()
            self.stop_event = threading.Event()
            self.thread = threading.Thread(
                target=engine.dispatcher.run_forever,
                args=(self.stop_event,),
                name=THREAD_NAME,
                daemon=True,
            )
            self.thread.start()

    def stop(self) -> None:
        """Ask the thread to finish its batch and wait for it."""
        self.stop_event.set()
        if self.thread is not None and self.pid == os.getpid():
            self.thread.join(STOP_TIMEOUT_S)


@click.command("worker")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
@with_appcontext
def worker_command(once: bool) -> None:
    """Run the dispatcher in the foreground until SIGTERM or Ctrl-C."""
    from app.delivery import get_engine

    engine = get_engine(current_app)
    if once:
        total = 0
        for _ in range(ONCE_MAX_STEPS):
            settled = engine.dispatcher.run_once(flush=True)
            total += settled
            if not settled:
                break
        click.echo(f"settled {total} event(s)")
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    click.echo("dispatcher running; SIGTERM or Ctrl-C stops it")
    engine.dispatcher.run_forever(stop)
    click.echo("dispatcher stopped")
