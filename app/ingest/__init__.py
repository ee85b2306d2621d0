"""Intake: the Segment-compatible tracking API and browser beacons, committed to the outbox."""

from __future__ import annotations

from flask import Flask

from app.ingest.routes import bp
from app.ops.metrics import intake_metrics


def init_app(app: Flask) -> None:
    """Register the intake routes and their metrics."""
    app.register_blueprint(bp)
    intake_metrics(app)
