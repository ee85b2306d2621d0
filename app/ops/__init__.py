"""Operations: status document, Prometheus metrics, and the status and dead-letter commands."""

from __future__ import annotations

import time

from flask import Flask

from app.ops.cli import dead_letters_cli
from app.ops.cli import status_command
from app.ops.metrics import register_outbox_collector
from app.ops.routes import bp
from app.ops.status import add_status_provider
from app.ops.status import build_status
from app.outbox import get_store

__all__ = ["add_status_provider", "build_status", "init_app"]


def init_app(app: Flask) -> None:
    """Register the routes, the commands and the outbox collector."""
    app.register_blueprint(bp)
    app.cli.add_command(status_command)
    app.cli.add_command(dead_letters_cli)
    register_outbox_collector(app, lambda: get_store(app).counts(time.time()))
