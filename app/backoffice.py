"""The Marketo client and list directory used by back-office routes and CLI commands.

The list directory caches name → id for the app's lifetime, so a list is looked up (or created)
once per process; it is rebuilt when a settings reload changes the lists folder.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask
from flask import current_app

from app.marketo.list_members import LeadWrite
from app.marketo.lists import ListDirectory
from app.settings import Settings
from app.settings import settings_holder

log = logging.getLogger(__name__)

_lock = threading.Lock()


def _app(app: Flask | None) -> Flask:
    return app or current_app._get_current_object()  # type: ignore[attr-defined]


def settings(app: Flask | None = None) -> Settings:
    """Return the settings in force (raises SettingsInvalid when the file is bad)."""
    return settings_holder(_app(app)).get()


def marketo_client(app: Flask | None = None) -> Any:
    """Return the app's Marketo client, the one delivery uses, so every call shares one limiter."""
    from app.delivery import get_engine  # the worker wires client, limiter and shared state

    return get_engine(_app(app)).client()


def lead_cache(app: Flask | None = None) -> Any:
    """Return the shared identity → lead cache (repointed after merges)."""
    from app.delivery import get_shared

    return get_shared(_app(app))


def list_directory(app: Flask | None = None) -> ListDirectory:
    """Return the app's list directory for the current settings' lists folder."""
    app = _app(app)
    current = settings(app)
    client = marketo_client(app)
    with _lock:
        entry = app.extensions.get("list_directory")
        if entry is None or entry[0] != current.lists or entry[1] is not client:
            entry = (current.lists, client, ListDirectory(client, current.lists))
            app.extensions["list_directory"] = entry
    return entry[2]


def lead_write(current: Settings) -> LeadWrite:
    """Return how missing leads are created, from `lead_action` and `lead_partition`."""
    return LeadWrite(action=current.lead_action, partition=current.lead_partition)
