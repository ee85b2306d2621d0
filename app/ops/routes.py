"""Operations routes: `GET /v1/status` (server key) and `GET /metrics` (Prometheus text)."""

from __future__ import annotations

import hmac

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from flask import request
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import generate_latest

from app.http import current_settings
from app.http import error_response
from app.http import server_key_from_auth
from app.ops.metrics import scrape_registry
from app.ops.status import build_status

bp = Blueprint("ops", __name__)


def _refused() -> Response:
    message = "/metrics needs Authorization: Bearer <metrics_token>"
    response = error_response(401, "metrics_token_required", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@bp.get("/v1/status")
def status() -> Response:
    """Serve what `flask status --json` prints, to holders of a server key."""
    server_key_from_auth(current_settings())
    return jsonify(build_status(current_app))


@bp.get("/metrics")
def metrics() -> Response:
    """Serve the app's metrics in the Prometheus text format (summed over gunicorn workers).

    With `metrics_token` set, only a scraper sending `Authorization: Bearer <token>` gets them:
    the figures (key labels, reasons, volumes) are for operators, not for every visitor.
    """
    token = current_settings().metrics_token
    if token:
        sent = request.headers.get("Authorization", "")
        scheme, _, value = sent.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip(), token):
            return _refused()
    body = generate_latest(scrape_registry(current_app))
    return Response(body, content_type=CONTENT_TYPE_LATEST)
