"""Intake routes: the Segment server API (HTTP Basic) and browser beacons (writeKey in the body).

Every route is a few lines: authenticate, read the body, then `accept`, which validates each
message through the one normaliser, routes it, and commits the lot before answering.
"""

from __future__ import annotations

import time
from datetime import UTC
from datetime import datetime
from typing import Any

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import g
from flask import jsonify
from flask import request

from app.errors import InvalidEvent
from app.errors import PayloadTooLarge
from app.errors import Unauthorized
from app.http import apply_cors
from app.http import basic_user
from app.http import browser_key_from
from app.http import check_ip_rate
from app.http import check_origin
from app.http import current_settings
from app.http import parse_authorization
from app.http import preflight_response
from app.http import read_json_body
from app.http import server_key_from_auth
from app.ingest.routing import identity_link
from app.ingest.routing import route
from app.ingest.trust import apply_trust
from app.ingest.validate import SHORT_TYPES
from app.ingest.validate import iso_utc
from app.ingest.validate import normalise
from app.ops.metrics import intake_metrics
from app.outbox import get_store
from app.outbox.store import Event
from app.outbox.store import Routed
from app.outbox.store import State
from app.privacy.intake import suppression_check
from app.settings import Settings
from app.settings import SourceKey

bp = Blueprint("ingest", __name__)

# How long after a browser identify its visitor's held events are tried again: time for the
# page's hidden form post to reach Marketo and tie the Munchkin cookie.
FORM_FILL_GRACE_S = 5.0
# The answer to almost every request, built once.
SUCCESS_BODY = b'{"success":true}\n'

# Items per batch. Segment caps a batch at 500 KB; its libraries send at most 100 messages a
# batch. 2,500 leaves room for small events while bounding the per-item work (and memory) a
# tiny gzipped body of empty items could otherwise cost.
MAX_BATCH_ITEMS = 2_500

# A batch answer lists at most this many rejected items (`rejected_count` has them all), so
# the answer stays a few KB whatever the batch holds.
MAX_REJECTED_LISTED = 100


def accept(
    settings: Settings,
    key: SourceKey,
    items: list[Any],
    route_type: str | None,
    single: bool,
    sent_at: Any = None,
) -> Response:
    """Validate, route and durably commit messages; answer once the commit has returned.

    A single message that breaks a rule is a 400; in a batch the valid items are stored and the
    others listed under `rejected`, unless none is valid (400 with the list). `sent_at` is a
    batch's own `sentAt`, the clock reading its items' times are corrected by.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    now = time.time()
    received_iso = iso_utc(datetime.fromtimestamp(now, UTC))
    max_event = settings.intake.max_event_bytes
    events: list[Event] = []
    rejected: list[dict[str, Any]] = []
    rejected_count = 0
    metrics_codes: dict[str, int] = {}
    for index, item in enumerate(items):
        try:
            event = normalise(
                item, route_type=route_type, key_id=key.id, key_kind=key.kind,
                received_at=now, received_iso=received_iso, max_event_bytes=max_event,
                sent_at=sent_at,
            )  # fmt: skip
            event = apply_trust(event, settings.secret_key)
        except InvalidEvent as exc:
            if single:
                raise
            rejected_count += 1
            metrics_codes[exc.code] = metrics_codes.get(exc.code, 0) + 1
            if len(rejected) < MAX_REJECTED_LISTED:
                rejected.append({"index": index, "code": exc.code, "message": exc.message})
            continue
        events.append(event)
    suppressed = suppression_check(app, events)
    routed: list[Routed] = [route(event, settings, suppressed) for event in events]
    metrics = intake_metrics(app)
    for code, n in metrics_codes.items():
        metrics.child(metrics.rejected, code).inc(n)
    if not routed:
        message = "no event in the batch is valid"
        response = jsonify(
            {
                "success": False,
                "error": {"code": "invalid_batch", "message": message},
                "code": "invalid_batch",
                "message": message,
                "rejected": rejected,
                "rejected_count": rejected_count,
            }
        )
        response.status_code = 400
        g.counted = True
        return response
    store = get_store(app)
    store.dedupe_window_s = settings.intake.dedupe_window_h * 3600.0  # type: ignore[attr-defined]
    stored = store.add(routed, now)
    _after_commit(store, routed, stored, settings, now)
    by_label: dict[tuple[str, str], int] = {}
    for item, is_new in zip(routed, stored, strict=True):
        if is_new:
            label = (item.event.type, key.kind)
            by_label[label] = by_label.get(label, 0) + 1
    for label, n in by_label.items():
        metrics.child(metrics.accepted, *label).inc(n)
    if len(routed) - sum(by_label.values()):
        metrics.duplicates.inc(len(routed) - sum(by_label.values()))
    if rejected:
        return jsonify({"success": True, "rejected": rejected, "rejected_count": rejected_count})
    return app.response_class(SUCCESS_BODY, content_type="application/json")


def _after_commit(
    store: Any, routed: list[Routed], stored: list[bool], settings: Settings, now: float
) -> None:
    """Release held events once an identify or alias names their visitor.

    A trusted link (server key, or a token's) releases at once. A browser identify that stays a
    record still gives the visitor's held events one more try a little later: the page's hidden
    Marketo form may have tied its cookie meanwhile, and a retry costs one lookup, no binding.
    """
    for item, is_new in zip(routed, stored, strict=True):
        if not is_new:
            continue
        event = item.event
        link = identity_link(event) if item.state is State.PENDING else None
        if link is not None:
            store.release_held(link[0], link[1], now)
        elif event.type == "identify" and event.anonymous_id is not None:
            store.release_held(event.anonymous_id, None, now, due=now + FORM_FILL_GRACE_S)


def _browser_key(settings: Settings, body: Any) -> SourceKey:
    """Return the browser key of a beacon: `writeKey` in the body or the Basic user name.

    analytics.js sends both (`Authorization: Basic base64(writeKey:)`); they must agree. Either
    way it is a browser key with browser trust: a server key is never looked up here.
    """
    value = body.get("writeKey")
    if value is None and isinstance(body.get("batch"), list) and body["batch"]:
        first = body["batch"][0]
        value = first.get("writeKey") if isinstance(first, dict) else None
    user = basic_user()
    if value is None:
        value = user
    elif user is not None and user != value:
        raise Unauthorized("the Authorization key and writeKey differ", code="key_mismatch")
    key = browser_key_from(settings, value)
    g.browser_key = key
    check_origin(key)
    batch = body.get("batch")
    check_ip_rate(key, settings.intake, len(batch) if isinstance(batch, list) else 1)
    return key


def _preflight() -> Response:
    try:
        keys = [k for k in current_settings().keys if k.kind == "browser"]
    except Exception:  # a preflight answers even when settings are broken; the POST will say why
        keys = []
    return preflight_response(keys)


def _object_body(max_bytes: int, any_type: bool = False) -> dict[str, Any]:
    body = read_json_body(max_bytes, any_type)
    if not isinstance(body, dict):
        raise InvalidEvent("the body must be a JSON object", code="not_an_object")
    return body


@bp.post("/v1/<any(track, page, identify, alias, group, screen):kind>")
def server_event(kind: str) -> Response:
    """Segment tracking API, one message; the server key is the HTTP Basic user name."""
    settings = current_settings()
    key = server_key_from_auth(settings)
    body = _object_body(settings.intake.max_event_bytes, any_type=True)
    return accept(settings, key, [body], kind, single=True)


# analytics.js posts to `{apiHost}/{first letter of the type}`; its apiHost is normally
# `host/v1` (Segment's default is api.segment.io/v1) but the bare host works too.
@bp.route("/v1/<any(p, t, i, a, g, s):short>", methods=["POST", "OPTIONS"])
@bp.route("/<any(p, t, i, a, g, s):short>", methods=["POST", "OPTIONS"])
def beacon(short: str) -> Response:
    """Browser beacon for one message; the browser key is `writeKey` or the Basic user name."""
    if request.method == "OPTIONS":
        return _preflight()
    settings = current_settings()
    body = _object_body(settings.intake.max_event_bytes)
    key = _browser_key(settings, body)
    return accept(settings, key, [body], SHORT_TYPES[short], single=True)


# OPTIONS listed explicitly: Flask then leaves preflights to the view, which answers with CORS.
# `/v1/b` (and `/b`) is analytics.js' batching path, `/v1/batch` everyone else's.
@bp.route("/v1/batch", methods=["POST", "OPTIONS"])
@bp.route("/v1/b", methods=["POST", "OPTIONS"])
@bp.route("/b", methods=["POST", "OPTIONS"])
def batch() -> Response:
    """A batch of messages: server when a server key is the Basic user name, else browser.

    A browser key as the Basic user name (analytics.js) is a browser batch with browser trust.
    """
    if request.method == "OPTIONS":
        return _preflight()
    settings = current_settings()
    limit = settings.intake.max_batch_bytes
    user = basic_user()
    is_browser = user is not None and settings.browser_key(user) is not None
    if not is_browser and parse_authorization(request.environ.get("HTTP_AUTHORIZATION")):
        key = server_key_from_auth(settings)
        body = _object_body(limit, any_type=True)
    else:
        body = _object_body(limit)
        key = _browser_key(settings, body)
    items = body.get("batch")
    if not isinstance(items, list):
        raise InvalidEvent("batch must be a list of events", code="bad_batch")
    if not items:
        raise InvalidEvent("batch is empty", code="empty_batch")
    if len(items) > MAX_BATCH_ITEMS:
        raise PayloadTooLarge(
            f"a batch may carry at most {MAX_BATCH_ITEMS} events", code="too_many_events"
        )
    return accept(settings, key, items, None, single=False, sent_at=body.get("sentAt"))


@bp.before_request
def _start_clock() -> None:
    g.intake_t0 = time.perf_counter()


@bp.after_request
def _finish(response: Response) -> Response:
    flags = g._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not three
    key = flags.get("browser_key")
    if key is not None:
        apply_cors(response, key)
    metrics = intake_metrics(current_app._get_current_object())  # type: ignore[attr-defined]
    if response.status_code >= 400 and not flags.get("counted"):
        body = response.get_json(silent=True) or {}
        metrics.child(metrics.rejected, (body.get("error") or {}).get("code", "error")).inc()
    endpoint = (request.endpoint or "").rpartition(".")[2]
    metrics.child(metrics.latency, endpoint).observe(time.perf_counter() - flags.intake_t0)
    return response
