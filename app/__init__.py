"""The gateway's application factory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the gateway: settings, error handling, probes, CLI, then each subsystem.

    Subsystems are imported here, not at module top, so `import app.retry` (or the Marketo
    client in a script) does not load Flask and every room of the house.
    """
    from flask import Flask

    from app import browser
    from app import cli
    from app import console
    from app import delivery
    from app import health
    from app import http
    from app import ingest
    from app import lists_api
    from app import logsafe
    from app import ops
    from app import outbox
    from app import privacy
    from app.settings import EXTENSION
    from app.settings import SettingsHolder

    app = Flask(__name__, instance_relative_config=True, static_folder=None)
    app.config.from_mapping(
        SETTINGS_PATH=os.environ.get("GATEWAY_SETTINGS")
        or os.path.join(app.instance_path, "settings.json"),
        GATEWAY_EMBEDDED_WORKER=os.environ.get("GATEWAY_EMBEDDED_WORKER", "1") != "0",
        ENVIRON=os.environ,
    )
    if test_config is not None:
        app.config.update(test_config)
    app.extensions[EXTENSION] = SettingsHolder(
        Path(app.config["SETTINGS_PATH"]), app.config["ENVIRON"]
    )
    logsafe.init_app(app)
    http.init_app(app)
    health.init_app(app)
    cli.init_app(app)
    outbox.init_app(app)
    ingest.init_app(app)
    browser.init_app(app)
    ops.init_app(app)
    lists_api.init_app(app)
    privacy.init_app(app)
    delivery.init_app(app)
    console.init_app(app)
    cli.guard(app)
    return app
