"""Server API for back-office list work: `POST /v1/lists/{name}/members` with a server key.

Body: `{"add": [...], "remove": [...], "lookupField": "email", "createMissing": false,
"createList": null}`. Each lead is a string (a value of `lookupField`, which defaults to the
`lead_lookup_field` setting) or a one-key object naming its own field (`{"id": 977}`,
`{"userId": "u_81"}`). The answer lists what was added, removed and what failed, per lead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from flask import Blueprint
from flask import Flask
from flask import Response
from flask import jsonify

from app import backoffice
from app.errors import BadRequest
from app.errors import GatewayError
from app.errors import ServiceUnavailable
from app.http import current_settings
from app.http import read_json_body
from app.http import server_key_from_auth
from app.marketo.errors import MarketoError
from app.marketo.errors import QuotaExhausted
from app.marketo.errors import Retryable
from app.marketo.list_members import change_members

log = logging.getLogger(__name__)

bp = Blueprint("lists_api", __name__, url_prefix="/v1/lists")

# At most this many leads per request: enough for back-office use, small enough to answer
# within a request's time (each 300 leads cost a lookup, maybe a create, and a list call).
MAX_LEADS_PER_REQUEST = 3000
# Request bodies are small: a few thousand emails.
MAX_BODY_BYTES = 512_000

FIELD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class MarketoUnavailable(GatewayError):
    """Marketo cannot take the request now (limit, quota, outage); try again later."""

    status = 503
    code = "marketo_unavailable"

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MarketoRefused(GatewayError):
    """Marketo refused the request as a whole."""

    status = 502
    code = "marketo_refused"


def _items(body: Mapping[str, Any], key: str, default_field: str) -> list[tuple[str, str]]:
    raw = body.get(key, [])
    if not isinstance(raw, list):
        raise BadRequest(f"{key} must be a list of leads", code="invalid_leads")
    out = []
    for index, item in enumerate(raw):
        if isinstance(item, str | int) and not isinstance(item, bool) and str(item).strip():
            out.append((default_field, str(item).strip()))
        elif isinstance(item, Mapping) and len(item) == 1:
            field, value = next(iter(item.items()))
            if not FIELD_RE.match(str(field)) or value in (None, "") or isinstance(value, bool):
                raise BadRequest(f"{key}[{index}] is not a field and value", code="invalid_leads")
            out.append((str(field), str(value).strip()))
        else:
            raise BadRequest(
                f"{key}[{index}] must be a string or an object with one field",
                code="invalid_leads",
            )
    return out


def _parse(body: Any, default_field: str) -> tuple[list, list, bool, bool | None]:
    if not isinstance(body, Mapping):
        raise BadRequest("send a JSON object with add and/or remove", code="invalid_body")
    field = body.get("lookupField", default_field)
    if not isinstance(field, str) or not FIELD_RE.match(field):
        raise BadRequest("lookupField must be a field API name", code="invalid_lookup_field")
    add, remove = _items(body, "add", field), _items(body, "remove", field)
    if not add and not remove:
        raise BadRequest("nothing to do: give add and/or remove", code="invalid_leads")
    if len(add) + len(remove) > MAX_LEADS_PER_REQUEST:
        raise BadRequest(
            f"at most {MAX_LEADS_PER_REQUEST} leads per request; use flask bulk import",
            code="too_many_leads",
        )
    flags = []
    for name in ("createMissing", "createList"):
        value = body.get(name)
        if value is not None and not isinstance(value, bool):
            raise BadRequest(f"{name} must be true or false", code="invalid_body")
        flags.append(value)
    return add, remove, bool(flags[0]), flags[1]


def update_list(
    name: str, add: list[tuple[str, str]], remove: list[tuple[str, str]], **options: Any
) -> dict[str, Any]:
    """Apply adds and removes (each a (field, value) pair) to one list; merge the reports."""
    settings = backoffice.settings()
    client = backoffice.marketo_client()
    directory = backoffice.list_directory()
    merged: dict[str, Any] = {"added": [], "removed": [], "failed": []}
    fields = list(dict.fromkeys([f for f, _ in add] + [f for f, _ in remove]))
    for field in fields:
        report = change_members(
            client,
            directory,
            name,
            add=[v for f, v in add if f == field],
            remove=[v for f, v in remove if f == field],
            field=field,
            write=backoffice.lead_write(settings),
            **options,
        )
        merged["list"] = report["list"]
        for key in ("added", "removed", "failed"):
            merged[key].extend(report[key])
    return merged


def _marketo_error(exc: MarketoError) -> GatewayError:
    if isinstance(exc, Retryable):
        wait = getattr(exc, "retry_after", None)
        if isinstance(exc, QuotaExhausted):
            wait = None
        return MarketoUnavailable(f"Marketo is not available now: {exc.message}", wait)
    return MarketoRefused(f"Marketo refused the request: {exc.message}")


@bp.post("/<path:name>/members")
def members(name: str) -> Response:
    """Add leads to and remove leads from the static list called `name`."""
    settings = current_settings()
    server_key_from_auth(settings)
    body = read_json_body(MAX_BODY_BYTES)
    add, remove, create_missing, create_list = _parse(body, settings.lead_lookup_field)
    if not settings.has_credentials:
        raise ServiceUnavailable(
            "Marketo is not configured: set client_id and client_secret",
            code="marketo_not_configured",
        )
    try:
        report = update_list(
            name, add, remove, create_missing=create_missing, create_list=create_list
        )
    except MarketoError as exc:
        raise _marketo_error(exc) from exc
    return jsonify({"success": True, **report})


def _unavailable(exc: MarketoUnavailable) -> Response:
    response = jsonify({"success": False, "error": {"code": exc.code, "message": exc.message}})
    response.status_code = exc.status
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
    return response


def init_app(app: Flask) -> None:
    """Register the lists API."""
    app.register_blueprint(bp)
    app.register_error_handler(MarketoUnavailable, _unavailable)
