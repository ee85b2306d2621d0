"""The outbox subsystem: open the store named by `store_url` and hand it to the rest of the app."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

from flask import Flask
from flask import current_app

from app.errors import GatewayError
from app.errors import ServiceUnavailable
from app.errors import SettingsInvalid
from app.health import add_readiness_check
from app.lifecycle import on_close
from app.outbox.store import Store
from app.settings import settings_holder

log = logging.getLogger(__name__)

_open_lock = threading.Lock()


def default_store_url(app: Flask) -> str:
    """Return the store URL used when settings name none: SQLite in the instance folder."""
    return f"sqlite:///{os.path.join(app.instance_path, 'outbox.db')}"


def open_store(url: str, base_dir: Path, dedupe_window_s: float = 24 * 3600.0) -> Store:
    """Open the outbox backend a store URL names (SQLite file or PostgreSQL).

    :raises ValueError: the URL names no supported backend.
    :raises ServiceUnavailable: the database cannot be opened.
    """
    if url.startswith(("postgresql://", "postgres://")):
        from app.outbox.postgres import PostgresStore  # imported only when configured

        return PostgresStore(url, dedupe_window_s=dedupe_window_s)
    from app.outbox.sqlite import SqliteStore
    from app.outbox.sqlite_sql import path_from_url

    path = path_from_url(url, base_dir)
    try:
        return SqliteStore(path, dedupe_window_s=dedupe_window_s)
    except (OSError, sqlite3.Error) as exc:
        # Clients read the message: the file is named in the log, not in the answer.
        log.error("cannot open the SQLite outbox at %s: %s", path, exc)
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ServiceUnavailable(f"cannot open the SQLite outbox: {reason}") from exc


def _open_for(app: Flask) -> Store:
    """Open the store the settings name.

    :raises SettingsInvalid: no valid settings yet; never a guessed store, or events acked
        meanwhile would land in a file the operator did not configure.
    """
    settings = settings_holder(app).get()
    url = settings.store_url or default_store_url(app)
    window = settings.intake.dedupe_window_h * 3600.0
    store = open_store(url, Path(app.instance_path).parent, window)
    log.info("outbox opened: %s", type(store).__name__)
    return store


def get_store(app: Flask | None = None) -> Store:
    """Return the app's store, opening it on first use."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    store = app.extensions.get("store")
    if store is None:
        with _open_lock:
            store = app.extensions.get("store")
            if store is None:
                store = app.extensions["store"] = _open_for(app)
    return store


def _close(app: Flask) -> None:
    store = app.extensions.pop("store", None)
    if store is not None:
        store.close()


def init_app(app: Flask) -> None:
    """Open the store (when settings are valid), register its readiness check and closer.

    A `flask` command opens it when it needs it instead: `flask --help` or `flask config set`
    must not wait on (or migrate) a database, least of all the one being fixed.
    """
    try:
        if not os.environ.get("FLASK_RUN_FROM_CLI"):
            settings_holder(app).get()
            get_store(app)
    except SettingsInvalid:
        log.info("settings invalid: the outbox opens on first use")
    except GatewayError as exc:
        # Start anyway: /readyz reports the store until it can be reached, then it opens.
        log.warning("outbox not reachable at start, will retry on first use: %s", exc.message)

    def check() -> str | None:
        get_store(app).ping()
        return None

    add_readiness_check(app, "store", check)
    on_close(app, lambda: _close(app))
