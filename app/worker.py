"""The dispatcher in the web process (a named daemon thread) and `flask worker [--once]`.

Also registers the Marketo status provider, metrics and online validator, since they read the
same engine and shared state.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import click
from flask import Flask
from flask import current_app
from flask.cli import with_appcontext

from app.errors import SettingsInvalid
from app.marketo.engine import Engine
from app.marketo.online import validate_online
from app.marketo.status import MarketoMetrics
from app.marketo.status import QuotaCollector
from app.marketo.status import marketo_status
from app.outbox import default_store_url
from app.outbox import get_store
from app.outbox.dispatcher import DEFAULT_LEASE_S
from app.outbox.shared import SharedState
from app.settings import Settings

logger = logging.getLogger(__name__)

THREAD_NAME = "gateway-dispatcher"
# How long shutdown waits for the dispatcher to finish its batch.
STOP_TIMEOUT_S = 30.0
# `flask worker --once` stops after this many steps even if events keep becoming due.
ONCE_MAX_STEPS = 10_000


def open_shared(store_url: str, base_dir: Path) -> SharedState:
    """Open the shared Marketo state in the same database as the outbox."""
    if store_url.startswith(("postgresql://", "postgres://")):
        from app.outbox.shared_postgres import PostgresSharedState

        return PostgresSharedState(store_url)
    from app.outbox.shared_sqlite import SqliteSharedState
    from app.outbox.sqlite_sql import path_from_url

    return SqliteSharedState(str(path_from_url(store_url, base_dir)))


def get_shared(app: Flask) -> SharedState:
    """Return the app's shared state, opening it on first use."""
    shared = app.extensions.get("marketo_shared")
    if shared is None:
        with _lock(app):
            shared = app.extensions.get("marketo_shared")
            if shared is None:
                settings = app.extensions["settings"].get()
                url = settings.store_url or default_store_url(app)
                shared = open_shared(url, Path(app.instance_path).parent)
                app.extensions["marketo_shared"] = shared
    return shared


def _lock(app: Flask) -> threading.Lock:
    return app.extensions.setdefault("marketo_lock", threading.Lock())


def _metrics(app: Flask) -> MarketoMetrics:
    from app.ops.metrics import metrics_registry

    metrics = app.extensions.get("marketo_metrics")
    if metrics is None:
        registry = metrics_registry(app)
        metrics = app.extensions["marketo_metrics"] = MarketoMetrics(registry)
        registry.register(
            QuotaCollector(lambda: app.extensions["settings"].get(), lambda: get_shared(app))
        )
    return metrics


def get_engine(app: Flask) -> Engine:
    """Return the app's delivery engine (client, delivery, dispatcher), building it once."""
    engine = app.extensions.get("marketo_engine")
    if engine is None:
        shared = get_shared(app)
        with _lock(app):
            engine = app.extensions.get("marketo_engine")
            if engine is None:
                metrics = _metrics(app)
                holder = app.extensions["settings"]
                engine = Engine(
                    holder.get,
                    get_store(app),
                    shared,
                    lease_s=float(app.config.get("GATEWAY_LEASE_S", DEFAULT_LEASE_S)),
                    observer=metrics.observe_call,
                    on_outcome=metrics.observe_outcome,
                )
                app.extensions["marketo_engine"] = engine
    return engine


class EmbeddedWorker:
    """Runs `run_forever` in a named daemon thread, restarted in a forked child."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.pid: int | None = None
        self.thread: threading.Thread | None = None
        self.stop_event = threading.Event()
        self._lock = threading.Lock()

    def ensure_started(self) -> None:
        """Start the thread unless it already runs in this process."""
        if self.pid == os.getpid() and self.thread is not None and self.thread.is_alive():
            return
        with self._lock:
            if self.pid == os.getpid() and self.thread is not None and self.thread.is_alive():
                return
            try:
                engine = get_engine(self.app)
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


def _status(app: Flask) -> dict:
    settings: Settings = app.extensions["settings"].get()
    engine = get_engine(app)
    return marketo_status(settings, engine.shared, engine.client().token_age(), time.time())


def _online(app: Flask, settings: Settings) -> list[str]:
    extra = app.extensions.get("online_checks", [])
    return validate_online(settings, get_engine(app).client(), extra)


def init_app(app: Flask) -> None:
    """Register `flask worker`, status, metrics and online validation; start the thread."""
    app.cli.add_command(worker_command)
    app.extensions.setdefault("status_providers", {})["marketo"] = lambda: _status(app)
    app.extensions["online_validator"] = lambda settings: _online(app, settings)
    try:
        _metrics(app)
    except SettingsInvalid:
        pass
    worker = EmbeddedWorker(app)
    app.extensions["embedded_worker"] = worker

    def close() -> None:
        worker.stop()
        engine = app.extensions.pop("marketo_engine", None)
        if engine is not None:
            engine.close()
        shared = app.extensions.pop("marketo_shared", None)
        if shared is not None:
            shared.close()

    # First in line: the thread must stop before the store it uses is closed.
    app.extensions.setdefault("closers", []).insert(0, close)
    if not app.config.get("GATEWAY_EMBEDDED_WORKER", True):
        return

    @app.before_request
    def _ensure_worker() -> None:
        worker.ensure_started()  # also restarts it in a process forked after create_app

    if not os.environ.get("FLASK_RUN_FROM_CLI"):
        worker.ensure_started()
