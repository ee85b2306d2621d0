"""Operations routes: `GET /v1/status` (server key) and `GET /metrics` (Prometheus text)."""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import generate_latest

from app.http import current_settings
from app.http import server_key_from_auth
from app.ops.metrics import scrape_registry
from app.ops.status import build_status

bp = Blueprint("ops", __name__)


@bp.get("/v1/status")
def status() -> Response:
    """Serve what `flask status --json` prints, to holders of a server key."""
    server_key_from_auth(current_settings())
    return jsonify(build_status(current_app))


@bp.get("/metrics")
def metrics() -> Response:
    """Serve the app's metrics in the Prometheus text format (summed over gunicorn workers)."""
    body = generate_latest(scrape_registry(current_app))
    return Response(body, content_type=CONTENT_TYPE_LATEST)
