"""Delivery: the dispatcher and its handlers, from outbox rows to Marketo calls.

`dispatcher.py` claims, hands batches to `batch.py` and settles each event by its outcome
(`outcomes.py`, `reshape.py`); `leads.py` resolves leads, `identify.py`, `extras.py`,
`audiences.py` and `mapping.py` shape each kind of work; `engine.py` wires them to a client for
the settings in force; `worker.py` runs the dispatcher in a thread or as `flask worker`.

`init_app` keeps one `DeliveryRuntime` per app; `get_engine` and `get_shared` are its accessors.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from flask import Flask

from app.coordination import open_shared
from app.coordination.state import SharedState
from app.delivery.dispatcher import DEFAULT_LEASE_S
from app.delivery.engine import Engine
from app.delivery.status import MarketoMetrics
from app.delivery.status import QuotaCollector
from app.delivery.status import marketo_status
from app.delivery.worker import EmbeddedWorker
from app.delivery.worker import worker_command
from app.errors import SettingsInvalid
from app.lifecycle import on_close
from app.ops.status import add_status_provider
from app.outbox import default_store_url
from app.outbox import get_store
from app.settings import Settings
from app.settings import settings_holder

EXTENSION = "delivery"


@dataclass
class DeliveryRuntime:
    """What one app's delivery holds: shared state, engine, metrics and the embedded worker."""

    shared: SharedState | None = None
    engine: Engine | None = None
    metrics: MarketoMetrics | None = None
    worker: EmbeddedWorker | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def runtime(app: Flask) -> DeliveryRuntime:
    """Return the app's delivery runtime (created by `init_app`)."""
    return app.extensions[EXTENSION]


def get_shared(app: Flask) -> SharedState:
    """Return the app's shared state, opening it on first use."""
    rt = runtime(app)
    if rt.shared is None:
        with rt.lock:
            if rt.shared is None:
                settings = settings_holder(app).get()
                url = settings.store_url or default_store_url(app)
                rt.shared = open_shared(url, Path(app.instance_path).parent)
    return rt.shared


def _metrics(app: Flask) -> MarketoMetrics:
    from app.ops.metrics import metrics_registry

    rt = runtime(app)
    if rt.metrics is None:
        registry = metrics_registry(app)
        rt.metrics = MarketoMetrics(registry)
        registry.register(QuotaCollector(settings_holder(app).get, lambda: get_shared(app)))
    return rt.metrics


def get_engine(app: Flask) -> Engine:
    """Return the app's delivery engine (client, delivery, dispatcher), building it once."""
    from app.privacy.intake import suppression_list

    rt = runtime(app)
    if rt.engine is None:
        shared = get_shared(app)
        metrics = _metrics(app)
        with rt.lock:
            if rt.engine is None:
                rt.engine = Engine(
                    settings_holder(app).get,
                    get_store(app),
                    shared,
                    lease_s=float(app.config.get("GATEWAY_LEASE_S", DEFAULT_LEASE_S)),
                    observer=metrics.observe_call,
                    on_outcome=metrics.observe_outcome,
                    suppressed=lambda hashes: suppression_list(app).listed(hashes, fresh=True),
                )
    return rt.engine


def _status(app: Flask) -> dict:
    settings: Settings = settings_holder(app).get()
    engine = get_engine(app)
    return marketo_status(settings, engine.shared, engine.client().token_age(), time.time())


def online_problems(app: Flask, settings: Settings) -> list[str]:
    """Check the mappings in `settings` against Marketo (`flask config validate --online`)."""
    from app.marketo.online import validate_online

    return validate_online(settings, get_engine(app).client())


def _close(app: Flask) -> None:
    rt = runtime(app)
    if rt.worker is not None:
        rt.worker.stop()
    if rt.engine is not None:
        rt.engine.close()
        rt.engine = None
    if rt.shared is not None:
        rt.shared.close()
        rt.shared = None


def init_app(app: Flask) -> None:
    """Register `flask worker`, status, metrics and online validation; start the thread."""
    rt = app.extensions[EXTENSION] = DeliveryRuntime()
    app.cli.add_command(worker_command)
    add_status_provider(app, "marketo", lambda: _status(app))
    try:
        _metrics(app)
    except SettingsInvalid:
        pass
    rt.worker = EmbeddedWorker(lambda: get_engine(app))
    # First in line: the thread must stop before the store it uses is closed.
    on_close(app, lambda: _close(app), first=True)
    if not app.config.get("GATEWAY_EMBEDDED_WORKER", True):
        return

    @app.before_request
    def _ensure_worker() -> None:
        rt.worker.ensure_started()  # also restarts it in a process forked after create_app

    if not os.environ.get("FLASK_RUN_FROM_CLI"):
        rt.worker.ensure_started()
