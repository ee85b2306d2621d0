"""`POST /v1/privacy/forget` and `/v1/privacy/unsuppress` (server key), as `flask privacy` does.

Body: `{"email": ..., "userId": ..., "anonymousId": ...}`, at least one identifier, and for
forget `"marketo": false`. The answer counts what was done; it never echoes the identifiers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from flask import Blueprint
from flask import Flask
from flask import Response
from flask import current_app
from flask import jsonify

from app import backoffice
from app.errors import BadRequest
from app.errors import ServiceUnavailable
from app.http import current_settings
from app.http import read_json_body
from app.http import server_key_from_auth
from app.marketo.errors import MarketoError
from app.privacy.forget import forget
from app.privacy.forget import unsuppress
from app.privacy.intake import suppression_list

bp = Blueprint("privacy", __name__, url_prefix="/v1/privacy")

MAX_BODY_BYTES = 16_384
# Body field -> identifier kind.
FIELDS = {"email": "email", "userId": "userId", "anonymousId": "anonymousId"}
MAX_VALUE_CHARS = 512


def identifiers_from(body: Any, options: frozenset[str] = frozenset()) -> set[tuple[str, str]]:
    """Read the identifiers of a request naming a person; a clear 400 for anything else.

    `options` names the other fields the request may carry (`marketo` for forget).
    """
    if not isinstance(body, Mapping):
        message = "send a JSON object with email, userId or anonymousId"
        raise BadRequest(message, code="invalid_body")
    unknown = set(body) - set(FIELDS) - options
    if unknown:
        raise BadRequest(f"unknown fields {sorted(unknown)}", code="invalid_body")
    found: set[tuple[str, str]] = set()
    for name, kind in FIELDS.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_VALUE_CHARS:
            raise BadRequest(f"{name} must be a non-empty string", code="invalid_identifier")
        found.add((kind, value.strip()))
    if not found:
        raise BadRequest("name the person: email, userId or anonymousId", code="invalid_body")
    if "marketo" in options and not isinstance(body.get("marketo", False), bool):
        raise BadRequest("marketo must be true or false", code="invalid_body")
    return found


def marketo_client_for(settings: Any) -> Any:
    """Return the Marketo client, or a 503 when the gateway has no Marketo credentials."""
    if not settings.has_credentials:
        raise ServiceUnavailable(
            "Marketo is not configured: set client_id and client_secret",
            code="marketo_not_configured",
        )
    return backoffice.marketo_client()


@bp.post("/forget")
def forget_route() -> Response:
    """Forget one person: outbox events, caches, suppression; the Marketo lead when asked."""
    from app.delivery import get_shared
    from app.lists_api import _marketo_error

    settings = current_settings()
    server_key_from_auth(settings)
    body = read_json_body(MAX_BODY_BYTES)
    identifiers = identifiers_from(body, frozenset({"marketo"}))
    client = marketo_client_for(settings) if body.get("marketo") else None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        result = forget(get_shared(app), settings, identifiers, time.time(), client)
    except MarketoError as exc:
        raise _marketo_error(exc) from exc
    finally:
        suppression_list(app).invalidate()
    return jsonify({"success": True, **result.as_dict()})


@bp.post("/unsuppress")
def unsuppress_route() -> Response:
    """Accept events about a person again; what was forgotten stays gone."""
    from app.delivery import get_shared

    settings = current_settings()
    server_key_from_auth(settings)
    identifiers = identifiers_from(read_json_body(MAX_BODY_BYTES))
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    lifted = unsuppress(get_shared(app), identifiers)
    suppression_list(app).invalidate()
    return jsonify({"success": True, "unsuppressed": lifted})


def init_app(app: Flask) -> None:
    """Register the privacy API and the `flask privacy` commands."""
    from app.privacy.cli import privacy_cli

    app.register_blueprint(bp)
    app.cli.add_command(privacy_cli)
